"""The sweep's validation is weak-safe: its targets are the pseudo labels of frames held
out of training (no clip, object row or calibration clip reaches them), and it tracks only
those frames. Uses the tiny labeled dataset of tests/conftest.py (1 scene, 16 frames)."""

import os

import numpy as np
import pytest

from raysys.io import crtrack
from raysys.training.data import ClipSpec, load_clip, plan_samples
from raysys.training.sources import open_source
from raysys.tune.validation import HeldOutSource, Validator, link_frames, plan_holdout

SPEC = ClipSpec(size=64, frames=2, stride=1, step=1, max_objects=4, max_views=None,
                min_box_side=2.0, use_masks=False, variant="standard")


@pytest.fixture(scope="module")
def split(labeled):
    _, labels = labeled
    full = open_source("weak", labels)
    holdout = plan_holdout(full, 0.25)
    return labels, full, holdout, HeldOutSource(labels, full.layout, holdout)


def test_holdout_is_the_tail_of_each_scene_and_training_never_sees_it(split):
    _, full, holdout, source = split
    nums = full.frame_numbers("PlazaTrain01")
    held = holdout.frames["PlazaTrain01"]
    assert held == tuple(nums[-4:]) and len(nums) == 16  # 25 % of 16 frames
    assert source.frame_numbers("PlazaTrain01") == nums[:-4]
    assert not source.objects("PlazaTrain01")["frame"].isin(held).any()
    assert full.objects("PlazaTrain01")["frame"].isin(held).any()  # there was something
    samples = plan_samples(source, SPEC, None, 0)  # every clip, stride 1
    assert samples and all(not set(s["frames"]) & set(held) for s in samples)
    # the source travels to Ray's clip loaders with its hold-out
    clip = load_clip(source, samples[0], SPEC)
    assert clip["frames"].shape[:2] == (3, 2)
    import cloudpickle

    again = cloudpickle.loads(cloudpickle.dumps(source))
    assert again.frame_numbers("PlazaTrain01") == nums[:-4]


def test_whole_scenes_can_be_held_out_but_not_all(split):
    _, full, _, _ = split
    with pytest.raises(ValueError, match="strict subset"):
        plan_holdout(full, 0.25, ("PlazaTrain01",))  # the only scene
    with pytest.raises(ValueError, match="strict subset"):
        plan_holdout(full, 0.25, ("Nowhere",))


def test_validation_targets_are_pseudo_labels_of_the_held_out_frames(split, tmp_path):
    labels, full, holdout, source = split
    val = link_frames(full.layout, holdout, tmp_path / "val", max_frames=3)
    views = crtrack.list_image_views(val.image_root)["PlazaTrain01"]
    assert len(views) == 3
    for v in views:
        linked = crtrack.list_frames(val.view_dir("PlazaTrain01", v))
        assert [f for f, _ in linked] == list(holdout.frames["PlazaTrain01"][:3])
        assert all(os.path.islink(p) for _, p in linked)
    validator = Validator(val, labels / "crtrack", source, SPEC, None, max_expressions=2)
    units = validator.units()
    assert 1 <= len(units) <= 2
    for unit, target in units:
        assert unit.scene == "PlazaTrain01" and unit.views == tuple(views)
        allowed = set(holdout.frames["PlazaTrain01"][:3])
        assert sum(len(r) for r in target.values()) > 0
        assert all(set(np.unique(r[:, 0]).astype(int)) <= allowed for r in target.values())
        # the rows are exactly the labels' rows of those frames
        every = crtrack.read_expression_gt(labels / "crtrack", unit.name)
        for v, r in every.items():
            assert len(target[v]) == int(np.isin(r[:, 0], list(allowed)).sum())
