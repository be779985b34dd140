"""Ray's token auth is never switched off for a cluster raysys joins (issue #25): only a
private local Ray, started by raysys on loopback, runs without a token."""

from __future__ import annotations

import os

import ray

from raysys.runtime import init_ray


def _fake_ray(monkeypatch) -> list[dict]:
    calls: list[dict] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    return calls


def test_joining_a_cluster_leaves_its_auth_alone(monkeypatch):
    calls = _fake_ray(monkeypatch)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    init_ray(address="ray://head:10001")
    assert calls[0]["address"] == "ray://head:10001"
    assert "RAY_AUTH_MODE" not in os.environ
    monkeypatch.setenv("RAY_ADDRESS", "auto")  # the address of `ray job submit`
    init_ray()
    assert calls[1]["address"] == "auto"
    assert "RAY_AUTH_MODE" not in os.environ


def test_a_private_local_ray_runs_without_a_token(monkeypatch):
    calls = _fake_ray(monkeypatch)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    init_ray(num_cpus=2)
    # "local": a new Ray, not a cluster that `ray start` left running on the machine
    # (ray.init() without an address would join it: seen while a test cluster ran)
    assert calls[0]["address"] == "local" and calls[0]["num_cpus"] == 2
    assert os.environ["RAY_AUTH_MODE"] == "disabled"


_CLEANER = "ray.train.v2._internal.execution.controller.placement_group_cleaner"


def test_the_cleaners_state_api_warning_is_dropped_and_nothing_else(caplog):
    """Without the dashboard, Ray Train's placement-group cleaner logs one warning a
    second that the State API is unavailable; the workers' set-up hook drops that message
    only."""
    import logging

    from raysys.runtime import worker_setup

    worker_setup()
    worker_setup()  # twice: one filter
    log = logging.getLogger(_CLEANER)
    assert len(log.filters) == 1
    with caplog.at_level(logging.WARNING, logger=_CLEANER):
        log.warning("Failed to query Ray Train Controller actor state. State API may be "
                    "temporarily unavailable. Continuing to monitor.")
        log.warning("Controller actor died; removing placement group %s", "pg1")
    assert [r.getMessage() for r in caplog.records] == [
        "Controller actor died; removing placement group pg1"]


def test_a_local_rays_workers_run_the_set_up_hook(monkeypatch):
    from raysys import guard
    from raysys.runtime import WORKER_SETUP_HOOK

    calls = _fake_ray(monkeypatch)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    init_ray(num_cpus=2)
    assert calls[0]["runtime_env"]["worker_process_setup_hook"] == WORKER_SETUP_HOOK
    # the guard's own hook takes its place, and calls it
    env = guard.runtime_env(["/nonexistent/gt"])
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    init_ray(num_cpus=2, runtime_env=env)
    assert calls[1]["runtime_env"] == env
    import logging

    logging.getLogger(_CLEANER).filters.clear()
    monkeypatch.delenv(guard.ENV, raising=False)
    guard.install_from_env()
    assert len(logging.getLogger(_CLEANER).filters) == 1


def test_a_real_local_rays_workers_drop_the_warning():
    """A worker of the local Ray that init_ray starts has the filter installed."""
    import subprocess
    import sys

    code = f"""
import logging, ray
from raysys.runtime import init_ray
init_ray(num_cpus=1)
@ray.remote(num_cpus=0.1)
def filters():
    return [type(f).__name__ for f in logging.getLogger({_CLEANER!r}).filters]
print(ray.get(filters.remote()))
ray.shutdown()
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "RAY_ADDRESS": ""})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "['_DropMessage']"


def test_an_isolated_call_runs_in_a_fresh_process_and_refuses_main(tmp_path):
    """``run_isolated`` returns the function's result from its own process; a function of
    ``__main__`` (a script's), which that process cannot import, is refused up front."""
    import json

    import pytest

    from raysys.runtime import run_isolated

    assert run_isolated(json.dumps, {"a": 1}, call_file=tmp_path / "c.call",
                        sort_keys=True) == '{"a": 1}'
    assert not list(tmp_path.iterdir()), "the call and result files are removed"

    def local():
        return 1

    local.__module__ = "__main__"
    with pytest.raises(ValueError, match="defined in __main__"):
        run_isolated(local, call_file=tmp_path / "m.call")
    assert not (tmp_path / "m.call").exists()
