"""A small CNN reading a person's attributes from one crop (the embedded describer's model).

The paper's describer is an MLLM (Qwen3-VL-8B, §3.2.2) prompted for "attribute-centric
descriptions ... color, clothing, and accessories". This is its small stand-in: one
network, one softmax head per attribute that the referring expressions name (:data:`HEADS`:
coat, trousers and shoes colour, headwear and its colour, bag and its colour, bicycle),
each with its "none" class where the attribute can be absent, so that a trajectory's
averaged probabilities say how sure it is (:mod:`raysys.backends.attribute_describer`).

How the shipped weights (``raysys/backends/weights/attribute_net_synth.pt``) were made,
like the person detector's (:mod:`raysys.backends.classical.person_net`): supervised
pre-training of a foundation part on *other* data, GT person crops of generated scenes of
their own seeds (:data:`PRETRAIN_SEEDS`, disjoint from every benchmark a report scores),
``raysys pretrain-describer``. The CRMOT data being labelled is never seen.

Input: the crop resized to ``INPUT_H x INPUT_W`` (RGB in [0, 1]), its mask as a 4th
channel (all ones when there is none), and the colour statistics of the whole frame the
crop was cut from (:func:`frame_context`, :data:`CONTEXT_DIM` numbers, each a constant
plane). The frame is what tells a white coat under a dim, warm camera from a light gray
one under a bright, cool camera: an MLLM sees the whole image, a crop alone does not.
Without a frame (``None``) the context is zeros, which training also shows the net.
Network: four 3x3 conv blocks (three stride 2), a ``4 x 2`` adaptive average pool that
keeps where things are (head, coat, trousers), one hidden layer, one linear head per
attribute.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from raysys.backends.colours import COLOUR_NAMES

__all__ = [
    "HEADS",
    "CONDITIONAL",
    "INPUT_H",
    "INPUT_W",
    "CONTEXT_DIM",
    "PRETRAIN_SEEDS",
    "PRETRAIN_FRAMES",
    "EMBEDDED_PATH",
    "build_net",
    "net_input",
    "frame_context",
    "labels_of",
    "predict",
    "train_attribute_net",
    "save_attribute_net",
    "load_attribute_net",
]

INPUT_H, INPUT_W = 64, 32
CONTEXT_DIM = 18  # frame colour statistics: 5 percentiles and the mean of R, G, B
# generated scenes of the shipped weights: many people matter more than many frames
PRETRAIN_SEEDS = tuple(range(4010, 4081))
PRETRAIN_FRAMES = 16
EMBEDDED_PATH = Path(__file__).resolve().parent / "weights" / "attribute_net_synth.pt"

# attribute -> classes; "none" is a class where the attribute can be absent
HEADS: dict[str, tuple[str, ...]] = {
    "top": COLOUR_NAMES,
    "bottom": COLOUR_NAMES,
    "shoes": COLOUR_NAMES,
    "headwear": ("none", "cap", "helmet"),
    "headwear_colour": COLOUR_NAMES,
    "bag": ("none", "backpack", "handbag"),
    "bag_colour": COLOUR_NAMES,
    "bicycle": ("no", "yes"),
}
# a colour head is trained (and read) only where its object is there
CONDITIONAL = {"headwear_colour": "headwear", "bag_colour": "bag"}


def build_net(n_hidden: int = 192):
    """The network (random init): ``x (N, 4, INPUT_H, INPUT_W)`` and the frame context
    ``ctx (N, CONTEXT_DIM)`` in [0, 1] (None: zeros) ``-> {head: logits (N, K)}``."""
    import torch
    from torch import nn

    def block(i, o, s=1):
        return nn.Sequential(nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o),
                             nn.ReLU(inplace=True))

    class AttributeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(block(4 + CONTEXT_DIM, 24, 2), block(24, 48),
                                      block(48, 64, 2), block(64, 96, 2),
                                      nn.AdaptiveAvgPool2d((4, 2)), nn.Flatten(), nn.Dropout(0.2),
                                      nn.Linear(96 * 8, n_hidden),
                                      nn.ReLU(inplace=True))
            self.heads = nn.ModuleDict({k: nn.Linear(n_hidden, len(v))
                                        for k, v in HEADS.items()})

        def forward(self, x: torch.Tensor, ctx: torch.Tensor | None = None
                    ) -> dict[str, torch.Tensor]:
            if ctx is None:
                ctx = x.new_zeros(x.shape[0], CONTEXT_DIM)
            planes = ctx.to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])
            f = self.body(torch.cat([x, planes], 1))
            return {k: h(f) for k, h in self.heads.items()}

    return AttributeNet()


def net_input(crop: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """``(INPUT_H, INPUT_W, 4)`` uint8: the RGB crop resized and its mask (255 = object;
    all 255 without a mask)."""
    import cv2

    rgb = cv2.resize(np.ascontiguousarray(crop), (INPUT_W, INPUT_H),
                     interpolation=cv2.INTER_AREA)
    if mask is None or not np.asarray(mask).any():
        m = np.full((INPUT_H, INPUT_W), 255, np.uint8)
    else:
        m = cv2.resize(np.asarray(mask, np.uint8) * 255, (INPUT_W, INPUT_H),
                       interpolation=cv2.INTER_AREA)
    return np.concatenate([rgb, m[..., None]], axis=2)


def frame_context(frame: np.ndarray) -> np.ndarray:
    """``(CONTEXT_DIM,)`` float32 in [0, 1]: the 5th, 25th, 50th, 75th and 95th percentile
    and the mean of each RGB channel of the whole frame (at 80 x 45), the camera's exposure
    and white balance as far as the scene shows them."""
    import cv2

    small = cv2.resize(np.ascontiguousarray(frame), (80, 45), interpolation=cv2.INTER_AREA)
    px = small.reshape(-1, 3).astype(np.float32)
    stats = np.concatenate([np.percentile(px, [5, 25, 50, 75, 95], axis=0).ravel(),
                            px.mean(0)])
    return (stats / 255.0).astype(np.float32)


def labels_of(attrs: dict) -> np.ndarray:
    """The generator's attributes of one person -> ``(len(HEADS),)`` class indices, -1
    where a head is not trained (the colour of an absent headwear or bag)."""
    out = []
    for head, classes in HEADS.items():
        if head == "bicycle":
            out.append(int(bool(attrs["bicycle"])))
            continue
        v = attrs.get(head)
        parent = CONDITIONAL.get(head)
        if parent is not None and attrs.get(parent, "none") == "none":
            v = None
        out.append(classes.index(v) if v in classes else -1)
    return np.array(out, np.int64)


def _to_tensor(x: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float() / 255.0


def predict(net, inputs: np.ndarray, contexts: np.ndarray | None = None, batch: int = 256
            ) -> dict[str, np.ndarray]:
    """Per-crop softmax probabilities: ``inputs (N, H, W, 4)`` uint8 from :func:`net_input`
    and ``contexts (N, CONTEXT_DIM)`` from :func:`frame_context` (None: no frames)
    -> ``{head: (N, K)}``."""
    import torch

    if contexts is not None and np.shape(contexts) != (len(inputs), CONTEXT_DIM):
        raise ValueError(f"need one ({CONTEXT_DIM},) frame context per crop, got shape "
                         f"{np.shape(contexts)} for {len(inputs)} crops")
    out: dict[str, list[np.ndarray]] = {k: [] for k in HEADS}
    with torch.no_grad():
        for i in range(0, len(inputs), batch):
            ctx = None if contexts is None else \
                torch.as_tensor(np.asarray(contexts[i:i + batch], np.float32))
            logits = net(_to_tensor(inputs[i:i + batch]), ctx)
            for k, v in logits.items():
                out[k].append(torch.softmax(v.float(), 1).numpy())
    return {k: (np.concatenate(v) if v else np.zeros((0, len(HEADS[k])), np.float32))
            for k, v in out.items()}


def _augment(x, ctx, rng: np.random.Generator):
    """Flip, per-crop colour gain and brightness (the frame context gets the same: it is
    the same camera), mask dropout (tracker masks are rough or missing), context dropout
    (a caller without frames): ``x (B, 4, H, W)``, ``ctx (B, CONTEXT_DIM)`` in [0, 1]."""
    import torch

    b = x.shape[0]
    flip = torch.as_tensor(rng.random(b) < 0.5)
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    gain = torch.as_tensor(1 + rng.uniform(-0.12, 0.12, (b, 3, 1, 1)), dtype=x.dtype)
    bright = torch.as_tensor(rng.uniform(0.8, 1.2, (b, 1, 1, 1)), dtype=x.dtype)
    rgb = (x[:, :3] * gain * bright).clamp(0, 1)
    drop = torch.as_tensor(rng.random(b) < 0.3)[:, None, None, None]
    m = torch.where(drop, torch.ones_like(x[:, 3:]), x[:, 3:])
    g = (gain * bright)[:, None, :, 0, 0]  # (B, 1, 3)
    ctx = (ctx.view(b, -1, 3) * g).clamp(0, 1).view(b, -1)
    ctx = torch.where(torch.as_tensor(rng.random(b) < 0.15)[:, None], 0.0, ctx)
    return torch.cat([rgb, m], 1), ctx


def train_attribute_net(inputs: np.ndarray, labels: np.ndarray, contexts: np.ndarray,
                        steps: int, seed: int = 0, batch: int = 48, device: str = "cpu",
                        progress: bool = True):
    """Train a fresh network on ``inputs (N, H, W, 4)`` uint8, their frame ``contexts (N,
    CONTEXT_DIM)`` and ``labels (N, len(HEADS))`` (-1: not trained); cross-entropy summed
    over heads. ``device="cuda"`` runs in bf16 autocast. Returns ``(net in eval mode on the
    CPU, per-step losses)``."""
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    if len(inputs) == 0 or not len(inputs) == len(labels) == len(contexts):
        raise ValueError(f"need one label row and one context per input, got {len(inputs)} "
                         f"inputs, {len(labels)} label rows, {len(contexts)} contexts")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    dev = torch.device(device)
    X = torch.from_numpy(np.ascontiguousarray(inputs)).to(dev)
    Y = torch.from_numpy(np.asarray(labels, np.int64)).to(dev)
    C = torch.from_numpy(np.asarray(contexts, np.float32)).to(dev)
    net = build_net().to(dev)
    opt = torch.optim.AdamW(net.parameters(), 2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 4e-3, total_steps=steps, pct_start=0.1)
    losses: list[float] = []
    net.train()
    bar = tqdm(range(steps), desc="attribute net", unit="step", disable=not progress)
    for _ in bar:
        idx = torch.as_tensor(rng.integers(0, len(X), batch), device=dev)
        x, ctx = _augment(X[idx].permute(0, 3, 1, 2).float() / 255.0, C[idx], rng)
        y = Y[idx]
        with torch.autocast(dev.type, torch.bfloat16, enabled=dev.type == "cuda"):
            logits = net(x, ctx)
        loss = sum(F.cross_entropy(logits[k].float(), y[:, j], ignore_index=-1)
                   if (y[:, j] >= 0).any() else logits[k].sum() * 0.0
                   for j, k in enumerate(HEADS))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if len(losses) % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
    return net.cpu().eval(), losses


def save_attribute_net(net, path: Path, meta: dict) -> Path:
    """Write the weights (half precision: the file stays small), the input size, the
    heads and how they were made (``meta``) to ``path``; loadable with
    ``torch.load(weights_only=True)``."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    torch.save({"state_dict": state, "input": [INPUT_H, INPUT_W], "context": CONTEXT_DIM,
                "heads": {k: list(v) for k, v in HEADS.items()}, "meta": dict(meta)}, tmp)
    tmp.replace(path)
    return path


