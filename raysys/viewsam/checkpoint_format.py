"""The ViewSAM checkpoint on disk: tensors in safetensors, everything else in JSON.

Reading a checkpoint never runs code: no pickle is opened, and the SAM2 YAML it carries
is checked against the allowlist of :mod:`raysys.viewsam.sam2_yaml` as it is read. A
checkpoint is a folder:

* ``checkpoint.json``: ``format`` (``"raysys.viewsam"``), ``version`` (2), ``epoch``,
  ``stage``, ``stage_epoch``, ``history`` (per-epoch metric rows), ``config`` (the training
  run's config, a dict), ``model_config`` (the ``ViewSAMConfig``), ``calibration`` (the
  tracker's thresholds; final checkpoints), ``build_spec`` (SAM2 YAML text, SAM2 checkpoint
  path, text encoder, frozen base), ``weights`` (``file``, ``sha256``, ``tensors``) and
  ``optimizer`` (epoch checkpoints: ``file``, ``sha256``, ``tensors``, ``param_groups``,
  ``scalars``; else null). Any other key of a payload is kept as it is.
* ``model.safetensors``: the model's state dict (without the parts its build spec rebuilds);
* ``optimizer.safetensors``: epoch checkpoints only: the optimizer's per-parameter tensors
  as ``state.<param index>.<name>``.

The files are written first and ``checkpoint.json`` last, each atomically; the reader
checks both sha256. In memory a checkpoint is the *payload* dict of earlier versions:
``model`` (state dict), ``optimizer`` (an optimizer ``state_dict()``), and the JSON fields.

Checkpoints of earlier versions (``model.pt``, a pickle) are refused with the command that
converts them, :func:`convert_legacy_checkpoint` (``raysys convert-checkpoint``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from raysys.errors import UserError
from raysys.io import storage
from raysys.io.fingerprint import file_digest
from raysys.viewsam.safe_load import UnsafeFileError, safe_torch_load

__all__ = ["FORMAT", "VERSION", "META_FILE", "WEIGHTS_FILE", "OPTIMIZER_FILE", "LEGACY_FILE",
           "checkpoint_dir", "is_checkpoint", "write_checkpoint", "read_checkpoint",
           "checkpoint_digest", "convert_legacy_checkpoint"]

FORMAT = "raysys.viewsam"
VERSION = 2  # 2: the view token and VC-CMA of the paper's Eq. 3-7 (issue #21); other weights
_OLD_MODEL = {1: "it holds the model before the paper's view token and VC-CMA (Eq. 3-7, "
                 "issue #21), whose weights do not fit this one: train it again"}
META_FILE = "checkpoint.json"
WEIGHTS_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
LEGACY_FILE = "model.pt"  # the pickled format of earlier versions
_RESERVED = ("format", "version", "weights", "optimizer")
_ORDER = ("epoch", "stage", "stage_epoch", "calibration", "model_config", "build_spec")
log = logging.getLogger(__name__)


def _convert_hint(p: Path) -> str:
    return (f"{p} is a ViewSAM checkpoint in the old format ({LEGACY_FILE}, a pickle, which "
            "raysys no longer opens because unpickling can run code); convert it once with "
            f"`raysys convert-checkpoint {p} --out NEW_DIR` and pass NEW_DIR")


def checkpoint_dir(path: str | os.PathLike) -> Path:
    """The folder of a ViewSAM checkpoint given as the folder or one of its files.

    Raises:
        FileNotFoundError: nothing there, or a folder without ``checkpoint.json``.
        UserError: an old-format checkpoint (the message names the converter), a SAM2
            ``.pt`` or another file where a ViewSAM checkpoint belongs.
    """
    if storage.is_uri(path):  # a checkpoint in storage: read from this node's copy
        r = storage.path(path)
        r = r.parent if r.name in (META_FILE, WEIGHTS_FILE, OPTIMIZER_FILE) else r
        if not (r / META_FILE).is_file():
            raise FileNotFoundError(f"no ViewSAM checkpoint at {r} (no {META_FILE} in it): "
                                    "pass a `raysys train` run's final/ folder")
        path = storage.local_copy(r)
    p = Path(path)
    if p.is_file() and p.name in (META_FILE, WEIGHTS_FILE, OPTIMIZER_FILE):
        p = p.parent
    if p.is_dir():
        if (p / META_FILE).is_file():
            return p
        if (p / LEGACY_FILE).is_file():
            raise UserError(_convert_hint(p))
        raise FileNotFoundError(f"{p} is not a ViewSAM checkpoint (no {META_FILE} in it): pass "
                                "a `raysys train` run's final/ folder (or an epoch checkpoint)")
    if not p.exists():
        raise FileNotFoundError(f"no ViewSAM checkpoint at {p}: pass a `raysys train` run's "
                                f"final/ folder (it holds {META_FILE} and {WEIGHTS_FILE})")
    payload = safe_torch_load(p, "ViewSAM checkpoint")  # only to say what the file is
    if isinstance(payload, dict) and "build_spec" in payload:
        raise UserError(_convert_hint(p))
    if isinstance(payload, dict) and isinstance(payload.get("model"), dict):
        raise UserError(f"{p} is a SAM2 checkpoint (SAM2's .pt format), not a ViewSAM "
                        "checkpoint: pass it as --sam2-checkpoint, and a `raysys train` run's "
                        "final/ folder as --model")
    raise UserError(f"{p} is not a ViewSAM checkpoint: pass a `raysys train` run's final/ "
                    f"folder (it holds {META_FILE} and {WEIGHTS_FILE})")


def is_checkpoint(path: str | os.PathLike) -> bool:
    """A folder (or file) that looks like a ViewSAM checkpoint of either format, without
    reading it: for cheap checks before the real read."""
    p = storage.path(path)
    return p.is_file() or any((p / f).is_file() for f in (META_FILE, LEGACY_FILE))


# ----------------------------------------------------------------------------- writing


def _jsonable(x: Any, where: str) -> Any:
    """Plain JSON data of ``x`` (paths as strings, numpy scalars as numbers)."""
    if x is None or isinstance(x, str | bool | int | float):
        return x
    if isinstance(x, dict):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(x)]
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    if hasattr(x, "item") and getattr(x, "ndim", None) == 0:  # numpy / torch scalars
        return x.item()
    raise ValueError(f"checkpoint field {where} is a {type(x).__name__}: a checkpoint holds "
                     "tensors in its state dicts and plain data everywhere else")


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_tensors(path: Path, tensors: dict) -> dict:
    """Write ``tensors`` as safetensors; returns the ``checkpoint.json`` entry."""
    import torch
    from safetensors.torch import save

    out, seen = {}, set()
    for k, v in tensors.items():
        if not isinstance(v, torch.Tensor):
            raise ValueError(f"checkpoint state {k!r} is a {type(v).__name__}, not a tensor")
        v = v.detach().cpu().contiguous()
        if v.numel() and v.data_ptr() in seen:  # safetensors refuses shared storage
            v = v.clone()
        seen.add(v.data_ptr())
        out[str(k)] = v
    data = save(out, metadata={"format": FORMAT})
    _atomic_write(path, data)
    return {"file": path.name, "sha256": hashlib.sha256(data).hexdigest(), "tensors": len(out)}


def _split_optimizer(sd: dict) -> tuple[dict, dict]:
    """An optimizer ``state_dict()`` as (tensors, JSON entry)."""
    tensors, scalars = {}, {}
    for idx, st in sd.get("state", {}).items():
        for name, v in st.items():
            key = f"state.{int(idx)}.{name}"
            if hasattr(v, "detach"):
                tensors[key] = v
            else:
                scalars[key] = v
    return tensors, {"param_groups": sd.get("param_groups", []), "scalars": scalars}


def _join_optimizer(tensors: dict, entry: dict) -> dict:
    state: dict[int, dict] = {}
    for key, v in [*tensors.items(), *entry.get("scalars", {}).items()]:
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = v
    groups = [{**g, "betas": tuple(g["betas"])} if isinstance(g.get("betas"), list) else g
              for g in entry.get("param_groups", [])]
    return {"state": state, "param_groups": groups}


def write_checkpoint(directory: str | os.PathLike, payload: dict) -> Path:
    """Write a payload (``model`` state dict, optional ``optimizer`` state dict, plain-data
    fields) as a checkpoint folder ``directory`` (created).

    Raises:
        ValueError: a field that is neither a tensor (in a state dict) nor plain data.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    meta = {k: _jsonable(v, k) for k, v in payload.items()
            if k not in ("model", "optimizer") and k not in _RESERVED}
    first = [k for k in _ORDER if k in meta]  # the short fields on top, for a reader
    doc = {"format": FORMAT, "version": VERSION, **{k: meta.pop(k) for k in first}, **meta}
    doc["weights"] = _write_tensors(d / WEIGHTS_FILE, payload["model"])
    doc["optimizer"] = None
    if payload.get("optimizer") is not None:
        tensors, entry = _split_optimizer(payload["optimizer"])
        doc["optimizer"] = {**_write_tensors(d / OPTIMIZER_FILE, tensors),
                            **_jsonable(entry, "optimizer")}
    elif (d / OPTIMIZER_FILE).exists():
        (d / OPTIMIZER_FILE).unlink()
    _atomic_write(d / META_FILE, (json.dumps(doc, indent=1) + "\n").encode())
    return d


