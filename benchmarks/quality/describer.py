"""Accuracy of the colours describer on GT crops, per attribute (what limits the referring
level of Stage 1's pseudo labels, apart from the boxes).

For every person of the In-domain test split of each benchmark (default: seeds 0-4 of the
`raysys synth` defaults, generated here), up to 7 frames per camera where the person is at
least half visible are cropped with their GT box and GT mask; the describer votes over all
of a person's crops (every camera) and over one camera's crops alone, and its top colour,
bottom colour, headwear colour and bicycle are compared with the generator's attributes.
Prints JSON with the accuracies and the most frequent confusions:

    .venv/bin/python benchmarks/quality/describer.py [--seeds 0 1 2 3 4] [--data D1 D2 ...]
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
    """(attributes, crops, masks, views) per GT person of the In-domain test split."""
    import numpy as np
    import pyarrow.parquet as pq

    from raysys.io.video import VideoFrames
    from raysys.labeling.tracking_stage import crop
    from raysys.types import MaskRLE

    base = data / "In-domain"
    for scene_dir in sorted((base / "meta" / "test").iterdir()):
        objects = json.loads((scene_dir / "objects.json").read_text())["objects"]
        attrs = {o["id"]: o["attributes"] for o in objects if o["category"] == "person"}
        per: dict[int, tuple[list, list, list]] = {}
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
                    entry = per.setdefault(int(gid), ([], [], []))
                    entry[0].append(c)
                    entry[1].append(m)
                    entry[2].append(view)
        for gid, (crops, masks, views) in sorted(per.items()):
            yield attrs[gid], crops, masks, views


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--data", type=Path, nargs="+", default=None,
                    help="existing benchmarks (their In-domain test split) instead of seeds")
    ap.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    from raysys.backends.colours import ColourDescriber

    describer = ColourDescriber()
    hits: dict[str, list[int]] = {}
    confusions: Counter = Counter()
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
            for gt, crops, masks, views in _persons(Path(data)):
                n += 1
                a = describer.describe_attributes(crops, masks, "person")
                truth = {"top": gt["top"], "bottom": gt["bottom"],
                         "headwear": gt["headwear_colour"] if gt["headwear"] else None,
                         "bicycle": gt["bicycle"]}
                for k, want in truth.items():
                    hits.setdefault(k, []).append(int(a[k] == want))
                    if k in ("top", "bottom") and a[k] != want:
                        confusions[f"{k}: {want} -> {a[k]}"] += 1
                for view in sorted(set(views)):  # one camera alone
                    sel = [i for i, v in enumerate(views) if v == view]
                    one = describer.describe_attributes([crops[i] for i in sel],
                                                        [masks[i] for i in sel], "person")
                    for k in ("top", "bottom"):
                        hits.setdefault(f"{k} (one camera)", []).append(
                            int(one[k] == truth[k]))
    result = {
        "benchmarks": [str(d) for d in args.data] if args.data else
        [f"synth seed {s} (defaults), In-domain test" for s in args.seeds],
        "people": n,
        "accuracy": {k: round(sum(v) / len(v), 3) for k, v in hits.items()},
        "cases": {k: len(v) for k, v in hits.items()},
        "top_confusions": dict(confusions.most_common(10)),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
