"""Stage 1 pseudo-label quality over several seeds of the default generated benchmark.

For each seed: generate the In-domain test split with the `raysys synth` defaults (2 scenes,
3 views, 60 frames, 20 people), label it on a local Ray with the default backends, and score
every stage like the paper's Table 4 (``quality_report``). Also printed per seed, as a
diagnostic of what limits the score: the *ceiling* of the identity CVR-IDF1 that the
single-view tracklets' boxes allow, i.e. the score they would get with perfect global
identities (``quality.json``'s ``ceiling``: ``2 TP / (GT + predicted boxes)``, TP = boxes
the evaluator matches to a GT box at IoU >= 0.5); a stage cannot beat it without adding or
moving boxes. Prints JSON (per seed and the mean over seeds):

    .venv/bin/python benchmarks/quality/label.py [--seeds 0 1 2 3 4] [--people 10] \
        [--config CFG.json]

``--config`` is a Stage 1 config like ``raysys label --config`` takes, e.g.
``{"tracker_options": {"person_detector": "embedded"}}`` for the classical tracker with the
learned person detector.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from raysys.commands.options import write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--people", type=int, default=None, help="default: the synth default")
    ap.add_argument("--config", type=Path, default=None, help="Stage 1 config JSON")
    ap.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import numpy as np
    import ray

    from raysys.io.dataset import DatasetLayout
    from raysys.labeling.config import LabelConfig
    from raysys.labeling.pipeline import run_labeling
    from raysys.labeling.quality import quality_report
    from raysys.synth import SynthConfig, generate

    extra = {} if args.people is None else {"people": args.people}
    from raysys.config import load_config

    label_cfg = load_config(LabelConfig, args.config) if args.config else LabelConfig()
    runs = []
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for seed in args.seeds:
                root, out = Path(tmp) / f"data-{seed}", Path(tmp) / f"labels-{seed}"
                cfg = SynthConfig(seed=seed, splits=("test",), domains=("In-domain",), **extra)
                generate(cfg, root)
                layout = DatasetLayout(root, "In-domain", "test")
                t0 = time.perf_counter()
                run_labeling(layout, out, label_cfg, progress=False)
                wall = time.perf_counter() - t0
                q = quality_report(out, layout)
                ident = {k: round(v["CVR-IDF1"], 2) for k, v in q["identity"].items()}
                runs.append({"seed": seed, "people": cfg.people, "label_s": round(wall, 1),
                             "identity_idf1": ident,
                             "identity_ma": {k: round(v["CVR-MA"], 2)
                                             for k, v in q["identity"].items()},
                             "referring_idf1_last": round(q["referring"]["reprompt"]["CVR-IDF1"],
                                                          2),
                             "referring_idf1": {k: round(q["referring"][k]["CVR-IDF1"], 2)
                                                for k in q["identity"]},
                             "referring_similarity": round(q["referring"]["similarity"], 3),
                             "tracklet_ceiling": round(q["ceiling"]["CVR-IDF1"], 2)})
                print(json.dumps(runs[-1]), flush=True)
    finally:
        ray.shutdown()
    stages = list(runs[0]["identity_idf1"])
    mean = {k: round(float(np.mean([r["identity_idf1"][k] for r in runs])), 2) for k in stages}
    result = {"benchmark": "label_quality", "seeds": args.seeds,
              "config": json.loads(args.config.read_text()) if args.config else {},
              "runs": runs,
              "mean_identity_idf1": mean,
              "mean_tracklet_ceiling": round(float(np.mean([r["tracklet_ceiling"]
                                                            for r in runs])), 2),
              "mean_referring_idf1": {k: round(float(np.mean([r["referring_idf1"][k]
                                                               for r in runs])), 2)
                                      for k in stages},
              "seeds_at_75": [r["seed"] for r in runs if r["identity_idf1"][stages[-1]] >= 75]}
    print(json.dumps(result, indent=2))
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
