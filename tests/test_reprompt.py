"""Bi-directional re-prompting: prototype, seed choice, gap filling, duplicates.

The concept tracker is replaced here by a scripted re-propagation over a known track so
that the merge logic can be checked frame by frame; the real classical tracker is
exercised in test_concept_tracker.py.
"""

import numpy as np

from raysys.labeling.reprompt import RepromptConfig, choose_seed, prototype, reprompt_scene
from raysys.types import MaskRLE, Tracklet

H, W = 40, 60


def _mask(box):
    m = np.zeros((H, W), bool)
    x, y, w, h = (int(v) for v in box)
    m[y:y + h, x:x + w] = True
    return MaskRLE.encode(m)


def _tracklet(view, lid, frames, x):
    boxes = np.array([[x + f, 5, 4, 10] for f in frames], float)
    return Tracklet("S1", view, lid, "person", np.array(frames), boxes, np.ones(len(frames)),
                    tuple(_mask(b) for b in boxes))


def test_prototype_is_normalised_mean():
    # mean of (1,0) and (0,1) is (0.5,0.5); normalised (0.7071, 0.7071)
    np.testing.assert_allclose(prototype(np.array([[1, 0], [0, 1]])), [0.5**0.5, 0.5**0.5])


def test_choose_seed_picks_closest_frame():
    t1, t2 = _tracklet("View1", 1, [1, 2], 0), _tracklet("View1", 2, [5, 6, 7], 0)
    embs = [np.array([[1, 0], [0.6, 0.8]]), np.array([[0, 1], [0.8, 0.6], [0.1, 0.99]])]
    # cos with proto (0,1): t1: 0, 0.8; t2: 1.0, 0.6, 0.99 -> member 1, frame 0
    assert choose_seed([t1, t2], embs, np.array([0.0, 1.0])) == (1, 0)


def test_gap_between_fragments_is_filled_by_repropagation():
    # person A moves right by 1 px/frame; fragments at frames 1-3 and 8-10 (occluded 4-7).
    # The scripted tracker follows A over all 10 frames from any seed.
    a1, a2 = _tracklet("View1", 1, [1, 2, 3], 0), _tracklet("View1", 2, [8, 9, 10], 0)
    full = _tracklet("View1", 0, list(range(1, 11)), 0)

    def repropagate(view, f0, mask, direction):
        keep = full.frames >= f0 if direction == "forward" else full.frames <= f0
        masks = tuple(m for m, k in zip(full.masks, keep, strict=True) if k)
        return Tracklet("S1", view, 0, "person", full.frames[keep], full.boxes[keep],
                        full.scores[keep], masks)

    e = np.array([[1.0, 0.0], [1.0, 0.0]])
    out = reprompt_scene([a1, a2], [np.tile(r, (3, 1)) for r in e], e, np.array([1, 1]),
                         repropagate)
    assert list(out) == [1]
    assert out[1]["View1"].frames.tolist() == list(range(1, 11))


def test_repropagation_onto_another_identity_is_dropped():
    # identity 1 (x=0) at frames 1-2; identity 2 (x=20) at frames 1-5. The scripted tracker
    # drifts from identity 1 onto identity 2's boxes for frames 3-5: those frames are dropped.
    a = _tracklet("View1", 1, [1, 2], 0)
    b = _tracklet("View1", 2, [1, 2, 3, 4, 5], 20)

    def repropagate(view, f0, mask, direction):
        if direction == "backward" or mask.to_box().left >= 20:
            return Tracklet("S1", view, 0, "person", np.array([f0]),
                            np.array([mask.to_box().xywh]), np.ones(1), (mask,))
        return Tracklet("S1", view, 0, "person", np.array([1, 2, 3, 4, 5]),
                        np.vstack([a.boxes, b.boxes[2:]]), np.ones(5),
                        a.masks + b.masks[2:])

    emb = np.array([[1.0, 0], [0, 1.0]])
    out = reprompt_scene([a, b], [np.tile(emb[0], (2, 1)), np.tile(emb[1], (5, 1))], emb,
                         np.array([1, 2]), repropagate, RepromptConfig())
    assert out[1]["View1"].frames.tolist() == [1, 2]
    assert out[2]["View1"].frames.tolist() == [1, 2, 3, 4, 5]
