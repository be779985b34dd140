"""The Candidate Generator's proposals from a pretrained single-image person detector.

The paper distils its Candidate Generator from APTM (App. C.2) so that it "inherits strong
object localization priors" and then trains it on ID-agnostic single-view pseudo labels.
Its dense branch reads SAM2's features at 1024 px, where every person is many cells wide.
raysys's CPU default reads a 128 px input, where a person of a 640 x 360 view is two or three
pixels wide, and its dense branch finds 5-8% of the test people (docs/lab-notes.md).

The analogue of APTM's localization is the project's own person detector
(:mod:`raysys.backends.classical.person_net`), trained on other seeds' person boxes. The
classical tracker's version reads a foreground channel from its background model, which a
clip-by-clip model does not have; ``raysys pretrain-detector --rgb-only`` trains the same
network on the frame alone (the package ships it as ``embedded``). With
``CandidateGeneratorConfig.proposal_net`` the CG's proposals are that frozen detector's
top-K peaks on the frame at ``crop_frame`` size, scored by its centre probability (the
objectness); the CG's matching branch (Eq. 15-17) scores them against the expression as
before. The dense branch is still trained (Eq. 14): it shapes the features the matching
branch pools. The detector is kept out of the model's state dict, like the text encoder.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["EMBEDDED_RGB_PATH", "frozen_proposal_net", "detector_proposals"]

EMBEDDED_RGB_PATH = (Path(__file__).resolve().parents[1] / "backends" / "weights"
                     / "person_net_rgb_synth.pt")


def frozen_proposal_net(spec: str) -> nn.Module:
    """A private, frozen copy (eval mode, no gradients) of the RGB-only person detector
    ``spec``: ``"embedded"`` (the shipped weights) or a ``person_net_rgb.pt`` of ``raysys
    pretrain-detector --rgb-only``."""
    from raysys.backends.classical.person_net import load_person_detector

    path = EMBEDDED_RGB_PATH if spec == "embedded" else Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"proposal_net weights not found: {path}. Make them with `raysys "
            f"pretrain-detector --out DIR --rgb-only` (writes DIR/person_net_rgb.pt) and pass "
            f"that file, or use proposal_net='embedded'")
    det = load_person_detector(str(path), 0.0)
    if det.uses_foreground:
        raise ValueError(
            f"{path} is a person detector that reads the classical tracker's foreground "
            f"channel; the Candidate Generator needs one that reads the frame alone: make it "
            f"with `raysys pretrain-detector --out DIR --rgb-only`")
    net = copy.deepcopy(det.net).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


@torch.no_grad()
def detector_proposals(net: nn.Module, frames: torch.Tensor, k: int, side: int
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """The detector's ``k`` best 3x3 centre peaks of each frame ``(F, 3, Hc, Wc)`` in
    [0, 1]: boxes ``(F, k, 4)`` xyxy in the pixels of a ``side`` x ``side`` model input,
    and their centre probabilities ``(F, k)``."""
    from raysys.backends.classical.person_net import SCALE, STRIDE

    frames = frames.float()
    if next(net.parameters()).device != frames.device:
        net.to(frames.device)
    hc, wc = frames.shape[-2:]
    x = F.interpolate(frames, size=(hc // SCALE, wc // SCALE), mode="area")
    heat, reg = net(x)
    p = heat.float().sigmoid()
    peaks = (p * (F.max_pool2d(p, 3, 1, 1) == p)).flatten(1)  # (F, h*w)
    h, w = heat.shape[-2:]
    k = min(k, h * w)
    score, cell = peaks.topk(k, dim=1)
    reg = reg.float().flatten(2).gather(2, cell[:, None].expand(-1, 4, -1))  # (F, 4, k)
    cx = (cell % w).to(reg.dtype) + reg[:, 2]  # output cells
    cy = (cell // w).to(reg.dtype) + reg[:, 3]
    bw, bh = reg[:, 0].clamp(-4, 6).exp(), reg[:, 1].clamp(-4, 6).exp()
    cell_px = SCALE * STRIDE  # crop-frame pixels per output cell
    fx, fy = cell_px * side / wc, cell_px * side / hc
    boxes = torch.stack([(cx - bw / 2) * fx, (cy - bh / 2) * fy, (cx + bw / 2) * fx,
                         (cy + bh / 2) * fy], -1)
    return boxes.clamp(0, side), score
