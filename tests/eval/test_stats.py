"""Benchmark statistics from GT only (raysys.eval.stats), on a hand-made split and on the
shared CRTrack GT, where the everyone reference is the issue's 18.70."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from raysys.eval.stats import everyone_predictions, split_stats
from raysys.io import crtrack
from raysys.io.dataset import DatasetLayout

CRTRACK = Path(__file__).resolve().parents[2].parent / "shared" / "crtrack"


def _write(root: Path, name: str, views: dict[str, list[tuple]]) -> None:
    lay = DatasetLayout(root, "In-domain", "test")
    crtrack.write_expression_gt(lay.gt_root, name, {
        v: np.array([(f, i, 10, 10, 10, 20) for f, i in rows], np.int64).reshape(-1, 6)
        for v, rows in views.items()})


def test_hand_made_split(tmp_path):
    # scene S, 2 views, 4 frames; people 1, 2, 3 (ids global across views)
    #   "red": person 1 in both views, frames 1-4
    #   "blue": persons 2 (View1, frames 1-2) and 3 (View2, frames 1-4)
    _write(tmp_path, "S_red", {"View1": [(f, 1) for f in range(1, 5)],
                               "View2": [(f, 1) for f in range(1, 5)]})
    _write(tmp_path, "S_blue", {"View1": [(1, 2), (2, 2)], "View2": [(f, 3) for f in range(1, 5)]})
    st = split_stats(DatasetLayout(tmp_path, "In-domain", "test"))
    (s,) = st.scenes
    assert (s.expressions, s.views, s.frames, s.referred_people) == (2, 2, 4, 3)
    assert s.people is None  # no meta/: the scene's full person list is unknown
    assert sorted(s.referred_per_expression) == [1, 2]
    assert st.referred_per_expression == {"mean": 1.5, "median": 1.5, "max": 2}
    assert st.box_height == 20.0
    # visible fraction over (referred person, view), 4 frames each:
    #   View1: 1 -> 4/4, 2 -> 2/4, 3 -> 0;  View2: 1 -> 4/4, 2 -> 0, 3 -> 4/4
    assert st.visible_fraction == pytest.approx((1 + 0.5 + 0 + 1 + 0 + 1) / 6)
    # everyone: "red" predicted as 1 + 2 + 3 -> IDTP 8, IDFP 6 (2's 2 boxes + 3's 4),
    #   IDFN 0 -> IDF1 = 2*8 / (2*8 + 6) = 72.73; "blue": IDTP 6, IDFP 8 -> 12 / 20 = 60
    ev = {n: st.everyone["scenes"]["S"]["CVR-IDF1"] for n in ("S",)}
    assert ev["S"] == pytest.approx((2 * 8 / 22 * 100 + 12 / 20 * 100) / 2, abs=0.01)


def test_everyone_predictions_are_xyxy():
    rows = np.array([[3, 7, 10, 20, 5, 8]], float)
    assert everyone_predictions({"View1": rows})["View1"].tolist() == [[3, 7, 10, 20, 15, 28]]


@pytest.mark.skipif(not CRTRACK.is_dir(), reason="needs ../shared/crtrack")
def test_crtrack_in_domain_reference():
    st = split_stats(DatasetLayout(CRTRACK, "In-domain", "test"))
    scenes = {s.scene: s for s in st.scenes}
    assert scenes["Circle"].referred_people == 32 and scenes["Side"].referred_people == 39
    assert round(st.everyone["All"]["CVR-IDF1"], 2) == 18.70
    got = {k: round(v["CVR-IDF1"], 2) for k, v in st.everyone["scenes"].items()}
    assert got == {"Circle": 14.35, "Gate2": 39.34, "Side": 17.63}
    assert st.referred_per_expression["max"] == 11
    assert st.expressions_per_scene["min"] == 5 and st.expressions_per_scene["max"] == 20


@pytest.mark.skipif(not CRTRACK.is_dir(), reason="needs ../shared/crtrack")
def test_stats_command(tmp_path, capsys):
    from raysys.cli import main

    out = tmp_path / "stats.json"
    assert main(["stats", "--data", str(CRTRACK), "--domain", "In-domain", "--json",
                 str(out)]) == 0
    assert "everyone, true ids (no language): CVR-IDF1 18.70" in capsys.readouterr().out
    import json

    assert round(json.loads(out.read_text())["everyone"]["All"]["CVR-IDF1"], 2) == 18.70
    assert main(["stats", "--data", str(tmp_path / "none")]) == 2
    assert "no such folder" in capsys.readouterr().err
