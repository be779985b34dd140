"""The per-clip encoder of several streams in one batched pass (paper §3.3, inference).

Per clip of ``T`` frame sets a tracker runs :meth:`ViewSAM.encode_clip`: the text encoder,
the image encoder with the view token (Eq. 3-4) and VC-CMA (Eq. 5-7), and the Candidate
Generator (Eq. 14-18). None of it reads a stream's tracks, memory banks or identities; its
only state is the view token's EMA ``e_{t-1}`` (Eq. 4), an input and an output per row. So
the clips of several streams (one tracker each) stack as the ``B`` rows of one
``encode_clip`` call, and each stream then runs its stateful part (SAM2 with BAR per track,
Eq. 8-9, CGCT identities, Eq. 10-11) on its own row:

    inputs = [clip_input(tr, frames) for tr, frames in ...]   # None: no clip completed
    encodings = encode_clips(model, [c for c in inputs if c is not None])
    tracker.step(frames, encoding)                            # as tracker.step(frames)

What stacks: clips of one expression each, with the same ``V`` and ``T``, and all with or
all without a view-token state (a stream's first clip has none). Frames of different sizes
stack: each clip is resized to the model's ``S x S`` first, as ``encode_clip`` does, and its
``scale`` is its own. Expressions of different lengths are padded (masked tokens). A
tracker of several expressions is encoded on its own (its frames are already shared by its
expressions).

Equality: a clip encoded alone here is bit for bit the tracker's own encoding. In a batch
of several, each row equals its solo encoding up to float rounding: convolution kernels
(oneDNN on CPU, cuDNN on GPU) are chosen by batch size, so the FPN neck's and the Candidate
Generator's outputs differ by ~1e-6 (measured on the tiny model); ``tests/tracking/
test_encode.py`` and the service's equivalence test check that the tracks are the same.
No Ray here: :mod:`raysys.serving.replica` batches with ``@serve.batch``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, fields, replace

import numpy as np
import torch
import torch.nn.functional as F

from raysys.viewsam.attribute_roi import crop_frames_at

__all__ = ["ClipInput", "clip_input", "encode_clips"]


@dataclass
class ClipInput:
    """One tracker's clip, ready for the encoder."""

    images: torch.Tensor  # (V*T, 3, S, S) frames in [0, 1] at the model's size, rows (v, t)
    num_views: int
    num_frames: int
    size: tuple[int, int]  # (H, W) of the input frames
    text: dict  # the tracker's tokenized expressions, (E, L)
    view_ids: torch.Tensor  # (1, V)
    view_state: torch.Tensor | None  # (E, V, d_a) the view token's EMA (Eq. 4), or None
    crops: torch.Tensor | None = None  # (V*T, 3, Hc, Wc) the frames at the Candidate
    #   Generator's crop_frame size (its attribute_net or proposal_net), else None


def clip_input(tracker, frames=None) -> ClipInput | None:
    """The encoder input of the clip that the frame set ``frames`` completes in ``tracker``
    (a :class:`~raysys.tracking.tracker.MultiExpressionTracker`), None when it completes
    none; ``frames=None``: the buffered partial clip (what ``flush`` would encode)."""
    buf = list(tracker.buffer)
    if frames is not None:
        if len(buf) + 1 < tracker.cfg.clip_frames:
            return None
        buf.append([np.asarray(f) for f in frames])
    if not buf:
        return None
    arr = np.stack([np.stack(fs) for fs in buf], 1)  # (V, T, H, W, 3), as the tracker
    x = torch.from_numpy(arr).to(tracker.device).permute(0, 1, 4, 2, 3).float().div_(255)
    v, t, _, h, w = x.shape
    s = tracker.model.image_size
    images = x.flatten(0, 1)  # the ops and memory layout of ViewSAM.encode_clip
    cg = tracker.model.candidate_generator
    crops = None if cg is None or not cg.needs_crop_frames else \
        crop_frames_at(x[None], cg.cfg.crop_frame)
    if (h, w) != (s, s):
        images = F.interpolate(images, size=(s, s), mode="bilinear", align_corners=False)
    return ClipInput(images, v, t, (h, w), tracker.text, tracker.view_ids,
                     tracker.view_state, crops)


