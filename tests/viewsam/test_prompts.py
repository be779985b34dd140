"""A training prompt lies on the teacher's object (raysys.viewsam.prompts).

A Candidate Generator proposal replaces a slot's teacher box only when its IoU with that
box is at least the floor (0.5) and no other labelled box overlaps it more; otherwise the
teacher box itself prompts.
"""

import torch

from raysys.viewsam.candidate_generator import PseudoLabelTeacher, pairwise_iou
from raysys.viewsam.data import ClipTargets
from raysys.viewsam.prompts import PROMPT_IOU_FLOOR, match_proposals, plan_slots

A = [0.0, 0.0, 10.0, 20.0]  # the referred person
B = [2.0, 0.0, 12.0, 20.0]  # a neighbour overlapping A


def _targets(boxes_per_frame, referred, dense=None):
    """One sample, one view, T frames; ``boxes_per_frame`` (T, M, 4)."""
    boxes = torch.tensor(boxes_per_frame)[None, None]  # (1, 1, T, M, 4)
    t, m = boxes.shape[2:4]
    dense_boxes = dense_vis = None
    if dense is not None:
        dense_boxes = torch.tensor(dense)[None, None]
        dense_vis = torch.ones(dense_boxes.shape[:4], dtype=torch.bool)
    return ClipTargets(boxes=boxes, visible=torch.ones(1, 1, t, m, dtype=torch.bool),
                       ids=torch.arange(m)[None], referred=torch.tensor([referred]),
                       dense_boxes=dense_boxes, dense_visible=dense_vis)


def _plan(targets, proposals, floor=PROMPT_IOU_FLOOR):
    cand = torch.tensor(proposals)[None]  # (B*V=1, T, K, 4)
    t = cand.shape[1]
    return plan_slots(targets, PseudoLabelTeacher(), cand, shape=(1, 1, t),
                      scale=torch.ones(4), prompt_source="candidates", iou_floor=floor)


def test_hand_worked_cases():
    # frame 0: the only proposal is B itself; IoU(B, A) = 8*20 / (200 + 200 - 160) = 2/3,
    #   above the floor, but it lies on the neighbour (IoU 1 with B): A's box prompts.
    # frame 1: a proposal close to A (IoU(P, A) = 9*20 / 200 = 0.9; IoU(P, B) = 8*20 /
    #   (180 + 200 - 160) = 0.727): it prompts.
    # frame 2: the best proposal for A, [0, 11, 10, 20], overlaps it 10*9 / 200 = 0.45,
    #   below the floor: A's box prompts.
    near = [1.0, 0.0, 10.0, 20.0]
    low = [0.0, 11.0, 10.0, 20.0]
    far = [40.0, 40.0, 50.0, 60.0]
    targets = _targets([[A, B]] * 3, [True, False])
    assert abs(float(pairwise_iou(torch.tensor([B]), torch.tensor([A]))) - 2 / 3) < 1e-6
    assert abs(float(pairwise_iou(torch.tensor([near]), torch.tensor([A]))) - 0.9) < 1e-6
    assert abs(float(pairwise_iou(torch.tensor([low]), torch.tensor([A]))) - 0.45) < 1e-6
    plan = _plan(targets, [[B, B], [near, B], [low, far]])
    assert plan.boxes[0, :, 0].tolist() == [A, near, A]
    assert plan.has_box[0, :, 0].all()
    # without the floor (0): frame 2's proposal prompts, frame 0's still does not (neighbour)
    plan0 = _plan(targets, [[B, B], [near, B], [low, far]], floor=0.0)
    assert plan0.boxes[0, :, 0].tolist() == [A, near, low]


def test_a_neighbour_outside_the_m_objects_counts_too():
    # the sample holds only A (M = 1); B is labelled in the frame (a dense box): a proposal
    # on B must not prompt A's slot
    targets = _targets([[A]], [True], dense=[[A, B]])
    assert _plan(targets, [[B]]).boxes[0, 0, 0].tolist() == A
    no_dense = _targets([[A]], [True])
    assert _plan(no_dense, [[B]]).boxes[0, 0, 0].tolist() == B, \
        "without the dense box the proposal overlaps A by 2/3 and nothing else: it prompts"


def test_no_training_prompt_lies_on_another_object():
    """Random crowded frames: every prompt's best-IoU labelled box is the slot's own."""
    g = torch.Generator().manual_seed(0)
    n, m, k = 64, 6, 12
    xy = torch.rand(n, m, 2, generator=g) * 60
    wh = 8 + torch.rand(n, m, 2, generator=g) * 16
    own = torch.cat([xy, xy + wh], -1)  # (N, M, 4) crowded: neighbours overlap
    jitter = (torch.rand(n, k, 4, generator=g) - 0.5) * 12
    cand = own[:, torch.randint(0, m, (k,), generator=g)] + jitter  # near random objects
    ok = torch.ones(n, m, dtype=torch.bool)
    boxes, use = match_proposals(own, own, ok, cand)
    prompt = torch.where(use[..., None], boxes, own)
    iou = pairwise_iou(prompt, own)  # (N, M slots, M labelled)
    own_iou = iou.diagonal(dim1=1, dim2=2)
    assert (own_iou >= iou.amax(-1) - 1e-6).all(), "a prompt lies closer to a neighbour"
    assert (own_iou[use] >= PROMPT_IOU_FLOOR).all()
    # the check has teeth: the unfloored best-IoU choice does put prompts on neighbours
    raw = pairwise_iou(own, cand).argmax(-1)
    raw_boxes = cand.gather(1, raw[..., None].expand(-1, -1, 4))
    raw_iou = pairwise_iou(raw_boxes, own)
    assert (raw_iou.diagonal(dim1=1, dim2=2) < raw_iou.amax(-1) - 1e-6).any()
    assert use.any() and (~use).any()
