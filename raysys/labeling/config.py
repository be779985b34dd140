"""Configuration of Stage 1 (pseudo-label generation)."""

from __future__ import annotations

import dataclasses
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
    describer: str = "colours"  # describer backend: colours | hf-vlm | vllm
    describer_options: dict = field(default_factory=dict)
    text: str = "minilm"  # text embedder spec: minilm | hf:/path | random:roberta-base
    device: str = "cpu"  # device of the models inside actors ("cuda" on GPU nodes)
    association: AssociationConfig = field(default_factory=AssociationConfig)
    ground_plane: GroundPlaneConfig = field(default_factory=GroundPlaneConfig)  # association
    #                                   checked (and orphans placed) on the ground plane
    reprompt: RepromptConfig = field(default_factory=RepromptConfig)
    grouping: GroupingConfig = field(default_factory=GroupingConfig)
    actors: int = 1  # size of the tracking+ReID actor pool
    actor_cpus: float = 0.5  # CPUs per actor (fractional: Ray on 2 cores)
    actor_gpus: float = 0.0  # GPUs per actor (1 on GPU nodes)
    reid_batch: int = 64  # crops per ReID forward pass

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LabelConfig:
        d = dict(d)
        _check_fields(cls, d, "Stage 1")
        for name, typ in (("association", AssociationConfig), ("ground_plane", GroundPlaneConfig),
                          ("reprompt", RepromptConfig),
                          ("grouping", GroupingConfig)):
            if isinstance(d.get(name), dict):
                _check_fields(typ, d[name], f"Stage 1 {name}")
                d[name] = typ(**d[name])
        return cls(**d)


def _check_fields(cls, d: dict, what: str) -> None:
    """A clear error for keys of ``d`` that are not fields of dataclass ``cls``."""
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = set(d) - set(names)
    if unknown:
        raise ValueError(f"unknown {what} settings {sorted(unknown)}; valid: {names}")
