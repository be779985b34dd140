"""ViewSAM losses on tiny hand-worked cases (arithmetic in the comments)."""

import math

import pytest
import torch

from raysys.viewsam import losses as L

LN2 = math.log(2.0)  # BCE of logit 0 against either label


def test_sigmoid_focal_loss_hand_worked():
    # logit 0 -> p = 0.5. Target 1: ce = ln 2, p_t = 0.5, (1 - p_t)^2 = 0.25, a_t = 0.25
    #   -> ln2 * 0.25 * 0.25 = 0.0433217
    # Target 0: ce = ln 2, p_t = 0.5, a_t = 0.75 -> ln2 * 0.25 * 0.75 = 0.1299651
    out = L.sigmoid_focal_loss(torch.zeros(2), torch.tensor([1.0, 0.0]), reduction="none")
    assert out.tolist() == pytest.approx([LN2 / 16, LN2 * 3 / 16], rel=1e-5)
    # a confident correct prediction costs ~nothing; the mean is the mean
    assert float(L.sigmoid_focal_loss(torch.tensor([20.0]), torch.tensor([1.0]))) < 1e-9
    assert float(L.sigmoid_focal_loss(torch.zeros(2), torch.tensor([1.0, 0.0]))) == \
        pytest.approx(LN2 / 8, rel=1e-5)  # (1/16 + 3/16) ln2 / 2


def test_dice_loss_hand_worked():
    # logits +-30 ~ probs [1, 1, 0, 0]; target [1, 0, 0, 0]; eps 1
    # 1 - (2 * 1 + 1) / (2 + 1 + 1) = 1 - 3/4 = 0.25
    logits = torch.tensor([[[30.0, 30.0], [-30.0, -30.0]]])
    target = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    assert L.dice_loss(logits, target).tolist() == pytest.approx([0.25], abs=1e-6)


def test_mask_loss_is_focal_plus_dice():
    # mask 0: all logits 0 vs target all 1: focal per pixel ln2/16, dice = 1 - (2*2 + 1) /
    #   (2 + 4 + 1) = 2/7 (p = 0.5 on 4 pixels: sum p = 2, sum p t = 2, sum t = 4)
    #   -> Eq. 13 sums: ln2/16 + 2/7 = 0.0433 + 0.2857 = 0.3290; SAM's 20:1 on request
    # mask 1 has weight 0 and is ignored
    logits = torch.zeros(2, 2, 2)
    target = torch.ones(2, 2, 2)
    got = L.mask_loss(logits, target, torch.tensor([1.0, 0.0]))
    assert float(got) == pytest.approx(LN2 / 16 + 2 / 7, rel=1e-5)
    sam = L.mask_loss(logits, target, torch.tensor([1.0, 0.0]), focal_weight=20.0)
    assert float(sam) == pytest.approx(20 * LN2 / 16 + 2 / 7, rel=1e-5)
    assert float(L.mask_loss(logits, target, torch.zeros(2))) == 0.0


def test_smooth_l1_hand_worked():
    # beta 1: |d| = 0.5 -> 0.5 * 0.25 = 0.125; |d| = 2 -> 2 - 0.5 = 1.5; mean 0.8125
    pred, tgt = torch.tensor([0.5, 2.0]), torch.zeros(2)
    assert float(L.smooth_l1_loss(pred, tgt)) == pytest.approx(0.8125)
    # weights select the first element only
    assert float(L.smooth_l1_loss(pred, tgt, weights=torch.tensor([1.0, 0.0]))) == \
        pytest.approx(0.125)


def test_group_balanced_bce_hand_worked():
    # group 0: logits [0, 2, 2], targets [1, 0, 0] -> BCE [ln2, log(1 + e^2), log(1 + e^2)]
    #   = [0.6931, 2.1269, 2.1269]; one positive (w 1/2), two negatives (w 1/4 each)
    #   -> 0.5 * 0.6931 + 0.5 * 2.1269 = 1.4100 (the plain mean would be 1.6490)
    # group 1: logits [0], target [0.2] (< 0.5: negative only, weight 1) -> BCE(0, 0.2) = ln2
    # mean over 2 groups: (1.4100 + 0.6931) / 2 = 1.0516
    logits = torch.tensor([0.0, 2.0, 2.0, 0.0])
    targets = torch.tensor([1.0, 0.0, 0.0, 0.2])
    groups = torch.tensor([0, 0, 0, 1])
    b2 = math.log(1 + math.e ** 2)
    want = ((0.5 * LN2 + 0.5 * b2) + LN2) / 2
    assert float(L.group_balanced_bce(logits, targets, groups)) == pytest.approx(want, rel=1e-5)


