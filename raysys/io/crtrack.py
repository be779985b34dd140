"""Read and write the CRTrack layout (see ../shared/crtrack/PROTOCOL.md).

Layout of one split (``<root>`` may be e.g. ``In-domain/gt/sorted_gt_test_In-domain``)::

    <gt_root>/<Scene>_<expression>/gt/View<k>.txt     frame,id,left,top,width,height,1,1,1
    <pred_root>/<Scene>_<expression>/View<k>.txt      frame,id,x1,y1,x2,y2,1,-1,-1,-1
    <image_root>/<Scene>_View<k>/<...><int>.jpg       frames, 1-based

Expression folder names are free text with spaces, commas and even double spaces; the
scene is the text before the first ``_``. Every reader here validates as it parses and
raises :class:`CRTrackFormatError` naming the file and the 1-based line.

Arrays exchanged with callers (float64):
* GT rows: ``(n, 6)`` = frame, id, left, top, width, height
* prediction rows: ``(n, 6)`` = frame, id, x1, y1, x2, y2
"""

from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raysys.io.frames import list_frames, list_image_views

__all__ = [
    "CRTrackFormatError", "ExpressionDir", "split_expression_name", "expression_folder_name",
    "read_gt_file", "read_pred_file", "write_gt_file", "write_pred_file", "list_expressions",
    "gt_views", "read_expression_gt", "read_expression_pred", "write_expression_gt",
    "write_expression_pred", "view_sort_key", "list_frames", "list_image_views",
    "atomic_write_text", "new_file_mode",
]

GT_COLUMNS = 9
PRED_COLUMNS = 10
_VIEW_RE = re.compile(r"^View(\d+)\.txt$")
_INT_RE = re.compile(r"^[+-]?\d+$")
_INT64 = (-(1 << 63), (1 << 63) - 1)


