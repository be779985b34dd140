"""A real multi-node Ray cluster, storage on a real S3-compatible server, jobs through
``ray job submit``, and faults (issue #25).

- The S3 server is moto's (``.venv-s3``, ``make s3-server``), started here as a process on
  loopback, with versioning on, so that every PUT of a key is counted.
- The cluster is a head and a worker node (``ray.cluster_utils.Cluster``: separate raylets,
  object stores and worker processes), each with its own input cache (``RAYSYS_CACHE``):
  a task can only find another task's output in storage.
- The dataset, the labels, the run and the predictions are all ``s3://`` URIs; each job is
  ``ray job submit --working-dir . -- python jobs/<job>.py ...`` and must end SUCCEEDED
  with its outputs in storage, equal to a single-node run's.
- Faults: the worker node removed mid-label (identical labels, every finished file written
  once), the worker node removed mid-train (Ray Train resumes from the last checkpoint, and
  the model equals an uninterrupted run's), a tracking actor killed mid-job (restarted, the
  same predictions).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).parent / "ray"
BUCKET = "raysys"
TRAIN_CONFIG = "tests/cluster/tiny_train.yaml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(s3_server):
    """The session's S3 server (tests/conftest.py) with a versioned bucket for this module."""
    s3_server.bucket(BUCKET, versioned=True)
    return s3_server.url


def _wait(cond, timeout: float, what: str, every: float = 0.25):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def versions(url: str, prefix: str) -> dict[str, int]:
    """How many times each key under ``prefix`` was PUT (the bucket keeps every version)."""
    import requests

    r = requests.get(f"{url}/{BUCKET}?versions&prefix={prefix}", timeout=30)
    r.raise_for_status()
    ns = {"s": "http://s3.amazonaws.com/doc/2006-03-01/"}
    out: dict[str, int] = {}
    for v in ET.fromstring(r.text).findall("s:Version", ns):
        key = v.find("s:Key", ns).text
        out[key] = out.get(key, 0) + 1
    return out


class _Cluster:
    """A head with no CPU (the jobs' drivers only, as on a cluster whose head does no work)
    and a worker node of 2 CPUs, where every task and actor must run; each node has its own
    cache of storage inputs. The worker node can be replaced (removed, then a new one)."""

    def __init__(self, base: Path):
        from ray.cluster_utils import Cluster

        self.base, self.n = base, 0
        self.env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                    "RAY_AUTH_MODE": "disabled"}
        self.port = _free_port()
        self.cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 0, "include_dashboard": True, "dashboard_host": "127.0.0.1",
            "dashboard_port": self.port,
            "env_vars": {**self.env, "RAYSYS_CACHE": str(base / "cache-head")}})
        self.address = f"http://127.0.0.1:{self.port}"
        self.worker = self.add_worker()
        _wait(self._dashboard_up, 90, "the dashboard's job API")

    def _dashboard_up(self) -> bool:
        import requests

        try:
            return requests.get(f"{self.address}/api/version", timeout=2).ok
        except requests.RequestException:
            return False

    def add_worker(self):
        self.n += 1
        self.worker = self.cluster.add_node(num_cpus=2, env_vars={
            **self.env, "RAYSYS_CACHE": str(self.base / f"cache-worker{self.n}")})
        return self.worker

    def replace_worker(self) -> None:
        """The worker node is lost (its processes killed), and a new one joins."""
        self.cluster.remove_node(self.worker, allow_graceful=False)
        self.add_worker()

    def submit(self, job: str, *args: str) -> str:
        """``ray job submit --no-wait`` of ``python jobs/<job>.py args``; the job id. The
        head's job agent may not be up yet on a loaded machine ("No available agent to
        submit job, please try again later", seen in CI, and for over 90 s on a 2-core machine
        beside other work): tried again for up to 180 s."""
        deadline = time.monotonic() + 180
        while True:
            r = subprocess.run(
                [str(RAY), "job", "submit", "--address", self.address, "--no-wait",
                 "--working-dir", str(ROOT), "--", "python", f"jobs/{job}.py", *args],
                capture_output=True, text=True, timeout=120, cwd=ROOT,
                env={**os.environ, "RAY_AUTH_MODE": "disabled"})
            if r.returncode == 0 or "No available agent" not in r.stdout + r.stderr \
                    or time.monotonic() > deadline:
                break
            time.sleep(3)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        m = re.search(r"Job '([^']+)' submitted successfully", r.stdout + r.stderr)
        assert m, r.stdout[-2000:] + r.stderr[-2000:]
        return m.group(1)

    def wait(self, job_id: str, timeout: float = 300) -> str:
        """Wait for the job's end; its logs. Asserts it SUCCEEDED (``ray job status``)."""
        from ray.job_submission import JobStatus, JobSubmissionClient

        client = JobSubmissionClient(self.address)
        status = _wait(lambda: (s := client.get_job_status(job_id)).is_terminal() and s,
                       timeout, f"job {job_id}", every=1.0)
        logs = client.get_job_logs(job_id)
        r = subprocess.run([str(RAY), "job", "status", "--address", self.address, job_id],
                           capture_output=True, text=True, timeout=60, env=os.environ)
        said = re.sub(r"\x1b\[[0-9;]*m", "", r.stdout + r.stderr)
        assert status == JobStatus.SUCCEEDED and "succeeded" in said.lower(), (
            f"{job_id} ended {status}:\n{logs[-4000:]}")
        return logs

    def shutdown(self) -> None:
        self.cluster.shutdown()


