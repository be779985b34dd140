"""The sweep's search space (tune/space.yaml), its schedule-aware ASHA settings, the
best config that `raysys train --config` takes, and the CLI's one-line errors. No Ray."""

import argparse
import json
from pathlib import Path

import pytest

from raysys.config import to_dict
from raysys.errors import UserError
from raysys.training.config import TrainConfig, quick_config
from raysys.tune.space import DEFAULT_SPACE, apply_params, load_space, parse_space, to_tune
from raysys.tune.sweep import SweepConfig, grace_epoch, split_prefix

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("candidate_generator", "vc_cma_bar", "cgct")


def test_the_repo_space_file_is_the_default_and_converts_to_tune():
    space = load_space(ROOT / "tune" / "space.yaml", STAGES)
    assert space == parse_space(DEFAULT_SPACE, STAGES)
    assert list(space) == ["lambda_dyn", "alpha", "delta", "lam"]
    assert all((p.low, p.high) == (0.0, 1.0) for p in space.values())
    ts = to_tune(space)
    assert set(ts) == set(space) and ts["alpha"].lower == 0.0 and ts["alpha"].upper == 1.0


@pytest.mark.parametrize("spec, words", [
    ({"gamma": {"low": 0, "high": 1}}, ["unknown", "'gamma'", "lambda_dyn [0, 10]",
                                        "alpha [0, 1]", "lr.cgct"]),
    ({"alpha": {"low": 0, "high": 2}}, ["alpha", "valid range [0, 1]", "[0, 2]"]),
    ({"delta": {"low": 0.5, "high": 0.5}}, ["delta", "low < high"]),
    ({"lam": {"dist": "loguniform", "low": 0, "high": 1}}, ["lam", "loguniform: low > 0"]),
    ({"lam": {"dist": "normal", "low": 0, "high": 1}}, ["lam", "uniform|loguniform|choice"]),
    ({"lr.nope": {"low": 1e-4, "high": 1e-3}}, ["unknown", "'lr.nope'", "lr.vc_cma_bar"]),
    ({"alpha": {"dist": "choice", "values": [0.2, 1.5]}}, ["alpha", "[0, 1]", "1.5"]),
    ({}, ["non-empty", "lambda_dyn"]),
])
def test_unknown_names_and_bad_ranges_are_user_errors_listing_the_valid_ones(spec, words):
    with pytest.raises(UserError) as e:
        parse_space(spec, STAGES)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_stage_learning_rates_and_choices_parse():
    space = parse_space({"lr.cgct": {"dist": "loguniform", "low": 1e-4, "high": 1e-2},
                         "alpha": {"dist": "choice", "values": [0.25, 0.75]}}, STAGES)
    assert space["lr.cgct"].dist == "loguniform" and space["alpha"].values == (0.25, 0.75)


def test_apply_params_sets_the_paper_parameters_and_stage_lrs():
    cfg = apply_params(quick_config(), {"lambda_dyn": 0.1, "alpha": 0.9, "delta": 0.3,
                                        "lam": 0.7, "lr.cgct": 5e-3})
    m = cfg.model
    assert (m.lambda_dyn, m.alpha, m.delta, m.lam) == (0.1, 0.9, 0.3, 0.7)
    assert [s.lr for s in cfg.stages] == [2e-3, 5e-4, 5e-3]
    with pytest.raises(UserError, match="unknown parameters"):
        apply_params(quick_config(), {"beta": 1.0})


def test_prefix_and_grace_period_follow_the_staged_schedule():
    paper = TrainConfig()  # CG 12, VC-CMA+BAR 20, CGCT 10 epochs
    head, tail = split_prefix(paper, ["alpha", "delta"])
    assert [s.name for s in head] == ["candidate_generator"]
    assert [s.name for s in tail] == ["vc_cma_bar", "cgct"]
    assert grace_epoch(paper, ["alpha", "lambda_dyn"]) == 13  # first VC-CMA epoch
    assert grace_epoch(paper, ["alpha", "delta", "lam"]) == 33  # first CGCT epoch
    assert split_prefix(paper, ["lr.candidate_generator"])[0] == ()  # nothing shared


def test_best_config_is_taken_as_is_by_raysys_train(tmp_path):
    from raysys.commands.train import build_train_config

    best = apply_params(quick_config(), {"alpha": 0.8, "delta": 0.2, "lr.cgct": 3e-3})
    f = tmp_path / "best_config.json"
    f.write_text(json.dumps(to_dict(best)))
    args = argparse.Namespace(quick=False, config=f, supervision=None, sam2_config=None,
                              sam2_checkpoint=None, text_encoder=None)
    assert build_train_config(args) == best  # the paper defaults are all overridden


def test_sweep_config_errors():
    import importlib.util

    with pytest.raises(UserError, match="--trials"):
        SweepConfig(trials=0)
    if importlib.util.find_spec("optuna") is None:
        with pytest.raises(UserError, match="pip install optuna"):
            SweepConfig(search="optuna")


def test_cli_errors_are_one_line_before_ray_starts(tmp_path, capsys):
    from raysys.cli import main

    bad = tmp_path / "space.yaml"
    bad.write_text("alpha: {low: 0, high: 3}\n")
    rc = main(["tune", "--labels", str(tmp_path), "--out", str(tmp_path / "s"),
               "--space", str(bad)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "valid range [0, 1]" in err, err
    assert not (tmp_path / "s").exists()


def test_the_ray_job_entrypoint_shares_the_options_and_errors(tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, str(ROOT / "tune" / "sweep.py"), "--help"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "examples:" in r.stdout and "--val-gt" in r.stdout
    bad = tmp_path / "space.yaml"
    bad.write_text("gamma: {low: 0, high: 1}\n")
    r = subprocess.run([sys.executable, str(ROOT / "tune" / "sweep.py"), "--labels",
                        str(tmp_path), "--out", str(tmp_path / "s"), "--space", str(bad)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("tune/sweep.py: error:") and "'gamma'" in r.stderr
