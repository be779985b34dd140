"""Stage 2 training configuration: frozen dataclasses whose defaults run.

``TrainConfig()`` is the paper's staged schedule (§4.1, App. C) for the full setting:

1. Candidate Generator, 12 epochs at 4e-5, on ID-agnostic single-view labels;
2. VC-CMA (+ view token) and BAR, 20 epochs at 2e-5 (and the SAM2 base when it is
   trainable, i.e. the embedded tiny base without a checkpoint), on ID-agnostic cross-view
   labels; the paper first pre-trains on referring VOS: :attr:`TrainConfig.init_checkpoint`
   is that hook (a ViewSAM checkpoint whose weights are loaded before stage 1);
3. CGCT, 10 epochs at 2e-4, on refer-agnostic cross-view labels.

Each stage names its labels (:attr:`StageConfig.labels`, :data:`STAGE_LABELS`; what each
means: :mod:`raysys.training.stages`).

:func:`quick_config` scales it down for a CPU laptop (tiny clips, a few epochs per stage,
larger learning rates so that the loss visibly falls in minutes). :mod:`raysys.config`
converts them to and from JSON (``--config FILE`` overrides, checkpoints).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from raysys.config import from_dict
from raysys.viewsam.config import ViewSAMConfig

__all__ = ["MODULE_GROUPS", "SUPERVISIONS", "VARIANTS", "STAGE_LABELS", "StageConfig",
           "TrainConfig", "PAPER_STAGES", "quick_config"]

# trainable module groups -> ViewSAM attributes ("base" trains only a base that is not frozen)
MODULE_GROUPS: dict[str, tuple[str, ...]] = {
    "base": ("sam2",),
    "vc_cma": ("vc_cma", "view_token", "text_prompt"),
    "candidate_generator": ("candidate_generator",),
    "bar": ("bar",),
    "cgct": ("cgct",),
}
SUPERVISIONS = ("weak", "full")
# §4.1 variants of the pseudo labels (see raysys.training.data for the reading):
VARIANTS = ("standard", "id_agnostic", "refer_agnostic")
# the labels a stage trains on (§4.1; see raysys.training.stages): "standard" = the run's
# referring samples (with the run's variant), the other three the paper's per-stage labels
STAGE_LABELS = ("standard", "id_agnostic_single_view", "id_agnostic_cross_view",
                "refer_agnostic_cross_view")


@dataclass(frozen=True)
class StageConfig:
    name: str  # label in metrics, plots and progress lines
    modules: tuple[str, ...]  # MODULE_GROUPS trained in this stage; everything else frozen
    epochs: int  # passes over the training samples
    lr: float  # AdamW learning rate of this stage (constant)
    labels: str = "standard"  # STAGE_LABELS: the training labels of this stage (§4.1)

    def __post_init__(self) -> None:
        object.__setattr__(self, "modules", tuple(self.modules))
        if self.labels not in STAGE_LABELS:
            raise ValueError(f"stage {self.name!r}: labels must be one of {STAGE_LABELS}, "
                             f"got {self.labels!r}")
        bad = [m for m in self.modules if m not in MODULE_GROUPS]
        if bad or not self.modules:
            raise ValueError(f"stage {self.name!r}: modules must be a non-empty subset of "
                             f"{sorted(MODULE_GROUPS)}, got {list(self.modules)}")
        if self.epochs < 0 or self.lr <= 0:
            raise ValueError(f"stage {self.name!r}: need epochs >= 0 and lr > 0, "
                             f"got {self.epochs}, {self.lr}")


PAPER_STAGES = (  # §4.1: modules, epochs, learning rate and labels of each stage
    StageConfig("candidate_generator", ("candidate_generator",), 12, 4e-5,
                "id_agnostic_single_view"),
    StageConfig("vc_cma_bar", ("vc_cma", "bar", "base"), 20, 2e-5, "id_agnostic_cross_view"),
    StageConfig("cgct", ("cgct",), 10, 2e-4, "refer_agnostic_cross_view"),
)


@dataclass(frozen=True)
class TrainConfig:
    supervision: str = "weak"  # "weak": Stage 1 pseudo labels only; "full": GT (comparison)
    variant: str = "standard"  # whole-run label variant (comparisons): "standard" = each
    #   stage trains on its own StageConfig.labels; "id_agnostic" | "refer_agnostic" = every
    #   stage trains on the referring samples of that variant (raysys.training.data)
    clip_frames: int = 8  # T: synchronised frames per view in a clip
    clip_stride: int = 4  # frames between the starts of consecutive clips of a scene
    frame_step: int = 1  # take every k-th frame inside a clip (1 = consecutive frames)
    image_size: int | None = None  # frames resized to this square side; None = SAM2's
    sam2_image_size: int | None = None  # override the SAM2 YAML's image_size (multiple of
    #                                      16; None keeps it; quick mode shrinks it)
    max_objects: int = 8  # M: objects per sample (referred first, then distractors)
    max_dense_objects: int = 32  # A: labelled objects per frame the CG learns to propose
    max_views: int | None = None  # first k views of a scene; None = all (same V per batch)
    min_box_side: float = 2.0  # boxes thinner than this (input pixels) are dropped
    use_masks: bool = True  # mask targets from the RLEs (False: boxes filled in)
    batch_size: int = 1  # clips per worker and step
    max_samples: int | None = None  # cap on the training samples (None = all)
    calibration_clips: int = 128  # clips (past max_samples where there are) on which the
    #   finished run calibrates the tracker's thresholds (32 until stop 50: the thresholds
    #   moved with the sample; docs/training.md), scored in parallel by the workers' share
    calibration_level: str = "proposal"  # where the referring threshold is chosen:
    #   "proposal" (each proposal once) | "track" (each object-view's mean referring, as
    #   the tracker decides); raysys.training.calibrate
    stages: tuple[StageConfig, ...] = PAPER_STAGES  # the schedule, run in order
    weight_decay: float = 0.01  # AdamW weight decay
    grad_clip: float = 1.0  # max gradient norm (0 = no clipping)
    precision: str = "fp32"  # "fp32" or "bf16" (autocast; only on a GPU)
    seed: int = 0  # model init and sample order
    model: ViewSAMConfig = field(default_factory=ViewSAMConfig)  # ViewSAM + ablations
    sam2_config: str | None = None  # SAM2 YAML (None / "tiny" = embedded tiny base)
    sam2_checkpoint: str | None = None  # local SAM2 .pt (frozen base); None = random init
    text_encoder: str = "minilm"  # frozen text encoder spec (minilm | hf:DIR | random:ARCH)
    init_checkpoint: str | None = None  # ViewSAM checkpoint loaded before stage 1 (the
    #                                     referring-VOS pre-training hook)
    max_failures: int = 2  # worker-group restarts from the last checkpoint before failing
    keep_checkpoints: int = 2  # epoch checkpoints kept in Ray's storage

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(
            StageConfig(**s) if isinstance(s, dict) else s for s in self.stages))
        if self.supervision not in SUPERVISIONS:
            raise ValueError(f"supervision must be one of {SUPERVISIONS}, got "
                             f"{self.supervision!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.calibration_level not in ("track", "proposal"):
            raise ValueError(f"calibration_level must be 'track' or 'proposal', got "
                             f"{self.calibration_level!r}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        for name in ("clip_frames", "clip_stride", "frame_step", "max_objects",
                     "max_dense_objects", "batch_size", "calibration_clips"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.sam2_image_size is not None and self.sam2_image_size % 16:
            raise ValueError(f"sam2_image_size must be a multiple of 16, "
                             f"got {self.sam2_image_size}")
        if not self.stages or sum(s.epochs for s in self.stages) < 1:
            raise ValueError("the schedule needs at least one stage with epochs >= 1")

    @property
    def total_epochs(self) -> int:
        return sum(s.epochs for s in self.stages)

    def stage_labels(self, stage: StageConfig) -> str:
        """The labels ``stage`` trains on: its own (§4.1) under the ``standard`` variant;
        with a whole-run variant, that variant's referring samples (``"standard"``)."""
        return stage.labels if self.variant == "standard" else "standard"

    @property
    def model_config(self) -> ViewSAMConfig:
        """The model config with the variant applied (ID-agnostic: no identity supervision,
        so the consistency loss is off)."""
        if self.variant == "id_agnostic":
            return dataclasses.replace(self.model, use_consistency_loss=False)
        return self.model


