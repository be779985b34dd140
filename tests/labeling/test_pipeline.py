"""Stage 1 on a real local Ray: outputs, resume, a killed actor, the weak-supervision guard."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cloudpickle
import numpy as np
import pytest

from raysys.io import crtrack
from raysys.io.tables import read_table
from raysys.labeling.config import LabelConfig
from raysys.labeling.pipeline import Loaders, run_labeling
from raysys.labeling.tracking_stage import build_models, plan_units

ray = pytest.importorskip("ray")
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def data(tiny_test_split):
    return tiny_test_split


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _tracklet_keys(out: Path):
    t = read_table(out / "tracklets.parquet").to_pandas()
    return sorted(map(tuple, t[["view", "local_id", "frame"]].drop_duplicates().to_numpy()))


@pytest.mark.slow
def test_pipeline_outputs_and_resume(data, local_ray, tmp_path):
    out = tmp_path / "labels"
    res = run_labeling(data, out, LabelConfig(), progress=False)
    units = plan_units(data)
    assert res.summary["units"] == len(units) == 3 * 3  # 3 views x {bicycle, car, person}
    for name in ("tracklets", "trajectories", "expressions"):
        assert (out / f"{name}.parquet").is_file()
    ex = read_table(out / "expressions.parquet").to_pydict()
    assert len(ex["text"]) == res.summary["expressions"] >= 1
    assert all(len(g) >= 1 for g in ex["global_ids"])
    # each trajectory's description, with the general sentences it implies
    d = read_table(out / "scenes" / units[0]["scene"] / "descriptions-reprompt.parquet")
    assert {"text", "general"} <= set(d.column_names)
    assert all(isinstance(t, str) for g in d.to_pydict()["general"] for t in g)
    # the pseudo labels in the CRTrack layout read back with the evaluator's reader
    exprs = crtrack.list_expressions(out / "crtrack")
    assert {e.text for e in exprs} == set(ex["text"])
    views = crtrack.gt_views(exprs[0])
    assert views == ["View1", "View2", "View3"]
    # every stage is scored by the quality report (this reads GT: evaluation)
    from raysys.labeling.quality import quality_report

    q = quality_report(out, data)
    for level in ("identity", "referring"):
        for st in ("tracklets", "association", "reprompt"):
            v = q[level][st]["CVR-IDF1"]
            assert v is not None and 0.0 <= v <= 100.0
    assert json.loads((out / "quality.json").read_text())["identity"] == q["identity"]
    # the ceiling: the tracklets' own boxes with perfect identities score at least as well
    assert q["identity"]["tracklets"]["CVR-IDF1"] <= q["ceiling"]["CVR-IDF1"] <= 100.0
    # per camera: recall and precision of each stage's boxes
    cams = {f"{s}/{v}" for s in {u["scene"] for u in units} for v in views}
    assert set(q["per_view"]) == cams
    for cell in q["per_view"].values():
        assert set(cell) == {"tracklets", "association", "reprompt"}
        assert all(0.0 <= x <= 1.0 for c in cell.values() for x in c.values() if x is not None)
    # resume: nothing left to do, same outputs
    before = _tracklet_keys(out)
    res2 = run_labeling(data, out, LabelConfig(), progress=False)
    assert res2.summary["units_processed"] == 0
    assert _tracklet_keys(out) == before
    # other settings into the same folder: a clear error, nothing overwritten
    with pytest.raises(ValueError, match="other settings"):
        run_labeling(data, out, LabelConfig(reid="osnet"), progress=False)


def _killing_loader(marker: str):
    """Models whose tracker kills its own worker process on the first View2 unit."""

    def load(cfg):
        tracker, reid = build_models(cfg)
        original = tracker.track

        def track(video, category):
            if video.view == "View2" and not os.path.exists(marker):
                Path(marker).write_text("killed once")
                os._exit(1)  # the actor dies mid-unit, before anything is written
            return original(video, category)

        tracker.track = track
        return tracker, reid

    return load


@pytest.mark.slow
def test_killed_actor_loses_and_duplicates_nothing(data, local_ray, tmp_path):
    clean = tmp_path / "clean"
    run_labeling(data, clean, LabelConfig(), progress=False)
    marker = tmp_path / "killed.txt"
    out = tmp_path / "killed"
    run_labeling(data, out, LabelConfig(), Loaders(track_embed=_killing_loader(str(marker))),
                 progress=False)
    assert marker.exists(), "the actor was never killed: the test proves nothing"
    units = plan_units(data)
    assert len(list((out / "units").glob("*.parquet"))) == len(units)
    assert not list((out / "units").glob(".*tmp"))  # no half-written file left
    # identical to the run that was never interrupted: nothing lost, nothing twice
    assert _tracklet_keys(out) == _tracklet_keys(clean)


@pytest.mark.slow
def test_guard_blocks_gt_reads_in_driver_and_workers(data, tmp_path):
    gt_file = next(data.gt_root.rglob("View1.txt"))
    code = f"""
import ray, sys
from raysys import guard
forbidden = {[str(p) for p in data.ground_truth_dirs()]!r}
guard.install(forbidden)
try:
    open({str(gt_file)!r}).read(); print("driver read GT")
except guard.GroundTruthAccessError:
    print("driver blocked")
open({str(next(data.image_root.rglob('*.jpg')))!r}, "rb").read()  # frames stay readable
ray.init(address="local", num_cpus=1, include_dashboard=False,
         runtime_env=guard.runtime_env(forbidden))
@ray.remote(num_cpus=0.5)
def read(p):
    try:
        open(p).read(); return "worker read GT"
    except PermissionError:
        return "worker blocked"
print(ray.get(read.remote({str(gt_file)!r})))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=240, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    assert "driver blocked" in r.stdout and "worker blocked" in r.stdout, r.stdout + r.stderr


@pytest.mark.slow
def test_label_cli_runs_under_the_guard(data, tmp_path):
    """`raysys label` installs the guard and still succeeds: it never opens GT."""
    out = tmp_path / "cli"
    r = subprocess.run([sys.executable, "-m", "raysys.cli", "label", "--data", str(data.root),
                        "--split", "test", "--out", str(out)], capture_output=True, text=True,
                       timeout=600, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert "GroundTruthAccessError" not in r.stderr
    t = read_table(out / "trajectories.parquet").to_pandas()
    assert len(t) > 0 and np.all(t["global_id"] >= 1)
