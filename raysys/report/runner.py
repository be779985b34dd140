"""Resumable steps of the report, and the fresh processes its heavy steps run in.

A step is skipped when its marker ``<out>/steps/<name>.json`` exists, its recorded
settings equal the current ones and its outputs exist; when the settings changed, the
outputs it owns are deleted first, so no command resumes from something made with other
settings. The marker keeps the step's result and wall time, so a skipped step still
reports what it produced.

Heavy steps run a library function (``label_job``, ``train_job``, ``track_job``,
``baseline_job``) with its typed config in a fresh Python process
(:meth:`StepRunner.isolated`), connected to the one Ray cluster of the report: each
installs exactly the weak-supervision guard and runtime_env that its own command installs
(an audit hook cannot be removed from a process, so the driver, which reads GT to evaluate,
must not install it), and its output streams to the console and to
``<out>/logs/<name>.log``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raysys.errors import Failure
from raysys.runtime import isolated_argv, read_isolated_result

__all__ = ["StepError", "StepRunner", "fingerprint"]

log = logging.getLogger(__name__)


class StepError(Failure):
    """A step failed; the message names the step and its log."""


def fingerprint(obj: Any) -> str:
    """A short stable hash of JSON-able settings."""
    s = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha1(s.encode()).hexdigest()[:12]


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


@dataclass
class StepRunner:
    """Runs named steps under ``out`` with markers, logs and wall times.

    Args:
        out: the report folder.
        address: the Ray cluster address the isolated steps connect to (None: their own).
        echo: stream subprocess output to this process's stdout.
    """

    out: Path
    address: str | None = None
    echo: bool = True
    timing: dict[str, float] = field(default_factory=dict)  # step -> seconds (this or last run)
    skipped: list[str] = field(default_factory=list)  # steps skipped in this run
    fingerprints: dict[str, str] = field(default_factory=dict)  # step -> settings hash

    def marker(self, name: str) -> Path:
        return self.out / "steps" / f"{name}.json"

    def log(self, name: str) -> Path:
        return self.out / "logs" / f"{name}.log"

    def run(self, name: str, settings: dict, fn: Callable[[], Any], *,
            outputs: Sequence[Path] = (), owned: Sequence[Path] = ()) -> Any:
        """Run ``fn()`` unless the step is already done with these settings.

        Args:
            name: step name (file-safe).
            settings: everything the result depends on (upstream fingerprints included).
            fn: the work; returns a JSON-able result.
            outputs: paths that must exist for the step to count as done.
            owned: paths deleted before re-running under changed settings (under ``out``).

        Returns:
            the result of ``fn`` (or the recorded one when skipped).
        """
        settings = _jsonable(settings)
        fp = fingerprint(settings)
        self.fingerprints[name] = fp
        m = self.marker(name)
        if m.is_file():
            rec = json.loads(m.read_text())
            if rec.get("settings") == settings and all(Path(p).exists() for p in outputs):
                self.timing[name] = float(rec.get("seconds", 0.0))
                self.skipped.append(name)
                log.info("[raysys report] %s: done before, skipped (%.1f s then)", name,
                         rec.get("seconds", 0))
                return rec.get("result")
            for p in owned:
                self._remove(Path(p))
            m.unlink()
        log.info("[raysys report] %s: running", name)
        t = time.perf_counter()
        result = fn()
        dt = time.perf_counter() - t
        self.timing[name] = dt
        m.parent.mkdir(parents=True, exist_ok=True)
        tmp = m.with_suffix(".tmp")
        tmp.write_text(json.dumps({"settings": settings, "fingerprint": fp, "seconds": dt,
                                   "result": _jsonable(result)}, indent=2))
        os.replace(tmp, m)
        log.info("[raysys report] %s: done in %.1f s", name, dt)
        return result

    def _remove(self, p: Path) -> None:
        try:
            p.resolve().relative_to(self.out.resolve())
        except ValueError:
            return  # never delete what the report does not own
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()

    def isolated(self, name: str, fn: Callable[..., Any], *args, **kwargs) -> Any:
        """Run ``fn(*args, **kwargs)`` in a fresh Python process (its output streamed to the
        console and the step's log) and return its result; raise :class:`StepError` naming
        the log if it fails. ``fn`` must be importable (a module-level function)."""
        call = self.out / "steps" / f"{name}.call"
        argv = isolated_argv(fn, args, kwargs, call)
        self.subprocess(name, argv, what=f"{fn.__module__}.{fn.__qualname__}")
        return read_isolated_result(call)

    def subprocess(self, name: str, cmd: Sequence[str], what: str | None = None) -> None:
        """Run ``cmd``, streaming its output (progress bars included) to the console and the
        step's log; raises :class:`StepError` naming the log on a non-zero exit.

        Args:
            what: what the command runs, for the log and the error (default: the command).
        """
        what = what or " ".join(map(str, cmd))
        log_file = self.log(name)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        if not (self.address or env.get("RAY_ADDRESS")):  # a cluster's auth stands
            env.setdefault("RAY_AUTH_MODE", "disabled")
        env["PYTHONUNBUFFERED"] = "1"
        with open(log_file, "ab") as f:
            f.write(f"$ {' '.join(map(str, cmd))}\n# {what}\n".encode())
            proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, env=env)
            assert proc.stdout is not None
            while True:
                chunk = proc.stdout.read1(65536)  # keep \r progress bars live
                if not chunk:
                    break
                f.write(chunk)
                if self.echo:
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.flush()
            rc = proc.wait()
        if rc != 0:
            raise StepError(f"step {name} failed (exit {rc}): {what}; see {log_file}")
