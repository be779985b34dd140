"""Tiny hand-worked cases for CLEAR-MOT, IDF1 and the CRTrack cross-view sequences.

Boxes are 10x10 unless said otherwise (area 100). Two boxes on the same row shifted by dx
have IoU (10 - dx) / (10 + dx): dx=1 -> 0.818, dx=2 -> 0.667, dx=3 -> 0.538, dx=5 -> 0.333.
"""

import numpy as np
import pytest

from raysys.eval import (
    ClearMOTCounts,
    EvalResult,
    ExpressionResult,
    IdentityCounts,
    aggregate,
    build_sequences,
    clear_mot,
    evaluate_expression,
    identity,
    round_significant,
)


def rows(*r):
    """(frame, id, left[, top, width, height]) tuples -> (n, 6); defaults top 0, 10x10."""
    out = [tuple(x) + (0, 10, 10)[len(x) - 3:] for x in r]
    return np.array(out, dtype=np.float64).reshape(-1, 6)


def xyxy(a):
    """xywh rows -> the xyxy prediction format of the CRTrack files."""
    b = a.copy()
    b[:, 4:6] += b[:, 2:4]
    return b


GT3 = rows((1, 1, 0), (2, 1, 0), (3, 1, 0))  # one object, frames 1-3, same box

# (name, gt, pred, (TP, FP, FN, IDSW), MOTA)
CLEAR_CASES = [
    # every GT row matched by the same id: MOTA = 100 (1 - 0/3)
    ("perfect", GT3, rows((1, 7, 0), (2, 7, 0), (3, 7, 0)), (3, 0, 0, 0), 100.0),
    # an extra box far away in frame 2: FP = 4 - 3; MOTA = 100 (1 - 1/3)
    ("one FP", GT3, rows((1, 7, 0), (2, 7, 0), (2, 8, 50), (3, 7, 0)), (3, 1, 0, 0), 200 / 3),
    # frame 2 not predicted: FN = 3 - 2; MOTA = 100 (1 - 1/3)
    ("one FN", GT3, rows((1, 7, 0), (3, 7, 0)), (2, 0, 1, 0), 200 / 3),
    # id 7 -> 8 in frame 3 while GT 1 was present in frame 2: IDSW 1; MOTA = 100 (1 - 1/3)
    ("id switch", GT3, rows((1, 7, 0), (2, 7, 0), (3, 8, 0)), (3, 0, 0, 1), 200 / 3),
    # GT absent in frame 3, comes back in 4 with another id: not a switch (GT not in frame 3)
    ("switch after GT gap", rows((1, 1, 0), (2, 1, 0), (4, 1, 0)),
     rows((1, 7, 0), (2, 7, 0), (4, 8, 0)), (3, 0, 0, 0), 100.0),
    # GT present but missed in frame 2, matched to 8 in frame 3: last match was 7 -> IDSW;
    # MOTA = 100 (1 - (1 + 0 + 1) / 3)
    ("switch after a miss", GT3, rows((1, 7, 0), (3, 8, 0)), (2, 0, 1, 1), 100 / 3),
    # frame 2: id 7 (IoU 0.667, dx=2) continues the frame-1 match although id 8 fits
    # perfectly (IoU 1): no switch, 8 is an FP; MOTA = 100 (1 - 1/3)
    ("previous match continues", GT3, rows((1, 7, 0), (2, 7, 2), (2, 8, 0), (3, 7, 0)),
     (3, 1, 0, 0), 200 / 3),
    # 20x10 box over a 10x10 one: IoU = 100 / 200 = 0.5 exactly, matched (>= 0.5)
    ("IoU exactly 0.5", rows((1, 1, 0), (2, 1, 0)), rows((1, 7, 0, 0, 20, 10), (2, 7, 0)),
     (2, 0, 0, 0), 100.0),
    # width 20.02: IoU = 100 / 200.2 = 0.4995 < 0.5: FP + FN; MOTA = 100 (1 - 2/2) = 0
    ("IoU just below 0.5", rows((1, 1, 0), (2, 1, 0)),
     rows((1, 7, 0, 0, 20.02, 10), (2, 7, 0)), (1, 1, 1, 0), 0.0),
    # width 19.98: IoU = 100 / 199.8 = 0.5005: matched
    ("IoU just above 0.5", rows((1, 1, 0), (2, 1, 0)),
     rows((1, 7, 0, 0, 19.98, 10), (2, 7, 0)), (2, 0, 0, 0), 100.0),
    # GT A at x=0, B at x=3; pred 7 at x=1 (IoU A .818, B .667), 8 at x=-2 (IoU A .667,
    # B .333 -> not allowed). Greedy best-IoU would give 7-A and leave B: 1 match. The
    # assignment takes the most matches first: 8-A, 7-B -> TP 2
    ("most matches first", rows((1, 1, 0), (1, 2, 3)), rows((1, 7, 1), (1, 8, -2)),
     (2, 0, 0, 0), 100.0),
    # tie: GT 1 and 2 identical, one prediction 10: the lower GT id (row-major index) gets
    # it. Frame 2: GT 1 (present in frame 1, last matched 10) matched to 20 -> IDSW.
    # TP 2, FN 1 (GT 2 in frame 1); MOTA = 100 (1 - (1 + 0 + 1) / 3)
    ("tie goes to the lower GT id", rows((1, 1, 0), (1, 2, 0), (2, 1, 0)),
     rows((1, 10, 0), (2, 20, 0)), (2, 0, 1, 1), 100 / 3),
    # empty prediction: everything FN; MOTA = 100 (1 - 3/3) = 0
    ("no predictions", GT3, rows(), (0, 0, 3, 0), 0.0),
]


