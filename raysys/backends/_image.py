"""Small numpy image helpers shared by the classical backends (private).

Conventions: crops are ``(H, W, 3)`` uint8 RGB arrays, masks ``(H, W)`` bool arrays of
the same size; Lab values are CIE L*a*b* under D65 (L in [0, 100], a/b roughly [-128, 127]).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# sRGB (linear) -> XYZ, D65
_RGB2XYZ = np.array(
    [[0.412453, 0.357580, 0.180423],
     [0.212671, 0.715160, 0.072169],
     [0.019334, 0.119193, 0.950227]],
    dtype=np.float32,
)
_WHITE_D65 = np.array([0.950456, 1.0, 1.088754], dtype=np.float32)


def check_crops(
    crops: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None
) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Validate crops (HxWx3 uint8 RGB) and optional masks (HxW, same size).

    Returns:
        The crops as arrays, and one bool mask or ``None`` per crop.
    """
    if isinstance(crops, np.ndarray) and crops.ndim == 3:
        raise ValueError("crops must be a list of (H, W, 3) arrays, got one array: wrap it in "
                         "[...]")
    out_c: list[np.ndarray] = []
    for i, c in enumerate(crops):
        a = np.asarray(c)
        if a.ndim != 3 or a.shape[2] != 3:
            raise ValueError(f"crop {i} must be (H, W, 3) RGB, got shape {a.shape}")
        if a.shape[0] == 0 or a.shape[1] == 0:
            raise ValueError(f"crop {i} is empty (shape {a.shape})")
        if a.dtype != np.uint8:
            raise ValueError(
                f"crop {i} must be uint8 RGB, got {a.dtype}: convert with "
                "np.clip(x, 0, 255).astype(np.uint8)"
            )
        out_c.append(a)
    if masks is None:
        return out_c, [None] * len(out_c)
    if len(masks) != len(out_c):
        raise ValueError(f"got {len(out_c)} crops but {len(masks)} masks")
    out_m: list[np.ndarray | None] = []
    for i, (c, m) in enumerate(zip(out_c, masks, strict=True)):
        if m is None:
            out_m.append(None)
            continue
        mm = np.asarray(m)
        if mm.shape != c.shape[:2]:
            raise ValueError(f"mask {i} has shape {mm.shape}, crop {i} is {c.shape[:2]}")
        out_m.append(mm.astype(bool, copy=False))
    return out_c, out_m


def resize_nearest(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of an (H, W[, C]) array (cheap, no dependencies)."""
    h, w = img.shape[:2]
    rows = np.minimum((np.arange(height) + 0.5) * h / height, h - 1).astype(np.intp)
    cols = np.minimum((np.arange(width) + 0.5) * w / width, w - 1).astype(np.intp)
    return img[rows][:, cols]


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] (float, (..., 3)) -> CIE Lab (..., 3) float32."""
    c = np.clip(rgb.astype(np.float32, copy=False), 0.0, 1.0)
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = lin @ _RGB2XYZ.T / _WHITE_D65
    eps = 216.0 / 24389.0
    f = np.where(xyz > eps, np.cbrt(xyz), (24389.0 / 27.0 * xyz + 16.0) / 116.0)
    lab = np.empty_like(f)
    lab[..., 0] = 116.0 * f[..., 1] - 16.0
    lab[..., 1] = 500.0 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200.0 * (f[..., 1] - f[..., 2])
    return lab


def white_balance(
    rgb: np.ndarray, reference: np.ndarray, strength: float, max_gain: float = 1.6
) -> np.ndarray:
    """Partial grey-world colour constancy.

    Each channel is scaled by ``(mean_grey / mean_channel) ** strength`` where the means are
    over ``reference`` pixels (assumed grey on average, e.g. the background around the
    object). ``strength`` 0 leaves the image as is, 1 is full grey-world; gains are clipped
    to ``[1/max_gain, max_gain]`` so a strongly coloured reference cannot wreck the crop.

    Args:
        rgb: (H, W, 3) float image in [0, 1].
        reference: (N, 3) float pixels in [0, 1].
    Returns:
        (H, W, 3) float32 image in [0, 1].
    """
    if strength <= 0 or reference.shape[0] == 0:
        return rgb.astype(np.float32, copy=False)
    means = reference.reshape(-1, 3).mean(axis=0) + 1e-3  # (3,)
    gains = (means.mean() / means) ** strength
    gains = np.clip(gains, 1.0 / max_gain, max_gain).astype(np.float32)
    return np.clip(rgb * gains, 0.0, 1.0)
