"""The online ViewSAM tracker: clip buffering, bounded state, identities, offline runner.

The model is the real ViewSAM (embedded tiny SAM2 at 64 px, MiniLM) with random weights:
what is tested is the tracker's mechanics, not the quality of its labels (the quality is
measured by ``raysys report`` on trained checkpoints).
"""

import json

import numpy as np
import pytest
import torch

from raysys.config import to_dict
from raysys.io import crtrack
from raysys.io.dataset import DatasetLayout
from raysys.tracking import IdentityBank, TrackConfig, ViewSAMTracker
from raysys.training.config import StageConfig, quick_config
from raysys.training.model import build_model
from raysys.viewsam.base import sam2_yaml_text
from raysys.viewsam.checkpoint import model_state, write_checkpoint

ray = pytest.importorskip("ray")

OPEN = dict(refer_threshold=0.0, objectness_threshold=0.0, min_refer=0.0)


def _cfg():
    return quick_config(clip_frames=2, image_size=64, sam2_image_size=64, max_objects=4,
                        max_samples=4, stages=(StageConfig("all", ("cgct",), 1, 1e-3),))


@pytest.fixture(scope="module")
def model(always_present):
    torch.manual_seed(0)
    # random heads: SAM2 calls every decoded object present, so tracks open and live
    return always_present(build_model(_cfg(), sam2_yaml_text(None, 64)).eval())


def _frames(rng, v=2, h=48, w=80):
    return [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(v)]


def test_identity_bank_assigns_matches_and_new_ids():
    bank = IdentityBank(threshold=0.8, momentum=0.5, max_identities=3)
    a, b = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    g1, g2 = bank.assign([a, b], busy=set())
    assert (g1, g2) == (1, 2) and len(bank) == 2  # empty bank: new identities
    # another view sees both, swapped: the assignment follows the embeddings
    assert bank.assign([b * 2, a + 0.01], busy=set()) == [g2, g1]
    # an identity held by a live track of the view is not eligible: a new id instead
    assert bank.assign([a], busy={g1}) == [3]
    # below the threshold: new identity; no embedding (CGCT ablation): new identity
    assert bank.assign([np.array([0, 0, 1.0])], busy=set()) == [4]
    assert bank.assign([None], busy=set()) == [5]
    assert len(bank) == 3  # bounded: the least recently updated were forgotten
    assert 1 not in bank.prototypes


def test_clip_ids_follow_a_track_that_switched_people_only_with_reassign():
    """Two people in view 0 hold ids 1 and 2; next clip their tracks' embeddings are
    swapped (the tracks crossed and followed each other's person). With ``reassign`` the
    ids follow the embeddings; without, they stay. A small difference does not flip an
    id (``keep_bonus``); a new track in view 1 joins the identity it looks like."""
    from types import SimpleNamespace as Track

    from raysys.tracking.identity import assign_clip_ids

    a, b = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    for reassign, want in ((True, (2, 1)), (False, (1, 2))):
        bank = IdentityBank(threshold=0.5, momentum=0.0, max_identities=8)
        t1, t2 = Track(view=0, gid=None, emb=[a]), Track(view=0, gid=None, emb=[b])
        assign_clip_ids(bank, {1: t1, 2: t2}, [[t1, t2], []], reassign, 0.1)
        assert (t1.gid, t2.gid) == (1, 2) and t1.emb == []
        t1.emb, t2.emb = [b], [a]
        new = Track(view=1, gid=None, emb=[a * 0.9 + b * 0.1])
        assign_clip_ids(bank, {1: t1, 2: t2, 3: new}, [[t1, t2], [new]], reassign, 0.1)
        assert (t1.gid, t2.gid) == want and new.gid == 1
    for bonus, want_id in ((0.1, 1), (0.0, 2)):  # t2 has ended; t1 drifts towards its look
        bank = IdentityBank(threshold=0.5, momentum=0.0, max_identities=8)
        t1, t2 = Track(view=0, gid=None, emb=[a]), Track(view=0, gid=None, emb=[b])
        assign_clip_ids(bank, {1: t1, 2: t2}, [[t1, t2]], True, bonus)
        t1.emb = [a * 0.48 + b * 0.52]  # cosine 0.68 with id 1, 0.73 with id 2
        assign_clip_ids(bank, {1: t1}, [[t1]], True, bonus)
        assert t1.gid == want_id


