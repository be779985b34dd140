"""Settings of ``raysys report``: one frozen dataclass whose defaults run the whole study.

Given only ``out``, the report generates the benchmark and runs every step it needs itself
(label, train weak / full / ablations, track, baselines, evaluate). The ``data``,
``labels``, ``weak`` and ``full`` fields point it at existing outputs instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["ABLATIONS", "COMPONENT_SWITCHES", "DESIGN_SWITCHES", "BASELINES", "ReportConfig",
           "parse_ablations", "check_checkpoint"]

# The switches of raysys.viewsam.config.ViewSAMConfig, in the paper's table order.
COMPONENT_SWITCHES = ("use_vc_cma", "use_candidate_generator", "use_bar", "use_cgct")  # Table 2
DESIGN_SWITCHES = ("use_vcca", "use_view_modulation", "use_consistency_loss")  # Table 3
ABLATIONS = COMPONENT_SWITCHES + DESIGN_SWITCHES
# zero-shot baselines of Table 1 (report.json keys)
BASELINES = ("zero_shot_concept", "zero_shot_sam2")


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


def check_checkpoint(path: Path, what: str) -> Path:
    """A ViewSAM checkpoint folder (``RUN/final``) or its ``model.pt``; else a clear error."""
    p = Path(path)
    f = p if p.is_file() else p / "model.pt"
    if not f.is_file():
        raise FileNotFoundError(
            f"{what} {p}: no ViewSAM checkpoint there (expected {f}); pass a `raysys train` "
            "run's final/ folder, or leave the option out to train one")
    return p


@dataclass(frozen=True)
class ReportConfig:
    out: Path = Path("runs/report")  # report folder: report.md/json, charts, every step
    # --- existing outputs to reuse (None: the report makes them under out/)
    data: Path | None = None  # benchmark root (`raysys synth` layout)
    labels: Path | None = None  # Stage 1 output of the In-domain train split
    weak: Path | None = None  # weakly supervised ViewSAM checkpoint folder (RUN/final)
    full: Path | None = None  # fully supervised ViewSAM checkpoint folder
    # --- what to run
    ablations: tuple[str, ...] = ABLATIONS  # weak runs with one switch off (Tables 2-3)
    baselines: tuple[str, ...] = BASELINES  # zero-shot rows of Table 1
    cross_domain: bool = True  # also track / score the Cross-domain test split
    video: bool = True  # the mosaic GIF of one test scene
    teacher_reference: bool = True  # also run Stage 1 on the In-domain test split and score
    #   it (offline, whole videos): the teacher's own level there, a reference line under
    #   Table 1 (never used for training)
    profile: str = "report"  # a name printed with the results (e.g. "main job")
    # --- benchmark generated when data is None (raysys.synth.SynthConfig fields)
    seed: int = 0
    scenes: int = 2  # scenes per split
    views: int = 3  # cameras per In-domain scene
    frames: int = 60
    width: int = 640
    height: int = 360
    people: int = 8
    # --- training (the schedule itself always comes from quick_config())
    quick: bool = True  # the CPU schedule of raysys.training.config.quick_config
    train_workers: int = 2
    train_cpus_per_worker: float = 0.5
    # --- tracking
    track_actors: int = 2
    track_actor_cpus: float = 1.0
    # --- Ray
    address: str | None = None  # a cluster; None = RAY_ADDRESS, else a local Ray
    num_cpus: int | None = None  # CPUs of a local Ray (None = all)
    extra_train: dict = field(default_factory=dict)  # TrainConfig overrides for every run

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        for name in ("data", "labels", "weak", "full"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, Path(v))
        bad = [a for a in self.ablations if a not in ABLATIONS]
        if bad:
            raise ValueError(f"unknown ablations {bad}; valid: {list(ABLATIONS)}")
        bad = [b for b in self.baselines if b not in BASELINES]
        if bad:
            raise ValueError(f"unknown baselines {bad}; valid: {list(BASELINES)}")
        if self.train_workers < 1 or self.train_cpus_per_worker <= 0:
            raise ValueError("train_workers must be >= 1 and train_cpus_per_worker > 0")
        if self.track_actors < 1 or self.track_actor_cpus <= 0:
            raise ValueError("track_actors must be >= 1 and track_actor_cpus > 0")

    def validate_inputs(self) -> None:
        """Check the paths given as overrides before any work starts."""
        if self.weak is not None:
            check_checkpoint(self.weak, "--weak")
        if self.full is not None:
            check_checkpoint(self.full, "--full")
        if self.data is not None and not (self.data / "dataset.json").is_file() and not (
                self.data / "In-domain").is_dir():
            raise FileNotFoundError(f"--data {self.data}: not a benchmark root (no "
                                    "dataset.json, no In-domain/); make one with `raysys synth`")
        if self.labels is not None and not (self.labels / "config.json").is_file():
            raise FileNotFoundError(f"--labels-dir {self.labels}: not a Stage 1 output (no "
                                    "config.json); make one with `raysys label --out DIR`")

    def synth_settings(self) -> dict:
        return {k: getattr(self, k) for k in
                ("seed", "scenes", "views", "frames", "width", "height", "people")}

    def to_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}
