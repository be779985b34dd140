"""The sam3 concept tracker backend on CPU: its refusals, and its handling of sam3's session
API, checked against a fake model with that API (sam3 itself needs a CUDA GPU; its run on
the real model is ``benchmarks/gpu/label_check.py`` on the device machine)."""

import subprocess
import sys

import numpy as np
import pytest

from raysys.backends.mask_prompts import prompt_points
from raysys.backends.sam3_tracker import OBJ_ID, Sam3ConceptTracker
from raysys.io.video import VideoFrames
from raysys.types import MaskRLE

H, W = 40, 80


def _box_mask(x, y, w, h):
    m = np.zeros((H, W), bool)
    m[max(0, y):max(0, y + h), max(0, x):max(0, x + w)] = True
    return m


class FakeSam3:
    """The part of sam3's video model API the backend uses, with scripted objects.

    Text prompt: object 0 at x = 2 + 2t and object 1 at x = 40 + t (12 x 20 px boxes) on
    every frame; object 2 only on the first two frames. Outputs come ``lag`` frames late
    (sam3's hot start) and all at the end. Point prompt: one object (the prompted id) with
    the prompted box, shifted by 1 px a frame in time order, lost ``lose_after`` frames away
    from the seed. Like sam3, adding points needs a cached output for the frame.
    """

    def __init__(self, lag=3, lose_after=None):
        self.lag, self.lose_after = lag, lose_after
        self.init_calls, self.prompts, self.processed = 0, [], 0
        self.score_threshold_detection, self.new_det_thresh = 0.5, 0.7
        self.max_num_objects, self.hotstart_delay = 10000, 15
        self.hotstart_unmatch_thresh = self.hotstart_dup_thresh = 8

    def init_state(self, resource_path):
        self.init_calls += 1
        return {"num_frames": len(resource_path), "orig_height": H, "orig_width": W,
                "tracker_metadata": {}, "cached_frame_outputs": {}, "text": None,
                "points": None}

    def reset_state(self, state):
        state.update(text=None, points=None)
        state["tracker_metadata"].clear()
        state["cached_frame_outputs"].clear()

    def add_prompt(self, state, frame_idx, text_str=None, points=None, point_labels=None,
                   obj_id=None, rel_coordinates=True):
        if text_str is not None:
            self.reset_state(state)
            state["text"] = text_str
            return frame_idx, self._out(self._text_objects(frame_idx))
        assert frame_idx in state["cached_frame_outputs"], "No cached outputs found"
        assert rel_coordinates
        pts, labels = np.asarray(points, float) * [W, H], list(point_labels)
        self.prompts.append((pts, labels))
        (x0, y0), (x1, y1) = pts[0], pts[1]
        state["points"] = (frame_idx, obj_id, (round(x0), round(y0), round(x1 - x0),
                                               round(y1 - y0)))
        state["tracker_metadata"] = {"obj_id_to_tracker_score_frame_wise": {}}
        return frame_idx, self._out({})

    def _text_objects(self, t):
        objs = {0: _box_mask(2 + 2 * t, 5, 12, 20), 1: _box_mask(40 + t, 15, 12, 20)}
        if t < 2:
            objs[2] = _box_mask(60, 2, 6, 6)
        return objs

    @staticmethod
    def _out(objs):
        ids = sorted(objs)
        return {"out_obj_ids": np.array(ids, np.int64),
                "out_probs": np.full(len(ids), 0.9),
                "out_boxes_xywh": np.zeros((len(ids), 4)),
                "out_binary_masks": np.array([objs[i] for i in ids]).reshape(-1, H, W)}

    def propagate_in_video(self, state, start_frame_idx, max_frame_num_to_track, reverse):
        n = state["num_frames"]
        if reverse:
            order = range(start_frame_idx - 1, max(start_frame_idx - max_frame_num_to_track,
                                                   0) - 1, -1)
        else:
            order = range(start_frame_idx, min(start_frame_idx + max_frame_num_to_track,
                                               n - 1) + 1)
        if state["text"] is not None:
            buf = []
            meta = state["tracker_metadata"].setdefault("obj_id_to_tracker_score_frame_wise",
                                                        {})
            for t in order:
                self.processed += 1
                meta[t] = {0: 0.8} if t > 0 else {}  # tracker scores: probabilities
                buf.append((t, self._out(self._text_objects(t))))
                if len(buf) > self.lag:
                    yield buf.pop(0)
            yield from buf
            return
        seed, oid, (x, y, w, h) = state["points"]
        meta = state["tracker_metadata"]["obj_id_to_tracker_score_frame_wise"]
        for t in order:
            self.processed += 1
            lost = self.lose_after is not None and abs(t - seed) > self.lose_after
            meta[t] = {oid: 2.0}  # partial propagation stores logits
            yield t, self._out({} if lost else {oid: _box_mask(x + (t - seed), y, w, h)})