def test_margin_ranking_hand_worked():
    # Eq. 17, m = 1, logits: P = {0: 1.0, 3: 0.2}, N = {1: 0.5, 2: -1.0}, index 4 in neither
    #   (0,1): 1 - 0.5 = 0.5; (0,2): 1 - 2.0 < 0 -> 0; (3,1): 1 + 0.3 = 1.3; (3,2): 1 - 1.2 -> 0
    #   -> (0.5 + 1.3) / (|P| |N| = 4) = 0.45; the 5.0 of index 4 pairs with nothing
    scores = torch.tensor([1.0, 0.5, -1.0, 0.2, 5.0])
    pos = torch.tensor([True, False, False, True, False])
    neg = torch.tensor([False, True, True, False, False])
    assert float(L.margin_ranking_loss(scores, pos, neg, 1.0)) == pytest.approx(0.45)
    # within groups only (not the paper's): frames {0, 1, 4} and {2, 3}: (0,1) 0.5, (3,2) 0
    groups = torch.tensor([0, 0, 1, 1, 0])
    assert float(L.margin_ranking_loss(scores, pos, neg, 1.0, groups)) == pytest.approx(0.25)
    none = torch.zeros(5, dtype=torch.bool)
    assert float(L.margin_ranking_loss(scores, none, neg)) == 0.0


def test_infonce_consistency_hand_worked():
    # a=[1,0] id0 view0; b=[1,0] id0 view1; c=[0,1] id1 view1; d=[0,1] id1 view1; tau = 1
    # intra (same view): c's candidates {b, d}, positive d: -log(e / (e + 1)) = log(1 + 1/e)
    #   = 0.3133; d likewise; b has candidates {c, d} but no positive; a has none
    #   -> intra = 0.3133
    # inter (other views): a's candidates {b, c, d}, positive b: log(1 + 2/e) = 0.5514;
    #   b's candidates {a}, positive a: -log(e/e) = 0; c, d: candidate a only, no positive
    #   -> inter = (0.5514 + 0) / 2 = 0.2757
    emb = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    ids = torch.tensor([0, 0, 1, 1])
    views = torch.tensor([0, 1, 1, 1])
    intra, inter = L.infonce_consistency(emb, ids, views, temperature=1.0)
    assert float(intra) == pytest.approx(math.log(1 + 1 / math.e), rel=1e-5)
    assert float(inter) == pytest.approx(math.log(1 + 2 / math.e) / 2, rel=1e-5)
    # different groups (clips) never pair: alone in its group, a is no anchor for b
    _, inter_g = L.infonce_consistency(emb, ids, views, torch.tensor([0, 1, 1, 1]), 1.0)
    assert float(inter_g) == 0.0


@pytest.mark.parametrize("objective", ["paper", "infonce"])
def test_consistency_loss_gradient_pulls_same_ids_together(objective):
    raw = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    emb = torch.nn.functional.normalize(raw, dim=1).requires_grad_(True)
    ids = torch.tensor([0, 0, 1, 1, 2, -1])  # -1: unknown, never a positive
    views = torch.tensor([0, 1, 0, 1, 0, 1])
    fn = L.cgct_loss if objective == "paper" else L.infonce_consistency
    intra, inter = fn(emb, ids, views)
    (intra + inter).backward()
    assert torch.isfinite(emb.grad).all() and emb.grad.abs().sum() > 0
    # a gradient step brings the id-0 pair closer
    before = float(emb.detach()[0] @ emb.detach()[1])
    e2 = emb.detach() - 0.1 * emb.grad
    e2 = torch.nn.functional.normalize(e2, dim=1)
    assert float(e2[0] @ e2[1]) > before
