"""Ray Tune sweeps on a real local Ray (2 CPUs), under the weak-supervision guard: a
3-trial quick sweep, killed and resumed without repeating finished trials, and its
outputs. A tiny schedule (CG 1 epoch, shared; VC-CMA+BAR 1; CGCT 1) at 64 px."""

import json
import os
import sys
from pathlib import Path

import cloudpickle
import pandas as pd
import pytest

from raysys import guard
from raysys.errors import UserError
from raysys.io.dataset import DatasetLayout
from raysys.runtime import Resources
from raysys.training.config import StageConfig, quick_config
from raysys.tune.space import parse_space
from raysys.tune.sweep import INTERRUPT_ENV, SweepConfig, run_sweep

pytestmark = pytest.mark.slow  # minutes of Ray Train trials on 2 cores

ray = pytest.importorskip("ray")
cloudpickle.register_pickle_by_value(sys.modules[__name__])

STAGES = (StageConfig("candidate_generator", ("candidate_generator",), 1, 2e-3,
                      "id_agnostic_single_view"),
          StageConfig("vc_cma_bar", ("vc_cma", "bar", "base"), 1, 5e-4, "id_agnostic_cross_view"),
          StageConfig("cgct", ("cgct",), 1, 1e-3, "refer_agnostic_cross_view"))
CFG = quick_config(clip_frames=2, image_size=64, sam2_image_size=64, max_objects=4,
                   max_samples=4, calibration_clips=4, stages=STAGES)
SPACE = parse_space({"alpha": {"low": 0.0, "high": 1.0}, "delta": {"low": 0.0, "high": 1.0}},
                    tuple(s.name for s in STAGES))
RES = Resources(workers=1, cpus_per_worker=0.25, loader_cpus=0.25)  # 1.0 CPU a trial: 2 fit


def _sweep(**kw) -> SweepConfig:
    return SweepConfig(val_expressions=2, val_frames=4, calib_clips=2, **kw)


@pytest.fixture(scope="module")
def local_ray(labeled):
    data, _ = labeled
    forbidden = DatasetLayout(data, "In-domain", "train").ground_truth_dirs()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # the dashboard serves the State API that frees the placement group of a killed trial
    ray.init(address="local", num_cpus=2, include_dashboard=True, log_to_driver=False,
             runtime_env=guard.runtime_env(forbidden))
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


def _results(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "results.parquet").set_index("trial_id")


def test_a_killed_quick_sweep_resumes_and_writes_its_outputs(labeled, local_ray, tmp_path,
                                                           monkeypatch):
    """A 3-trial quick sweep, 2 trials at a time, stopped (as by Ctrl-C) once its first
    trial finished, then resumed: the finished trials are not run again, and the whole
    sweep's outputs are written (one sweep for both: they take minutes on 2 cores)."""
    from raysys.commands.train import build_train_config

    _, labels = labeled
    out = tmp_path / "sweep"
    monkeypatch.setenv(INTERRUPT_ENV, "1")  # Ctrl-C once the first trial finished
    run_sweep(labels, out, CFG, SPACE, _sweep(trials=3, max_concurrent=2), RES)
    first = _results(out)
    done = list(first.index[first["status"] == "completed"])
    # the other trials were cut off, or not yet created (the generator makes them one by one)
    assert 1 <= len(done) < 3 and len(first) <= 3, first
    files = {t: next((out / "tune").glob(f"trial_{t}_*/result.json")) for t in done}
    before = {t: f.read_text() for t, f in files.items()}
    with pytest.raises(UserError, match="--resume"):  # no silent restart over a sweep
        run_sweep(labels, out, CFG, SPACE, _sweep(trials=3), RES)
    monkeypatch.delenv(INTERRUPT_ENV)
    info = run_sweep(labels, out, CFG, SPACE, _sweep(trials=3, max_concurrent=2), RES,
                     resume=True)
    df = _results(out)
    assert len(df) == 3 and set(df["status"]) == {"completed"}, df
    assert info["status"] == {"completed": 3} and set(df.index) >= set(first.index)
    for t, f in files.items():  # the finished trials were not run again
        assert f.read_text() == before[t]
        assert list(df.loc[t, "metric"]) == list(first.loc[t, "metric"])
    assert {"alpha", "delta", "epochs", "metric", "best", "best_epoch", "oracle"} <= set(df)
    assert df["alpha"].nunique() == 3 and not df["oracle"].any()
    for t, r in df.iterrows():  # the shared CG epoch is global epoch 1: trials report 2, 3
        assert list(r["epochs"])[-1] == 3 and len(r["metric"]) >= 1, (t, r["epochs"])
        assert all(0.0 <= m <= 100.0 for m in r["metric"]) and r["best"] == max(r["metric"])
    for t in done:
        assert list(df.loc[t, "epochs"]) == [2, 3]
    assert info["prefix_epochs"] == 1 and (out / "prefix" / "final" / "checkpoint.json").is_file()
    assert info["grace"] == 3
    # every trial's report carries the validation, on the labels' held-out frames
    reports = {f.parent.name: [json.loads(line) for line in f.read_text().splitlines()]
               for f in (out / "tune").glob("trial_*/result.json")}
    assert len(reports) == 3 and all(
        rs and all(r["val_n"] >= 1 and r["val_oracle"] is False for r in rs)
        for rs in reports.values())
    best = df["best"].idxmax()
    cfg_file = out / "best_config.json"
    import argparse

    args = argparse.Namespace(quick=False, config=cfg_file, supervision=None,
                              sam2_config=None, sam2_checkpoint=None, text_encoder=None)
    got = build_train_config(args)  # what `raysys train --config` builds from it
    assert got.model.alpha == pytest.approx(df.loc[best, "alpha"])
    assert got.model.delta == pytest.approx(df.loc[best, "delta"])
    assert got.stages == STAGES and got.init_checkpoint is None  # the whole schedule
    for png in ("metric_vs_params.png", "trial_curves.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    md = (out / "summary.md").read_text()
    assert "weak-safe" in md and all(t in md for t in df.index)
    _no_reserved_cpus()


def _no_reserved_cpus():
    """Every trial gave its workers' placement group back (else the next sweep hangs)."""
    import time

    from ray.util import placement_group_table

    for _ in range(30):
        live = [v for v in placement_group_table().values() if v["state"] != "REMOVED"]
        if not live:
            return
        time.sleep(1)
    raise AssertionError(f"placement groups left: {live}")


def test_concurrency_counts_two_sets_of_decoders_per_trial():
    """Trials packed to the last CPU hang at a stage boundary (the next stage's decoder
    waits for the last one's CPU): each trial is counted with two sets of decoders."""
    from raysys.errors import UserError
    from raysys.tune.sweep import fit_concurrency

    res = Resources(workers=1, cpus_per_worker=0.5, loader_cpus=0.25)  # 0.25+0.5+2*0.25
    assert fit_concurrency(SweepConfig(max_concurrent=2), res, 2.0).max_concurrent == 1
    assert fit_concurrency(SweepConfig(max_concurrent=2), res, 2.5).max_concurrent == 2
    assert fit_concurrency(SweepConfig(max_concurrent=3), RES, 2.0).max_concurrent == 2
    assert fit_concurrency(SweepConfig(max_concurrent=1), res, 8.0).max_concurrent == 1
    assert fit_concurrency(SweepConfig(max_concurrent=4), res, 0.0).max_concurrent == 4
    with pytest.raises(UserError, match="one trial needs 2.75 CPUs"):
        fit_concurrency(SweepConfig(), Resources(workers=2, cpus_per_worker=1.0), 2.0)
