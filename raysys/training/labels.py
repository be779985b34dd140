"""The training labels of each stage (paper §4.1, Implementation Details).

§4.1 trains each module on its own kind of pseudo label:

* the Candidate Generator on **ID-agnostic single-view** labels;
* VC-CMA + BAR on **ID-agnostic cross-view** labels;
* CGCT on **refer-agnostic cross-view** labels.

:attr:`raysys.training.config.StageConfig.labels` names a stage's kind; the driver derives
one list of sample descriptors per kind from the run's planned referring samples
(:func:`relabel`); each worker's one dataset for the run streams every epoch with the
samples of its stage's kind (:func:`stage_datasets`,
:func:`raysys.training.data.build_train_datasets`). Every derivation is a deterministic
function of the planned samples and the seed, so runs stay reproducible. Our reading of each kind:

``standard``
    The referring samples as planned (:func:`raysys.training.data.plan_samples`, with the
    run's variant): one (scene, expression, clip start), every view, the expression's
    trajectories referred, Stage 1's global ids.
``id_agnostic_cross_view``
    The same samples with anonymous ids ``0..M-1``: Stage 1's cross-view ids never reach a
    loss, and the consistency loss (the only loss that reads identities) is off in the
    stage (:func:`stage_model_config`).
``id_agnostic_single_view``
    Each sample split into one sample per view (that view's frames only; its view id is
    the one it has in the scene, :mod:`raysys.io.views`), kept where a referred object is
    visible in that view, anonymous ids as above, shuffled with the seed. An epoch holds
    about ``V`` times as many samples of ``1/V`` the frames: the same frames.
``refer_agnostic_cross_view``
    One sample per (scene, clip) (the first of the planned samples of that clip; the
    expression's text rides along because the forward pass needs one, but no target
    depends on it): every labelled object visible in the clip is a target (a slot),
    the ``M`` most visible first, with Stage 1's global ids (CGCT learns identity).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from raysys.training.config import STAGE_LABELS, TrainConfig

__all__ = ["relabel", "run_labels", "stage_model_config", "stage_slots", "stage_datasets",
           "IDENTITY_FREE"]

# the kinds whose stage never sees Stage 1's identities
IDENTITY_FREE = ("id_agnostic_single_view", "id_agnostic_cross_view")


def run_labels(cfg: TrainConfig) -> list[str]:
    """The label kinds the run's stages train on (stages with epochs), in stage order."""
    out: list[str] = []
    for s in cfg.stages:
        kind = cfg.stage_labels(s)
        if s.epochs > 0 and kind not in out:
            out.append(kind)
    return out


def stage_model_config(model_cfg, labels: str):
    """The model config a stage on ``labels`` computes its losses with: no consistency loss
    (Eq. 12/23, the only loss that reads identities) on ID-agnostic labels."""
    if labels in IDENTITY_FREE and model_cfg.use_consistency_loss:
        return dataclasses.replace(model_cfg, use_consistency_loss=False)
    return model_cfg


def _presence(source, sample: dict, spec, cache: dict) -> dict[str, dict[int, int]]:
    """``{view: {global id: boxes in the clip}}`` over the sample's views and frames."""
    key = (sample["scene"], tuple(sample["views"]), tuple(sample["frames"]))
    if key not in cache:
        df = source.objects(sample["scene"])
        df = df[df["view"].isin(sample["views"]) & df["frame"].isin(sample["frames"])
                & (df["width"] >= spec.min_box_side) & (df["height"] >= spec.min_box_side)]
        cache[key] = {str(v): {int(g): int(n) for g, n in grp["global_id"].value_counts().items()}
                      for v, grp in df.groupby("view")}
    return cache[key]


def _single_view(samples, source, spec, seed: int) -> list[dict]:
    out, cache = [], {}
    for s in samples:
        pres = _presence(source, s, spec, cache)
        ref = {g for g, r in zip(s["object_ids"], s["referred"], strict=True) if r}
        for view, vid in zip(s["views"], s["view_ids"], strict=True):
            if ref & set(pres.get(view, {})):
                out.append({**s, "views": [view], "view_ids": [vid], "anonymous_ids": True})
    order = np.random.default_rng(seed).permutation(len(out))
    return [out[i] for i in order]


def _refer_agnostic(samples, source, spec) -> list[dict]:
    out, seen, cache = [], set(), {}
    for s in samples:
        key = (s["scene"], tuple(s["views"]), tuple(s["frames"]))
        if key in seen:
            continue
        seen.add(key)
        count: dict[int, int] = {}
        for per_view in _presence(source, s, spec, cache).values():
            for g, n in per_view.items():
                count[g] = count.get(g, 0) + n
        ids = sorted(count, key=lambda g: (-count[g], g))[:spec.max_objects]
        if ids:
            out.append({**s, "object_ids": ids, "referred": [True] * len(ids),
                        "anonymous_ids": False})
    return out


def relabel(samples: list[dict], labels: str, source, spec, seed: int = 0) -> list[dict]:
    """The descriptors of ``labels`` (:data:`STAGE_LABELS`, module docstring) derived from
    the run's planned referring ``samples`` (:func:`raysys.training.data.plan_samples`)."""
    if labels not in STAGE_LABELS:
        raise ValueError(f"labels must be one of {STAGE_LABELS}, got {labels!r}")
    if labels == "standard":
        return list(samples)
    if labels == "id_agnostic_cross_view":
        return [{**s, "anonymous_ids": True} for s in samples]
    if labels == "id_agnostic_single_view":
        return _single_view(samples, source, spec, seed)
    return _refer_agnostic(samples, source, spec)


def stage_slots(cfg: TrainConfig) -> list[int]:
    """The schedule slot before each stage: epoch ``e`` (1-based) of stage ``i`` is the
    run's slot ``stage_slots(cfg)[i] + e`` (:func:`stage_datasets`)."""
    out, n = [], 0
    for s in cfg.stages:
        out.append(n)
        n += s.epochs
    return out


def stage_datasets(cfg: TrainConfig, samples: list[dict], source, spec, res, done: int = 0
                   ) -> tuple[dict, dict[str, int]]:
    """Per-rank Ray Datasets of the run's epochs after slot ``done`` (the epochs a resumed
    run has still to train), each epoch the samples of its stage's labels, and the samples
    of each kind (``res``: :class:`raysys.runtime.Resources`).

    Raises:
        ValueError: a kind has fewer samples than workers.
    """
    from raysys.training.data import build_train_datasets

    per_kind, counts = {}, {}
    for kind in run_labels(cfg):
        mine = relabel(samples, kind, source, spec, cfg.seed)
        if len(mine) < res.workers:
            raise ValueError(f"{len(mine)} training clips of {kind} labels for {res.workers} "
                             "workers: use fewer workers or more data")
        per_kind[kind], counts[kind] = mine, len(mine)
    schedule = [(first + e, per_kind[cfg.stage_labels(s)])
                for s, first in zip(cfg.stages, stage_slots(cfg), strict=True)
                for e in range(1, s.epochs + 1) if first + e > done]
    return build_train_datasets(schedule, source, spec, res.workers, res.loader_cpus,
                                res.loaders), counts
