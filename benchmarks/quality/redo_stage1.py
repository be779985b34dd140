"""Redo Stage 1 after tracking with other settings, on the same units, and score it.

Copies a labeling output (``raysys label --out L``) to ``--out``, overrides the
:class:`~raysys.labeling.config.LabelConfig` fields given as JSON (e.g. re-prompting or
the describer's options), and redoes, without re-tracking: association and re-prompting
(``SceneLabeler.run`` on the saved units), the descriptions of the association and
re-prompt stages, the grouping, and the stage-wise quality against the GT (evaluation
only). How the Stage 1 settings of docs/stage1.md were compared: the tracklets are the
same, so a difference is the setting's.

    .venv/bin/python benchmarks/quality/redo_stage1.py --labels L --out L2 \
        --set '{"reprompt": {"merge_similarity": null}}'
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path


def relabel(labels: Path, out: Path, overrides: dict) -> dict:
    """Redo association, re-prompting, descriptions and grouping of ``labels`` into
    ``out`` with ``overrides``; returns the quality report."""
    import numpy as np

    from raysys.config import from_dict, to_dict
    from raysys.io.dataset import DatasetLayout
    from raysys.labeling.config import LabelConfig
    from raysys.labeling.describe_stage import DescribeUDF, descriptions_path
    from raysys.labeling.pipeline import group_and_write
    from raysys.labeling.quality import quality_report
    from raysys.labeling.scene_stage import SceneLabeler, stage_path

    if out.resolve() == labels.resolve():
        raise ValueError("--out must be a new folder: the labels given are kept as they are")
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(labels, out)
    record = json.loads((labels / "config.json").read_text())
    cfg = from_dict(LabelConfig, overrides, base=from_dict(LabelConfig, record["label_config"]))
    record["label_config"] = to_dict(cfg)
    (out / "config.json").write_text(json.dumps(record, indent=2))
    layout = DatasetLayout(Path(record["data"]), record["domain"], record["split"])
    scenes = sorted(p.name for p in (out / "scenes").iterdir() if p.is_dir())
    views, describe = {}, DescribeUDF(to_dict(cfg), str(out))
    for s in scenes:
        units = sorted(str(p) for p in (out / "units").glob(f"{s}__*.parquet"))
        views[s] = sorted({Path(u).name.split("__")[1] for u in units})
        view_dirs = {v: str(layout.view_dir(s, v)) for v in views[s]}
        SceneLabeler(s, view_dirs, to_dict(cfg), str(out)).run(units)
        for st in ("association", "reprompt"):
            descriptions_path(out, s, st).unlink(missing_ok=True)
            describe({"scene": np.array([s]), "stage": np.array([st]),
                      "stage_file": np.array([str(stage_path(out, s, st))]),
                      "view_dirs": np.array([json.dumps(view_dirs)])})
    group_and_write(scenes, views, cfg, out)
    return quality_report(out, layout)


def main() -> None:
    from raysys.labeling.quality import format_quality

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", type=Path, required=True, help="a `raysys label --out` folder")
    ap.add_argument("--out", type=Path, required=True, help="new folder for the redone labels")
    ap.add_argument("--set", default="{}", help="LabelConfig fields to override, as JSON")
    args = ap.parse_args()
    report = relabel(args.labels, args.out, json.loads(args.set))
    print(format_quality(report).split("\nboxes per camera")[0])


if __name__ == "__main__":
    main()