@pytest.mark.parametrize("gt, pred, counts, mota", [c[1:] for c in CLEAR_CASES],
                         ids=[c[0] for c in CLEAR_CASES])
def test_clear_mot(gt, pred, counts, mota):
    c = clear_mot(gt, pred)
    assert (c.tp, c.fp, c.fn, c.idsw) == counts
    assert (c.n_gt, c.n_pred) == (len(gt), len(pred))
    assert c.mota == pytest.approx(mota)


def test_clear_mot_counts_add_up():
    a = ClearMOTCounts(1, 2, 3, 4, 5, 6) + ClearMOTCounts(1, 1, 1, 1, 1, 1)
    assert a == ClearMOTCounts(2, 3, 4, 5, 6, 7)
    # MOTA of the sum = 100 (1 - (4 + 3 + 5) / 6) = -100
    assert a.mota == pytest.approx(-100.0)


# (name, gt, pred, (IDTP, IDFP, IDFN), IDF1)
ID_CASES = [
    ("perfect", GT3, rows((1, 7, 0), (2, 7, 0), (3, 7, 0)), (3, 0, 0), 100.0),
    # GT 1 frames 1-4, predicted as 7 (frames 1-2) then 8 (frames 3-4): only one of them can
    # be matched to GT 1: IDTP 2, IDFP 2, IDFN 2; IDF1 = 2*2 / (4 + 4) = 50
    ("split track", rows((1, 1, 0), (2, 1, 0), (3, 1, 0), (4, 1, 0)),
     rows((1, 7, 0), (2, 7, 0), (3, 8, 0), (4, 8, 0)), (2, 2, 2), 50.0),
    # pred 7 follows GT 1 (frames 1-3) then GT 2 (frames 4-5): 7 <-> 1, IDTP 3;
    # IDF1 = 2*3 / (5 + 5) = 60
    ("merged track", rows((1, 1, 0), (2, 1, 0), (3, 1, 0), (4, 2, 50), (5, 2, 50)),
     rows((1, 7, 0), (2, 7, 0), (3, 7, 0), (4, 7, 50), (5, 7, 50)), (3, 2, 2), 60.0),
    # GT 1 (x=0) and GT 2 (x=50) in frames 1-5. Pred 7 covers GT 1 in frames 1-3 and GT 2 in
    # 4-5; pred 8 covers GT 1 in 4-5. Greedy 7-1 would give 3 hits; the global optimum is
    # 7-2 (2) + 8-1 (2) = 4: IDTP 4, IDFP 7 - 4, IDFN 10 - 4; IDF1 = 2*4 / (10 + 7) = 47.06
    ("global assignment",
     rows(*[(f, 1, 0) for f in range(1, 6)], *[(f, 2, 50) for f in range(1, 6)]),
     rows((1, 7, 0), (2, 7, 0), (3, 7, 0), (4, 7, 50), (5, 7, 50), (4, 8, 0), (5, 8, 0)),
     (4, 3, 6), 800 / 17),
    # IoU 0.43 (dx=4) everywhere: no hit; IDF1 = 0
    ("below threshold", GT3, rows((1, 7, 4), (2, 7, 4), (3, 7, 4)), (0, 3, 3), 0.0),
]


