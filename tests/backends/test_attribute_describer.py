"""The embedded describer: attribute net, its weights, trajectory aggregation, phrasing."""

from __future__ import annotations

import numpy as np
import pytest

from raysys.backends.attribute_describer import (
    LEVELS,
    AttributeDescriber,
    AttributeDescriberConfig,
    _read,
    aggregate,
    phrase,
)
from raysys.backends.attribute_net import (
    CONTEXT_DIM,
    EMBEDDED_PATH,
    HEADS,
    INPUT_H,
    INPUT_W,
    build_net,
    frame_context,
    labels_of,
    load_attribute_net,
    net_input,
    predict,
    save_attribute_net,
)


def test_forward_shapes_and_probabilities():
    import torch

    net = build_net().eval()
    x = torch.rand(3, 4, INPUT_H, INPUT_W)
    out = net(x)
    assert set(out) == set(HEADS)
    for k, classes in HEADS.items():
        assert out[k].shape == (3, len(classes))
    crops = np.stack([net_input(np.full((50, 20, 3), 200, np.uint8), None),
                      net_input(np.zeros((90, 41, 3), np.uint8), np.ones((90, 41), bool))])
    assert crops.shape == (2, INPUT_H, INPUT_W, 4) and crops.dtype == np.uint8
    assert (crops[0, ..., 3] == 255).all()  # no mask: all object
    p = predict(net, crops)
    for k in HEADS:
        assert np.allclose(p[k].sum(1), 1.0, atol=1e-5)
    # the frame context reaches the net: a brighter frame changes what it says
    dark = frame_context(np.full((90, 160, 3), 40, np.uint8))
    bright = frame_context(np.full((90, 160, 3), 220, np.uint8))
    assert dark.shape == (CONTEXT_DIM,) and np.allclose(dark, 40 / 255, atol=1e-3)
    pd, pb = predict(net, crops, np.stack([dark, dark])), predict(net, crops,
                                                                  np.stack([bright, bright]))
    assert not np.allclose(pd["top"], pb["top"])
    with pytest.raises(ValueError, match="frame context per crop"):
        predict(net, crops, dark[None])


def test_labels_of_ignores_colours_of_absent_objects():
    a = {"top": "red", "bottom": "blue", "shoes": "white", "headwear": "none",
         "headwear_colour": None, "bag": "backpack", "bag_colour": "brown", "bicycle": True}
    y = dict(zip(HEADS, labels_of(a), strict=True))
    assert HEADS["top"][y["top"]] == "red" and HEADS["bag_colour"][y["bag_colour"]] == "brown"
    assert y["headwear"] == 0 and y["headwear_colour"] == -1
    assert HEADS["bag"][y["bag"]] == "backpack" and y["bicycle"] == 1


def test_weights_round_trip_without_pickle(tmp_path):
    """Saved weights load with ``weights_only=True`` and give the same outputs; the shipped
    file loads the same way (no pickle) and says how it was made."""
    import torch

    torch.manual_seed(0)
    net = build_net().eval()
    path = save_attribute_net(net, tmp_path / "a.pt", {"steps": 1})
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert ckpt["meta"] == {"steps": 1} and ckpt["input"] == [INPUT_H, INPUT_W]
    assert ckpt["context"] == CONTEXT_DIM
    loaded, meta = load_attribute_net(path)
    x = np.random.default_rng(0).integers(0, 255, (2, INPUT_H, INPUT_W, 4), dtype=np.uint8)
    a, b = predict(net, x), predict(loaded, x)
    assert all(np.allclose(a[k], b[k], atol=2e-2) for k in HEADS)  # weights kept in fp16
    assert EMBEDDED_PATH.is_file() and EMBEDDED_PATH.stat().st_size < 2_000_000
    shipped = torch.load(EMBEDDED_PATH, map_location="cpu", weights_only=True)
    assert shipped["meta"]["steps"] > 0 and shipped["meta"]["data"]
    with pytest.raises(FileNotFoundError, match="pretrain-describer"):
        load_attribute_net(tmp_path / "missing.pt")
    old = dict(ckpt, context=None)  # weights of the version without the frame context
    torch.save(old, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="retrain it"):
        load_attribute_net(tmp_path / "old.pt")


def _probs(n: int, **peaks: tuple[str, float]) -> dict[str, np.ndarray]:
    """n crops of uniform probabilities except the named heads' (class, p) peaks."""
    out = {}
    for k, classes in HEADS.items():
        p = np.full((n, len(classes)), 1.0 / len(classes))
        if k in peaks:
            c, v = peaks[k]
            p[:] = (1 - v) / (len(classes) - 1)
            p[:, classes.index(c)] = v
        out[k] = p
    return out


def test_aggregation_over_views_and_confidence():
    """A backpack seen clearly from behind in 2 of 4 crops and uncertain in the others still
    counts; an attribute nobody is sure of is left out; absent objects have no colour."""
    front = _probs(2, top=("red", 0.9), bag=("none", 0.45), bicycle=("no", 0.9))
    back = _probs(2, top=("red", 0.8), bag=("backpack", 0.95), bicycle=("no", 0.9))
    mean = aggregate({k: np.concatenate([front[k], back[k]]) for k in HEADS})
    assert np.isclose(mean["top"][HEADS["top"].index("red")], 0.85)
    attrs = _read(mean, 0.5)
    assert attrs["top"] == "red" and attrs["confidence"]["top"] == pytest.approx(0.85)
    assert attrs["bag"] == "backpack" and attrs["confidence"]["bag"] > 0.5
    assert attrs["bottom"] is None  # uniform: not sure, left out
    assert attrs["bicycle"] is False
    assert attrs["headwear"] is None and attrs["headwear_colour"] is None
    with pytest.raises(ValueError, match="probabilities"):
        aggregate({"top": np.zeros((0, 11))})


