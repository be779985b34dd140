"""``raysys viz``: draw all views of a scene as a mosaic with boxes and global ids.

Without ``--expression`` it shows every object's GT (meta tracks); with ``--expression`` it
shows that expression's GT, or, with ``--pred``, the predictions marked against that GT.

Example::

    raysys viz --data data/synth --scene PlazaTest01 --out viz/ --frames 1:40 --every 2
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from raysys.io.dataset import DOMAINS, SPLITS


def _frames(text: str) -> tuple[int | None, int | None]:
    a, sep, b = text.partition(":")
    try:
        lo = int(a) if a.strip() else None
        hi = int(b) if b.strip() else None
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected FIRST:LAST frame numbers such as 1:50, got {text!r}") from None
    if not sep:
        hi = lo
    return lo, hi


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="dataset root (holds In-domain/, ...)")
    p.add_argument("--scene", required=True, help="scene name, e.g. PlazaTest01")
    p.add_argument("--domain", default="In-domain", choices=DOMAINS)
    p.add_argument("--split", default="test", choices=SPLITS)
    p.add_argument("--expression", help="expression folder name '<Scene>_<text>' (or the text)")
    p.add_argument("--pred", help="prediction root holding '<Scene>_<expression>/View<k>.txt'")
    p.add_argument("--out", required=True, help="output folder for PNGs and the GIF")
    p.add_argument("--frames", type=_frames, default=(None, None), metavar="A:B",
                   help="first:last frame (1-based, inclusive; either may be left out)")
    p.add_argument("--every", type=int, default=1, help="draw every k-th frame")
    p.add_argument("--fps", type=float, default=5.0, help="GIF frame rate")
    p.add_argument("--tile-width", type=int, default=480, help="width of one view (px)")
    p.add_argument("--no-gif", action="store_true", help="write only the PNG frames")


def _load_rows(args, lay, views):
    """(rows, box_format, ref rows or None, labels, title) for the chosen mode."""
    from raysys.io.crtrack import read_expression_gt, read_expression_pred, read_gt_file

    if args.expression is None:
        meta = lay.meta_dir(args.scene)
        if not (meta / "tracks").is_dir():
            raise FileNotFoundError(
                f"no all-object GT under {meta / 'tracks'} (only synthetic datasets have it); "
                "pass --expression to draw one expression's GT")
        rows = {v: read_gt_file(meta / "tracks" / f"{v}.txt") for v in views}
        objs = json.loads((meta / "objects.json").read_text())["objects"]
        labels = {o["id"]: o["category"] for o in objs}
        return rows, "xywh", None, labels, f"{args.scene} (all objects, GT)"
    name = args.expression
    if not name.startswith(f"{args.scene}_"):
        name = f"{args.scene}_{name}"
    if not (lay.gt_root / name / "gt").is_dir():
        have = sorted(p.name for p in lay.gt_root.glob(f"{args.scene}_*"))[:5]
        raise FileNotFoundError(
            f"no expression folder {name!r} under {lay.gt_root}; some that exist: {have}")
    gt = read_expression_gt(lay.gt_root, name)
    text = name.split("_", 1)[1]
    if args.pred is None:
        return gt, "xywh", None, None, f"{args.scene}: {text} (GT)"
    pred, _missing = read_expression_pred(args.pred, name, list(gt), missing_as_empty=True)
    return pred, "xyxy", gt, None, f"{args.scene}: {text} (pred vs GT)"


def run(args: argparse.Namespace) -> int:
    from raysys.io.crtrack import CRTrackFormatError, list_frames, list_image_views
    from raysys.io.dataset import DatasetLayout
    from raysys.viz import write_scene_video

    if args.every < 1:
        print("raysys viz: error: --every must be >= 1", file=sys.stderr)
        return 2
    try:
        lay = DatasetLayout(Path(args.data), args.domain, args.split)
        views = list_image_views(lay.image_root).get(args.scene)
        if not views:
            print(f"raysys viz: error: no images of scene {args.scene!r} under "
                  f"{lay.image_root}", file=sys.stderr)
            return 2
        paths = {v: dict(list_frames(lay.view_dir(args.scene, v))) for v in views}
        rows, fmt, ref, labels, title = _load_rows(args, lay, views)
    except (CRTrackFormatError, FileNotFoundError) as e:
        print(f"raysys viz: error: {e}", file=sys.stderr)
        return 2
    lo, hi = args.frames
    frames = [f for f in sorted(paths[views[0]])
              if (lo is None or f >= lo) and (hi is None or f <= hi)][::args.every]
    if not frames:
        print("raysys viz: error: no frames in the requested range", file=sys.stderr)
        return 2
    res = write_scene_video(paths, rows, args.out, frames=frames, box_format=fmt,
                            ref_rows_by_view=ref, title=title, labels=labels,
                            tile_width=args.tile_width, fps=args.fps, gif=not args.no_gif)
    print(json.dumps({"pngs": len(res["pngs"]), "gif": res["gif"], "size": res["size"]}))
    return 0
