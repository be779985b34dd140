"""The whole tiny ViewSAM (embedded SAM2 + MiniLM) on a CPU clip: B=1, V=2, T=2, 64x64."""

import dataclasses

import pytest
import torch

from raysys.viewsam import ClipTargets, ViewSAMConfig, build_viewsam, parameter_report
from raysys.viewsam.base import build_sam2_base
from raysys.viewsam.text_encoder import build_text_encoder

B, V, T, H, W = 1, 2, 2, 64, 64


@pytest.fixture(scope="module")
def text_encoder():
    return build_text_encoder("minilm")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A SAM2 checkpoint of the tiny config (random weights), to get a frozen base."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("sam2") / "tiny.pt"
    torch.save({"model": build_sam2_base().state_dict()}, path)
    return path


def _clip():
    g = torch.Generator().manual_seed(1)
    frames = torch.rand(B, V, T, 3, H, W, generator=g)
    # three objects; the expression refers to the first two (global ids 3 and 7)
    boxes = torch.tensor([[8.0, 8.0, 28.0, 56.0], [34.0, 4.0, 60.0, 40.0], [2.0, 40.0, 20.0, 62.0]])
    boxes = boxes.expand(B, V, T, 3, 4).clone()
    boxes[:, 1] += 2.0  # the second view sees everything slightly shifted
    visible = torch.ones(B, V, T, 3, dtype=torch.bool)
    visible[0, 1, 1, 1] = False  # object 7 leaves view 1 in frame 1
    masks = torch.zeros(B, V, T, 3, H, W)
    for m in range(3):
        x0, y0, x1, y1 = boxes[0, 0, 0, m].int().tolist()
        masks[..., m, y0:y1, x0:x1] = 1.0
    masks = masks * visible[..., None, None]
    targets = ClipTargets(boxes=boxes, visible=visible, ids=torch.tensor([[3, 7, 9]]),
                          referred=torch.tensor([[True, True, False]]), masks=masks)
    return frames, targets


def test_forward_backward_frozen_base(text_encoder, tiny_checkpoint):
    torch.manual_seed(0)
    model = build_viewsam(sam2_checkpoint=tiny_checkpoint, text_encoder=text_encoder)
    model.train()
    assert model.cgct.training and not model.sam2.training, "a frozen base stays in eval"
    for adapter in model.vc_cma.adapters.values():  # as after a first step: W_up != 0, so
        torch.nn.init.normal_(adapter.up.weight, std=1e-3)  # gradients reach the view token
    frames, targets = _clip()
    text = model.tokenize(["a person in a red coat"])
    out = model(frames, text, targets)
    o = 2  # the referred objects are the slots
    assert out.mask_logits.shape == (B, V, T, o, H, W)
    assert out.embeddings.shape[:4] == (B, V, T, o)
    assert torch.allclose(out.embeddings.norm(dim=-1), torch.ones(B, V, T, o), atol=1e-5)
    k = model.cfg.candidate_generator.num_proposals
    assert out.boxes.shape == (B, V, T, k, 4) and out.refer_logits.shape == (B, V, T, k)
    assert out.slot_ids.tolist() == [[3, 7]]
    assert (out.p_bias[:, :, 0] == 0).all(), "no memory yet on frame 0: nothing to recalibrate"
    assert ((out.p_bias[:, :, 1] > 0) & (out.p_bias[:, :, 1] < 1)).all()
    assert out.prompted[0, 1, 1].tolist() == [True, False], "object 7 is not in view 1, frame 1"
    assert out.view_tokens.shape == (B, V, T, model.vc_cma.width)
    losses = model.losses(out, targets)
    assert set(losses) == {"mask", "cg_heatmap", "cg_centerness", "cg_box", "cg_match", "cg_rank",
                           "bar", "consistency_intra", "consistency_inter", "total"}
    assert all(torch.isfinite(v) for v in losses.values())
    losses["total"].backward()
    assert all(p.grad is None for p in model.sam2.parameters()), "SAM2 is frozen"
    assert all(p.grad is None for p in model.text_encoder.parameters()), "text is frozen"
    for name in ("vc_cma", "view_token", "candidate_generator", "bar", "cgct"):
        params = list(getattr(model, name).named_parameters())
        assert all(p.requires_grad and p.grad is not None for _, p in params), name
        assert any(p.grad.abs().sum() > 0 for _, p in params), name
    rep = parameter_report(model)
    assert rep["trainable"] == sum(rep["modules"].values())


