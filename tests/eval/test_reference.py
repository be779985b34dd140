"""The evaluator against the official CRTrack numbers (../shared/crtrack, see README.txt).

In-domain: GT vs the CRTracker predictions must reproduce every per-expression value of the
authors' spreadsheets (CVR-IDF1 = column IDF1 of *_CVRIDF1.xlsx, CVR-MA = column MOTA of
*_CVRMA.xlsx), each scene and All. GT evaluated against itself must score 100 / 100.
"""

import json
import os
from pathlib import Path

import numpy as np
import openpyxl
import pytest

from raysys.eval import evaluate
from raysys.io import crtrack

DATA = Path(os.environ.get("RAYSYS_CRTRACK_DIR")
            or Path(__file__).resolve().parents[2].parent / "shared" / "crtrack")
TOL = 1e-3

if not DATA.is_dir():
    pytest.skip(f"CRTrack data not found at {DATA} (set RAYSYS_CRTRACK_DIR)",
                allow_module_level=True)


def gt_root(domain: str) -> Path:
    return DATA / domain / "gt" / f"sorted_gt_test_{domain}"


def read_xlsx(path: Path) -> dict[str, dict]:
    """``{row name: {column: value}}`` of the first sheet (header row = column names)."""
    ws = openpyxl.load_workbook(path, read_only=True).worksheets[0]
    header, *body = list(ws.iter_rows(values_only=True))
    return {r[0]: dict(zip(header[1:], r[1:], strict=True)) for r in body if r[0]}


@pytest.fixture(scope="module")
def in_domain():
    return evaluate(gt_root("In-domain"),
                    DATA / "In-domain" / "Inference_results" / "CRTracker_In-domain")


@pytest.fixture(scope="module")
def reference():
    d = DATA / "reference_results" / "In-domain"
    return (read_xlsx(d / "CRTracker_In-domain_eval_CVRIDF1.xlsx"),
            read_xlsx(d / "CRTracker_In-domain_eval_CVRMA.xlsx"))


def test_every_expression_matches_the_spreadsheets(in_domain, reference):
    idf1_rows, ma_rows = reference
    got = in_domain.to_json()["expressions"]
    assert len(got) == 40
    assert set(got) <= set(idf1_rows) and set(got) <= set(ma_rows)
    bad = []
    for name, r in got.items():
        want = (idf1_rows[name]["IDF1"], ma_rows[name]["MOTA"])
        if abs(r["CVR-IDF1"] - want[0]) > TOL or abs(r["CVR-MA"] - want[1]) > TOL:
            bad.append(f"{name}: got {r['CVR-IDF1']:.4f}/{r['CVR-MA']:.4f}, want "
                       f"{want[0]:.4f}/{want[1]:.4f}")
        # the raw CLEAR-MOT counts of the interleaved sequence agree as well
        counts = tuple(ma_rows[name][k] for k in ("TP", "FP", "FN", "IDSW"))
        if tuple(r[k] for k in ("TP", "FP", "FN", "IDSW")) != counts:
            bad.append(f"{name}: TP/FP/FN/IDSW {[r[k] for k in ('TP', 'FP', 'FN', 'IDSW')]}, "
                       f"want {list(counts)}")
    assert not bad, "\n".join(bad)


def test_scenes_and_all_match(in_domain, reference):
    idf1_rows, ma_rows = reference
    official = json.loads((DATA / "reference_results" / "official_numbers.json").read_text())
    got = in_domain.to_json()
    summary = {**got["scenes"], "All": got["All"]}
    assert set(summary) == {"Circle", "Gate2", "Side", "All"}
    for scene, r in summary.items():
        row = "All scenes" if scene == "All" else scene
        assert r["CVR-IDF1"] == pytest.approx(idf1_rows[row]["IDF1"], abs=TOL), scene
        assert r["CVR-MA"] == pytest.approx(ma_rows[row]["MOTA"], abs=TOL), scene
        want = official["In-domain"][scene]
        assert r["CVR-IDF1"] == pytest.approx(want["CVR-IDF1"], abs=TOL), scene
        assert r["CVR-MA"] == pytest.approx(want["CVR-MA"], abs=TOL), scene
        assert r["n"] == want["n_seq"]
    assert got["All"]["CVR-IDF1"] == pytest.approx(54.8788, abs=TOL)  # paper: 54.88
    assert got["All"]["CVR-MA"] == pytest.approx(35.9719, abs=TOL)  # paper: 35.97
    assert got["missing_predictions"] == 0


def _gt_as_predictions(gt: Path, out: Path) -> None:
    for e in crtrack.list_expressions(gt):
        rows = crtrack.read_expression_gt(gt, e.name)
        crtrack.write_expression_pred(
            out, e.name, {v: np.column_stack([r[:, :4], r[:, 2:4] + r[:, 4:6]])
                          for v, r in rows.items()})


@pytest.mark.slow
@pytest.mark.parametrize("domain, n", [("In-domain", 40), ("Cross-domain", 48)])
def test_gt_against_itself_scores_100(tmp_path, domain, n):
    _gt_as_predictions(gt_root(domain), tmp_path)
    got = evaluate(gt_root(domain), tmp_path).to_json()
    assert got["All"] == {"CVR-IDF1": 100.0, "CVR-MA": 100.0, "n": n}
    assert all(s["CVR-IDF1"] == 100.0 and s["CVR-MA"] == 100.0 for s in got["scenes"].values())


def test_fast_reader_equals_line_parser(monkeypatch):
    """raysys.io.crtrack parses well-formed files vectorised; it must agree with the
    line-by-line parser (the fallback that reports errors) on every real file."""
    files = sorted((DATA / "In-domain").rglob("View*.txt"))
    assert len(files) == 240
    fast = [crtrack.read_pred_file(f) if f.parent.name != "gt" else crtrack.read_gt_file(f)
            for f in files]
    monkeypatch.setattr(crtrack, "_fast_rows", lambda text, ncols: None)
    for f, a in zip(files, fast, strict=True):
        b = crtrack.read_pred_file(f) if f.parent.name != "gt" else crtrack.read_gt_file(f)
        np.testing.assert_array_equal(a, b, err_msg=str(f))
