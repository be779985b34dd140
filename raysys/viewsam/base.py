"""The SAM2 base of ViewSAM: loading, and thin wrappers around ``SAM2Base``'s own parts.

ViewSAM (paper §3.3) sits on a SAM2 video tracker: image encoder (Hiera trunk + FPN neck),
memory attention, memory encoder, prompt encoder and mask decoder. This module builds a
``sam2.modeling.sam2_base.SAM2Base`` from a SAM2 YAML (a name inside the ``sam2`` package,
a local file, or the embedded tiny default) and exposes the two steps ViewSAM needs to
change:

* :func:`encode_images` runs the image encoder block by block (as ``Hiera.forward`` +
  ``ImageEncoder.forward`` + ``SAM2Base.forward_image`` do) with a hook after every Hiera
  stage, where VC-CMA adapters and the view token plug in;
* :func:`decode_masks` runs the prompt encoder + mask decoder on box prompts (as
  ``SAM2Base._forward_sam_heads`` does, single-mask output) and also returns the decoder's
  object token and accepts extra sparse prompt tokens (the plain-text-prompt ablation).

Memory conditioning and memory encoding are SAM2's own
``_prepare_memory_conditioned_features`` / ``_encode_new_memory``, called as they are;
:func:`condition_on_banks` is the former for many objects with a memory bank each (the
online tracker's tracks), batched through SAM2's memory attention.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "TINY_SAM2_CONFIG",
    "EMBEDDED_SAM2_CHECKPOINT",
    "EMBEDDED_SAM2_FILES",
    "resolve_sam2_checkpoint",
    "Sam2Dims",
    "MaskDecoding",
    "resolve_sam2_config",
    "sam2_yaml_text",
    "sam2_image_size",
    "build_sam2_base",
    "sam2_dims",
    "encode_images",
    "decode_masks",
    "to_tokens",
    "condition_on_banks",
]

TINY_SAM2_CONFIG = "tiny"  # alias of the embedded default, configs/sam2_tiny.yaml
# aliases of the tiny bases the package ships (weights/, each with a model card beside it;
# made by this project's own code on its own generated data, never on a seed a report
# scores): "embedded" (128 px, the default of the quick schedule) and "embedded-256"
# (256 px, pre-trained the way SAM2 is, memory carrying the prompt; `raysys pretrain-base`
# on a GPU, raysys.training.pretrain_base)
EMBEDDED_SAM2_CHECKPOINT = "embedded"
EMBEDDED_SAM2_FILE = "sam2_tiny128_synth.pt"
EMBEDDED_SAM2_FILES = {EMBEDDED_SAM2_CHECKPOINT: EMBEDDED_SAM2_FILE,
                       "embedded-256": "sam2_tiny256_synth.pt"}


def resolve_sam2_config(config: str | Path | None) -> Path:
    """Find a SAM2 YAML: ``None``/``"tiny"`` (embedded), a local file, or a ``sam2`` name.

    Package names are those ``sam2.build_sam`` takes, e.g.
    ``"configs/sam2.1/sam2.1_hiera_b+.yaml"`` (the ``.yaml`` suffix and the
    ``configs/sam2.1/`` prefix may be left out).
    """
    if config is None or str(config) == TINY_SAM2_CONFIG:
        return Path(str(resources.files("raysys.viewsam") / "configs" / "sam2_tiny.yaml"))
    path = Path(config)
    if path.is_file():
        return path
    import sam2

    root = Path(sam2.__file__).parent
    name = str(config) if str(config).endswith(".yaml") else f"{config}.yaml"
    for cand in (root / name, root / "configs" / "sam2.1" / name, root / "configs" / name):
        if cand.is_file():
            return cand
    known = sorted(str(p.relative_to(root)) for p in (root / "configs").rglob("*.yaml"))
    raise FileNotFoundError(f"SAM2 config {config!r} is neither a file nor a config of the sam2 "
                            f"package; valid names: 'tiny', {', '.join(known)}")


def resolve_sam2_checkpoint(checkpoint: str | Path | None) -> Path | None:
    """A SAM2 ``.pt`` path: ``None`` (random init), an alias of a tiny base the package ships
    (:data:`EMBEDDED_SAM2_FILES`: ``"embedded"``, ``"embedded-256"``) or a local file; a
    missing file raises an error naming it and how to get it."""
    if checkpoint is None:
        return None
    if str(checkpoint) in EMBEDDED_SAM2_FILES:
        name = EMBEDDED_SAM2_FILES[str(checkpoint)]
        path = Path(str(resources.files("raysys.viewsam") / "weights" / name))
        if not path.is_file():
            raise FileNotFoundError(
                f"the embedded SAM2 base {path} is missing from this install: make it with "
                "`raysys pretrain-base --out RUN` and copy RUN/sam2_base.pt there, or pass "
                "--sam2-checkpoint FILE")
        return path
    ckpt = Path(checkpoint)
    if ckpt.is_dir():
        from raysys.viewsam.safe_load import read_sam2_file

        read_sam2_file(ckpt)  # says what the folder is (e.g. a ViewSAM checkpoint)
    if not ckpt.is_file():
        raise FileNotFoundError(f"SAM2 checkpoint {ckpt} not found: pass a local SAM2 .pt "
                                "file (e.g. sam2.1_hiera_base_plus.pt from the SAM2 releases), "
                                f"one of {sorted(EMBEDDED_SAM2_FILES)} for a tiny base this "
                                "package ships, or None for random init")
    return ckpt


def sam2_yaml_text(sam2_config: str | None, image_size: int | None = None) -> str:
    """The SAM2 YAML of a run as text, optionally resized to ``image_size``.

    Resizing changes ``model.image_size`` and the memory attention's RoPE ``feat_sizes``
    (``image_size / 16``); parameters are unchanged. The text travels to the workers and is
    saved in every checkpoint, so a model rebuilds without the original file.
    """
    from omegaconf import OmegaConf

    from raysys.viewsam.sam2_yaml import read_sam2_yaml

    cfg = read_sam2_yaml(resolve_sam2_config(sam2_config))  # refused _target_: before any work
    if image_size is not None:
        cfg.model.image_size = int(image_size)
        layer = cfg.model.memory_attention.layer
        side = int(image_size) // 16
        for att in ("self_attention", "cross_attention"):
            if "feat_sizes" in layer[att]:
                layer[att].feat_sizes = [side, side]
    return OmegaConf.to_yaml(cfg)


def sam2_image_size(yaml_text: str) -> int:
    """``model.image_size`` of a SAM2 YAML text."""
    from omegaconf import OmegaConf

    return int(OmegaConf.create(yaml_text).model.image_size)


def build_sam2_base(
    config: str | Path | None = None, checkpoint: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """Instantiate ``SAM2Base`` from a YAML and optionally load a local checkpoint.

    The YAML is read with OmegaConf (safe YAML) and instantiated directly (no Hydra compose,
    so any local file works) once every ``_target_`` in it passed the allowlist
    (:func:`raysys.viewsam.sam2_yaml.instantiate_sam2`). A checkpoint is a SAM2 ``.pt``
    with a ``"model"`` state dict (or ``"embedded"``, :func:`resolve_sam2_checkpoint`), read
    with ``weights_only=True`` (:func:`raysys.viewsam.safe_load.read_sam2_file`); a missing
    or unexpected key or a shape mismatch is an error naming them.
    """
    from raysys.viewsam.safe_load import load_state, read_sam2_file
    from raysys.viewsam.sam2_yaml import instantiate_sam2, read_sam2_yaml

    path = resolve_sam2_config(config)
    cfg = read_sam2_yaml(path)
    model = instantiate_sam2(cfg, str(path), "sam2.modeling.sam2_base.SAM2Base")
    ckpt = resolve_sam2_checkpoint(checkpoint)
    if ckpt is not None:
        load_state(model, read_sam2_file(ckpt)["model"], f"SAM2 checkpoint {ckpt}",
                   hint="pass the SAM2 YAML it was made with (--sam2-config)")
    return model.to(device)


@dataclass(frozen=True)
class Sam2Dims:
    """Sizes of a built SAM2 that ViewSAM's module widths derive from."""

    d_model: int  # neck / prompt / mask-decoder width (256 in SAM2.1)
    mem_dim: int  # memory encoder output width (64 in SAM2.1)
    stage_channels: tuple[int, ...]  # Hiera stage widths, highest resolution first
    image_size: int  # square model input side (1024 in SAM2.1)
    stride: int  # stride of the top FPN level (16)


