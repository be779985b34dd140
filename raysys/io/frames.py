"""Reading frames, and what a frame that cannot be used means.

**A corrupt frame fails the run; it is never skipped.** An empty, truncated, unreadable
frame, or one of another size than its view's other frames, raises :class:`FrameError`:
one line naming the file, the scene, the view and the 1-based frame number, and how to fix
it. Skipping would shift one camera against the others (views are synchronised by frame
number), change what every later stage sees, and leave output that looks complete; a
corrupt frame usually means an interrupted copy or extraction, which the user fixes in
seconds.

Where it is checked:

* :func:`check_frames`, before any work starts (``raysys label``, ``train``, ``track``,
  ``baseline``): the header of every frame (format, size), that its view's frames share
  one size, and that a JPEG or PNG ends where its format says (a truncated file does not;
  such a file is decoded to be sure). Cheap: about 0.15 ms a frame.
* :func:`read_frame`, whenever a frame is decoded (:class:`raysys.io.video.VideoFrames`,
  training clips): what slips past the header check (corrupt data inside the file) still
  names its file. From a Ray worker it comes back wrapped (Ray Data and Ray Train keep
  only the worker's traceback); the jobs run under :func:`worker_frame_errors`, which
  raises the :class:`FrameError` itself again, so the command's error is still one line.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = ["FrameError", "check_frames", "check_view", "find_frame_error", "frame_size",
           "list_frames", "list_image_views", "read_frame", "worker_frame_errors"]

_IMG_EXT = {".jpg", ".jpeg", ".png"}

_FIX = "replace the file (re-extract or re-copy the view's frames) and run again"
_JPEG_END, _PNG_END = b"\xff\xd9", b"IEND\xaeB`\x82"


class FrameError(ValueError):
    """A frame that cannot be used (empty, truncated, unreadable, another size).

    Attributes:
        path: the frame's file; scene, view, frame: where it belongs (None if unknown).
        problem: what is wrong with it.
    """

    def __init__(self, path: str | os.PathLike, problem: str, scene: str | None = None,
                 view: str | None = None, frame: int | None = None):
        self.path, self.problem = str(path), problem
        self.scene, self.view, self.frame = scene, view, frame
        where = ", ".join(x for x in (scene, view, None if frame is None else f"frame {frame}")
                          if x)
        super().__init__(f"corrupt frame {self.path}" + (f" ({where})" if where else "")
                         + f": {problem}; {_FIX}")

    def __reduce__(self):  # pickles with its fields (errors travel back from Ray workers)
        return (type(self), (self.path, self.problem, self.scene, self.view, self.frame))


_MESSAGE = re.compile(r"corrupt frame (?P<path>.+?)(?: \((?P<where>[^()]*)\))?: "
                      r"(?P<problem>.+?); " + re.escape(_FIX))


def find_frame_error(e: BaseException) -> FrameError | None:
    """The :class:`FrameError` behind ``e``, or None: ``e`` itself, a Ray error's
    ``cause``, a chained one, or one that came back from a worker only as text (Ray Data
    wraps a UDF's error in a ``UserCodeException`` and Ray Train in a
    ``TrainingFailedError``, both keeping just the worker's traceback)."""
    seen: set[int] = set()
    x: BaseException | None = e
    while x is not None and id(x) not in seen:
        seen.add(id(x))
        cause = getattr(x, "cause", None)
        if type(x) is FrameError:
            return x
        if isinstance(cause, FrameError):
            return cause
        x = x.__cause__ or (cause if isinstance(cause, BaseException) else None)
    m = _MESSAGE.search(str(e))
    if m is None:
        return None
    where = [w for w in (m["where"] or "").split(", ") if w]
    frame = int(where.pop()[6:]) if where and re.fullmatch(r"frame \d+", where[-1]) else None
    scene, view = ([None] + where)[-2:] if where else (None, None)
    return FrameError(m["path"], m["problem"], scene, view, frame)


@contextlib.contextmanager
def worker_frame_errors() -> Iterator[None]:
    """Raise a :class:`FrameError` that a Ray worker hit as itself (one line naming the
    frame), not as the wrapper Ray passes back (:func:`find_frame_error`)."""
    try:
        yield
    except Exception as e:
        frame_error = find_frame_error(e)
        if frame_error is None or frame_error is e:
            raise
        raise frame_error from None


def _image():
    from PIL import Image

    return Image


def read_frame(path: str | os.PathLike, scene: str | None = None, view: str | None = None,
               frame: int | None = None) -> np.ndarray:
    """Decode one frame as (H, W, 3) uint8 RGB.

    Raises:
        FrameError: the file is missing, empty, truncated or not an image.
    """
    Image = _image()
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))  # convert() decodes the whole file
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise FrameError(path, _reason(path, e), scene, view, frame) from None
    return arr


def _reason(path: str | os.PathLike, e: BaseException) -> str:
    try:
        if os.path.getsize(path) == 0:
            return "empty file (0 bytes)"
    except OSError:
        return "missing or not readable"
    text = str(e).split("\n")[0] or type(e).__name__
    if "truncated" in text:
        return f"truncated image ({text})"
    if "cannot identify" in text:
        return "not an image this reader knows (JPEG, PNG)"
    return f"cannot be decoded ({text})"