def test_identity_bank_update_moves_prototype():
    bank = IdentityBank(threshold=0.5, momentum=0.5, max_identities=8)
    g = bank.new_identity(np.array([1.0, 0.0]))
    bank.update(g, np.array([0.0, 1.0]))
    p = bank.prototypes[g]
    assert np.isclose(np.linalg.norm(p), 1.0) and np.allclose(p, [2 ** -0.5, 2 ** -0.5])


def test_assign_proposals_is_one_to_one():
    from raysys.tracking.tracker import assign_proposals

    # two tracks side by side, both overlapping proposal 0 (the left person):
    # IoU(track0, p0) = 1, IoU(track1, p0) = 5*10 / (100 + 100 - 50) = 1/3,
    # IoU(track1, p1) = 1; a greedy per-track argmax would give p0 to both when p1 is
    # missing, the assignment gives p0 to track 0 only
    tracks = torch.tensor([[0.0, 0, 10, 10], [5, 0, 15, 10]])
    both = torch.tensor([[0.0, 0, 10, 10], [5, 0, 15, 10]])
    assert assign_proposals(tracks, both, 0.3) == {0: 0, 1: 1}
    assert assign_proposals(tracks, both[:1], 0.3) == {0: 0}
    # a proposal below min_iou matches nothing (1/3 < 0.5)
    assert assign_proposals(tracks[1:], both[:1], 0.5) == {}
    assert assign_proposals(tracks[:0], both, 0.3) == {}


def test_tracker_buffers_clips_and_flushes(model):
    rng = np.random.default_rng(0)
    tr = ViewSAMTracker(model, "a person in a red coat", 2, TrackConfig(clip_frames=3, **OPEN))
    out = [tr.step(_frames(rng)) for _ in range(7)]
    assert [len(r) for r in out] == [0, 0, 3, 0, 0, 3, 0]  # results once a clip is full
    tail = tr.flush()
    assert [r.index for r in tail] == [6] and tr.flush() == []
    results = [r for rs in out for r in rs] + tail
    assert [r.index for r in results] == list(range(7))
    objs = [o for r in results for v in r.views for o in v]
    assert objs, "present-forced SAM2 should open tracks from the proposals"
    for o in objs:
        x, y, w, h = o.box
        assert w > 0 and h > 0 and 0 <= x and x + w <= 80 and 0 <= y and y + h <= 48
        assert o.mask is not None and o.mask.shape == (48, 80)
        assert o.box_source in ("mask", "proposal")
        assert o.mask.any() or o.box_source == "proposal"  # a mask's box needs a mask
        assert o.global_id >= 1 and 0 < o.score <= 1
    # within one frame and view, global ids are unique (one object is once in a view)
    for r in results:
        for v in r.views:
            ids = [o.global_id for o in v]
            assert len(ids) == len(set(ids))


def test_on_proposals_sees_every_view_frame_and_changes_nothing(model):
    """The diagnostic hook gets each view-frame's proposals of every expression, in the
    input frame's pixels, before tracking; the output is the same without it."""
    from raysys.tracking import MultiExpressionTracker

    rng = np.random.default_rng(5)
    sets = [_frames(rng) for _ in range(4)]
    seen = {}

    def hook(g, e, k, boxes, refer, obj):
        seen[(g, e, k)] = (boxes, refer, obj)

    def run(on_proposals):
        tr = MultiExpressionTracker(model, ["a person", "a red car"], 2,
                                    TrackConfig(clip_frames=3, **OPEN),
                                    on_proposals=on_proposals)
        res = [r for fs in sets for r in tr.step(fs)[0]] + tr.flush()[0]
        return [(r.index, k, o.track_id, o.box) for r in res
                for k, v in enumerate(r.views) for o in v]

    with_hook = run(hook)
    assert sorted(seen) == [(g, e, k) for g in range(4) for e in range(2) for k in range(2)]
    for boxes, refer, obj in seen.values():
        assert boxes.shape == (len(refer), 4) and len(obj) == len(refer) > 0
        assert (boxes[:, [0, 2]] >= -1e-3).all() and (boxes[:, [0, 2]] <= 80 + 1e-3).all()
        assert (boxes[:, [1, 3]] >= -1e-3).all() and (boxes[:, [1, 3]] <= 48 + 1e-3).all()
        assert ((refer >= 0) & (refer <= 1)).all() and ((obj >= 0) & (obj <= 1)).all()
    assert with_hook and with_hook == run(None)
    # every proposal passes the open thresholds: each output box is one of its frame's
    for g, k, _, (x, y, w, h) in with_hook:
        b = seen[(g, 0, k)][0]
        assert np.abs(b - np.array([x, y, x + w, y + h])).max(1).min() < 1e-2


