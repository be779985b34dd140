"""Pre-training the classical tracker's optional person detector on generated scenes.

The stand-in for a pretrained concept detector (SAM3's detector is trained on human
annotations): :mod:`raysys.backends.classical.person_net`, trained with complete
person boxes of generated scenes of its own seeds
(:data:`~raysys.backends.classical.person_net.PRETRAIN_SEEDS`, disjoint from every
benchmark a report scores), every domain and split of them. Boxes only: no identities and
no text. The package ships the result as ``person_detector="embedded"``.

With ``rgb_only`` the detector reads the frame alone, without the classical tracker's
foreground channel: a single-image person detector, the localization half of the
Candidate Generator's APTM analogue (``CandidateGeneratorConfig.proposal_net``; the package
ships it as ``person_net_rgb_synth.pt``, ``proposal_net="embedded"``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

__all__ = ["WEIGHTS_FILE", "pretraining_frames", "pretrain_person_detector"]

WEIGHTS_FILE = {False: "person_net.pt", True: "person_net_rgb.pt"}  # by rgb_only


def pretraining_frames(data: Path, progress: bool = True, rgb_only: bool = False):
    """``(inputs, boxes)`` of every frame of every view of a generated benchmark: detector
    inputs (frame + the classical tracker's foreground; the frame alone with ``rgb_only``)
    and the frame's person boxes."""
    from tqdm.auto import tqdm

    from raysys.backends.classical.config import ClassicalTrackerConfig
    from raysys.backends.classical.foreground import Foreground
    from raysys.backends.classical.person_net import net_input
    from raysys.io.dataset import DatasetLayout
    from raysys.io.gt import load_scene_tracks
    from raysys.io.video import VideoFrames

    cfg, units = ClassicalTrackerConfig(), []
    for domain in ("In-domain", "Cross-domain"):
        for split in ("train", "test"):
            if not (Path(data) / domain / "images" / split).is_dir():
                continue
            layout = DatasetLayout(Path(data), domain, split)
            for vd in sorted(p for p in layout.image_root.iterdir() if p.is_dir()):
                scene, view = vd.name.rsplit("_", 1)
                units.append((layout, scene, view, vd))
    if not units:
        raise FileNotFoundError(f"no generated videos under {data} (make them with "
                                f"`raysys synth --out {data}`)")
    inputs, boxes, gt_cache = [], [], {}
    for layout, scene, view, vd in tqdm(units, desc="detector data", unit="video",
                                        disable=not progress):
        key = (str(layout.image_root), scene)
        if key not in gt_cache:
            gt_cache = {key: load_scene_tracks(layout, scene, "person")}
        gt = gt_cache[key].get(view, np.zeros((0, 6)))
        vid = VideoFrames(scene, view, vd)
        fg = None if rgb_only else Foreground(vid, cfg)
        for i in range(len(vid)):
            f = int(vid.frame_numbers[i])
            inputs.append(net_input(np.asarray(vid[i]), None if fg is None else fg.mask(i)))
            boxes.append(gt[gt[:, 0] == f][:, 2:6].astype(float))
    return inputs, boxes


def pretrain_person_detector(out: Path, data: list[Path], steps: int = 3000, seed: int = 0,
                             progress: bool = True, rgb_only: bool = False) -> dict:
    """Train on ``data`` (generated benchmarks) and write ``out/person_net.pt``
    (``out/person_net_rgb.pt`` with ``rgb_only``); returns its meta (data, frames, steps,
    loss, seconds)."""
    from raysys.backends.classical.person_net import save_person_detector, train_person_net

    t0 = time.perf_counter()
    inputs, boxes = [], []
    for d in data:
        x, b = pretraining_frames(d, progress, rgb_only)
        inputs += x
        boxes += b
    net, losses = train_person_net(inputs, boxes, steps, seed=seed, progress=progress)
    meta = {"data": [str(d) for d in data], "inputs": "rgb" if rgb_only else "rgb+foreground",
            "frames": len(inputs),
            "boxes": int(sum(len(b) for b in boxes)), "steps": steps, "seed": seed,
            "loss_first": round(losses[0], 4),
            "loss_last50": round(float(np.mean(losses[-50:])), 4),
            "seconds": round(time.perf_counter() - t0, 1)}
    save_person_detector(net, Path(out) / WEIGHTS_FILE[rgb_only], meta)
    return meta
