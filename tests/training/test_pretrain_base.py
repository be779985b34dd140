"""Pre-training the SAM2 base the SAM2 way (raysys.training.pretrain_base): the loop end to
end on a tiny generated scene, the clip sampler, SAM2's losses, and the evaluation (the
tracker's SAM2 steps, IoU over the right frames)."""

import json
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

from raysys.training.pretrain_base import (
    STREAM_FRAMES,
    Clips,
    PretrainConfig,
    SceneArrays,
    ScenePool,
    evaluate_base,
    iou_summary,
    load_base,
    run_pretraining,
    sam2_frame_losses,
    track_clips,
)

TINY_SYNTH = {"frames": 6, "width": 160, "height": 96, "people": 4, "cars": 1, "bicycles": 0,
              "occluders": 1, "expressions": 1}


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: on a busy 2-core machine two threads mostly wait for each other."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _toy_scene(s: int = 64, frames: int = 6, views: int = 2) -> SceneArrays:
    """Two rectangles moving right; object 1 leaves the view after frame 3."""
    rng = np.random.default_rng(0)
    labels = np.zeros((views, frames, s, s), np.int16)
    boxes = np.zeros((views, frames, 2, 4), np.float32)
    area = np.zeros((views, frames, 2), np.int32)
    for f in range(frames):
        for k, (x, y, w, h) in enumerate([(4 + 3 * f, 10, 8, 20), (40, 30, 10, 12)]):
            if k == 1 and f > 3:
                continue
            labels[:, f, y:y + h, x:x + w] = k + 1
            boxes[:, f, k] = [x, y, x + w, y + h]
            area[:, f, k] = w * h
    frames_ = rng.integers(0, 255, (views, frames, 3, s, s), dtype=np.uint8)
    return SceneArrays("toy", frames_, labels, boxes, area, np.array([7, 9]))


def test_pretraining_run_writes_a_loadable_base_metrics_and_card(tmp_path):
    from raysys.viewsam.base import build_sam2_base, sam2_image_size

    cfg = PretrainConfig(image_size=64, clip_frames=4, steps=2, batch=1, scenes=1,
                         eval_scenes=1, eval_clips=2, workers=1, log_every=1,
                         domains=("In-domain",), synth=TINY_SYNTH, max_objects=3, init=None)
    m = run_pretraining(cfg, tmp_path, "cpu", command="raysys pretrain-base --out X")
    pt = tmp_path / "sam2_base.pt"
    payload = torch.load(pt, map_location="cpu", weights_only=True)
    assert payload["yaml"] and sam2_image_size(payload["yaml"]) == 64
    assert all(v.dtype == torch.float16 for v in payload["model"].values()
               if v.is_floating_point())
    (tmp_path / "sam2.yaml").write_text(payload["yaml"])
    base = build_sam2_base(tmp_path / "sam2.yaml", pt)  # strict load
    assert base.image_size == 64
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["training"]["steps"] == 2 and on_disk["training"]["clips"] == 2
    for k in ("seconds", "clips_per_s", "final_losses"):
        assert k in on_disk["training"]
    assert on_disk["config"]["seed"] == 1000 and on_disk["config"]["eval_seed"] == 1001
    assert on_disk["data"]["train_scene_names"] == ["In-domain/train/PlazaTrain01"]
    assert on_disk["data"]["eval_scene_names"] == ["In-domain/test/PlazaTest01"]
    for when in ("init", "final"):
        ev = m["eval"][when]
        for k in ("memory_iou", "box_iou"):
            assert 0.0 <= ev[k] <= 1.0, (when, k, ev[k])
    card = (tmp_path / "MODEL_CARD.md").read_text()
    assert "seed 1000" in card and "raysys pretrain-base --out X" in card


