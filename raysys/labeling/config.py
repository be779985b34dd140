"""Configuration of Stage 1 (pseudo-label generation).

:mod:`raysys.config` reads and writes it (``from_dict(LabelConfig, d)``, ``to_dict``); how
wide Stage 1 runs (its actor pool) is :class:`raysys.runtime.Resources`, not a setting here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from raysys.labeling.association import AssociationConfig
from raysys.labeling.ground_plane import GroundPlaneConfig
from raysys.labeling.reprompt import RepromptConfig

__all__ = ["GroupingConfig", "LabelConfig"]


@dataclass(frozen=True)
class GroupingConfig:
    """Grouping of trajectory descriptions into referring expressions."""

    similarity: float = 0.97  # descriptions with text cosine >= this share an expression
    max_crops: int = 24  # crops per trajectory given to the describer (spread over views)
    general: bool = True  # also group the describer's more general sentences ("a man in a
    #                       green coat") into expressions of every trajectory they fit


@dataclass(frozen=True)
class LabelConfig:
    """Stage 1 settings. Defaults run on a CPU with no weights."""

    tracker: str = "classical"  # concept tracker backend: classical | sam3
    tracker_options: dict = field(default_factory=dict)  # e.g. {"checkpoint": "sam3.pt"}
    reid: str = "stripes"  # ReID backend: stripes | osnet
    reid_options: dict = field(default_factory=dict)  # e.g. {"checkpoint": "osnet.pth"}
    describer: str = "attributes"  # describer backend: attributes | colours | hf-vlm | vllm
    describer_options: dict = field(default_factory=dict)
    text: str = "minilm"  # text embedder spec: minilm | hf:/path | random:roberta-base
    device: str = "cpu"  # device of the models inside actors ("cuda" on GPU nodes)
    association: AssociationConfig = field(default_factory=AssociationConfig)
    ground_plane: GroundPlaneConfig = field(default_factory=GroundPlaneConfig)  # association
    #                                   checked (and orphans placed) on the ground plane
    reprompt: RepromptConfig = field(default_factory=RepromptConfig)
    grouping: GroupingConfig = field(default_factory=GroupingConfig)
    reid_batch: int = 64  # crops per ReID forward pass
