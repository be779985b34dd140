"""ViewSAM (paper §3.3): view-aware cross-modal semantics on a SAM2 video tracker.

Forward pass over a clip ``(B, V, T, 3, H, W)`` with one expression per sample:

1. frozen text encoder -> token features;
2. SAM2 image encoder over all ``B*V*T`` frames, with the view token (Eq. 3-4) computed
   after ``ViewTokenConfig.stage`` and VC-CMA adapters (Eq. 5-7) after their stages;
   the last VC-CMA stage's text ``T_ca`` (Eq. 7, one per view) is the text of steps 3 and 5;
3. Candidate Generator (Eq. 14-18) on the top FPN level: proposals + referring logits
   against the referring token ``t_R`` (the masked mean of ``T_ca``) and, with a text
   matcher, the frozen sentence vector;
4. slots and box prompts (:mod:`raysys.viewsam.prompts`);
5. frame by frame, SAM2's memory attention over a memory bank of previous frames'
   memory encodings (``SAM2Base._prepare_memory_conditioned_features``), the mask decoder
   prompted by the boxes, once with and once without memory, BAR (Eq. 8-9) fusing them,
   and ``SAM2Base._encode_new_memory`` on the fused mask for the next frames;
6. CGCT (Eq. 10-12) embeddings of every slot in every view and frame.

``losses(outputs, targets)``: the named losses and their weighted ``total``. Components
are passed in; :func:`raysys.viewsam.build.build_viewsam` wires them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from raysys.viewsam.attribute_roi import crop_frames_at
from raysys.viewsam.bar import BiasAwareRecalibration, bias_labels
from raysys.viewsam.base import condition_on_banks, decode_masks, encode_images, to_tokens
from raysys.viewsam.candidate_generator import CandidateGenerator, PseudoLabelTeacher
from raysys.viewsam.cgct import CGCT
from raysys.viewsam.config import ViewSAMConfig
from raysys.viewsam.data import ClipEncoding, ClipTargets, ViewSAMOutput
from raysys.viewsam.objective import candidate_loss_terms, compute_losses
from raysys.viewsam.osnet_backbone import slot_crops
from raysys.viewsam.prompts import frame_prompts, plan_slots
from raysys.viewsam.text_encoder import FrozenTextEncoder
from raysys.viewsam.vc_cma import VCCMA
from raysys.viewsam.view_token import ViewToken

__all__ = ["ViewSAM"]

_MEAN = (0.485, 0.456, 0.406)  # SAM2's ImageNet normalisation
_STD = (0.229, 0.224, 0.225)
# what SAM2 is given as memory on an initial frame (where it reads none)
_EMPTY_BANK: dict = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}


def _masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``(N, L, D)`` tokens over the valid ones of ``mask`` ``(N, L)`` -> ``(N, D)``."""
    m = mask[..., None].to(tokens.dtype)
    return (tokens * m).sum(1) / m.sum(1).clamp(min=1)


