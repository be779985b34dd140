"""Pre-training the embedded OSNet ReID model on person crops of generated scenes.

The stand-in for a ReID-trained OSNet (the paper's Stage 1 ReID model, §3.2.1; CGCT is
built upon an OSNet too, App. C.4, which raysys's CGCT does not use yet: issue #22):
torchreid's ``osnet_x0_25`` (the real architecture
at a quarter width), trained from random init on GT person crops of generated scenes of its
own seeds (:data:`PRETRAIN_SEEDS`, disjoint from every seed a report scores and from the
other shipped weights' seeds), every domain and split of them. Identities within a scene
are the labels: supervised pre-training of a foundation part on other data, as OSNet is
trained on Market-1501; the CRMOT training data stays weak.

Training: P identities x K crops per batch, drawn across the scene's views, softmax
cross-entropy (label smoothing 0.1) plus a batch-hard triplet loss (margin 0.3); flips and
a per-crop colour gain (the cameras' colour responses differ). :func:`evaluate_reid` scores
cross-view retrieval of tracklets (mean embedding of a person's crops in one view, matched
against the other views of its scene), the task Stage 1's association and CGCT need.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["PRETRAIN_SEEDS", "EMBEDDED_NAME", "EMBEDDED_INPUT", "CropSet", "person_crops",
           "train_reid", "evaluate_reid", "save_reid", "pretrain_reid"]

PRETRAIN_SEEDS = (5000, 5001)  # generated benchmarks the shipped weights learn from
EMBEDDED_NAME = "osnet_x0_25"
EMBEDDED_INPUT = (128, 64)  # (height, width) fed to the network


@dataclass
class CropSet:
    """Person crops resized to one input size, with their identity, view and scene keys."""

    crops: np.ndarray  # (N, H, W, 3) uint8
    ids: np.ndarray  # (N,) int: identity, unique over every scene of the set
    views: np.ndarray  # (N,) int: view index within its scene
    scenes: np.ndarray  # (N,) int: scene index

    def __len__(self) -> int:
        return len(self.ids)


def _resize(crop: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(crop).resize((size[1], size[0]), Image.BILINEAR))


def person_crops(data: list[Path], size: tuple[int, int] = EMBEDDED_INPUT, every: int = 4,
                 min_height: int = 24, progress: bool = True,
                 splits: tuple[str, ...] = ("train", "test")) -> CropSet:
    """GT person crops of every ``every``-th frame of every view, scene and domain of the
    ``splits`` of the generated benchmarks ``data`` (boxes under ``min_height`` px left
    out)."""
    from tqdm.auto import tqdm

    from raysys.io.dataset import DatasetLayout
    from raysys.io.gt import load_scene_tracks
    from raysys.io.video import VideoFrames

    units = []
    for root in data:
        for domain in ("In-domain", "Cross-domain"):
            for split in splits:
                if not (Path(root) / domain / "images" / split).is_dir():
                    continue
                layout = DatasetLayout(Path(root), domain, split)
                scenes = sorted({p.name.rsplit("_", 1)[0]
                                 for p in layout.image_root.iterdir() if p.is_dir()})
                units += [(layout, s) for s in scenes]
    if not units:
        raise FileNotFoundError(f"no generated videos under {data} (make them with "
                                "`raysys synth --out DATA --seed 5000`)")
    crops, ids, views, scenes = [], [], [], []
    for si, (layout, scene) in enumerate(tqdm(units, desc="reid crops", unit="scene",
                                              disable=not progress)):
        for vi, (view, rows) in enumerate(load_scene_tracks(layout, scene, "person").items()):
            vid = VideoFrames(scene, view, layout.image_root / f"{scene}_{view}")
            for i in range(0, len(vid), every):
                sel = rows[rows[:, 0] == int(vid.frame_numbers[i])]
                if not len(sel):
                    continue
                img = np.asarray(vid[i])
                h, w = img.shape[:2]
                for _, pid, x, y, bw, bh in sel:
                    x1, y1 = max(int(x), 0), max(int(y), 0)
                    x2, y2 = min(int(x + bw), w), min(int(y + bh), h)
                    if y2 - y1 < min_height or x2 - x1 < 4:
                        continue
                    crops.append(_resize(img[y1:y2, x1:x2], size))
                    ids.append(si * 100_000 + int(pid))
                    views.append(vi)
                    scenes.append(si)
    if not crops:
        raise ValueError(f"no person crops of at least {min_height} px in {data}")
    _, dense = np.unique(np.asarray(ids), return_inverse=True)
    return CropSet(np.stack(crops), dense.astype(np.int64), np.asarray(views, np.int64),
                   np.asarray(scenes, np.int64))


def _batches(cs: CropSet, p: int, k: int, rng: np.random.Generator):
    """Endless P x K batches: P identities with at least two crops, K crops each (with
    replacement when an identity has fewer), from several views where it has them."""
    by_id = defaultdict(list)
    for i, pid in enumerate(cs.ids):
        by_id[int(pid)].append(i)
    pool = [pid for pid, idx in by_id.items() if len(idx) >= 2]
    while True:
        chosen = rng.choice(pool, size=min(p, len(pool)), replace=False)
        idx = [rng.choice(by_id[pid], size=k, replace=len(by_id[pid]) < k) for pid in chosen]
        yield np.concatenate(idx)


def _to_input(crops, rng: np.random.Generator | None, device):
    """uint8 crops -> ImageNet-normalised float tensor; with ``rng``: flips and colour gain."""
    import torch

    x = torch.as_tensor(crops, device=device).permute(0, 3, 1, 2).float() / 255.0
    if rng is not None:
        n = x.shape[0]
        flip = torch.as_tensor(rng.random(n) < 0.5, device=device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        gain = torch.as_tensor(rng.uniform(0.8, 1.2, (n, 3, 1, 1)), device=device).float()
        x = (x * gain * float(rng.uniform(0.85, 1.15))).clamp(0, 1)
    mean = torch.tensor((0.485, 0.456, 0.406), device=device).view(1, 3, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225), device=device).view(1, 3, 1, 1)
    return (x - mean) / std


def _batch_hard_triplet(f, labels, margin: float):
    import torch

    f = torch.nn.functional.normalize(f, dim=1)
    d = torch.cdist(f, f)
    same = labels[:, None] == labels[None, :]
    hardest_pos = (d * same).max(1).values
    hardest_neg = (d + same * 1e4).min(1).values
    return torch.relu(hardest_pos - hardest_neg + margin).mean()


def train_reid(cs: CropSet, steps: int = 1000, name: str = EMBEDDED_NAME, p: int = 16,
               k: int = 4, lr: float = 3e-3, seed: int = 0, device: str = "cpu",
               progress: bool = True):
    """Train a torchreid ``name`` from random init on ``cs``; returns (model, losses).
    ``device="cuda"`` trains under bf16 autocast."""
    import warnings

    import torch
    from tqdm.auto import tqdm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchreid.reid.models import build_model
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    num_ids = int(cs.ids.max()) + 1
    model = build_model(name, num_classes=num_ids, loss="triplet", pretrained=False,
                        use_gpu=False).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=5e-4)
    warm = max(1, steps // 20)  # linear warm-up, then cosine to 0
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / warm) * 0.5 * (
        1 + np.cos(np.pi * min(1.0, i / max(1, steps)))))
    ce = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    losses, batches = [], _batches(cs, p, k, rng)
    for _ in tqdm(range(steps), desc="reid pretrain", unit="step", disable=not progress):
        idx = next(batches)
        x = _to_input(cs.crops[idx], rng, device)
        y = torch.as_tensor(cs.ids[idx], device=device)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16,
                            enabled=str(device).startswith("cuda")):
            logits, feats = model(x)
            loss = ce(logits.float(), y) + _batch_hard_triplet(feats.float(), y, 0.3)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return model.eval(), losses


def _tracklets(cs: CropSet, emb: np.ndarray):
    """Mean L2-normalised embedding per (scene, view, identity)."""
    keys = np.stack([cs.scenes, cs.views, cs.ids], 1)
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    sums = np.zeros((len(uniq), emb.shape[1]), np.float64)
    np.add.at(sums, inv.ravel(), emb)
    sums /= np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return uniq, sums


def evaluate_reid(cs: CropSet, embed) -> dict:
    """Cross-view tracklet retrieval with ``embed(crops (n, H, W, 3) uint8) -> (n, d)``:
    every (scene, view, person) tracklet queries the tracklets of its scene's other views;
    rank-1 and mAP over queries whose person is in that gallery, and the mean cosine of
    same-person minus different-person pairs (the margin the issue's diagnostics name)."""
    emb = np.concatenate([embed(cs.crops[s:s + 256]) for s in range(0, len(cs), 256)])
    keys, t = _tracklets(cs, emb)
    r1, aps, margins = [], [], []
    for i, (scene, view, pid) in enumerate(keys):
        g = np.flatnonzero((keys[:, 0] == scene) & (keys[:, 1] != view))
        match = keys[g, 2] == pid
        if not match.any() or match.all():
            continue
        sim = t[g] @ t[i]
        order = np.argsort(-sim)
        hits = match[order]
        r1.append(float(hits[0]))
        ranks = np.flatnonzero(hits) + 1
        aps.append(float(np.mean(np.arange(1, len(ranks) + 1) / ranks)))
        margins.append(float(sim[match].mean() - sim[~match].mean()))
    return {"queries": len(r1), "rank1": round(float(np.mean(r1)), 4),
            "mAP": round(float(np.mean(aps)), 4), "margin": round(float(np.mean(margins)), 4),
            "crops": len(cs), "identities": int(len(np.unique(cs.ids)))}


def save_reid(model, path: Path, name: str, input_size: tuple[int, int], meta: dict) -> Path:
    """Write the features' weights (classifier dropped: it names the training identities)
    with the architecture and input size; loads with ``torch.load(weights_only=True)``."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
          if not k.startswith("classifier.")}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"arch": name, "input_size": list(input_size), "state_dict": sd,
                "meta": dict(meta)}, tmp)
    tmp.replace(path)
    return path


def pretrain_reid(out: Path, data: list[Path], steps: int = 1000, seed: int = 0,
                  device: str = "cpu", heldout: list[Path] | None = None,
                  progress: bool = True) -> dict:
    """Train on ``data``, score cross-view retrieval on ``heldout`` (if given) against the
    weight-free ``stripes`` descriptor, write ``out/osnet_reid.pt``; returns its meta."""
    from raysys.backends.reid import OSNetReID, StripesConfig, StripesReID

    t0 = time.perf_counter()
    cs = person_crops(data, progress=progress)
    model, losses = train_reid(cs, steps=steps, seed=seed, device=device, progress=progress)
    meta = {"data": [str(d) for d in data], "crops": len(cs),
            "identities": int(cs.ids.max()) + 1, "steps": steps, "seed": seed,
            "device": device, "loss_first": round(losses[0], 4),
            "loss_last50": round(float(np.mean(losses[-50:])), 4),
            "seconds": round(time.perf_counter() - t0, 1)}
    path = save_reid(model, Path(out) / "osnet_reid.pt", EMBEDDED_NAME, EMBEDDED_INPUT, meta)
    if heldout:
        hs = person_crops(heldout, progress=progress)
        osnet = OSNetReID(EMBEDDED_NAME, checkpoint=path, input_size=EMBEDDED_INPUT)
        stripes = StripesReID(StripesConfig())
        meta["heldout"] = {"data": [str(d) for d in heldout],
                           "osnet": evaluate_reid(hs, lambda c: osnet.embed(list(c))),
                           "stripes": evaluate_reid(hs, lambda c: stripes.embed(list(c)))}
        save_reid(model, path, EMBEDDED_NAME, EMBEDDED_INPUT, meta)
    return meta
