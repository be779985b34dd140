"""Training labels per stage (paper §4.1): the schedule names them, the driver derives them.

A hand-made scene (3 views, 4 frames): person 1 is referred and seen in View1 and View2
only; person 2 (same category) is in every view; person 3 (a car) only in View3.
"""

import pandas as pd
import pytest

from raysys.config import from_dict, to_dict
from raysys.io.dataset import DatasetLayout
from raysys.training.config import PAPER_STAGES, StageConfig, TrainConfig, quick_config
from raysys.training.data import SLOT, ClipSpec, EpochBatches, load_clip, plan_samples
from raysys.training.labels import relabel, run_labels, stage_model_config, stage_slots
from raysys.training.sources import OBJECT_COLUMNS, ClipSource
from raysys.viewsam.config import ViewSAMConfig

SCENE = "Plaza"
VIEWS = ["View1", "View2", "View3"]
SEEN = {1: ("View1", "View2"), 2: tuple(VIEWS), 3: ("View3",)}
CATS = {1: "person", 2: "person", 3: "car"}
PAPER = ["id_agnostic_single_view", "id_agnostic_cross_view", "refer_agnostic_cross_view"]


class _Source(ClipSource):
    supervision = "weak"

    def _load_expressions(self):
        return [{"scene": SCENE, "expression_id": 0, "text": "the man", "global_ids": [1]},
                {"scene": SCENE, "expression_id": 1, "text": "the men", "global_ids": [1, 2]}]

    def _load_objects(self, scene):
        rows = [(v, f, g, CATS[g], 2.0 + 6 * g, 4.0, 5.0, 10.0, None)
                for g, views in SEEN.items() for v in views for f in range(1, 5)]
        return pd.DataFrame(rows, columns=OBJECT_COLUMNS)


@pytest.fixture
def source(tmp_path, blank_views):
    return _Source(blank_views(DatasetLayout(tmp_path, "In-domain", "train"), SCENE, VIEWS))


SPEC = ClipSpec(size=32, frames=2, stride=2, step=1, max_objects=3, max_views=None,
                min_box_side=2.0, use_masks=False, variant="standard")


def test_the_schedules_train_each_stage_on_its_labels():
    assert [s.labels for s in PAPER_STAGES] == PAPER
    assert [s.labels for s in TrainConfig().stages] == PAPER
    assert [s.labels for s in quick_config().stages] == PAPER
    cfg = TrainConfig()
    assert [cfg.stage_labels(s) for s in cfg.stages] == PAPER
    assert run_labels(cfg) == PAPER
    # a whole-run variant (comparisons) trains every stage on its referring samples
    for variant in ("id_agnostic", "refer_agnostic"):
        v = TrainConfig(variant=variant)
        assert {v.stage_labels(s) for s in v.stages} == {"standard"}
        assert run_labels(v) == ["standard"]
    # a stage written without labels trains on the referring samples, as before
    assert StageConfig("x", ("cgct",), 1, 1e-3).labels == "standard"
    q = quick_config()
    assert from_dict(TrainConfig, to_dict(q)) == q
    with pytest.raises(ValueError, match="labels must be one of"):
        StageConfig("x", ("cgct",), 1, 1e-3, "oracle")
    skip = TrainConfig(stages=(StageConfig("cg", ("candidate_generator",), 0, 1e-3,
                                           "id_agnostic_single_view"),
                               StageConfig("all", ("cgct",), 1, 1e-3)))
    assert run_labels(skip) == ["standard"], "a stage of 0 epochs reads nothing"


def test_identity_free_stages_have_no_consistency_loss():
    m = ViewSAMConfig()
    assert stage_model_config(m, "id_agnostic_single_view").use_consistency_loss is False
    assert stage_model_config(m, "id_agnostic_cross_view").use_consistency_loss is False
    assert stage_model_config(m, "refer_agnostic_cross_view") is m
    assert stage_model_config(m, "standard") is m


def test_id_agnostic_cross_view_samples_hide_stage1_ids(source):
    samples = plan_samples(source, SPEC)
    for s, r in zip(samples, relabel(samples, "id_agnostic_cross_view", source, SPEC),
                    strict=True):
        assert r["views"] == VIEWS and r["referred"] == s["referred"]
        n = len(r["object_ids"])
        std, anon = load_clip(source, s, SPEC)["ids"], load_clip(source, r, SPEC)["ids"]
        assert std[:n].tolist() == s["object_ids"]
        assert anon[:n].tolist() == list(range(n)) and (anon[n:] == -1).all()


