"""The search space of a sweep: which parameters, their distributions and ranges.

The four parameters of §3.3 and App. C, as :class:`raysys.viewsam.config.ViewSAMConfig`
defines them:

* ``lambda_dyn`` (λ_dyn): the weight of the view token's dynamic part (Eq. 3);
* ``alpha`` (α): the EMA decay of the view token over frames (Eq. 4), in [0, 1];
* ``delta`` (δ): the strength of the view-conditioned FiLM in CGCT (Eq. 11);
* ``lam`` (λ): the weight of the inter-view term in CGCT's loss (Eq. 12/23);

plus, optionally, ``lr.<stage>``: the learning rate of a stage of the schedule
(:attr:`raysys.training.config.TrainConfig.stages`, by name).

The file (``tune/space.yaml``, the user edits it) maps each name to
``{dist: uniform | loguniform | choice, low, high}`` (``values: [...]`` for ``choice``).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path

from raysys.errors import UserError

__all__ = ["MODEL_PARAMS", "DISTS", "DEFAULT_SPACE", "ACTS_IN", "Param", "load_space",
           "parse_space", "to_tune", "apply_params"]

# name -> (valid low, valid high, meaning); the model's fields (Eq. numbers of the paper)
MODEL_PARAMS: dict[str, tuple[float, float, str]] = {
    "lambda_dyn": (0.0, 10.0, "λ_dyn, weight of the view token's dynamic part (Eq. 3)"),
    "alpha": (0.0, 1.0, "α, EMA decay of the view token (Eq. 4)"),
    "delta": (0.0, 10.0, "δ, FiLM strength of the view modulation in CGCT (Eq. 11)"),
    "lam": (0.0, 10.0, "λ, weight of CGCT's inter-view loss term (Eq. 12/23)"),
}
LR_RANGE = (1e-7, 1.0)  # a stage's learning rate: lr.<stage>
DISTS = ("uniform", "loguniform", "choice")
# the space when none is given (the same as tune/space.yaml): the four in [0, 1]
DEFAULT_SPACE = {n: {"dist": "uniform", "low": 0.0, "high": 1.0} for n in MODEL_PARAMS}
# the stage whose modules a parameter acts in (the paper's schedule, §4.1): α, λ_dyn in
# VC-CMA's stage; δ, λ in CGCT's (the scheduler's grace period reaches past it)
ACTS_IN = {"lambda_dyn": "vc_cma", "alpha": "vc_cma", "delta": "cgct", "lam": "cgct"}


@dataclass(frozen=True)
class Param:
    name: str  # a MODEL_PARAMS name or lr.<stage>
    dist: str  # DISTS
    low: float | None = None
    high: float | None = None
    values: tuple[float, ...] = ()  # for "choice"


def _valid_names(stages: tuple[str, ...]) -> str:
    model = [f"{n} [{lo:g}, {hi:g}] ({what})" for n, (lo, hi, what) in MODEL_PARAMS.items()]
    lrs = [f"lr.{s} [{LR_RANGE[0]:g}, {LR_RANGE[1]:g}]" for s in stages] or \
        ["lr.<stage> (a stage of the schedule)"]
    return "; ".join(model + lrs)


def _range(name: str, stages: tuple[str, ...]) -> tuple[float, float]:
    if name in MODEL_PARAMS:
        return MODEL_PARAMS[name][:2]
    if name.startswith("lr.") and (not stages or name[3:] in stages):
        return LR_RANGE
    raise UserError(f"unknown search-space parameter {name!r}; valid: {_valid_names(stages)}")


def _number(name: str, key: str, x) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        raise UserError(f"search space: {name}.{key} must be a finite number, got {x!r}")
    return float(x)


def _param(name: str, spec, stages: tuple[str, ...]) -> Param:
    lo_ok, hi_ok = _range(name, stages)
    where = f"{name}: valid range [{lo_ok:g}, {hi_ok:g}]"
    if not isinstance(spec, dict):
        raise UserError(f"search space: {name} must be a mapping {{dist, low, high}}, got "
                        f"{spec!r}")
    unknown = sorted(set(spec) - {"dist", "low", "high", "values"})
    dist = spec.get("dist", "uniform")
    if unknown or dist not in DISTS:
        raise UserError(f"search space: {name}: keys dist ({'|'.join(DISTS)}), low, high, "
                        f"values; got {sorted(spec)} with dist {dist!r}")
    if dist == "choice":
        vals = spec.get("values")
        if not isinstance(vals, list) or not vals:
            raise UserError(f"search space: {name}: choice needs a non-empty list 'values'")
        vals = tuple(_number(name, "values", v) for v in vals)
        if any(not lo_ok <= v <= hi_ok for v in vals):
            raise UserError(f"search space: {where}, got values {list(vals)}")
        return Param(name, dist, values=vals)
    if "low" not in spec or "high" not in spec:
        raise UserError(f"search space: {name}: {dist} needs 'low' and 'high' ({where})")
    lo, hi = _number(name, "low", spec["low"]), _number(name, "high", spec["high"])
    if not lo_ok <= lo < hi <= hi_ok or (dist == "loguniform" and lo <= 0):
        raise UserError(f"search space: {where} with low < high (loguniform: low > 0), got "
                        f"[{lo:g}, {hi:g}]")
    return Param(name, dist, lo, hi)


def parse_space(data, stages: tuple[str, ...] = ()) -> dict[str, Param]:
    """The search space of a mapping ``{name: {dist, low, high}}``; ``stages``: the stage
    names of the schedule (``lr.<stage>``).

    Raises:
        UserError: an unknown name or a bad range; the message lists the valid ones.
    """
    if not isinstance(data, dict) or not data:
        raise UserError(f"search space: expected a non-empty mapping of parameters; valid: "
                        f"{_valid_names(stages)}")
    return {str(k): _param(str(k), v, stages) for k, v in data.items()}


def load_space(path: str | os.PathLike, stages: tuple[str, ...] = ()) -> dict[str, Param]:
    """:func:`parse_space` of a YAML (or JSON) file."""
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as e:
        raise UserError(f"cannot read the search space {p}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise UserError(f"{p}: not valid YAML: {e}") from None
    try:
        return parse_space(data, stages)
    except UserError as e:
        raise UserError(f"{p}: {e}") from None


def to_tune(space: dict[str, Param]) -> dict:
    """Ray Tune's ``param_space`` (flat: ``{name: tune.uniform(...)}``)."""
    from ray import tune

    out = {}
    for name, p in space.items():
        if p.dist == "choice":
            out[name] = tune.choice(list(p.values))
        elif p.dist == "loguniform":
            out[name] = tune.loguniform(p.low, p.high)
        else:
            out[name] = tune.uniform(p.low, p.high)
    return out


def apply_params(cfg, params: dict):
    """``cfg`` (a :class:`raysys.training.config.TrainConfig`) with a trial's parameters:
    the model fields of :data:`MODEL_PARAMS` and the ``lr.<stage>`` learning rates."""
    names = {s.name for s in cfg.stages}
    bad = sorted(k for k in params if k not in MODEL_PARAMS
                 and not (k.startswith("lr.") and k[3:] in names))
    if bad:
        raise UserError(f"unknown parameters {bad}; valid: {_valid_names(tuple(names))}")
    model = {k: float(v) for k, v in params.items() if k in MODEL_PARAMS}
    lrs = {k[3:]: float(v) for k, v in params.items() if k.startswith("lr.")}
    stages = tuple(dataclasses.replace(s, lr=lrs.get(s.name, s.lr)) for s in cfg.stages)
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, **model),
                               stages=stages)

