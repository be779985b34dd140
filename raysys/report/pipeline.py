"""``run_report``: the whole study on one Ray cluster, step by step, resumable.

Order: benchmark (synth) -> Stage 1 labels of In-domain train -> Table 4 (quality) ->
Stage 1 on In-domain test (the teacher's level there, a reference; not used for training) ->
ViewSAM weak and fully supervised (trained on In-domain train only) -> zero-shot baselines
and tracking on the In-domain and Cross-domain test splits (models trained In-domain and
tracked on Cross-domain test: the paper's cross-domain setting) -> evaluation -> the
diagnostics of both models on In-domain test -> one fully supervised run (the paper's
Tables 2-3) and one weak run per ablation switch, tracked on In-domain test -> mosaic GIF
-> report.json, report.md, charts.

The driver starts (or joins) one Ray cluster and hands its GCS address to every step that
runs in a process of its own (:mod:`raysys.report.runner` says why). A failing baseline or
diagnostics step is recorded in the report's notes and leaves its numbers out (baselines
are other people's optional pieces; diagnostics explain, they are not results); any other
failing step stops the report with an error naming its log.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from raysys.config import to_dict
from raysys.report.config import ReportConfig
from raysys.report.runner import StepError, StepRunner
from raysys.report.steps import (
    DOMAINS,
    baseline_step,
    diagnostics_step,
    eval_step,
    label_step,
    quality_step,
    synth_step,
    track_step,
    train_step,
    video_step,
)

__all__ = ["run_report", "write_report"]

log = logging.getLogger(__name__)


def _start_ray(cfg: ReportConfig) -> tuple[dict, str | None]:
    import ray

    from raysys.runtime import connect

    resources = connect(cfg.resources)
    return resources, ray.get_runtime_context().gcs_address


def _data_root(r: StepRunner, cfg: ReportConfig, map_fn) -> Path:
    if cfg.data is not None:
        return cfg.data
    if cfg.labels is not None:
        return Path(json.loads((cfg.labels / "config.json").read_text())["data"])
    return synth_step(r, cfg, map_fn)


def _train_main(r: StepRunner, cfg: ReportConfig, data: Path, labels: Path) -> dict:
    """name -> (checkpoint, upstream fingerprint) of the weak and the full model."""
    models = {}
    if cfg.weak_model is not None:
        models["viewsam_weak"] = (cfg.weak_model, None)
    else:
        ck = train_step(r, cfg, "weak", supervision="weak", data=data, labels=labels)
        models["viewsam_weak"] = (ck, r.fingerprints["train_weak"])
    if cfg.full_model is not None:
        models["viewsam_full"] = (cfg.full_model, None)
    else:
        ck = train_step(r, cfg, "full", supervision="full", data=data, labels=None)
        models["viewsam_full"] = (ck, r.fingerprints["train_full"])
    return models


def _table1(r: StepRunner, cfg: ReportConfig, data: Path, models: dict,
            notes: list[str]) -> dict[str, dict]:
    """domain -> method -> scores: the baselines and both ViewSAMs on each test split."""
    domains = DOMAINS if cfg.cross_domain else DOMAINS[:1]
    tables: dict[str, dict] = {d: {} for d in domains}
    for d in domains:
        for b in cfg.baselines:
            weights = models["viewsam_weak"] if b == "zero_shot_sam2" else (None, None)
            try:
                pred = baseline_step(r, b, data, d, checkpoint=weights[0], upstream=weights[1],
                                     allow_partial=cfg.allow_partial)
            except StepError as e:
                notes.append(f"baseline {b} on {d} test did not run: {e}")
                log.warning("[raysys report] %s", notes[-1])
                continue
            tables[d][b] = eval_step(r, b, data, d, pred)
        for m in ("viewsam_weak", "viewsam_full"):
            ck, up = models[m]
            tables[d][m] = eval_step(r, m, data, d, track_step(r, cfg, m, ck, data, d, up))
    return tables


def _ablations(r: StepRunner, cfg: ReportConfig, data: Path, labels: Path) -> dict:
    """supervision (``full``, ``weak``) -> switch -> In-domain test scores of the model of
    that supervision trained with the switch off."""
    out: dict[str, dict] = {}
    for sup in cfg.ablation_models:
        for a in cfg.ablations:
            name = f"ablation_{sup}_{a}"
            ck = train_step(r, cfg, name, supervision=sup, data=data,
                            labels=labels if sup == "weak" else None, switch_off=a)
            up = r.fingerprints[f"train_{name}"]
            out.setdefault(sup, {})[a] = eval_step(
                r, name, data, "In-domain", track_step(r, cfg, name, ck, data, "In-domain", up))
    return out


def _diagnostics(r: StepRunner, cfg: ReportConfig, data: Path, models: dict,
                 notes: list[str]) -> dict:
    """model -> its diagnostics on In-domain test (a failing one is noted and left out)."""
    out = _zero_shot_diagnostics(r, cfg, data, notes)
    for m in ("viewsam_weak", "viewsam_full"):
        ck, up = models[m]
        try:
            out[m] = diagnostics_step(r, cfg, m, ck, data, up)
        except StepError as e:
            notes.append(f"the diagnostics of {m} did not run: {e}")
            log.warning("[raysys report] %s", notes[-1])
    return out


def _zero_shot_diagnostics(r: StepRunner, cfg: ReportConfig, data: Path,
                           notes: list[str]) -> dict:
    """The zero-shot rows' diagnostics on In-domain test, from their own outputs
    (:func:`raysys.report.baseline_diagnostics.zero_shot_diagnostics`; in the driver, no
    model runs); ``{}`` without the concept row's predictions."""
    from raysys.io.dataset import DatasetLayout
    from raysys.io.jsonio import write_json_file
    from raysys.report.baseline_diagnostics import zero_shot_diagnostics

    pred = r.out / "predictions" / "In-domain"
    concept, sam2 = pred / "zero_shot_concept", pred / "zero_shot_sam2"
    ups = {b: r.fingerprints.get(f"baseline_{b}_in") for b in ("zero_shot_concept",
                                                               "zero_shot_sam2")}
    if "zero_shot_concept" not in cfg.baselines or ups["zero_shot_concept"] is None:
        return {}
    use_sam2 = "zero_shot_sam2" in cfg.baselines and ups["zero_shot_sam2"] is not None
    layout = DatasetLayout(data, "In-domain", "test")
    out = r.out / "diagnostics" / "zero_shot.json"

    def work():
        res = zero_shot_diagnostics(layout, concept, sam2 if use_sam2 else None)
        write_json_file(out, res, indent=2)
        return res

    try:
        return r.run("diagnostics_zero_shot", {"upstream": ups, "data": str(data.resolve())},
                     work, outputs=[out])
    except (OSError, ValueError, KeyError) as e:  # they explain; they never stop the report
        notes.append(f"the diagnostics of the zero-shot rows did not run: {e}")
        log.warning("[raysys report] %s", notes[-1])
        return {}