def test_default_base_is_trainable_and_forward_is_training_only(text_encoder, micro_sam2):
    torch.manual_seed(0)
    model = build_viewsam(ViewSAMConfig(), sam2_config=micro_sam2, text_encoder=text_encoder)
    assert all(p.requires_grad for p in model.sam2.parameters()), "no checkpoint: base trains"
    assert not any(p.requires_grad for p in model.text_encoder.parameters())
    frames, _ = _clip()
    # one inference path: the tracker (raysys.tracking), never a target-less forward
    with pytest.raises(ValueError, match="ViewSAMTracker"):
        model(frames, model.tokenize(["a person"]))


ABLATIONS = ["use_vc_cma", "use_candidate_generator", "use_bar", "use_cgct", "use_vcca",
             "use_view_modulation", "use_consistency_loss"]


@pytest.fixture(scope="module")
def full_report(text_encoder, micro_sam2):
    return parameter_report(build_viewsam(sam2_config=micro_sam2, text_encoder=text_encoder))


@pytest.mark.parametrize("switch", ABLATIONS)
def test_ablation_switch_builds_runs_and_changes(switch, text_encoder, micro_sam2, full_report):
    torch.manual_seed(0)
    model = build_viewsam(dataclasses.replace(ViewSAMConfig(), **{switch: False}),
                          sam2_config=micro_sam2, text_encoder=text_encoder)
    frames, targets = _clip()
    with torch.no_grad():
        out = model(frames, model.tokenize(["a person in a red coat"]), targets)
        losses = model.losses(out, targets)
    assert out.mask_logits.shape == (B, V, T, 2, H, W) and torch.isfinite(losses["total"])
    mods, full = parameter_report(model)["modules"], full_report["modules"]
    if switch == "use_vc_cma":  # text becomes a sparse prompt; the view token stays for FiLM
        assert model.vc_cma is None and model.text_prompt is not None
        assert 0 < mods["vc_cma"] < full["vc_cma"]
    elif switch == "use_candidate_generator":
        assert mods["candidate_generator"] == 0 and out.boxes.shape[3] == 0
        assert not any(k.startswith("cg_") for k in losses)
        assert not out.prompted[:, :, 1].any(), "without CG only frame 0 gets a (teacher) box"
    elif switch == "use_bar":
        assert mods["bar"] == 0 and "bar" not in losses and (out.p_bias == 0).all()
    elif switch == "use_cgct":
        assert mods["cgct"] == 0 and out.embeddings is None
        assert "consistency_intra" not in losses
    elif switch == "use_vcca":  # plain cross attention: no view projections / gates
        assert not model.vc_cma.view_conditioned and mods["vc_cma"] < full["vc_cma"]
    elif switch == "use_view_modulation":
        assert model.cgct.film is None and mods["cgct"] < full["cgct"]
    elif switch == "use_consistency_loss":
        assert mods == full and out.embeddings is not None
        assert "consistency_intra" not in losses and "consistency_inter" not in losses
    if switch not in ("use_consistency_loss",):
        assert mods != full


def test_teacher_prompts_are_the_teacher_boxes(text_encoder, micro_sam2):
    cfg = dataclasses.replace(ViewSAMConfig(), prompt_source="teacher", use_bar=False,
                              use_cgct=False)
    model = build_viewsam(cfg, sam2_config=micro_sam2, text_encoder=text_encoder).eval()
    frames, targets = _clip()
    with torch.no_grad():
        out = model(frames, model.tokenize(["a person"]), targets)
    sel = out.prompted  # (B, V, T, O)
    assert torch.allclose(out.prompt_boxes[sel], targets.boxes[:, :, :, :2][sel], atol=1e-4)


def test_input_errors_say_how_to_fix(text_encoder, micro_sam2):
    model = build_viewsam(sam2_config=micro_sam2, text_encoder=text_encoder)
    frames, targets = _clip()
    text = model.tokenize(["a person"])
    with pytest.raises(ValueError, match="B, V, T, 3, H, W"):
        model(frames[0], text, targets)
    with pytest.raises(ValueError, match="one expression per sample"):
        model(frames, model.tokenize(["a", "b"]), targets)
    bad = dataclasses.replace(targets, ids=targets.ids[:, :2])
    with pytest.raises(ValueError, match="targets.ids"):
        model(frames, text, bad)
    with pytest.raises(ValueError, match="num_views"):
        model(frames, text, targets, view_ids=torch.tensor([[0, 8]]))
    with pytest.raises(FileNotFoundError, match="valid names"):
        build_viewsam(sam2_config="no_such_config", text_encoder=text_encoder)
    with pytest.raises(ValueError, match="prompt_source"):
        ViewSAMConfig(prompt_source="oracle")