# ----------------------------------------------------------------------------- reading


def _read_meta(d: Path) -> dict:
    f = d / META_FILE
    try:
        doc = json.loads(f.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{f} is not valid JSON ({e}): the checkpoint is damaged") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise UserError(f"{f} is not a raysys ViewSAM checkpoint (format "
                        f"{doc.get('format') if isinstance(doc, dict) else None!r}, expected "
                        f"{FORMAT!r})")
    if doc.get("version") != VERSION:
        old = doc.get("version")
        why = (_OLD_MODEL.get(old) if isinstance(old, int) else None) or \
            "use the raysys that wrote it"
        raise UserError(f"{f} has checkpoint version {doc.get('version')!r}; this raysys "
                        f"reads version {VERSION}: {why}")
    if not isinstance(doc.get("weights"), dict):
        raise UserError(f"{f} has no 'weights' entry: the checkpoint is damaged")
    return doc


def _read_tensors(d: Path, entry: dict) -> dict:
    """The tensors of one safetensors file, read into memory in one read: the digest is
    checked on the very bytes that are loaded, and no tensor maps the file (safetensors'
    ``load_file`` returns tensors backed by an mmap of it, so a file truncated or rewritten
    while they live, e.g. a checkpoint another Ray Train worker on the node downloads
    again into Ray's shared folder, kills the process with SIGBUS)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    f = d / str(entry.get("file", ""))
    if f.parent != d or not f.is_file():
        raise FileNotFoundError(f"checkpoint {d}: {f.name or 'its weights file'} is missing")
    data = f.read_bytes()
    if entry.get("sha256") and hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise UserError(f"{f} does not match {d / META_FILE} (sha256 differs): the file was "
                        "replaced or damaged; copy the checkpoint folder again")
    try:
        return load(data)
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{f} is not a readable safetensors file ({e})") from None


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The payload of a checkpoint folder (or one of its files): the one reader of
    ViewSAM checkpoints. The SAM2 YAML of its build spec is checked here
    (:func:`raysys.viewsam.sam2_yaml.check_sam2_config`).

    Raises:
        FileNotFoundError, UserError: see :func:`checkpoint_dir`; damaged files; a refused
            SAM2 YAML.
    """
    from raysys.viewsam.sam2_yaml import load_sam2_yaml

    d = checkpoint_dir(path)
    doc = _read_meta(d)
    yaml_text = (doc.get("build_spec") or {}).get("sam2_yaml")
    if yaml_text:
        load_sam2_yaml(yaml_text, f"{d / META_FILE} (build_spec.sam2_yaml)")
    payload = {k: v for k, v in doc.items() if k not in _RESERVED}
    payload["model"] = _read_tensors(d, doc["weights"])
    if doc.get("optimizer"):
        payload["optimizer"] = _join_optimizer(_read_tensors(d, doc["optimizer"]),
                                               doc["optimizer"])
    return payload


def checkpoint_digest(path: str | os.PathLike) -> str:
    """A content hash of a checkpoint: sha256 over ``checkpoint.json`` and
    ``model.safetensors`` (names and bytes; the optimizer file enters through its sha256 in
    ``checkpoint.json``). Equal digests mean the same model, config, calibration and
    history, wherever the folder lies; it is what a re-run compares to see that ``--model``
    changed.

    Raises:
        FileNotFoundError, UserError: as :func:`checkpoint_dir`.
    """
    d = checkpoint_dir(path)
    h = hashlib.sha256()
    for name in (META_FILE, WEIGHTS_FILE):
        h.update(f"{name}\0{file_digest(d / name)}\n".encode())
    return h.hexdigest()


# ----------------------------------------------------------------------------- old format


def convert_legacy_checkpoint(source: str | os.PathLike, out: str | os.PathLike, *,
                              trust: bool = False) -> Path:
    """Write an old-format checkpoint (``model.pt``, or the folder holding it) as a
    checkpoint folder ``out``.

    The old payload is plain data and tensors, so ``torch.load(weights_only=True)`` reads
    it; a file it refuses (a pickle naming other objects, which may run code) is unpickled
    fully only with ``trust``.

    Raises:
        UserError: no ``model.pt`` there, a refused file without ``trust``, not a ViewSAM
            payload, ``out`` already holding a checkpoint.
    """
    import torch

    from raysys.viewsam.sam2_yaml import load_sam2_yaml

    src = Path(source)
    f = src / LEGACY_FILE if src.is_dir() else src
    if not f.is_file():
        raise FileNotFoundError(f"no old-format ViewSAM checkpoint at {src}: expected {f}")
    if (Path(out) / META_FILE).exists():
        raise UserError(f"--out {out} already holds a checkpoint ({META_FILE}); pass a new "
                        "folder")
    try:
        payload = safe_torch_load(f, "old checkpoint")
    except UnsafeFileError as e:
        if not trust:
            raise UnsafeFileError(f"{e}. If you made this file yourself or trust who did, "
                                  "rerun with --trust to unpickle it fully (that can run "
                                  "code)") from None
        log.warning("%s: a weights-only load refused it; unpickling it fully (--trust)", f)
        payload = torch.load(f, map_location="cpu", weights_only=False)
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), dict) \
            or "build_spec" not in payload:
        raise UserError(f"{f} is not an old-format ViewSAM checkpoint (no 'model' and "
                        "'build_spec' entries)")
    yaml_text = (payload.get("build_spec") or {}).get("sam2_yaml")
    if yaml_text:
        load_sam2_yaml(yaml_text, f"{f} (build_spec.sam2_yaml)")
    return write_checkpoint(out, payload)
