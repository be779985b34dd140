"""Accuracy of a describer on GT crops, per attribute (what limits the referring level of
Stage 1's pseudo labels, apart from the boxes).

For every person of the In-domain test split of each benchmark (default: seeds 0-4 of the
`raysys synth` defaults, generated here), up to 7 frames per camera where the person is at
least half visible are cropped with their GT box and GT mask; the describer reads all of a
person's crops (every camera; with each crop's frame context where the describer reads
the frame) and one camera's crops alone, and every attribute that
expressions name (coat, trousers and shoes colour, headwear with its colour, bag, bag
colour, bicycle) is compared with the generator's attributes. ``headwear`` is right when
both are absent or both the kind and the colour match (the colours describer says "helmet"
on a bicycle, else "cap"); ``bag colour`` is scored on people with a bag. Prints JSON with
the accuracies (per describer) and the most frequent confusions:

    .venv/bin/python benchmarks/quality/describer.py [--seeds 0 1 2 3 4] [--data D1 D2 ...]
        [--describers attributes colours] [--min-confidence 0.3 0.5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

from raysys.commands.options import write_json


def _persons(data: Path):
    """(attributes, crops, masks, views, frame contexts) per GT person of the In-domain test
    split."""
    import numpy as np
    import pyarrow.parquet as pq

    from raysys.backends.attribute_net import frame_context
    from raysys.io.video import VideoFrames
    from raysys.labeling.tracking_stage import crop
    from raysys.types import MaskRLE

    base = data / "In-domain"
    for scene_dir in sorted((base / "meta" / "test").iterdir()):
        objects = json.loads((scene_dir / "objects.json").read_text())["objects"]
        attrs = {o["id"]: o["attributes"] for o in objects if o["category"] == "person"}
        per: dict[int, tuple[list, list, list, list]] = {}
        for mask_file in sorted((scene_dir / "masks").glob("View*.parquet")):
            view = mask_file.stem
            df = pq.read_table(mask_file).to_pandas()
            df = df[(df.category == "person") & (df.visible_fraction >= 0.5)]
            video = VideoFrames(scene_dir.name, view,
                                base / "images" / "test" / f"{scene_dir.name}_{view}")
            for gid, rows in df.groupby("id"):
                for r in rows.iloc[:: max(1, len(rows) // 6)].itertuples():
                    size, counts = r.rle.split(":")
                    h, w = map(int, size.split("x"))
                    mask = MaskRLE(h, w, tuple(int(x) for x in counts.split())).decode()
                    img = video[video.index_of(int(r.frame))]
                    c, m = crop(img, np.array([r.left, r.top, r.width, r.height], float), mask)
                    entry = per.setdefault(int(gid), ([], [], [], []))
                    entry[0].append(c)
                    entry[1].append(m)
                    entry[2].append(view)
                    entry[3].append(frame_context(img))
        for gid, (crops, masks, views, ctx) in sorted(per.items()):
            yield attrs[gid], crops, masks, views, ctx


def _truth(gt: dict) -> dict:
    """The generator's attributes in the scored keys."""
    hw = gt["headwear"] if gt["headwear"] not in (None, "none") else None
    bag = gt["bag"] if gt["bag"] not in (None, "none") else None
    return {"top": gt["top"], "bottom": gt["bottom"], "shoes": gt["shoes"],
            "headwear": f"{gt['headwear_colour']} {hw}" if hw else None,
            "bag": bag, "bag colour": gt["bag_colour"] if bag else None,
            "bicycle": bool(gt["bicycle"])}


def _said(name: str, a: dict) -> dict:
    """What a describer's attributes say, in the scored keys."""
    if name.startswith("colours"):
        hw = a.get("headwear")
        return {"top": a["top"], "bottom": a["bottom"], "shoes": None,
                "headwear": f"{hw} {'helmet' if a['bicycle'] else 'cap'}" if hw else None,
                "bag": None, "bag colour": None, "bicycle": bool(a["bicycle"])}
    hw = a.get("headwear")
    return {"top": a["top"], "bottom": a["bottom"], "shoes": a["shoes"],
            "headwear": f"{a.get('headwear_colour')} {hw}" if hw else None,
            "bag": a.get("bag"), "bag colour": a.get("bag_colour"),
            "bicycle": bool(a["bicycle"])}


def _build(name: str, **options):
    from raysys.backends import DESCRIBER_BACKENDS

    return DESCRIBER_BACKENDS.build(name, **options)


def _score(describers: dict, gt: dict, crops, masks, views, contexts, hits,
           confusions) -> None:
    truth = _truth(gt)
    for name, d in describers.items():
        ctx = (lambda sel: {"contexts": [contexts[i] for i in sel]}) \
            if callable(getattr(d, "frame_context", None)) else (lambda sel: {})
        said = _said(name, d.describe_attributes(crops, masks, "person",
                                                 **ctx(range(len(crops)))))
        for k, want in truth.items():
            if k == "bag colour" and want is None:
                continue
            hits.setdefault(name, {}).setdefault(k, []).append(int(said[k] == want))
            if said[k] != want:
                confusions.setdefault(name, Counter())[f"{k}: {want} -> {said[k]}"] += 1
        for view in sorted(set(views)):  # one camera alone
            sel = [i for i, v in enumerate(views) if v == view]
            one = _said(name, d.describe_attributes([crops[i] for i in sel],
                                                    [masks[i] for i in sel], "person",
                                                    **ctx(sel)))
            for k in ("top", "bottom", "bag"):
                hits[name].setdefault(f"{k} (one camera)", []).append(int(one[k] == truth[k]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--data", type=Path, nargs="+", default=None,
                    help="existing benchmarks (their In-domain test split) instead of seeds")
    ap.add_argument("--describers", nargs="+", default=["attributes", "colours"],
                    help="describer backends to score (default: attributes colours)")
    ap.add_argument("--min-confidence", type=float, nargs="+", default=[],
                    help="also score the attributes describer at these thresholds (how its "
                         "default was chosen, on seeds no report scores)")
    ap.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    describers = {name: _build(name) for name in args.describers}
    for t in args.min_confidence:
        describers[f"attributes, min_confidence {t}"] = _build("attributes", min_confidence=t)
    hits: dict[str, dict[str, list[int]]] = {}
    confusions: dict[str, Counter] = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        datas = args.data
        if datas is None:
            from raysys.synth import SynthConfig, generate

            datas = []
            for seed in args.seeds:
                root = Path(tmp) / f"data-{seed}"
                generate(SynthConfig(seed=seed, splits=("test",), domains=("In-domain",)),
                         root)
                datas.append(root)
        n = 0
        for data in datas:
            for gt, crops, masks, views, ctx in _persons(Path(data)):
                n += 1
                _score(describers, gt, crops, masks, views, ctx, hits, confusions)
    result = {
        "benchmarks": [str(d) for d in args.data] if args.data else
        [f"synth seed {s} (defaults), In-domain test" for s in args.seeds],
        "people": n,
        "accuracy": {name: {k: round(sum(v) / len(v), 3) for k, v in h.items()}
                     for name, h in hits.items()},
        "cases": {k: len(v) for k, v in next(iter(hits.values()), {}).items()},
        "top_confusions": {name: dict(c.most_common(8)) for name, c in confusions.items()},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
