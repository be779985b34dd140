"""ViewSAM components one by one: shapes, gradients and small hand-worked cases (tiny dims)."""

import math

import pytest
import torch
import torch.nn.functional as F

from raysys.viewsam.bar import BARConfig, BiasAwareRecalibration, bias_labels
from raysys.viewsam.candidate_generator import (
    CandidateGenerator,
    CandidateGeneratorConfig,
    candidate_losses,
    dense_targets,
    pairwise_iou,
)
from raysys.viewsam.cgct import CGCT, CGCTConfig, masked_average_pool
from raysys.viewsam.prompts import _referred_slots, masks_to_boxes
from raysys.viewsam.vc_cma import VCCMA, VCCMAConfig
from raysys.viewsam.view_token import ViewToken


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _grads(module):
    return {n: p.grad for n, p in module.named_parameters()}


# ---------------------------------------------------------------- view token (Eq. 3-4)
# (values by hand: tests/viewsam/test_equations_vc.py)
def test_view_token_shapes_state_and_grads():
    vt = ViewToken(in_dim=2, dim=4, num_views=3, dynamic_weight=1.0, decay=0.5)
    pooled = torch.randn(1, 2, 3, 2)  # (B=1, V=2, T=3, C=2)
    tokens, state = vt(pooled, torch.tensor([[2, 0]]))
    assert tokens.shape == (1, 2, 3, 4) and state.shape == (1, 2, 4)
    assert torch.equal(state, tokens[:, :, -1]), "the state is the last frame's token e_T"
    _, state2 = vt(pooled[:, :, 1:], torch.tensor([[2, 0]]), state=state)
    assert not torch.allclose(state2, state)
    (tokens ** 2).sum().backward()
    assert all(g is not None for g in _grads(vt).values())
    with pytest.raises(ValueError, match="num_views"):
        vt(pooled, torch.tensor([[3, 0]]))


# ---------------------------------------------------------------- VC-CMA (Eq. 5-7)
@pytest.mark.parametrize("view_conditioned", [True, False])
def test_vc_cma_shapes_identity_at_init_and_grads(view_conditioned):
    cfg = VCCMAConfig(stages=(1, 2), num_heads=2)
    chans = (4, 8, 16, 32)
    m = VCCMA(text_dim=12, stage_channels=chans, cfg=cfg, width=8,
              view_conditioned=view_conditioned)
    b, v, t, length = 1, 2, 3, 5
    text = torch.randn(b, length, 12).repeat_interleave(v, 0)  # T_text (B*V, L, D_t)
    mask = torch.ones(b * v, length, dtype=torch.bool)
    mask[:, -1] = False  # one padding token
    x = torch.randn(b * v * t, 4, 4, 8)  # stage 1 output, Hiera layout
    view = torch.randn(b * v * t, 8) if view_conditioned else None
    y, text2 = m(1, x, text, mask, view, t)
    assert y.shape == x.shape and text2.shape == text.shape
    assert torch.equal(y, x), "zero-initialised W_v↑: an untrained adapter is the identity"
    assert torch.equal(text2, text), "zero-initialised W_t↑: T_ca = T_text at start"
    with torch.no_grad():
        m.adapters["1"].up.weight.normal_(std=0.1)
        m.adapters["1"].text_up.weight.normal_(std=0.1)
    y, text2 = m(1, x, text, mask, view, t)
    assert not torch.allclose(y, x) and not torch.allclose(text2, text)
    ((y ** 2).sum() + (text2 ** 2).sum()).backward()
    grads = _grads(m.adapters["1"])
    assert grads["down.1.weight"].abs().sum() > 0 and grads["visual_attn.attn.in_proj_weight"] \
        .abs().sum() > 0
    assert grads["text_down.1.weight"].abs().sum() > 0 and \
        grads["text_attn.attn.in_proj_weight"].abs().sum() > 0
    if view_conditioned:
        assert grads["visual_attn.q_view.weight"].abs().sum() > 0
        assert grads["text_attn.k_view.weight"].abs().sum() > 0
        y2, _ = m(1, x, text, mask, view + 1.0, t)
        assert not torch.allclose(y, y2), "the view token conditions the attention"


def test_vc_cma_view_conditioning_adds_parameters():
    cfg = VCCMAConfig(stages=(0,), num_heads=2)
    n = [sum(p.numel() for p in VCCMA(6, (4, 8), cfg, 8, vc).parameters()) for vc in (True, False)]
    # per attention block: W_u, W_r (8x8, no bias) = 128; two blocks (visual, text) = 256
    assert n[0] - n[1] == 256


# ---------------------------------------------------------------- Candidate Generator
def test_pairwise_iou_hand_worked():
    # [0,0,2,2] vs [1,1,3,3]: intersection 1, union 4 + 4 - 1 = 7
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0]])
    assert pairwise_iou(a, b)[0].tolist() == pytest.approx([1 / 7, 1.0])


