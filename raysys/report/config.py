"""Settings of ``raysys report``: one frozen dataclass whose defaults run the whole study,
and its named presets (the main job, what ``raysys demo`` and ``make demo`` run, is one).

Given only ``out``, the report generates the benchmark and runs every step it needs itself
(label, train weak / full / ablations, track, baselines, evaluate). The ``data``,
``labels``, ``weak_model`` and ``full_model`` fields point it at existing outputs instead.
The benchmark is a nested :class:`raysys.synth.SynthConfig`, the training schedule a nested
:class:`raysys.training.config.TrainConfig`, and how wide every step runs one
:class:`raysys.runtime.Resources`; :mod:`raysys.config` reads it from JSON or YAML
(``raysys report --config FILE``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from raysys.report.diagnostics import DiagnosticsConfig
from raysys.runtime import Resources
from raysys.synth.config import SynthConfig
from raysys.training.config import TrainConfig, quick_config

__all__ = ["ABLATIONS", "ABLATION_MODELS", "COMPONENT_SWITCHES", "DESIGN_SWITCHES", "BASELINES",
           "PRESETS",
           "REPORT_RESOURCES", "REPORT_SYNTH", "ReportConfig", "parse_ablations",
           "parse_baselines", "parse_ablation_models", "check_checkpoint"]

# The switches of raysys.viewsam.config.ViewSAMConfig, in the paper's table order.
COMPONENT_SWITCHES = ("use_vc_cma", "use_candidate_generator", "use_bar", "use_cgct")  # Table 2
DESIGN_SWITCHES = ("use_vcca", "use_view_modulation", "use_consistency_loss")  # Table 3
ABLATIONS = COMPONENT_SWITCHES + DESIGN_SWITCHES
# the supervision of the ablation runs, in table order: the paper runs Tables 2-3 on the
# fully supervised model (its Table 2 "full" row is Table 1's); the weak one is ours
ABLATION_MODELS = ("full", "weak")
# zero-shot baselines of Table 1 (report.json keys)
BASELINES = ("zero_shot_concept", "zero_shot_sam2")

# The report's generated benchmark: SynthConfig's defaults (issue #20: 20 people and 12
# expressions per scene, CRTrack-like statistics) with 48 frames per view instead of 60,
# so that the main job stays within 20 minutes on 2 cores (every step but training scales
# with frames). Report and main-job figures measured before 2026-12-05 used 60 frames;
# before 2026-12-04, 8 people per scene and the earlier expression mix (lab notes).
REPORT_SYNTH = dataclasses.replace(SynthConfig(), frames=48)
# Two training workers of half a CPU each, the rest Resources' defaults (Stage 1: one actor
# of half a CPU; tracking: two actors of one CPU): the main job on 2 cores.
REPORT_RESOURCES = Resources(workers=2, cpus_per_worker=0.5)


def parse_ablations(spec: str | None) -> tuple[str, ...]:
    """``"all"`` | ``"none"`` | ``"name,name"`` -> switch names (``use_`` prefix optional).

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
    """
    if spec is None or spec.strip().lower() == "all":
        return ABLATIONS
    if spec.strip().lower() in ("none", ""):
        return ()
    out = []
    for name in (s.strip() for s in spec.split(",") if s.strip()):
        full = name if name.startswith("use_") else f"use_{name}"
        if full not in ABLATIONS:
            raise ValueError(f"unknown ablation {name!r}; valid: all, none, or a comma list of "
                             f"{', '.join(ABLATIONS)}")
        if full not in out:
            out.append(full)
    return tuple(a for a in ABLATIONS if a in out)  # table order


def parse_baselines(spec: str | None) -> tuple[str, ...]:
    """``"all"`` | ``"none"`` | ``"name,name"`` -> baseline names, in table order.

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
    """
    s = (spec or "all").strip().lower()
    if s == "all":
        return BASELINES
    if s in ("none", ""):
        return ()
    names = [n.strip() for n in s.split(",") if n.strip()]
    bad = [n for n in names if n not in BASELINES]
    if bad:
        raise ValueError(f"unknown baselines {bad}; valid: all, none, {', '.join(BASELINES)}")
    return tuple(b for b in BASELINES if b in names)


def parse_ablation_models(spec: str | None) -> tuple[str, ...]:
    """``"all"`` | ``"full"`` | ``"weak"`` | ``"full,weak"`` -> the supervisions the ablation
    runs train with, in table order (``full`` alone: the paper's Tables 2-3, half the runs).

    Raises:
        ValueError: an unknown or empty name list (the message lists the valid ones).
    """
    s = (spec or "all").strip().lower()
    if s == "all":
        return ABLATION_MODELS
    names = [n.strip() for n in s.split(",") if n.strip()]
    bad = [n for n in names if n not in ABLATION_MODELS]
    if bad or not names:
        raise ValueError(f"unknown ablation models {bad or [spec]}; valid: all, "
                         f"{', '.join(ABLATION_MODELS)} or a comma list of them")
    return tuple(m for m in ABLATION_MODELS if m in names)


def check_checkpoint(path: Path, what: str, allow_partial: bool = False) -> Path:
    """A ViewSAM checkpoint folder (``RUN/final``) that loads: its files, its SAM2 YAML,
    its weights against its model (strictly, unless ``allow_partial``); else a clear error
    naming the option ``what``
    (:func:`raysys.viewsam.checkpoint.check_viewsam_checkpoint`)."""
    from raysys.errors import UserError
    from raysys.viewsam.checkpoint import check_viewsam_checkpoint

    p = Path(path)
    try:
        check_viewsam_checkpoint(p, allow_partial=allow_partial)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{what} {p}: {e}; or leave the option out to train "
                                "one") from None
    except ValueError as e:
        raise UserError(f"{what}: {e}") from None
    return p


@dataclass(frozen=True)
class ReportConfig:
    out: Path = Path("runs/report")  # report folder: report.md/json, charts, every step
    # --- existing outputs to reuse (None: the report makes them under out/)
    data: Path | None = None  # benchmark root (`raysys synth` layout)
    labels: Path | None = None  # Stage 1 output of the In-domain train split
    weak_model: Path | None = None  # weakly supervised ViewSAM checkpoint folder (RUN/final)
    full_model: Path | None = None  # fully supervised ViewSAM checkpoint folder
    allow_partial: bool = False  # load weak_model / full_model even if their weights do not
    #   all fit (what fits loads, the rest is logged); by default that is an error
    # --- what to run
    ablations: tuple[str, ...] = ABLATIONS  # runs with one switch off (Tables 2-3) ...
    ablation_models: tuple[str, ...] = ABLATION_MODELS  # ... of each of these supervisions
    baselines: tuple[str, ...] = BASELINES  # zero-shot rows of Table 1
    cross_domain: bool = True  # also track / score the Cross-domain test split
    video: bool = True  # the mosaic GIF of one test scene
    teacher_reference: bool = True  # also run Stage 1 on the In-domain test split and score
    #   it (offline, whole videos): the teacher's own level there, a reference line under
    #   Table 1 (never used for training)
    diagnostics: bool = True  # the diagnostics section: base, Candidate Generator, CGCT and
    #   cross-view ids with GT boxes, of the weak and the full model on In-domain test
    diagnostics_config: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    profile: str = "report"  # a name printed with the results (e.g. "main job")
    # --- the benchmark generated when data is None
    synth: SynthConfig = field(default_factory=lambda: REPORT_SYNTH)
    # --- every training run (weak, full, ablations; each sets its own supervision and
    #     switch): the quick CPU schedule of raysys.training.config.quick_config
    train: TrainConfig = field(default_factory=quick_config)
    # --- Ray and how wide each step runs (never changes a result)
    resources: Resources = field(default_factory=lambda: REPORT_RESOURCES)

    def __post_init__(self) -> None:
        for name in ("out", "data", "labels", "weak_model", "full_model"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, Path):
                object.__setattr__(self, name, Path(v))
        bad = [a for a in self.ablations if a not in ABLATIONS]
        if bad:
            raise ValueError(f"unknown ablations {bad}; valid: {list(ABLATIONS)}")
        bad = [b for b in self.baselines if b not in BASELINES]
        if bad:
            raise ValueError(f"unknown baselines {bad}; valid: {list(BASELINES)}")
        bad = [m for m in self.ablation_models if m not in ABLATION_MODELS]
        if bad:
            raise ValueError(f"unknown ablation_models {bad}; valid: {list(ABLATION_MODELS)}")

    def validate_inputs(self) -> None:
        """Check the paths given as overrides before any work starts."""
        if self.weak_model is not None:
            check_checkpoint(self.weak_model, "--weak-model", self.allow_partial)
        if self.full_model is not None:
            check_checkpoint(self.full_model, "--full-model", self.allow_partial)
        if self.data is not None and not (self.data / "dataset.json").is_file() and not (
                self.data / "In-domain").is_dir():
            raise FileNotFoundError(f"--data {self.data}: not a benchmark root (no "
                                    "dataset.json, no In-domain/); make one with `raysys synth`")
        if self.labels is not None and not (self.labels / "config.json").is_file():
            raise FileNotFoundError(f"--labels {self.labels}: not a Stage 1 output (no "
                                    "config.json); make one with `raysys label --out DIR`")
        if self.labels is not None:  # of --data (or their own dataset) as it is now
            from raysys.io.dataset import DatasetLayout
            from raysys.labeling.record import check_labels_match, read_label_record

            data = self.data or Path(str(read_label_record(self.labels).get("data")))
            check_labels_match(self.labels, DatasetLayout(data, "In-domain", "train"))

    def train_config(self, supervision: str, switch_off: str | None = None) -> TrainConfig:
        """The whole TrainConfig of one run: ``train`` with its supervision and, for an
        ablation, one ViewSAM switch off."""
        cfg = dataclasses.replace(self.train, supervision=supervision)
        if switch_off is not None:
            cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model,
                                                                      **{switch_off: False}))
        return cfg

    @classmethod
    def preset(cls, name: str) -> ReportConfig:
        """A named preset (:data:`PRESETS`); an unknown name lists the valid ones."""
        try:
            return PRESETS[name]
        except KeyError:
            raise ValueError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}") from None


# Named presets. "main-job" is the whole pipeline on the embedded default, what
# `raysys demo` and `make demo` run: the report without the ablations (Tables 2-3: two more
# training runs per switch, fully supervised and weak), so that it fits in about 20 minutes
# on a 2-core CPU. It keeps the diagnostics section (their sizes: DiagnosticsConfig).
PRESETS: dict[str, ReportConfig] = {
    "report": ReportConfig(),
    "main-job": ReportConfig(out=Path("runs/demo"), ablations=(),
                             profile="main job, ablations off"),
}
