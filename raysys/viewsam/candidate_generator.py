"""Candidate Generator, CG (paper Eq. 14-18): box proposals that prompt SAM2.

Two branches on the top FPN level (stride 16) of the VC-CMA-adapted image encoder (with
``fine=True``, on the top level upsampled and fused with the stride-8 level, FPN-style: a
grid fine enough for small people in low-resolution CPU runs):

* dense proposal branch (Eq. 14): a shared conv tower and four 1x1 heads per location:
  centre heatmap (sigmoid focal loss against Gaussian targets), centerness (BCE inside
  boxes, FCOS), box size (log of w, h in cells) and centre offset (sub-cell), both
  smooth-L1 at the object's centre cell. Proposals are the top-K heatmap peaks (3x3 max
  pool NMS) scored ``heat * centerness``;
* proposal-referring matching branch (Eq. 15-17): RoIAlign features of each proposal and
  the referring token ``t_R`` (the masked mean of VC-CMA's updated text ``T_ca``, Eq. 7,
  of the frame's view), fused as ``[f, t, f (.) t]`` into a referring logit; trained
  against soft IoU targets (IoU with the referred boxes, Eq. 15) with a group-balanced
  BCE per frame (Eq. 16) and a margin ranking loss (Eq. 17); Eq. 18 sums them.
  With ``pixel_roi`` (the quick CPU default) each proposal also pools the model input's
  own RGB inside its box, added to its RoI feature: colours a tiny encoder blurs away.
  With ``attribute_net`` each box is also cut from the frame
  at ``crop_frame`` size and read by a frozen pretrained person-attribute model, the
  analogue of the APTM the paper's CG learns from (App. C.2); its per-attribute
  probabilities, through a small MLP, get a match term of their own, added to the logit
  (:mod:`raysys.viewsam.attribute_roi`). With ``text_matcher`` as well, the logit
  starts from a frozen pretrained text-person matcher's score of that reading against the
  sentence (the text half of the APTM analogue, :mod:`raysys.viewsam.text_matcher`), times
  a learned scale plus a bias; the learned terms start at zero and learn a residual.
  With ``proposal_net`` the proposals are a frozen pretrained single-image person
  detector's peaks on the frame at ``crop_frame`` size instead of the dense branch's, the
  analogue of the localization the paper's CG inherits from APTM
  (:mod:`raysys.viewsam.proposal_net`); the dense branch is still trained. The quick CPU
  schedule turns on both frozen parts; in training, what they said about a frame is kept
  (:mod:`raysys.viewsam.frozen_memo`).

Targets come from a pluggable teacher (:class:`BoxTeacher`); the default,
:class:`PseudoLabelTeacher`, reads the Stage 1 pseudo-label boxes of the clip targets. The
dense targets and the losses are in :mod:`raysys.viewsam.candidate_targets`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from raysys.viewsam import attribute_roi as A
from raysys.viewsam import proposal_net as P
from raysys.viewsam import text_matcher as TM
from raysys.viewsam.candidate_targets import candidate_losses, dense_targets, pairwise_iou
from raysys.viewsam.frozen_memo import FrozenMemo, frame_keys

__all__ = [
    "CandidateGeneratorConfig",
    "MEMO_ENTRIES",
    "BoxTeacher",
    "PseudoLabelTeacher",
    "CandidateOutput",
    "CandidateGenerator",
    "pairwise_iou",
    "output_row",
    "dense_targets",
    "candidate_losses",
]


@dataclass(frozen=True)
class CandidateGeneratorConfig:
    width: int | None = None  # conv tower / RoI feature width; None: SAM2's d_model
    num_convs: int = 4  # 3x3 conv + GroupNorm + ReLU layers in the dense tower
    roi_size: int = 5  # RoIAlign output side per proposal
    hidden: int | None = None  # proposal / text embedding width; None: 4 * d_model
    num_proposals: int = 16  # top-K heatmap peaks kept per frame
    sigma_ratio: float = 1 / 6  # Gaussian sigma of the heatmap target, per box side
    pos_iou: float = 0.5  # tau_pos of Eq. 15: IoU at which a proposal is a positive (target 1)
    neg_iou: float = 0.3  # tau_neg of Eq. 15: IoU at or below which the target is 0 (the
    #   paper gives neither value)
    rank_margin: float = 1.0  # m of the ranking loss (Eq. 17), in logit units (the paper
    #   gives no value)
    fine: bool = False  # proposals on a stride-8 grid (top level x2 + the stride-8 level)
    pixel_roi: int = 0  # > 0: the matching branch also pools the model input's own pixels
    #   inside each box on a pixel_roi x (pixel_roi // 2) grid (RoIAlign): the colours that
    #   a small encoder blurs away; 0: encoder features only (the paper's CG)
    attribute_net: str = ""  # "embedded" or the .pt of `raysys pretrain-describer`: the
    #   matching branch also reads each box's crop with this frozen person-attribute model
    #   (the APTM analogue, App. C.2); "": encoder features only (the paper's CG)
    proposal_net: str = ""  # "embedded" or the .pt of `raysys pretrain-detector --rgb-only`:
    #   the proposals are this frozen person detector's peaks on the frame at crop_frame size
    #   (the localization of the APTM analogue); "": the dense branch's (the paper's CG)
    text_matcher: str = ""  # "embedded" or the .pt of `raysys pretrain-matcher` (needs
    #   attribute_net): the matching logit starts from this frozen text-person matcher's
    #   score of the attribute reading against the sentence (the APTM analogue's text
    #   side); "": learnt from the pseudo labels alone
    crop_frame: tuple[int, int] = (360, 640)  # (h, w) the frames are brought to before the
    #   attribute model's crops are cut and the proposal net reads them (training and
    #   tracking alike)
    match_teacher_boxes: bool = True  # training: the matching branch also scores the
    #   teacher's boxes (referred = positive, the others = negative), as a two-stage
    #   detector adds its ground-truth boxes to the proposals of its RoI head; so it learns
    #   even while the dense branch's proposals rarely reach IoU pos_iou
    match_residual: bool = True  # with text_matcher: False leaves out the learned residual
    #   terms (RoI / pixel features and the attribute match against the sentence), so the
    #   referring logit is the frozen matcher's score times a learned scale plus a bias


MEMO_ENTRIES = 100_000  # frames' proposals and boxes' attribute readings kept in training


class BoxTeacher(Protocol):
    """Supplies the boxes CG learns from: ``(boxes (B, V, T, M, 4), valid (B, V, T, M))``."""

    def __call__(self, targets) -> tuple[torch.Tensor, torch.Tensor]: ...


class PseudoLabelTeacher:
    """Default teacher: the clip targets' own (Stage 1 pseudo-label) boxes."""

    def __call__(self, targets) -> tuple[torch.Tensor, torch.Tensor]:
        return targets.boxes, targets.visible