def test_dense_targets_hand_worked():
    # 4x4 grid, stride 16; box [16, 16, 48, 48]: centre (32, 32) = cell (2, 2) exactly,
    # offset (0, 0), size 32 px = 2 cells -> log 2 each; flat cell index 2 * 4 + 2 = 10.
    # Cell centres lie at 8, 24, 40, 56 px; 24 and 40 fall inside [16, 48] -> 4 cells inside.
    # Centerness at the cell centred on (40, 40): left 24, right 8 -> 8/24 = 1/3, same
    # vertically -> sqrt(1/3 * 1/3) = 1/3.
    boxes = torch.tensor([[[16.0, 16.0, 48.0, 48.0], [0.0, 0.0, 0.0, 0.0]]])
    valid = torch.tensor([[True, False]])
    tg = dense_targets(boxes, valid, 4, 4, stride=16)
    assert tg["cell"][0, 0] == 10
    assert tg["offset"][0, 0].tolist() == [0.0, 0.0]
    assert tg["size"][0, 0].tolist() == pytest.approx([math.log(2)] * 2)
    assert tg["heat"][0, 0, 2, 2] == 1.0 and tg["heat"].max() == 1.0
    assert int(tg["inside"].sum()) == 4
    assert float(tg["ctr"][0, 0, 2, 2]) == pytest.approx(1 / 3)


def test_candidate_generator_shapes_losses_and_grads():
    cfg = CandidateGeneratorConfig(num_convs=2, roi_size=3, num_proposals=5)
    cg = CandidateGenerator(in_dim=16, text_dim=12, cfg=cfg, width=16, hidden=32)
    feat = torch.randn(2, 16, 8, 8)  # 2 frames, stride 16 -> 128 px
    out = cg(feat, torch.randn(2, 12), stride=16)
    assert out.heatmap.shape == (2, 1, 8, 8) and out.size.shape == (2, 2, 8, 8)
    assert out.boxes.shape == (2, 5, 4) and out.refer_logits.shape == (2, 5)
    assert float(out.boxes.min()) >= 0 and float(out.boxes.max()) <= 128
    assert not out.boxes.requires_grad and out.refer_logits.requires_grad
    boxes = torch.tensor([[[10.0, 20.0, 50.0, 90.0], [60.0, 60.0, 100.0, 120.0]]]).expand(2, 2, 4)
    valid = torch.tensor([[True, True], [True, False]])
    referred = torch.tensor([[True, False], [True, False]])
    ls = candidate_losses(out, boxes, valid, referred, 16, cfg)
    assert set(ls) == {"cg_heatmap", "cg_centerness", "cg_box", "cg_match", "cg_rank"}
    assert all(torch.isfinite(v) for v in ls.values())
    sum(ls.values()).backward()
    for name in ("tower.0.weight", "heat_head.weight", "ctr_head.weight", "size_head.weight",
                 "offset_head.weight", "roi_head.1.weight", "text_proj.0.weight",
                 "match_head.0.weight"):
        assert dict(cg.named_parameters())[name].grad.abs().sum() > 0, name



def test_dense_branch_learns_every_labelled_object_not_only_the_m():
    # One frame, two people; the sample's M holds only the first (the second was left out
    # of the M). With dense targets the second person's centre cell is a positive of the
    # heat-map loss: its gradient pushes that cell's logit up; without, it is background
    # and pushed down. The matching branch still sees only the M.
    cfg = CandidateGeneratorConfig(num_convs=1, roi_size=3, num_proposals=4)
    cg = CandidateGenerator(in_dim=8, text_dim=4, cfg=cfg, width=8, hidden=8)
    m_boxes = torch.tensor([[[16.0, 16.0, 48.0, 48.0]]])
    m_valid, referred = torch.tensor([[True]]), torch.tensor([[True]])
    dense = torch.tensor([[[16.0, 16.0, 48.0, 48.0], [80.0, 80.0, 112.0, 112.0]]])
    dense_valid = torch.tensor([[True, True]])
    grads = {}
    for name, extra in (("m_only", ()), ("dense", (dense, dense_valid))):
        out = cg(torch.randn(1, 8, 8, 8, generator=torch.Generator().manual_seed(1)),
                 torch.randn(1, 4), stride=16)
        out.heatmap.retain_grad()
        ls = candidate_losses(out, m_boxes, m_valid, referred, 16, cfg, *extra)
        ls["cg_heatmap"].backward()
        grads[name] = out.heatmap.grad[0, 0, 6, 6]  # centre cell of the second person
        if name == "dense":
            tg = dense_targets(dense, dense_valid, 8, 8, 16)
            assert tg["heat"][0, 0, 6, 6] == 1.0
            assert torch.isfinite(ls["cg_box"]) and ls["cg_box"] > 0
    assert grads["m_only"] > 0 > grads["dense"], grads  # descent: m_only lowers the logit


