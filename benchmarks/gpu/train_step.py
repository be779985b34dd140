"""GPU check of Stage 2: one ViewSAM training step with SAM2.1 Hiera-B+ and a
RoBERTa-base-sized text encoder (random init, base frozen as in the paper, bf16 autocast).

Prints one JSON object (and writes it to ``$OUT/gpu_train_step.json`` when ``OUT`` is set):
step time (forward, backward, optimizer; best and mean of N after a warm-up), peak GPU
memory, and the trainable share from the parameter report, for each clip setting tried
(largest first; a setting that runs out of memory is reported as such).

    python benchmarks/gpu/train_step.py [--settings 3x8x1024 3x8x512] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import traceback


def _targets(views: int, frames: int, size: int, device):
    import torch

    from raysys.viewsam import ClipTargets

    s = size / 64.0
    boxes = torch.tensor([[8.0, 8.0, 28.0, 56.0], [34.0, 4.0, 60.0, 40.0],
                          [2.0, 40.0, 20.0, 62.0]]) * s
    return ClipTargets(boxes=boxes.expand(1, views, frames, 3, 4).clone().to(device),
                       visible=torch.ones(1, views, frames, 3, dtype=torch.bool, device=device),
                       ids=torch.tensor([[1, 2, 3]], device=device),
                       referred=torch.tensor([[True, True, False]], device=device))


def run_setting(model, views: int, frames: int, size: int, steps: int, device) -> dict:
    import torch

    cuda = device.type == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize()

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    clip = torch.rand(1, views, frames, 3, size, size, device=device)
    targets = _targets(views, frames, size, device)
    text = model.tokenize(["a man in a red coat and black trousers"])
    text = {k: v.to(device) for k, v in text.items()} if isinstance(text, dict) else text
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-5)
    times = []
    for i in range(steps + 1):  # the first step warms up (cuDNN autotune, allocator)
        sync()
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16):
            out = model(clip, text, targets)
            losses = model.losses(out, targets)
        sync()
        t1 = time.perf_counter()
        losses["total"].float().backward()
        sync()
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        t3 = time.perf_counter()
        if i > 0:
            times.append((t1 - t0, t2 - t1, t3 - t2, t3 - t0))
    best = min(times, key=lambda t: t[3])
    return {"views": views, "frames": frames, "size": size, "steps": steps,
            "step_s_best": round(best[3], 3),
            "step_s_mean": round(sum(t[3] for t in times) / len(times), 3),
            "forward_s": round(best[0], 3), "backward_s": round(best[1], 3),
            "optimizer_s": round(best[2], 4),
            "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
            "loss": round(float(losses["total"].detach()), 4),
            "loss_terms": sorted(k for k in losses if k != "total")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--settings", nargs="+", default=["3x8x1024", "3x8x512"],
                    help="VIEWSxFRAMESxSIZE clip settings, tried in order")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--device", default="cuda", help="cuda (the check) or cpu (a dry run)")
    ap.add_argument("--sam2-config", default="configs/sam2.1/sam2.1_hiera_b+.yaml")
    ap.add_argument("--text-encoder", default="random:roberta-base")
    args = ap.parse_args()
    import torch

    from raysys.viewsam import build_viewsam, parameter_report

    device = torch.device(args.device)
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    result: dict = {"check": "viewsam_train_step", "device": name,
                    "torch": torch.__version__, "dtype": "bf16 autocast",
                    "sam2_config": args.sam2_config, "text_encoder": args.text_encoder,
                    "runs": []}
    t0 = time.perf_counter()
    torch.manual_seed(0)
    model = build_viewsam(sam2_config=args.sam2_config, text_encoder=args.text_encoder,
                          freeze_base=True, device=str(device)).train()
    result["build_s"] = round(time.perf_counter() - t0, 2)
    result["params"] = parameter_report(model)
    for s in args.settings:
        v, t, size = (int(x) for x in s.split("x"))
        try:
            result["runs"].append(run_setting(model, v, t, size, args.steps, device))
        except torch.OutOfMemoryError as e:
            result["runs"].append({"views": v, "frames": t, "size": size,
                                   "error": f"out of memory: {str(e)[:200]}"})
            if device.type == "cuda":
                torch.cuda.empty_cache()
        except Exception as e:  # report and go on with the next setting
            result["runs"].append({"views": v, "frames": t, "size": size,
                                   "error": f"{type(e).__name__}: {e}",
                                   "trace": traceback.format_exc()[-1500:]})
        print(json.dumps(result["runs"][-1]), flush=True)
    text = json.dumps(result, indent=2)
    print(text)
    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], "gpu_train_step.json"), "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
