"""The report's steps, one function each; every one is resumable through
:class:`raysys.report.runner.StepRunner`.

Where each runs, and why:

* ``synth``: in the driver, scenes as Ray tasks (the generator writes GT by design).
* ``label``, ``train_*``, ``track_*``: :func:`label_job`, :func:`train_job` and
  :func:`track_job`, each in a fresh process (:meth:`StepRunner.isolated`) on the report's
  Ray cluster, so each installs exactly the guard and runtime_env its own command installs
  (weak labeling and weak training can never read GT; full training may).
* ``baseline_*``: :func:`baseline_job` in a fresh process, which installs the GT guard (the
  zero-shot baselines see frames, category labels and expression names only).
* ``diagnostics_*``: :func:`raysys.report.diagnostics.diagnostics_job` in a fresh process,
  never guarded: it reads GT to score the model's parts (evaluation, like ``eval``).
* ``quality``, ``eval``, ``video``: in the driver, which reads GT to score (it is never
  guarded).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from raysys.baselines.job import baseline_job
from raysys.config import save_config, to_dict
from raysys.io.dataset import DatasetLayout
from raysys.io.jsonio import write_json_file
from raysys.labeling.config import LabelConfig
from raysys.labeling.job import label_job
from raysys.report.config import REPORT_RESOURCES, ReportConfig
from raysys.report.diagnostics import diagnostics_job
from raysys.report.runner import StepRunner
from raysys.runtime import Resources
from raysys.tracking.config import TrackConfig
from raysys.tracking.job import track_job
from raysys.training.job import train_job

__all__ = ["synth_step", "label_step", "quality_step", "train_step", "track_step",
           "baseline_step", "eval_step", "diagnostics_step", "video_step", "file_stamp"]

DOMAINS = ("In-domain", "Cross-domain")


def file_stamp(path: Path) -> dict:
    """Identity of an input made outside the report (path, size, mtime of its model file)."""
    from raysys.viewsam.checkpoint_format import WEIGHTS_FILE

    p = Path(path)
    f = p / WEIGHTS_FILE if p.is_dir() else p
    st = f.stat() if f.exists() else None
    return {"path": str(p.resolve()), "size": st.st_size if st else None,
            "mtime": st.st_mtime if st else None}


def _on_cluster(r: StepRunner, resources: Resources) -> Resources:
    """``resources`` pointing at the report's Ray cluster (when it has one)."""
    return dataclasses.replace(resources, address=r.address) if r.address else resources


# ----------------------------------------------------------------------------- data


def synth_step(r: StepRunner, cfg: ReportConfig, map_fn=None) -> Path:
    """Generate the benchmark ``cfg.synth`` into ``out/data`` (scenes as Ray tasks via
    ``map_fn``)."""
    from raysys.synth import generate

    data = cfg.out / "data"
    synth_cfg = cfg.synth

    def work():
        summary = generate(synth_cfg, data, map_fn=map_fn)
        return {"root": str(data), "rendered": summary["rendered"],
                "skipped": summary["skipped"], "scenes": len(summary["scenes"])}

    r.run("synth", {"synth": to_dict(synth_cfg)}, work,
          outputs=[data / "dataset.json"], owned=[data])
    return data


def label_step(r: StepRunner, data: Path, split: str = "train",
               resources: Resources = REPORT_RESOURCES) -> Path:
    """Stage 1 on an In-domain split (:func:`label_job`, guarded, in its own process):
    ``train`` (what the weak model learns from) or ``test`` (the teacher's own level on the
    test split, a reference for Table 1; never used for training)."""
    name = "label" if split == "train" else f"label_{split}"
    out = r.out / ("labels" if split == "train" else f"labels_{split}")
    cfg = LabelConfig()

    def work():
        r.isolated(name, label_job, DatasetLayout(data, "In-domain", split), out, cfg,
                   _on_cluster(r, resources))
        return {"labels": str(out)}

    settings = {"data": str(data.resolve()), "upstream": r.fingerprints.get("synth"),
                "label_config": to_dict(cfg)}
    if split != "train":
        settings["split"] = split  # the train step's settings stay as they were (cache)
    r.run(name, settings, work, outputs=[out / "expressions.parquet"], owned=[out])
    return out


def quality_step(r: StepRunner, labels: Path, name: str = "quality",
                 upstream: str = "label") -> dict:
    """Table 4: score each Stage 1 stage against the GT of the split it was made from
    (``upstream``: the label step that made ``labels``)."""
    from raysys.io.dataset import DatasetLayout
    from raysys.labeling.quality import quality_report

    meta = json.loads((labels / "config.json").read_text())
    layout = DatasetLayout(Path(meta["data"]), meta["domain"], meta["split"])

    def work():
        rep = quality_report(labels, layout)
        return {**rep, "split": f"{layout.domain}/{layout.split}"}

    settings = {"labels": str(labels.resolve()), "upstream": r.fingerprints.get(upstream),
                "stamp": file_stamp(labels / "expressions.parquet")}
    return r.run(name, settings, work, outputs=[labels / "quality.json"])


