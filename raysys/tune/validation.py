"""The sweep's validation metric, weak-safe: CVR-IDF1 on held-out frames of the labels.

Weak supervision has no GT to validate on, so the targets are Stage 1's pseudo labels
(``<labels>/crtrack``, in the CRTrack layout) of frames that training never sees:

* :func:`plan_holdout` holds out the last ``frac`` of every scene's synchronised frames (a
  time split; or whole ``scenes``);
* :class:`HeldOutSource` is the training source without them (clips are windows of a
  scene's remaining frames, so no training clip reaches into the held-out part);
* :class:`Validator` runs on rank 0 after each epoch (the trainer's ``validate`` hook):
  it calibrates the tracker's thresholds on a few clips of the training side that the run
  does not train on (past its ``max_samples``; :mod:`raysys.training.calibrate`), tracks
  each validation expression over the held-out frames only
  (:func:`raysys.tracking.run.track_scene`, a scene's expressions in one pass, on a
  folder of links to those frames) and
  scores it with the project's evaluator (:mod:`raysys.eval.crtrack_eval`), in percent.

``oracle=True`` (``raysys tune --val-gt DATA``) reads the dataset's GT of the same frames
instead: the fully supervised setting; every output of such a sweep says "oracle".
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from raysys.io import crtrack
from raysys.io.dataset import DatasetLayout
from raysys.training.sources import PseudoLabelSource

__all__ = ["HoldOut", "HeldOutSource", "Validator", "plan_holdout", "link_frames",
           "METRIC"]

METRIC = "val_cvr_idf1"  # the reported metric (percent, like the evaluator's tables)


@dataclass(frozen=True)
class HoldOut:
    frames: dict[str, tuple[int, ...]]  # scene -> held-out synchronised frame numbers
    scenes: tuple[str, ...] = ()  # scenes held out whole (their frames are in `frames`)

    def to_json(self) -> dict:
        return {"scenes": list(self.scenes),
                "frames": {s: [min(f), max(f), len(f)] for s, f in self.frames.items() if f}}


def plan_holdout(source, frac: float = 0.25, scenes: tuple[str, ...] = ()) -> HoldOut:
    """The last ``frac`` of each scene's frames (at least one, never all), or every frame
    of the ``scenes`` named."""
    if not 0.0 < frac < 1.0:
        raise ValueError(f"the held-out fraction must be in (0, 1), got {frac}")
    all_scenes = sorted({e["scene"] for e in source.expressions()})
    unknown = sorted(set(scenes) - set(all_scenes))
    if unknown or (scenes and set(scenes) >= set(all_scenes)):
        raise ValueError(f"held-out scenes {list(scenes)}: need a strict subset of the labels' "
                         f"scenes {all_scenes}")
    out = {}
    for s in all_scenes:
        nums = source.frame_numbers(s)
        if s in scenes:
            out[s] = tuple(nums)
        elif len(nums) >= 2:
            k = min(len(nums) - 1, max(1, math.ceil(frac * len(nums))))
            out[s] = tuple(nums[-k:])
    return HoldOut(out, tuple(scenes))


class HeldOutSource(PseudoLabelSource):
    """Pseudo labels without the held-out frames and scenes (the training side)."""

    def __init__(self, labels, layout: DatasetLayout, holdout: HoldOut) -> None:
        super().__init__(labels, layout)
        self.holdout = holdout

    def _extra_state(self) -> dict:
        return {**super()._extra_state(), "holdout": self.holdout}

    def _load_expressions(self) -> list[dict]:
        return [e for e in super()._load_expressions() if e["scene"] not in self.holdout.scenes]

    def frame_numbers(self, scene: str) -> list[int]:
        held = set(self.holdout.frames.get(scene, ()))
        return [f for f in super().frame_numbers(scene) if f not in held]

    def _load_objects(self, scene: str):
        df = super()._load_objects(scene)
        return df[~df["frame"].isin(self.holdout.frames.get(scene, ()))]


def link_frames(layout: DatasetLayout, holdout: HoldOut, out: str | os.PathLike,
                max_frames: int | None = None) -> DatasetLayout:
    """A dataset folder under ``out`` holding links to the held-out frames only (the first
    ``max_frames`` of each scene), the same domain and split: what the validation tracks."""
    root = Path(out)
    val = DatasetLayout(root, layout.domain, layout.split)
    views = crtrack.list_image_views(layout.image_root)
    for scene, frames in holdout.frames.items():
        keep = set(frames[:max_frames])
        for v in views.get(scene, []):
            d = val.view_dir(scene, v)
            d.mkdir(parents=True, exist_ok=True)
            for f, path in crtrack.list_frames(layout.view_dir(scene, v)):
                link = d / Path(path).name
                if f in keep and not link.exists():
                    link.symlink_to(Path(path).resolve())
    return val


@dataclass
class Validator:
    """``validate(model, row) -> {METRIC, ...}``, the trainer's hook (picklable: it is
    shipped to the training workers; clips are decoded there, on first use)."""

    val_layout: DatasetLayout  # links to the held-out frames (:func:`link_frames`)
    target_root: Path  # CRTrack targets: <labels>/crtrack, or the GT root (oracle)
    source: HeldOutSource  # the training side: clips that calibrate the thresholds
    spec: object  # raysys.training.data.ClipSpec of the run
    track: object  # raysys.tracking.config.TrackConfig
    max_expressions: int | None = None  # validation expressions (None: all with targets)
    calib_clips: int = 8  # clips that calibrate the tracker's thresholds
    train_clips: int | None = None  # the run's max_samples: calibrate on the clips after
    #   them, which the run does not train on (as `raysys train` calibrates its final model)
    epoch_offset: int = 0  # epochs of a shared prefix run before this trial's first
    oracle: bool = False
    seed: int = 0  # the run's: its clip order
    _clips: list | None = field(default=None, repr=False)

    def units(self) -> list[tuple]:
        """(TrackUnit, target rows per view) of the validation expressions: those with a
        target box in the held-out frames (rows restricted to those frames)."""
        from raysys.tracking.run import TrackUnit

        views = crtrack.list_image_views(self.val_layout.image_root)
        out = []
        for e in crtrack.list_expressions(self.target_root):
            if e.scene not in views:
                continue
            frames = {f for v in views[e.scene]
                      for f, _ in crtrack.list_frames(self.val_layout.view_dir(e.scene, v))}
            rows = {v: r[np.isin(r[:, 0], list(frames))][:, :6]
                    for v, r in crtrack.read_expression_gt(self.target_root, e.name).items()}
            if sum(len(r) for r in rows.values()):
                out.append((TrackUnit(e.name, e.scene, e.text, tuple(views[e.scene])), rows))
        return out[:self.max_expressions]

    def _calibrate(self, model) -> dict:
        from raysys.training.calibrate import calibrate_thresholds
        from raysys.training.data import load_clip, plan_samples

        if self._clips is None:  # the trainer's order (seed); those after its max_samples
            every = plan_samples(self.source, self.spec, None, self.seed)
            rest = every[self.train_clips:] if self.train_clips is not None else []
            self._clips = [load_clip(self.source, s, self.spec)
                           for s in (rest or every)[:self.calib_clips]]
        return calibrate_thresholds(model, self._clips)

    def __call__(self, model, row: dict) -> dict:
        """Calibrate, track the held-out frames, score: ``{METRIC, val_cvr_ma, val_n,
        global_epoch, val_seconds}`` (percent)."""
        import time

        import torch

        from raysys.eval.crtrack_eval import aggregate, evaluate_expression
        from raysys.tracking.run import plan_scene_passes, track_scene

        t0 = time.perf_counter()
        before = getattr(model, "calibration", None)
        model.eval()
        with torch.no_grad():
            model.calibration = self._calibrate(model)
            results, boxes = {}, 0
            units = self.units()
            targets = {u.name: t for u, t in units}
            for scene in plan_scene_passes([u for u, _ in units], 16):  # one pass per scene
                preds, _ = track_scene(model, self.val_layout, scene, self.track)
                for name, pred in preds.items():
                    results[name] = evaluate_expression(targets[name], pred)
                    boxes += sum(len(p) for p in pred.values())
        model.calibration = before
        model.train()
        a = aggregate(results)["All"]
        return {METRIC: a["CVR-IDF1"] or 0.0, "val_cvr_ma": a["CVR-MA"] or 0.0,  # percent
                "val_n": a["n"], "val_pred_boxes": boxes, "val_oracle": self.oracle,
                "global_epoch": self.epoch_offset + int(row["epoch"]),
                "val_seconds": round(time.perf_counter() - t0, 2)}
