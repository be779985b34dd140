"""ViewSAM sizes and CPU cost: parameter reports and one training step on a tiny clip.

Prints one JSON line per setting:

* ``{"benchmark": "viewsam_params", "setting", "build_s", "report": {...}}`` for the
  embedded tiny SAM2 + MiniLM and for SAM2.1 Hiera-B+ + RoBERTa-base (random weights,
  base frozen as in the paper; modules should be ~4.6 / 12.1 / 1.1 / 2.3 M);
* ``{"benchmark": "viewsam_step", "forward_s", "backward_s", ...}``: best-of-N forward +
  backward of the tiny model on a ``(1, V, T, 3, 64, 64)`` clip with two referred objects.
"""

from __future__ import annotations

import argparse
import json
import time


def _report(setting: str, sam2_config: str | None, text: str, freeze: bool) -> None:
    from raysys.viewsam import build_viewsam, parameter_report

    t0 = time.perf_counter()
    model = build_viewsam(sam2_config=sam2_config, text_encoder=text,
                          freeze_base=True if freeze else None)
    build = time.perf_counter() - t0
    print(json.dumps({"benchmark": "viewsam_params", "setting": setting,
                      "build_s": round(build, 2), "report": parameter_report(model)}))


def _step(views: int, frames: int, repeats: int) -> None:
    import torch

    from raysys.viewsam import ClipTargets, build_viewsam

    torch.manual_seed(0)
    model = build_viewsam().train()
    clip = torch.rand(1, views, frames, 3, 64, 64)
    boxes = torch.tensor([[8.0, 8.0, 28.0, 56.0], [34.0, 4.0, 60.0, 40.0]])
    targets = ClipTargets(boxes=boxes.expand(1, views, frames, 2, 4).clone(),
                          visible=torch.ones(1, views, frames, 2, dtype=torch.bool),
                          ids=torch.tensor([[1, 2]]), referred=torch.tensor([[True, True]]))
    text = model.tokenize(["a person in a red coat"])
    fwd, bwd = [], []
    for _ in range(max(1, repeats)):
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        loss = model.losses(model(clip, text, targets), targets)["total"]
        t1 = time.perf_counter()
        loss.backward()
        fwd.append(t1 - t0)
        bwd.append(time.perf_counter() - t1)
    print(json.dumps({"benchmark": "viewsam_step", "setting": "tiny+minilm", "views": views,
                      "frames": frames, "forward_s": round(min(fwd), 3),
                      "backward_s": round(min(bwd), 3), "threads": torch.get_num_threads()}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed training steps (best)")
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--skip-bplus", action="store_true", help="only the tiny default")
    args = parser.parse_args(argv)
    _report("tiny+minilm", None, "minilm", freeze=False)
    if not args.skip_bplus:
        _report("hiera_b+ + roberta-base (frozen base)", "configs/sam2.1/sam2.1_hiera_b+.yaml",
                "random:roberta-base", freeze=True)
    _step(args.views, args.frames, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