def run_report(cfg: ReportConfig, *, map_fn=None) -> dict:
    """Run every step the report needs (skipping finished ones) and write the report.

    Args:
        cfg: what to run and where (``cfg.out``).
        map_fn: how scenes render (default: Ray tasks on the report's cluster).

    Returns:
        the report.json dict (also written to ``cfg.out/report.json``).

    Raises:
        FileNotFoundError: an override path is not what it should be (names the fix).
        StepError: a step failed (names its log under ``cfg.out/logs``).
    """
    from raysys.runtime import ray_map

    cfg.validate_inputs()
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    resources, address = _start_ray(cfg)
    log.info("[raysys report] Ray up: %g CPUs, %g GPUs (%s); profile %r; ablations: %s",
             resources.get("CPU", 0), resources.get("GPU", 0), address, cfg.profile,
             ", ".join(cfg.ablations) or "none")
    r = StepRunner(out, address)
    if map_fn is None:
        def map_fn(fn, items):
            return ray_map(fn, items, num_cpus=1, desc="render scenes")

    data = _data_root(r, cfg, map_fn)
    res = cfg.resources
    labels = cfg.labels if cfg.labels is not None else label_step(r, data, resources=res)
    quality = quality_step(r, labels)
    teacher = None
    if cfg.teacher_reference:
        teacher = quality_step(r, label_step(r, data, split="test", resources=res),
                               name="quality_test", upstream="label_test")
    models = _train_main(r, cfg, data, labels)
    notes: list[str] = []
    tables = _table1(r, cfg, data, models, notes)
    diagnostics = _diagnostics(r, cfg, data, models, notes) if cfg.diagnostics else {}
    ablations = _ablations(r, cfg, data, labels)  # after Table 1: its numbers come first
    if not cfg.ablations:
        notes.append(f"Ablations (Tables 2-3) were not run in the {cfg.profile!r} profile; "
                     "`raysys report --out DIR --ablations all` runs them.")
    if models["viewsam_weak"][1] is not None:
        notes.append("The zero-shot SAM2 baseline takes its SAM2 weights from the weak "
                     "ViewSAM checkpoint: the embedded default has no pretrained SAM2.")
    video = None
    if cfg.video:
        video = video_step(r, data, out / "predictions" / "In-domain" / "viewsam_weak",
                           "ViewSAM (weak)", r.fingerprints.get("track_viewsam_weak_in"))
    # steps_sum: every step's wall time, skipped ones at their last run's (a from-scratch cost)
    r.timing["steps_sum"] = sum(r.timing.values())
    r.timing["total"] = time.perf_counter() - t0  # this run, skips included
    # the whole config, plus the benchmark's seed, scenes and frames at the top level
    # (report.md's header reads them) and what was used
    s = cfg.synth
    config = {**to_dict(cfg), "seed": s.seed, "scenes": s.scenes, "frames": s.frames,
              "data": str(data), "labels": str(labels), "skipped_steps": list(r.skipped)}
    return write_report(out, tables["In-domain"], tables.get("Cross-domain", {}), ablations,
                        quality, timing=r.timing, config=config, video=video, notes=notes,
                        teacher=teacher, diagnostics=diagnostics)


