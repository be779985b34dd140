"""Stage-1 backends: registry, checkpoint checks, ReID (stripes and OSNet)."""

import subprocess
import sys

import numpy as np
import pytest

from raysys.backends import (
    REID_BACKENDS,
    OSNetReID,
    Registry,
    ReIDModel,
    StripesReID,
    UnknownBackendError,
    require_dir,
    require_file,
    tracklet_embedding,
)

# ----------------------------------------------------------------------------- registry


def test_registry_build_and_miss_lists_names():
    reg: Registry[int] = Registry("toy backend")
    reg.register("one", lambda: 1)

    @reg.register("two")
    def _two(k=2):
        return k

    assert reg.names() == ["one", "two"]
    assert reg.build("two", k=5) == 5
    assert "one" in reg and "three" not in reg
    for exc in (KeyError, ValueError):  # catchable as either
        with pytest.raises(exc) as info:
            reg.build("three")
        assert str(info.value) == "unknown toy backend 'three'; valid names: one, two"
    with pytest.raises(ValueError, match="already registered"):
        reg.register("one", lambda: 3)


def test_reid_registry_names():
    assert REID_BACKENDS.names() == ["osnet", "stripes"]
    with pytest.raises(UnknownBackendError, match="osnet, stripes"):
        REID_BACKENDS.build("resnet")


def test_require_file_and_dir(tmp_path):
    f = tmp_path / "w.pth"
    with pytest.raises(FileNotFoundError, match=r"OSNet weights not found at .*w\.pth: get it"):
        require_file(f, "OSNet weights", "get it")
    with pytest.raises(FileNotFoundError, match="no file given"):
        require_file(None, "OSNet weights", "get it")
    with pytest.raises(FileNotFoundError, match="is a directory"):
        require_file(tmp_path, "OSNet weights", "get it")
    f.write_bytes(b"x")
    assert require_file(str(f), "w", "h") == f
    assert require_dir(tmp_path, "d", "h") == tmp_path
    with pytest.raises(FileNotFoundError, match="is a file"):
        require_dir(f, "model dir", "h")


def test_import_is_cheap():
    code = ("import sys, raysys.backends; "
            "print(sorted(m for m in ('torch', 'transformers', 'torchreid', 'vllm', 'PIL') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- Eq. 1


def test_tracklet_embedding_mean_then_normalise():
    # mean of (1, 0) and (0, 1) is (0.5, 0.5); normalised: (1/sqrt2, 1/sqrt2)
    e = tracklet_embedding(np.array([[1.0, 0.0], [0.0, 1.0]]))
    np.testing.assert_allclose(e, [2 ** -0.5, 2 ** -0.5], rtol=1e-6)
    assert e.dtype == np.float32
    with pytest.raises(ValueError, match="T >= 1"):
        tracklet_embedding(np.zeros((0, 4)))


# ----------------------------------------------------------------------------- crops


def _person(top, bottom, bg=(128, 128, 128), gain=1.0, seed=0, h=128, w=48):
    """A (h, w) crop: head, coloured torso and legs on a background, and its mask."""
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), float)
    img[:] = bg
    mask = np.zeros((h, w), bool)
    for (y0, y1, x0, x1), col in [((4, 22, 18, 30), (60, 40, 30)), ((24, 64, 10, 38), top),
                                  ((64, 124, 12, 36), bottom)]:
        img[y0:y1, x0:x1] = col
        mask[y0:y1, x0:x1] = True
    img = img * gain + rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), mask


RED, BLUE, BLACK = (200, 30, 35), (35, 60, 170), (25, 25, 28)


def _cos(a, b):
    return float(a @ b)


# ----------------------------------------------------------------------------- stripes


def test_stripes_shapes_and_norms():
    reid = StripesReID()
    assert isinstance(reid, ReIDModel)
    crops = [_person(RED, BLACK, seed=i, h=100 + 20 * i, w=40 + 5 * i)[0] for i in range(3)]
    e = reid.embed(crops)
    assert e.shape == (3, reid.dim) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)
    assert reid.embed([]).shape == (0, reid.dim)


def test_stripes_same_crop_and_colour_distances():
    reid = StripesReID()
    red, _ = _person(RED, BLACK)
    red_dark, _ = _person(RED, BLACK, gain=0.7, seed=1)  # same clothes, 30% darker camera
    blue, _ = _person(BLUE, BLACK, seed=2)
    e = reid.embed([red, red, red_dark, blue])
    assert _cos(e[0], e[1]) == pytest.approx(1.0, abs=1e-6)
    assert _cos(e[0], e[2]) > _cos(e[0], e[3]) + 0.1