def test_external_proposals_drive_tracks_and_boxes(model):
    """A proposal function (another detector, or GT in the track-oracle diagnostic) replaces
    the Candidate Generator's proposals: each track reports its matched proposal's box,
    keeps one id, and a proposal referred below the threshold opens
    nothing; without referring probabilities the model's matching branch scores the boxes."""
    rng = np.random.default_rng(2)
    moving = lambda g: np.array([10.0 + 2 * g, 8.0, 22.0 + 2 * g, 30.0])  # noqa: E731
    still = np.array([50.0, 10.0, 60.0, 40.0])
    calls = []

    def fn(g, k):
        calls.append((g, k))
        return np.stack([moving(g), still]), np.array([0.9, 0.1]), None

    cfg = TrackConfig(clip_frames=3, refer_threshold=0.5, objectness_threshold=0.5,
                      min_refer=0.5)
    tr = ViewSAMTracker(model, "a person", 2, cfg, proposals=fn)
    results = [r for _ in range(6) for r in tr.step(_frames(rng))]
    assert sorted(set(calls)) == [(g, k) for g in range(6) for k in range(2)]
    for r in results:
        for v in r.views:
            assert len(v) == 1, "only the referred proposal opens a track"
            o = v[0]
            x0, y0, x1, y1 = moving(r.index)
            assert o.box_source == "proposal"
            assert np.allclose(o.box, (x0, y0, x1 - x0, y1 - y0), atol=1e-3)
    per_view = {k: {r.views[k][0].track_id for r in results} for k in range(2)}
    assert all(len(t) == 1 for t in per_view.values()), "one track per view all along"
    # referring left to the model: its matching branch scores every proposal
    seen = []
    tr = ViewSAMTracker(model, "a person", 2, TrackConfig(clip_frames=2, **OPEN),
                        proposals=lambda g, k: (np.stack([moving(g), still]), None, None))
    orig = tr._external

    def spy(ctx, *a):
        orig(ctx, *a)
        seen.append(ctx.refer.clone())

    tr._external = spy
    tr.step(_frames(rng))
    tr.step(_frames(rng))
    assert len(seen) == 4 and all(r.shape == (2,) and ((r > 0) & (r < 1)).all() for r in seen)


def test_tracker_state_stays_bounded_on_a_long_stream(model):
    rng = np.random.default_rng(1)
    cfg = TrackConfig(clip_frames=2, max_tracks=2, memory_frames=3, max_identities=4,
                      keep_masks=False, **OPEN)
    tr = ViewSAMTracker(model, "a person", 2, cfg)
    sizes = []
    for i in range(24):
        tr.step(_frames(rng))
        assert tr.num_live_tracks <= 2 * cfg.max_tracks
        if i % 2 == 1:
            sizes.append(tr.state_bytes())
    assert len(tr.identities) <= cfg.max_identities
    for ts in tr.tracks:
        for t in ts:
            assert len(t.bank["non_cond_frame_outputs"]) <= cfg.memory_frames
            assert len(t.bank["cond_frame_outputs"]) == 1
    # after warm-up the state no longer grows with the stream
    assert max(sizes[6:]) <= 1.05 * max(sizes[:6]), sizes


