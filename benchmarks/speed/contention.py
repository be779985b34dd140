"""How much one torch thread slows down when another process works on another core.

The question behind it (docs/serve.md, "What is left"): in a tracker replica the clip's
compute runs about 25% slower than in a process alone, while the requests' work (HTTP,
JPEG decoding, frames copied through the ingress and the object store) runs on the other
core. This times a fixed one-thread torch workload (a 256 x 256 matmul and a 64-channel
3 x 3 conv on 64 x 64, ``--iters`` times; best and median of ``--repeats``) three ways:
alone; beside a pure-ALU Python loop on the other core (shares execution units if the
two vCPUs are hyperthreads of one core); beside a process summing a 256 MB array over and
over (shares memory bandwidth and the last-level cache). Prints JSON:

    python benchmarks/speed/contention.py [--iters 200 --repeats 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

_ALU = "import time\nt=time.time()\nwhile time.time()-t<{s}: pass\n"
_MEM = ("import numpy as np, time\na=np.random.rand(32_000_000)\nt=time.time()\n"
        "while time.time()-t<{s}: a.sum()\n")


def _workload(iters: int, repeats: int) -> dict:
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    a, b = torch.randn(256, 256), torch.randn(256, 256)
    x, conv = torch.randn(1, 64, 64, 64), torch.nn.Conv2d(64, 64, 3, padding=1)

    def run(n: int) -> float:
        t = time.perf_counter()
        with torch.no_grad():
            for _ in range(n):
                a @ b
                conv(x)
        return time.perf_counter() - t

    run(max(1, iters // 10))  # warm-up
    ts = sorted(run(iters) for _ in range(repeats))
    return {"best_s": round(ts[0], 4), "median_s": round(ts[len(ts) // 2], 4)}


def _beside(code: str | None, iters: int, repeats: int, seconds: float) -> dict:
    if code is None:
        return _workload(iters, repeats)
    p = subprocess.Popen([sys.executable, "-c", code.format(s=seconds)])
    try:
        time.sleep(1.5)  # let the neighbour start (and allocate its array)
        return _workload(iters, repeats)
    finally:
        p.kill()
        p.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    a = ap.parse_args()
    budget = 60.0
    res = {"machine": f"{platform.machine()} {platform.node()[:12]}",
           "cpus": os.cpu_count(), "iters": a.iters, "repeats": a.repeats}
    for name, code in (("alone", None), ("beside_alu_loop", _ALU),
                       ("beside_memory_scan", _MEM), ("alone_again", None)):
        res[name] = _beside(code, a.iters, a.repeats, budget)
    base = min(res["alone"]["median_s"], res["alone_again"]["median_s"])
    res["slowdown_beside_alu"] = round(res["beside_alu_loop"]["median_s"] / base, 3)
    res["slowdown_beside_memory"] = round(res["beside_memory_scan"]["median_s"] / base, 3)
    print(json.dumps(res, indent=1))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
