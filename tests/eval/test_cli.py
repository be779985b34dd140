"""``raysys eval``: table, JSON, and one-line errors (exit 2, file and line, no traceback)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from raysys.cli import main
from raysys.io import crtrack

NAMES = ["Circle_A man in a red coat, walking", "Side_A  woman"]  # comma, double space


def box_rows(frames, oid, x):
    """10x10 boxes at (x, 0) in the given frames: (n, 6) frame, id, left, top, w, h."""
    return np.array([[f, oid, x, 0, 10, 10] for f in frames], dtype=np.float64)


@pytest.fixture
def split(tmp_path):
    """A two-expression, two-view split whose predictions are perfect except one view."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    for name in NAMES:
        g = {"View1": box_rows([1, 2, 3], 1, 0), "View2": box_rows([1, 2], 1, 20)}
        crtrack.write_expression_gt(gt, name, g)
        p = {v: np.column_stack([r[:, :4], r[:, 2:4] + r[:, 4:6]]) for v, r in g.items()}
        crtrack.write_expression_pred(pred, name, p)
    return gt, pred


def test_table_and_json(split, tmp_path, capsys):
    gt, pred = split
    out = tmp_path / "res" / "eval.json"
    rc = main(["eval", "--gt", str(gt), "--pred", str(pred), "--json", str(out),
               "--per-expression"])
    assert rc == 0
    stdout = capsys.readouterr().out
    lines = stdout.splitlines()
    assert lines[-1].split() == ["All", "2", "100.000", "100.000"]
    assert any(line.startswith("Circle ") for line in lines)
    assert NAMES[1] in stdout  # per-expression rows keep the exact folder name
    res = json.loads(out.read_text())
    assert set(res) == {"All", "scenes", "expressions", "missing_predictions"}
    assert res["All"] == {"CVR-IDF1": 100.0, "CVR-MA": 100.0, "n": 2}
    assert set(res["scenes"]) == {"Circle", "Side"}
    assert set(res["expressions"]) == set(NAMES)
    e = res["expressions"][NAMES[0]]
    # 5 GT rows, all matched in both sequences
    assert (e["TP"], e["FP"], e["FN"], e["IDSW"], e["IDTP"], e["n_gt"]) == (5, 0, 0, 0, 5, 5)
    assert [p.name for p in out.parent.iterdir()] == ["eval.json"]  # no temp file left


# (what, file to corrupt (relative to the split root), content, line or None)
MALFORMED = [
    ("wrong column count", f"pred/{NAMES[0]}/View1.txt",
     "1,1,0,0,10,10,1,-1,-1,-1\n2,1,0,0,10,10,1,-1,-1\n", 2),
    ("non-integer frame", f"pred/{NAMES[0]}/View2.txt",
     "1,1,20,0,30,10,1,-1,-1,-1\n2,1,20,0,30,10,1,-1,-1,-1\n2.5,1,20,0,30,10,1,-1,-1,-1\n", 3),
    ("non-integer id", f"pred/{NAMES[1]}/View1.txt", "1,a,0,0,10,10,1,-1,-1,-1\n", 1),
    ("duplicate (frame, id)", f"pred/{NAMES[1]}/View2.txt",
     "1,1,20,0,30,10,1,-1,-1,-1\n1,1,21,0,31,10,1,-1,-1,-1\n", 2),
    ("GT column count", f"gt/{NAMES[1]}/gt/View1.txt", "1,1,0,0,10,10,1,1,1\n1,2,0\n", 2),
    ("unreadable file", f"pred/{NAMES[0]}/View1.txt", b"\xff\xfe\x00\x81", None),
    ("missing prediction file", f"pred/{NAMES[1]}/View2.txt", None, None),
    ("missing prediction folder", f"pred/{NAMES[1]}", None, None),
]


def _corrupt(root, rel, content):
    path = root / rel
    if content is None:
        if path.is_dir():
            for f in path.iterdir():
                f.unlink()
            path.rmdir()
        else:
            path.unlink()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


@pytest.mark.parametrize("rel, content, line", [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
def test_malformed_input_exits_2_with_file_and_line(split, tmp_path, capsys, rel, content, line):
    gt, pred = split
    path = _corrupt(tmp_path, rel, content)
    rc = main(["eval", "--gt", str(gt), "--pred", str(pred)])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert path.name in err
    if line is not None:
        assert f"{path.name}:{line}:" in err


def test_missing_as_empty_reports_the_count(split, capsys):
    gt, pred = split
    (pred / NAMES[0] / "View2.txt").unlink()
    assert main(["eval", "--gt", str(gt), "--pred", str(pred)]) == 2
    capsys.readouterr()
    assert main(["eval", "--gt", str(gt), "--pred", str(pred), "--missing-as-empty"]) == 0
    out, err = capsys.readouterr()
    assert "1 prediction file(s) missing" in err
    # the missing view's 2 GT rows become FN in that expression: CVR-MA = 100 (1 - 2/5) = 60,
    # CVR-IDF1 = 2*3 / (5 + 3) = 75. All = (75 + 100) / 2 = 87.5 and (60 + 100) / 2 = 80
    assert out.splitlines()[-1].split() == ["All", "2", "87.500", "80.000"]


def test_subprocess_error_has_no_traceback(split, tmp_path):
    gt, pred = split
    bad = _corrupt(tmp_path, f"pred/{NAMES[0]}/View1.txt", "1,1,0,0,10,10,1,-1,-1,-1\n1,1\n")
    r = subprocess.run([sys.executable, "-m", "raysys.cli", "eval", "--gt", str(gt),
                        "--pred", str(pred)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert f"{bad}:2:" in r.stderr and "expected 10" in r.stderr


def test_ids_beyond_float64_are_held_exactly(split, tmp_path, capsys):
    """2^53 and 2^53 + 1 are one float64: read as int64 and ranked per expression, they stay
    two ids, and the scores equal those of the same rows with small ids."""
    gt, pred = split
    f = pred / NAMES[0] / "View1.txt"
    small = "1,{a},0,0,10,10,1,-1,-1,-1\n2,{a},0,0,10,10,1,-1,-1,-1\n1,{b},50,0,60,10,1,-1,-1,-1\n"
    big = 1 << 53
    scores = []
    for a, b in ((5, 6), (big, big + 1)):
        f.write_text(small.format(a=a, b=b))
        out = tmp_path / f"eval_{a}.json"
        assert main(["eval", "--gt", str(gt), "--pred", str(pred), "--json", str(out)]) == 0
        scores.append(json.loads(out.read_text())["expressions"][NAMES[0]])
    rows, ids = crtrack.read_pred_file(f, with_ids=True)
    assert ids.tolist() == [big, big, big + 1] and ids.dtype == np.int64
    assert scores[0] == scores[1] and scores[0]["FP"] >= 1  # the id at x=50 is no hit
    capsys.readouterr()
