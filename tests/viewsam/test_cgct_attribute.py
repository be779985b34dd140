"""CGCT built upon the attribute net (``CGCTConfig.backbone = "attribute"``): the frozen
reading of each object's crop, fused residually; frozen and outside the state dict; a
training pass reaches the head only; the tracker embeds the frames' crops."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from raysys.viewsam import ClipTargets, ViewSAMConfig, build_viewsam
from raysys.viewsam.cgct import CGCT, CGCTConfig
from raysys.viewsam.osnet_backbone import CROP_SIZE, crop_objects
from raysys.viewsam.text_encoder import build_text_encoder

ATTR = CGCTConfig(backbone="attribute")


def _person(rgb_top, rgb_bottom) -> torch.Tensor:
    """A 40 x 16 figure: a coat over trousers, on grey."""
    p = torch.full((3, 40, 16), 128.0)
    p[:, 4:22, 3:13] = torch.tensor(rgb_top, dtype=torch.float32)[:, None, None]
    p[:, 22:38, 4:12] = torch.tensor(rgb_bottom, dtype=torch.float32)[:, None, None]
    return p


def test_an_untrained_head_is_the_reading_itself_and_follows_the_object():
    """At init the embedding is the square root of the net's probabilities (unit norm: the
    heads' count is folded in by the normalisation); the same figure at two places gives the
    same embedding, another figure another one; the net is not in the state dict."""
    from raysys.viewsam.attribute_roi import AttributeBackbone

    torch.manual_seed(0)
    cgct = CGCT((0,), 0, ATTR, dim=32, hidden=64, film_strength=0.5).eval()
    assert isinstance(cgct.backbone, AttributeBackbone) and cgct.dim == cgct.backbone.channels[0]
    assert all(k.startswith("fuse.") for k in cgct.state_dict())
    img = torch.full((2, 3, 90, 160), 128.0)
    red, blue = _person((220, 30, 30), (20, 20, 20)), _person((30, 30, 220), (240, 240, 240))
    img[0, :, 10:50, 20:36] = red
    img[1, :, 45:85, 120:136] = red
    img[1, :, 0:40, 0:16] = blue
    boxes = torch.tensor([[[20.0, 10.0, 36.0, 50.0], [20.0, 10.0, 36.0, 50.0]],
                          [[120.0, 45.0, 136.0, 85.0], [0.0, 0.0, 16.0, 40.0]]])
    crops = crop_objects(img, boxes, CROP_SIZE) / 255.0
    with torch.no_grad():
        z = cgct([], torch.ones(2, 2, 90, 160), None, crops, boxes)
        reading = cgct.backbone(crops.flatten(0, 1))[0].reshape(2, 2, -1)
    assert z.shape == (2, 2, cgct.dim) and torch.allclose(z.norm(dim=-1), torch.ones(2, 2))
    assert torch.allclose(z, torch.nn.functional.normalize(reading, dim=-1), atol=1e-6)
    same, diff = float(z[0, 0] @ z[1, 0]), float(z[0, 0] @ z[1, 1])
    assert same > 0.999 and diff < 0.9, (same, diff)
    with pytest.raises(ValueError, match="crops and boxes"):
        cgct([], torch.ones(2, 2, 90, 160), None)


def test_a_training_pass_trains_the_head_and_leaves_the_net_frozen(micro_sam2):
    torch.manual_seed(0)
    cfg = dataclasses.replace(ViewSAMConfig(), cgct=ATTR)
    model = build_viewsam(cfg, sam2_config=micro_sam2, text_encoder=build_text_encoder("minilm"))
    model.train()
    net = model.cgct.backbone.net
    before = {k: v.clone() for k, v in net.state_dict().items()}
    b, v, t, m, s = 1, 2, 2, 3, 64
    frames = torch.rand(b, v, t, 3, s, s)
    boxes = torch.tensor([[8.0, 8.0, 28.0, 56.0], [34.0, 4.0, 60.0, 40.0],
                          [2.0, 40.0, 20.0, 62.0]]).expand(b, v, t, m, 4).clone()
    crops = torch.randint(0, 255, (b, v, t, m, 3, *CROP_SIZE), dtype=torch.uint8)
    targets = ClipTargets(boxes=boxes, visible=torch.ones(b, v, t, m, dtype=torch.bool),
                          ids=torch.tensor([[3, 7, 9]]),
                          referred=torch.tensor([[True, True, False]]), crops=crops)
    out = model(frames, model.tokenize(["a person in a red coat"]), targets)
    model.losses(out, targets)["total"].backward()
    head = [p.grad for p in model.cgct.fuse.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in head)
    assert all(not p.requires_grad for p in net.parameters()) and not net.training
    assert all(torch.equal(before[k], val) for k, val in net.state_dict().items())
    assert not any("backbone" in k for k in model.state_dict() if k.startswith("cgct."))


def test_the_tracker_gives_ids_from_the_attribute_cgct(always_present):
    from raysys.tracking import ViewSAMTracker
    from raysys.tracking.config import TrackConfig
    from raysys.training.config import StageConfig, quick_config
    from raysys.training.model import build_model
    from raysys.viewsam.base import sam2_yaml_text

    torch.manual_seed(0)
    cfg = quick_config(clip_frames=2, image_size=64, sam2_image_size=64, max_objects=4,
                       max_samples=4, stages=(StageConfig("all", ("cgct",), 1, 1e-3),))
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, cgct=ATTR))
    model = always_present(build_model(cfg, sam2_yaml_text(None, 64)).eval())
    tracker = ViewSAMTracker(model, "a person", 2, TrackConfig(
        clip_frames=2, refer_threshold=0.0, objectness_threshold=0.0, min_refer=0.0))
    rng = np.random.default_rng(0)
    results = []
    for _ in range(4):
        results += tracker.step([rng.integers(0, 255, (48, 80, 3), dtype=np.uint8)
                                 for _ in range(2)])
    protos = tracker.identities.prototypes
    assert protos and all(np.shape(p) == (model.cgct.dim,) for p in protos.values())
    assert {o.global_id for r in results for view in r.views for o in view}
