"""The embedded SAM2 base: export to a SAM2 .pt (from a SAM2 model or a ViewSAM checkpoint),
loading by alias; and the Candidate Generator's fine (stride-8) grid. The pre-training loop
itself: tests/test_pretrain_base.py."""

import dataclasses

import pytest
import torch

from raysys.config import to_dict
from raysys.training.config import quick_config
from raysys.training.model import build_model
from raysys.training.pretrain_base import PRETRAIN_SEED, export_base, load_base
from raysys.viewsam.base import build_sam2_base, resolve_sam2_checkpoint, sam2_yaml_text
from raysys.viewsam.checkpoint import model_state, write_checkpoint


def test_every_shipped_weights_seeds_are_disjoint_from_each_other_and_the_scored_ones():
    from raysys.backends.attribute_net import PRETRAIN_SEEDS as describer
    from raysys.backends.classical.person_net import PRETRAIN_SEEDS as detector
    from raysys.backends.pretrain_reid import PRETRAIN_SEEDS as reid
    from raysys.commands.pretrain_reid import HELDOUT_SEED as reid_heldout
    from raysys.training.pretrain_matcher import HELDOUT_SEED, PRETRAIN_SEEDS

    assert PRETRAIN_SEED == 1000
    scored = {0, 11, 23} | set(range(5)) | set(range(10, 14))
    groups = [{PRETRAIN_SEED, PRETRAIN_SEED + 1}, set(detector), set(describer),
              set(reid) | {reid_heldout}, set(PRETRAIN_SEEDS) | {HELDOUT_SEED}]
    assert len(PRETRAIN_SEEDS) == 24 and HELDOUT_SEED not in PRETRAIN_SEEDS
    for i, g in enumerate(groups):
        assert not g & scored, g & scored
        for h in groups[i + 1:]:
            assert not g & h, g & h


def test_export_base_round_trips_a_sam2_model(tmp_path):
    torch.manual_seed(0)
    sam2 = load_base(None, 64)
    pt = export_base(sam2, tmp_path / "base.pt", steps=3)
    payload = torch.load(pt, map_location="cpu", weights_only=True)
    assert payload["steps"] == 3 and "image_size: 64" in payload["yaml"]
    back = load_base(pt)  # the YAML travels with the weights
    assert back.image_size == 64
    for (k, a), b in zip(sam2.state_dict().items(), back.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-3, rtol=1e-3), k
    assert load_base(pt, image_size=128).image_size == 128  # resized, same weights


def test_export_base_round_trips_a_viewsam_checkpoint(tmp_path):
    torch.manual_seed(0)
    cfg = quick_config(image_size=64, sam2_image_size=64, sam2_checkpoint=None)
    yaml = sam2_yaml_text(None, 64)
    model = build_model(cfg, yaml)
    with torch.no_grad():
        for p in model.sam2.parameters():
            p.add_(0.01 * torch.randn_like(p))
    write_checkpoint(tmp_path / "ck", {"model": model_state(model), "config": to_dict(cfg),
                                       "build_spec": model.build_spec, "epoch": 3})
    pt = export_base(tmp_path / "ck", tmp_path / "base.pt")
    (tmp_path / "sam2.yaml").write_text(yaml)
    base = build_sam2_base(tmp_path / "sam2.yaml", pt)
    for (k, a), b in zip(model.sam2.state_dict().items(), base.state_dict().values(),
                         strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-3, rtol=1e-3), k
    assert pt.stat().st_size < 0.6 * sum(v.numel() * 4 for v in base.state_dict().values())


def test_export_refuses_a_checkpoint_without_sam2(tmp_path):
    write_checkpoint(tmp_path / "ck", {"model": {"x": torch.zeros(1)}, "config": {},
                                       "build_spec": {}})
    with pytest.raises(ValueError, match="no SAM2 weights"):
        export_base(tmp_path / "ck", tmp_path / "b.pt")


def test_sam2_checkpoint_errors_name_the_file(tmp_path):
    assert resolve_sam2_checkpoint(None) is None
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        resolve_sam2_checkpoint(tmp_path / "nope.pt")
    try:
        path = resolve_sam2_checkpoint("embedded")
    except FileNotFoundError as e:  # an install without the weights: the message says how
        assert "raysys pretrain-base" in str(e)
    else:
        assert path.is_file() and path.name.endswith(".pt")


def test_fine_candidate_generator_doubles_the_grid():
    from raysys.training.config import quick_config
    from raysys.viewsam.config import ViewSAMConfig

    mc = ViewSAMConfig()
    fine = dataclasses.replace(mc, candidate_generator=dataclasses.replace(
        mc.candidate_generator, fine=True))
    torch.manual_seed(0)
    frames = torch.rand(1, 2, 2, 3, 64, 64)
    outs = {}
    for name, m in (("coarse", mc), ("fine", fine)):
        cfg = quick_config(image_size=64, sam2_image_size=64, model=m)
        model = build_model(cfg, sam2_yaml_text(None, 64)).eval()
        with torch.no_grad():
            outs[name] = model.encode_clip(frames, model.tokenize(["a person"]))
        assert model.candidate_generator.stride(16) == (8 if name == "fine" else 16)
    hc, hf = outs["coarse"].cand.heatmap.shape[-1], outs["fine"].cand.heatmap.shape[-1]
    assert hf == 2 * hc == 8


def test_fine_candidate_generator_trains():
    from raysys.training.config import quick_config
    from raysys.viewsam.config import ViewSAMConfig
    from raysys.viewsam.data import ClipTargets

    mc = ViewSAMConfig()
    fine = dataclasses.replace(mc, candidate_generator=dataclasses.replace(
        mc.candidate_generator, fine=True))
    torch.manual_seed(0)
    model = build_model(quick_config(image_size=64, sam2_image_size=64, model=fine),
                        sam2_yaml_text(None, 64))
    boxes = torch.tensor([[4.0, 8.0, 14.0, 40.0], [30.0, 10.0, 40.0, 50.0]])
    tg = ClipTargets(boxes=boxes.expand(1, 2, 2, 2, 4).clone(),
                     visible=torch.ones(1, 2, 2, 2, dtype=torch.bool),
                     ids=torch.tensor([[1, 2]]), referred=torch.tensor([[True, False]]))
    frames = torch.rand(1, 2, 2, 3, 64, 64)
    out = model(frames, model.tokenize(["a person"]), tg)
    losses = model.losses(out, tg)
    assert torch.isfinite(losses["total"]) and losses["cg_heatmap"] > 0
    losses["total"].backward()
    assert model.candidate_generator.lateral.weight.grad.abs().sum() > 0