@pytest.fixture(scope="module")
def cluster(s3, tmp_path_factory):
    import ray

    if ray.is_initialized():
        ray.shutdown()
    c = _Cluster(tmp_path_factory.mktemp("nodes"))
    yield c
    c.shutdown()


@pytest.fixture(scope="module")
def s3_data(s3, labeled):
    """The tiny benchmark (frames, category labels and GT) copied to the bucket."""
    from raysys.io import storage

    data, _ = labeled
    storage.upload(data, f"s3://{BUCKET}/data")
    return f"s3://{BUCKET}/data"


def _table(p):
    from raysys.io.tables import read_table

    return read_table(p)


def _pred_files(root) -> dict[str, bytes]:
    from raysys.io import storage

    root = storage.path(root)
    return {f"{d.name}/{f.name}": f.read_bytes()
            for d in root.iterdir() if d.is_dir() for f in d.iterdir() if f.suffix == ".txt"}


def test_label_train_track_jobs_on_two_nodes_and_s3_survive_lost_nodes(
        s3, cluster, s3_data, labeled, tmp_path):
    from raysys.io import storage

    data, labels_local = labeled
    out = f"s3://{BUCKET}/run1"
    # ---- Stage 1, the worker node lost once its first unit is written
    job = cluster.submit("label", "--data", s3_data, "--split", "train", "--out",
                         f"{out}/labels", "--actors", "2", "--actor-cpus", "0.5")
    _wait(lambda: any(storage.path(f"{out}/labels/units").glob("*.parquet")), 240,
          "the first unit file")
    cluster.replace_worker()
    logs = cluster.wait(job)
    assert f"labels: {out}/labels" in logs, logs[-2000:]
    for name in ("tracklets", "trajectories", "expressions"):
        assert _table(f"{out}/labels/{name}.parquet").equals(
            _table(labels_local / f"{name}.parquet")), f"{name} differs from a single-node run"
    written = versions(s3, "run1/labels/")
    work = {k: n for k, n in written.items() if k.startswith(("run1/labels/units/",
                                                              "run1/labels/scenes/"))}
    assert work and all(n == 1 for n in work.values()), (
        f"finished work written more than once: {[k for k, n in work.items() if n > 1]}")

    # ---- Stage 2, the worker node lost after the first checkpoint: Ray Train resumes
    job = cluster.submit("train", "--labels", f"{out}/labels", "--out", f"{out}/run",
                         "--config", TRAIN_CONFIG, "--workers", "2", "--cpus-per-worker",
                         "0.5")
    # a second epoch's checkpoint folder appearing: the first one is complete and registered
    _wait(lambda: len([p for p in storage.path(f"{out}/run/ray_train").glob("checkpoint_*")
                       if p.is_dir()]) >= 2, 300, "the second training checkpoint")
    cluster.replace_worker()
    logs = cluster.wait(job)
    (tmp_path / "train.log").write_text(logs)
    assert re.search(r"resumed from the checkpoint of epoch [12]\b", logs), tmp_path / "train.log"
    assert f"final model: {out}/run/final" in logs
    ref = tmp_path / "run"  # the same training on one machine, uninterrupted
    r = subprocess.run([str(RAY.parent / "raysys"), "train", "--labels", str(labels_local),
                        "--out", str(ref), "--config", str(ROOT / TRAIN_CONFIG),
                        "--workers", "2", "--cpus-per-worker", "0.5"],
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, "RAY_ADDRESS": ""})
    assert r.returncode == 0, r.stderr[-3000:]
    weights = storage.path(f"{out}/run/final/model.safetensors").read_bytes()
    assert weights == (ref / "final" / "model.safetensors").read_bytes(), (
        "the resumed multi-node model differs from the uninterrupted single-node one")

    # ---- tracking, one actor killed mid-job: restarted, its pass run again
    job = cluster.submit("track", "--model", f"{out}/run/final", "--data", s3_data,
                         "--split", "train", "--out", f"{out}/pred", "--actors", "2",
                         "--actor-cpus", "0.5", "--expressions-per-pass", "2")
    pid = _wait(lambda: _actor_pid("_TrackWorker", cluster.address), 180, "a tracking actor")
    os.kill(pid, signal.SIGKILL)
    logs = cluster.wait(job)
    assert f"predictions: {out}/pred" in logs
    ref_pred = tmp_path / "pred"
    r = subprocess.run([str(RAY.parent / "raysys"), "track", "--model", str(ref / "final"),
                        "--data", str(data), "--split", "train", "--out", str(ref_pred),
                        "--actors", "1", "--expressions-per-pass", "2"],
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, "RAY_ADDRESS": ""})
    assert r.returncode == 0, r.stderr[-3000:]
    got, want = _pred_files(f"{out}/pred"), _pred_files(ref_pred)
    assert want and got == want, "multi-node predictions differ from the single-node run's"


def _actor_pid(class_name: str, address: str) -> int | None:
    """The pid of a live actor of ``class_name`` that is running a task, if any."""
    from ray.util.state import list_actors

    for a in list_actors(address=address, filters=[("class_name", "=", class_name),
                                                   ("state", "=", "ALIVE")]):
        if a.pid:
            return a.pid
    return None
