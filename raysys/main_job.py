"""The main job on the embedded default: the whole pipeline, end to end, on Ray.

Generate a benchmark (scenes as Ray tasks), label its In-domain train split (Stage 1), train
ViewSAM weakly and fully supervised (Stage 2, the quick CPU schedule), run the zero-shot
baselines, track the In-domain and Cross-domain test splits, evaluate and write the report
(:func:`raysys.report.run_report`). Every step is resumable, so a second run only redoes
what changed.

The main job's profile leaves the ablations (Tables 2-3, one more training run each) out so
that it fits in about 20 minutes on a 2-core CPU; ``ablations`` (or ``raysys report``)
runs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["MainJobConfig", "report_config", "run_main_job"]


@dataclass(frozen=True)
class MainJobConfig:
    """Settings of the main job; defaults are the embedded default (< 20 min on 2 cores)."""

    out: Path = Path("runs/demo")  # everything goes under here (report.md, data, runs)
    seed: int = 0  # benchmark seed
    scenes: int = 2  # scenes per split
    views: int = 3  # cameras per In-domain scene
    frames: int = 60  # frames per video
    width: int = 640  # image size
    height: int = 360
    people: int = 8  # people per scene
    ablations: tuple[str, ...] = ()  # Tables 2-3 switches to run (each one more training)
    address: str | None = None  # Ray cluster; None = RAY_ADDRESS or a local Ray
    num_cpus: int | None = None  # CPUs of a local Ray (None = all)
    extra: dict = field(default_factory=dict)  # ReportConfig fields to override


def report_config(cfg: MainJobConfig):
    """The :class:`raysys.report.ReportConfig` of the main job's profile."""
    from raysys.report import ReportConfig

    return ReportConfig(
        out=cfg.out, seed=cfg.seed, scenes=cfg.scenes, views=cfg.views, frames=cfg.frames,
        width=cfg.width, height=cfg.height, people=cfg.people, ablations=tuple(cfg.ablations),
        address=cfg.address, num_cpus=cfg.num_cpus,
        profile="main job" + ("" if cfg.ablations else ", ablations off"), **cfg.extra)


def run_main_job(cfg: MainJobConfig) -> dict:
    """Run the whole pipeline; returns report.json (written to ``out/report.json``)."""
    from raysys.commands.report import print_summary
    from raysys.report import run_report

    rc = report_config(cfg)
    print(f"[raysys] main job: generate, label, train (quick), baselines, track, evaluate, "
          f"report -> {rc.out}")
    if not rc.ablations:
        print("[raysys] ablations are off in this profile (they add a training run each); "
              "`raysys report --out DIR` runs them")
    report = run_report(rc)
    print_summary(report, rc.out)
    steps = report["timing"]
    print("[raysys] wall time per step: " + ", ".join(
        f"{k} {v:.0f} s" for k, v in steps.items() if k != "total"))
    return report