class CRTrackFormatError(ValueError):
    """A CRTrack file or folder that does not follow the format.

    Attributes:
        path: the offending file or folder.
        line: 1-based line number, or None when the problem is not one line.
    """

    def __init__(self, path: str | os.PathLike, message: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class ExpressionDir:
    """One ``<Scene>_<expression>`` folder."""

    name: str
    scene: str
    text: str
    path: Path


def _path(p):
    """A local ``Path`` or a storage URI's :class:`raysys.io.storage.RemotePath`."""
    from raysys.io.storage import path

    return path(p)


def split_expression_name(name: str) -> tuple[str, str]:
    """Split ``"<Scene>_<expression>"`` at the first ``_`` into (scene, expression)."""
    if "_" not in name:
        raise ValueError(
            f"expression folder {name!r} has no '_': CRTrack names are '<Scene>_<expression>'"
        )
    scene, text = name.split("_", 1)
    if not scene or not text:
        raise ValueError(f"expression folder {name!r} needs a scene and a text around the '_'")
    return scene, text


def expression_folder_name(scene: str, text: str) -> str:
    """Inverse of :func:`split_expression_name`, with the checks a file system needs."""
    if not scene or "_" in scene or "/" in scene:
        raise ValueError(f"scene {scene!r} must be non-empty and contain neither '_' nor '/'")
    if not text or "/" in text or "\x00" in text or text in (".", ".."):
        raise ValueError(f"expression {text!r} must be non-empty and contain no '/'")
    return f"{scene}_{text}"


def view_sort_key(view: str) -> tuple[int, str]:
    """Order ``View1 < View2 < ... < View10`` (numeric), names without a number last."""
    m = re.search(r"(\d+)$", view)
    return (int(m.group(1)) if m else 1 << 30, view)


# ----------------------------------------------------------------------------- reading


def _read_rows(path: Path, ncols: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(n, 6) float64 rows and (n,) int64 ids, read exactly (an id beyond 2^53 is not
    exact in the float64 rows)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CRTrackFormatError(path, f"{kind} file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CRTrackFormatError(path, f"cannot read {kind} file: {e}") from None
    fast = _fast_rows(text, ncols)
    if fast is not None:
        return fast
    lines = text.splitlines()
    out = np.zeros((len(lines), 6), dtype=np.float64)
    ids = np.zeros(len(lines), dtype=np.int64)
    n = 0
    seen: dict[tuple[int, int], int] = {}
    for i, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != ncols:
            raise CRTrackFormatError(
                path, f"expected {ncols} comma-separated columns in a {kind} row, "
                f"got {len(parts)}: {raw[:80]!r}", i)
        if not _INT_RE.match(parts[0]) or not _INT_RE.match(parts[1]):
            raise CRTrackFormatError(
                path, f"frame and id must be integers, got frame={parts[0]!r} id={parts[1]!r}", i)
        frame, oid = int(parts[0]), int(parts[1])
        if frame < 0:
            raise CRTrackFormatError(path, f"frame must be >= 0, got {frame}", i)
        if not _INT64[0] <= oid <= _INT64[1] or frame > _INT64[1]:
            raise CRTrackFormatError(path, f"frame and id must fit a 64-bit integer "
                                     f"(|id| < 2^63), got frame={frame} id={oid}", i)
        try:
            coords = [float(p) for p in parts[2:6]]
        except ValueError:
            raise CRTrackFormatError(
                path, f"box coordinates must be numbers, got {parts[2:6]}", i) from None
        if not all(np.isfinite(coords)):
            raise CRTrackFormatError(path, f"box coordinates must be finite, got {coords}", i)
        key = (frame, oid)
        if key in seen:
            raise CRTrackFormatError(
                path, f"duplicate (frame, id) = ({frame}, {oid}); first on line {seen[key]}", i)
        seen[key] = i
        out[n] = (frame, oid, *coords)
        ids[n] = oid
        n += 1
    return out[:n], ids[:n]


def _fast_rows(text: str, ncols: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Vectorised parse of a well-formed file (about 10x faster than the line loop).

    Returns None whenever anything is off (column count, non-integer frame/id, negative
    frame, non-finite box, duplicate (frame, id), blank lines, ...): the line-by-line parser
    then finds the first problem and reports its line. It accepts only what that parser
    accepts, with the same values.
    """
    if not text.strip():
        return np.zeros((0, 6)), np.zeros(0, np.int64)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # loadtxt warns instead of failing on some input
            vals = np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2, comments=None)
            key = np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2, comments=None,
                             usecols=(0, 1), dtype=np.int64)  # rejects "1.0", "1e3"
    except ValueError:
        return None
    if vals.shape[1] != ncols or len(key) != len(vals) or np.any(key[:, 0] < 0):
        return None
    if not np.all(np.isfinite(vals[:, 2:6])):
        return None
    ks = key[np.lexsort((key[:, 1], key[:, 0]))]
    if np.any(np.all(ks[1:] == ks[:-1], axis=1)):
        return None
    out = np.empty((len(vals), 6), dtype=np.float64)
    out[:, :2] = key
    out[:, 2:] = vals[:, 2:6]
    return out, key[:, 1].copy()


def read_gt_file(path: str | os.PathLike, *, with_ids: bool = False):
    """Read a GT ``View<k>.txt``: (n, 6) frame, id, left, top, width, height; with
    ``with_ids`` also the (n,) int64 ids, exact (the float64 rows are not past 2^53)."""
    rows, ids = _read_rows(_path(path), GT_COLUMNS, "GT")
    if rows.size and np.any(rows[:, 4:6] < 0):
        bad = int(np.flatnonzero(np.any(rows[:, 4:6] < 0, axis=1))[0])
        raise CRTrackFormatError(path, "GT width and height must be >= 0 (xywh format)",
                                 _row_line(_path(path), bad))
    return (rows, ids) if with_ids else rows


def read_pred_file(path: str | os.PathLike, *, with_ids: bool = False):
    """Read a prediction ``View<k>.txt``: (n, 6) frame, id, x1, y1, x2, y2 (x2 >= x1,
    y2 >= y1); with ``with_ids`` also the (n,) int64 ids, exact."""
    rows, ids = _read_rows(_path(path), PRED_COLUMNS, "prediction")
    inverted = (rows[:, 4] < rows[:, 2]) | (rows[:, 5] < rows[:, 3])
    if inverted.any():
        bad = int(np.flatnonzero(inverted)[0])
        x1, y1, x2, y2 = rows[bad, 2:6].tolist()
        raise CRTrackFormatError(path, f"inverted box: a prediction row is x1,y1,x2,y2 with "
                                 f"x2 >= x1 and y2 >= y1, got {x1:g},{y1:g},{x2:g},{y2:g}",
                                 _row_line(_path(path), bad))
    return (rows, ids) if with_ids else rows


def _row_line(path: Path, row: int) -> int:
    """1-based line of the row-th non-empty line (for error messages)."""
    k = -1
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            k += 1
            if k == row:
                return i
    return row + 1


# ----------------------------------------------------------------------------- writing


def new_file_mode() -> int:
    """Mode a plain ``open(path, "w")`` would give a new file (0666 & ~umask), read without
    changing the process umask (not thread-safe) where /proc allows it."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8, ``\n`` line ends) to ``path`` atomically: a crash never leaves
    a half-written file, and an existing file stays intact until the new one replaces it (a
    temporary file and a rename locally, one PUT to a storage URI:
    :func:`raysys.io.storage.write_bytes`)."""
    from raysys.io import storage

    storage.write_bytes(path, text.encode("utf-8"))


def _sorted_rows(rows: np.ndarray, path: Path) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    if rows.size == 0:
        return rows
    order = np.lexsort((rows[:, 1], rows[:, 0]))
    rows = rows[order]
    key = rows[:, 0:2].astype(np.int64)
    dup = np.flatnonzero(np.all(key[1:] == key[:-1], axis=1))
    if dup.size:
        f, i = key[dup[0]]
        raise ValueError(f"{path}: duplicate (frame, id) = ({f}, {i}) in rows to write")
    if np.any(rows[:, 0] < 0):
        raise ValueError(f"{path}: frames must be >= 0")
    return rows


def write_gt_file(path: str | os.PathLike, rows: np.ndarray) -> None:
    """Write GT rows (n, 6) frame, id, left, top, width, height as integers."""
    path = _path(path)
    rows = _sorted_rows(rows, path)
    r = np.rint(rows).astype(np.int64)
    text = "".join(f"{a},{b},{c},{d},{e},{f},1,1,1\n" for a, b, c, d, e, f in r.tolist())
    atomic_write_text(path, text)


def write_pred_file(path: str | os.PathLike, rows: np.ndarray) -> None:
    """Write prediction rows (n, 6) frame, id, x1, y1, x2, y2 (2 decimals)."""
    path = _path(path)
    rows = _sorted_rows(rows, path)
    text = "".join(
        f"{int(a)},{int(b)},{c:.2f},{d:.2f},{e:.2f},{f:.2f},1,-1,-1,-1\n"
        for a, b, c, d, e, f in rows.tolist()
    )
    atomic_write_text(path, text)


# ----------------------------------------------------------------------------- folders


def list_expressions(gt_root: str | os.PathLike) -> list[ExpressionDir]:
    """All ``<Scene>_<expression>`` folders under a GT root that hold ``gt/View*.txt``."""
    root = _path(gt_root)
    if not root.is_dir():
        raise CRTrackFormatError(root, "GT folder not found (expected <Scene>_<expression>/gt/)")
    out = []
    for p in sorted(root.iterdir(), key=lambda q: q.name):
        if not p.is_dir() or not (p / "gt").is_dir():
            continue
        try:
            scene, text = split_expression_name(p.name)
        except ValueError as e:
            raise CRTrackFormatError(p, str(e)) from None
        out.append(ExpressionDir(p.name, scene, text, p))
    if not out:
        raise CRTrackFormatError(
            root, "no '<Scene>_<expression>/gt/View<k>.txt' folders found; is this a GT root "
            "such as In-domain/gt/sorted_gt_test_In-domain?")
    return out


def gt_views(expr: ExpressionDir | str | os.PathLike) -> list[str]:
    """View names (``View1``, ...) of an expression's GT, in evaluation order."""
    path = expr.path if isinstance(expr, ExpressionDir) else _path(expr)
    views = [m.group(0)[:-4] for f in (path / "gt").iterdir() if (m := _VIEW_RE.match(f.name))]
    if not views:
        raise CRTrackFormatError(path / "gt", "no View<k>.txt files")
    return sorted(views, key=view_sort_key)


def read_expression_gt(gt_root: str | os.PathLike, name: str, *, with_ids: bool = False
                       ) -> dict[str, np.ndarray]:
    """GT rows per view for expression folder ``name`` (``with_ids``: (rows, ids) per view,
    see :func:`read_gt_file`)."""
    path = _path(gt_root) / name
    return {v: read_gt_file(path / "gt" / f"{v}.txt", with_ids=with_ids)
            for v in gt_views(path)}


def read_expression_pred(
    pred_root: str | os.PathLike, name: str, views: list[str], missing_as_empty: bool = False,
    *, with_ids: bool = False) -> tuple[dict[str, np.ndarray], list[str]]:
    """Prediction rows per view; returns (rows per view, missing file paths); with
    ``with_ids`` (rows, ids) per view (see :func:`read_pred_file`).

    A missing file raises :class:`CRTrackFormatError` unless ``missing_as_empty``.
    """
    out: dict[str, np.ndarray] = {}
    missing: list[str] = []
    for v in views:
        f = _path(pred_root) / name / f"{v}.txt"
        if not f.exists():
            if not missing_as_empty:
                raise CRTrackFormatError(
                    f, "prediction file missing for a GT view; write an empty file for 'no "
                    "boxes', or pass --missing-as-empty")
            missing.append(str(f))
            out[v] = (np.zeros((0, 6)), np.zeros(0, np.int64)) if with_ids else np.zeros((0, 6))
            continue
        out[v] = read_pred_file(f, with_ids=with_ids)
    return out, missing


def write_expression_gt(gt_root: str | os.PathLike, name: str, rows: dict[str, np.ndarray]):
    for v, r in rows.items():
        write_gt_file(_path(gt_root) / name / "gt" / f"{v}.txt", r)


def write_expression_pred(pred_root: str | os.PathLike, name: str, rows: dict[str, np.ndarray]):
    for v, r in rows.items():
        write_pred_file(_path(pred_root) / name / f"{v}.txt", r)
