"""Stage 2 data and config: clips from a tiny labeled dataset, variants, the guard, the CLI.

The labeled dataset (``labeled``: 1 scene, 3 views, 16 frames, Stage 1 run on it) comes
from ``tests/conftest.py``, made once per session.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from raysys.config import from_dict, to_dict
from raysys.training.config import StageConfig, TrainConfig, quick_config
from raysys.training.data import ClipSpec, collate, load_clip, plan_samples
from raysys.training.sources import open_source

SPEC = ClipSpec(size=64, frames=2, stride=4, step=2, max_objects=5, max_views=None,
                min_box_side=2.0, use_masks=True, variant="standard")


# ----------------------------------------------------------------------------- config


def test_config_defaults_are_the_paper_schedule_and_json_overrides_merge():
    cfg = TrainConfig()
    assert [(s.name, s.epochs, s.lr) for s in cfg.stages] == [
        ("candidate_generator", 12, 4e-5), ("vc_cma_bar", 20, 2e-5), ("cgct", 10, 2e-4)]
    assert cfg.total_epochs == 12 + 20 + 10 and cfg.clip_frames == 8
    q = quick_config()
    assert q.clip_frames == 4 and q.total_epochs == 3 + 1 + 1
    assert q.sam2_checkpoint == "embedded" and q.model.candidate_generator.fine
    assert q.model.candidate_generator.text_matcher == "embedded"  # the APTM analogue's text
    assert quick_config(model={"use_bar": False}).model.candidate_generator.fine  # merged
    # nested and partial overrides; the round trip through JSON is exact
    d = {"clip_frames": 2, "model": {"use_bar": False, "cgct": {"temperature": 0.2}},
         "stages": [{"name": "cg", "modules": ["candidate_generator"], "epochs": 1, "lr": 1e-3}]}
    c = from_dict(TrainConfig, d, q)
    assert c.clip_frames == 2 and c.image_size == 128  # the rest stays quick
    assert not c.model.use_bar and c.model.cgct.temperature == 0.2 and c.model.use_cgct
    assert c.model.candidate_generator.fine  # the quick model settings stay too
    assert c.stages == (StageConfig("cg", ("candidate_generator",), 1, 1e-3),)
    assert from_dict(TrainConfig, json.loads(json.dumps(to_dict(c)))) == c
    assert TrainConfig(variant="id_agnostic").model_config.use_consistency_loss is False


@pytest.mark.parametrize("bad, match", [
    ({"clip_frame": 2}, "unknown TrainConfig fields"),
    ({"supervision": "strong"}, "supervision"),
    ({"variant": "oracle"}, "variant"),
    ({"stages": [{"name": "x", "modules": ["decoder"], "epochs": 1, "lr": 1e-3}]}, "modules"),
    ({"sam2_image_size": 100}, "multiple of 16"),
    ({"calibration_level": "frame"}, "calibration_level must be 'track' or 'proposal'"),
])
def test_config_errors_say_how_to_fix(bad, match):
    with pytest.raises(ValueError, match=match):
        from_dict(TrainConfig, bad)


# ----------------------------------------------------------------------------- clips


@pytest.mark.slow
def test_clips_have_the_right_shapes_and_the_expressions_ids(labeled):
    _, labels = labeled
    src = open_source("weak", labels)
    samples = plan_samples(src, SPEC)
    exprs = {e["expression_id"]: e for e in src.expressions()}
    # 16 frames, clips of 2 frames 2 apart (span 3), starts every 4 -> 4 clips per expression
    assert 0 < len(samples) <= 4 * len(exprs)
    for s in samples:
        ref = [g for g, r in zip(s["object_ids"], s["referred"], strict=True) if r]
        assert ref and set(ref) <= set(exprs[s["expression_id"]]["global_ids"])
        assert len(set(s["object_ids"])) == len(s["object_ids"]) <= SPEC.max_objects
        assert s["frames"][1] - s["frames"][0] == 2 and s["views"] == ["View1", "View2", "View3"]
    s = samples[0]
    c = load_clip(src, s, SPEC)
    v, t, m, n = 3, 2, SPEC.max_objects, len(s["object_ids"])
    assert c["frames"].shape == (v, t, 3, 64, 64) and c["frames"].dtype == np.uint8
    assert c["boxes"].shape == (v, t, m, 4) and c["visible"].shape == (v, t, m)
    assert c["masks"].shape == (v, t, m, 64, 64)
    assert c["ids"][:n].tolist() == s["object_ids"] and (c["ids"][n:] == -1).all()
    assert c["referred"][:n].tolist() == s["referred"] and not c["referred"][n:].any()
    assert c["view_ids"].tolist() == [0, 1, 2]
    assert not c["visible"][..., n:].any(), "padding is never visible"
    vis = c["visible"]
    assert (c["boxes"][vis][:, 2:] > c["boxes"][vis][:, :2]).all()
    assert (c["boxes"][vis] >= 0).all() and (c["boxes"][vis] <= 64).all()
    assert not c["masks"][~vis].any(), "no mask where the object is not visible"
    # dense targets: every labelled object of each (view, frame), a superset of the M
    df = src.objects(s["scene"])
    for i, view in enumerate(s["views"]):
        for j, f in enumerate(s["frames"]):
            rows = df[(df["view"] == view) & (df["frame"] == f) & (df["width"] >= 2)
                      & (df["height"] >= 2)]
            assert c["dense_visible"][i, j].sum() == len(rows) >= c["visible"][i, j].sum()
    dvis = c["dense_visible"]
    assert (c["dense_boxes"][dvis][:, 2:] > c["dense_boxes"][dvis][:, :2]).all()
    assert (c["dense_boxes"][dvis] <= 64).all() and not c["dense_boxes"][~dvis].any()
    for box in c["boxes"][vis]:  # each of the M boxes is one of the dense boxes
        assert np.abs(c["dense_boxes"][dvis] - box).max(axis=1).min() < 1e-4
    frames, texts, targets, view_ids = collate({k: x[None] for k, x in c.items()})
    assert targets.check(1, v, t, 64, 64) == m and texts == [s["text"]]
    assert 0.0 <= float(frames.min()) and float(frames.max()) <= 1.0
    assert view_ids.shape == (1, 3)


@pytest.mark.slow
def test_variants_change_identity_and_referring_targets(labeled):
    _, labels = labeled
    src = open_source("weak", labels)
    ida_spec = SPEC.__class__(**{**SPEC.__dict__, "variant": "id_agnostic"})
    sample = plan_samples(src, ida_spec)[0]  # the descriptor says its ids are anonymous
    assert sample["anonymous_ids"] and not plan_samples(src, SPEC)[0]["anonymous_ids"]
    ida = load_clip(src, sample, ida_spec)
    n = len(sample["object_ids"])
    assert ida["ids"][:n].tolist() == list(range(n)), "no Stage 1 identity reaches the loss"
    ra = SPEC.__class__(**{**SPEC.__dict__, "variant": "refer_agnostic"})
    objs = src.objects(sample["scene"])
    cats = dict(zip(objs["global_id"], objs["category"], strict=False))
    for s in plan_samples(src, ra):
        expr_cats = {cats[g] for g in next(e["global_ids"] for e in src.expressions()
                                           if e["expression_id"] == s["expression_id"])}
        for g, r in zip(s["object_ids"], s["referred"], strict=True):
            assert r == (cats[g] in expr_cats), "every object of the category is a target"


@pytest.mark.slow
def test_full_supervision_reads_gt_expressions(labeled):
    data, labels = labeled
    src = open_source("full", labels)  # the labels only name the dataset
    from raysys.io.crtrack import list_expressions, read_expression_gt

    gt = {e.text: e for e in list_expressions(src.layout.gt_root)}
    for s in plan_samples(src, SPEC)[:5]:
        rows = read_expression_gt(src.layout.gt_root, gt[s["text"]].name)
        ids = {int(g) for r in rows.values() for g in r[:, 1]}
        assert {g for g, r in zip(s["object_ids"], s["referred"], strict=True) if r} <= ids
        c = load_clip(src, s, SPEC)
        assert c["masks"].any()


@pytest.mark.slow
def test_weak_clips_never_open_ground_truth(labeled):
    """Plan and decode every weak clip with the guard installed (in a subprocess: audit
    hooks cannot be removed); the GT source fails there, proving the guard is on."""
    data, labels = labeled
    code = f"""
