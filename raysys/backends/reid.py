"""ReID appearance embeddings for tracklets (paper §3.2, Eq. 1).

A :class:`ReIDModel` maps object crops to L2-normalised vectors; a tracklet's embedding is
the normalised mean of its frame embeddings (:func:`tracklet_embedding`, Eq. 1), and
cross-view association compares tracklets by cosine similarity.

Backends (``REID_BACKENDS``):

* ``"stripes"`` (default, no weights): soft Lab colour histograms over horizontal stripes.
* ``"osnet"``: torchreid OSNet, weights from a local checkpoint file, or
  ``checkpoint="embedded"``: the shipped ``osnet_x0_25`` pre-trained on generated scenes of
  its own seeds (``raysys pretrain-reid``; :mod:`raysys.backends.pretrain_reid`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from raysys.backends._image import check_crops, resize_nearest, rgb_to_lab, white_balance
from raysys.backends.checkpoints import require_file
from raysys.backends.registry import Registry

__all__ = [
    "ReIDModel",
    "StripesConfig",
    "StripesReID",
    "OSNetReID",
    "EMBEDDED_REID",
    "REID_BACKENDS",
    "tracklet_embedding",
    "l2_normalize",
]


@runtime_checkable
class ReIDModel(Protocol):
    """Crops -> appearance embeddings.

    ``embed(crops, masks=None)`` takes ``n`` crops (``(H, W, 3)`` uint8 RGB, any size) and
    optional same-size boolean object masks, and returns ``(n, dim)`` float32 rows of unit
    L2 norm (``(0, dim)`` for ``n == 0``).
    """

    dim: int

    def embed(
        self, crops: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None = None
    ) -> np.ndarray: ...


def l2_normalize(x: np.ndarray, axis: int = -1, eps: float = 1e-12) -> np.ndarray:
    """Divide by the L2 norm along ``axis`` (rows of zeros stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), eps)