class ViewSAM(nn.Module):
    """ViewSAM model. Optional components are None when switched off in ``cfg``.

    Args:
        cfg: the configuration it was built from.
        sam2: a ``SAM2Base`` (frozen or not, as the builder decided).
        text_encoder: frozen text encoder.
        view_token, vc_cma, text_prompt, candidate_generator, bar, cgct: components;
            ``text_prompt`` (Linear text -> d_model) replaces VC-CMA in its ablation.
        teacher: box teacher for CG targets and prompts (default: pseudo-label boxes)."""

    def __init__(self, cfg: ViewSAMConfig, sam2: nn.Module, text_encoder: FrozenTextEncoder,
                 view_token: ViewToken | None = None, vc_cma: VCCMA | None = None,
                 text_prompt: nn.Module | None = None,
                 candidate_generator: CandidateGenerator | None = None,
                 bar: BiasAwareRecalibration | None = None, cgct: CGCT | None = None,
                 teacher=None) -> None:
        super().__init__()
        self.cfg = cfg
        self.sam2 = sam2
        self.text_encoder = text_encoder
        self.view_token = view_token
        self.vc_cma = vc_cma
        self.text_prompt = text_prompt
        self.candidate_generator = candidate_generator
        self.bar = bar
        self.cgct = cgct
        self.teacher = teacher if teacher is not None else PseudoLabelTeacher()
        self.image_size = int(sam2.image_size)
        self.register_buffer("pixel_mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> ViewSAM:
        """A frozen SAM2 stays in eval mode (no dropout in its memory attention), as a frozen
        backbone should; a trainable one follows ``mode``."""
        super().train(mode)
        if not any(p.requires_grad for p in self.sam2.parameters()):
            self.sam2.eval()
        return self

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Expressions -> ``{"input_ids", "attention_mask"}`` ``(B, L)`` for :meth:`forward`."""
        return self.text_encoder.tokenize(texts)

    # ------------------------------------------------------------------ forward
    def forward(self, frames: torch.Tensor, text: dict[str, torch.Tensor],
                targets: ClipTargets | None = None, view_ids: torch.Tensor | None = None,
                ) -> ViewSAMOutput:
        """Run ViewSAM over a clip.

        Args:
            frames: ``(B, V, T, 3, H, W)`` float RGB in [0, 1].
            text: tokenized expressions (:meth:`tokenize`), one per sample.
            targets: pseudo labels; they choose the tracked objects (see ``prompts``).
            view_ids: ``(B, V)`` camera index of each view, default ``0..V-1``.

        This is the training pass. Inference is :class:`raysys.tracking.ViewSAMTracker`,
        which calls :meth:`encode_clip` and :meth:`track_frame` online."""
        if targets is None:
            raise ValueError("ViewSAM.forward is the training pass and needs targets "
                             "(ClipTargets); track with raysys.tracking.ViewSAMTracker")
        b, v, t, h, w = self._check(frames, text, targets)
        targets = targets.to(frames.device)
        ce = self.encode_clip(frames, text, view_ids, crop_frames=targets.crop_frames)
        cb = None if ce.cand is None else ce.cand.boxes.reshape(b * v, t, *ce.cand.boxes.shape[1:])
        plan = plan_slots(targets, self.teacher, cb, shape=(b, v, t), scale=ce.scale,
                          prompt_source=self.cfg.prompt_source,
                          iou_floor=self.cfg.prompt_iou_floor)
        tr = self._track(ce.enc, plan, ce.text_token, (b, v, t), ce.text_ref)
        return self._assemble(tr, ce.enc, ce.views, ce.cand, plan, ce.scale, (b, v, t, h, w),
                              targets)

    def encode_clip(self, frames: torch.Tensor, text: dict[str, torch.Tensor],
                    view_ids: torch.Tensor | None = None,
                    view_state: torch.Tensor | None = None,
                    crop_frames: torch.Tensor | None = None) -> ClipEncoding:
        """Steps 1-3 of the module doc for a clip ``(B, V, T, 3, H, W)``: text, image encoder
        with view token and VC-CMA, Candidate Generator. The online tracker
        (:mod:`raysys.tracking`) calls it once per clip and tracks frame by frame with
        :meth:`track_frame`.

        Args:
            view_state: ``(B, V, d_a)`` the view token ``e`` of the previous clip's last
                frame (Eq. 4; online). The returned ``ClipEncoding.view_state`` is this
                clip's, to pass to the next.
            crop_frames: ``(B or 1, V, T, 3, Hc, Wc)`` the frames a CG's attribute and
                proposal nets read, brought to its ``crop_frame`` size here (training:
                the clip loader's ``crop_frames``); None: ``frames``.

        The returned encoding carries ``T_ca`` (Eq. 7, one per view, ``ClipEncoding.text``)
        and the referring token ``t_R`` (its masked mean, ``ClipEncoding.text_ref``): the
        text the Candidate Generator scores proposals against, and BAR's.

        One clip, several expressions: ``frames`` ``(1, V, T, 3, H, W)`` with ``E``
        tokenized expressions is encoded as if the clip were repeated ``E`` times (every
        output has ``B = E``), but the frames go through the image encoder once up to the
        first text-conditioned (VC-CMA) stage, the view token included when it comes
        before; only the rest runs once per expression. The view ids and ``view_state``
        of the shared part are those of the first row (the same clip, the same cameras)."""
        _, v, t, h, w = self._check(frames, text, None, shared=True)
        dev = frames.device
        b = int(text["input_ids"].shape[0])  # expressions: one per clip, or B on one clip
        if view_ids is None:
            view_ids = torch.arange(v, device=dev).expand(b, v)
        elif view_ids.shape[0] != b:
            view_ids = view_ids[:1].expand(b, v)
        s = self.image_size
        images = F.interpolate(frames.flatten(0, 2), size=(s, s), mode="bilinear",
                               align_corners=False) if (h, w) != (s, s) else frames.flatten(0, 2)
        images = (images - self.pixel_mean) / self.pixel_std  # (B*V*T, 3, S, S)
        tokens, tmask = self.text_encoder(text["input_ids"], text["attention_mask"])
        enc, views, state, t_ca = self._encode(images, tokens, tmask, view_ids, (b, v, t),
                                               view_state)
        t_mask = tmask.repeat_interleave(v, dim=0)  # (B*V, L)
        t_ref = _masked_mean(t_ca, t_mask)  # t_R (B*V, D_t), rows (b, v)
        cand = None
        if self.candidate_generator is not None:
            cg = self.candidate_generator
            # pixel RoIs on the model's input frames: the same resolution in training and
            # tracking, whatever size the frames arrive at
            pix = None if cg.pixel_head is None else \
                images.repeat(b * v * t // images.shape[0], 1, 1, 1)
            crops = None if not cg.needs_crop_frames else crop_frames_at(
                frames if crop_frames is None else crop_frames, cg.cfg.crop_frame)
            sent = None if not cg.cfg.text_matcher else F.normalize(  # the sentence vector
                _masked_mean(tokens, tmask).float(), dim=-1).repeat_interleave(v * t, 0)
            cand = cg(enc["fpn"][-1], t_ref.repeat_interleave(t, 0),  # T_ca, Eq. 7
                      self.sam2.backbone_stride, enc["fpn"][-2], pix, crops, sent)
        scale = torch.tensor([s / w, s / h, s / w, s / h], device=dev)
        text_tok = None if self.text_prompt is None else \
            self.text_prompt(_masked_mean(tokens, tmask))  # (B, d)
        return ClipEncoding(enc=enc, views=views, view_state=state, cand=cand, scale=scale,
                            text_token=text_tok, text=t_ca, text_mask=t_mask,
                            text_ref=t_ref)

    def _check(self, frames, text, targets, shared: bool = False,
               ) -> tuple[int, int, int, int, int]:
        """Shapes ``(B, V, T, H, W)``; ``shared``: one clip (B = 1) may go with several
        expressions (:meth:`encode_clip`)."""
        if frames.dim() != 6 or frames.shape[3] != 3:
            raise ValueError(f"frames must be (B, V, T, 3, H, W), got {tuple(frames.shape)}")
        b, v, t, _, h, w = frames.shape
        if not isinstance(text, dict) or "input_ids" not in text or "attention_mask" not in text:
            raise ValueError("text must be the dict of model.tokenize(expressions)")
        if text["input_ids"].shape[0] != b and not (shared and b == 1):
            raise ValueError(f"need one expression per sample: {text['input_ids'].shape[0]} "
                             f"for B={b}")
        if targets is not None:
            targets.check(b, v, t, h, w)
        return b, v, t, h, w

    def _encode(self, images, tokens, tmask, view_ids, shape, view_state=None,
                ) -> tuple[dict, torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """Image encoder with the view token (Eq. 3-4) and VC-CMA (Eq. 5-7) hooks (step 2
        of the module doc). Returns the encodings, the view tokens ``(B, V, T, d_a)``, the
        last frame's token (the state to carry on) and ``T_ca`` ``(B*V, L, D_t)`` (the
        frozen tokens of each view without VC-CMA)."""
        b, v, t = shape
        state: dict = {"view": None, "ema": None,
                       "text": tokens.repeat_interleave(v, dim=0)}  # T_text (B*V, L, D_t)
        text_mask = tmask.repeat_interleave(v, dim=0)  # (B*V, L)

        def hook(stage: int, x: torch.Tensor) -> torch.Tensor:  # x: (B*V*T, h, w, C)
            rows = x.shape[0] // (v * t)  # B, or 1 while one clip is shared by B texts
            if self.view_token is not None and stage == self.cfg.view_token.stage:
                pooled = x.mean((1, 2)).reshape(rows, v, t, -1)
                vs = None if view_state is None else view_state[:rows]
                view, ema = self.view_token(pooled, view_ids[:rows], vs)
                state["view"] = view.expand(b, -1, -1, -1) if rows != b else view
                state["ema"] = ema.expand(b, -1, -1) if rows != b else ema
            if self.vc_cma is not None and stage in self.vc_cma.stages:
                if rows != b:  # text-conditioned from here on: one copy per expression
                    x = x.repeat(b, 1, 1, 1)
                vt = None if state["view"] is None else state["view"].reshape(b * v * t, -1)
                x, state["text"] = self.vc_cma(stage, x, state["text"], text_mask, vt, t)
            return x

        enc = encode_images(self.sam2, images, hook)
        if enc["fpn"][-1].shape[0] != b * v * t:  # nothing text-conditioned: repeat
            k = b * v * t // enc["fpn"][-1].shape[0]
            enc = {key: [x.repeat(k, *[1] * (x.dim() - 1)) for x in val]
                   for key, val in enc.items()}
        return enc, state["view"], state["ema"], state["text"]

    def _track(self, enc, plan, text_tok, shape, text_ref=None) -> dict[str, torch.Tensor]:
        """Frame-by-frame SAM2 tracking with BAR (step 5). Returns stacked ``(B*V, T, O, ...)``.

        ``text_ref``: ``(B*V, D_t)`` the referring token t_R of each view (BAR, Eq. 8-9); the
        valid slots of a view-frame are BAR's objects ``k`` (padding slots stand alone)."""
        b, v, t = shape
        o = plan.num_slots
        ref = None if text_ref is None else text_ref.repeat_interleave(o, 0)  # rows (b, v, o)
        n = b * v * o
        valid = plan.valid[:, None].expand(b, v, o).reshape(n)
        rows = torch.arange(n, device=valid.device)
        groups = torch.where(valid, rows // max(o, 1), b * v + rows)
        per_view = [x.reshape(b * v, t, *x.shape[1:]) for x in enc["fpn"]]
        pos = enc["pos"][-1].reshape(b * v, t, *enc["pos"][-1].shape[1:])
        extra = None if text_tok is None else text_tok.repeat_interleave(v * o, 0)[:, None]
        bank: dict = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
        frames: list[dict[str, torch.Tensor]] = []
        for i in range(t):
            feats = [x[:, i].repeat_interleave(o, 0) for x in per_view]  # (N, C, h, w)
            boxes, has_box = frame_prompts(plan, i)
            out = self.track_frame(i, t, feats, pos[:, i].repeat_interleave(o, 0), boxes,
                                   has_box, extra, bank, init=i == 0, text_ref=ref,
                                   groups=groups)
            frames.append(out | {"boxes": boxes, "has_box": has_box})
        # each (N, ...) with rows (b, v, o) -> (B*V, T, O, ...)
        return {k: torch.stack([f[k].reshape(b * v, o, *f[k].shape[1:]) for f in frames], 1)
                for k in frames[0]}

    def track_frame(self, i: int, num_frames: int, feats: list[torch.Tensor], pos: torch.Tensor,
                    boxes: torch.Tensor, has_box: torch.Tensor, extra: torch.Tensor | None,
                    bank: dict | list[dict], init: bool, text_ref: torch.Tensor | None = None,
                    groups: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One frame for ``N`` objects: memory-guided (+ memory-free) decoding, BAR, memory.

        Args:
            i: frame index in the stream (SAM2's temporal positions in ``bank``).
            num_frames: stream length bound for SAM2's object-pointer window.
            feats: FPN levels of the frame, each ``(N, C, h, w)``; pos: top-level pos enc.
            boxes, has_box: ``(N, 4)`` model-pixel prompts and whether each is used.
            extra: extra sparse prompt tokens ``(N, k, d)`` (plain-text ablation) or None.
            bank: SAM2 ``output_dict`` of these objects (batched, as in training), or a list
                of ``N`` banks, one per object (the online tracker's tracks, each with its own
                history; see :func:`condition_on_banks`); updated in place with frame ``i``.
            init: first frame of the objects (no memory; stored as a conditioning frame).
            text_ref: ``(N, D_t)`` the referring token t_R of each object (BAR needs it).
            groups: ``(N,)`` frame of each object: BAR's softmax over objects (Eq. 8) and
                its ``p_bias`` are per frame; default: each object alone.
        """
        top = to_tokens(feats[-1])  # (hw, N, d)
        size = [tuple(feats[-1].shape[-2:])]
        high_res = feats[:-1] or None
        sam2 = self.sam2
        banks = bank if isinstance(bank, list) else None
        if banks is not None:
            assert len(banks) == top.shape[1], f"{len(banks)} banks for {top.shape[1]} objects"

        def condition(init: bool) -> torch.Tensor:  # (N, d, h, w)
            if banks is not None and not init:
                return condition_on_banks(sam2, i, top, to_tokens(pos), size[0], banks,
                                          num_frames)
            return sam2._prepare_memory_conditioned_features(
                frame_idx=i, is_init_cond_frame=init, current_vision_feats=[top],
                current_vision_pos_embeds=[to_tokens(pos)], feat_sizes=size,
                output_dict=_EMPTY_BANK if banks is not None else bank, num_frames=num_frames)

        feat_b = condition(init)  # F^b: post-memory-attention features (Eq. 19)
        mem = decode_masks(sam2, feat_b, high_res, boxes, has_box, extra)
        masks, obj_ptr = mem.masks, mem.obj_ptr
        zeros = masks.new_zeros(masks.shape[0])
        p, logit, label = zeros, zeros, zeros
        if self.bar is not None and not init:
            if text_ref is None:
                raise ValueError("BAR needs the referring token t_R (text_ref) of each object")
            feat_u = condition(True)  # F^u: the frame's own features (Eq. 20)
            free = decode_masks(sam2, feat_u, high_res, boxes, has_box, extra)
            rec = self.bar(feat_b, feat_u, mem.masks, free.masks, text_ref, groups)  # Eq. 8-9
            masks, p, logit = rec.mask_logits, rec.p_bias, rec.bias_logit
            label = bias_labels(mem.masks, free.masks)  # Eq. 21
            obj_ptr = (1 - p[:, None]) * mem.obj_ptr + p[:, None] * free.obj_ptr
        s = self.image_size
        high = F.interpolate(masks, size=(s, s), mode="bilinear", align_corners=False)
        feat_mem, pos_mem = sam2._encode_new_memory(
            current_vision_feats=[top], feat_sizes=size, pred_masks_high_res=high,
            object_score_logits=mem.object_score_logits, is_mask_from_pts=True)
        key = "cond_frame_outputs" if init else "non_cond_frame_outputs"
        if banks is None:
            bank[key][i] = {"maskmem_features": feat_mem, "maskmem_pos_enc": pos_mem,
                            "obj_ptr": obj_ptr}
        else:  # copies, so that a track keeps only its own memory alive
            for j, b in enumerate(banks):
                b[key][i] = {"maskmem_features": feat_mem[j:j + 1].clone(),
                             "maskmem_pos_enc": [p[j:j + 1].clone() for p in pos_mem],
                             "obj_ptr": obj_ptr[j:j + 1].clone()}
        return {"masks": masks, "scores": mem.object_score_logits[:, 0], "p_bias": p,
                "bias_logit": logit, "bias_label": label}

    def _assemble(self, tr, enc, views, cand, plan, scale, shape, targets=None
                  ) -> ViewSAMOutput:
        """Step 6 (CGCT; its OSNet backbone sees the targets' crops) and reshaping into per
        (view, frame) outputs in input pixels."""
        b, v, t, h, w = shape
        o = plan.num_slots
        low = tr["masks"][:, :, :, 0]  # (B*V, T, O, S/4, S/4)
        emb = None
        if self.cgct is not None:
            vt = None if self.cgct.film is None else views.reshape(b * v * t, -1)
            crop = () if self.cgct.backbone is None else slot_crops(
                targets, plan.index, scale, low.shape[-1], self.image_size)
            emb = self.cgct(enc["stages"], low.sigmoid().flatten(0, 1), vt, *crop)  # (BVT,O,D)
            emb = emb.reshape(b, v, t, o, -1)
        masks = low.flatten(0, 1)  # (B*V*T, O, S/4, S/4)
        if masks.shape[-2:] != (h, w):
            masks = F.interpolate(masks, size=(h, w), mode="bilinear", align_corners=False)
        if cand is not None:
            k = cand.boxes.shape[1]
            boxes = cand.boxes.reshape(b, v, t, k, 4) / scale
            scores = cand.objectness.reshape(b, v, t, k)
            refer = cand.refer_logits.reshape(b, v, t, k)
        else:
            boxes = masks.new_zeros(b, v, t, 0, 4)
            scores = refer = masks.new_zeros(b, v, t, 0)
        return ViewSAMOutput(
            mask_logits=masks.reshape(b, v, t, o, h, w),
            object_score_logits=tr["scores"].reshape(b, v, t, o),
            p_bias=tr["p_bias"].reshape(b, v, t, o), embeddings=emb, boxes=boxes,
            proposal_scores=scores, refer_logits=refer,
            prompt_boxes=tr["boxes"].reshape(b, v, t, o, 4) / scale,
            prompted=tr["has_box"].reshape(b, v, t, o), slot_valid=plan.valid,
            slot_ids=plan.ids, slot_index=plan.index, view_tokens=views, candidates=cand,
            bias_logits=tr["bias_logit"].reshape(b, v, t, o),
            bias_labels=tr["bias_label"].reshape(b, v, t, o), image_size=self.image_size)

    # ------------------------------------------------------------------ losses
    def candidate_losses(self, frames: torch.Tensor, text: dict[str, torch.Tensor],
                         targets: ClipTargets | None = None, view_ids: torch.Tensor | None = None,
                         ) -> dict[str, torch.Tensor]:
        """The Candidate Generator's losses alone (Eq. 14-18) and their weighted ``total``.

        Steps 1-3 only: a stage that trains nothing but the CG needs no SAM2 tracking, which
        is most of the cost of a full forward pass.
        """
        if self.candidate_generator is None:
            raise ValueError("this ViewSAM has no Candidate Generator")
        b, v, t, h, w = self._check(frames, text, targets)
        targets = targets.to(frames.device)
        ce = self.encode_clip(frames, text, view_ids, crop_frames=targets.crop_frames)
        res = candidate_loss_terms(self, ce.cand, targets, *self.teacher(targets), (h, w))
        lc = self.cfg.loss
        res["total"] = sum(getattr(lc, k) * val for k, val in res.items())
        return res

    def losses(self, outputs: ViewSAMOutput, targets: ClipTargets) -> dict[str, torch.Tensor]:
        """Named losses of a forward pass run with ``targets``, plus their weighted ``total``.

        Keys: ``mask``; with CG ``cg_heatmap``, ``cg_centerness``, ``cg_box``, ``cg_match``,
        ``cg_rank``; with BAR ``bar``; with CGCT and its loss ``consistency_intra``,
        ``consistency_inter``; always ``total``.
        """
        return compute_losses(self, outputs, targets)

