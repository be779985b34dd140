"""Paper equations of BAR, CGCT and the losses (arXiv 2605.02638, Eq. 8-23), each checked
against a value worked out by hand from the paper's formula on tiny tensors."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from raysys.viewsam import losses as L
from raysys.viewsam.bar import BARConfig, BiasAwareRecalibration, bias_labels, referring_summary
from raysys.viewsam.candidate_generator import (
    CandidateGeneratorConfig,
    CandidateOutput,
    candidate_losses,
)
from raysys.viewsam.cgct import CGCT, CGCTConfig
from raysys.viewsam.config import LossConfig, ViewSAMConfig
from raysys.viewsam.data import ClipTargets, ViewSAMOutput
from raysys.viewsam.objective import compute_losses


def _norm(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def _sig(x):
    return 1 / (1 + math.exp(-x))


# ---------------------------------------------------------------- Eq. 21 (BAR's label)
def test_eq21_disjoint_masks_are_biased_touching_are_not():
    a = torch.full((1, 4, 4), -5.0)
    a[0, :2, :2] = 5.0  # top-left 2x2
    disjoint = torch.full((1, 4, 4), -5.0)
    disjoint[0, 2:, 2:] = 5.0  # bottom-right: no common pixel
    adjacent = torch.full((1, 4, 4), -5.0)
    adjacent[0, :2, 2:] = 5.0  # shares an edge, not a pixel: still disjoint
    touching = torch.full((1, 4, 4), -5.0)
    touching[0, 1:3, 1:3] = 5.0  # shares exactly pixel (1, 1): IoU 1/7 but not disjoint
    empty = torch.full((1, 4, 4), -5.0)
    mem = torch.cat([a, a, a, a])
    free = torch.cat([disjoint, adjacent, touching, empty])
    assert bias_labels(mem, free).tolist() == [1.0, 1.0, 0.0, 1.0]
    # the old IoU < 0.5 rule would have called "touching" (IoU 1/7) biased
    assert bias_labels(a, a).tolist() == [0.0]


# ---------------------------------------------------------------- Eq. 8 (BAR's summary)
def test_eq8_softmax_over_objects_within_a_frame():
    o = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    t_r = torch.tensor([[2.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    groups = torch.tensor([0, 0, 1])  # objects 0, 1 in frame 0; object 2 alone in frame 1
    tau = referring_summary(o, t_r, groups)
    # frame 0: logits <o, t_R> = 2, 0 -> alpha = e^2/(e^2+1), 1/(e^2+1)
    a0 = math.exp(2) / (math.exp(2) + 1)
    want0 = _norm([a0 * 1.0, (1 - a0) * 1.0])
    # frame 1: one object: alpha = 1, tau = Norm(o) = o
    want1 = [0.6, 0.8]
    assert tau[0].tolist() == pytest.approx(want0, abs=1e-6)
    assert tau[1].tolist() == pytest.approx(want0, abs=1e-6)
    assert tau[2].tolist() == pytest.approx(want1, abs=1e-6)


def _bar(p: float) -> BiasAwareRecalibration:
    bar = BiasAwareRecalibration(2, BARConfig(num_layers=1, num_heads=1), text_dim=2)
    with torch.no_grad():
        bar.head[-1].weight.zero_()
        bar.head[-1].bias.fill_(math.log(p / (1 - p)))  # phi's output = logit(p)
    return bar


def test_eq9_fusion_with_a_fixed_p():
    bar = _bar(0.3)
    feat = torch.randn(2, 2, 2, 2)
    mem = torch.tensor([[[[1.0, -2.0], [3.0, 0.5]]]]).repeat(2, 1, 1, 1)
    free = torch.tensor([[[[-1.0, 4.0], [0.0, 2.0]]]]).repeat(2, 1, 1, 1)
    out = bar(feat, feat + 1, mem, free, torch.randn(2, 2), torch.tensor([0, 0]))
    want = [[0.7 * 1.0 + 0.3 * -1.0, 0.7 * -2.0 + 0.3 * 4.0],
            [0.7 * 3.0 + 0.3 * 0.0, 0.7 * 0.5 + 0.3 * 2.0]]
    assert out.p_bias.tolist() == pytest.approx([0.3, 0.3], abs=1e-6)
    assert out.mask_logits[0, 0].tolist()[0] == pytest.approx(want[0], abs=1e-5)
    assert out.mask_logits[1, 0].tolist()[1] == pytest.approx(want[1], abs=1e-5)


def test_eq8_9_masked_pooling_reaches_the_bias_token():
    """p_bias reads tau_u, tau_b: moving the memory-free mask onto other pixels (with other
    features) changes p; p is one value per frame; and it depends on t_R."""
    torch.manual_seed(0)
    bar = BiasAwareRecalibration(4, BARConfig(num_layers=1, num_heads=2), text_dim=3)
    feat = torch.zeros(2, 4, 2, 2)
    feat[:, 0, 0, 0] = 1.0  # pixel (0, 0) carries channel 0, pixel (1, 1) channel 1
    feat[:, 1, 1, 1] = 1.0
    on00 = torch.full((2, 1, 2, 2), -20.0)
    on00[:, :, 0, 0] = 20.0
    on11 = torch.full((2, 1, 2, 2), -20.0)
    on11[:, :, 1, 1] = 20.0
    t_r = torch.randn(1, 3).expand(2, 3)
    g = torch.tensor([0, 0])
    with torch.no_grad():
        same = bar(feat, feat, on00, on00, t_r, g).p_bias
        moved = bar(feat, feat, on00, on11, t_r, g).p_bias
        other_text = bar(feat, feat, on00, on11, -t_r, g).p_bias
    assert same[0] == same[1] and moved[0] == moved[1]
    assert abs(float(same[0] - moved[0])) > 1e-4
    assert abs(float(moved[0] - other_text[0])) > 1e-4


# ---------------------------------------------------------------- Eq. 10-11 (CGCT)
def test_eq10_pool_concat_norm():
    cgct = CGCT((1, 1), 0, CGCTConfig(stages=(0, 1)), dim=2, hidden=4, film_strength=0.5)
    cgct.fuse = nn.Identity()  # Fuse = identity: Eq. 10 reduces to Norm([Pool_0, Pool_1])
    s0 = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # (1, 1, 2, 2)
    s1 = torch.tensor([[[[5.0]]]])  # (1, 1, 1, 1)
    m = torch.tensor([[[[1.0, 0.5], [0.0, 0.0]]]])  # (1, 1, 2, 2) soft mask
    z = cgct([s0, s1], m)
    pool0 = (1 * 1.0 + 2 * 0.5) / 1.5  # masked mean at stage 0
    pool1 = 5.0  # stage 1 is one cell: the mask area-resizes to 0.375 there, mean = 5
    assert z[0, 0].tolist() == pytest.approx(_norm([pool0, pool1]), abs=1e-5)


def test_eq11_film_with_tanh_gamma():
    delta = 0.5
    cgct = CGCT((2,), 2, CGCTConfig(stages=(0,)), dim=2, hidden=4, film_strength=delta)
    cgct.fuse = nn.Identity()
    with torch.no_grad():  # MLP(e) = W2 GELU(e): [g1, g2, b1, b2] = [h1, h2, -h1, 2 h2]
        cgct.film[0].weight.copy_(torch.eye(2))
        cgct.film[0].bias.zero_()
        cgct.film[2].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0],
                                                [0.0, 2.0]]))
        cgct.film[2].bias.zero_()
    feat = torch.tensor([[[[3.0]], [[4.0]]]])  # (1, 2, 1, 1): f = Norm(3, 4) = (0.6, 0.8)
    e = torch.tensor([[1.0, -0.5]])
    z = cgct([feat], torch.ones(1, 1, 1, 1), e)

    def gelu(x):
        return x * 0.5 * (1 + math.erf(x / math.sqrt(2)))

    h1, h2 = (gelu(x) for x in e[0].tolist())
    g1, g2, b1, b2 = h1, h2, -h1, 2 * h2
    f = [0.6, 0.8]
    want = _norm([(1 + delta * math.tanh(g1)) * f[0] + delta * b1,
                  (1 + delta * math.tanh(g2)) * f[1] + delta * b2])
    assert z[0, 0].tolist() == pytest.approx(want, abs=1e-5)


def test_eq11_untrained_film_is_identity():
    cgct = CGCT((2,), 3, CGCTConfig(stages=(0,)), dim=2, hidden=4, film_strength=0.5)
    cgct.fuse = nn.Identity()
    feat = torch.tensor([[[[3.0]], [[4.0]]]])
    z = cgct([feat], torch.ones(1, 1, 1, 1), torch.randn(1, 3))
    assert z[0, 0].tolist() == pytest.approx([0.6, 0.8], abs=1e-6)


# ---------------------------------------------------------------- Eq. 12 / 23 (CGCT loss)
def test_eq12_two_ids_two_views_by_hand():
    # id 7: view 0 -> (1, 0), (0, 0); view 1 -> (2, 2). id 9: view 0 -> (0, 1); view 1 ->
    # (0, 3), (0, 5)
    emb = torch.tensor([[1.0, 0.0], [0.0, 0.0], [2.0, 2.0], [0.0, 1.0], [0.0, 3.0], [0.0, 5.0]])
    ids = torch.tensor([7, 7, 7, 9, 9, 9])
    views = torch.tensor([0, 0, 1, 0, 1, 1])
    intra, inter = L.cgct_loss(emb, ids, views)
    # id 7: zbar^0 = (0.5, 0), zbar^1 = (2, 2); global (instance mean) = (1, 2/3)
    intra7 = 0.25 + 0.25 + 0.0
    inter7 = (0.5 - 1) ** 2 + (0 - 2 / 3) ** 2 + (2 - 1) ** 2 + (2 - 2 / 3) ** 2
    # id 9: zbar^0 = (0, 1), zbar^1 = (0, 4); global = (0, 3)
    intra9 = 0.0 + 1.0 + 1.0
    inter9 = (1 - 3) ** 2 + (4 - 3) ** 2
    assert float(intra) == pytest.approx(intra7 + intra9, abs=1e-5)
    assert float(inter) == pytest.approx(inter7 + inter9, abs=1e-5)
    lam = 0.5
    assert float(intra + lam * inter) == pytest.approx(
        intra7 + intra9 + lam * (inter7 + inter9), abs=1e-5)


def test_eq12_clips_unknown_ids_and_collapse():
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    ids = torch.tensor([3, 3, -1])  # the unknown id is left out
    views = torch.tensor([0, 1, 0])
    # same id in two different clips: two identities, one instance each -> all zero
    intra, inter = L.cgct_loss(emb, ids, views, groups=torch.tensor([0, 1, 0]))
    assert float(intra) == 0.0 and float(inter) == 0.0
    # one clip: zbar^0 = (1, 0), zbar^1 = (0, 1), global (0.5, 0.5): inter = 4 * 0.25
    intra, inter = L.cgct_loss(emb, ids, views, groups=torch.tensor([0, 0, 0]))
    assert float(intra) == 0.0 and float(inter) == pytest.approx(1.0)
    # the objective alone is minimised by collapse: equal embeddings give 0
    same = torch.tensor([[0.6, 0.8]]).repeat(4, 1)
    intra, inter = L.cgct_loss(same, torch.tensor([1, 1, 2, 2]), torch.tensor([0, 1, 0, 1]))
    assert float(intra) == 0.0 and float(inter) == 0.0


# ---------------------------------------------------------------- Eq. 13 (mask loss)
def test_eq13_focal_plus_dice_summed():
    logits = torch.tensor([[[0.0, 2.0]]])  # (1, 1, 2)
    target = torch.tensor([[[1.0, 0.0]]])
    a, gam = 0.25, 2.0
    p0, p1 = 0.5, _sig(2.0)
    focal0 = -a * (1 - p0) ** gam * math.log(p0)  # positive pixel, p_t = p
    focal1 = -(1 - a) * p1 ** gam * math.log(1 - p1)  # negative pixel, p_t = 1 - p
    focal = (focal0 + focal1) / 2
    dice = 1 - (2 * p0 + 1) / (p0 + p1 + 1 + 1)  # soft dice with eps 1
    assert float(L.mask_loss(logits, target)) == pytest.approx(focal + dice, rel=1e-5)
    assert LossConfig().mask_focal == 1.0 and LossConfig().mask_dice == 1.0


# ---------------------------------------------------------------- Eq. 15 (soft target)
def test_eq15_soft_target_rescaled():
    iou = torch.tensor([0.1, 0.3, 0.4, 0.5, 0.8])
    y = L.soft_iou_target(iou, tau_pos=0.5, tau_neg=0.3)
    assert y.tolist() == pytest.approx([0.0, 0.0, (0.4 - 0.3) / 0.2, 1.0, 1.0], abs=1e-6)
    with pytest.raises(ValueError):
        L.soft_iou_target(iou, tau_pos=0.3, tau_neg=0.5)


def test_eq16_positives_from_iou_not_from_rounded_targets():
    logits = torch.tensor([0.0, 0.0])
    y = torch.tensor([1.0, 0.5])
    pos = torch.tensor([True, False])
    got = L.group_balanced_bce(logits, y, torch.tensor([0, 0]), positive=pos)
    # one positive, one negative: each weighs 1/2; BCE at logit 0 = log 2 whatever the target
    assert float(got) == pytest.approx(math.log(2), abs=1e-6)


# ---------------------------------------------------------------- Eq. 22 + assembly
def _stub_model(objective: str, lam: float):
    cfg = ViewSAMConfig(lam=lam, cgct=CGCTConfig(objective=objective))
    return SimpleNamespace(cfg=cfg, bar=object(), cgct=object(), candidate_generator=None,
                           teacher=lambda tg: (tg.boxes, tg.visible))


def _stub_output(b, v, t, o, emb, bias_logits, bias_labels_):
    z = torch.zeros
    return ViewSAMOutput(
        mask_logits=torch.full((b, v, t, o, 2, 2), 0.0), object_score_logits=z(b, v, t, o),
        p_bias=bias_logits.sigmoid(), embeddings=emb, boxes=z(b, v, t, 0, 4),
        proposal_scores=z(b, v, t, 0), refer_logits=z(b, v, t, 0),
        prompt_boxes=z(b, v, t, o, 4), prompted=torch.ones(b, v, t, o, dtype=torch.bool),
        slot_valid=torch.ones(b, o, dtype=torch.bool), slot_ids=torch.tensor([[4]]),
        slot_index=torch.zeros(b, o, dtype=torch.long), view_tokens=None, candidates=None,
        bias_logits=bias_logits, bias_labels=bias_labels_, image_size=2)


def test_eq22_and_eq23_in_the_total():
    b, v, t, o = 1, 2, 2, 1
    targets = ClipTargets(boxes=torch.tensor([0.0, 0.0, 2.0, 2.0]).expand(b, v, t, 1, 4),
                          visible=torch.ones(b, v, t, 1, dtype=torch.bool),
                          ids=torch.tensor([[4]]), referred=torch.tensor([[True]]))
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]]).reshape(b, v, t, o, 2)
    bl = torch.tensor([0.0, 1.0, 0.0, -2.0]).reshape(b, v, t, o)
    lab = torch.tensor([0.0, 1.0, 0.0, 0.0]).reshape(b, v, t, o)
    lam = 0.5
    res = compute_losses(_stub_model("paper", lam), _stub_output(b, v, t, o, emb, bl, lab),
                         targets)
    # Eq. 22 over frames after the first: (view 0, t 1): y 1, logit 1; (view 1, t 1): y 0,
    # logit -2
    bar = (-math.log(_sig(1.0)) - math.log(1 - _sig(-2.0))) / 2
    assert float(res["bar"]) == pytest.approx(bar, rel=1e-5)
    # Eq. 23: view 0: (1, 0), (0, 1) -> zbar^0 (0.5, 0.5), intra 0.5 + 0.5; view 1: (0, 0)
    # twice -> zbar^1 (0, 0), intra 0; global (instance mean) (0.25, 0.25): inter
    # ||(0.25, 0.25)||^2 twice
    intra = 1.0
    inter = (0.25 ** 2 + 0.25 ** 2) * 2
    assert float(res["consistency_intra"]) == pytest.approx(intra, abs=1e-6)
    assert float(res["consistency_inter"]) == pytest.approx(inter, abs=1e-6)
    want = float(res["mask"]) + bar + intra + lam * inter  # all LossConfig weights are 1
    assert float(res["total"]) == pytest.approx(want, rel=1e-5)
    # the InfoNCE switch still runs, and gives other numbers
    res2 = compute_losses(_stub_model("infonce", lam), _stub_output(b, v, t, o, emb, bl, lab),
                          targets)
    assert float(res2["consistency_intra"]) != pytest.approx(intra)


def test_cgct_objective_switch_is_checked():
    with pytest.raises(ValueError):
        CGCTConfig(objective="cosine")


def test_eq15_16_candidate_losses_use_the_rescaled_target():
    z = torch.zeros
    # proposal 0 = the referred box (IoU 1 -> y 1); proposal 1 = its lower 40% (IoU 0.4 ->
    # y = (0.4 - 0.3) / (0.5 - 0.3) = 0.5)
    out = CandidateOutput(heatmap=z(1, 1, 4, 4), centerness=z(1, 1, 4, 4), size=z(1, 2, 4, 4),
                          offset=z(1, 2, 4, 4),
                          boxes=torch.tensor([[[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 4.0]]]),
                          objectness=z(1, 2), refer_logits=torch.tensor([[1.0, 2.0]]))
    res = candidate_losses(out, torch.tensor([[[0.0, 0.0, 10.0, 10.0]]]),
                           torch.tensor([[True]]), torch.tensor([[True]]), 4,
                           CandidateGeneratorConfig(pos_iou=0.5, neg_iou=0.3))

    def bce(s, y):
        return -(y * math.log(_sig(s)) + (1 - y) * math.log(1 - _sig(s)))

    # one positive, one negative in the frame: each weighs 1/2 (Eq. 16)
    want = 0.5 * bce(1.0, 1.0) + 0.5 * bce(2.0, 0.5)
    assert float(res["cg_match"]) == pytest.approx(want, rel=1e-5)


# ---------------------------------------------------------------- Eq. 14 and 17 (CG)
def test_eq14_centerness_is_a_focal_loss():
    """Eq. 14's L_focal(C^, C): one 16 x 16 box over a 4 x 4 grid of stride 4, centerness
    logits 0. Cell centres 2, 6, 10, 14: left/right ratios 1/7, 0.6, 0.6, 1/7; the FCOS
    target is sqrt(lr * tb), its mean over the 16 cells ((sqrt(1/7) + sqrt(0.6)) / 2)^2.
    At p = 0.5: BCE = ln 2 for any target, p_t = 0.5, (1 - p_t)^2 = 0.25 and
    a_t = 0.25 y + 0.75 (1 - y), so the focal loss is ln2 * 0.25 * (0.75 - 0.5 mean(y))."""
    z = torch.zeros
    out = CandidateOutput(heatmap=z(1, 1, 4, 4), centerness=z(1, 1, 4, 4), size=z(1, 2, 4, 4),
                          offset=z(1, 2, 4, 4), boxes=z(1, 0, 4), objectness=z(1, 0),
                          refer_logits=z(1, 0))
    yes = torch.tensor([[True]])
    res = candidate_losses(out, torch.tensor([[[0.0, 0.0, 16.0, 16.0]]]), yes, yes, 4,
                           CandidateGeneratorConfig())
    mean_y = ((math.sqrt(1 / 7) + math.sqrt(0.6)) / 2) ** 2
    want = math.log(2) * 0.25 * (0.75 - 0.5 * mean_y)  # 0.1012 (a BCE would give 0.6931)
    assert float(res["cg_centerness"]) == pytest.approx(want, rel=1e-5)


def test_eq17_candidate_ranking_on_logits_over_all_pairs():
    """Eq. 17 in the CG loss: P = proposals with IoU >= tau_pos, N = IoU <= tau_neg, ranked
    on their logits across frames. Frame 0: proposal on the referred box (IoU 1, logit
    0.5) and one far away (IoU 0, logit 2.0); frame 1: two far away (IoU 0, logit -1).
    m = 1: (0.5 vs 2.0) 1 + 1.5 = 2.5; (0.5 vs -1) 1 - 1.5 < 0 -> 0, twice; mean 2.5 / 3
    (within frames only it would be 2.5)."""
    z = torch.zeros
    far = [20.0, 20.0, 30.0, 30.0]
    out = CandidateOutput(heatmap=z(2, 1, 8, 8), centerness=z(2, 1, 8, 8), size=z(2, 2, 8, 8),
                          offset=z(2, 2, 8, 8),
                          boxes=torch.tensor([[[0.0, 0.0, 10.0, 10.0], far], [far, far]]),
                          objectness=z(2, 2),
                          refer_logits=torch.tensor([[0.5, 2.0], [-1.0, -1.0]]))
    boxes = torch.tensor([[[0.0, 0.0, 10.0, 10.0]], [[0.0, 0.0, 10.0, 10.0]]])
    valid = torch.tensor([[True], [False]])  # frame 1: the referred object is not seen
    res = candidate_losses(out, boxes, valid, torch.tensor([[True], [True]]), 4,
                           CandidateGeneratorConfig(rank_margin=1.0))
    # pairs: P {0.5} x N {2.0, -1.0, -1.0}: 2.5, 0, 0 -> mean 2.5 / 3
    assert float(res["cg_rank"]) == pytest.approx(2.5 / 3, rel=1e-5)