def tracklet_embedding(frame_embeddings: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Paper Eq. 1: a tracklet's embedding is the mean of its frame embeddings, L2-normalised.

    Args:
        frame_embeddings: ``(T, D)`` array (or ``T`` vectors of length ``D``), ``T >= 1``.
    Returns:
        ``(D,)`` float32 unit vector.
    """
    f = np.asarray(frame_embeddings, dtype=np.float32)
    if f.ndim != 2 or f.shape[0] == 0:
        raise ValueError(f"frame_embeddings must be (T, D) with T >= 1, got shape {f.shape}")
    return l2_normalize(f.mean(axis=0))


# --------------------------------------------------------------------------- stripes


@dataclass(frozen=True)
class StripesConfig:
    """Classical stripe colour descriptor; the defaults run on any CPU."""

    num_stripes: int = 6  # horizontal stripes, top to bottom (head ... feet)
    height: int = 128  # crops are resized (nearest) to height x width first
    width: int = 64
    bins_l: int = 4  # soft bins on L* in [0, 100]
    bins_ab: int = 7  # soft bins per chroma axis; odd so that grey sits on a bin centre
    white_balance: float = 0.5  # partial grey-world over the whole crop (0 off, 1 full)
    brightness: float = 0.5  # partial exposure normalisation to mid-grey (0 off, 1 full)


class StripesReID:
    """Soft Lab histograms over horizontal stripes, masked, Hellinger-normalised.

    Per crop: resize to ``height x width``; partially cancel the camera's colour cast
    (grey-world gains over the crop) and exposure (scale mean luminance towards 0.45), both
    with strength < 1 so a white shirt stays lighter than a black one; convert to Lab and
    compress chroma (``sign(a) * sqrt(|a|)``, finer bins near grey where most clothing sits);
    per stripe, a trilinearly-interpolated joint (L, a, b) histogram over mask pixels,
    normalised to sum 1 and square-rooted; concatenate and L2-normalise. An empty or missing
    mask uses every pixel.

    Args:
        config: descriptor settings.
        device: ignored (numpy on the CPU); accepted so every ReID backend builds alike.
    """

    def __init__(self, config: StripesConfig | None = None, device: str = "cpu") -> None:
        self.config = config or StripesConfig()
        c = self.config
        if c.num_stripes < 1 or c.bins_l < 1 or c.bins_ab < 1 or c.height < c.num_stripes:
            raise ValueError(f"invalid StripesConfig {c}")
        self._per_stripe = c.bins_l * c.bins_ab * c.bins_ab
        self.dim = c.num_stripes * self._per_stripe
        # stripe index of every row of the resized crop, (height,)
        self._row_stripe = (np.arange(c.height) * c.num_stripes // c.height).astype(np.intp)

    def embed(
        self, crops: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None = None
    ) -> np.ndarray:
        crops_, masks_ = check_crops(crops, masks)
        out = np.zeros((len(crops_), self.dim), dtype=np.float32)
        for i, (crop, mask) in enumerate(zip(crops_, masks_, strict=True)):
            out[i] = self._embed_one(crop, mask)
        return out

    def _embed_one(self, crop: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        c = self.config
        img = resize_nearest(crop, c.height, c.width).astype(np.float32) / 255.0  # (h, w, 3)
        if mask is not None:
            m = resize_nearest(mask, c.height, c.width)
            if not m.any():
                m = None
        else:
            m = None
        img = white_balance(img, img.reshape(-1, 3), c.white_balance)
        if c.brightness > 0:
            luma = float((img @ np.array([0.299, 0.587, 0.114], np.float32)).mean()) + 1e-3
            img = np.clip(img * (0.45 / luma) ** c.brightness, 0.0, 1.0)
        lab = rgb_to_lab(img)  # (h, w, 3)
        ab = np.sign(lab[..., 1:]) * np.sqrt(np.abs(lab[..., 1:]))  # in ~[-11, 11]
        weights = np.ones((c.height, c.width), np.float32) if m is None else m.astype(np.float32)
        stripe = np.broadcast_to(self._row_stripe[:, None], (c.height, c.width))
        hist = _soft_hist3(
            lab[..., 0].ravel() / 100.0, (ab[..., 0].ravel() + 10.0) / 20.0,
            (ab[..., 1].ravel() + 10.0) / 20.0, (c.bins_l, c.bins_ab, c.bins_ab),
            stripe.ravel(), c.num_stripes, weights.ravel(),
        )  # (num_stripes, per_stripe)
        sums = hist.sum(axis=1, keepdims=True)
        hist = np.sqrt(hist / np.maximum(sums, 1e-12))
        v = hist.ravel()
        n = np.linalg.norm(v)
        if n == 0:  # no pixels at all (cannot happen with m=None): a fixed, valid vector
            return np.full(self.dim, 1.0 / np.sqrt(self.dim), np.float32)
        return (v / n).astype(np.float32)


def _soft_hist3(
    u: np.ndarray, v: np.ndarray, w: np.ndarray, bins: tuple[int, int, int],
    group: np.ndarray, num_groups: int, weight: np.ndarray,
) -> np.ndarray:
    """Trilinear-interpolated 3-D histograms of values in [0, 1], one per group.

    Returns:
        ``(num_groups, prod(bins))`` float64 array.
    """
    idx_w = []
    for x, n in zip((u, v, w), bins, strict=True):
        t = np.clip(x, 0.0, 1.0) * n - 0.5  # bin centres at integers
        i0 = np.floor(t)
        f = (t - i0).astype(np.float32)
        i0 = i0.astype(np.intp)
        idx_w.append(((np.clip(i0, 0, n - 1), 1.0 - f), (np.clip(i0 + 1, 0, n - 1), f)))
    per = bins[0] * bins[1] * bins[2]
    base = group.astype(np.intp) * per
    total = np.zeros(num_groups * per, np.float64)
    for iu, wu in idx_w[0]:
        for iv, wv in idx_w[1]:
            for iw, ww in idx_w[2]:
                idx = base + (iu * bins[1] + iv) * bins[2] + iw
                total += np.bincount(idx, weights=weight * wu * wv * ww, minlength=total.size)
    return total.reshape(num_groups, per)


# --------------------------------------------------------------------------- OSNet

EMBEDDED_REID = Path(__file__).parent / "weights" / "osnet_x0_25_synth.pt"
_OSNET_HOW_TO_GET = (
    "download {file} from the deep-person-reid (torchreid) model zoo "
    "(https://kaiyangzhou.github.io/deep-person-reid/MODEL_ZOO) on a machine with internet, "
    "copy it here and pass --reid-checkpoint PATH, or pass --reid-checkpoint embedded (the "
    "shipped osnet_x0_25; `raysys pretrain-reid --out DIR` remakes it; checkpoint='random' "
    "builds untrained weights, for tests and smoke runs only)"
)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class OSNetReID:
    """torchreid OSNet (or another torchreid model) as a :class:`ReIDModel`.

    Crops are resized (bilinear, antialiased) to ``input_size``, ImageNet-normalised and
    embedded in batches under ``torch.no_grad()``; outputs are the L2-normalised 512-d
    pooled features (the classifier is not used).

    Args:
        name: torchreid model name, e.g. ``"osnet_x1_0"`` (default) or ``"osnet_x0_25"``
            (the default with ``checkpoint="embedded"``).
        checkpoint: ``"embedded"`` (the shipped weights, :data:`EMBEDDED_REID`), or the
            path to a local weights file: a torchreid model-zoo ``.pth`` (plain
            state dict), a torchreid training checkpoint (``{"state_dict": ...}``, keys may
            start with ``module.``) or a file from :meth:`save`. ``"random"`` builds untrained
            weights (seeded by ``seed``) - only for tests and smoke runs.
        device: torch device for the model; inputs follow it.
        batch_size: crops per forward pass.
        input_size: ``(height, width)`` fed to the network; None: the size a
            ``raysys pretrain-reid`` file records, else 256 x 128 (torchreid's).
        mask_background: when masks are given, paint background pixels with the ImageNet
            mean (zero after normalisation) so the embedding sees only the object.
        seed: seed for ``checkpoint="random"``.

    Attributes:
        load_report: ``{"missing": [...], "unexpected": [...], "dropped": [...]}`` keys from
            loading the checkpoint (``dropped``: classifier keys, not needed for features).
    """

    def __init__(
        self,
        name: str | None = None,
        checkpoint: str | Path | None = None,
        device: str = "cpu",
        batch_size: int = 32,
        input_size: tuple[int, int] | None = None,
        mask_background: bool = True,
        seed: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        ckpt_path = None
        if str(checkpoint) == "embedded":
            checkpoint, name = EMBEDDED_REID, name or "osnet_x0_25"
        name = name or "osnet_x1_0"
        if str(checkpoint) != "random":  # check the file before paying for the imports
            ckpt_path = require_file(
                checkpoint, f"{name} weights",
                _OSNET_HOW_TO_GET.format(file=f"{name}_imagenet.pth (or a ReID-trained {name})"),
            )
        import torch  # lazy: keep `import raysys.backends` cheap

        with warnings.catch_warnings():  # torchreid warns about Cython metrics on import
            warnings.simplefilter("ignore")
            from torchreid.reid.models import build_model

        self.name = name
        self.device = torch.device(device)
        self.batch_size = batch_size
        if input_size is None:
            input_size = _recorded_input_size(ckpt_path) if ckpt_path else (256, 128)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.mask_background = mask_background
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build_model(name, num_classes=1, pretrained=False, use_gpu=False)
        self.load_report: dict[str, list[str]] = {"missing": [], "unexpected": [], "dropped": []}
        if ckpt_path is not None:
            self.load_report = _load_reid_weights(model, ckpt_path, name)
        self.model = model.to(self.device).eval()
        self.dim = int(getattr(model, "feature_dim", 512))
        self._mean = torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1).to(self.device)
        self._std = torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1).to(self.device)

    def embed(
        self, crops: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None = None
    ) -> np.ndarray:
        import torch

        crops_, masks_ = check_crops(crops, masks)
        out = np.zeros((len(crops_), self.dim), dtype=np.float32)
        with torch.no_grad():
            for s in range(0, len(crops_), self.batch_size):
                x = self._preprocess(crops_[s:s + self.batch_size], masks_[s:s + self.batch_size])
                f = self.model(x)  # (B, dim)
                assert f.shape == (x.shape[0], self.dim), f"unexpected features {tuple(f.shape)}"
                f = torch.nn.functional.normalize(f.float(), dim=1)
                out[s:s + x.shape[0]] = f.cpu().numpy()
        return out

    def _preprocess(self, crops: list[np.ndarray], masks: list[np.ndarray | None]):
        """Crops -> normalised ``(B, 3, H, W)`` float tensor on ``self.device``."""
        import torch
        import torch.nn.functional as F

        mean = torch.tensor(_IMAGENET_MEAN).view(3, 1, 1)
        batch = []
        for crop, mask in zip(crops, masks, strict=True):
            t = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float() / 255.0
            if mask is not None and self.mask_background and mask.any():
                t = torch.where(torch.from_numpy(mask)[None], t, mean)
            t = F.interpolate(t[None], size=self.input_size, mode="bilinear",
                              align_corners=False, antialias=True)
            batch.append(t[0])
        x = torch.stack(batch).to(self.device)  # (B, 3, H, W)
        return (x - self._mean) / self._std

    def save(self, path: str | Path) -> Path:
        """Write a self-describing checkpoint ``{"arch": name, "state_dict": ...}``."""
        import torch

        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        sd = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        torch.save({"arch": self.name, "feature_dim": self.dim, "state_dict": sd}, p)
        return p


def _recorded_input_size(path: Path) -> tuple[int, int]:
    """The input size a ``raysys pretrain-reid`` file records; torchreid's 256 x 128 else."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # _load_reid_weights says why
        return (256, 128)
    size = ckpt.get("input_size") if isinstance(ckpt, Mapping) else None
    return (int(size[0]), int(size[1])) if size else (256, 128)


def _load_reid_weights(model: Any, path: Path, name: str) -> dict[str, list[str]]:
    """Load a torchreid-style checkpoint into ``model``; classifier keys are dropped.

    Returns:
        ``{"missing", "unexpected", "dropped"}`` key lists. Raises on shape mismatches
        (the checkpoint is for another architecture).
    """
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle of arbitrary objects: refuse rather than execute it
        raise RuntimeError(
            f"could not load {path} as plain tensors ({type(e).__name__}: {e}); re-save it as "
            "a state dict with torch.save(model.state_dict(), PATH)"
        ) from e
    if isinstance(ckpt, Mapping) and "arch" in ckpt and ckpt["arch"] != name:
        raise ValueError(f"{path} holds {ckpt['arch']!r} weights but model {name!r} was asked for")
    if isinstance(ckpt, Mapping) and isinstance(ckpt.get("state_dict"), Mapping):
        ckpt = ckpt["state_dict"]
    elif isinstance(ckpt, Mapping) and isinstance(ckpt.get("model"), Mapping):
        ckpt = ckpt["model"]
    if not isinstance(ckpt, Mapping):
        raise ValueError(f"{path} does not hold a state dict (got {type(ckpt).__name__})")
    sd: dict[str, Any] = {}
    dropped = []
    for k, v in ckpt.items():
        k = k[len("module."):] if k.startswith("module.") else k
        if k.startswith("classifier."):
            dropped.append(k)  # trained for other identities; features come before it
        else:
            sd[k] = v
    own = model.state_dict()
    bad = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in sd.items()
           if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        raise ValueError(
            f"{path} does not fit {name} ({len(bad)} shape mismatches, e.g. {bad[:3]}): "
            "is it for another architecture? pass the matching name"
        )
    res = model.load_state_dict(sd, strict=False)
    missing = [k for k in res.missing_keys if not k.startswith("classifier.")]
    report = {"missing": missing, "unexpected": list(res.unexpected_keys), "dropped": dropped}
    if missing or res.unexpected_keys:
        warnings.warn(
            f"loading {path} into {name}: {len(missing)} missing keys {missing[:5]}, "
            f"{len(res.unexpected_keys)} unexpected keys {list(res.unexpected_keys)[:5]}",
            stacklevel=3,
        )
    if own and len(missing) > len(own) // 2:
        raise ValueError(f"{path} has too few {name} weights ({len(missing)} keys missing)")
    return report


# --------------------------------------------------------------------------- registry

REID_BACKENDS: Registry[ReIDModel] = Registry("ReID backend")
REID_BACKENDS.register("stripes", lambda device="cpu", **kw: StripesReID(StripesConfig(**kw),
                                                                         device=device))
REID_BACKENDS.register("osnet", OSNetReID)
