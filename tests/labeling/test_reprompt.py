"""Bi-directional re-prompting: prototype, seed choice, gap filling, duplicates.

The concept tracker is replaced here by a scripted re-propagation over a known track so
that the merge logic can be checked frame by frame; the real classical tracker is
exercised in test_concept_tracker.py.
"""

import numpy as np
import pytest

from raysys.labeling.reprompt import RepromptConfig, choose_seed, prototype, reprompt_scene
from raysys.types import MaskRLE, Tracklet

H, W = 40, 60


def _mask(box):
    m = np.zeros((H, W), bool)
    x, y, w, h = (int(v) for v in box)
    m[y:y + h, x:x + w] = True
    return MaskRLE.encode(m)


def _tracklet(view, lid, frames, x, score=1.0):
    boxes = np.array([[x + f, 5, 4, 10] for f in frames], float)
    return Tracklet("S1", view, lid, "person", np.array(frames), boxes,
                    np.full(len(frames), score),
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


def _world_repropagate(world):
    """Scripted tracker: follows the world track (per view) whose box holds the seed."""
    def repropagate(view, f0, mask, direction):
        seed = mask.to_box().xywh
        for t in world[view]:
            k = np.flatnonzero(t.frames == f0)
            if k.size and np.allclose(t.boxes[k[0]], seed):
                keep = t.frames >= f0 if direction == "forward" else t.frames <= f0
                return Tracklet("S1", view, 0, "person", t.frames[keep], t.boxes[keep],
                                t.scores[keep],
                                tuple(m for m, g in zip(t.masks, keep, strict=True) if g))
        raise AssertionError("seed on no world track")
    return repropagate


def _embs(tracklets, vectors):
    vectors = [np.asarray(v, float) / np.linalg.norm(v) for v in vectors]
    return [np.tile(v, (len(t), 1)) for t, v in zip(tracklets, vectors, strict=True)], \
        np.stack(vectors)


def test_identity_is_reprompted_in_a_view_it_missed_and_duplicates_merge():
    # person A is in three views; association split it into {View1, View2} and {View3}.
    # Each identity re-prompted in the views it missed lands on the other's tracked boxes:
    # the two are one identity.
    tl = [_tracklet("View1", 1, list(range(1, 9)), 0), _tracklet("View2", 1, list(range(1, 9)), 0),
          _tracklet("View3", 1, list(range(1, 9)), 0)]
    fe, emb = _embs(tl, [[1, 0.1], [1, 0.0], [1, 0.3]])
    world = {t.view: [t] for t in tl}
    out = reprompt_scene(tl, fe, emb, np.array([1, 1, 2]), _world_repropagate(world))
    assert list(out) == [1]
    assert sorted(out[1]) == ["View1", "View2", "View3"]
    assert out[1]["View3"].frames.tolist() == list(range(1, 9))


def test_unsupported_single_view_identity_is_dropped_unless_confident():
    # identity 2 is seen in View1 only and nothing in View2 is close to its prototype:
    # no cross-view support. A doubtful track (mean score 0.4 < keep_score 0.6) is no
    # pseudo label (unless min_views=1); a confident one (0.9) is a person whom no other
    # camera was found to see, and stays.
    def scene(score):
        tl = [_tracklet("View1", 1, [1, 2, 3, 4], 0), _tracklet("View2", 1, [1, 2, 3, 4], 0),
              _tracklet("View1", 2, [1, 2, 3, 4], 30, score=score)]
        fe, emb = _embs(tl, [[1, 0], [1, 0.1], [0, 1]])
        return tl, fe, emb, _world_repropagate({"View1": tl[::2], "View2": tl[1:2]})

    tl, fe, emb, rep = scene(0.4)
    out = reprompt_scene(tl, fe, emb, np.array([1, 1, 2]), rep)
    assert list(out) == [1] and sorted(out[1]) == ["View1", "View2"]
    out = reprompt_scene(tl, fe, emb, np.array([1, 1, 2]), rep, RepromptConfig(min_views=1))
    assert len(out) == 2
    # a scene with a single view keeps its single-view identities
    out = reprompt_scene(tl[::2], fe[::2], emb[::2], np.array([1, 2]), rep)
    assert len(out) == 2
    tl, fe, emb, rep = scene(0.9)
    out = reprompt_scene(tl, fe, emb, np.array([1, 1, 2]), rep)
    assert len(out) == 2 and sorted(out[2]) == ["View1"]
    assert out[2]["View1"].boxes[0].tolist() == [31, 5, 4, 10]
    out = reprompt_scene(tl, fe, emb, np.array([1, 1, 2]), rep, RepromptConfig(keep_score=None))
    assert list(out) == [1]


def test_association_choice_stands_on_a_contested_view():
    # association wrongly put A's View1 tracklet with B's View2 and View3 tracklets
    # (identity 1); A's View2 and View3 tracklets are identity 2. Identity 2, re-prompted
    # in View1, lands on A's View1 track: association's choice stands, A's View1 track
    # stays with identity 1 (re-prompting never moves a tracked track between identities)
    a = [_tracklet(v, 1, list(range(1, 9)), 0) for v in ("View1", "View2", "View3")]
    b = [_tracklet(v, 2, list(range(1, 9)), 30) for v in ("View2", "View3")]
    tl = [a[0], *b, a[1], a[2]]
    fe, emb = _embs(tl, [[1, 0.2], [0.5, 1], [0.5, 1], [1, 0], [1, 0.1]])
    world = {"View1": [a[0]], "View2": [a[1], b[0]], "View3": [a[2], b[1]]}
    gids = np.array([1, 1, 1, 2, 2])
    out = reprompt_scene(tl, fe, emb, gids, _world_repropagate(world))
    where = {g: {v: int(t.boxes[0, 0]) for v, t in per.items()} for g, per in out.items()}
    assert sorted(where.values(), key=len) == [
        {"View2": 1, "View3": 1}, {"View1": 1, "View2": 31, "View3": 31}]


def test_identities_reprompted_onto_a_third_one_do_not_merge():
    # identities 1 (View2) and 2 (View3) are both closest to identity 3's tracks in the
    # views they miss. Their re-propagated boxes coincide in View1, but that is no evidence
    # that 1 and 2 are one person; identity 3 keeps its tracks (closer to its own
    # prototype) and the re-propagated frames on them are dropped.
    p = [_tracklet("View2", 1, [1, 2, 3, 4], 0), _tracklet("View3", 1, [1, 2, 3, 4], 0),
         _tracklet("View1", 1, [1, 2, 3, 4], 30), _tracklet("View2", 2, [1, 2, 3, 4], 30),
         _tracklet("View3", 2, [1, 2, 3, 4], 30)]
    fe, emb = _embs(p, [[1, 0.6], [1, -0.6], [1, 0], [1, 0.05], [1, -0.05]])
    world = {"View1": [p[2]], "View2": [p[0], p[3]], "View3": [p[1], p[4]]}
    out = reprompt_scene(p, fe, emb, np.array([1, 2, 3, 3, 3]), _world_repropagate(world),
                         RepromptConfig(min_views=1))
    where = sorted(sorted((v, int(t.boxes[0, 0])) for v, t in per.items())
                   for per in out.values())
    assert where == [[("View1", 31), ("View2", 31), ("View3", 31)], [("View2", 1)],
                     [("View3", 1)]]


def test_reprompted_boxes_on_another_identity_track_are_dropped():
    # identity 1 is person A, tracked in View1 and View3; identity 2 is person P, tracked
    # in View2 and View3. Identity 2, re-prompted in View1, lands on A's View1 track, whose
    # embedding is closer to P's prototype than to A's View3 one. A keeps both views, and
    # P's re-propagated boxes on A's track are dropped.
    f = list(range(1, 9))
    a1, a3 = _tracklet("View1", 1, f, 0), _tracklet("View3", 1, f, 0)
    p2, p3 = _tracklet("View2", 2, f, 30), _tracklet("View3", 2, f, 30)
    tl = [a1, a3, p2, p3]
    fe, emb = _embs(tl, [[0.6, 0.8, 0], [1, 0, 0.3], [0, 1, 0], [0, 1, 0]])
    # (A's View1 track is closer to P's prototype, 0.80, than to its own View3 one, 0.58)
    assert emb[0] @ prototype(emb[2:]) > emb[0] @ emb[1]
    world = {"View1": [a1], "View2": [p2], "View3": [a3, p3]}
    out = reprompt_scene(tl, fe, emb, np.array([1, 1, 2, 2]), _world_repropagate(world))
    where = sorted(sorted((v, int(t.boxes[0, 0])) for v, t in per.items())
                   for per in out.values())
    assert where == [[("View1", 1), ("View3", 1)], [("View2", 31), ("View3", 31)]]


def _one_sided_landing():
    """A (identity 1) tracked in View1 only; B (identity 2) in View2 and View3; A's
    prototype close enough to B's View2 tracklet to be seeded there, not the reverse."""
    f = list(range(1, 9))
    a1 = _tracklet("View1", 1, f, 0, score=0.9)
    b2, b3 = _tracklet("View2", 2, f, 30), _tracklet("View3", 2, f, 30)
    tl = [a1, b2, b3]
    fe, emb = _embs(tl, [[1, 0], [0.7, 0.714], [-0.3, 0.95]])
    assert emb[1] @ emb[0] >= 0.5 > emb[0] @ prototype(emb[1:])
    world = {"View1": [a1], "View2": [b2], "View3": [b3]}
    return tl, fe, emb, np.array([1, 2, 2]), _world_repropagate(world)


def test_a_one_sided_landing_in_a_seeded_view_merges_only_when_asked():
    # A is seeded into View2 from B's tracklet there and so lands on B's tracked boxes; B
    # is not close enough to A to be seeded into View1. The landing is by construction:
    # "mutual" (and "never") keep A apart, "always" (the default) merges the two when no
    # appearance check stops it (merge_similarity=None; the default check keeps these two
    # apart, next test).
    tl, fe, emb, gids, repropagate = _one_sided_landing()
    for rule in ("mutual", "never"):
        out = reprompt_scene(tl, fe, emb, gids, repropagate,
                             RepromptConfig(seeded_merge=rule, merge_similarity=None))
        assert sorted(sorted(per) for per in out.values()) == [["View1"], ["View2", "View3"]]
    out = reprompt_scene(tl, fe, emb, gids, repropagate, RepromptConfig(merge_similarity=None))
    assert [sorted(per) for per in out.values()] == [["View1", "View2", "View3"]]
    with pytest.raises(ValueError, match="seeded_merge"):
        RepromptConfig(seeded_merge="sometimes")


def test_merge_similarity_keeps_apart_identities_that_do_not_look_alike():
    # the one-sided landing above merges A into B without an appearance check; with the
    # default one (merge_similarity 0.8) it does not: A's and B's prototypes (Eq. 2) are far
    # apart. A person whom association split (prototypes close) is still merged.
    tl, fe, emb, gids, repropagate = _one_sided_landing()
    assert prototype(emb[:1]) @ prototype(emb[1:]) < RepromptConfig().merge_similarity
    out = reprompt_scene(tl, fe, emb, gids, repropagate)
    assert sorted(sorted(per) for per in out.values()) == [["View1"], ["View2", "View3"]]
    f = list(range(1, 9))
    tl = [_tracklet(v, 1, f, 0) for v in ("View1", "View2", "View3")]
    fe, emb = _embs(tl, [[1, 0.1], [1, 0.0], [1, 0.3]])
    out = reprompt_scene(tl, fe, emb, np.array([1, 1, 2]),
                         _world_repropagate({t.view: [t] for t in tl}))
    assert [sorted(per) for per in out.values()] == [["View1", "View2", "View3"]]
    with pytest.raises(ValueError, match="merge_similarity"):
        RepromptConfig(merge_similarity=80)
