"""Corrupt frames fail with one line naming the file, scene, view and frame number: checked
up front (headers, sizes, cut-off files) and when decoded, also from inside a Ray worker."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image

from raysys.io.frames import (
    FrameError,
    check_frames,
    find_frame_error,
    list_frames,
    read_frame,
    worker_frame_errors,
)
from raysys.io.video import VideoFrames


@pytest.fixture
def image_root(tmp_path):
    """One scene, two views of four 40x24 JPEG frames each."""
    rng = np.random.default_rng(0)
    for v in ("View1", "View2"):
        d = tmp_path / f"Plaza_{v}"
        d.mkdir()
        for i in range(1, 5):
            img = rng.integers(0, 255, (24, 40, 3), dtype=np.uint8)
            Image.fromarray(img).save(d / f"{i:06d}.jpg", quality=90)
    return tmp_path


def _cut(b: bytes) -> bytes:
    return b[:len(b) // 2]  # no end marker: found by the up-front check


def _broken(b: bytes) -> bytes:  # header and end marker intact, data broken inside
    k = len(b) // 2
    return b[:k] + b"\xff" * 200 + b[k + 200:]


def _small(_: bytes) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(np.zeros((10, 20, 3), np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.parametrize("make, problem", [
    (lambda b: b"", "empty file (0 bytes)"),
    (_cut, "truncated image"),
    (lambda b: b"not a jpeg at all", "not an image this reader knows"),
    (_small, "20x10 pixels, while 3 other frames of the view are 40x24"),
], ids=["empty", "truncated", "not-an-image", "other-size"])
def test_check_frames_names_the_frame(image_root, make, problem):
    f = image_root / "Plaza_View2" / "000003.jpg"
    f.write_bytes(make(f.read_bytes()))
    with pytest.raises(FrameError) as e:
        check_frames(image_root)
    msg = str(e.value)
    assert msg.startswith(f"corrupt frame {f} (Plaza, View2, frame 3): ") and problem in msg
    assert "\n" not in msg and (e.value.view, e.value.frame) == ("View2", 3)


def test_corrupt_data_inside_fails_when_decoded(image_root):
    f = image_root / "Plaza_View1" / "000002.jpg"
    f.write_bytes(_broken(f.read_bytes()))
    assert check_frames(image_root) == {"views": 2, "frames": 8}  # headers are fine
    video = VideoFrames("Plaza", "View1", image_root / "Plaza_View1")
    assert video[0].shape == (24, 40, 3)
    with pytest.raises(FrameError, match=r"\(Plaza, View1, frame 2\): cannot be decoded"):
        video[1]
    with pytest.raises(FrameError, match="000002.jpg"):
        read_frame(f)


def test_video_frames_refuse_another_size(image_root):
    f = image_root / "Plaza_View1" / "000004.jpg"
    f.write_bytes(_small(b""))
    video = VideoFrames("Plaza", "View1", image_root / "Plaza_View1")
    video[0]
    with pytest.raises(FrameError, match="frame 4\\): 20x10 pixels, while the view's other "
                                         "frames are 40x24"):
        video[3]


def test_list_frames_refuses_an_empty_file(image_root):
    (image_root / "Plaza_View1" / "000009.jpg").write_bytes(b"")
    with pytest.raises(FrameError, match=r"000009.jpg \(Plaza, View1, frame 9\): empty"):
        list_frames(image_root / "Plaza_View1")


def test_a_worker_error_comes_back_as_itself():
    err = FrameError("/d/S_View2/000007.jpg", "truncated image (x)", "S", "View2", 7)
    back = pickle.loads(pickle.dumps(err))  # what a Ray worker sends
    assert str(back) == str(err) and (back.scene, back.view, back.frame) == ("S", "View2", 7)

    class Wrapped(Exception):  # Ray Data / Ray Train keep only the worker's traceback text
        pass

    with pytest.raises(FrameError) as e, worker_frame_errors():
        raise Wrapped(f"ray::MapWorker()\nTraceback ...\nraysys.io.frames.FrameError: {err}\n")
    assert str(e.value) == str(err) and e.value.frame == 7
    with pytest.raises(KeyError), worker_frame_errors():
        raise KeyError("not a frame")  # anything else passes through
    assert find_frame_error(ValueError("x")) is None
