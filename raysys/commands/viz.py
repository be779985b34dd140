"""``raysys viz``: draw all views of a scene as a mosaic with boxes and global ids.

Without ``--expression`` it shows every object's GT (meta tracks); with ``--expression`` it
shows that expression's GT, or, with ``--pred``, the predictions marked against that GT.

Examples::

    raysys viz --data data/synth --scene PlazaTest01 --out viz/ --frames 1:40 --every 2
    raysys viz --data data/synth --scene PlazaTest01 --expression "a man in a red coat" \\
        --pred runs/pred --out viz/pred
"""

from __future__ import annotations

import argparse
import json

from raysys.commands.options import (
    add_data,
    add_domain,
    add_out,
    add_split,
    positive_float,
    require_dataset,
    require_dir,
    require_out_dir,
)
from raysys.errors import UserError


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
    if lo is not None and hi is not None and lo > hi:
        raise argparse.ArgumentTypeError(f"first frame after the last in {text!r}; pass "
                                         "FIRST:LAST with FIRST <= LAST")
    return lo, hi


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data(p)
    p.add_argument("--scene", required=True, help="scene name, e.g. PlazaTest01")
    add_domain(p)
    add_split(p, "test")
    p.add_argument("--expression", help="expression folder name '<Scene>_<text>' (or the text)")
    p.add_argument("--pred", help="prediction root holding '<Scene>_<expression>/View<k>.txt'")
    add_out(p, "output folder for PNGs and the GIF")
    p.add_argument("--frames", type=_frames, default=(None, None), metavar="A:B",
                   help="first:last frame (1-based, inclusive; either may be left out)")
    p.add_argument("--every", type=int, default=1, help="draw every k-th frame")
    p.add_argument("--fps", type=positive_float, default=5.0, help="GIF frame rate")
    p.add_argument("--tile-width", type=int, default=480,
                   help="width of one view (px, 64 to 4096)")
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
    from raysys.io.crtrack import list_frames, list_image_views
    from raysys.io.dataset import DatasetLayout
    from raysys.viz import write_scene_video

    if args.every < 1:
        raise UserError(f"--every must be >= 1, got {args.every}")
    if not 64 <= args.tile_width <= 4096:
        raise UserError(f"--tile-width must be in 64..4096 px, got {args.tile_width}")
    require_out_dir(args.out)
    require_dataset(args.data)
    require_dir(args.pred, "--pred", "pass a prediction folder (a `raysys track --out`)")
    lay = DatasetLayout(args.data, args.domain, args.split)
    views = list_image_views(lay.image_root).get(args.scene)
    if not views:
        raise UserError(f"no images of scene {args.scene!r} under {lay.image_root}; "
                        "pass a scene of that split (a <Scene>_View<k> folder name's start)")
    paths = {v: dict(list_frames(lay.view_dir(args.scene, v))) for v in views}
    rows, fmt, ref, labels, title = _load_rows(args, lay, views)
    lo, hi = args.frames
    have = sorted(paths[views[0]])
    frames = [f for f in have if (lo is None or f >= lo) and (hi is None or f <= hi)]
    frames = frames[::args.every]
    if not frames:
        span = f"frames {have[0]}..{have[-1]}" if have else "no frames"
        raise UserError(f"no frames in the requested range --frames {lo}:{hi}; the scene "
                        f"has {span}")
    res = write_scene_video(paths, rows, args.out, frames=frames, box_format=fmt,
                            ref_rows_by_view=ref, title=title, labels=labels,
                            tile_width=args.tile_width, fps=args.fps, gif=not args.no_gif)
    print(json.dumps({"pngs": len(res["pngs"]), "gif": res["gif"], "size": res["size"]}))
    return 0
