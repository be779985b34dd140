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
