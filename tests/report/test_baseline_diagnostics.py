"""The zero-shot rows' diagnostics (raysys.report.baseline_diagnostics), on predictions made
from the tiny test split's GT, where the right figures are known, and in the report table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from raysys.baselines.zero_shot_concept import _plan
from raysys.io import crtrack
from raysys.io.gt import load_scene_tracks
from raysys.report.baseline_diagnostics import (
    identity_scores,
    proposal_scores,
    referring_scores,
    zero_shot_diagnostics,
)
from raysys.report.diagnostics_table import diagnostics_markdown, slim_diagnostics
from raysys.report.tables import METHOD_NAMES


def _person_queries(layout):
    queries, views, cats = _plan(layout)
    return [q for q in queries if cats[q.name] == "person"], views


def _write_everyone(layout, root, id_of=lambda view_index, gid: gid, drop_every=0,
                    shift=0.0):
    """The concept row's kind of output: every GT person of the scene for every person
    expression, boxes xyxy (shifted by ``shift`` px), ids ``id_of(view index, GT id)``;
    ``drop_every`` k: every k-th box left out."""
    queries, views = _person_queries(layout)
    for q in queries:
        tracks = load_scene_tracks(layout, q.scene, "person")
        rows = {}
        for k, v in enumerate(views[q.scene]):
            r = tracks.get(v, np.zeros((0, 6)))
            keep = np.ones(len(r), bool)
            if drop_every:
                keep[::drop_every] = False
            r = r[keep]
            rows[v] = np.column_stack([r[:, 0], [id_of(k, int(g)) for g in r[:, 1]],
                                       r[:, 2] + shift, r[:, 3],
                                       r[:, 2] + r[:, 4] + shift, r[:, 3] + r[:, 5]]) \
                if len(r) else np.zeros((0, 6))
        crtrack.write_expression_pred(root, q.name, rows)
    return queries


def test_perfect_boxes_and_ids_score_one_and_no_gap(tiny_test_split, tmp_path):
    _write_everyone(tiny_test_split, tmp_path)
    p = proposal_scores(tiny_test_split, tmp_path)
    assert p["gt_boxes"] > 0 and p["boxes"] == p["gt_boxes"]
    assert p["recall_iou50"] == p["precision_iou50"] == 1.0
    ids = identity_scores(tiny_test_split, tmp_path)
    assert ids["expressions"] >= 1
    assert ids["own_ids"]["CVR-IDF1"] == pytest.approx(ids["true_ids"]["CVR-IDF1"])
    assert ids["gap"] == pytest.approx(0.0)


def test_missed_boxes_lower_recall_and_shifted_boxes_fail_iou(tiny_test_split, tmp_path):
    _write_everyone(tiny_test_split, tmp_path / "drop", drop_every=4)
    p = proposal_scores(tiny_test_split, tmp_path / "drop")
    assert p["recall_iou50"] == pytest.approx(0.75, abs=0.02)
    assert p["precision_iou50"] == 1.0
    # shifted by a box's width: no overlap, nothing recalled
    _write_everyone(tiny_test_split, tmp_path / "far", shift=1000.0)
    assert proposal_scores(tiny_test_split, tmp_path / "far")["recall_iou50"] == 0.0


def test_ids_split_per_view_open_a_gap(tiny_test_split, tmp_path):
    # the same boxes, but each view its own ids: the cross-view association failed
    _write_everyone(tiny_test_split, tmp_path, id_of=lambda k, g: 1000 * (k + 1) + g)
    ids = identity_scores(tiny_test_split, tmp_path)
    assert ids["true_ids"]["CVR-IDF1"] > ids["own_ids"]["CVR-IDF1"]
    assert ids["gap"] > 1.0


def _summary(layout, score):
    """A SAM2 baseline summary whose similarity of trajectory g for an expression is
    ``score(g is one of the expression's people)``, keeping the top-scored."""
    queries, _ = _person_queries(layout)
    sims, kept = {}, {}
    for q in queries:
        egt = crtrack.read_expression_gt(layout.gt_root, q.name)
        referred = {int(i) for r in egt.values() for i in r[:, 1]}
        people = {int(g) for r in load_scene_tracks(layout, q.scene, "person").values()
                  for g in r[:, 1]}
        sims[q.name] = {str(g): score(g in referred) for g in sorted(people)}
        kept[q.name] = {g: s for g, s in sims[q.name].items() if s == max(sims[q.name].values())}
    return {"similarities": sims, "kept": kept}


def test_referring_auc_follows_the_text_filter(tiny_test_split, tmp_path):
    _write_everyone(tiny_test_split, tmp_path)
    good = referring_scores(tiny_test_split, tmp_path, _summary(tiny_test_split,
                                                                lambda r: 0.9 if r else 0.2))
    assert good["auc"] == 1.0 and good["referred"] >= 1 and good["others"] >= 1
    assert good["referred_kept"] == good["referred"] and good["others_kept"] == 0
    bad = referring_scores(tiny_test_split, tmp_path, _summary(tiny_test_split,
                                                               lambda r: 0.2 if r else 0.9))
    assert bad["auc"] == 0.0
    # an old summary without every similarity: said, not guessed
    assert referring_scores(tiny_test_split, tmp_path, {"kept": {}})["auc"] is None


def test_ids_that_do_not_match_the_concept_row_are_left_out(tiny_test_split, tmp_path):
    _write_everyone(tiny_test_split, tmp_path, id_of=lambda k, g: g + 500)
    res = referring_scores(tiny_test_split, tmp_path,
                           _summary(tiny_test_split, lambda r: 0.9 if r else 0.2))
    assert res["expressions"] == 0 and res["auc"] is None and "differ" in res["note"]


def test_zero_shot_rows_in_the_report_table(tiny_test_split, tmp_path):
    concept, sam2 = tmp_path / "concept", tmp_path / "sam2"
    _write_everyone(tiny_test_split, concept)
    sam2.mkdir()
    (sam2 / "baseline.json").write_text(json.dumps(
        _summary(tiny_test_split, lambda r: 0.9 if r else 0.2)))
    diag = zero_shot_diagnostics(tiny_test_split, concept, sam2)
    assert set(diag) == {"zero_shot_concept", "zero_shot_sam2"}
    # kept = exactly the expressions' people, with GT boxes: the expressions' own GT
    assert diag["zero_shot_sam2"]["kept_boxes"]["CVR-IDF1"] == pytest.approx(100.0)
    md = "".join(diagnostics_markdown(slim_diagnostics(diag), METHOD_NAMES))
    assert METHOD_NAMES["zero_shot_concept"] in md and METHOD_NAMES["zero_shot_sam2"] in md
    recall_row = next(line for line in md.splitlines() if line.startswith("| proposal recall"))
    assert recall_row.count("100.0%") == 2
    auc_row = next(line for line in md.splitlines()
                   if line.startswith("| referring AUC on its own"))
    assert auc_row.split("|")[2].strip() == "-" and auc_row.split("|")[3].strip() == "1.000"
    kept_row = next(line for line in md.splitlines() if "without propagation" in line)
    assert kept_row.split("|")[3].strip() == "100.00 / 100.00"


def test_report_step_runs_once_and_is_skipped_after(tiny_test_split, tmp_path):
    from raysys.report import pipeline
    from raysys.report.config import ReportConfig
    from raysys.report.runner import StepRunner

    out = tmp_path / "rep"
    pred = out / "predictions" / "In-domain"
    _write_everyone(tiny_test_split, pred / "zero_shot_concept")
    (pred / "zero_shot_sam2").mkdir(parents=True)
    (pred / "zero_shot_sam2" / "baseline.json").write_text(json.dumps(
        _summary(tiny_test_split, lambda r: 0.9 if r else 0.2)))
    cfg = ReportConfig(out=out)
    notes: list[str] = []
    r = StepRunner(out, None)
    # no baseline ran in this report: nothing to diagnose
    assert pipeline._zero_shot_diagnostics(r, cfg, tiny_test_split.root, notes) == {}
    r.fingerprints |= {"baseline_zero_shot_concept_in": "c1", "baseline_zero_shot_sam2_in": "s1"}
    first = pipeline._zero_shot_diagnostics(r, cfg, tiny_test_split.root, notes)
    assert first["zero_shot_sam2"]["referring"]["auc"] == 1.0 and not notes
    assert json.loads((out / "diagnostics" / "zero_shot.json").read_text()) == first
    r2 = StepRunner(out, None)
    r2.fingerprints |= dict(r.fingerprints)
    assert pipeline._zero_shot_diagnostics(r2, cfg, tiny_test_split.root, notes) == first
    assert r2.skipped == ["diagnostics_zero_shot"]


def test_the_sam2_rows_step_settings_name_its_describer(tmp_path):
    """A report folder resumed after the SAM2 row's describer or its weights change runs
    the row again: both are in the step's settings (the concept row has no describer)."""
    import hashlib

    from raysys.backends.attribute_net import EMBEDDED_PATH
    from raysys.report.steps import baseline_settings

    sam2 = baseline_settings("zero_shot_sam2", tmp_path, "In-domain", None, "up")
    assert sam2["describer"] == {
        "name": "attributes",
        "weights_sha256": hashlib.sha256(EMBEDDED_PATH.read_bytes()).hexdigest()}
    concept = baseline_settings("zero_shot_concept", tmp_path, "In-domain", None, "up")
    assert "describer" not in concept
    assert {k: v for k, v in sam2.items() if k != "describer"} == concept | {
        "method": "zero_shot_sam2"}