# ----------------------------------------------------------------------------- training


def train_step(r: StepRunner, cfg: ReportConfig, name: str, *, supervision: str,
               data: Path, labels: Path | None, switch_off: str | None = None) -> Path:
    """Train one ViewSAM (:func:`train_job`, in its own process); returns its ``final/``
    checkpoint folder.

    Args:
        name: run name (``weak``, ``full``, ``ablation_use_bar``); the run goes to
            ``out/runs/<name>`` and its whole TrainConfig to ``out/configs/train_<name>.json``.
        supervision: ``weak`` (pseudo labels from ``labels``) or ``full`` (GT of ``data``'s
            In-domain train split).
        switch_off: the ViewSAMConfig switch an ablation turns off.
    """
    run_dir = r.out / "runs" / name
    train_cfg = cfg.train_config(supervision, switch_off)
    res = cfg.resources
    settings = {"supervision": supervision, "train_config": to_dict(train_cfg),
                "workers": res.workers, "cpus": res.cpus_per_worker,
                "upstream": r.fingerprints.get("label" if supervision == "weak" else "synth"),
                "data": str(data.resolve()), "labels": str(labels.resolve()) if labels else None}
    if supervision == "weak":
        source = {"labels": labels}
    else:
        source = {"data": data, "domain": "In-domain", "split": "train"}

    def work():
        save_config(train_cfg, r.out / "configs" / f"train_{name}.json")
        r.isolated(f"train_{name}", train_job, run_dir, train_cfg, _on_cluster(r, res),
                   **source)
        metrics = run_dir / "metrics.json"
        hist = json.loads(metrics.read_text()) if metrics.is_file() else None
        return {"checkpoint": str(run_dir / "final"), "metrics": hist}

    from raysys.viewsam.checkpoint_format import META_FILE

    r.run(f"train_{name}", settings, work, outputs=[run_dir / "final" / META_FILE],
          owned=[run_dir])
    return run_dir / "final"


# ----------------------------------------------------------------------------- predictions


def track_step(r: StepRunner, cfg: ReportConfig, method: str, checkpoint: Path,
               data: Path, domain: str, upstream: str | None) -> Path:
    """Track every expression of ``domain``'s test split (:func:`track_job`, in its own
    process)."""
    pred = r.out / "predictions" / domain / method
    name = f"track_{method}_{_short(domain)}"
    track_cfg = TrackConfig()
    settings = {"checkpoint": file_stamp(checkpoint), "upstream": upstream,
                "data": str(data.resolve()), "domain": domain, "track": to_dict(track_cfg)}

    def work():
        r.isolated(name, track_job, checkpoint, DatasetLayout(data, domain, "test"), pred,
                   track_cfg, _on_cluster(r, cfg.resources), allow_partial=cfg.allow_partial)
        return {"pred_root": str(pred)}

    r.run(name, settings, work, outputs=[pred / "track_config.json"], owned=[pred])
    return pred


BASELINE_METHODS = {"zero_shot_concept": "concept", "zero_shot_sam2": "sam2"}


def baseline_settings(method: str, data: Path, domain: str, checkpoint: Path | None,
                      upstream: str | None) -> dict:
    """What a baseline step's predictions depend on. The SAM2 row's text filter also
    depends on its describer and the describer's weights (their sha256), so that a report
    folder resumed after either changes runs the row again."""
    settings = {"method": method, "data": str(data.resolve()), "domain": domain,
                "checkpoint": file_stamp(checkpoint) if checkpoint else None,
                "upstream": upstream}
    if method == "zero_shot_sam2":
        from raysys.backends.attribute_net import EMBEDDED_PATH
        from raysys.baselines.zero_shot_sam2 import DEFAULT_DESCRIBER

        weights = hashlib.sha256(EMBEDDED_PATH.read_bytes()).hexdigest() \
            if DEFAULT_DESCRIBER == "attributes" else None
        settings["describer"] = {"name": DEFAULT_DESCRIBER, "weights_sha256": weights}
    return settings