def test_matching_branch_also_learns_from_the_teacher_boxes():
    # The proposals of a fresh CG rarely reach IoU 0.5 with a referred box; scoring the
    # teacher's boxes as well gives the matching branch a positive (the referred box, IoU 1
    # with itself) and a negative (the other person, IoU 0 with it) on every frame.
    cfg = CandidateGeneratorConfig(num_convs=1, roi_size=3, num_proposals=4)
    cg = CandidateGenerator(in_dim=8, text_dim=4, cfg=cfg, width=8, hidden=8)
    out = cg(torch.randn(1, 8, 8, 8), torch.randn(1, 4), stride=16)
    assert out.stride == 16 and out.features.shape == (1, 8, 8, 8)
    boxes = torch.tensor([[[16.0, 16.0, 48.0, 48.0], [80.0, 80.0, 112.0, 112.0]]])
    valid, referred = torch.tensor([[True, True]]), torch.tensor([[True, False]])
    tl = cg.match_boxes(out, boxes)
    assert tl.shape == (1, 2) and tl.requires_grad
    # the proposals' own logits, recomputed by match_boxes on the same boxes, are the same
    assert torch.allclose(cg.match_boxes(out, out.boxes), out.refer_logits, atol=1e-6)
    right = torch.tensor([[8.0, -8.0]])  # referred high, the other low
    losses = {name: candidate_losses(out, boxes, valid, referred, 16, cfg, teacher_logits=x)
              for name, x in (("right", right), ("wrong", -right), ("none", None))}
    assert losses["right"]["cg_match"] < losses["wrong"]["cg_match"]
    assert losses["right"]["cg_rank"] <= losses["wrong"]["cg_rank"]
    assert losses["wrong"]["cg_rank"] > 0
    ls = candidate_losses(out, boxes, valid, referred, 16, cfg, teacher_logits=tl)
    cg.zero_grad()
    ls["cg_match"].backward()
    assert cg.match_head[0].weight.grad.abs().sum() > 0



