"""ViewSAM (paper §3.3): adapters on a frozen SAM2 video tracker and a frozen text encoder.

Components, one module each, named as in the paper: ``view_token`` (Eq. 3-4), ``vc_cma``
(Eq. 5-7), ``candidate_generator`` (Eq. 14-18), ``bar`` (Eq. 8-9, 19-22), ``cgct``
(Eq. 10-12, 23), ``losses``; ``base`` wraps SAM2; ``build.build_viewsam`` wires a model.
"""

from raysys.viewsam.bar import BARConfig
from raysys.viewsam.build import build_viewsam
from raysys.viewsam.candidate_generator import CandidateGeneratorConfig, PseudoLabelTeacher
from raysys.viewsam.cgct import CGCTConfig
from raysys.viewsam.config import LossConfig, ViewSAMConfig
from raysys.viewsam.data import ClipTargets, ViewSAMOutput
from raysys.viewsam.report import format_parameter_report, parameter_report
from raysys.viewsam.vc_cma import VCCMAConfig
from raysys.viewsam.view_token import ViewTokenConfig
from raysys.viewsam.viewsam import ViewSAM

__all__ = [
    "BARConfig",
    "CGCTConfig",
    "CandidateGeneratorConfig",
    "ClipTargets",
    "LossConfig",
    "PseudoLabelTeacher",
    "VCCMAConfig",
    "ViewSAM",
    "ViewSAMConfig",
    "ViewSAMOutput",
    "ViewTokenConfig",
    "build_viewsam",
    "format_parameter_report",
    "parameter_report",
]