def sam2_dims(sam2: nn.Module) -> Sam2Dims:
    trunk = sam2.image_encoder.trunk
    assert trunk.return_interm_layers, "ViewSAM needs every Hiera stage output"
    return Sam2Dims(d_model=int(sam2.hidden_dim), mem_dim=int(sam2.mem_dim),
                    stage_channels=tuple(int(c) for c in trunk.channel_list[::-1]),
                    image_size=int(sam2.image_size), stride=int(sam2.backbone_stride))


StageHook = Callable[[int, torch.Tensor], torch.Tensor]


def encode_images(sam2: nn.Module, images: torch.Tensor, hook: StageHook | None = None) -> dict:
    """Image encoder with a hook after each Hiera stage.

    Args:
        images: ``(N, 3, S, S)`` normalised frames.
        hook: ``hook(stage, x) -> x`` with ``x`` ``(N, h, w, C_stage)`` (Hiera's layout).

    A hook may return more rows than it was given (``k * N``, ``k`` copies of the ``N``
    frames, copy outer: one clip encoded once up to a text-conditioned stage, then once per
    expression); the earlier stages are then repeated to match, so every output has the
    final row count.

    Returns:
        dict with ``stages``: list of ``(N, C_s, h_s, w_s)`` (after hooks, high-res first);
        ``fpn``: FPN levels kept by ``scalp`` ``(N, d, h, w)`` (levels 0/1 already passed
        through the mask decoder's ``conv_s0``/``conv_s1`` when high-res features are used);
        ``pos``: their positional encodings.
    """
    trunk = sam2.image_encoder.trunk
    x = trunk.patch_embed(images)  # (N, h, w, C0)
    x = x + trunk._get_pos_embed(x.shape[1:3])
    stages: list[torch.Tensor] = []
    for i, blk in enumerate(trunk.blocks):
        x = blk(x)
        if i in trunk.stage_ends:
            if hook is not None:
                x = hook(len(stages), x)
            stages.append(x.permute(0, 3, 1, 2))
    n = x.shape[0]
    stages = [st if st.shape[0] == n else st.repeat(n // st.shape[0], 1, 1, 1)
              for st in stages]
    fpn, pos = sam2.image_encoder.neck(stages)
    scalp = sam2.image_encoder.scalp
    if scalp > 0:
        fpn, pos = fpn[:-scalp], pos[:-scalp]
    fpn = list(fpn)
    if sam2.use_high_res_features_in_sam:
        fpn[0] = sam2.sam_mask_decoder.conv_s0(fpn[0])
        fpn[1] = sam2.sam_mask_decoder.conv_s1(fpn[1])
    return {"stages": stages, "fpn": fpn, "pos": list(pos)}


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """``(N, C, h, w)`` -> ``(h*w, N, C)``, the sequence layout of SAM2's memory functions."""
    return x.flatten(2).permute(2, 0, 1)


@dataclass
class MaskDecoding:
    """Mask decoder outputs for ``N`` prompted objects."""

    masks: torch.Tensor  # (N, 1, S/4, S/4) mask logits
    ious: torch.Tensor  # (N, 1) predicted IoU
    token: torch.Tensor  # (N, d) object (mask) token from the decoder's transformer
    obj_ptr: torch.Tensor  # (N, d) object pointer for the memory bank
    object_score_logits: torch.Tensor  # (N, 1) object presence logit


def decode_masks(
    sam2: nn.Module, pix_feat: torch.Tensor, high_res: list[torch.Tensor] | None,
    boxes: torch.Tensor, has_box: torch.Tensor, extra_tokens: torch.Tensor | None = None,
) -> MaskDecoding:
    """Prompt encoder + mask decoder on box prompts (``SAM2Base._forward_sam_heads``).

    Args:
        pix_feat: ``(N, d, S/16, S/16)`` (memory-conditioned or memory-free) features.
        high_res: the two high-res FPN levels ``(N, d/8, S/4, S/4)``, ``(N, d/4, S/8, S/8)``.
        boxes: ``(N, 4)`` xyxy in model pixels; has_box: ``(N,)`` bool, False = no prompt
            (padding points, as SAM2 does when tracking without clicks).
        extra_tokens: ``(N, k, d)`` appended to the sparse prompts (e.g. a text token).

    Unlike ``_forward_sam_heads``, masks are not hard-set to -1024 where the object score
    says "absent", so that the mask loss keeps its gradient; the memory encoder still sees
    the presence logit through ``no_obj_embed_spatial``.
    """
    n = pix_feat.shape[0]
    assert boxes.shape == (n, 4) and has_box.shape == (n,), (
        f"boxes (N, 4) / has_box (N,) for N={n}, got {tuple(boxes.shape)}, {tuple(has_box.shape)}")
    coords = boxes.reshape(n, 2, 2) * has_box[:, None, None]  # (N, 2, 2) box corners
    labels = torch.tensor([2, 3], dtype=torch.int32, device=boxes.device).expand(n, 2)
    labels = torch.where(has_box[:, None], labels, torch.full_like(labels, -1))  # (N, 2)
    pe = sam2.sam_prompt_encoder
    sparse, dense = pe(points=(coords, labels), boxes=None, masks=None)  # (N, 3, d), (N, d, h, w)
    if extra_tokens is not None:
        sparse = torch.cat([sparse, extra_tokens.to(sparse.dtype)], dim=1)
    masks, ious, tokens, obj_logits = sam2.sam_mask_decoder(
        image_embeddings=pix_feat, image_pe=pe.get_dense_pe(), sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense, multimask_output=False, repeat_image=False,
        high_res_features=high_res)
    token = tokens[:, 0]  # (N, d)
    obj_ptr = sam2.obj_ptr_proj(token)
    if sam2.pred_obj_scores:
        present = obj_logits.sigmoid() if sam2.soft_no_obj_ptr else (obj_logits > 0).float()
        if sam2.fixed_no_obj_ptr:
            obj_ptr = present * obj_ptr
        obj_ptr = obj_ptr + (1 - present) * sam2.no_obj_ptr
    return MaskDecoding(masks=masks.float(), ious=ious, token=token, obj_ptr=obj_ptr,
                        object_score_logits=obj_logits)


def _memory_tokens(sam2: nn.Module, frame_idx: int, bank: dict, num_frames: int,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One object's memory for frame ``frame_idx``: ``(memory (L, 1, m), pos (L, 1, m),
    object-pointer tokens)``, exactly as ``SAM2Base._prepare_memory_conditioned_features``
    assembles it (inference, forward in time, not an initial conditioning frame)."""
    from sam2.modeling.sam2_utils import get_1d_sine_pe, select_closest_cond_frames

    c = sam2.hidden_dim
    cond = bank["cond_frame_outputs"]
    assert cond, "a non-initial frame needs a conditioning frame in the memory bank"
    selected, unselected = select_closest_cond_frames(frame_idx, cond,
                                                      sam2.max_cond_frames_in_attn)
    prevs = [(0, out) for out in selected.values()]
    stride = 1 if sam2.training else sam2.memory_temporal_stride_for_eval
    for t_pos in range(1, sam2.num_maskmem):
        t_rel = sam2.num_maskmem - t_pos
        prev = frame_idx - 1 if t_rel == 1 else \
            ((frame_idx - 2) // stride) * stride - (t_rel - 2) * stride
        out = bank["non_cond_frame_outputs"].get(prev, unselected.get(prev))
        prevs.append((t_pos, out))
    mem, pos = [], []
    for t_pos, prev in prevs:
        if prev is None:
            continue
        mem.append(prev["maskmem_features"].to(device).flatten(2).permute(2, 0, 1))
        enc = prev["maskmem_pos_enc"][-1].to(device).flatten(2).permute(2, 0, 1)
        pos.append(enc + sam2.maskmem_tpos_enc[sam2.num_maskmem - t_pos - 1])
    n_ptr = 0
    if sam2.use_obj_ptrs_in_encoder:
        max_ptrs = min(num_frames, sam2.max_obj_ptrs_in_encoder)
        ptr_cond = {t: o for t, o in selected.items() if t <= frame_idx} \
            if not sam2.training and sam2.only_obj_ptrs_in_the_past_for_eval else selected
        pairs = [((frame_idx - t) if sam2.use_signed_tpos_enc_to_obj_ptrs
                  else abs(frame_idx - t), o["obj_ptr"]) for t, o in ptr_cond.items()]
        for t_diff in range(1, max_ptrs):
            t = frame_idx - t_diff
            if t < 0 or (num_frames is not None and t >= num_frames):
                break
            o = bank["non_cond_frame_outputs"].get(t, unselected.get(t))
            if o is not None:
                pairs.append((t_diff, o["obj_ptr"]))
        if pairs:
            pos_list, ptrs = zip(*pairs, strict=True)
            ptr = torch.stack(ptrs, dim=0)  # (P, 1, C)
            if sam2.add_tpos_enc_to_obj_ptrs:
                dim = c if sam2.proj_tpos_enc_in_obj_ptrs else sam2.mem_dim
                p = torch.tensor(pos_list, device=device)
                p = get_1d_sine_pe(p / (max_ptrs - 1), dim=dim)
                p = sam2.obj_ptr_tpos_proj(p).unsqueeze(1)  # (P, 1, m)
            else:
                p = ptr.new_zeros(len(pos_list), 1, sam2.mem_dim)
            if sam2.mem_dim < c:  # a pointer becomes C / m tokens
                ptr = ptr.reshape(-1, 1, c // sam2.mem_dim, sam2.mem_dim)
                ptr = ptr.permute(0, 2, 1, 3).flatten(0, 1)
                p = p.repeat_interleave(c // sam2.mem_dim, dim=0)
            mem.append(ptr)
            pos.append(p)
            n_ptr = ptr.shape[0]
    return torch.cat(mem, 0), torch.cat(pos, 0), n_ptr


def condition_on_banks(sam2: nn.Module, frame_idx: int, top: torch.Tensor,
                       top_pos: torch.Tensor, feat_size: tuple[int, int], banks: list[dict],
                       num_frames: int) -> torch.Tensor:
    """Memory-conditioned features of ``N`` objects that each have their own memory bank
    (``SAM2Base._prepare_memory_conditioned_features`` for one object at a time, batched).

    Objects whose memories have the same number of tokens (in a long stream, all whose
    memory windows are full) go through SAM2's memory attention together; the result
    equals calling SAM2 once per object.

    Args:
        top, top_pos: ``(h*w, N, d)`` top-level features and position encodings.
        banks: one SAM2 ``output_dict`` per object (each with its conditioning frame).

    Returns:
        ``(N, d, h, w)``.
    """
    n = len(banks)
    assert top.shape[1] == n, f"{top.shape[1]} feature maps for {n} memory banks"
    h, w = feat_size
    toks = [_memory_tokens(sam2, frame_idx, b, num_frames, top.device) for b in banks]
    groups: dict[tuple[int, int], list[int]] = {}
    for j, (mem, _, n_ptr) in enumerate(toks):
        groups.setdefault((mem.shape[0], n_ptr), []).append(j)
    out = None
    for (_, n_ptr), idx in groups.items():
        sel = torch.tensor(idx, device=top.device)
        res = sam2.memory_attention(
            curr=[top[:, sel]], curr_pos=[top_pos[:, sel]],
            memory=torch.cat([toks[j][0] for j in idx], 1),
            memory_pos=torch.cat([toks[j][1] for j in idx], 1),
            num_obj_ptr_tokens=n_ptr)  # (h*w, len(idx), d)
        if out is None:
            out = res.new_empty(res.shape[0], n, res.shape[2])
        out[:, sel] = res
    return out.permute(1, 2, 0).reshape(n, sam2.hidden_dim, h, w)
