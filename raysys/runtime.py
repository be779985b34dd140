"""Ray plumbing shared by jobs: connecting to a cluster and mapping work over it.

The same code runs on a laptop and a cluster: :func:`init_ray` connects to
``RAY_ADDRESS`` when set (as under ``ray job submit``) or to an explicit address, and
otherwise starts an embedded local Ray sized to this machine.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

__all__ = ["init_ray", "ray_map", "serial_map"]


def init_ray(address: str | None = None, num_cpus: int | None = None,
             runtime_env: dict | None = None) -> dict[str, Any]:
    """Connect to Ray once; returns the cluster resources.

    Args:
        address: a cluster address (``"auto"``, ``"ray://host:10001"``); None uses
            ``RAY_ADDRESS`` if set, else starts a local Ray.
        num_cpus: CPUs for a *local* Ray (ignored when connecting to a cluster).
        runtime_env: the job's runtime environment (e.g. the weak-supervision guard).
    """
    import ray

    if not ray.is_initialized():
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        address = address or os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, log_to_driver=True, runtime_env=runtime_env)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=True,
                     runtime_env=runtime_env)
    return ray.cluster_resources()


def serial_map(fn: Callable[[T], R], items: Iterable[T], desc: str = "") -> list[R]:
    """``[fn(x) for x in items]`` with a progress bar."""
    from tqdm.auto import tqdm

    items = list(items)
    return [fn(x) for x in tqdm(items, desc=desc or getattr(fn, "__name__", "work"),
                                 disable=len(items) < 2)]


def ray_map(
    fn: Callable[[T], R], items: Iterable[T], *, num_cpus: float = 1.0, desc: str = ""
) -> list[R]:
    """Run ``fn`` on each item as Ray tasks, results in input order, with a progress bar.

    ``fn`` may be any picklable callable (e.g. a ``functools.partial`` of a top-level
    function). Ray must be initialised
    (:func:`init_ray`). A failed task raises its original error here.
    """
    import ray
    from tqdm.auto import tqdm

    items = list(items)
    remote = ray.remote(num_cpus=num_cpus, max_retries=1)(_apply)
    fn_ref = ray.put(fn)  # any picklable callable: functions, partials, instances
    refs = [remote.remote(fn_ref, x) for x in items]
    index = {ref: i for i, ref in enumerate(refs)}
    out: list[Any] = [None] * len(refs)
    pending = list(refs)
    with tqdm(total=len(refs), desc=desc or getattr(fn, "__name__", "work")) as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                out[index[ref]] = ray.get(ref)
                bar.update(1)
    return out


def _apply(fn: Callable[[T], R], x: T) -> R:
    return fn(x)