@dataclass
class CandidateOutput:
    """CG outputs for ``N`` frames (model pixel coordinates)."""

    heatmap: torch.Tensor  # (N, 1, h, w) centre logits
    centerness: torch.Tensor  # (N, 1, h, w) logits
    size: torch.Tensor  # (N, 2, h, w) log(w / stride), log(h / stride)
    offset: torch.Tensor  # (N, 2, h, w) centre offset inside the cell, in cells
    boxes: torch.Tensor  # (N, K, 4) xyxy proposals (no gradient)
    objectness: torch.Tensor  # (N, K) heat * centerness at the peaks (no gradient)
    refer_logits: torch.Tensor  # (N, K) proposal-expression matching logits
    features: torch.Tensor | None = None  # (N, W, h, w) tower output (scores other boxes)
    text_emb: torch.Tensor | None = None  # (N, hidden) projected expression per frame
    stride: int = 0  # model pixels per cell of ``features``
    pixels: torch.Tensor | None = None  # (N, 3, S, S) normalised model input (pixel_roi)
    # attribute_net: the frames at crop_frame size in [0, 1], rows (b, v, t); F <= N rows, row
    # n of the outputs is frame n % F (one clip shared by several expressions)
    crop_frames: torch.Tensor | None = None  # (F, 3, Hc, Wc)
    crop_context: torch.Tensor | None = None  # (F, CONTEXT_DIM) each frame's colour stats
    crop_keys: list[bytes] | None = None  # training: (F,) content digests of crop_frames
    sentence: torch.Tensor | None = None  # text_matcher: (N, D_t) each row's sentence vector