def test_the_pretraining_path_imports_no_ray():
    """Ray is not on the GPU machine: nothing the loop, the command or the device script
    imports may pull it in (checked in a fresh interpreter)."""
    code = ("import sys, raysys.training.pretrain_base as pb, raysys.commands.pretrain_base, "
            "raysys.synth.generate, raysys.viewsam.base, raysys.io.crtrack, raysys.types; "
            "pb.load_base(None, 64); print('ray' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1] == "False"


def test_sampler_keeps_masks_boxes_and_prompts_together():
    pool = ScenePool([_toy_scene()])
    cfg = PretrainConfig(image_size=64, clip_frames=4, steps=1, p_flip=0.5, p_reverse=0.5,
                         p_every_prompt=1.0, p_second_prompt=0.0)
    rng = np.random.default_rng(1)
    for _ in range(4):
        c = pool.sample(rng, 3, cfg, train=True)
        n = c.num_objects
        assert c.frames.shape == (3, 4, 3, 64, 64) and c.masks.shape == (n, 4, 64, 64)
        assert bool(c.visible[:, 0].all()) and bool(c.prompted[:, 0].all())
        assert torch.equal(c.visible, c.masks.flatten(2).any(-1))
        assert torch.equal(c.prompted, c.visible)  # p_every_prompt = 1: every visible frame
        for i in range(n):  # (flipped) masks lie in their (flipped) GT boxes
            for t in np.flatnonzero(c.visible[i].numpy()):
                ys, xs = np.nonzero(c.masks[i, t].numpy())
                x0, y0, x1, y1 = c.boxes[i, t].tolist()
                assert x0 <= xs.min() and xs.max() < x1 and y0 <= ys.min() and ys.max() < y1
    ev = pool.sample(np.random.default_rng(0), 2, cfg, train=False)
    assert torch.equal(ev.prompts, ev.boxes) and not bool(ev.prompted[:, 1:].any())


def test_sam2_losses_follow_object_presence():
    masks = torch.randn(2, 1, 8, 8)
    target = torch.zeros(2, 8, 8, dtype=torch.bool)
    target[0, 2:5, 2:5] = True  # object 0 present, object 1 absent
    res = sam2_frame_losses(masks, torch.rand(2, 1), torch.tensor([[-1.0], [2.0]]), target)
    assert res["focal"][1] == 0 and res["dice"][1] == 0 and res["iou"][1] == 0
    assert res["focal"][0] > 0 and res["dice"][0] > 0
    assert res["class"][1] > 2.0 and res["class"][0] > 1.0  # wrong presence on both
    multi = torch.full((1, 3, 8, 8), -10.0)
    multi[0, 1] = torch.where(target[0], 10.0, -10.0)  # mask 1 is right
    res = sam2_frame_losses(multi, torch.rand(1, 3), torch.tensor([[3.0]]), target[:1])
    assert res["focal"][0] < 1e-4 and res["dice"][0] < 0.05  # the best mask is trained


def test_iou_summary_counts_the_right_frames():
    t, s = 4, 8
    target = torch.zeros(2, t, s, s, dtype=torch.bool)
    target[:, :, :4, :4] = True  # 16 px
    target[1, 2] = False  # object 1 not visible on frame 2
    visible = target.flatten(2).any(-1)
    pred = target.clone()
    pred[0, 1, :, :] = False
    pred[0, 1, :4, :2] = True  # IoU 0.5 on frame 1
    pred[1, 2, :2, :2] = True  # a mask where object 1 is absent
    first = iou_summary(pred, target, visible, first=0)
    later = iou_summary(pred, target, visible, first=1)
    # frame 0 (IoU 1, 1) counts only from frame 0 on; frame 2 of object 1 never counts
    assert first["object_frames"] == 7 and later["object_frames"] == 5
    assert first["iou"] == pytest.approx((7 - 0.5) / 7)
    assert later["iou"] == pytest.approx((5 - 0.5) / 5)
    assert later["per_frame"] == [None, pytest.approx(0.75), 1.0, 1.0]
    assert later["false_present"] == 1.0


def test_track_clips_is_the_trackers_sam2_step():
    """evaluate_base's tracking equals ViewSAM.track_frame (the online tracker's step) with
    no BAR, frame by frame."""
    from raysys.viewsam.base import encode_images
    from raysys.viewsam.viewsam import ViewSAM

    torch.manual_seed(0)
    sam2 = load_base(None, 64).eval()
    pool = ScenePool([_toy_scene()])
    cfg = PretrainConfig(image_size=64, clip_frames=4, steps=1)
    c = pool.sample(np.random.default_rng(0), 1, cfg, train=False)
    prompted = torch.zeros_like(c.visible)
    prompted[:, 0] = True
    prompted[0, 2] = True
    with torch.no_grad():
        masks, scores = track_clips(sam2, c, prompted)
        frames = c.frames[0].float() / 255.0
        mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
        enc = encode_images(sam2, (frames - mean) / std)
        shim = types.SimpleNamespace(sam2=sam2, bar=None, image_size=64)
        bank = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
        n = c.num_objects
        for i in range(4):
            feats = [x[i:i + 1].expand(n, -1, -1, -1) for x in enc["fpn"]]
            pos = enc["pos"][-1][i:i + 1].expand(n, -1, -1, -1)
            out = ViewSAM.track_frame(shim, i, STREAM_FRAMES, feats, pos, c.boxes[:, i],
                                      prompted[:, i], None, bank, init=i == 0)
            high = torch.nn.functional.interpolate(out["masks"], size=(64, 64),
                                                   mode="bilinear", align_corners=False)
            torch.testing.assert_close(scores[:, i], out["scores"].float())
            assert torch.equal(masks[:, i], (high[:, 0] > 0) & (out["scores"] > 0)[:, None, None])


def test_evaluate_base_memory_and_box_modes_are_bounded():
    torch.manual_seed(0)
    sam2 = load_base(None, 64)
    pool = ScenePool([_toy_scene()])
    cfg = PretrainConfig(image_size=64, clip_frames=4, steps=1)
    clips = [pool.sample(np.random.default_rng(0), 2, cfg, train=False)]
    ev = evaluate_base(sam2, clips)
    assert ev["clips"] == 2 and sam2.training  # back in its previous mode
    assert 0 <= ev["memory_iou"] <= 1 and 0 <= ev["box_iou"] <= 1
    assert ev["memory_iou_per_frame"][0] is None and len(ev["box_iou_per_frame"]) == 4
    assert isinstance(clips[0], Clips)


def test_command_builds_the_config_and_refuses_missing_cuda(monkeypatch):
    import argparse

    from raysys.commands import pretrain_base as cmd

    p = argparse.ArgumentParser()
    cmd.add_arguments(p)
    args = p.parse_args(["--out", "x", "--batch", "4", "--minutes", "1.5", "--seed", "7",
                         "--init", "none", "--image-size", "128"])
    cfg = cmd.config_from_args(args)
    assert (cfg.batch, cfg.minutes, cfg.steps, cfg.seed, cfg.eval_seed, cfg.init,
            cfg.image_size) == (4, 1.5, None, 7, 8, None, 128)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        cmd.resolve_device("cuda")
    assert cmd.resolve_device("cpu").type == "cpu"


@pytest.mark.parametrize("alias,size", [("embedded", 128), ("embedded-256", 256)])
def test_shipped_bases_load_with_their_model_card(alias, size):
    from importlib import resources

    from raysys.viewsam.base import (
        EMBEDDED_SAM2_FILES,
        build_sam2_base,
        resolve_sam2_checkpoint,
        sam2_yaml_text,
    )

    path = resolve_sam2_checkpoint(alias)
    assert path.name == EMBEDDED_SAM2_FILES[alias]
    saved = torch.load(path, map_location="cpu", weights_only=True)
    assert int(saved["yaml"].split("image_size:")[1].split()[0]) == size
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "sam2.yaml"
        cfg.write_text(sam2_yaml_text(None, size))
        sam2 = build_sam2_base(cfg, alias)  # strict: every key of the tiny config
    assert sum(p.numel() for p in sam2.parameters()) == 3_467_170
    card = resources.files("raysys.viewsam") / "weights" / path.with_suffix(".md").name
    assert "## Reproduce" in card.read_text()  # every shipped weight file has its card
