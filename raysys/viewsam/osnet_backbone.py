"""The OSNet that CGCT is built upon (paper App. C.4): multi-scale maps of object crops.

CGCT's identity embedding (Eq. 10) pools "multi-scale features" under the object's mask.
With ``CGCTConfig.backbone = "osnet"`` those features are an OSNet's (torchreid's
architecture; by default the embedded ``osnet_x0_25`` that ``raysys pretrain-reid`` makes,
pre-trained for re-identification on generated scenes of its own seeds) over a crop of the
object cut from the full-resolution frame at its box: the trunk's ``conv3``-``conv5`` maps,
and ``fc(Pool(conv5))``, OSNet's own ReID feature. Its batch norms keep their pre-trained
statistics (``train()`` leaves them in eval mode); its weights are CGCT's and train with it.

:func:`crop_objects` cuts the crops (RoI Align, in the frame's pixels) and :func:`crop_maps`
the masks to the same boxes, so training (crops of the decoded full-resolution frames, made
by the clip loader) and tracking (crops of the frames the tracker was given) see the same
thing.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["OSNetBackbone", "crop_objects", "crop_maps", "slot_crops", "CROP_SIZE"]

CROP_SIZE = (128, 64)  # (height, width) of an object crop, the embedded OSNet's input
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def crop_objects(images: torch.Tensor, boxes: torch.Tensor,
                 size: tuple[int, int] = CROP_SIZE) -> torch.Tensor:
    """``images`` ``(N, 3, H, W)`` (any dtype), ``boxes`` ``(N, O, 4)`` xyxy in their pixels
    -> ``(N, O, 3, h, w)`` float crops (RoI Align, bilinear; values in the images' range)."""
    from torchvision.ops import roi_align

    n, o = boxes.shape[:2]
    if o == 0:
        return images.new_zeros((n, 0, images.shape[1], *size), dtype=torch.float32)
    idx = torch.arange(n, device=boxes.device, dtype=boxes.dtype).repeat_interleave(o)
    rois = torch.cat([idx[:, None], boxes.reshape(-1, 4).to(boxes.dtype)], 1)
    out = roi_align(images.float(), rois.float(), size, spatial_scale=1.0, sampling_ratio=2,
                    aligned=True)
    return out.reshape(n, o, images.shape[1], *size)


def crop_maps(maps: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Per-object maps ``(N, O, h', w')`` cut to each object's own box ``(N, O, 4)`` (xyxy in
    the maps' pixels) -> ``(N, O, h, w)``."""
    from torchvision.ops import roi_align

    n, o = boxes.shape[:2]
    if o == 0:
        return maps.new_zeros((n, 0, *size))
    rois = torch.cat([torch.arange(n * o, device=boxes.device, dtype=torch.float32)[:, None],
                      boxes.reshape(-1, 4).float()], 1)
    out = roi_align(maps.reshape(n * o, 1, *maps.shape[-2:]).float(), rois, size,
                    spatial_scale=1.0, sampling_ratio=2, aligned=True)
    return out.reshape(n, o, *size)


class OSNetBackbone(nn.Module):
    """A torchreid OSNet trunk returning ``[conv3, conv4, conv5]`` maps and its ReID feature.

    Args:
        name: torchreid architecture (the embedded weights are ``osnet_x0_25``).
        weights: ``"embedded"`` (the shipped file), a local torchreid/``pretrain-reid``
            file, or None (random init: tests).
    """

    def __init__(self, name: str = "osnet_x0_25", weights: str | None = "embedded") -> None:
        super().__init__()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torchreid.reid.models import build_model
        net = build_model(name, num_classes=1, pretrained=False, use_gpu=False)
        if weights is not None:
            from raysys.backends.reid import EMBEDDED_REID, _load_reid_weights

            _load_reid_weights(net, EMBEDDED_REID if weights == "embedded" else weights, name)
        net.classifier = nn.Identity()  # names the pre-training's identities: not used
        self.net = net
        c3, c4, c5 = (self._width(net.conv3), self._width(net.conv4), self._width(net.conv5))
        self.channels = (c3, c4, c5, net.feature_dim)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    @staticmethod
    def _width(block: nn.Module) -> int:
        return [m for m in block.modules() if isinstance(m, nn.Conv2d)][-1].out_channels

    def train(self, mode: bool = True) -> OSNetBackbone:
        super().train(mode)
        for m in self.modules():  # pre-trained statistics, whatever the batch
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self

    def forward(self, crops: torch.Tensor, masks: torch.Tensor) -> list[torch.Tensor]:
        """``crops`` ``(N, 3, h, w)`` in [0, 1], ``masks`` ``(N, h, w)`` probabilities ->
        masked average pools (Pool of Eq. 10) of conv3, conv4, conv5 and ``fc`` of conv5's,
        each ``(N, C)``."""
        net = self.net
        x = (crops - self.mean) / self.std
        f3 = net.conv3(net.conv2(net.maxpool(net.conv1(x))))
        f4 = net.conv4(f3)
        f5 = net.conv5(f4)
        pooled = []
        for f in (f3, f4, f5):
            m = F.adaptive_avg_pool2d(masks[:, None], f.shape[-2:])  # (N, 1, h_l, w_l)
            pooled.append((f * m).sum((-2, -1)) / (m.sum((-2, -1)) + 1e-6))
        return pooled + [net.fc(pooled[-1])]


def slot_crops(targets, index: torch.Tensor, scale: torch.Tensor, mask_side: int,
               image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The training pass's CGCT inputs for its slots: crops ``(B*V*T, O, 3, h, w)`` in
    [0, 1] and boxes ``(B*V*T, O, 4)`` in the side-``mask_side`` mask pixels.

    Args:
        targets: :class:`raysys.viewsam.data.ClipTargets` with ``crops`` (the clip loader's,
            ``(B, V, T, M, 3, h, w)``) and ``boxes`` (input pixels).
        index: ``(B, O)`` the slots' objects among the targets' ``M``.
        scale: ``(4,)`` input px -> model px factors; image_size: the model side ``S``.
    """
    if targets.crops is None:
        raise ValueError("CGCT with the osnet backbone trains on object crops: the clip "
                         "loader makes them when the model's cgct.backbone is osnet")
    b, v, t = targets.boxes.shape[:3]
    o = index.shape[1]
    idx = index[:, None, None, :].expand(b, v, t, o)
    crops = targets.crops.gather(3, idx[..., None, None, None].expand(
        b, v, t, o, *targets.crops.shape[-3:]))
    boxes = targets.boxes.gather(3, idx[..., None].expand(b, v, t, o, 4))
    boxes = boxes * scale * (mask_side / image_size)
    return (crops.flatten(0, 2).float() / 255.0, boxes.flatten(0, 2))