def output_row(out: CandidateOutput, n: int) -> CandidateOutput:
    """Row ``n`` of ``out`` as a one-frame output that scores boxes
    (:meth:`CandidateGenerator.match_boxes`): its features, text, pixels and frame."""
    def one(x, rows=None):
        if x is None:
            return None
        i = n if rows is None else n % rows
        return x[i:i + 1]

    f = None if out.crop_frames is None else out.crop_frames.shape[0]
    keys = None if out.crop_keys is None else [out.crop_keys[n % f]]
    return replace(out, features=one(out.features), text_emb=one(out.text_emb),
                   pixels=one(out.pixels), crop_frames=one(out.crop_frames, f),
                   crop_context=one(out.crop_context, f), crop_keys=keys,
                   sentence=one(out.sentence))


class CandidateGenerator(nn.Module):
    """Dense proposals + referring scores (Eq. 14-18).

    Args:
        in_dim: channels of the input feature (the top FPN level, d_model).
        text_dim: width of the frozen text encoder.
        cfg: component config; width, hidden: resolved widths.
    """

    def __init__(self, in_dim: int, text_dim: int, cfg: CandidateGeneratorConfig, width: int,
                 hidden: int, fine_dim: int = 0) -> None:
        super().__init__()
        # fine: lateral 1x1 conv of the stride-8 level, added to the upsampled top level
        self.lateral = nn.Conv2d(fine_dim, in_dim, 1) if cfg.fine else None
        if cfg.fine and fine_dim <= 0:
            raise ValueError("CandidateGeneratorConfig.fine needs the stride-8 level's width")
        layers: list[nn.Module] = []
        for i in range(cfg.num_convs):
            layers += [nn.Conv2d(in_dim if i == 0 else width, width, 3, padding=1),
                       nn.GroupNorm(math.gcd(32, width), width), nn.ReLU(inplace=True)]
        self.tower = nn.Sequential(*layers) if layers else nn.Conv2d(in_dim, width, 1)
        self.heat_head = nn.Conv2d(width, 1, 1)
        self.ctr_head = nn.Conv2d(width, 1, 1)
        self.size_head = nn.Conv2d(width, 2, 1)
        self.offset_head = nn.Conv2d(width, 2, 1)
        for head in (self.heat_head, self.ctr_head, self.size_head, self.offset_head):
            nn.init.normal_(head.weight, std=0.01)  # RetinaNet-style: start at the bias
            nn.init.zeros_(head.bias)
        # centre prior 0.01, so the focal loss of the many background cells starts small
        nn.init.constant_(self.heat_head.bias, -math.log((1 - 0.01) / 0.01))
        self.roi_head = nn.Sequential(nn.Flatten(1), nn.Linear(width * cfg.roi_size ** 2, hidden),
                                      nn.ReLU(inplace=True), nn.Linear(hidden, hidden))
        pr = cfg.pixel_roi
        self.pixel_head = nn.Sequential(
            nn.Flatten(1), nn.Linear(3 * pr * max(1, pr // 2), hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden)) if pr > 0 else None
        self._attribute: tuple[nn.Module, ...] = ()  # frozen, outside the state dict
        self.attribute_head = self.attribute_match = None
        if cfg.attribute_net:
            net, dim = A.frozen_attribute_net(cfg.attribute_net)
            self._attribute = (net,)  # a tuple: not a submodule (no training, no saving)
            self.attribute_head = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True),
                                                nn.Linear(hidden, hidden))
            # its own match term: [a, t, a * t] -> a logit added to the branch's
            self.attribute_match = nn.Sequential(nn.Linear(3 * hidden, hidden),
                                                 nn.ReLU(inplace=True), nn.Linear(hidden, 1))
        self._matcher: tuple[nn.Module, ...] = ()  # frozen, outside the state dict
        self.matcher_scale = self.matcher_bias = None
        if cfg.text_matcher:
            if not cfg.attribute_net:
                raise ValueError("CandidateGeneratorConfig.text_matcher reads the attribute "
                                 "net's probabilities: set attribute_net too (e.g. 'embedded')")
            self._matcher = (TM.frozen_text_matcher(cfg.text_matcher, dim, text_dim),)
            self.matcher_scale = nn.Parameter(torch.ones(()))
            self.matcher_bias = nn.Parameter(torch.zeros(()))
        # frozen, outside the state dict: the proposal detector (proposal_net)
        self._proposal: tuple[nn.Module, ...] = (
            (P.frozen_proposal_net(cfg.proposal_net),) if cfg.proposal_net else ())
        # training: the frozen models' outputs by frame content (frozen_memo.py)
        self._memo = FrozenMemo(MEMO_ENTRIES)
        self.text_proj = nn.Sequential(nn.Linear(text_dim, hidden), nn.LayerNorm(hidden))
        self.match_head = nn.Sequential(nn.Linear(3 * hidden, hidden), nn.ReLU(inplace=True),
                                        nn.Linear(hidden, 1))
        if self._matcher:  # the learned terms start at zero: a residual on the matcher
            for head in (self.match_head[-1], self.attribute_match[-1]):
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)
        self.cfg = cfg

    @property
    def needs_crop_frames(self) -> bool:
        """Whether :meth:`forward` needs the frames at ``cfg.crop_frame`` size (an
        ``attribute_net`` or a ``proposal_net``)."""
        return bool(self.attribute_head is not None or self._proposal)

    def stride(self, top_stride: int) -> int:
        """Model pixels per proposal cell given the top level's stride."""
        return top_stride // 2 if self.lateral is not None else top_stride

    def forward(self, feat: torch.Tensor, text: torch.Tensor, stride: int,
                fine_feat: torch.Tensor | None = None,
                pixels: torch.Tensor | None = None,
                crop_frames: torch.Tensor | None = None,
                sentence: torch.Tensor | None = None) -> CandidateOutput:
        """Args: feat ``(N, C, h, w)`` top level; text ``(N, D_t)`` the referring token
        ``t_R`` of each frame (the masked mean of its view's ``T_ca``, Eq. 7); stride:
        model pixels per cell of ``feat``; fine_feat: the stride-8 level
        ``(N, C_f, 2h, 2w)`` (required with ``fine``); pixels: ``(N, 3, S, S)`` the
        normalised model input, in the boxes' pixels (required with ``pixel_roi``);
        crop_frames: ``(F, 3, Hc, Wc)`` in [0, 1] at ``crop_frame`` size, ``N`` a multiple
        of ``F`` (required with ``attribute_net``); sentence: ``(N, D_t)`` the frozen text
        encoder's sentence vector of each row (required with ``text_matcher``). Outputs are
        on the grid of :meth:`stride`."""
        if self.lateral is not None:
            if fine_feat is None:
                raise ValueError("a fine Candidate Generator needs the stride-8 features")
            feat = F.interpolate(feat, size=fine_feat.shape[-2:], mode="nearest") + \
                self.lateral(fine_feat)
            stride = self.stride(stride)
        n, _, h, w = feat.shape
        assert text.shape[0] == n, f"text rows {text.shape[0]} != frames {n}"
        x = self.tower(feat)  # (N, W, h, w)
        heat, ctr = self.heat_head(x), self.ctr_head(x)
        size, offset = self.size_head(x), self.offset_head(x)
        if self.needs_crop_frames and (
                crop_frames is None or n % crop_frames.shape[0]
                or tuple(crop_frames.shape[-2:]) != tuple(self.cfg.crop_frame)):
            raise ValueError(
                f"a Candidate Generator with attribute_net or proposal_net needs the frames "
                f"at crop_frame {tuple(self.cfg.crop_frame)}, a divisor of {n} rows, got "
                f"{None if crop_frames is None else tuple(crop_frames.shape)}")
        if self._matcher and (sentence is None or sentence.shape[0] != n):
            raise ValueError(f"a Candidate Generator with text_matcher needs the (N={n}, D_t) "
                             f"sentence vectors, got "
                             f"{None if sentence is None else tuple(sentence.shape)}")
        keys = frame_keys(crop_frames) if self.training and self.needs_crop_frames else None
        if self._proposal:  # the frozen detector's peaks, once per distinct frame
            boxes, objectness = self._proposals(crop_frames, keys, max(h, w) * stride)
            reps = n // crop_frames.shape[0]
            boxes, objectness = boxes.repeat(reps, 1, 1), objectness.repeat(reps, 1)
        else:
            with torch.no_grad():  # (N, K, 4), (N, K)
                boxes, objectness = self.decode(heat, ctr, size, offset, stride)
        text_emb = self.text_proj(text)  # (N, hidden)
        out = CandidateOutput(heatmap=heat, centerness=ctr, size=size, offset=offset,
                              boxes=boxes, objectness=objectness,
                              refer_logits=boxes.new_zeros(boxes.shape[:2]),
                              features=x, text_emb=text_emb, stride=stride, pixels=pixels,
                              sentence=sentence if self._matcher else None)
        if self.attribute_head is not None:
            out.crop_frames, out.crop_context = crop_frames, A.frame_context(crop_frames)
            out.crop_keys = keys
        out.refer_logits = self._match(out, boxes)  # (N, K)
        return out

    def match_boxes(self, out: CandidateOutput, boxes: torch.Tensor) -> torch.Tensor:
        """Referring logits ``(N, M)`` of any boxes ``(N, M, 4)`` (model pixels) on the
        frames of ``out`` (Eq. 15-17 on other boxes than the proposals)."""
        if out.features is None or out.text_emb is None:
            raise ValueError("this CandidateOutput carries no features to score boxes on")
        return self._match(out, boxes)

    def _match(self, out: CandidateOutput, boxes: torch.Tensor) -> torch.Tensor:
        from torchvision.ops import roi_align

        x, text_emb = out.features, out.text_emb
        n, k = boxes.shape[:2]
        if k == 0:
            return x.new_zeros(n, 0)
        idx = torch.arange(n, device=x.device, dtype=boxes.dtype).repeat_interleave(k)
        residual = self.cfg.match_residual or not self._matcher
        logit = x.new_zeros(n, k)  # (N, K)
        if residual:  # the learned terms (left out with match_residual=False: not computed)
            rois = torch.cat([idx[:, None], boxes.reshape(-1, 4)], dim=1)  # (N*K, 5)
            r = self.cfg.roi_size
            pooled = roi_align(x, rois, (r, r), spatial_scale=1.0 / out.stride,
                               sampling_ratio=2, aligned=True)  # (N*K, W, r, r)
            f = self.roi_head(pooled).reshape(n, k, -1)  # (N, K, hidden)
            if self.pixel_head is not None:  # the frame's own pixels inside each box
                if out.pixels is None:
                    raise ValueError("a Candidate Generator with pixel_roi needs the frames")
                pr = self.cfg.pixel_roi
                rgb = roi_align(out.pixels, rois, (pr, max(1, pr // 2)), spatial_scale=1.0,
                                sampling_ratio=2, aligned=True)  # (N*K, 3, pr, pr // 2)
                f = f + self.pixel_head(rgb).reshape(n, k, -1)
            t = text_emb[:, None].expand_as(f)  # (N, K, hidden)
            logit = self.match_head(torch.cat([f, t, f * t], dim=-1)).squeeze(-1)
        if self.attribute_head is not None:  # the APTM analogue's reading of each crop
            probs = self._attributes(out, boxes, idx)  # (N*K, P)
            if residual:
                a = self.attribute_head(probs).reshape(n, k, -1)
                logit = logit + self.attribute_match(torch.cat([a, t, a * t], -1)).squeeze(-1)
            if self._matcher:  # its text side: the frozen matcher's score, scaled
                if out.sentence is None:
                    raise ValueError("a Candidate Generator with text_matcher needs the "
                                     "sentence vectors (CandidateOutput.sentence)")
                net = self._matcher[0]
                if next(net.parameters()).device != probs.device:  # not a submodule
                    net.to(probs.device)
                with torch.no_grad():
                    m = net(probs, out.sentence.repeat_interleave(k, 0))
                logit = logit + self.matcher_scale * m.reshape(n, k).to(logit.dtype) + \
                    self.matcher_bias
        return logit

    def _attributes(self, out: CandidateOutput, boxes: torch.Tensor, idx: torch.Tensor
                    ) -> torch.Tensor:
        """``(N*K, P)`` the frozen attribute model's probabilities of each box ``(N, K, 4)``
        (model pixels; ``idx`` its output row), cut from ``out.crop_frames``."""
        if out.crop_frames is None or out.crop_context is None:
            raise ValueError("a Candidate Generator with attribute_net needs the frames "
                             "(CandidateOutput.crop_frames)")
        side = max(out.features.shape[-2:]) * out.stride  # the model input's side S
        n, f = boxes.shape[0], out.crop_frames.shape[0]

        def read(b: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            return A.attribute_probs(self._attribute[0], out.crop_frames, out.crop_context,
                                     b, rows, side)

        if out.crop_keys is not None:  # training: boxes already read on these frames
            return self._memo.per_box(read, out.crop_keys, boxes.reshape(-1, 4), idx).to(
                out.features.dtype)
        if n > f and n % f == 0 and torch.equal(boxes, boxes[:f].repeat(n // f, 1, 1)):
            # the same boxes on the same frames (one clip, several expressions, the proposal
            # net's boxes): read once, shared by every expression
            one = read(boxes[:f].reshape(-1, 4), idx[:idx.numel() * f // n])
            return one.repeat(n // f, 1).to(out.features.dtype)
        return read(boxes.reshape(-1, 4), idx).to(out.features.dtype)

    def _proposals(self, frames: torch.Tensor, keys: list[bytes] | None, side: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """The proposal detector's ``(boxes (F, K, 4), scores (F, K))`` of ``frames``,
        from the memo for frames it has seen (``keys``: their digests; None: no memo)."""
        k, net = self.cfg.num_proposals, self._proposal[0]
        if keys is None:
            return P.detector_proposals(net, frames, k, side)
        return self._memo.per_frame(("det", side, k), keys, frames,
                                    lambda f: P.detector_proposals(net, f, k, side))

    def decode(self, heat, ctr, size, offset, stride: int):
        """Dense maps -> the top ``num_proposals`` boxes ``(N, K, 4)`` (model pixels) and
        their objectness ``(N, K)``: 3x3 peak NMS on the heatmap times centreness."""
        n, _, h, w = heat.shape
        prob = heat.sigmoid()
        peaks = prob * (F.max_pool2d(prob, 3, stride=1, padding=1) == prob)  # 3x3 NMS
        score = (peaks * ctr.sigmoid()).flatten(1)  # (N, h*w)
        k = min(self.cfg.num_proposals, h * w)
        top, cell = score.topk(k, dim=1)  # (N, K)
        cy, cx = (cell // w).to(heat.dtype), (cell % w).to(heat.dtype)
        off = offset.flatten(2).gather(2, cell[:, None].expand(-1, 2, -1))  # (N, 2, K)
        wh = size.flatten(2).gather(2, cell[:, None].expand(-1, 2, -1)).clamp(-4, 6).exp()
        px, py = (cx + off[:, 0]) * stride, (cy + off[:, 1]) * stride
        half_w, half_h = wh[:, 0] * stride / 2, wh[:, 1] * stride / 2
        boxes = torch.stack([px - half_w, py - half_h, px + half_w, py + half_h], dim=-1)
        return boxes.clamp(0, max(h, w) * stride), top