def test_tracker_rejects_bad_input(model):
    tr = ViewSAMTracker(model, "a person", 2, TrackConfig(clip_frames=2))
    rng = np.random.default_rng(2)
    with pytest.raises(ValueError, match="expected 2 frames"):
        tr.step(_frames(rng, v=3))
    with pytest.raises(ValueError, match="uint8"):
        tr.step([np.zeros((8, 8, 3), np.float32)] * 2)
    tr.step(_frames(rng))
    with pytest.raises(ValueError, match="differs"):
        tr.step(_frames(rng, h=40))
    with pytest.raises(ValueError, match="view slots"):
        ViewSAMTracker(model, "a person", 2, view_ids=[0, 99])
    with pytest.raises(ValueError, match="clip_frames"):
        TrackConfig(clip_frames=0)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from raysys.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("trk") / "data"
    generate(SynthConfig(scenes=1, views=2, frames=6, width=160, height=96, people=3, cars=0,
                         bicycles=0, expressions=2, splits=("test",), domains=("In-domain",)),
             root)
    return root


@pytest.mark.slow
def test_track_split_writes_predictions_that_evaluate_and_resumes(model, tiny_data, tmp_path):
    from raysys.eval import evaluate
    from raysys.tracking.run import track_split

    ck = tmp_path / "ck"
    write_checkpoint(ck, {"model": model_state(model), "config": to_dict(_cfg()),
                          "build_spec": model.build_spec, "epoch": 1})
    layout = DatasetLayout(tiny_data, "In-domain", "test")
    pred = tmp_path / "pred"
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        res = track_split(ck, layout, pred, TrackConfig(clip_frames=4, **OPEN), actors=1,
                          actor_cpus=0.5, progress=False)
        exprs = crtrack.list_expressions(layout.gt_root)
        assert res.units == len(exprs) == 2 and res.skipped == 0 and res.frames == 12
        assert res.passes == 1  # the scene's two expressions in one pass
        for e in exprs:
            for v in crtrack.gt_views(e):
                assert (pred / e.name / f"{v}.txt").is_file()
        score = evaluate(layout.gt_root, pred).to_json()["All"]
        assert 0.0 <= score["CVR-IDF1"] <= 100.0
        before = {p: p.stat().st_mtime_ns for p in pred.rglob("View*.txt")}
        # tracks per SAM2 call are a speed setting: another value resumes
        again = track_split(ck, layout, pred, TrackConfig(clip_frames=4, batch_objects=2,
                                                          **OPEN),
                            actors=1, actor_cpus=0.5, progress=False)
        assert again.skipped == 2 and again.frames == 0
        assert before == {p: p.stat().st_mtime_ns for p in pred.rglob("View*.txt")}
        assert json.loads((pred / "track_config.json").read_text())["track"]["clip_frames"] == 4
        with pytest.raises(FileNotFoundError, match="checkpoint"):
            track_split(tmp_path / "nope", layout, pred, actors=1, actor_cpus=0.5)
    finally:
        ray.shutdown()


def test_best_f1_threshold():
    from raysys.training.calibrate import best_f1_threshold

    t, f1 = best_f1_threshold(np.array([0.9, 0.8, 0.3, 0.2]), np.array([1, 1, 0, 0]))
    assert t == 0.8 and f1 == 1.0
    t, f1 = best_f1_threshold(np.array([0.9, 0.5, 0.5, 0.1]), np.array([0, 1, 1, 0]))
    assert t == 0.5 and np.isclose(f1, 0.8)  # ties are cut together
    assert best_f1_threshold(np.array([0.3]), np.array([0])) == (1.0, 0.0)