@functools.lru_cache(maxsize=4)
def _load(path: str):
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    heads = {k: list(v) for k, v in HEADS.items()}
    if list(ckpt.get("input", ())) != [INPUT_H, INPUT_W] or ckpt.get("heads") != heads \
            or ckpt.get("context") != CONTEXT_DIM:
        raise ValueError(f"{path}: an attribute net for input {ckpt.get('input')}, frame "
                         f"context {ckpt.get('context')} and heads {ckpt.get('heads')}; this "
                         f"version uses {[INPUT_H, INPUT_W]}, {CONTEXT_DIM} and {heads}: "
                         f"retrain it with `raysys pretrain-describer`")
    net = build_net()
    net.load_state_dict({k: v.float() if v.is_floating_point() else v
                         for k, v in ckpt["state_dict"].items()})
    return net.eval(), dict(ckpt.get("meta", {}))


def load_attribute_net(spec: str | Path = "embedded"):
    """``(net, meta)`` from ``"embedded"`` (the shipped weights) or the path of a ``.pt``
    written by ``raysys pretrain-describer``."""
    path = EMBEDDED_PATH if str(spec) == "embedded" else Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"attribute net weights not found: {path}. Make them with `raysys "
            f"pretrain-describer --out DIR` (writes DIR/attribute_net.pt) and pass that file "
            f"(describer_options={{'weights': FILE}}), or use the 'colours' describer")
    return _load(str(path.resolve()))
