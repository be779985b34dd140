"""CGCT built upon the attribute net (``CGCTConfig.backbone = "attribute"``): the frozen
reading of each object's crop, fused residually; frozen and outside the state dict; a
training pass reaches the head only. The tracker's crops: ``test_cgct_osnet.py`` (both
backbones)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from raysys.viewsam import ViewSAMConfig, build_viewsam
from raysys.viewsam.cgct import CGCT, CGCTConfig
from raysys.viewsam.text_encoder import build_text_encoder

ATTR = CGCTConfig(backbone="attribute")


def _person(rgb_top, rgb_bottom) -> torch.Tensor:
    """A 40 x 16 figure: a coat over trousers, on grey."""
    p = torch.full((3, 40, 16), 128.0)
    p[:, 4:22, 3:13] = torch.tensor(rgb_top, dtype=torch.float32)[:, None, None]
    p[:, 22:38, 4:12] = torch.tensor(rgb_bottom, dtype=torch.float32)[:, None, None]
    return p


def test_an_untrained_head_is_the_reading_itself_and_follows_the_object(two_places):
    """At init the embedding is the square root of the net's probabilities (unit norm: the
    heads' count is folded in by the normalisation); the same figure at two places gives the
    same embedding, another figure another one; the net is not in the state dict."""
    from raysys.viewsam.attribute_roi import AttributeBackbone

    torch.manual_seed(0)
    cgct = CGCT((0,), 0, ATTR, dim=32, hidden=64, film_strength=0.5).eval()
    assert isinstance(cgct.backbone, AttributeBackbone) and cgct.dim == cgct.backbone.channels[0]
    assert all(k.startswith("fuse.") for k in cgct.state_dict())
    red, blue = _person((220, 30, 30), (20, 20, 20)), _person((30, 30, 220), (240, 240, 240))
    crops, boxes = two_places(red, blue, 128.0)
    with torch.no_grad():
        z = cgct([], torch.ones(2, 2, 90, 160), None, crops, boxes)
        reading = cgct.backbone(crops.flatten(0, 1))[0].reshape(2, 2, -1)
    assert z.shape == (2, 2, cgct.dim) and torch.allclose(z.norm(dim=-1), torch.ones(2, 2))
    assert torch.allclose(z, torch.nn.functional.normalize(reading, dim=-1), atol=1e-6)
    same, diff = float(z[0, 0] @ z[1, 0]), float(z[0, 0] @ z[1, 1])
    assert same > 0.999 and diff < 0.9, (same, diff)
    with pytest.raises(ValueError, match="crops and boxes"):
        cgct([], torch.ones(2, 2, 90, 160), None)


def test_a_training_pass_trains_the_head_and_leaves_the_net_frozen(micro_sam2, crop_clip):
    frames, targets = crop_clip
    cfg = dataclasses.replace(ViewSAMConfig(), cgct=ATTR)
    model = build_viewsam(cfg, sam2_config=micro_sam2, text_encoder=build_text_encoder("minilm"))
    model.train()
    net = model.cgct.backbone.net
    before = {k: v.clone() for k, v in net.state_dict().items()}
    out = model(frames, model.tokenize(["a person in a red coat"]), targets)
    model.losses(out, targets)["total"].backward()
    head = [p.grad for p in model.cgct.fuse.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in head)
    assert all(not p.requires_grad for p in net.parameters()) and not net.training
    assert all(torch.equal(before[k], val) for k, val in net.state_dict().items())
    assert not any("backbone" in k for k in model.state_dict() if k.startswith("cgct."))
