"""Draw all views of a scene as one mosaic with boxes and ids, as PNG frames and a GIF.

Rows follow :mod:`raysys.io.crtrack`: ``(n, 6)`` = frame, id, then four box numbers in
``box_format`` "xywh" (GT: left, top, width, height) or "xyxy" (predictions). Any rows
work - GT, predictions, pseudo labels. Pass a second set as ``ref_rows_by_view`` (the GT)
to mark errors: rows with no reference box at IoU >= 0.5 are drawn red and tagged "FP";
reference boxes nobody matched are drawn dashed and tagged "FN".

Each id keeps one colour everywhere (across views and frames), so a cross-view identity
error shows as a colour change.
"""

from __future__ import annotations

import colorsys
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from raysys.eval.pairs import iou_matrix_xyxy
from raysys.io.frames import read_frame

__all__ = ["id_colour", "match_rows", "draw_view", "draw_mosaic", "write_scene_video"]

_HEADER = 28         # px, title bar height at tile width 480 (scaled with the tile width)
_FP = (255, 40, 40)
_FN = (255, 255, 255)


def id_colour(gid: int) -> tuple[int, int, int]:
    """A saturated colour per id, far apart for consecutive ids (golden-ratio hues)."""
    h = (int(gid) * 0.618033988749895) % 1.0
    v = 1.0 if int(gid) % 2 else 0.85
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, v)
    return int(r * 255), int(g * 255), int(b * 255)


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=max(8, int(size)))


def _xyxy(rows: np.ndarray, fmt: str) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    if fmt not in ("xywh", "xyxy"):
        raise ValueError(f"box_format must be 'xywh' or 'xyxy', got {fmt!r}")
    out = rows[:, 2:6].copy()
    if fmt == "xywh":
        out[:, 2:] += out[:, :2]
    return out


def match_rows(boxes: np.ndarray, ref: np.ndarray, thr: float = 0.5
               ) -> tuple[np.ndarray, np.ndarray]:
    """Greedy one-to-one IoU matching of xyxy boxes of one frame.

    Returns:
        (matched flag per box, matched flag per reference box), boolean arrays.
    """
    mb, mr = np.zeros(len(boxes), bool), np.zeros(len(ref), bool)
    if len(boxes) and len(ref):
        iou = iou_matrix_xyxy(boxes, ref)
        for flat in np.argsort(-iou, axis=None, kind="stable"):
            i, j = divmod(int(flat), len(ref))
            if iou[i, j] < thr:
                break
            if not mb[i] and not mr[j]:
                mb[i] = mr[j] = True
    return mb, mr