def _video(n=12):
    return VideoFrames("SceneA", "View1", [np.zeros((H, W, 3), np.uint8)] * n)


def test_cpu_is_refused_with_a_hint():
    with pytest.raises(RuntimeError, match="needs a CUDA GPU.*--tracker classical"):
        Sam3ConceptTracker(device="cpu", random_init=True)


@pytest.mark.parametrize("checkpoint", [None, "/nonexistent/sam3.pt"])
def test_missing_checkpoint_names_the_file(checkpoint):
    with pytest.raises(FileNotFoundError, match=r"sam3\.pt.*facebook/sam3"):
        Sam3ConceptTracker(checkpoint=checkpoint, device="cuda")


def test_missing_bpe_names_the_file():
    with pytest.raises(FileNotFoundError, match=r"bpe_simple_vocab_16e6\.txt\.gz.*open_clip"):
        Sam3ConceptTracker(bpe_path="/nonexistent/bpe_simple_vocab_16e6.txt.gz",
                           device="cuda", random_init=True)


def test_checkpoint_and_random_init_exclude_each_other():
    with pytest.raises(ValueError, match="not both"):
        Sam3ConceptTracker(checkpoint="sam3.pt", device="cuda", random_init=True)


def test_registry_builds_sam3_lazily():
    code = (
        "import sys\n"
        "from raysys.backends.concept_tracker import TRACKER_BACKENDS\n"
        "assert 'raysys.backends.sam3_tracker' not in sys.modules\n"
        "try:\n"
        "    TRACKER_BACKENDS.build('sam3', device='cpu')\n"
        "except RuntimeError as e:\n"
        "    assert 'CUDA GPU' in str(e), e\n"
        "else:\n"
        "    raise SystemExit('built on CPU')\n"
        "assert 'raysys.backends.sam3_tracker' in sys.modules\n"
        "bad = [m for m in ('sam3', 'torch') if m in sys.modules]\n"
        "assert not bad, bad\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_options_set_sam3_thresholds():
    fake = FakeSam3()
    Sam3ConceptTracker.from_model(fake, device="cpu", score_threshold=0.1, max_objects=4,
                                  hotstart_delay=5)
    assert (fake.score_threshold_detection, fake.new_det_thresh) == (0.1, 0.1)
    assert fake.max_num_objects == 4 and fake.hotstart_delay == 5
    # sam3 asserts the hot-start thresholds fit inside the delay
    assert fake.hotstart_unmatch_thresh == fake.hotstart_dup_thresh == 5


def test_track_turns_outputs_into_tracklets():
    fake = FakeSam3(lag=3)
    trk = Sam3ConceptTracker.from_model(fake, device="cpu", min_length=3)
    out = trk.track(_video(12), "person")
    # object 2 lives 2 frames < min_length 3: dropped; ids 1, 2 in order of appearance
    assert [t.local_id for t in out] == [1, 2]
    a, b = out
    assert a.frames.tolist() == list(range(1, 13)) and a.category == "person"
    # frame 4 (t = 3): object 0 at x = 2 + 2*3 = 8, y = 5, 12 x 20
    assert a.boxes[3].tolist() == [8, 5, 12, 20]
    assert np.array_equal(a.masks[3].decode(), _box_mask(8, 5, 12, 20))
    # frame 12 (t = 11): object 1 at x = 40 + 11 = 51
    assert b.boxes[11].tolist() == [51, 15, 12, 20]
    # first frame: detection probability; later frames: the tracker's probability
    assert a.scores[0] == pytest.approx(0.9) and a.scores[1] == pytest.approx(0.8)


def test_track_in_windows_of_max_frames():
    fake = FakeSam3(lag=0)
    trk = Sam3ConceptTracker.from_model(fake, device="cpu", min_length=3, max_frames=5)
    out = trk.track(_video(12), "person")
    # windows [1-5], [6-10], [11-12]; the last is shorter than min_length; frame t of a
    # window is local: object 0 restarts at x = 2 in each window
    assert fake.init_calls == 3
    assert [t.frames.tolist() for t in out] == [[1, 2, 3, 4, 5]] * 2 + [[6, 7, 8, 9, 10]] * 2
    assert [t.local_id for t in out] == [1, 2, 3, 4]


@pytest.mark.parametrize("direction, frames", [("forward", list(range(6, 13))),
                                               ("backward", list(range(1, 7)))])
def test_repropagate_follows_the_seed(direction, frames):
    fake = FakeSam3()
    trk = Sam3ConceptTracker.from_model(fake, device="cpu")
    video = _video(12)
    trk.track(video, "person")
    seed = MaskRLE.encode(_box_mask(20, 10, 10, 16))
    t = trk.repropagate(video, 6, seed, direction, "person")
    assert fake.init_calls == 1  # the session of track() is reused
    assert t.frames.tolist() == frames
    k = frames.index(6)
    assert t.masks[k] == seed and t.scores[k] == 1.0
    assert t.boxes[k].tolist() == [20, 10, 10, 16]
    # one frame later/earlier the fake shifted the box by +-1 px; score = sigmoid(2.0)
    k2 = k + 1 if direction == "forward" else k - 1
    assert t.boxes[k2].tolist() == [20 + (1 if direction == "forward" else -1), 10, 10, 16]
    assert t.scores[k2] == pytest.approx(1 / (1 + np.exp(-2.0)))
    pts, labels = fake.prompts[-1]
    assert labels[:2] == [2, 3] and set(labels[2:]) == {1}
    assert np.allclose(pts[:2], [[20, 10], [30, 26]])  # the box corners, in pixels
    m = seed.decode()
    assert all(m[int(y), int(x)] for x, y in pts[2:])  # positive points inside the mask


def test_repropagate_stops_after_max_miss():
    fake = FakeSam3(lose_after=2)
    trk = Sam3ConceptTracker.from_model(fake, device="cpu", reprop_max_miss=1)
    t = trk.repropagate(_video(12), 3, MaskRLE.encode(_box_mask(20, 10, 10, 16)), "forward",
                        "person")
    # seed index 2: found at 2, 3, 4; lost at 5, 6 -> the second miss stops it
    assert t.frames.tolist() == [3, 4, 5]
    assert fake.processed == 5


def test_repropagate_checks_its_inputs():
    trk = Sam3ConceptTracker.from_model(FakeSam3(), device="cpu")
    video = _video(4)
    good = MaskRLE.encode(_box_mask(2, 2, 5, 5))
    with pytest.raises(ValueError, match="direction"):
        trk.repropagate(video, 1, good, "sideways", "person")
    with pytest.raises(ValueError, match="empty"):
        trk.repropagate(video, 1, MaskRLE.encode(np.zeros((H, W), bool)), "forward", "person")
    with pytest.raises(ValueError, match="seed mask is"):
        trk.repropagate(video, 1, MaskRLE.encode(np.ones((8, 8), bool)), "forward", "person")
    with pytest.raises(KeyError):
        trk.repropagate(video, 9, good, "forward", "person")


def test_prompt_points_box_and_interior():
    m = np.zeros((20, 30), bool)
    m[2:18, 3:9] = True  # a 16 x 6 bar ...
    m[12:18, 3:27] = True  # ... and a 6 x 24 foot: an L
    pts, labels = prompt_points(m, n_points=4)
    assert labels == [2, 3, 1, 1, 1, 1]
    # box corners: x 3..26 -> 3/30 and 27/30; y 2..17 -> 2/20 and 18/20
    assert np.allclose(pts[:2], [[3 / 30, 2 / 20], [27 / 30, 18 / 20]])
    xy = [(x * 30 - 0.5, y * 20 - 0.5) for x, y in pts[2:]]
    assert all(m[round(y), round(x)] for x, y in xy)
    assert len({(round(x), round(y)) for x, y in xy}) == 4  # distinct points
    with pytest.raises(ValueError, match="non-empty"):
        prompt_points(np.zeros((4, 4), bool))


def test_obj_id_is_positive():
    assert OBJ_ID > 0