def write_report(out: Path, table1: dict, cross_domain: dict, ablations: dict,
                 quality: dict | None, *, timing: dict, config: dict,
                 video: dict | None = None, notes: list[str] | None = None,
                 teacher: dict | None = None, diagnostics: dict | None = None) -> dict:
    """Assemble report.json, draw the charts, write report.md; returns report.json.

    Args:
        ablations: supervision (``full``, ``weak``) -> switch -> evaluation.
        diagnostics: model (``viewsam_weak``, ``viewsam_full``) -> its diagnostics
            (:func:`raysys.report.diagnostics.run_diagnostics`).
    """
    from raysys.io.crtrack import atomic_write_text
    from raysys.io.jsonio import write_json_file
    from raysys.report.charts import write_charts
    from raysys.report.tables import assemble_report, render_markdown

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if video and video.get("gif"):
        try:
            video = {**video, "gif_rel": str(Path(video["gif"]).resolve().relative_to(
                out.resolve()))}
        except ValueError:
            pass
    report = assemble_report(table1, cross_domain, ablations, quality, timing=timing,
                             config=config, video=video, notes=notes, teacher=teacher,
                             diagnostics=diagnostics)
    charts = write_charts(report, out / "charts")
    report["charts"] = charts
    write_json_file(out / "report.json", report, indent=2)
    atomic_write_text(out / "report.md", render_markdown(report, charts))
    return report
