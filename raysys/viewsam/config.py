"""ViewSAM configuration: one frozen dataclass nesting the component configs.

Defaults run the embedded tiny SAM2 + MiniLM on a CPU. Widths left ``None`` in component
configs derive from the built SAM2 (``Sam2Dims``), so the same config sizes the modules of
the tiny base and of SAM2.1 Hiera-B+ alike (see :func:`resolve_widths`).

The four scalars tuned in the paper (α, δ, λ, λ_dyn) live at the top level; the paper's
values are not given in its text, so the defaults are plain guesses to be swept (``tune/``).
The weights of the loss terms in the total are ``LossConfig``'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from raysys.viewsam.bar import BARConfig
from raysys.viewsam.base import Sam2Dims
from raysys.viewsam.candidate_generator import CandidateGeneratorConfig
from raysys.viewsam.cgct import CGCTConfig
from raysys.viewsam.vc_cma import VCCMAConfig
from raysys.viewsam.view_token import ViewTokenConfig

__all__ = ["LossConfig", "ViewSAMConfig", "Widths", "resolve_widths", "PROMPT_SOURCES"]

PROMPT_SOURCES = ("candidates", "teacher")


@dataclass(frozen=True)
class LossConfig:
    mask: float = 1.0  # weight of the mask loss (Eq. 13) in the total
    mask_focal: float = 1.0  # focal weight inside the mask loss (Eq. 13 sums; SAM uses 20)
    mask_dice: float = 1.0  # dice weight inside the mask loss
    cg_heatmap: float = 1.0  # CG centre-heatmap focal loss (Eq. 14)
    cg_centerness: float = 1.0  # CG centerness BCE (Eq. 14)
    cg_box: float = 1.0  # CG size + offset smooth-L1 (Eq. 14)
    cg_match: float = 1.0  # CG group-balanced BCE on soft IoU targets (Eq. 15-16)
    cg_rank: float = 1.0  # CG margin ranking loss (Eq. 17)
    bar: float = 1.0  # BAR's bias BCE (Eq. 22) in the total (the paper gives no weight)


# fields of ViewSAMConfig that earlier versions had (the target-less forward's inference
# settings; inference is raysys.tracking's): ignored when an old checkpoint is read
RETIRED_FIELDS = ("num_objects", "track_iou")


@dataclass(frozen=True)
class ViewSAMConfig:
    alpha: float = 0.5  # α: EMA decay of the view token over frames (Eq. 4), in [0, 1]
    delta: float = 0.5  # δ: FiLM strength of the view modulation in CGCT (Eq. 11)
    lam: float = 0.5  # λ: weight of the inter-view term inside CGCT's loss (Eq. 12/23)
    lambda_dyn: float = 0.5  # λ_dyn: weight of the view token's dynamic part (Eq. 3)
    use_vc_cma: bool = True  # off: no adapters; the pooled text is a sparse decoder prompt
    use_candidate_generator: bool = True  # off: teacher box on frame 0 only, then memory
    use_bar: bool = True  # off: the memory-guided mask is the output (plain SAM2)
    use_cgct: bool = True  # off: no identity embeddings, no consistency loss
    use_vcca: bool = True  # off: VC-CMA uses plain cross attention (no view terms, no gate)
    use_view_modulation: bool = True  # off: CGCT without FiLM by the view token
    use_consistency_loss: bool = True  # off: CGCT embeddings are produced but not trained
    prompt_source: str = "candidates"  # with targets: CG proposals matched to teacher boxes
    #                                    ("candidates") or the teacher boxes ("teacher")
    prompt_iou_floor: float = 0.5  # "candidates": a proposal prompts only at IoU >= this with
    #   the teacher box and when no other labelled box overlaps it more (prompts.py)
    view_token: ViewTokenConfig = field(default_factory=ViewTokenConfig)
    vc_cma: VCCMAConfig = field(default_factory=VCCMAConfig)
    candidate_generator: CandidateGeneratorConfig = field(
        default_factory=CandidateGeneratorConfig)
    bar: BARConfig = field(default_factory=BARConfig)
    cgct: CGCTConfig = field(default_factory=CGCTConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha (the view token's EMA decay, Eq. 4) must be in [0, 1], "
                             f"got {self.alpha}")
        if self.prompt_source not in PROMPT_SOURCES:
            raise ValueError(f"prompt_source must be one of {PROMPT_SOURCES}, "
                             f"got {self.prompt_source!r}")
        if self.use_vc_cma and self.view_token.stage > min(self.vc_cma.stages, default=0):
            raise ValueError(f"view_token.stage {self.view_token.stage} must not come after the "
                             f"first VC-CMA stage {min(self.vc_cma.stages)}")

    @property
    def needs_view_token(self) -> bool:
        """Whether any enabled part consumes the view token."""
        return ((self.use_vc_cma and self.use_vcca)
                or (self.use_cgct and self.use_view_modulation))


@dataclass(frozen=True)
class Widths:
    """Module widths resolved against a built SAM2."""

    adapter: int  # VC-CMA d_a = view-token width
    cg_width: int  # CG conv tower width
    cg_hidden: int  # CG proposal / text embedding width
    embed: int  # CGCT embedding width
    embed_hidden: int  # CGCT fusion MLP hidden width


def resolve_widths(cfg: ViewSAMConfig, dims: Sam2Dims) -> Widths:
    d = dims.d_model
    cg, ct = cfg.candidate_generator, cfg.cgct
    return Widths(adapter=cfg.vc_cma.width or d, cg_width=cg.width or d,
                  cg_hidden=cg.hidden or 4 * d, embed=ct.dim or d,
                  embed_hidden=ct.hidden or 4 * d)
