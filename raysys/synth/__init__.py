"""Procedurally generated multi-camera CRMOT benchmark in the CRTrack layout.

Entry points: :class:`SynthConfig` (what to generate), :func:`plan_scenes` /
:func:`render_scene` (one picklable task per scene) and :func:`generate` (all of them through
any ``map_fn``). See ``generate.py`` for the files written and ``render.py`` for the
visibility rule.
"""

from raysys.synth.config import CROSS_DOMAIN_RIG, IN_DOMAIN_RIG, RigStyle, SynthConfig
from raysys.synth.generate import (
    VERSION,
    DatasetConfigError,
    SceneSpec,
    generate,
    plan_scenes,
    render_scene,
    serial_map,
)

__all__ = [
    "SynthConfig",
    "RigStyle",
    "IN_DOMAIN_RIG",
    "CROSS_DOMAIN_RIG",
    "SceneSpec",
    "DatasetConfigError",
    "VERSION",
    "plan_scenes",
    "render_scene",
    "generate",
    "serial_map",
]
