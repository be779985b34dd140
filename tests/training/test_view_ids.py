"""View ids follow one rule (raysys.io.views) in training and in tracking.

The same scene is numbered by the training pipeline (plan_samples -> load_clip, and the
single-view samples of the Candidate Generator's stage) and by the tracker's run
(track_unit -> ViewSAMTracker); the ids must agree, for contiguous numbering, for
non-contiguous numbering (View1, View3, View7) and for names without a number.
"""

import pandas as pd
import pytest

from raysys.io.dataset import DatasetLayout
from raysys.io.views import view_id_map, view_ids
from raysys.training.data import ClipSpec, load_clip, plan_samples
from raysys.training.labels import relabel
from raysys.training.sources import OBJECT_COLUMNS, ClipSource

SCENE = "Plaza"


@pytest.mark.parametrize("names, want", [
    (["View1", "View2", "View3"], [0, 1, 2]),
    (["View1", "View3", "View7"], [0, 2, 6]),  # a camera keeps its id when others are gone
    (["View7", "View1", "View3"], [6, 0, 2]),  # order of the list does not matter
    (["View0", "View1"], [0, 1]),  # 0-based numbering kept as is
    (["Left", "Right", "Top"], [0, 1, 2]),  # no numbers: position among the sorted names
    (["Top", "Left", "Right"], [2, 0, 1]),
    (["Top", "Cam2"], [1, 0]),  # one name without a number: positions for all (sorted
    #                              numbered first, view_sort_key)
    (["a1", "b1"], [0, 1]),  # two names with one number: positions
])
def test_the_rule(names, want):
    assert view_ids(names) == want
    assert view_id_map(names) == dict(zip(names, want, strict=True))


def test_a_subset_is_numbered_within_the_scene():
    scene = ["Left", "Right", "Top"]
    assert view_ids(["Top"], scene) == [2], "a single view keeps its id in the scene"
    assert view_ids(["View3"], ["View1", "View3", "View7"]) == [2]
    with pytest.raises(ValueError, match="not among"):
        view_ids(["View9"], ["View1", "View3"])
    with pytest.raises(ValueError, match="duplicate"):
        view_ids(["View1", "View1"])


# ----------------------------------------------------------------- training vs tracking


class _Source(ClipSource):
    """A scene of the given view names, 4 frames, one referred person seen in every view."""

    supervision = "weak"

    def __init__(self, layout, names):
        super().__init__(layout)
        self.names = list(names)

    def views(self, scene):
        return self.names  # any names, not only <Scene>_View<k> folders

    def _load_expressions(self):
        return [{"scene": SCENE, "expression_id": 0, "text": "a person", "global_ids": [1]}]

    def _load_objects(self, scene):
        rows = [(v, f, 1, "person", 4.0, 4.0, 8.0, 12.0, None)
                for v in self.names for f in range(1, 5)]
        return pd.DataFrame(rows, columns=OBJECT_COLUMNS)


def _dataset(tmp_path, names, blank_views) -> DatasetLayout:
    return blank_views(DatasetLayout(tmp_path, "In-domain", "train"), SCENE, names)


class _Recorder:
    """Stands in for MultiExpressionTracker in track_unit: records the view ids it is
    given."""

    seen: list = []

    def __init__(self, model, expressions, num_views, cfg=None, view_ids=None,
                 proposals=None, on_proposals=None):
        _Recorder.seen.append(list(view_ids))
        self.n = len(expressions)

    def step(self, frames):
        return [[] for _ in range(self.n)]

    def flush(self):
        return [[] for _ in range(self.n)]


@pytest.mark.parametrize("names", [["View1", "View2", "View3"], ["View1", "View3", "View7"],
                                   ["Top", "Left", "Right"]])
def test_training_and_tracking_give_a_view_the_same_id(tmp_path, monkeypatch, names,
                                                       blank_views):
    import raysys.tracking.tracker as tracker_mod
    from raysys.tracking.config import TrackConfig
    from raysys.tracking.run import TrackUnit, track_unit

    layout = _dataset(tmp_path, names, blank_views)
    src = _Source(layout, names)
    spec = ClipSpec(size=32, frames=2, stride=2, step=1, max_objects=2, max_views=None,
                    min_box_side=2.0, use_masks=False, variant="standard")
    samples = plan_samples(src, spec)
    train = {}
    for s in samples:
        clip = load_clip(src, s, spec)
        train |= dict(zip(s["views"], clip["view_ids"].tolist(), strict=True))
    single = relabel(samples, "id_agnostic_single_view", src, spec)
    assert len(single) == len(names) * len(samples)
    for s in single:  # a single-view sample keeps the id the view has in the scene
        (view,) = s["views"]
        assert load_clip(src, s, spec)["view_ids"].tolist() == [train[view]]

    monkeypatch.setattr(tracker_mod, "MultiExpressionTracker", _Recorder)
    _Recorder.seen = []
    track_unit(None, layout, TrackUnit("x", SCENE, "a person", tuple(names)), TrackConfig())
    (tracked,) = _Recorder.seen
    assert dict(zip(names, tracked, strict=True)) == train
    assert train == view_id_map(names)
