"""The outputs of a base pre-training run: the SAM2-format weights and the model card."""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["export_base", "model_card", "device_name"]



def export_base(source, out: str | os.PathLike, yaml_text: str | None = None,
                **meta) -> Path:
    """Write a SAM2 base as a SAM2 ``.pt``: ``{"model": fp16 state dict, "yaml": YAML text,
    **meta}`` (:func:`raysys.viewsam.base.build_sam2_base` loads it like any SAM2 file).

    Args:
        source: a ``SAM2Base`` (its YAML from :func:`load_base`, or ``yaml_text``), or a
            ViewSAM checkpoint folder whose ``sam2.*`` weights trained.
    """
    import torch
    from torch import nn

    if isinstance(source, nn.Module):
        sd = {k: v.detach().cpu() for k, v in source.state_dict().items()}
        yaml_text = yaml_text or getattr(source, "raysys_yaml", None)
    else:
        from raysys.viewsam.checkpoint import read_checkpoint

        payload = read_checkpoint(source)
        sd = {k[len("sam2."):]: v for k, v in payload["model"].items()
              if k.startswith("sam2.")}
        if not sd:
            raise ValueError(f"checkpoint {source} holds no SAM2 weights (a frozen base is "
                             "not saved in ViewSAM checkpoints)")
        yaml_text = yaml_text or payload.get("build_spec", {}).get("sam2_yaml")
        meta = {"epoch": payload.get("epoch"), **meta}
    sd = {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    torch.save({"model": sd, "yaml": yaml_text, **meta}, tmp)
    os.replace(tmp, out)
    return out


def device_name(device) -> str:
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    return f"{dev.type} ({os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads)"


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def model_card(metrics: dict) -> str:
    """``MODEL_CARD.md`` text of a run's ``metrics.json`` content."""
    c, d, tr, ev = metrics["config"], metrics["data"], metrics["training"], metrics["eval"]
    fin, init = ev.get("final") or {}, ev.get("init") or {}
    lines = [
        "# SAM2 base pre-trained by raysys (`sam2_base.pt`)",
        "",
        "A small SAM2 (the embedded tiny config, "
        f"{metrics['parameters']:,} parameters, {c['image_size']} px input) pre-trained the "
        "way SAM2 is trained: promptable, class-agnostic video segmentation on generated "
        "scenes (`raysys.training.pretrain_base`). It is the stand-in for SAM2.1's "
        "pretrained weights under ViewSAM; it never saw a benchmark a report scores, "
        "nor any text or identity.",
        "",
        "## Data",
        f"- Training: {d['train_scenes']} generated scenes of seed {c['seed']} "
        f"(`raysys.synth`, train split, domains {', '.join(c['domains'])}; "
        f"{d['train_sequences']} camera sequences of {d['frames_per_sequence']} frames), all "
        "objects' visible masks and boxes (people, cars, bicycles); no text, no identities.",
        f"- Held-out evaluation: {d['eval_scenes']} scenes of seed {c['eval_seed']} "
        f"(test split), {ev.get('clips', 0)} clips of {c['clip_frames']} frames, "
        f"{ev.get('objects', 0)} objects.",
        "- Seeds a report scores (0, 11; label-quality 0-4, 10-13) and the person "
        "detector's (2000, 2001) are disjoint from both.",
        "",
        "## Training",
        f"- Initial weights: {c['init'] or 'random'}"
        + (f" (sha256 {metrics['init_sha256'][:16]}...)" if metrics.get("init_sha256") else ""),
        f"- {tr['steps']} steps of {c['batch']} clips ({tr['clips']} clips, "
        f"{tr['objects']} object tracks) in {tr['seconds']:.0f} s on {metrics['device']}; "
        f"{tr['clips_per_s']} clips/s.",
        f"- Clips of {c['clip_frames']} frames (step {c['frame_steps']}, reversed "
        f"p={c['p_reverse']}, flipped p={c['p_flip']}), up to {c['max_objects']} objects each; "
        f"box on the first frame, a second box p={c['p_second_prompt']}, boxes on every "
        f"visible frame p={c['p_every_prompt']}; memory carries the rest.",
        f"- SAM2 losses: focal x{c['loss_focal']} + dice x{c['loss_dice']} + IoU-L1 "
        f"x{c['loss_iou']} + object score BCE x{c['loss_class']}; "
        f"single-mask output; AdamW lr {c['lr']} "
        f"(warm-up {c['warmup']}, cosine to x{c['min_lr_ratio']}), weight decay "
        f"{c['weight_decay']}, grad clip {c['grad_clip']}"
        + (", bf16 autocast" if metrics.get("amp") else "") + ".",
        f"- Final losses: {json.dumps(tr.get('final_losses', {}))}",
        "",
        "## Metrics (held-out scenes, the tracker's SAM2 steps)",
        "",
        "| weights | memory-only IoU | box-prompted IoU | memory false-present |",
        "|---|---:|---:|---:|",
    ]
    if init:
        lines.append(f"| initial | {_fmt(init.get('memory_iou'))} | {_fmt(init.get('box_iou'))}"
                     f" | {_fmt(init.get('memory_false_present'))} |")
    lines += [
        f"| this file | {_fmt(fin.get('memory_iou'))} | {_fmt(fin.get('box_iou'))} | "
        f"{_fmt(fin.get('memory_false_present'))} |",
        "",
        "Memory-only: the GT box on the first frame, IoU over the visible object-frames "
        "after it; box-prompted: the GT box on every visible frame. Targets (issue #22): "
        ">= 0.6 and >= 0.7.",
        "",
        "## Reproduce",
        "```bash",
        metrics.get("command") or "raysys pretrain-base --out RUN",
        "```",
        f"Files: `sam2_base.pt` (sha256 {metrics.get('sha256', '')[:16]}...), "
        "`metrics.json`, this card.",
        "",
    ]
    return "\n".join(lines)