def test_track_level_calibration_by_hand():
    """The track level scores each object-view once by its mean referring; the proposal
    level counts every proposal. Here they disagree."""
    from raysys.training.calibrate import best_f1_threshold, object_view_means

    # one clip, view 0, two frames; objects A (referred) and B (not); 3 proposals a frame:
    # p0 covers A, p1 covers B, p2 covers A a little better than p0 but is below objectness
    iou = np.array([[0.8, 0.0], [0.0, 0.9], [0.9, 0.0]])
    vis, referred = np.array([True, True]), np.array([True, False])
    obj = np.array([0.9, 0.9, 0.2])
    covers = [(0, 0, iou, vis, referred, obj, np.array([0.55, 0.7, 0.99])),
              (0, 0, iou, vis, referred, obj, np.array([0.65, 0.1, 0.99]))]
    scores, labels = object_view_means(covers, t_obj=0.5, pos_iou=0.5)
    order = np.argsort(~labels)  # A first
    assert np.allclose(scores[order], [0.6, 0.4]) and labels[order].tolist() == [True, False]
    assert np.allclose(best_f1_threshold(scores, labels), (0.6, 1.0))
    # the proposal level: 0.7 (B) passes before 0.55 (A), so it cuts at 0.55 with B's 0.7 in
    per_prop = best_f1_threshold(np.array([0.55, 0.7, 0.65, 0.1]),
                                 np.array([True, False, True, False]))
    assert per_prop[0] == 0.55 and np.isclose(per_prop[1], 0.8)
    # B invisible in frame 2, a view 1 copy of A: three object-views, B from frame 1 only
    vis2 = np.array([True, False])
    covers2 = [covers[0], (0, 0, iou, vis2, referred, obj, np.array([0.65, 0.1, 0.99])),
               (0, 1, iou, vis, referred, obj, np.array([0.3, 0.2, 0.99]))]
    scores, labels = object_view_means(covers2, t_obj=0.5, pos_iou=0.5)
    assert sorted(scores.round(3).tolist()) == [0.2, 0.3, 0.6, 0.7]  # view 1: A 0.3, B 0.2
    assert labels.sum() == 2
    # nothing covers anything at IoU 0.95
    assert object_view_means(covers, 0.5, 0.95)[0].size == 0


def test_calibration_feeds_the_tracker(model):
    from raysys.training.calibrate import calibrate_thresholds

    rng = np.random.default_rng(3)
    clip = {"frames": rng.integers(0, 255, (2, 2, 3, 64, 64), dtype=np.uint8),
            "boxes": np.tile(np.array([4.0, 8.0, 20.0, 50.0], np.float32), (2, 2, 2, 1)),
            "visible": np.ones((2, 2, 2), bool), "ids": np.array([1, 2]),
            "referred": np.array([True, False]), "masks": np.zeros((0,), bool),
            "text": np.array("a person"), "view_ids": np.array([0, 1])}
    clip["boxes"][:, :, 1] = [36.0, 4.0, 50.0, 40.0]  # a second, non-referred object
    cal = calibrate_thresholds(model, [clip, clip])
    assert cal["clips"] == 2 and cal["proposals"] > 0 and cal["level"] == "proposal"
    assert cal["refer_threshold"] == cal["refer_threshold_proposal"]
    trk = calibrate_thresholds(model, [clip, clip], level="track")
    assert trk["refer_threshold_proposal"] == cal["refer_threshold_proposal"]
    assert trk.get("refer_threshold_track") == cal.get("refer_threshold_track")
    if "refer_threshold_track" in trk:  # some referred object covered by a proposal
        assert trk["refer_threshold"] == trk["refer_threshold_track"]
    else:  # none: the track level falls back on the proposal level
        assert trk["refer_threshold"] == trk["refer_threshold_proposal"]
    with pytest.raises(ValueError, match="calibration level"):
        calibrate_thresholds(model, [clip], level="frame")
    # a proposal on a labelled object outside the sample's M is an object, not a false
    # positive: put one of the model's own proposals among the dense (all-object) boxes
    import torch

    from raysys.training.data import collate
    from raysys.viewsam.candidate_generator import pairwise_iou

    frames, texts, tg, vids = collate({k: v[None] for k, v in clip.items()})
    with torch.no_grad():
        ce = model.encode_clip(frames, model.tokenize(texts), vids)
    props = ce.cand.boxes[0] / ce.scale  # view 0, frame 0, input pixels
    free = pairwise_iou(props, torch.as_tensor(clip["boxes"][0, 0])).amax(1) < 0.5
    assert free.any()
    dense = np.zeros((2, 2, 3, 4), np.float32)
    dense[:, :, :2] = clip["boxes"]
    dense[0, 0, 2] = props[free][0].numpy()
    vis = np.ones((2, 2, 3), bool)
    vis[:, :, 2] = False
    vis[0, 0, 2] = True
    same = calibrate_thresholds(model, [{**clip, "dense_boxes": dense,
                                         "dense_visible": vis & (np.arange(3) < 2)}] * 2)
    assert same["positives"] == cal["positives"]
    more = calibrate_thresholds(model, [{**clip, "dense_boxes": dense, "dense_visible": vis}] * 2)
    assert more["positives"] >= cal["positives"] + 2  # once per copy of the clip
    assert 0.0 <= cal["objectness_threshold"] <= 1.0 and 0.0 <= cal["refer_threshold"] <= 1.0
    model.calibration = {"refer_threshold": 0.77, "objectness_threshold": 0.33}
    try:
        tr = ViewSAMTracker(model, "a person", 2)
        assert (tr.refer_threshold, tr.objectness_threshold, tr.min_refer) == (0.77, 0.33, 0.77)
        tr = ViewSAMTracker(model, "a person", 2, TrackConfig(refer_threshold=0.2))
        assert tr.refer_threshold == 0.2 and tr.objectness_threshold == 0.33
    finally:
        model.calibration = {}