@pytest.mark.parametrize("gt, pred, counts, score", [c[1:] for c in ID_CASES],
                         ids=[c[0] for c in ID_CASES])
def test_identity(gt, pred, counts, score):
    i = identity(gt, pred)
    assert (i.idtp, i.idfp, i.idfn) == counts
    assert i.idf1 == pytest.approx(score)


def test_metrics_reject_duplicates_and_bad_shapes():
    with pytest.raises(ValueError, match="duplicate"):
        clear_mot(rows((1, 1, 0), (1, 1, 5)), rows())
    with pytest.raises(ValueError, match="shape"):
        identity(np.zeros((2, 5)), rows())
    with pytest.raises(ValueError, match="integers"):
        clear_mot(rows((1.5, 1, 0)), rows())


@pytest.mark.parametrize(
    "x, want",
    [
        (1234.25, 1234.3),  # exact binary half: away from zero (printf's half-even: 1234.2)
        (-1234.25, -1234.3),
        (1234.35, 1234.3),  # binary 1234.34999...: decided on the exact value
        (64.52000000000004, 64.52),  # x2 - x1 noise disappears
        (123456.0, 123460.0),
        (0.000123456, 0.00012346),
        (99999.5, 100000.0),
        (12.5, 12.5),
        (0.0, 0.0),
    ],
)
def test_round_significant(x, want):
    assert round_significant(np.array([x]))[0] == want


def test_sequences_offsets_and_interleaving():
    # View1: GT frames 1-3; View2: GT frame 1 and 2, prediction up to frame 5.
    gt = {"View1": rows((1, 1, 0), (3, 1, 0)), "View2": rows((1, 1, 0), (2, 1, 0))}
    pred = {"View1": xyxy(rows((1, 1, 0), (2, 1, 0))),
            "View2": xyxy(rows((1, 1, 0), (5, 1, 0)))}
    seq = build_sequences(gt, pred)
    g, p = seq["CVR-IDF1"]
    # off_0 = 0; off_1 = 0 + maxframe_0 (3) + 1 = 4: View2 frames 1, 2 -> 5, 6
    assert g[:, 0].tolist() == [1, 3, 5, 6]
    # View2 prediction frame 5 -> 9 is after the last GT frame (6): dropped
    assert p[:, 0].tolist() == [1, 2, 5]
    g, p = seq["CVR-MA"]
    # frame * V + m with V = 2: View1 1, 3 -> 2, 6; View2 1, 2 -> 3, 5 (sorted later)
    assert sorted(g[:, 0].tolist()) == [2, 3, 5, 6]
    # predictions: View1 1, 2 -> 2, 4; View2 1 -> 3, 5 -> 11 > 6 dropped
    assert sorted(p[:, 0].tolist()) == [2, 3, 4]
    assert p[:, 4:6].tolist() == [[10, 10]] * 3  # xyxy -> xywh


def test_frame_zero_survives_only_in_later_views():
    # frame 0 in View1 -> frame' 0 (dropped); in View2 -> 0 + off_1 or 0*2+1 = 1 (kept)
    gt = {"View1": rows((0, 1, 0), (1, 1, 0)), "View2": rows((0, 1, 0), (1, 1, 0))}
    seq = build_sequences(gt, {})
    assert seq["CVR-IDF1"][0][:, 0].tolist() == [1, 2, 3]  # off_1 = 1 + 1
    assert sorted(seq["CVR-MA"][0][:, 0].tolist()) == [1, 2, 3]


def test_views_in_numeric_order():
    # View2 (boxes at x=0) comes before View10 (x=50) although "View10" < "View2" as strings
    gt = {"View10": rows((1, 1, 50), (2, 1, 50)), "View2": rows((1, 1, 0), (2, 1, 0))}
    g, _ = build_sequences(gt, {})["CVR-IDF1"]
    assert g[:, 0].tolist() == [1, 2, 4, 5] and g[:, 2].tolist() == [0, 0, 50, 50]