def test_pixel_rois_let_the_matching_branch_see_colours_inside_the_box():
    # pixel_roi: the matching branch pools the model input's own pixels inside each box.
    # Two identical encoder feature maps, frames that differ only inside the box: the
    # referring logit of that box differs, that of a box elsewhere does not; trained on
    # that difference alone, it separates the red person from the blue one.
    cfg = CandidateGeneratorConfig(num_convs=1, roi_size=3, num_proposals=4, pixel_roi=4)
    torch.manual_seed(0)
    cg = CandidateGenerator(in_dim=8, text_dim=4, cfg=cfg, width=8, hidden=16)
    feat = torch.randn(1, 8, 8, 8).expand(2, 8, 8, 8)
    text = torch.randn(1, 4).expand(2, 4)
    pix = torch.zeros(2, 3, 128, 128)
    pix[0, 0, 16:48, 16:32] = 2.0  # frame 0: red inside box A
    pix[1, 2, 16:48, 16:32] = 2.0  # frame 1: blue inside box A
    boxes = torch.tensor([[16.0, 16.0, 32.0, 48.0], [80.0, 80.0, 96.0, 112.0]]).expand(2, 2, 4)
    with pytest.raises(ValueError, match="pixel_roi needs the frames"):
        cg(feat, text, stride=16)
    out = cg(feat, text, stride=16, pixels=pix)
    logits = cg.match_boxes(out, boxes)
    assert not torch.allclose(logits[0, 0], logits[1, 0])  # box A sees the colour
    assert torch.allclose(logits[0, 1], logits[1, 1])  # box B: same pixels, same logit
    opt = torch.optim.Adam(cg.parameters(), lr=1e-2)
    target = torch.tensor([1.0, 0.0])  # "a person in red": frame 0's box A, not frame 1's
    for _ in range(30):
        out = cg(feat, text, stride=16, pixels=pix)
        loss = F.binary_cross_entropy_with_logits(cg.match_boxes(out, boxes)[:, 0], target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        final = cg.match_boxes(cg(feat, text, stride=16, pixels=pix), boxes)[:, 0]
    assert final[0] > 0 > final[1], final


# ---------------------------------------------------------------- BAR (Eq. 8-9, 21-22)
def test_bias_labels_hand_worked():
    # masks (logit > 0): mem [1,1,0,0], free [0,1,1,0] share pixel 1 -> not disjoint (0),
    # although IoU is 1/3; mem [1,0,0,0], free [0,0,1,1] -> disjoint (1); both empty -> 1
    mem = torch.tensor([[1.0, 1.0, -1.0, -1.0], [1.0, -1.0, -1.0, -1.0], [-1.0] * 4])
    free = torch.tensor([[-1.0, 1.0, 1.0, -1.0], [-1.0, -1.0, 1.0, 1.0], [-1.0] * 4])
    assert bias_labels(mem, free).tolist() == [0.0, 1.0, 1.0]


def test_bar_fuses_by_p_bias_and_trains():
    bar = BiasAwareRecalibration(16, BARConfig(num_layers=1, num_heads=2), text_dim=8)
    fm, ff = torch.randn(3, 16, 2, 2), torch.randn(3, 16, 2, 2)
    mm, mf = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    text = torch.randn(1, 8).expand(3, 8)
    out = bar(fm, ff, mm, mf, text, torch.tensor([0, 0, 1]))
    assert out.p_bias.shape == (3,) and out.mask_logits.shape == (3, 1, 4, 4)
    assert torch.allclose(out.p_bias[0], out.p_bias[1])  # one p_bias per frame (Eq. 9)
    p = out.p_bias[:, None, None, None]
    assert torch.allclose(out.mask_logits, (1 - p) * mm + p * mf)  # Eq. 9
    assert torch.allclose(out.p_bias, out.bias_logit.sigmoid())
    torch.nn.functional.binary_cross_entropy_with_logits(
        out.bias_logit, bias_labels(mm, mf)).backward()
    assert bar.bia.grad.abs().sum() > 0 and bar.head[-1].weight.grad.abs().sum() > 0
    assert bar.text_proj.weight.grad.abs().sum() > 0  # t_R takes part


# ---------------------------------------------------------------- CGCT (Eq. 10-12)
def test_masked_average_pool_hand_worked():
    # features [[1, 2], [3, 4]] under mask [[1, 0], [0, 1]] -> (1 + 4) / 2 = 2.5
    feat = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    assert float(masked_average_pool(feat, mask)) == pytest.approx(2.5, abs=1e-5)
    # a 4x4 mask is area-resized to 2x2 first: top-left quadrant full -> 1 / 1 = 1.0
    big = torch.zeros(1, 1, 4, 4)
    big[..., :2, :2] = 1.0
    assert float(masked_average_pool(feat, big)) == pytest.approx(1.0, abs=1e-5)


def test_cgct_shapes_film_and_grads():
    chans = (4, 8, 16, 32)
    stages = [torch.randn(2, c, 16 // 2 ** i, 16 // 2 ** i) for i, c in enumerate(chans)]
    masks = torch.rand(2, 3, 16, 16)
    view = torch.randn(2, 8)
    cfg = CGCTConfig(stages=(0, 2, 3))
    plain = CGCT(chans, 0, cfg, dim=8, hidden=16, film_strength=0.5)
    film = CGCT(chans, 8, cfg, dim=8, hidden=16, film_strength=0.5)
    film.load_state_dict(plain.state_dict(), strict=False)
    e0, e1 = plain(stages, masks), film(stages, masks, view)
    assert e0.shape == (2, 3, 8)
    assert torch.allclose(e0.norm(dim=-1), torch.ones(2, 3))  # Eq. 10-11 end in a Norm
    assert torch.allclose(e0, e1, atol=1e-6), "zero-initialised FiLM starts as the identity"
    (e1[:, 0] * e1[:, 1]).sum().backward()
    # the zero last layer gets the gradient first (the layer before it, once that moves)
    assert film.film[-1].weight.grad.abs().sum() > 0 and film.fuse[1].weight.grad.abs().sum() > 0
    assert sum(p.numel() for p in film.parameters()) - sum(
        p.numel() for p in plain.parameters()) == (8 * 8 + 8) + (8 * 16 + 16)  # FiLM MLP


# ---------------------------------------------------------------- prompts
def test_masks_to_boxes_hand_worked():
    # 4x4 low-res mask, foreground rows 1-2, cols 0-1 -> [0, 1, 2, 3] cells of 1/4 of a
    # 16 px model image -> [0, 4, 8, 12]; an empty mask gives zeros
    m = torch.full((2, 1, 4, 4), -1.0)
    m[0, 0, 1:3, 0:2] = 1.0
    assert masks_to_boxes(m, 16).tolist() == [[0.0, 4.0, 8.0, 12.0], [0.0] * 4]


def test_referred_slots_hand_worked():
    referred = torch.tensor([[False, True, True], [True, False, False]])
    ids = torch.tensor([[5, 6, 7], [8, 9, -1]])
    index, valid, slot_ids = _referred_slots(referred, ids)
    assert index.tolist() == [[1, 2], [0, 0]]
    assert valid.tolist() == [[True, True], [True, False]]
    assert slot_ids.tolist() == [[6, 7], [8, -1]]
