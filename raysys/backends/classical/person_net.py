"""A small CNN person detector for the classical tracker, pre-trained on generated scenes.

The classical tracker finds people by splitting foreground blobs with a matched filter.
It misses people who stand still (they fade into the background model), cuts or merges
people whose blobs touch, and mislocalises small far-away people. This module is an
optional, learned replacement for that one step (``ClassicalTrackerConfig.person_detector``):
a CenterNet-style network on the frame at half resolution plus the tracker's own foreground
mask, giving person boxes; the tracker keeps everything else (vehicles, masks from the
foreground inside each box, association, re-propagation).

How the shipped weights (``person_detector="embedded"``,
``raysys/backends/weights/person_net_synth.pt``) were made, the way the concept
trackers a user would plug in (SAM3) are made: supervised on *other* data, class-agnostic
boxes of one category, no identities and no text. Here that other data is generated scenes
of their own seeds (:data:`PRETRAIN_SEEDS`, disjoint from every benchmark a report scores),
with those scenes' person boxes (``raysys pretrain-detector``). The weak-supervision
promise is about the CRMOT data being labelled, which this never sees.

Network: stride-2 stem, dilated 3x3 conv body (receptive field about 100 half-resolution
pixels) at stride 4 of its input, two 1x1 heads: centre heat-map logit and
``(log w, log h, dx, dy)`` in output cells. Loss: CenterNet's penalty-reduced focal loss
on Gaussian centre targets + L1 on size and offset at the centre cells.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "SCALE",
    "STRIDE",
    "PRETRAIN_SEEDS",
    "EMBEDDED_PATH",
    "PersonDetector",
    "build_net",
    "net_input",
    "dense_targets",
    "train_person_net",
    "decode",
    "load_person_detector",
    "save_person_detector",
]

SCALE, STRIDE = 2, 4  # input at 1/SCALE of the frame; output grid STRIDE on that input
PRETRAIN_SEEDS = (2000, 2001)  # generated scenes the shipped weights were trained on
EMBEDDED_PATH = Path(__file__).resolve().parents[1] / "weights" / "person_net_synth.pt"


def build_net(in_channels: int = 4):
    """The detector network (random init): ``x (N, C, H, W) -> (heat (N, 1, h, w),
    reg (N, 4, h, w))`` with ``h, w = H / 4, W / 4``; ``C`` is 4 (RGB + foreground, the
    classical tracker's) or 3 (RGB only, a single-image detector)."""
    from torch import nn

    def block(i, o, s=1, d=1):
        return nn.Sequential(nn.Conv2d(i, o, 3, s, d, dilation=d, bias=False),
                             nn.BatchNorm2d(o), nn.ReLU(inplace=True))

    class PersonNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(block(in_channels, 32, 2), block(32, 32), block(32, 64, 2),
                                      block(64, 64), block(64, 64, d=2), block(64, 64, d=4),
                                      block(64, 64, d=8), block(64, 64))
            self.heat, self.reg = nn.Conv2d(64, 1, 1), nn.Conv2d(64, 4, 1)
            nn.init.constant_(self.heat.bias, -2.19)  # centre prior 0.1

        def forward(self, x):
            f = self.body(x)
            return self.heat(f), self.reg(f)

    return PersonNet()


def net_input(image: np.ndarray, fg_mask: np.ndarray | None) -> np.ndarray:
    """``(H / 2, W / 2, 4)`` float32: RGB in [0, 1] and the foreground fraction; with
    ``fg_mask`` None, ``(H / 2, W / 2, 3)``: RGB only."""
    import cv2

    size = (image.shape[1] // SCALE, image.shape[0] // SCALE)
    rgb = cv2.resize(image, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    if fg_mask is None:
        return rgb
    fg = cv2.resize(fg_mask.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    return np.concatenate([rgb, fg[..., None]], axis=2)


def dense_targets(x: np.ndarray, boxes: np.ndarray):
    """Targets of one input ``x`` (from :func:`net_input`) with its complete person boxes
    ``(M, 4)`` xywh in frame pixels, on the output grid: heat, negative-loss weight, size,
    offset, centre indicator. With a foreground channel, foreground cells that no person
    box covers (vehicles, parked bicycles) get weight 0: neither person nor background is
    asserted there (vehicles are the tracker's shape rule's job). An RGB-only input has no
    such cells: a single-image detector must say "not a person" on its own."""
    h, w = -(-x.shape[0] // STRIDE), -(-x.shape[1] // STRIDE)  # the network's output grid
    heat, wt = np.zeros((h, w), np.float32), np.ones((h, w), np.float32)
    fg = np.zeros((h * STRIDE, w * STRIDE), np.float32)
    if x.shape[-1] > 3:
        fg[: x.shape[0], : x.shape[1]] = x[..., 3]
    fg = fg.reshape(h, STRIDE, w, STRIDE).mean((1, 3)) > 0.2
    cover = np.zeros((h, w), bool)
    size, off = np.zeros((2, h, w), np.float32), np.zeros((2, h, w), np.float32)
    centre = np.zeros((h, w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    for b in np.asarray(boxes, float).reshape(-1, 4) / (SCALE * STRIDE):
        cx, cy = b[0] + b[2] / 2, b[1] + b[3] / 2
        ix, iy = int(cx), int(cy)
        if not (0 <= ix < w and 0 <= iy < h):
            continue
        sx, sy = max(b[2] / 6, 0.5), max(b[3] / 6, 0.5)
        heat = np.maximum(heat, np.exp(-((xx - cx + 0.5) ** 2 / (2 * sx * sx)
                                         + (yy - cy + 0.5) ** 2 / (2 * sy * sy))))
        heat[iy, ix] = 1.0
        size[:, iy, ix] = np.log(np.maximum([b[2], b[3]], 0.25))
        off[:, iy, ix] = [cx - ix, cy - iy]
        centre[iy, ix] = 1.0
        x0, y0 = max(int(b[0]) - 1, 0), max(int(b[1]) - 1, 0)
        cover[y0:int(b[1] + b[3]) + 2, x0:int(b[0] + b[2]) + 2] = True
    wt[fg & ~cover] = 0.0
    return heat, wt, size, off, centre


def train_person_net(inputs: list[np.ndarray], boxes: list[np.ndarray], steps: int,
                     seed: int = 0, batch: int = 8, progress: bool = True):
    """Train a fresh network on ``inputs`` (from :func:`net_input`) and their complete
    person boxes. Returns ``(net in eval mode, per-step losses)``."""
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    if not inputs or len(inputs) != len(boxes):
        raise ValueError(f"need one box array per input, got {len(inputs)} inputs and "
                         f"{len(boxes)} box arrays")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tg = [dense_targets(x, b) for x, b in zip(inputs, boxes, strict=True)]
    X = torch.from_numpy(np.stack(inputs)).permute(0, 3, 1, 2)
    T = [torch.from_numpy(np.stack([t[k] for t in tg])) for k in range(5)]
    net = build_net(X.shape[1])
    opt = torch.optim.AdamW(net.parameters(), 2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps, pct_start=0.1)
    losses: list[float] = []
    bar = tqdm(range(steps), desc="person detector", unit="step", disable=not progress)
    for _ in bar:
        idx = torch.as_tensor(rng.integers(0, len(X), batch))
        x = X[idx]
        heat, wt, size, off, centre = (t[idx] for t in T)
        if rng.random() < 0.5:  # horizontal flip
            x, heat, wt, size, centre = (a.flip(-1) for a in (x, heat, wt, size, centre))
            off = torch.stack([1 - off[:, 0].flip(-1), off[:, 1].flip(-1)], 1) * centre[:, None]
        gain = 0.8 + 0.4 * torch.as_tensor(rng.random((batch, 1, 1, 1)), dtype=x.dtype)
        x = torch.cat([x[:, :3] * gain, x[:, 3:]], 1)  # brightness jitter
        logit, reg = net(x)
        p = torch.sigmoid(logit[:, 0]).clamp(1e-4, 1 - 1e-4)
        pos = heat.eq(1).float()
        focal = -(pos * (1 - p) ** 2 * torch.log(p)
                  + (1 - pos) * wt * (1 - heat) ** 4 * p ** 2 * torch.log(1 - p)).sum()
        l1 = (F.l1_loss(reg[:, :2], size, reduction="none")
              + F.l1_loss(reg[:, 2:], off, reduction="none")).sum(1)
        loss = focal / pos.sum().clamp(min=1) + (l1 * centre).sum() / centre.sum().clamp(min=1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if len(losses) % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
    return net.eval(), losses


def decode(heat, reg, threshold: float):
    """Per frame ``(boxes (n, 4) xywh frame pixels, scores (n,))`` of the 3x3 peaks of the
    heat-map at or above ``threshold``."""
    import torch
    import torch.nn.functional as F

    p = torch.sigmoid(heat)
    p = (p * (F.max_pool2d(p, 3, 1, 1) == p))[:, 0].numpy()
    reg = reg.numpy()
    out = []
    for k in range(len(p)):
        ys, xs = np.nonzero(p[k] >= threshold)
        w, h = np.exp(reg[k, 0, ys, xs]), np.exp(reg[k, 1, ys, xs])
        cx, cy = xs + reg[k, 2, ys, xs], ys + reg[k, 3, ys, xs]
        boxes = np.column_stack([cx - w / 2, cy - h / 2, w, h]) * (SCALE * STRIDE)
        out.append((boxes.astype(float).reshape(-1, 4), p[k][ys, xs].astype(float)))
    return out


@dataclass
class PersonDetector:
    """A loaded detector: :meth:`detect` maps frames and foreground masks to boxes."""

    net: object
    threshold: float
    source: str

    @property
    def uses_foreground(self) -> bool:
        """Whether the net reads a foreground channel (False: an RGB-only detector)."""
        return int(self.net.body[0][0].in_channels) > 3

    def detect(self, images: list[np.ndarray], fg_masks: list[np.ndarray]):
        """Per frame ``(boxes (n, 4) xywh, scores (n,))``; an RGB-only detector ignores
        ``fg_masks``."""
        import torch

        if not images:
            return []
        if not self.uses_foreground:
            fg_masks = [None] * len(images)
        x = np.stack([net_input(im, m) for im, m in zip(images, fg_masks, strict=True)])
        with torch.no_grad():
            heat, reg = self.net(torch.from_numpy(x).permute(0, 3, 1, 2))
        return decode(heat, reg, self.threshold)


def save_person_detector(net, path: Path, meta: dict) -> Path:
    """Write the weights and how they were made (``meta``) to ``path``."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"state_dict": net.state_dict(), "scale": SCALE, "stride": STRIDE,
                "inputs": int(net.body[0][0].in_channels), "meta": dict(meta)}, tmp)
    tmp.replace(path)
    return path


@functools.lru_cache(maxsize=4)
def _load_net(path: str):
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if (ckpt.get("scale"), ckpt.get("stride")) != (SCALE, STRIDE):
        raise ValueError(f"{path}: a person detector for input scale {ckpt.get('scale')} / "
                         f"stride {ckpt.get('stride')}; this version uses {SCALE} / {STRIDE}")
    net = build_net(int(ckpt.get("inputs", 4)))  # files before the RGB-only option: 4
    net.load_state_dict(ckpt["state_dict"])
    return net.eval()


def load_person_detector(spec: str, threshold: float) -> PersonDetector:
    """``spec``: ``"embedded"`` (the shipped weights) or the path of a ``.pt`` written by
    ``raysys pretrain-detector``."""
    path = EMBEDDED_PATH if spec == "embedded" else Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"person detector weights not found: {path}. Make them with `raysys "
            f"pretrain-detector --out DIR` (writes DIR/person_net.pt) and pass that file, or "
            f"use person_detector='embedded'")
    return PersonDetector(_load_net(str(path)), threshold, str(path))