def test_track_command_config_errors(tmp_path):
    import argparse

    from raysys.commands import track

    p = argparse.ArgumentParser()
    track.add_arguments(p)
    base = ["--model", "m", "--data", "d", "--out", "o"]
    with pytest.raises(ValueError, match="--config: cannot read .*none.json"):
        track.build_track_config(p.parse_args([*base, "--config", str(tmp_path / "none.json")]))
    (tmp_path / "bad.json").write_text('{"refer_treshold": 0.3}')
    with pytest.raises(ValueError, match="unknown TrackConfig fields"):
        track.build_track_config(p.parse_args([*base, "--config", str(tmp_path / "bad.json")]))
    (tmp_path / "ok.json").write_text('{"refer_threshold": 0.3}')
    cfg = track.build_track_config(p.parse_args([*base, "--config", str(tmp_path / "ok.json"),
                                                 "--clip-frames", "4"]))
    assert cfg.refer_threshold == 0.3 and cfg.clip_frames == 4


def test_batched_banks_equal_one_object_at_a_time(model):
    """``track_frame`` with one memory bank per object (the tracker's batched path) gives
    what SAM2 gives object by object: tracks born at different frames (different
    object-pointer distances and memory lengths) over a stream longer than the windows."""
    torch.manual_seed(1)
    d = model.sam2.hidden_dim
    s = model.image_size
    starts, n_frames = (0, 1, 3), 24  # past num_maskmem and the pointer window (16)
    feats_all = [[torch.randn(1, c, s // r, s // r) for c, r in ((d // 8, 4), (d // 4, 8),
                                                                 (d, 16))]
                 for _ in range(n_frames)]
    pos_all = [torch.randn(1, d, s // 16, s // 16) for _ in range(n_frames)]
    box = torch.tensor([[8.0, 8.0, 40.0, 56.0]])
    yes = torch.tensor([True])
    t_r = torch.randn(1, model.bar.text_proj.in_features)  # BAR's referring token t_R
    one = [{"cond_frame_outputs": {}, "non_cond_frame_outputs": {}} for _ in starts]
    many = [{"cond_frame_outputs": {}, "non_cond_frame_outputs": {}} for _ in starts]
    with torch.no_grad():
        for g in range(n_frames):
            live = [j for j, st in enumerate(starts) if st <= g]
            ref = [model.track_frame(g, 1 << 30, feats_all[g], pos_all[g], box, yes, None,
                                     one[j], init=(g == starts[j]), text_ref=t_r)
                   for j in live]
            old = [j for j in live if starts[j] < g]
            new = [j for j in live if starts[j] == g]
            for idx, init in ((old, False), (new, True)):
                if not idx:
                    continue
                k = len(idx)
                got = model.track_frame(
                    g, 1 << 30, [f.expand(k, -1, -1, -1) for f in feats_all[g]],
                    pos_all[g].expand(k, -1, -1, -1), box.expand(k, 4), yes.expand(k), None,
                    [many[j] for j in idx], init=init, text_ref=t_r.expand(k, -1))
                for r, j in enumerate(idx):
                    want = ref[live.index(j)]
                    torch.testing.assert_close(got["masks"][r:r + 1], want["masks"],
                                               atol=1e-4, rtol=1e-4)
                    torch.testing.assert_close(got["scores"][r:r + 1], want["scores"],
                                               atol=1e-4, rtol=1e-4)
    # each track's bank holds exactly its own frames, like the one-at-a-time banks
    for a, b in zip(one, many, strict=True):
        for key in a:
            assert sorted(a[key]) == sorted(b[key])