def test_stripes_masks_change_and_remove_background():
    reid = StripesReID()
    a, ma = _person(RED, BLACK, bg=(120, 120, 120))
    b, mb = _person(RED, BLACK, bg=(40, 150, 60), seed=1)  # same person on grass
    unmasked = reid.embed([a, b])
    masked = reid.embed([a, b], [ma, mb])
    assert not np.allclose(unmasked[0], masked[0])
    assert _cos(masked[0], masked[1]) > _cos(unmasked[0], unmasked[1])


def test_stripes_input_checks():
    reid = REID_BACKENDS.build("stripes", num_stripes=4)
    assert reid.dim == 4 * reid.config.bins_l * reid.config.bins_ab ** 2
    crop, mask = _person(RED, BLACK)
    with pytest.raises(ValueError, match="uint8"):
        reid.embed([crop.astype(np.float32)])
    with pytest.raises(ValueError, match="mask 0 has shape"):
        reid.embed([crop], [mask[:-1]])
    with pytest.raises(ValueError, match="1 crops but 2 masks"):
        reid.embed([crop], [mask, mask])
    with pytest.raises(ValueError, match="wrap it in"):
        reid.embed(crop)


# ----------------------------------------------------------------------------- OSNet


@pytest.fixture(scope="module")
def osnet():
    return OSNetReID("osnet_x0_25", checkpoint="random", seed=0)


@pytest.fixture(scope="module")
def crops():
    return [_person(c, BLACK, seed=i, h=96 + 16 * i, w=40 + 4 * i) for i, c in
            enumerate([RED, BLUE, RED, BLACK, BLUE])]


def test_osnet_random_embeds_batch(osnet, crops):
    assert isinstance(osnet, ReIDModel) and osnet.dim == 512
    imgs = [c for c, _ in crops]
    e = osnet.embed(imgs)
    assert e.shape == (5, 512) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)
    assert osnet.embed([]).shape == (0, 512)
    # masks paint the background with the ImageNet mean: a different input
    em = osnet.embed(imgs, [m for _, m in crops])
    assert not np.allclose(e, em)


def test_osnet_batching_does_not_change_results(osnet, crops):
    imgs = [c for c, _ in crops]
    small = OSNetReID("osnet_x0_25", checkpoint="random", seed=0, batch_size=2)
    np.testing.assert_allclose(small.embed(imgs), osnet.embed(imgs), atol=1e-5)


def test_osnet_loads_torchreid_checkpoint(tmp_path, crops):
    import torch

    src = OSNetReID("osnet_x0_25", checkpoint="random", seed=1)
    # a torchreid training checkpoint: DataParallel prefixes and a 10-identity classifier
    sd = {"module." + k: v for k, v in src.model.state_dict().items()
          if not k.startswith("classifier.")}
    sd["module.classifier.weight"] = torch.randn(10, 512)
    sd["module.classifier.bias"] = torch.zeros(10)
    path = tmp_path / "model.pth.tar-60"
    torch.save({"state_dict": sd, "epoch": 60, "rank1": 0.9}, path)

    loaded = OSNetReID("osnet_x0_25", checkpoint=path)
    assert loaded.load_report["missing"] == [] and loaded.load_report["unexpected"] == []
    assert sorted(loaded.load_report["dropped"]) == ["classifier.bias", "classifier.weight"]
    imgs = [c for c, _ in crops]
    np.testing.assert_allclose(loaded.embed(imgs), src.embed(imgs), atol=1e-6)

    # the project's own self-describing format round-trips, and names its architecture
    own = src.save(tmp_path / "own.pt")
    np.testing.assert_allclose(OSNetReID("osnet_x0_25", checkpoint=own).embed(imgs[:2]),
                               src.embed(imgs[:2]), atol=1e-6)
    with pytest.raises(ValueError, match="holds 'osnet_x0_25' weights"):
        OSNetReID("osnet_x1_0", checkpoint=own)
    # a plain state dict of the wrong architecture: shape mismatches are named
    plain = tmp_path / "plain.pth"
    torch.save(src.model.state_dict(), plain)
    with pytest.raises(ValueError, match="does not fit osnet_x1_0"):
        OSNetReID("osnet_x1_0", checkpoint=plain)


def test_osnet_missing_checkpoint_names_file(tmp_path):
    missing = tmp_path / "osnet_x1_0_imagenet.pth"
    with pytest.raises(FileNotFoundError) as info:
        REID_BACKENDS.build("osnet", checkpoint=missing)
    msg = str(info.value)
    assert str(missing) in msg and "osnet_x1_0_imagenet.pth" in msg
    assert "--reid-checkpoint" in msg and "model zoo" in msg
    with pytest.raises(FileNotFoundError, match="no file given"):
        OSNetReID("osnet_x0_25")