@torch.no_grad()
def encode_clips(model, inputs: list[ClipInput]) -> list:
    """:meth:`ViewSAM.encode_clip` of every input, in one call per group of inputs that
    stack (module doc); returns one ``ClipEncoding`` per input, in order, each as the
    tracker's own would be (``B`` = its expressions)."""
    groups: defaultdict[tuple, list[int]] = defaultdict(list)
    for i, c in enumerate(inputs):
        one = int(c.text["input_ids"].shape[0]) == 1
        key = (c.num_views, c.num_frames, c.view_state is None) if one else ("alone", i)
        groups[key].append(i)
    out: list = [None] * len(inputs)
    for idx in groups.values():
        for i, ce in zip(idx, _encode_group(model, [inputs[i] for i in idx]), strict=True):
            out[i] = ce
    return out


def _encode_group(model, group: list[ClipInput]) -> list:
    b, c0 = len(group), group[0]
    v, t, s = c0.num_views, c0.num_frames, model.image_size
    images = c0.images if b == 1 else torch.cat([c.images for c in group])
    frames = images.unflatten(0, (b, v, t))  # (B, V, T, 3, S, S)
    text = c0.text if b == 1 else _pad_text(model, [c.text for c in group])
    view_ids = torch.cat([c.view_ids for c in group])
    state = None if c0.view_state is None else torch.cat([c.view_state for c in group])
    crops = None if c0.crops is None else (c0.crops if b == 1 else torch.cat(
        [c.crops for c in group])).unflatten(0, (b, v, t))
    ce = model.encode_clip(frames, text, view_ids, state, crops)
    if b == 1:
        return [replace(ce, scale=_scale(c0.size, s, frames.device))]
    lens = [int(c.text["input_ids"].shape[1]) for c in group]
    return [_row(ce, j, v, t, lens[j], _scale(c.size, s, frames.device))
            for j, c in enumerate(group)]


def _scale(size: tuple[int, int], s: int, device) -> torch.Tensor:
    h, w = size
    return torch.tensor([s / w, s / h, s / w, s / h], device=device)  # as encode_clip


def _pad_text(model, texts: list[dict]) -> dict:
    """Tokenized expressions of one row each, padded to the longest (masked tokens)."""
    n = max(int(t["input_ids"].shape[1]) for t in texts)
    pad = getattr(model.text_encoder.tokenizer, "pad_token_id", None) or 0
    ids = [F.pad(t["input_ids"], (0, n - t["input_ids"].shape[1]), value=pad) for t in texts]
    mask = [F.pad(t["attention_mask"], (0, n - t["attention_mask"].shape[1])) for t in texts]
    return {"input_ids": torch.cat(ids), "attention_mask": torch.cat(mask)}


def _row(ce, j: int, v: int, t: int, length: int, scale: torch.Tensor):
    """Row ``j`` of a batched ``ClipEncoding``, shaped as a one-row encoding of its own:
    per-frame tensors (rows ``(b, v, t)``), per-view text (rows ``(b, v)``, its own
    ``length`` tokens), per-row tokens and state."""
    frame_rows, view_rows = slice(j * v * t, (j + 1) * v * t), slice(j * v, (j + 1) * v)
    enc = {k: [x[frame_rows] for x in val] for k, val in ce.enc.items()}
    cand = ce.cand
    if cand is not None:
        n = ce.enc["fpn"][-1].shape[0]
        cand = replace(cand, **{f.name: getattr(cand, f.name)[frame_rows]
                                for f in fields(cand)
                                if isinstance(getattr(cand, f.name), torch.Tensor)
                                and getattr(cand, f.name).shape[0] == n})

    def rows(x, sl):
        return None if x is None else x[sl]

    return replace(ce, enc=enc, cand=cand, scale=scale,
                   views=rows(ce.views, slice(j, j + 1)),
                   view_state=rows(ce.view_state, slice(j, j + 1)),
                   text_token=rows(ce.text_token, slice(j, j + 1)),
                   text=None if ce.text is None else ce.text[view_rows, :length],
                   text_mask=None if ce.text_mask is None else ce.text_mask[view_rows, :length],
                   text_ref=rows(ce.text_ref, view_rows))