def quick_config(**overrides) -> TrainConfig:
    """The scaled-down CPU schedule (minutes on a laptop).

    T=4 frames at 128 px on the embedded pre-trained tiny SAM2 base (frozen, as the paper
    freezes SAM2.1; see :mod:`raysys.training.pretrain_base`), the Candidate Generator on its
    fine stride-8 grid with pixel RoIs in its matching branch (colours the tiny encoder
    blurs), built upon the two frozen halves of the APTM analogue: the shipped RGB-only
    person detector's peaks as its proposals (``proposal_net``), the shipped attribute
    net reading each box (``attribute_net``) and the shipped text matcher scoring that
    reading against the sentence (``text_matcher``), with no learned residual on that score
    (``match_residual = False``: the residual learns the train split's sentences and
    people, lab notes stop 48); CGCT built upon the same attribute net's
    reading of each object's crop (``cgct.backbone = "attribute"``) and trained with the
    intra- and inter-view InfoNCE (``cgct.objective = "infonce"``: Eq. 23 alone collapses the
    embeddings, docs/viewsam.md); short stages with larger learning rates: CG
    3 epochs (CG losses only, no tracking: cheap), VC-CMA + BAR 1 epoch, CGCT 1.
    """
    stages = (  # the paper's labels per stage (PAPER_STAGES)
        StageConfig("candidate_generator", ("candidate_generator",), 3, 2e-3,
                    "id_agnostic_single_view"),
        StageConfig("vc_cma_bar", ("vc_cma", "bar", "base"), 1, 5e-4, "id_agnostic_cross_view"),
        StageConfig("cgct", ("cgct",), 1, 1e-3, "refer_agnostic_cross_view"),
    )
    model = {"candidate_generator": {"fine": True, "pixel_roi": 8, "proposal_net": "embedded",
                                     "attribute_net": "embedded", "text_matcher": "embedded",
                                     "match_residual": False},
             "cgct": {"backbone": "attribute", "objective": "infonce"}}
    base = dict(clip_frames=4, clip_stride=4, image_size=128, sam2_image_size=128,
                max_objects=6, max_samples=64, stages=stages, sam2_checkpoint="embedded",
                model=model)
    if isinstance(overrides.get("model"), ViewSAMConfig):
        base.pop("model")  # a whole model config replaces the quick default
    elif isinstance(overrides.get("model"), dict):
        overrides = {**overrides, "model": {**model, **overrides["model"]}}
    return from_dict(TrainConfig, base | overrides)
