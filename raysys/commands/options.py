"""The options every command shares, defined once, and the helpers that turn them into
typed configs.

One spelling per thing: ``--data`` (a dataset root), ``--domain``, ``--split``, ``--out``,
``--labels`` (a ``raysys label`` output), ``--model`` (a ViewSAM checkpoint folder),
``--config FILE`` (JSON or YAML of a config's fields), ``--json PATH`` (also write the
result as JSON; ``-`` is stdout), ``--address`` (a Ray cluster). A config is built as:
defaults (or a preset) <- ``--config FILE`` <- the flags given on the command line.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from raysys.errors import UserError, require_out_folder
from raysys.io.dataset import DOMAINS, SPLITS

__all__ = ["add_address", "add_allow_missing_views", "add_allow_partial", "add_config",
           "add_data", "add_domain", "add_json", "add_labels", "add_model", "add_out",
           "add_split", "build_config",
           "positive_float", "require_dataset", "require_dir", "require_out_dir", "write_json"]


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0 (``inf`` and ``nan`` are no settings, and
    JSON cannot hold them)."""
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(x) and x > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return x


def location(text: str):
    """A folder argument: a local path, or a storage URI (``s3://``, ``gs://``, ...:
    :mod:`raysys.io.storage`)."""
    from raysys.io import storage

    try:
        return storage.path(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_out(p: argparse.ArgumentParser, help: str, *, required: bool = True,
            default: Path | None = None, metavar: str = "DIR") -> None:
    p.add_argument("--out", type=location, required=required, default=default, metavar=metavar,
                   help=help)


def add_data(p: argparse.ArgumentParser, *, required: bool = True,
             help: str = "dataset root (a `raysys synth --out` folder, or CRTrack)") -> None:
    p.add_argument("--data", type=location, required=required, metavar="DATA", help=help)


def add_domain(p: argparse.ArgumentParser, default: str | None = "In-domain",
               help: str | None = None) -> None:
    p.add_argument("--domain", choices=DOMAINS, default=default,
                   help=help or f"dataset domain (default {default})")


def add_split(p: argparse.ArgumentParser, default: str | None,
              help: str | None = None) -> None:
    p.add_argument("--split", choices=SPLITS, default=default,
                   help=help or f"dataset split (default {default})")


def add_labels(p: argparse.ArgumentParser, *, required: bool = False,
               help: str = "Stage 1 output folder (a `raysys label --out` folder)") -> None:
    p.add_argument("--labels", type=location, required=required, metavar="LABELS", help=help)


def add_model(p: argparse.ArgumentParser, *, required: bool = False,
              help: str = "ViewSAM checkpoint folder (a `raysys train` run's final/)",
              flag: str = "--model", dest: str | None = None) -> None:
    kw = {"dest": dest} if dest else {}
    p.add_argument(flag, type=location, required=required, metavar="MODEL", help=help, **kw)


def add_allow_missing_views(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-missing-views", action="store_true",
                   help="work on a scene whose view folder is missing with the views there "
                        "are (default: an error naming the scene and the view)")


def add_allow_partial(p, what: str = "--model") -> None:
    """``--allow-partial``: load a ViewSAM checkpoint whose weights do not all fit."""
    p.add_argument("--allow-partial", action="store_true",
                   help=f"load {what} even when its weights do not all fit the model (missing "
                        "or unexpected keys, other shapes): what fits loads, the rest keeps its "
                        "random init and is logged (default: an error naming the keys)")


def add_address(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", metavar="ADDR",
                   help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")


def add_config(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--config", type=Path, metavar="FILE",
                   help=f"JSON or YAML file of {what} fields to override (the flags below "
                        "override it in turn)")


def add_json(p: argparse.ArgumentParser, help: str = "also write the result as JSON to "
             "PATH ('-': stdout)") -> None:
    p.add_argument("--json", type=Path, metavar="PATH", help=help)


def build_config(cls, config_file: Path | None, overrides: dict[str, Any], base=None,
                 flag: str = "--config"):
    """``cls`` from ``base`` (default: its defaults), then ``config_file``, then the
    ``overrides`` the flags gave (None values are left out; nested dicts merge).

    Raises:
        UserError: the file or a value is wrong (the message names the file or field).
    """
    from raysys.config import from_dict, load_config

    try:
        if config_file is not None:
            base = load_config(cls, config_file, base)
        return from_dict(cls, _drop_none(overrides), base)
    except ValueError as e:
        raise UserError(f"{flag}: {e}" if config_file is not None else str(e)) from None


def _drop_none(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            v = _drop_none(v)
            if v:
                out[k] = v
        elif v is not None:
            out[k] = v
    return out


def require_dir(path: Path | None, flag: str, hint: str) -> None:
    """A clear error, before any work, when an option's folder does not exist."""
    if path is not None and not location(str(path)).is_dir():
        what = "a file, not a folder" if location(str(path)).exists() else "no such folder"
        raise UserError(f"{flag} {path}: {what}; {hint}")


def require_out_dir(path: Path | None, flag: str = "--out") -> None:
    """An output folder option must not name an existing file (checked before any work)."""
    require_out_folder(path, flag)


def require_dataset(path: Path | None, flag: str = "--data") -> None:
    """``path`` must be a dataset root (``raysys synth`` output or a CRTrack copy)."""
    require_dir(path, flag, "pass a dataset root (make one with `raysys synth --out DIR`)")
    if path is not None and not any((location(str(path)) / d).is_dir() for d in DOMAINS):
        raise UserError(f"{flag} {path}: not a dataset root (no In-domain/ or Cross-domain/ "
                        "inside); pass the --out folder of `raysys synth`")


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` (atomically), or to stdout when ``path`` is ``-``."""
    from raysys.io.crtrack import atomic_write_text
    from raysys.io.jsonio import json_text

    text = json_text(obj, indent=1)
    if str(path) == "-":
        sys.stdout.write(text)
        return

    try:
        atomic_write_text(path, text)
    except OSError as e:
        raise UserError(f"cannot write --json {path}: {e.strerror or e}") from None


def generated_data(out: Path, seeds, tag: str, scenes: int | None = None,
                   frames: int | None = None, expressions: int | None = None) -> list[Path]:
    """``out/data_<seed>`` generated benchmarks of ``seeds`` for a ``pretrain-*`` command
    (``raysys.synth`` defaults; ``scenes`` per domain and split, ``frames`` per view and
    ``expressions`` per scene if given). Generation resumes: a folder an interrupted run
    left half-rendered is completed, never taken as done."""
    import dataclasses
    import logging

    from raysys.synth import SynthConfig, generate

    out_dirs = []
    for seed in seeds:
        d = Path(out) / f"data_{seed}"
        logging.getLogger(__name__).info("[%s] scenes of seed %d -> %s", tag, seed, d)
        cfg = SynthConfig(seed=seed)
        if scenes is not None:
            cfg = dataclasses.replace(cfg, scenes=scenes)
        if frames is not None:
            cfg = dataclasses.replace(cfg, frames=frames)
        if expressions is not None:
            cfg = dataclasses.replace(cfg, expressions=expressions)
        generate(cfg, d)
        out_dirs.append(d)
    return out_dirs


def add_pretrain_options(p: argparse.ArgumentParser, seeds: str, steps: int, *,
                         device: bool = True) -> None:
    """The options every ``pretrain-*`` command shares: ``--out``, ``--data`` (generated
    benchmarks; default: made with the pre-training ``seeds``), ``--steps``, ``--seed``,
    ``--threads`` and (with ``device``) ``--device``."""
    add_out(p, "output folder")
    p.add_argument("--data", type=Path, nargs="+", metavar="DATA",
                   help="generated benchmarks to learn from (default: OUT/data_<seed>, made "
                        f"with the pre-training seeds {seeds}, every domain and split)")
    p.add_argument("--steps", type=int, default=steps, help=f"training steps (default {steps})")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    if device:
        p.add_argument("--device", default="cpu", help="cpu (default) | cuda (bf16 autocast)")
