"""Ray plumbing shared by jobs: resources, connecting to a cluster, mapping work over it,
running a job in a process of its own, and logging.

The same code runs on a laptop and a cluster: :func:`init_ray` connects to
``RAY_ADDRESS`` when set (as under ``ray job submit``) or to an explicit address, and
otherwise starts an embedded local Ray sized to this machine. :class:`Resources` says how
wide each step runs; it is the one place those settings live (a resource setting never
changes a result, only where and how fast the work runs).
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

__all__ = ["Resources", "init_ray", "connect", "ray_map", "serial_map", "configure_logging",
           "isolated_argv", "read_isolated_result", "run_isolated", "worker_setup",
           "WORKER_SETUP_HOOK"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resources:
    """Where the work runs and how wide: the Ray cluster, training workers and actor pools.

    Every step reads the fields it needs (training: ``workers``, ``cpus_per_worker``,
    ``loader_cpus``, ``loaders``; Stage 1: ``label_actors``, ``label_actor_cpus``; tracking:
    ``track_actors``, ``track_actor_cpus``, ``track_expressions``; all: ``address``,
    ``num_cpus``, ``use_gpu``).
    None of them changes a result. The defaults fit a 2-core CPU machine.
    """

    address: str | None = None  # Ray cluster ("auto", "ray://host:10001", a GCS address);
    #   None: RAY_ADDRESS when set, else a local Ray
    num_cpus: int | None = None  # CPUs of a local Ray (None: all of this machine)
    use_gpu: bool = False  # one GPU per training worker and per actor
    workers: int = 1  # Ray Train workers (DDP)
    cpus_per_worker: float = 1.0  # CPUs per training worker (fractions fit several on few
    #   cores)
    loader_cpus: float = 0.25  # CPUs per clip-decoding actor of training (Ray Data)
    loaders: int = 1  # clip-decoding actors of training, at most
    label_actors: int = 1  # Stage 1 actor pool (tracking + ReID, describing)
    label_actor_cpus: float = 0.5  # CPUs per Stage 1 actor
    track_actors: int = 2  # tracking actors, each holding one ViewSAM
    track_actor_cpus: float = 1.0  # CPUs per tracking actor (rounded: its torch threads)
    track_expressions: int = 16  # expressions of a scene tracked in one pass (the frames
    #   decoded and the frozen trunk run once for them all); memory grows with it

    def __post_init__(self) -> None:
        for name in ("workers", "loaders", "label_actors", "track_actors",
                     "track_expressions"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("cpus_per_worker", "loader_cpus", "label_actor_cpus", "track_actor_cpus"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 (fractions work, e.g. 0.5), got "
                                 f"{getattr(self, name)}")
        if self.num_cpus is not None and self.num_cpus < 1:
            raise ValueError(f"num_cpus must be >= 1 or unset, got {self.num_cpus}")


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
        address = address or os.environ.get("RAY_ADDRESS")
        if address:  # an existing cluster: its own auth settings stand, never disabled here
            ray.init(address=address, log_to_driver=True, runtime_env=runtime_env)
        else:  # a private local Ray on loopback: no token to set up. "local": a new one,
            # even where `ray start` left a cluster that ray.init() would otherwise join
            # (and no dashboard: its State API is missed only by Ray Train's placement-
            # group cleaner, whose warnings about it the workers drop, `worker_setup`)
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            runtime_env = dict(runtime_env or {})
            runtime_env.setdefault("worker_process_setup_hook", WORKER_SETUP_HOOK)
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
                     log_to_driver=True, runtime_env=runtime_env)
    return ray.cluster_resources()


# Ray Train's placement-group cleaner (a detached actor per training run) asks the State
# API every second whether the Train controller is alive. The private local Ray runs
# without the dashboard, which serves that API, so every ask fails and logs this warning:
# about 200 lines per quick training, in the job's log and on the terminal. The cleaner
# only matters when a controller dies without cleaning up, and the local Ray ends with the
# job. Only this message is dropped; the cleaner's other warnings pass.
_NOISE = {"ray.train.v2._internal.execution.controller.placement_group_cleaner":
          "Failed to query Ray Train Controller actor state"}
WORKER_SETUP_HOOK = "raysys.runtime.worker_setup"  # the Ray worker set-up hook of every job


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def worker_setup() -> None:
    """Ray ``worker_process_setup_hook`` of raysys jobs: drop the log messages of
    :data:`_NOISE` in this process (idempotent). The weak-supervision guard's hook,
    :func:`raysys.guard.install_from_env`, calls it too."""
    for name, prefix in _NOISE.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessage) for f in logger.filters):
            logger.addFilter(_DropMessage(prefix))


def connect(resources: Resources, runtime_env: dict | None = None) -> dict[str, Any]:
    """:func:`init_ray` with the cluster settings of ``resources``."""
    return init_ray(resources.address, resources.num_cpus, runtime_env=runtime_env)


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


# ----------------------------------------------------------------------------- logging

_HANDLER_FLAG = "_raysys_handler"


def configure_logging(level: str | int = "INFO") -> None:
    """Send raysys's log records to stderr at ``level`` (once per process; a second call
    replaces the first). DEBUG lines carry the time and the logger name; INFO lines are
    plain text, as they are read by people running a command."""
    lvl = logging.getLevelName(level.upper()) if isinstance(level, str) else int(level)
    if not isinstance(lvl, int):
        raise ValueError(f"unknown log level {level!r}; valid: DEBUG, INFO, WARNING, ERROR")
    logger = logging.getLogger("raysys")
    for h in [h for h in logger.handlers if getattr(h, _HANDLER_FLAG, False)]:
        logger.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    setattr(handler, _HANDLER_FLAG, True)
    fmt = ("%(asctime)s %(levelname)s %(name)s: %(message)s" if lvl <= logging.DEBUG
           else "%(message)s")
    handler.setFormatter(logging.Formatter(fmt))
    logger.addHandler(handler)
    logger.setLevel(lvl)


# ----------------------------------------------------------------------------- isolation
#
# Some work must run in a process of its own: weak labeling and weak training install the
# GT guard (an audit hook, which cannot be removed from a process), so a driver that reads
# GT to score must not run them in-process. ``isolated_argv`` writes an importable function
# and its typed arguments to a call file (pickle: written and read by raysys itself, never
# taken from a user) and returns the command line of a fresh Python that runs it
# (``python -m raysys.runtime CALL``); the result comes back through ``CALL.result``.


def isolated_argv(fn: Callable[..., R], args: tuple, kwargs: dict, call_file: Path,
                  log_level: int | None = None) -> list[str]:
    """Write the call of ``fn(*args, **kwargs)`` to ``call_file``; returns the command line
    that runs it in a fresh process. ``fn`` must be a module-level function.

    Raises:
        ValueError: ``fn`` is defined in ``__main__`` (a script run as a program), which
            the fresh process cannot import.
    """
    if getattr(fn, "__module__", None) == "__main__":
        raise ValueError(f"{fn.__qualname__} is defined in __main__, which a fresh process "
                         "cannot import: pass a function of an importable module")
    call_file = Path(call_file)
    call_file.parent.mkdir(parents=True, exist_ok=True)
    level = log_level if log_level is not None else logging.getLogger("raysys").level
    with open(call_file, "wb") as f:
        pickle.dump({"fn": fn, "args": args, "kwargs": kwargs,
                     "log_level": level or logging.INFO}, f)
    _result_file(call_file).unlink(missing_ok=True)
    return [sys.executable, "-m", "raysys.runtime", str(call_file)]


def read_isolated_result(call_file: Path) -> Any:
    """The return value of a finished isolated call (and remove its files)."""
    call_file = Path(call_file)
    res = _result_file(call_file)
    with open(res, "rb") as f:
        out = pickle.load(f)
    res.unlink()
    call_file.unlink(missing_ok=True)
    return out


def run_isolated(fn: Callable[..., R], *args, call_file: Path, **kwargs) -> R:
    """Run ``fn(*args, **kwargs)`` in a fresh Python process (its output goes to this
    process's stdout and stderr) and return its result.

    Raises:
        RuntimeError: the process failed (its traceback is on stderr).
    """
    argv = isolated_argv(fn, args, kwargs, call_file)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    rc = subprocess.call(argv, env=env)
    if rc != 0:
        raise RuntimeError(f"{fn.__module__}.{fn.__qualname__} failed in its own process "
                           f"(exit {rc}); its error is above")
    return read_isolated_result(call_file)


def _result_file(call_file: Path) -> Path:
    return call_file.with_name(call_file.name + ".result")


def _run_call(call_file: str) -> int:
    with open(call_file, "rb") as f:
        call = pickle.load(f)
    configure_logging(call["log_level"])
    result = call["fn"](*call["args"], **call["kwargs"])
    res = _result_file(Path(call_file))
    tmp = res.with_name(res.name + ".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(result, f)
    os.replace(tmp, res)
    return 0


if __name__ == "__main__":
    sys.exit(_run_call(sys.argv[1]))