def _dashed_rect(d: ImageDraw.ImageDraw, box, colour, width: int, dash: int = 6) -> None:
    x1, y1, x2, y2 = box
    for (ax, ay), (bx, by) in (((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)),
                               ((x2, y2), (x1, y2)), ((x1, y2), (x1, y1))):
        n = max(1, int(math.hypot(bx - ax, by - ay) // dash))
        for k in range(0, n, 2):
            t0, t1 = k / n, min(1.0, (k + 1) / n)
            d.line([(ax + (bx - ax) * t0, ay + (by - ay) * t0),
                    (ax + (bx - ax) * t1, ay + (by - ay) * t1)], fill=colour, width=width)


def _tag(d: ImageDraw.ImageDraw, xy, text: str, colour, font) -> None:
    x, y = xy
    l, t, r, b = d.textbbox((0, 0), text, font=font)
    y = max(0, y - (b - t) - 4)
    d.rectangle([x, y, x + (r - l) + 4, y + (b - t) + 4], fill=colour)
    lum = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    d.text((x + 2 - l, y + 2 - t), text, fill=(0, 0, 0) if lum > 140 else (255, 255, 255),
           font=font)


def draw_view(img: np.ndarray, rows: np.ndarray, *, box_format: str = "xywh",
              ref_rows: np.ndarray | None = None, ref_format: str = "xywh",
              name: str = "", scale: float = 1.0, font_size: int = 14) -> np.ndarray:
    """Boxes and ids of one frame of one view.

    Args:
        img: (H, W, 3) uint8 RGB frame.
        rows: (n, 6) rows of this frame (frame column ignored).
        box_format: "xywh" or "xyxy" for ``rows``.
        ref_rows: optional reference (GT) rows of this frame to mark FP / FN against.
        ref_format: box format of ``ref_rows``.
        name: view name written in the corner.
        scale: resize factor applied to the frame (and boxes).
        font_size: label font size in output pixels.

    Returns:
        (round(H*scale), round(W*scale), 3) uint8 RGB.
    """
    h, w = img.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    tile = Image.fromarray(cv2.resize(img, size, interpolation=cv2.INTER_AREA)
                           if scale != 1.0 else img)
    d = ImageDraw.Draw(tile)
    font = _font(font_size)
    boxes = _xyxy(rows, box_format) * scale
    ids = np.asarray(rows, dtype=np.float64).reshape(-1, 6)[:, 1].astype(int)
    ok = np.ones(len(boxes), bool)
    if ref_rows is not None:
        ref = _xyxy(ref_rows, ref_format) * scale
        ref_ids = np.asarray(ref_rows, dtype=np.float64).reshape(-1, 6)[:, 1].astype(int)
        ok, ref_ok = match_rows(boxes, ref)
        for b, g in zip(ref[~ref_ok], ref_ids[~ref_ok], strict=True):
            _dashed_rect(d, b.tolist(), _FN, 2)
            _tag(d, (b[0], b[3] + font_size + 6), f"FN {g}", (90, 90, 90), font)
    width = max(2, round(2 * scale + 0.5))
    for b, g, good in zip(boxes, ids, ok, strict=True):
        col = id_colour(g) if good else _FP
        d.rectangle(b.tolist(), outline=col, width=width)
        _tag(d, (b[0], b[1]), str(g) if good else f"FP {g}", col, font)
    if name:
        _tag(d, (4, font_size + 8), name, (0, 0, 0), font)
    return np.asarray(tile)


def _legend(width: int, height: int, ids: Sequence[int], labels: Mapping[int, str] | None,
            font_size: int) -> np.ndarray:
    img = Image.new("RGB", (width, height), (24, 24, 24))
    d = ImageDraw.Draw(img)
    font = _font(font_size)
    x, y = 6, 4
    for g in ids:
        text = f"{g} {labels.get(g, '')}".strip() if labels else str(g)
        tw = d.textbbox((0, 0), text, font=font)[2]
        if x + tw + 24 > width:
            x, y = 6, y + font_size + 6
            if y + font_size > height:
                break
        d.rectangle([x, y + 2, x + 12, y + 14], fill=id_colour(g))
        d.text((x + 16, y), text, fill=(235, 235, 235), font=font)
        x += tw + 30
    return np.asarray(img)


def draw_mosaic(frames_by_view: Mapping[str, np.ndarray],
                rows_by_view: Mapping[str, np.ndarray], *, box_format: str = "xywh",
                ref_rows_by_view: Mapping[str, np.ndarray] | None = None,
                ref_format: str = "xywh", title: str = "",
                labels: Mapping[int, str] | None = None, cols: int | None = None,
                tile_width: int = 480) -> np.ndarray:
    """A grid of all views of one frame, with a title bar and a legend of the ids shown.

    Args:
        frames_by_view: view name -> (H, W, 3) uint8 RGB frame (all the same size).
        rows_by_view: view name -> rows of this frame (missing view: no boxes).
        box_format: box format of ``rows_by_view``.
        ref_rows_by_view: optional reference (GT) rows per view to mark FP / FN against.
        ref_format: box format of the reference rows.
        title: text of the title bar (e.g. scene, frame, expression).
        labels: id -> short text for the legend (e.g. "person").
        cols: grid columns (default ceil(sqrt(views))).
        tile_width: width of one view in the mosaic (px).

    Returns:
        (H, W, 3) uint8 RGB mosaic; its size depends only on the arguments' shapes, so
        every frame of a video has the same size.
    """
    views = list(frames_by_view)
    if not views:
        raise ValueError("draw_mosaic needs at least one view")
    h0, w0 = frames_by_view[views[0]].shape[:2]
    scale = tile_width / w0
    th = round(h0 * scale)
    cols = cols or math.ceil(math.sqrt(len(views)))
    nrows = math.ceil(len(views) / cols)
    fs = max(10, round(14 * tile_width / 480))
    header = max(_HEADER, fs + 12)
    legend_h = 2 * (fs + 6) + 8
    out = np.full((header + nrows * th + legend_h, cols * tile_width, 3), 24, np.uint8)
    shown: set[int] = set()
    empty = np.zeros((0, 6))
    for k, v in enumerate(views):
        rows = np.asarray(rows_by_view.get(v, empty), dtype=np.float64).reshape(-1, 6)
        ref = None if ref_rows_by_view is None else ref_rows_by_view.get(v, empty)
        tile = draw_view(frames_by_view[v], rows, box_format=box_format, ref_rows=ref,
                         ref_format=ref_format, name=v, scale=scale, font_size=fs)
        r, c = divmod(k, cols)
        y, x = header + r * th, c * tile_width
        out[y:y + th, x:x + tile_width] = tile[:th, :tile_width]
        shown |= set(rows[:, 1].astype(int).tolist())
    bar = Image.fromarray(out[:header])
    ImageDraw.Draw(bar).text((8, (header - fs) // 2 - 1), title, fill=(240, 240, 240),
                             font=_font(fs))
    out[:header] = np.asarray(bar)
    out[-legend_h:] = _legend(out.shape[1], legend_h, sorted(shown), labels, fs)
    return out


def _select(rows: np.ndarray | None, frame: int) -> np.ndarray:
    if rows is None or len(rows) == 0:
        return np.zeros((0, 6))
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    return rows[rows[:, 0] == frame]


def write_scene_video(frame_paths_by_view: Mapping[str, Mapping[int, str | os.PathLike]],
                      rows_by_view: Mapping[str, np.ndarray], out_dir: str | os.PathLike, *,
                      frames: Sequence[int] | None = None, box_format: str = "xywh",
                      ref_rows_by_view: Mapping[str, np.ndarray] | None = None,
                      ref_format: str = "xywh", title: str = "",
                      labels: Mapping[int, str] | None = None, tile_width: int = 480,
                      fps: float = 5.0, png: bool = True, gif: bool = True,
                      gif_width: int = 720, gif_name: str = "mosaic.gif") -> dict:
    """Mosaics of many frames: ``frame_<n>.png`` files and an animated GIF.

    Args:
        frame_paths_by_view: view -> {frame number: image path}.
        rows_by_view: view -> all rows of the video (selected per frame here).
        out_dir: output folder (created).
        frames: frame numbers to draw (default: every frame of the first view).
        box_format, ref_rows_by_view, ref_format, title, labels, tile_width: as in
            :func:`draw_mosaic` (the title gets the frame number appended).
        fps: GIF frame rate.
        png, gif: which outputs to write.
        gif_width: the GIF is resized to this width (GIFs of large mosaics get heavy).
        gif_name: file name of the GIF.

    Returns:
        ``{"pngs": [paths], "gif": path or None, "size": (width, height) of the PNGs,
        "frames": [frame numbers]}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    views = list(frame_paths_by_view)
    frames = list(frames) if frames is not None else sorted(frame_paths_by_view[views[0]])
    if not frames:
        raise ValueError("no frames to draw")
    pngs, gif_frames, size = [], [], (0, 0)
    for f in frames:
        imgs = {}
        for v in views:
            p = frame_paths_by_view[v].get(f)
            if p is None:
                raise FileNotFoundError(f"no image for frame {f} of {v}")
            imgs[v] = read_frame(p, None, v, f)
        rows = {v: _select(rows_by_view.get(v), f) for v in views}
        ref = None if ref_rows_by_view is None else {
            v: _select(ref_rows_by_view.get(v), f) for v in views}
        m = draw_mosaic(imgs, rows, box_format=box_format, ref_rows_by_view=ref,
                        ref_format=ref_format, title=f"{title}  frame {f}".strip(),
                        labels=labels, tile_width=tile_width)
        size = (m.shape[1], m.shape[0])
        if png:
            p = out / f"frame_{f:06d}.png"
            cv2.imwrite(str(p), np.ascontiguousarray(m[..., ::-1]))
            pngs.append(str(p))
        if gif:
            gs = gif_width / m.shape[1]
            gif_frames.append(cv2.resize(m, (gif_width, round(m.shape[0] * gs)),
                                         interpolation=cv2.INTER_AREA) if gs < 1 else m)
    gif_path = None
    if gif:
        import imageio.v3 as iio

        gif_path = str(out / gif_name)
        iio.imwrite(gif_path, np.stack(gif_frames), duration=round(1000 / fps), loop=0)
    return {"pngs": pngs, "gif": gif_path, "size": size, "frames": frames}