def baseline_step(r: StepRunner, method: str, data: Path, domain: str,
                  checkpoint: Path | None = None, upstream: str | None = None,
                  allow_partial: bool = False) -> Path:
    """A zero-shot baseline on ``domain``'s test split (:func:`baseline_job`, guarded, in
    its own process, without Ray); ``checkpoint``: the ViewSAM run whose SAM2 base the SAM2
    baseline uses (loaded strictly unless ``allow_partial``)."""
    pred = r.out / "predictions" / domain / method
    name = f"baseline_{method}_{_short(domain)}"
    settings = baseline_settings(method, data, domain, checkpoint, upstream)
    done = pred / "baseline.json"
    options = {}
    if checkpoint is not None and method == "zero_shot_sam2":
        from raysys.baselines.zero_shot_sam2 import Sam2Spec

        options["sam2"] = Sam2Spec(viewsam_checkpoint=str(checkpoint),
                                   allow_partial=allow_partial)

    def work():
        r.isolated(name, baseline_job, BASELINE_METHODS[method],
                   DatasetLayout(data, domain, "test"), pred, summary_json=done, **options)
        return json.loads(done.read_text()) if done.is_file() else {"pred_root": str(pred)}

    r.run(name, settings, work, outputs=[done], owned=[pred])
    return pred


def _short(domain: str) -> str:
    return {"In-domain": "in", "Cross-domain": "cross"}.get(domain, domain)


def eval_step(r: StepRunner, method: str, data: Path, domain: str, pred: Path) -> dict:
    """Score predictions (CVR-IDF1 / CVR-MA) in the driver; the full JSON per expression is
    kept in ``out/eval/<domain>/<method>.json``; returns All and scenes."""
    from raysys.eval import evaluate

    layout = DatasetLayout(data, domain, "test")
    out = r.out / "eval" / domain / f"{method}.json"
    settings = {"pred": str(pred), "upstream": r.fingerprints.get(
        f"track_{method}_{_short(domain)}") or r.fingerprints.get(
        f"baseline_{method}_{_short(domain)}"), "gt": str(layout.gt_root.resolve())}

    def work():
        res = evaluate(layout.gt_root, pred, missing_as_empty=True).to_json()
        write_json_file(out, res, indent=2)
        return {"All": res["All"], "scenes": res.get("scenes", {})}

    return r.run(f"eval_{method}_{_short(domain)}", settings, work, outputs=[out])


def diagnostics_step(r: StepRunner, cfg: ReportConfig, method: str, checkpoint: Path,
                     data: Path, upstream: str | None) -> dict:
    """The diagnostics of one model on the In-domain test split
    (:func:`raysys.report.diagnostics.diagnostics_job`, in its own process); the JSON is
    kept in ``out/diagnostics/<method>.json``. Models on the same SAM2 base share its
    scores through ``out/diagnostics/cache/``."""
    out = r.out / "diagnostics" / f"{method}.json"
    name = f"diagnostics_{method}"
    layout = DatasetLayout(data, "In-domain", "test")
    settings = {"checkpoint": file_stamp(checkpoint), "upstream": upstream,
                "data": str(data.resolve()), "diagnostics": to_dict(cfg.diagnostics_config)}

    def work():
        r.isolated(name, diagnostics_job, checkpoint, layout, out, cfg.diagnostics_config,
                   cfg.allow_partial, r.out / "diagnostics" / "cache")
        return json.loads(out.read_text())

    return r.run(name, settings, work, outputs=[out], owned=[out])


def video_step(r: StepRunner, data: Path, pred: Path, method_label: str,
               upstream: str | None) -> dict:
    """A mosaic GIF of one In-domain test scene: the predictions of one expression with
    their global ids, false positives red and missed GT boxes dashed."""
    from raysys.io import crtrack
    from raysys.viz import write_scene_video

    layout = DatasetLayout(data, "In-domain", "test")
    out = r.out / "video"

    def work():
        views = crtrack.list_image_views(layout.image_root)
        scene = sorted(views)[0]
        exprs = [e for e in crtrack.list_expressions(layout.gt_root) if e.scene == scene]
        # the expression with the most GT boxes: the most to see
        gts = {e.name: crtrack.read_expression_gt(layout.gt_root, e.name) for e in exprs}
        expr = max(exprs, key=lambda e: sum(len(v) for v in gts[e.name].values()))
        rows, _ = crtrack.read_expression_pred(pred, expr.name, views[scene])
        paths = {v: dict(crtrack.list_frames(layout.view_dir(scene, v))) for v in views[scene]}
        frames = sorted(paths[views[scene][0]])[::2]
        res = write_scene_video(paths, rows, out, frames=frames, box_format="xyxy",
                                ref_rows_by_view=gts[expr.name], png=False,
                                title=f"{method_label}: {expr.text!r} (red FP, dashed FN)")
        return {"gif": res["gif"], "scene": scene, "expression": expr.name, "text": expr.text,
                "frames": len(res["frames"]), "method": method_label}

    settings = {"pred": str(pred), "upstream": upstream}
    return r.run("video", settings, work, outputs=[out / "mosaic.gif"], owned=[out])
