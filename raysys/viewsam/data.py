"""Typed inputs and outputs of a ViewSAM forward pass over a clip.

A clip is ``B`` samples x ``V`` synchronised views x ``T`` frames, with one referring
expression per sample. Object ``m`` of a sample has one global id across its views and
frames (the Stage 1 cross-view trajectory). Coordinates are in input-frame pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from raysys.viewsam.candidate_generator import CandidateOutput

__all__ = ["ClipEncoding", "ClipTargets", "ViewSAMOutput"]


@dataclass
class ClipTargets:
    """Pseudo labels of a clip (Stage 1 output), padded to ``M`` objects per sample."""

    boxes: torch.Tensor  # (B, V, T, M, 4) float xyxy boxes in input pixels (the teacher)
    visible: torch.Tensor  # (B, V, T, M) bool: object present in that view and frame
    ids: torch.Tensor  # (B, M) long global ids, -1 = padding
    referred: torch.Tensor  # (B, M) bool: the expression refers to this object
    masks: torch.Tensor | None = None  # (B, V, T, M, H, W) masks; None: boxes filled in
    # every labelled object of each frame (not only the M), for the CG's dense branch;
    # None: the M objects' boxes serve (objects left out of the M then count as background)
    dense_boxes: torch.Tensor | None = None  # (B, V, T, A, 4) float xyxy, input pixels
    dense_visible: torch.Tensor | None = None  # (B, V, T, A) bool
    # each object's crop at its box, cut from the full-resolution frame: CGCT's OSNet input
    crops: torch.Tensor | None = None  # (B, V, T, M, 3, h, w) uint8
    # the frames at the Candidate Generator's crop_frame size (its attribute_net's crops)
    crop_frames: torch.Tensor | None = None  # (B, V, T, 3, Hc, Wc) uint8

    def check(self, b: int, v: int, t: int, h: int, w: int) -> int:
        """Validate shapes against a ``(B, V, T, 3, H, W)`` clip; returns ``M``."""
        if self.boxes.dim() != 5 or tuple(self.boxes.shape[:3]) != (b, v, t) or \
                self.boxes.shape[-1] != 4:
            raise ValueError(f"targets.boxes must be (B, V, T, M, 4) = ({b}, {v}, {t}, M, 4), "
                             f"got {tuple(self.boxes.shape)}")
        m = self.boxes.shape[3]
        for name, want in (("visible", (b, v, t, m)), ("ids", (b, m)), ("referred", (b, m))):
            got = tuple(getattr(self, name).shape)
            if got != want:
                raise ValueError(f"targets.{name} must be {want}, got {got}")
        if self.masks is not None and tuple(self.masks.shape) != (b, v, t, m, h, w):
            raise ValueError(f"targets.masks must be {(b, v, t, m, h, w)}, "
                             f"got {tuple(self.masks.shape)}")
        if (self.dense_boxes is None) != (self.dense_visible is None):
            raise ValueError("targets.dense_boxes and targets.dense_visible come together")
        if self.dense_boxes is not None:
            db, dv = tuple(self.dense_boxes.shape), tuple(self.dense_visible.shape)
            if len(db) != 5 or db[:3] != (b, v, t) or db[4] != 4 or dv != db[:4]:
                raise ValueError(f"targets.dense_boxes must be ({b}, {v}, {t}, A, 4) and "
                                 f"dense_visible ({b}, {v}, {t}, A), got {db} and {dv}")
        return m

    def to(self, device: torch.device | str) -> ClipTargets:
        def opt(x, bool_=False):
            return None if x is None else (x.to(device).bool() if bool_ else x.to(device))

        return ClipTargets(self.boxes.to(device), self.visible.to(device).bool(),
                           self.ids.to(device).long(), self.referred.to(device).bool(),
                           opt(self.masks), opt(self.dense_boxes),
                           opt(self.dense_visible, True), opt(self.crops),
                           opt(self.crop_frames))


@dataclass
class ViewSAMOutput:
    """Per (view, frame) predictions for ``O`` object slots per sample.

    With targets, slot ``o`` of sample ``b`` is its ``o``-th referred object
    (``slot_index``); without, slots come from the top referred proposals of frame 0.
    """

    mask_logits: torch.Tensor  # (B, V, T, O, H, W) recalibrated mask logits
    object_score_logits: torch.Tensor  # (B, V, T, O) SAM2 object-presence logits
    p_bias: torch.Tensor  # (B, V, T, O) BAR's bias probability, per frame (0 without BAR / t=0)
    embeddings: torch.Tensor | None  # (B, V, T, O, D) CGCT identity embeddings
    boxes: torch.Tensor  # (B, V, T, K, 4) CG proposals, input pixels (K=0 without CG)
    proposal_scores: torch.Tensor  # (B, V, T, K) CG objectness
    refer_logits: torch.Tensor  # (B, V, T, K) CG proposal-expression logits
    prompt_boxes: torch.Tensor  # (B, V, T, O, 4) boxes that prompted SAM2, input pixels
    prompted: torch.Tensor  # (B, V, T, O) bool: a box prompted that slot
    slot_valid: torch.Tensor  # (B, O) bool
    slot_ids: torch.Tensor  # (B, O) long global ids (-1 unknown / padding)
    slot_index: torch.Tensor  # (B, O) long index into the targets' M objects (0 if none)
    view_tokens: torch.Tensor | None  # (B, V, T, d_a)
    # for the losses
    candidates: CandidateOutput | None  # raw CG outputs over B*V*T frames, model pixels
    bias_logits: torch.Tensor  # (B, V, T, O)
    bias_labels: torch.Tensor  # (B, V, T, O) disjointness labels (Eq. 21), no gradient
    image_size: int  # SAM2 model side S (model pixel coordinates are in [0, S])


@dataclass
class ClipEncoding:
    """What :meth:`ViewSAM.encode_clip` computes once per clip (steps 1-3)."""

    enc: dict  # encode_images output over B*V*T frames: "stages", "fpn", "pos"
    views: torch.Tensor | None  # (B, V, T, d_a) view tokens (None without a view token)
    view_state: torch.Tensor | None  # (B, V, d_a) last frame's token e_T (Eq. 4; online carry)
    cand: CandidateOutput | None  # CG outputs over B*V*T frames, model pixels
    scale: torch.Tensor  # (4,) input px -> model px factors
    text_token: torch.Tensor | None  # (B, d) plain-text prompt token (VC-CMA ablation)
    # T_ca (Eq. 7), the text every module after VC-CMA uses, one per view, rows (b, v), in
    # the text encoder's width D_t (the frozen tokens of each view without VC-CMA)
    text: torch.Tensor | None = None  # (B*V, L, D_t)
    text_mask: torch.Tensor | None = None  # (B*V, L) bool, True = valid token
    text_ref: torch.Tensor | None = None  # (B*V, D_t) t_R: masked mean of T_ca
