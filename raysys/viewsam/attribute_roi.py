"""The Candidate Generator's reading of each box by a pretrained person-attribute model.

The paper distils its Candidate Generator from APTM (App. C.2), a pretrained person
attribute retrieval model: the CG inherits what APTM knows about people and their
attributes. raysys's analogue of APTM is the describer's attribute net
(:mod:`raysys.backends.attribute_net`, pre-trained on GT person crops of generated scenes of
its own seeds, ``raysys pretrain-describer``). With ``CandidateGeneratorConfig.attribute_net``
the CG is built upon it rather than distilled from it: each box the matching branch scores
(Eq. 15-17) is cut from the frame at ``crop_frame`` size (RoI Align, 64 x 32, an all-ones
mask channel), read by the frozen net with the frame's colour statistics, and the net's
per-attribute probabilities, through a small MLP, get a match term of their own whose logit
is added to the branch's. On in the quick schedule, with the proposals of a pretrained
person detector (:mod:`raysys.viewsam.proposal_net`); alone, it lifted the main job's
referring AUC but not Table 1, since the dense proposals found 5-8% of the people
(docs/lab-notes.md). The net is frozen and kept out of the model's state dict (rebuilt
from its file, like the text encoder), so a checkpoint names it and does not copy it.

Crops are cut the same way in training (from the clip loader's ``crop_frames``) and in
tracking (from the frames the tracker is given), both first brought to ``crop_frame`` size
by :func:`crop_frames_at`.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["frozen_attribute_net", "frame_context", "crop_frames_at", "attribute_probs",
           "AttributeBackbone"]


def frozen_attribute_net(spec: str) -> tuple[nn.Module, int]:
    """``(net, P)``: a private, frozen copy (eval mode, no gradients) of the attribute net
    ``spec`` (``"embedded"`` or a ``.pt`` of ``raysys pretrain-describer``) and the width of
    its concatenated probabilities."""
    from raysys.backends.attribute_net import HEADS, load_attribute_net

    net = copy.deepcopy(load_attribute_net(spec)[0]).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net, sum(len(v) for v in HEADS.values())


def frame_context(frames: torch.Tensor) -> torch.Tensor:
    """``(F, 3, H, W)`` frames in [0, 1] -> ``(F, 18)``: the 5th, 25th, 50th, 75th and 95th
    percentile and the mean of each RGB channel at 80 x 45 (area), in the order of
    :func:`raysys.backends.attribute_net.frame_context` (the net's frame input)."""
    small = F.interpolate(frames.float(), size=(45, 80), mode="area").flatten(2)  # (F, 3, P)
    q = torch.quantile(small, small.new_tensor([0.05, 0.25, 0.5, 0.75, 0.95]), dim=2)
    return torch.cat([q.permute(1, 0, 2).reshape(frames.shape[0], 15), small.mean(2)], 1)


def crop_frames_at(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(B, V, T, 3, H, W)`` frames (uint8, or float in [0, 1]) -> ``(B*V*T, 3, h, w)``
    float in [0, 1] at ``size`` (bilinear, antialiased when it shrinks them)."""
    x = frames.flatten(0, 2)
    x = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False,
                          antialias=True)
    return x


def attribute_probs(net: nn.Module, frames: torch.Tensor, context: torch.Tensor,
                    boxes: torch.Tensor, rows: torch.Tensor, side: int,
                    chunk: int = 1024) -> torch.Tensor:
    """``(R, P)`` every head's softmax, concatenated, of ``boxes`` ``(R, 4)`` (xyxy in the
    pixels of a ``side`` x ``side`` model input) on the frames ``(F, 3, Hc, Wc)`` (row
    ``rows[i] % F`` for box ``i``), with their colour statistics ``context`` ``(F, 18)``."""
    from torchvision.ops import roi_align

    from raysys.backends.attribute_net import HEADS, INPUT_H, INPUT_W

    frames = frames.float()
    if next(net.parameters()).device != frames.device:
        net.to(frames.device)
    hc, wc = frames.shape[-2:]
    fac = boxes.new_tensor([wc / side, hc / side, wc / side, hc / side])
    rows = rows.long() % frames.shape[0]
    rois = torch.cat([rows[:, None].to(boxes.dtype), boxes * fac], 1).float()
    out = []
    with torch.no_grad():
        for i in range(0, rois.shape[0], chunk):
            crop = roi_align(frames, rois[i:i + chunk], (INPUT_H, INPUT_W), spatial_scale=1.0,
                             sampling_ratio=2, aligned=True)
            x = torch.cat([crop, torch.ones_like(crop[:, :1])], 1)
            logits = net(x, context[rows[i:i + chunk]].float())
            out.append(torch.cat([logits[h].float().softmax(1) for h in HEADS], 1))
    return torch.cat(out) if out else frames.new_zeros(0, sum(len(v) for v in HEADS.values()))


class AttributeBackbone:
    """CGCT's appearance reader with ``CGCTConfig.backbone = "attribute"``: the frozen
    attribute net's per-attribute probabilities of each object's crop, square-rooted (so
    that the cosine of two readings is their Bhattacharyya coefficient, averaged over the
    heads). A plain object, not a submodule: frozen and outside the state dict, rebuilt
    from its file like the Candidate Generator's copy.

    ``spec``: ``"embedded"`` or a ``.pt`` of ``raysys pretrain-describer``. Crops are read
    with an all-ones mask channel and no frame colour statistics (as the net's ``ctx=None``).
    """

    def __init__(self, spec: str | None = "embedded") -> None:
        self.net, dim = frozen_attribute_net(spec or "embedded")
        self.channels = (dim,)

    def __call__(self, crops: torch.Tensor) -> list[torch.Tensor]:
        """``crops`` ``(N, 3, h, w)`` in [0, 1] -> ``[(N, P)]``: the readings' square roots."""
        from raysys.backends.attribute_net import HEADS, INPUT_H, INPUT_W

        if next(self.net.parameters()).device != crops.device:
            self.net.to(crops.device)
        x = crops.float()
        if tuple(x.shape[-2:]) != (INPUT_H, INPUT_W):
            x = F.interpolate(x, size=(INPUT_H, INPUT_W), mode="area")
        x = torch.cat([x, torch.ones_like(x[:, :1])], 1)
        with torch.no_grad():
            logits = self.net(x, None)
            p = torch.cat([logits[h].float().softmax(1) for h in HEADS], 1)
        return [p.clamp_min(0).sqrt()]
