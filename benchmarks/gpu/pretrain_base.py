"""Device script: pre-train the tiny SAM2 base on one GPU (bf16, large batches).

Renders the pre-training scenes (seed 1000, a process per CPU) and the held-out scenes
(seed 1001), pre-trains SAM2 the SAM2 way (:mod:`raysys.training.pretrain_base`), evaluates
memory-only and box-prompted mask IoU on the held-out clips, and writes under ``--out``:
``sam2_base.pt`` (also rewritten every 2 minutes while training, so a run cut short still
leaves weights), ``metrics.json``, ``MODEL_CARD.md`` and ``pretrain.log``.

The GPU machine lacks sam2, hydra-core, omegaconf, antlr4-python3-runtime and iopath: they
travel as wheels in ``.whl/`` (see the README's GPU checks)::

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \\
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD && \\
    python3 benchmarks/gpu/pretrain_base.py --out $OUT --budget-minutes 9.3 --batch 64

``--budget-minutes`` bounds the whole script (rendering + training + evaluation), so that
it ends inside a 10-minute command; ``--minutes`` bounds the training alone. Tried on a CPU
with ``--device cpu --steps 3 --batch 2 --scenes 2``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import sys
import time
from pathlib import Path

T0 = time.perf_counter()
log = logging.getLogger("raysys.gpu.pretrain_base")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="cuda", help="cuda (default) | cpu")
    ap.add_argument("--minutes", type=float, default=8.0, help="training budget (8)")
    ap.add_argument("--budget-minutes", type=float,
                    help="wall-clock budget of the whole script: training gets what is left "
                         "after rendering, minus --reserve-s for evaluation and export")
    ap.add_argument("--reserve-s", type=float, default=45.0,
                    help="seconds kept for the final evaluation and export (45)")
    ap.add_argument("--steps", type=int, help="step budget (with --minutes: whichever first)")
    ap.add_argument("--batch", type=int, default=64, help="clips per step (64)")
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--scenes", type=int, default=64, help="training scenes (64)")
    ap.add_argument("--eval-scenes", type=int,
                    help="held-out scenes (default 4; 2 with --device cpu)")
    ap.add_argument("--eval-clips", type=int,
                    help="held-out clips (default 128; 8 with --device cpu)")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--init", default="embedded",
                    help="embedded (default) | none (random init) | a SAM2 .pt")
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--max-objects", type=int, default=6)
    ap.add_argument("--workers", type=int, default=0, help="rendering processes (0: all CPUs)")
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--no-eval-init", action="store_true",
                    help="skip evaluating the initial weights")
    return ap.parse_args(argv)


def _setup_logging(out: Path) -> None:
    fmt = logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S")
    root = logging.getLogger("raysys")
    root.setLevel(logging.INFO)
    for h in (logging.StreamHandler(sys.stdout), logging.FileHandler(out / "pretrain.log")):
        h.setFormatter(fmt)
        root.addHandler(h)


def _environment(device: str) -> dict:
    import numpy
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__,
           "torch_cuda": torch.version.cuda, "numpy": numpy.__version__,
           "cpus": os.cpu_count(), "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env |= {"gpu": p.name, "gpu_memory_gib": round(p.total_memory / 2**30, 1),
                "bf16": torch.cuda.is_bf16_supported()}
    try:
        import sam2

        env["sam2"] = str(Path(sam2.__file__).parent)
    except ImportError as e:
        env["sam2"] = f"missing ({e})"
    return env


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    _setup_logging(args.out)
    import torch

    env = _environment(args.device)
    log.info("environment: %s", json.dumps(env))
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        log.error("--device %s asked but CUDA is not available (torch %s, CUDA build %s); "
                  "run with --device cpu to try the script", args.device, torch.__version__,
                  torch.version.cuda)
        return 2
    if "missing" in env["sam2"]:
        log.error("sam2 is not importable: install the wheels of .whl/ first (%s)",
                  env["sam2"])
        return 2
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    from raysys.training.pretrain_base import (
        PretrainConfig,
        generate_scenes,
        run_pretraining,
        scene_specs,
    )

    init = None if args.init in ("none", "random") else args.init
    cpu = not args.device.startswith("cuda")
    if args.eval_scenes is None:
        args.eval_scenes = 2 if cpu else 4
    if args.eval_clips is None:
        args.eval_clips = 8 if cpu else 128
    cfg = PretrainConfig(image_size=args.image_size, init=init, batch=args.batch,
                         steps=args.steps, minutes=args.minutes, lr=args.lr, seed=args.seed,
                         eval_seed=args.seed + 1, scenes=args.scenes,
                         eval_scenes=args.eval_scenes, eval_clips=args.eval_clips,
                         max_objects=args.max_objects, workers=args.workers,
                         log_every=args.log_every, eval_init=not args.no_eval_init)
    t = time.perf_counter()
    train = generate_scenes(scene_specs(cfg.seed, cfg.scenes, "train", cfg.domains),
                            cfg.image_size, cfg.workers)
    held = generate_scenes(scene_specs(cfg.eval_seed, cfg.eval_scenes, "test", cfg.domains),
                           cfg.image_size, cfg.workers) if cfg.eval_scenes else []
    log.info("rendered %d + %d scenes in %.0f s", len(train), len(held),
             time.perf_counter() - t)
    deadline = None
    if args.budget_minutes is not None:
        deadline = T0 + 60 * args.budget_minutes - args.reserve_s
        log.info("budget %.1f min: training ends by %.0f s after the start at the latest",
                 args.budget_minutes, deadline - T0)
    cmd = "python3 benchmarks/gpu/pretrain_base.py " + shlex.join(
        sys.argv[1:] if argv is None else argv)
    m = run_pretraining(cfg, args.out, args.device, command=cmd, train_scenes=train,
                        eval_scenes=held, deadline=deadline)
    m["environment"] = env
    m["seconds_script"] = round(time.perf_counter() - T0, 1)
    if torch.cuda.is_available() and args.device.startswith("cuda"):
        m["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    (args.out / "metrics.json").write_text(json.dumps(m, indent=1) + "\n")
    ev = m["eval"].get("final") or {}
    log.info("done in %.0f s: %d steps, %d clips (%.1f clips/s); held-out memory-only IoU %s, "
             "box-prompted IoU %s; peak GPU memory %s GiB", m["seconds_script"],
             m["training"]["steps"], m["training"]["clips"], m["training"]["clips_per_s"],
             ev.get("memory_iou"), ev.get("box_iou"), m.get("peak_gpu_memory_gib"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