def test_phrasing_follows_the_expressions():
    a = {"top": "black", "bottom": "gray", "shoes": "white", "headwear": "cap",
         "headwear_colour": "white", "bag": "backpack", "bag_colour": "black",
         "bicycle": False}
    assert phrase(a) == ("A person in a white cap, black coat and gray trousers, carrying "
                         "a black backpack")
    assert phrase(a, ("top",)) == "A person wearing a black coat"
    assert phrase(a, ("top", "bottom", "shoes")) == \
        "A person wearing a black coat, gray trousers and white shoes"
    assert phrase(a, ("bag", "bag_colour")) == "A person carrying a black backpack"
    assert phrase(a, ("top", "bicycle")) is None  # a level needs all its attributes
    b = {"top": "orange", "headwear": "helmet", "headwear_colour": "black", "bicycle": True}
    assert phrase(b) == "A person in a black helmet and orange coat, riding a bicycle"
    assert phrase({"top": None}) is None
    assert ("top",) in LEVELS


def test_describer_end_to_end_on_a_tiny_scene(tmp_path):
    """The attributes describer on GT crops of a generated scene (a seed it was not trained
    on): a sentence per person in the expressions' phrasing, general sentences, and the
    coat colour right for most people."""
    from raysys.backends import DESCRIBER_BACKENDS
    from raysys.backends.pretrain_describer import person_crops
    from raysys.labeling.config import LabelConfig
    from raysys.synth import SynthConfig, generate

    assert LabelConfig().describer == "attributes"  # the default (docs/stage1.md)
    generate(SynthConfig(seed=7, scenes=1, views=2, frames=8, people=5, splits=("test",),
                         domains=("In-domain",)), tmp_path)
    d = DESCRIBER_BACKENDS.build("attributes", min_confidence=0.5)
    assert isinstance(d, AttributeDescriber)
    per: dict[int, tuple[dict, list, list]] = {}
    scene = next((tmp_path / "In-domain" / "meta" / "test").iterdir())
    for gid, a, _, c, m, ctx in person_crops(scene, tmp_path / "In-domain" / "images" / "test",
                                             per_view=4):
        per.setdefault(gid, (a, [], [], []))[1].append(c)
        per[gid][2].append(m)
        per[gid][3].append(ctx)
    assert per
    right = 0
    for a, crops, masks, ctx in per.values():
        levels = d.describe_levels(crops, masks, "person", ctx)
        assert levels[0].startswith("A person") and len(set(levels)) == len(levels)
        attrs = d.describe_attributes(crops, masks, "person", ctx)
        right += attrs["top"] == a["top"]
        assert 0 < attrs["confidence"]["top"] <= 1
    assert right >= 0.6 * len(per)
    assert d.describe([np.zeros((30, 12, 3), np.uint8)], None, "car") == "A car"
    with pytest.raises(ValueError, match="levels"):
        AttributeDescriber(AttributeDescriberConfig(levels="some"))


@pytest.mark.slow
def test_pretrain_describer_command_writes_loadable_weights(tmp_path, capsys):
    """`raysys pretrain-describer` on a tiny generated benchmark: weights that load, with
    how they were made; a folder without scenes is a clear error."""
    import torch

    from raysys.cli import main
    from raysys.synth import SynthConfig, generate

    data = tmp_path / "data"
    generate(SynthConfig(seed=5, scenes=1, views=2, frames=6, width=320, height=180,
                         people=3, splits=("train",), domains=("In-domain",)), data)
    out = tmp_path / "desc"
    assert main(["pretrain-describer", "--out", str(out), "--data", str(data),
                 "--steps", "3", "--threads", "1", "--per-view", "2"]) == 0
    meta = torch.load(out / "attribute_net.pt", weights_only=True)["meta"]
    assert meta["steps"] == 3 and meta["crops"] > 0 and meta["device"] == "cpu"
    d = AttributeDescriber(AttributeDescriberConfig(weights=str(out / "attribute_net.pt")))
    assert d.describe([np.zeros((40, 16, 3), np.uint8)]).startswith("A person")
    (tmp_path / "empty").mkdir()
    assert main(["pretrain-describer", "--out", str(out), "--data",
                 str(tmp_path / "empty")]) == 2
    assert "no generated scenes" in capsys.readouterr().err


def test_frame_contexts_reach_only_a_describer_that_reads_frames():
    """Stage 1's wrapper passes the frame contexts to a describer offering
    ``frame_context`` and never to one without it (whose signature has no such argument)."""
    from raysys.backends.describer import describe_levels

    seen = {}

    class Reads:
        def frame_context(self, frame):
            return frame.mean((0, 1))

        def describe_levels(self, crops, masks, category, contexts=None):
            seen["contexts"] = contexts
            return ["A person"]

    class Plain:
        def describe_levels(self, crops, masks, category):
            return ["A person wearing a red coat"]

    crops = [np.zeros((20, 10, 3), np.uint8)]
    ctx = [np.ones(CONTEXT_DIM, np.float32)]
    assert describe_levels(Reads(), crops, None, "person", ctx) == ["A person"]
    assert seen["contexts"] is ctx
    assert describe_levels(Plain(), crops, None, "person", ctx)[0].endswith("red coat")
