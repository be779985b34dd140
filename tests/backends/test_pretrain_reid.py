"""The embedded OSNet ReID model: cross-view retrieval scoring (worked by hand), training
that learns identities, the `raysys pretrain-reid` command and the shipped weights."""

from __future__ import annotations

import numpy as np
import pytest

from raysys.backends.pretrain_reid import CropSet, evaluate_reid, person_crops, train_reid


def _hand_set() -> tuple[CropSet, dict]:
    """Scene 0, views 0-1, persons 0-1; each crop's first pixel carries its embedding."""
    vec = {(0, 0): (1.0, 0.0), (0, 1): (0.0, 1.0), (1, 0): (1.0, 0.0), (1, 1): (0.8, 0.6)}
    keys = [(0, 0), (0, 0), (0, 1), (1, 0), (1, 1), (1, 1)]  # (view, person), 6 crops
    crops = np.zeros((len(keys), 2, 2, 3), np.uint8)
    for i, k in enumerate(keys):
        crops[i, 0, 0, :2] = np.round(np.asarray(vec[k]) * 100)
    cs = CropSet(crops, np.array([p for _, p in keys]), np.array([v for v, _ in keys]),
                 np.zeros(len(keys), np.int64))
    return cs, vec


def test_evaluate_reid_worked_by_hand():
    """Queries (view, person) against the other view: (0,0) [1,0] vs (1,0) 1.0 / (1,1) 0.8:
    hit, AP 1, margin 0.2; (0,1) [0,1] vs 0 / 0.6: hit, AP 1, margin 0.6; (1,0) [1,0] vs
    (0,0) 1 / (0,1) 0: hit, margin 1; (1,1) [.8,.6] vs 0.8 / 0.6: miss, AP 1/2, margin -0.2.
    rank-1 3/4, mAP 3.5/4, margin 1.6/4."""
    cs, _ = _hand_set()
    r = evaluate_reid(cs, lambda c: c[:, 0, 0, :2].astype(np.float32) / 100.0)
    assert r["queries"] == 4 and r["identities"] == 2 and r["crops"] == 6
    assert r["rank1"] == pytest.approx(0.75)
    assert r["mAP"] == pytest.approx(0.875)
    assert r["margin"] == pytest.approx(0.4)


def test_training_learns_the_identities_of_a_tiny_scene(tiny_test_split):
    """GT crops of the tiny benchmark (4 people, 3 views); 60 steps from random init bring
    the loss down and retrieval on those crops above the untrained network's."""
    import torch

    torch.set_num_threads(1)
    cs = person_crops([tiny_test_split.root], size=(64, 32), every=2, min_height=12,
                      progress=False)
    assert len(np.unique(cs.ids)) == 4 and set(np.unique(cs.views)) == {0, 1, 2}
    assert cs.crops.shape[1:] == (64, 32, 3) and cs.crops.dtype == np.uint8

    def embedder(model):
        from raysys.backends.pretrain_reid import _to_input

        def embed(c):
            with torch.no_grad():
                return torch.nn.functional.normalize(model(_to_input(c, None, "cpu")), dim=1
                                                     ).numpy()
        return embed

    untrained, _ = train_reid(cs, steps=1, p=4, k=4, lr=1e-9, progress=False)
    model, losses = train_reid(cs, steps=60, p=4, k=4, progress=False)
    before = evaluate_reid(cs, embedder(untrained))
    after = evaluate_reid(cs, embedder(model))
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:5]), losses
    assert after["mAP"] > before["mAP"] and after["margin"] > before["margin"], (before, after)


def test_pretrain_reid_command_writes_weights_the_osnet_backend_loads(tmp_path, capsys):
    """`raysys pretrain-reid` on a tiny generated benchmark: a weights-only file with its
    architecture, input size and held-out scores, which `--reid osnet` loads as is; bad
    input is one line and exit 2."""
    import torch

    from raysys.backends.reid import REID_BACKENDS
    from raysys.cli import main
    from raysys.synth import SynthConfig, generate

    data = tmp_path / "data"
    generate(SynthConfig(seed=5, scenes=1, views=2, frames=6, width=320, height=180,
                         people=3, splits=("train",), domains=("In-domain",)), data)
    out = tmp_path / "reid"
    assert main(["pretrain-reid", "--out", str(out), "--data", str(data), "--heldout",
                 str(data), "--steps", "2", "--threads", "1"]) == 0
    ckpt = torch.load(out / "osnet_reid.pt", weights_only=True)
    assert ckpt["arch"] == "osnet_x0_25" and ckpt["input_size"] == [128, 64]
    assert not any(k.startswith("classifier.") for k in ckpt["state_dict"])
    meta = ckpt["meta"]
    assert meta["steps"] == 2 and meta["identities"] >= 2 and meta["crops"] > 0
    assert {"osnet", "stripes"} <= set(meta["heldout"])
    reid = REID_BACKENDS.get("osnet")("osnet_x0_25", checkpoint=str(out / "osnet_reid.pt"))
    assert reid.input_size == (128, 64) and not reid.load_report["missing"]
    e = reid.embed([np.full((50, 20, 3), 128, np.uint8)])
    assert e.shape == (1, reid.dim) and np.isclose(np.linalg.norm(e), 1.0)
    assert main(["pretrain-reid", "--out", str(out), "--steps", "0"]) == 2
    assert "--steps must be >= 1" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["pretrain-reid", "--out", str(out), "--data", str(tmp_path / "empty"),
                 "--heldout"]) == 2
    assert "no generated videos" in capsys.readouterr().err


def test_the_shipped_weights_load_without_pickle():
    """`--reid-checkpoint embedded`: the shipped osnet_x0_25 at its recorded input size."""
    import torch

    from raysys.backends.reid import EMBEDDED_REID, OSNetReID

    ckpt = torch.load(EMBEDDED_REID, weights_only=True)  # plain tensors and numbers only
    assert ckpt["arch"] == "osnet_x0_25" and ckpt["meta"]["steps"] >= 1
    reid = OSNetReID(checkpoint="embedded")
    assert reid.name == "osnet_x0_25" and reid.input_size == (128, 64)
    assert not reid.load_report["missing"] and not reid.load_report["unexpected"]
