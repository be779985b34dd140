"""Loading weights without running code, and strictly.

* :func:`safe_torch_load`: a torch file through ``torch.load(weights_only=True)`` only
  (tensors, dicts, lists, numbers, strings); a pickle that names any other global (e.g.
  ``os.system`` in a ``__reduce__``) is refused before it runs, with one line.
* :func:`read_sam2_file`: a SAM2 ``.pt``, SAM2's own ``{"model": state_dict}`` or the
  project's exported bases ``{"model", "yaml", ...}``; a ViewSAM checkpoint handed over
  instead is named as such.
* :func:`diff_state` / :func:`load_state`: missing and unexpected keys and shape
  mismatches against a model, found before anything loads; an error naming the first few,
  unless ``allow_partial`` (then the rest loads and the skipped keys are logged).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from raysys.errors import UserError

__all__ = ["StateDiff", "UnsafeFileError", "diff_state", "load_state", "safe_torch_load",
           "read_sam2_file"]

log = logging.getLogger(__name__)
_SHOWN = 3  # keys named per kind in a message


class UnsafeFileError(UserError):
    """A torch file that a weights-only load refuses: unpickling it could run code."""


@dataclass
class StateDiff:
    """How a state dict differs from a model's (keys the caller skips left out)."""

    missing: list[str] = field(default_factory=list)  # the model's, absent from the file
    unexpected: list[str] = field(default_factory=list)  # the file's, unknown to the model
    mismatched: list[str] = field(default_factory=list)  # "key: file (a, b), model (c, d)"

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.mismatched)

    def describe(self) -> str:
        """One clause naming the first few keys of each kind."""
        parts = []
        for what, keys in (("missing", self.missing), ("unexpected", self.unexpected),
                           ("shape mismatch", self.mismatched)):
            if keys:
                more = f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else ""
                parts.append(f"{len(keys)} {what} ({'; '.join(keys[:_SHOWN])}{more})")
        return ", ".join(parts)


def diff_state(expected: dict, state: dict, skip: tuple[str, ...] = ()) -> StateDiff:
    """Compare ``state`` (the file's tensors) with ``expected`` (``model.state_dict()``).

    Args:
        skip: prefixes of the model's keys that the file need not hold (rebuilt elsewhere,
            e.g. a pretrained text encoder); they are never reported missing.
    """
    d = StateDiff()
    for k, v in expected.items():
        if k not in state:
            if not k.startswith(skip):
                d.missing.append(k)
        elif tuple(state[k].shape) != tuple(v.shape):
            d.mismatched.append(f"{k}: file {tuple(state[k].shape)}, model {tuple(v.shape)}")
    d.unexpected = [k for k in state if k not in expected]
    return d


def load_state(model, state: dict, name: str, *, allow_partial: bool = False,
               skip: tuple[str, ...] = (), hint: str = "") -> StateDiff:
    """Load ``state`` into ``model`` strictly, or what fits of it with ``allow_partial``.

    Args:
        name: what the weights are (e.g. "checkpoint RUN/final"), for the messages.
        skip: prefixes of the model's keys the file need not hold (see :func:`diff_state`).
        hint: how to fix a mismatch, appended to the error (e.g. the flag that loads
            anyway).

    Returns:
        the differences (empty unless ``allow_partial``).

    Raises:
        UserError: keys missing or unexpected, or shapes differ, and not ``allow_partial``;
            nothing is loaded then.
    """
    diff = diff_state(model.state_dict(), state, skip)
    if diff and not allow_partial:
        raise UserError(f"{name} does not fit the model: {diff.describe()}"
                        + (f"; {hint}" if hint else ""))
    if diff:
        log.warning("%s: loaded without %s (--allow-partial)", name, diff.describe())
        bad = {m.split(":", 1)[0] for m in diff.mismatched} | set(diff.unexpected)
        state = {k: v for k, v in state.items() if k not in bad}
    model.load_state_dict(state, strict=False)
    return diff


def _unpickler_detail(e: Exception) -> tuple[str | None, str]:
    """(the global a weights-only load refused, or None; a one-line reason)."""
    text = str(e)
    m = re.search(r"GLOBAL ([\w.]+)", text)
    if m:
        return m.group(1), f"it names {m.group(1)}"
    tail = text.split("WeightsUnpickler error:", 1)[-1]
    lines = [ln.strip() for ln in tail.splitlines() if ln.strip()]
    return None, (lines[0] if lines else "unreadable")[:120]


def safe_torch_load(path: str | os.PathLike, what: str):
    """``torch.load(path, weights_only=True)`` on the CPU (memory-mapped where possible).

    Args:
        what: what the file should be, for the messages (e.g. "SAM2 checkpoint").

    Raises:
        UnsafeFileError: the pickle names a global a weights-only load refuses (it could
            run code: nothing of it ran).
        UserError: not a torch file.
    """
    import pickle

    import torch

    p = Path(path)
    try:
        try:
            return torch.load(p, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e):  # an old, not zip-based torch file cannot be mapped
                raise
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        name, reason = _unpickler_detail(e)
        if name is None:  # not a torch file (e.g. text), or a pickle opcode it does not read
            raise UserError(f"{what} {p} is not a torch file a weights-only load reads "
                            f"({reason})") from None
        raise UnsafeFileError(f"{what} {p} cannot be loaded safely: {reason}, which only a "
                              "full unpickle (one that can run code) would call; nothing of it "
                              "ran. raysys loads only tensors and plain data") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        msg = " ".join(str(e).split())[:120]
        raise UserError(f"{what} {p} is not a readable torch file ({type(e).__name__}: "
                        f"{msg})") from None


def _viewsam_folder(p: Path) -> bool:
    from raysys.viewsam.checkpoint_format import LEGACY_FILE, META_FILE, WEIGHTS_FILE

    return p.is_dir() and any((p / f).is_file() for f in (META_FILE, WEIGHTS_FILE, LEGACY_FILE))


def read_sam2_file(path: str | os.PathLike) -> dict:
    """A SAM2 ``.pt`` file, read with :func:`safe_torch_load`.

    Returns:
        the payload: ``{"model": state_dict, ...}`` (the project's bases also carry
        ``"yaml"``, the SAM2 YAML text, and a few numbers).

    Raises:
        UserError: a ViewSAM checkpoint (folder, its files, or an old ``model.pt``) where a
            SAM2 file belongs, a folder, an unsafe or unreadable file, no ``"model"``.
    """
    from raysys.viewsam.checkpoint_format import META_FILE, WEIGHTS_FILE

    p = Path(path)
    viewsam = (f"SAM2 checkpoint {p} is a ViewSAM checkpoint (a `raysys train` output), not a "
               "SAM2 .pt file: pass a SAM2 .pt (or 'embedded') here, and a ViewSAM checkpoint "
               "folder as --model")
    if _viewsam_folder(p) or (p.is_file() and p.name in (META_FILE, WEIGHTS_FILE)):
        raise UserError(viewsam)
    if p.is_dir():
        raise UserError(f"SAM2 checkpoint {p} is a folder, not a SAM2 .pt file")
    payload = safe_torch_load(p, "SAM2 checkpoint")
    if isinstance(payload, dict) and "build_spec" in payload:
        raise UserError(viewsam)
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), dict):
        raise UserError(f"SAM2 checkpoint {p} has no 'model' state dict: a SAM2 .pt is "
                        "{'model': state_dict} (SAM2's own release format)")
    return payload
