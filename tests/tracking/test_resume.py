"""Content-aware resume of `raysys track` and its checks before anything is written
(issue #19): another model into the same --out is refused and the record keeps naming the
model whose predictions are there; the actors never block a resume; a scene whose frames
changed is tracked again; --out never goes into a dataset's GT; a missing view is an error
unless allowed."""

from __future__ import annotations

import shutil

import pytest
import torch

from raysys.cli import main
from raysys.config import to_dict
from raysys.io.dataset import DatasetLayout
from raysys.tracking import TrackConfig
from raysys.tracking.run import RECORD, check_track_inputs, model_digest
from raysys.training.config import StageConfig, quick_config
from raysys.training.model import build_model
from raysys.viewsam.base import sam2_yaml_text
from raysys.viewsam.checkpoint import model_state, write_checkpoint

OPEN = dict(refer_threshold=0.0, objectness_threshold=0.0, min_refer=0.0)


def _cfg():
    return quick_config(clip_frames=2, image_size=64, sam2_image_size=64, max_objects=4,
                        max_samples=4, stages=(StageConfig("all", ("cgct",), 1, 1e-3),))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two checkpoints of the tiny random ViewSAM: A, and B with other weights."""
    base = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    m = build_model(_cfg(), sam2_yaml_text(None, 64)).eval()
    out = {}
    for name in ("A", "B"):
        if name == "B":
            with torch.no_grad():
                next(p for p in m.parameters() if p.requires_grad).add_(0.5)
        out[name] = base / name
        write_checkpoint(out[name], {"model": model_state(m), "config": to_dict(_cfg()),
                                     "build_spec": m.build_spec, "epoch": 1})
    return out


@pytest.fixture
def data(tmp_path):
    """2 views x 6 frames, 2 expressions: a split this test may change."""
    from raysys.synth import SynthConfig, generate

    root = tmp_path / "data"
    generate(SynthConfig(scenes=1, views=2, frames=6, width=160, height=96, people=3, cars=0,
                         bicycles=0, expressions=2, splits=("test",), domains=("In-domain",)),
             root)
    return DatasetLayout(root, "In-domain", "test")


def test_model_digest_is_the_content(models, tmp_path):
    a = model_digest(models["A"])
    shutil.copytree(models["A"], tmp_path / "copy")
    assert model_digest(tmp_path / "copy") == a  # the same model elsewhere
    assert model_digest(models["B"]) != a


def test_out_inside_ground_truth_and_a_missing_view(models, data, tmp_path, capsys):
    out = data.gt_root / "pred"
    rc = main(["track", "--model", str(models["A"]), "--data", str(data.root), "--out",
               str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "inside the dataset's ground truth" in err[0], err
    assert not out.exists()
    scene = next(iter(data.gt_root.iterdir())).name.split("_")[0]
    shutil.rmtree(data.view_dir(scene, "View2"))
    pred = tmp_path / "pred"
    with pytest.raises(ValueError, match=f"scene {scene}: view View2 is missing"):
        check_track_inputs(models["A"], data, pred)
    check_track_inputs(models["A"], data, pred, allow_missing_views=True)
    assert not pred.exists()


@pytest.mark.slow
def test_another_model_is_refused_and_changed_frames_are_tracked_again(models, data,
                                                                       tmp_path):
    ray = pytest.importorskip("ray")
    from raysys.tracking.run import track_split

    pred = tmp_path / "pred"
    cfg = TrackConfig(clip_frames=4, **OPEN)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        first = track_split(models["A"], data, pred, cfg, actors=1, actor_cpus=0.5,
                            progress=False)
        assert first.units == 2 and first.skipped == 0
        files = {p: p.read_bytes() for p in pred.rglob("*") if p.is_file()}
        # another model into the same --out: refused, and nothing changes, the record included
        with pytest.raises(ValueError, match=f"{pred} holds predictions of another model .*"
                                             "delete .* or pass a new --out"):
            track_split(models["B"], data, pred, cfg, actors=1, actor_cpus=0.5,
                        progress=False)
        # other tracking settings: refused too, naming the field
        with pytest.raises(ValueError, match="track.clip_frames: was 4, now 2"):
            track_split(models["A"], data, pred, TrackConfig(clip_frames=2, **OPEN),
                        actors=1, actor_cpus=0.5, progress=False)
        assert files == {p: p.read_bytes() for p in pred.rglob("*") if p.is_file()}
        # more actors: a resource setting, the resume goes on (nothing left to do)
        again = track_split(models["A"], data, pred, cfg, actors=2, actor_cpus=0.5,
                            progress=False)
        assert again.skipped == 2 and again.frames == 0 and again.redone_scenes == ()
        assert files == {p: p.read_bytes() for p in pred.rglob("*") if p.is_file()}
        # a frame rewritten in place: its scene is tracked again
        scene = next(iter(data.gt_root.iterdir())).name.split("_")[0]
        f = sorted(data.view_dir(scene, "View1").iterdir())[0]
        f.write_bytes(f.read_bytes())
        redone = track_split(models["A"], data, pred, cfg, actors=1, actor_cpus=0.5,
                             progress=False)
        assert redone.redone_scenes == (scene,) and redone.skipped == 0 and redone.frames == 12
        assert (pred / RECORD).read_bytes() != files[pred / RECORD]
    finally:
        ray.shutdown()
