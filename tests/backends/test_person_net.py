"""The classical tracker's optional learned person detector (person_net.py)."""

import numpy as np
import pytest

from raysys.backends.classical.config import ClassicalTrackerConfig
from raysys.backends.classical.detect import detect_frame
from raysys.backends.classical.person_net import (
    EMBEDDED_PATH,
    SCALE,
    STRIDE,
    build_net,
    decode,
    dense_targets,
    load_person_detector,
    net_input,
    save_person_detector,
    train_person_net,
)


def test_targets_decode_round_trip():
    """Logits made from the targets decode back to the boxes they were made from."""
    import torch

    x = np.zeros((180, 320, 4), np.float32)
    boxes = np.array([[40.0, 60.0, 24.0, 60.0], [400.0, 100.0, 40.0, 110.0]])
    heat, wt, size, off, centre = dense_targets(x, boxes)
    assert wt.min() == 1  # no foreground: nothing ignored
    assert heat.shape == (180 // STRIDE, 320 // STRIDE) and centre.sum() == 2
    logit = torch.from_numpy(np.where(heat == 1, 5.0, -5.0)[None, None].astype(np.float32))
    reg = torch.from_numpy(np.concatenate([size, off])[None])
    (got, scores), = decode(logit, reg, 0.5)
    assert len(got) == 2 and np.all(scores > 0.9)
    order = np.argsort(got[:, 0])
    np.testing.assert_allclose(got[order], boxes, atol=1e-4)


@pytest.mark.slow
def test_training_lowers_the_loss_and_finds_the_person():
    """A fresh network learns one bright person on a dark frame within a few steps."""
    rng = np.random.default_rng(0)
    inputs, boxes = [], []
    for _ in range(8):
        img = np.full((96, 160, 3), 40, np.uint8)
        fg = np.zeros((96, 160), bool)
        x0, y0 = int(rng.integers(10, 130)), int(rng.integers(5, 40))
        img[y0:y0 + 40, x0:x0 + 14] = (220, 60, 60)
        fg[y0:y0 + 40, x0:x0 + 14] = True
        inputs.append(net_input(img, fg))
        boxes.append(np.array([[x0, y0, 14.0, 40.0]]))
    net, losses = train_person_net(inputs, boxes, steps=80, progress=False)
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    import torch

    with torch.no_grad():
        heat, reg = net(torch.from_numpy(np.stack(inputs[:1])).permute(0, 3, 1, 2))
    p = torch.sigmoid(heat)[0, 0]
    cy, cx = np.unravel_index(int(p.argmax()), p.shape)
    b = boxes[0][0] / (SCALE * STRIDE)
    assert abs(cx + 0.5 - (b[0] + b[2] / 2)) <= 1.5 and abs(cy + 0.5 - (b[1] + b[3] / 2)) <= 1.5


def test_missing_weights_error_names_file_and_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt.*raysys pretrain-detector"):
        load_person_detector(str(tmp_path / "nope.pt"), 0.4)


def test_save_load_round_trip(tmp_path):
    import torch

    net = build_net().eval()
    path = save_person_detector(net, tmp_path / "d" / "person_net.pt", {"steps": 0})
    det = load_person_detector(str(path), 0.4)
    x = torch.rand(1, 4, 48, 80)
    with torch.no_grad():
        np.testing.assert_allclose(det.net(x)[0].numpy(), net(x)[0].numpy(), atol=1e-6)


class _FG:
    """Just what detect_frame reads of a Foreground: shape, mask(i), min_area, cv2."""

    def __init__(self, mask):
        import cv2

        self.cv2, self.shape, self._m, self.min_area = cv2, mask.shape, mask, 8

    def mask(self, i):
        return self._m


def test_people_from_boxes_masks():
    """Overlapping people split the foreground nearest first; a person with no foreground
    of their own (standing still) keeps their whole box."""
    m = np.zeros((120, 200), bool)
    m[20:80, 30:50] = True  # far person
    m[30:90, 40:60] = True  # nearer person overlapping them
    boxes = np.array([[30.0, 20.0, 20.0, 60.0], [40.0, 30.0, 20.0, 60.0],
                      [120.0, 20.0, 20.0, 60.0]])  # the third: no foreground at all
    dets = detect_frame(_FG(m), 0, None, ClassicalTrackerConfig(),
                        (boxes, np.array([0.9, 0.8, 0.7])))
    assert [d.category for d in dets] == ["person"] * 3
    by_x = {int(d.box[0]): d for d in dets}
    near, far, still = by_x[40], by_x[30], by_x[120]
    assert near.mask.all()  # all foreground inside the nearer box is theirs
    assert far.mask.sum() == 60 * 20 - 50 * 10  # its box less the nearer person's pixels
    assert not (far.full_mask(m.shape) & near.full_mask(m.shape)).any()
    assert still.mask.all() and still.mask.shape == (60, 20)
    assert still.score == pytest.approx(0.7)
    # a wide low blob is a vehicle (shape rule, no size model); a person box on it is dropped
    car = np.zeros((120, 200), bool)
    car[70:100, 100:180] = True
    dets = detect_frame(_FG(car), 0, None, ClassicalTrackerConfig(),
                        (np.array([[100.0, 70.0, 80.0, 30.0]]), np.array([0.9])))
    assert [d.category for d in dets] == ["car"]


@pytest.mark.skipif(not EMBEDDED_PATH.is_file(), reason="embedded weights not built")
def test_embedded_detector_finds_people_of_an_unseen_scene(tmp_path):
    """The shipped weights on a scene of a seed they were not trained on: box F1 at IoU 0.5
    against the GT (0.8 when written; the matched filter got 0.68 on the same frames)."""
    from scipy.optimize import linear_sum_assignment

    from raysys.backends.classical.foreground import Foreground
    from raysys.eval.pairs import iou_xywh
    from raysys.io.dataset import DatasetLayout
    from raysys.io.gt import load_scene_tracks
    from raysys.io.video import VideoFrames
    from raysys.synth import SynthConfig, generate

    generate(SynthConfig(seed=7, scenes=1, frames=12, people=8, splits=("test",),
                         domains=("In-domain",)), tmp_path)
    layout = DatasetLayout(tmp_path, "In-domain", "test")
    det = load_person_detector("embedded", 0.4)
    tp = n = 0
    for vd in sorted(p for p in layout.image_root.iterdir() if p.is_dir()):
        scene, view = vd.name.rsplit("_", 1)
        gt = load_scene_tracks(layout, scene, "person")[view]
        vid = VideoFrames(scene, view, vd)
        fg = Foreground(vid, ClassicalTrackerConfig())
        res = det.detect([np.asarray(vid[i]) for i in range(len(vid))],
                         [fg.mask(i) for i in range(len(vid))])
        for i, (boxes, _) in enumerate(res):
            g = gt[gt[:, 0] == vid.frame_numbers[i]][:, 2:6]
            n += len(g) + len(boxes)
            if len(g) and len(boxes):
                iou = np.array([iou_xywh(g, np.repeat(b[None], len(g), 0)) for b in boxes])
                r, c = linear_sum_assignment(-iou)
                tp += int((iou[r, c] >= 0.5).sum())
    assert n > 0 and 2 * tp / n > 0.6


def test_pretrain_detector_command_writes_loadable_weights(tmp_path, capsys):
    """`raysys pretrain-detector` on a tiny generated benchmark: weights that load, with
    how they were made; a folder without videos is a clear error."""
    from raysys.cli import main
    from raysys.synth import SynthConfig, generate

    data = tmp_path / "data"
    generate(SynthConfig(seed=5, scenes=1, views=2, frames=6, width=320, height=180,
                         people=3, splits=("train",), domains=("In-domain",)), data)
    out = tmp_path / "det"
    assert main(["pretrain-detector", "--out", str(out), "--data", str(data),
                 "--steps", "3", "--threads", "1"]) == 0
    det = load_person_detector(str(out / "person_net.pt"), 0.4)
    import torch

    meta = torch.load(out / "person_net.pt", weights_only=True)["meta"]
    assert meta["frames"] == 12 and meta["steps"] == 3 and meta["boxes"] > 0
    assert len(det.detect([np.zeros((180, 320, 3), np.uint8)], [np.zeros((180, 320), bool)])) == 1
    (tmp_path / "empty").mkdir()
    assert main(["pretrain-detector", "--out", str(out), "--data",
                 str(tmp_path / "empty")]) == 2
    assert "no generated videos" in capsys.readouterr().err


def test_rgb_only_detector_reads_the_frame_alone(tmp_path):
    """`pretrain-detector --rgb-only`'s network: a 3-channel input, every cell a negative
    where no person is (no foreground to excuse vehicles), saved and loaded as such, and
    its detect() ignores the foreground masks it is given."""
    import torch

    img = np.full((96, 160, 3), 40, np.uint8)
    img[20:60, 60:74] = (220, 60, 60)
    x = net_input(img, None)
    assert x.shape == (48, 80, 3)
    np.testing.assert_allclose(x, net_input(img, np.ones((96, 160), bool))[..., :3])
    fg = np.zeros((96, 160), bool)
    fg[70:90, 10:60] = True  # a "vehicle": ignored with the foreground channel only
    assert dense_targets(net_input(img, fg), np.zeros((0, 4)))[1].min() == 0
    assert dense_targets(x, np.zeros((0, 4)))[1].min() == 1
    net = build_net(3).eval()
    path = save_person_detector(net, tmp_path / "person_net_rgb.pt", {"steps": 0})
    det = load_person_detector(str(path), 0.0)
    assert not det.uses_foreground and load_person_detector(
        str(save_person_detector(build_net(), tmp_path / "p4.pt", {})), 0.0).uses_foreground
    with torch.no_grad():
        want = net(torch.from_numpy(x[None]).permute(0, 3, 1, 2))[0]
    got = det.detect([img], [fg])[0]
    assert len(got[0]) and float(got[1].max()) == pytest.approx(
        float(torch.sigmoid(want).max()), abs=1e-6)


def test_pretrain_rgb_only_writes_a_frame_only_detector(tiny_test_split, tmp_path):
    """`raysys pretrain-detector --rgb-only`'s function on generated scenes: it reads the
    frames alone (3 channels) and writes person_net_rgb.pt, which says so in its meta."""
    import torch

    from raysys.backends.classical.pretrain_detector import (
        WEIGHTS_FILE,
        pretrain_person_detector,
        pretraining_frames,
    )

    x, boxes = pretraining_frames(tiny_test_split.root, progress=False, rgb_only=True)
    assert x and x[0].shape[-1] == 3 and sum(len(b) for b in boxes) > 0
    meta = pretrain_person_detector(tmp_path, [tiny_test_split.root], steps=2, progress=False,
                                    rgb_only=True)
    assert WEIGHTS_FILE[True] == "person_net_rgb.pt" and meta["inputs"] == "rgb"
    ckpt = torch.load(tmp_path / "person_net_rgb.pt", weights_only=True)
    assert ckpt["inputs"] == 3 and ckpt["meta"]["steps"] == 2
    assert not load_person_detector(str(tmp_path / "person_net_rgb.pt"), 0.3).uses_foreground