def frame_size(path: str | os.PathLike, scene: str | None = None, view: str | None = None,
               frame: int | None = None) -> tuple[int, int]:
    """(H, W) of a frame from its header, after checking that it is not empty and not cut
    short (a JPEG/PNG that does not end with its end marker is decoded to be sure).

    Raises:
        FrameError: as :func:`read_frame`.
    """
    Image = _image()
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                raise FrameError(path, "empty file (0 bytes)", scene, view, frame)
            f.seek(-min(f.tell(), 8), os.SEEK_END)
            tail = f.read()
            f.seek(0)
            with Image.open(f) as im:
                w, h = im.size
                fmt = im.format
    except FrameError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise FrameError(path, _reason(path, e), scene, view, frame) from None
    end = {"JPEG": _JPEG_END, "PNG": _PNG_END}.get(fmt or "")
    if end is not None and not tail.endswith(end):
        h, w = read_frame(path, scene, view, frame).shape[:2]  # raises if truncated
    return h, w


def check_view(frames: list[tuple[int, Path]], scene: str | None = None,
               view: str | None = None) -> tuple[int, int]:
    """Check every frame of one view (``(frame, path)`` as :func:`list_frames` gives them):
    readable headers, whole files, one size. Returns that size (H, W); (0, 0) if none.

    Raises:
        FrameError: the first bad frame; a frame of another size than most of the view's.
    """
    sizes = [frame_size(p, scene, view, n) for n, p in frames]
    if not sizes:
        return (0, 0)
    (usual, count), = Counter(sizes).most_common(1)
    for (n, p), hw in zip(frames, sizes, strict=True):
        if hw != usual:
            raise FrameError(p, f"{hw[1]}x{hw[0]} pixels, while {count} other frames of the "
                             f"view are {usual[1]}x{usual[0]}", scene, view, n)
    return usual


def list_frames(view_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """(frame, path) of the images of one ``<Scene>_View<k>`` folder, by frame number.

    The frame number is the last integer in the file stem, so ``000001.jpg``,
    ``1.jpg`` and ``Circle_View1_000001.jpg`` all work. An empty image file raises
    :class:`FrameError` (a corrupt frame is never skipped). Also
    ``raysys.io.crtrack.list_frames``.
    """
    from raysys.io import storage
    from raysys.io.crtrack import CRTrackFormatError

    if storage.is_uri(view_dir):  # a folder in remote storage: read from this node's copy
        if not storage.path(view_dir).is_dir():
            raise CRTrackFormatError(view_dir, "image folder not found")
        view_dir = storage.local_copy(view_dir)
    d = Path(view_dir)
    if not d.is_dir():
        raise CRTrackFormatError(d, "image folder not found")
    scene, _, view = d.name.rpartition("_")
    out = []
    with os.scandir(d) as entries:
        for e in entries:
            f = Path(e.path)
            if f.suffix.lower() not in _IMG_EXT or not e.is_file():
                continue
            m = re.search(r"(\d+)(?!.*\d)", f.stem)
            if m is None:
                raise CRTrackFormatError(f, "image name has no frame number")
            if e.stat().st_size == 0:
                raise FrameError(f, "empty file (0 bytes)", scene or None, view,
                                 int(m.group(1)))
            out.append((int(m.group(1)), f))
    out.sort()
    dups = [a for a, b in zip(out, out[1:], strict=False) if a[0] == b[0]]
    if dups:
        raise CRTrackFormatError(d, f"two images for frame {dups[0][0]}")
    return out


def list_image_views(image_root: str | os.PathLike) -> dict[str, list[str]]:
    """Scenes and their views from ``<Scene>_View<k>`` folders: ``{scene: [View1, ...]}``.
    Also ``raysys.io.crtrack.list_image_views``."""
    from raysys.io.crtrack import CRTrackFormatError, view_sort_key
    from raysys.io.storage import path

    root = path(image_root)
    if not root.is_dir():
        raise CRTrackFormatError(root, "image folder not found (expected <Scene>_View<k>/)")
    scenes: dict[str, list[str]] = {}
    for p in root.iterdir():
        if p.is_dir() and "_" in p.name:
            scene, view = p.name.split("_", 1)
            if re.fullmatch(r"View\d+", view):
                scenes.setdefault(scene, []).append(view)
    return {s: sorted(v, key=view_sort_key) for s, v in sorted(scenes.items())}


def check_frames(image_root: str | os.PathLike, scenes: list[str] | None = None) -> dict:
    """:func:`check_view` for every ``<Scene>_View<k>`` folder under ``image_root`` (only
    ``scenes`` when given), before any work starts.

    Returns:
        ``{"views": count, "frames": count}``.

    Raises:
        FrameError: the first bad frame; CRTrackFormatError: a missing image folder.
    """
    from raysys.io.storage import path

    root = path(image_root)
    n_views = n_frames = 0
    for scene, views in list_image_views(root).items():
        if scenes is not None and scene not in scenes:
            continue
        for view in views:
            frames = list_frames(root / f"{scene}_{view}")
            check_view(frames, scene, view)
            n_views, n_frames = n_views + 1, n_frames + len(frames)
    return {"views": n_views, "frames": n_frames}