from raysys.io.dataset import DatasetLayout
from raysys import guard
from raysys.training.data import ClipSpec, load_clip, plan_samples
from raysys.training.sources import GroundTruthSource, open_source
src = open_source("weak", {str(labels)!r})
guard.install(src.layout.ground_truth_dirs())
spec = ClipSpec(**{SPEC.__dict__!r})
n = sum(1 for s in plan_samples(src, spec) if load_clip(src, s, spec)["visible"].any())
print("clips", n)
try:
    plan_samples(GroundTruthSource(src.layout), spec)
    print("GT read")
except Exception as e:  # readers may wrap the guard's error in their own
    print("GT blocked" if "must not be read" in str(e) else repr(e))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "GT blocked" in r.stdout and "clips" in r.stdout, r.stdout


# ----------------------------------------------------------------------------- CLI


def test_cli_bad_labels_is_a_clear_error(tmp_path, capsys):
    from raysys.cli import main

    code = main(["train", "--labels", str(tmp_path / "nope"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "--labels" in err and "raysys label" in err
    (tmp_path / "empty").mkdir()
    assert main(["train", "--labels", str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 2
    assert "config.json" in capsys.readouterr().err
    assert main(["train", "--supervision", "full", "--out", str(tmp_path / "r2")]) == 2
    assert "--data" in capsys.readouterr().err


def test_a_corrupt_training_frame_names_its_file(tmp_path):
    """Clip loading fails on a frame it cannot decode, naming file, scene, view and frame
    (not a PIL traceback from inside a clip loader)."""
    from raysys.io.frames import FrameError
    from raysys.training.data import _read_resized

    f = tmp_path / "Plaza_View2" / "000003.jpg"
    f.parent.mkdir()
    f.write_bytes(b"\xff\xd8\xff\xe0 cut short")
    with pytest.raises(FrameError, match=r"000003.jpg \(Plaza, View2, frame 3\): "):
        _read_resized(f, 64, "Plaza", "View2", 3)