def test_cross_view_id_change_is_an_id_switch():
    # One person seen in two views (frames 1-2), predicted as 7 in View1 and 8 in View2.
    gt = {"View1": rows((1, 1, 0), (2, 1, 0)), "View2": rows((1, 1, 0), (2, 1, 0))}
    pred = {"View1": xyxy(rows((1, 7, 0), (2, 7, 0))),
            "View2": xyxy(rows((1, 8, 0), (2, 8, 0)))}
    r = evaluate_expression(gt, pred)
    # interleaved frames 2 (7), 3 (8), 4 (7), 5 (8): every step after the first switches:
    # IDSW 3, TP 4; CVR-MA = 100 (1 - 3/4) = 25
    assert (r.clear.tp, r.clear.idsw) == (4, 3)
    assert r.cvr_ma == pytest.approx(25.0)
    # sequential: GT 1 has 4 rows, 7 and 8 cover 2 each: IDTP 2; CVR-IDF1 = 2*2 / 8 = 50
    assert r.cvr_idf1 == pytest.approx(50.0)


def test_one_row_files_are_ignored():
    gt = {"View1": rows((1, 1, 0), (2, 1, 0)), "View2": rows((1, 1, 0), (2, 1, 0))}
    pred = {"View1": xyxy(rows((1, 7, 0), (2, 7, 0))), "View2": xyxy(rows((1, 7, 0)))}
    r = evaluate_expression(gt, pred)
    # View2's prediction file has one row: ignored, so View2's GT is all FN:
    # TP 2, FN 2; CVR-MA = 100 (1 - 2/4) = 50 (it would be 75 if the row counted);
    # CVR-IDF1 = 2*2 / (4 + 2) = 66.67
    assert (r.clear.tp, r.clear.fn, r.clear.n_pred) == (2, 2, 2)
    assert r.cvr_ma == pytest.approx(50.0)
    assert r.cvr_idf1 == pytest.approx(200 / 3)
    # a one-row GT file is ignored too: View2 now has no GT and its predictions are FP
    gt["View2"] = rows((1, 1, 0))
    pred["View2"] = xyxy(rows((1, 7, 0), (2, 7, 0)))
    r = evaluate_expression(gt, pred)
    assert (r.clear.n_gt, r.clear.tp) == (2, 2)


def test_ma_is_clipped_at_zero():
    # 2 GT rows, 2 predictions far away: MOTA = 100 (1 - (2 + 2) / 2) = -100 -> 0
    gt = {"View1": rows((1, 1, 0), (2, 1, 0))}
    r = evaluate_expression(gt, {"View1": xyxy(rows((1, 7, 90), (2, 7, 90)))})
    assert r.clear.mota == pytest.approx(-100.0)
    assert r.cvr_ma == 0.0
    assert r.to_json()["MOTA"] == pytest.approx(-100.0)


def test_aggregation_is_unweighted_means():
    def res(idf1_counts, clear_counts):
        return ExpressionResult(IdentityCounts(*idf1_counts), ClearMOTCounts(*clear_counts))

    results = {
        "A_x": res((1, 0, 0), (1, 0, 0, 0, 1, 1)),  # IDF1 100, MA 100
        "A_y": res((0, 1, 1), (0, 1, 1, 0, 1, 1)),  # IDF1 0, MA 100 (1 - 2) = -100 -> 0
        "B_z": res((1, 1, 1), (3, 0, 1, 0, 4, 3)),  # IDF1 2 / 4 = 50; MA 100 (1 - 1/4) = 75
    }
    agg = aggregate(results)
    assert agg["scenes"]["A"] == {"CVR-IDF1": 50.0, "CVR-MA": 50.0, "n": 2}
    assert agg["scenes"]["B"] == {"CVR-IDF1": 50.0, "CVR-MA": 75.0, "n": 1}
    # All over expressions: (100 + 0 + 50) / 3 = 50 and (100 + 0 + 75) / 3 = 58.33 (the mean
    # of the scene means would be 62.5)
    assert agg["All"]["CVR-IDF1"] == pytest.approx(50.0)
    assert agg["All"]["CVR-MA"] == pytest.approx(175 / 3)
    table = EvalResult(results).format_table(per_expression=True)
    assert "A_y" in table and table.splitlines()[-1].split()[:2] == ["All", "3"]


def test_iou_matrix_xyxy_by_hand():
    from raysys.eval.pairs import iou_matrix_xyxy

    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], float)  # the second has no area
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30]], float)
    iou = iou_matrix_xyxy(a, b)
    assert iou.shape == (2, 3)
    np.testing.assert_allclose(iou[0], [50 / 150, 1.0, 0.0])
    np.testing.assert_array_equal(iou[1], [0.0, 0.0, 0.0])
    assert iou_matrix_xyxy(np.zeros((0, 4)), b).shape == (0, 3)