def test_single_view_samples_hold_one_view_where_a_referred_object_is(source):
    samples = plan_samples(source, SPEC)  # 2 expressions x 2 clips
    assert len(samples) == 4
    single = relabel(samples, "id_agnostic_single_view", source, SPEC, seed=3)
    assert single == relabel(samples, "id_agnostic_single_view", source, SPEC, seed=3)
    per_expr = {0: 0, 1: 0}
    for s in single:
        (view,) = s["views"]
        per_expr[s["expression_id"]] += 1
        clip = load_clip(source, s, SPEC)
        assert clip["frames"].shape[0] == 1 and clip["view_ids"].tolist() == [
            VIEWS.index(view)]
        n = len(s["object_ids"])
        assert clip["ids"][:n].tolist() == list(range(n)), "ID-agnostic"
        ref = clip["visible"][0][:, clip["referred"]].any()
        assert ref, f"{view}: no referred object visible"
    # "the man" (person 1) is not in View3: 2 views x 2 clips; "the men": 3 views x 2 clips
    assert per_expr == {0: 4, 1: 6}


def test_refer_agnostic_samples_target_every_labelled_object_once_per_clip(source):
    samples = plan_samples(source, SPEC)
    ra = relabel(samples, "refer_agnostic_cross_view", source, SPEC)
    assert len(ra) == 2, "one sample per clip, not one per expression"
    assert {tuple(s["frames"]) for s in ra} == {(1, 2), (3, 4)}
    for s in ra:
        assert sorted(s["object_ids"]) == [1, 2, 3], "the car too: not only the referred"
        assert all(s["referred"])
        clip = load_clip(source, s, SPEC)
        assert sorted(clip["ids"].tolist()) == [1, 2, 3], "Stage 1 ids: CGCT learns them"
    # person 2 (3 views x 2 frames = 6 boxes, person 1 has 4, the car 2) comes first
    assert ra[0]["object_ids"][0] == 2


class _Shard:
    """A worker's dataset shard as the trainer reads it: rows of one clip, in order."""

    def __init__(self, slots):
        import numpy as np

        self.rows = [{SLOT: np.array([s]), "x": np.array([i])} for i, s in enumerate(slots)]

    def iter_batches(self, batch_size, batch_format):
        assert batch_size == 1 and batch_format == "numpy"
        return iter(self.rows)


def test_one_stream_per_worker_gives_each_epoch_its_own_clips(tmp_path):
    """The run's one clip stream per worker splits back into epochs: the rows of epochs
    done before a restart (or of a skipped stage) are dropped, later ones wait, batches
    never straddle two epochs; a re-run starts the stream after its newest checkpoint."""
    import json

    from raysys.training.resume import done_slot

    stream = EpochBatches(_Shard([1, 1, 2, 2, 2, 4, 4, 5]), batch_size=2)
    xs = [list(b["x"]) for b in stream.epoch(2)]
    assert xs == [[2, 3], [4]], "slot 1 dropped; the last batch of an epoch is short"
    assert list(stream.epoch(3)) == [], "nothing of slot 3: the next slot's rows stay"
    assert [list(b["x"]) for b in stream.epoch(5)] == [[7]], "slot 4 (a skipped stage) dropped"
    assert list(stream.epoch(6)) == []
    # slots: epoch e of stage i is stage_slots[i] + e
    q = quick_config()
    assert [s.epochs for s in q.stages] == [3, 1, 1] and stage_slots(q) == [0, 3, 4]
    run = tmp_path / "run"
    assert done_slot(run, q) == 0, "no checkpoint: the stream holds every epoch"
    for name, stage, epoch in (("checkpoint_2026-01-01_00-00-01", 0, 3),
                               ("checkpoint_2026-01-01_00-00-02", 1, 1)):
        (run / "ray_train" / name).mkdir(parents=True)
        (run / "ray_train" / name / "checkpoint.json").write_text(
            json.dumps({"stage": stage, "stage_epoch": epoch}))
    assert done_slot(run, q) == 4, "after the newest checkpoint: VC-CMA + BAR's epoch 1"
    (run / "ray_train" / "checkpoint_2026-01-01_00-00-03").mkdir()
    (run / "ray_train" / "checkpoint_2026-01-01_00-00-03" / "checkpoint.json").write_text("{")
    assert done_slot(run, q) == 0, "an unreadable newest checkpoint: plan every epoch"
