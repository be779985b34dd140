"""``raysys params``: the report's shape (tiny default) and the paper-sized module counts."""

import json
import time

import pytest

from raysys.cli import main
from raysys.viewsam.report import MODULE_KEYS, PAPER_MODULE_PARAMS


def test_params_json_shape_tiny_default(capsys, tmp_path):
    assert main(["params", "--json", str(tmp_path / "p.json")]) == 0
    rep = json.loads((tmp_path / "p.json").read_text())
    assert "trainable" in capsys.readouterr().out  # the table is printed as well
    assert set(rep) == {"base", "text_encoder", "modules", "trainable", "total",
                        "trainable_share"}
    assert set(rep["modules"]) == set(MODULE_KEYS)
    assert all(isinstance(rep[k], int) for k in ("base", "text_encoder", "trainable", "total"))
    assert all(isinstance(n, int) and n > 0 for n in rep["modules"].values())
    assert rep["total"] == rep["base"] + rep["text_encoder"] + sum(rep["modules"].values())
    # embedded default: random-init base trains, text encoder frozen
    assert rep["trainable"] == rep["total"] - rep["text_encoder"]
    assert rep["trainable_share"] == pytest.approx(rep["trainable"] / rep["total"])
    assert 3e6 < rep["base"] < 4e6  # the tiny SAM2 (~3.5 M)


def test_params_table_and_errors(capsys):
    assert main(["params", "--freeze-base"]) == 0
    out = capsys.readouterr().out
    for row in ("base (SAM2)", "text_encoder", "vc_cma", "candidate_generator", "bar", "cgct",
                "trainable", "total"):
        assert row in out
    assert main(["params", "--sam2-config", "no_such.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("raysys params: error: ") and "valid names" in err


def test_params_hiera_bplus_roberta_base_match_the_paper(capsys):
    t0 = time.perf_counter()
    assert main(["params", "--json", "-", "--freeze-base", "--sam2-config",
                 "configs/sam2.1/sam2.1_hiera_b+.yaml", "--text-encoder",
                 "random:roberta-base"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert time.perf_counter() - t0 < 60, "the report builds modules only (no forward pass)"
    assert rep["base"] == pytest.approx(80.8e6, rel=0.01)  # SAM2.1 Hiera-B+
    assert rep["text_encoder"] == pytest.approx(124.6e6, rel=0.01)  # RoBERTa-base
    for key, paper in PAPER_MODULE_PARAMS.items():
        assert rep["modules"][key] == pytest.approx(paper, rel=0.25), key
    # frozen base + frozen text encoder: ViewSAM adds ~10% trainable parameters
    assert rep["trainable"] == sum(rep["modules"].values())
    assert 0.07 < rep["trainable_share"] < 0.13
