"""The Candidate Generator built upon the APTM analogue (raysys.viewsam.attribute_roi):
each box the matching branch scores is cut from the frame and read by the frozen, shipped
attribute net."""

import numpy as np
import pytest
import torch

from raysys.backends.attribute_net import HEADS
from raysys.backends.attribute_net import frame_context as np_frame_context
from raysys.viewsam.attribute_roi import crop_frames_at, frame_context
from raysys.viewsam.candidate_generator import (
    CandidateGenerator,
    CandidateGeneratorConfig,
    output_row,
)

HC, WC = 72, 128  # a small crop_frame keeps the test fast


def _cg(attribute_net="embedded"):
    torch.manual_seed(0)
    cfg = CandidateGeneratorConfig(num_convs=1, num_proposals=4, attribute_net=attribute_net,
                                   crop_frame=(HC, WC))
    return CandidateGenerator(8, 16, cfg, width=8, hidden=16).eval()


def _frames(colours):
    """(F, 3, HC, WC) grey frames with a coloured 'person' in the middle."""
    out = torch.full((len(colours), 3, HC, WC), 0.5)
    for i, c in enumerate(colours):
        out[i, :, 20:60, 56:72] = torch.tensor(c)[:, None, None]
    return out


def test_frame_context_is_the_describers():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
    frame[:180] //= 3  # not uniform: percentiles differ
    want = np_frame_context(frame)
    got = frame_context(torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255)[0]
    assert got.shape == (18,)
    assert np.allclose(got.numpy(), want, atol=0.01)


def test_crop_frames_at_brings_any_clip_to_the_crop_frame():
    x = torch.randint(0, 256, (1, 2, 3, 3, 36, 64), dtype=torch.uint8)
    out = crop_frames_at(x, (72, 128))
    assert out.shape == (6, 3, 72, 128) and out.dtype == torch.float32
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    same = crop_frames_at(x.float() / 255, (36, 64))
    assert torch.equal(same, (x.float() / 255).flatten(0, 2))


def test_the_matching_branch_reads_the_box_crop():
    cg = _cg()
    feat, text = torch.randn(2, 8, 8, 8), torch.randn(2, 16)
    box = torch.tensor([[[64.0, 36.0, 72.0, 60.0]]]).expand(2, 1, 4)  # the person, S = 128
    out = cg(feat, text, 16, crop_frames=_frames([(0.9, 0.1, 0.1), (0.1, 0.1, 0.9)]))
    probs = cg._attributes(out, box, torch.arange(2).repeat_interleave(1))
    assert probs.shape == (2, sum(len(v) for v in HEADS.values()))
    assert torch.allclose(probs.sum(1), torch.full((2,), float(len(HEADS))), atol=1e-4)
    assert not torch.allclose(probs[0], probs[1], atol=1e-3)  # red and blue read apart
    # the same features and text, a red person in both frames: the same logit
    out2 = cg(feat[:1].expand(2, -1, -1, -1), text[:1].expand(2, -1), 16,
              crop_frames=_frames([(0.9, 0.1, 0.1), (0.9, 0.1, 0.1)]))
    red = cg.match_boxes(out2, box)
    out3 = cg(feat[:1].expand(2, -1, -1, -1), text[:1].expand(2, -1), 16,
              crop_frames=_frames([(0.9, 0.1, 0.1), (0.1, 0.1, 0.9)]))
    mixed = cg.match_boxes(out3, box)
    assert torch.allclose(red[0], red[1]) and torch.allclose(red[0], mixed[0])
    assert not torch.allclose(mixed[0], mixed[1])  # only the crop differs
    # one frame shared by two expressions (F = 1, N = 2): row n reads frame n % F
    shared = cg(feat, text, 16, crop_frames=_frames([(0.9, 0.1, 0.1)]))
    assert torch.allclose(cg._attributes(shared, box, torch.arange(2))[1], probs[0], atol=1e-5)
    assert torch.allclose(cg.match_boxes(output_row(shared, 1), box[:1]),
                          cg.match_boxes(shared, box)[1:], atol=1e-5)


def test_the_attribute_net_is_frozen_and_not_saved():
    cg = _cg()
    net = cg._attribute[0]
    assert not any(k.startswith("_attribute") for k in cg.state_dict())
    assert all(p is not q for p in cg.parameters() for q in net.parameters())
    cg.train()
    assert not net.training  # dropout and batch norms as pre-trained
    out = cg(torch.randn(1, 8, 8, 8), torch.randn(1, 16), 16, crop_frames=_frames([(1, 0, 0)]))
    cg.match_boxes(out, torch.tensor([[[60.0, 30.0, 76.0, 70.0]]])).sum().backward()
    assert all(p.grad is None and not p.requires_grad for p in net.parameters())
    assert cg.attribute_head[0].weight.grad is not None  # what reads it does learn
    assert cg.attribute_match[0].weight.grad is not None


def test_without_the_frames_it_says_what_it_needs():
    cg = _cg()
    with pytest.raises(ValueError, match="crop_frame"):
        cg(torch.randn(1, 8, 8, 8), torch.randn(1, 16), 16)
    with pytest.raises(ValueError, match="crop_frame"):
        cg(torch.randn(1, 8, 8, 8), torch.randn(1, 16), 16,
           crop_frames=torch.zeros(1, 3, 10, 10))
    plain = _cg("")
    assert plain.attribute_head is None and plain._attribute == ()
    plain(torch.randn(1, 8, 8, 8), torch.randn(1, 16), 16)  # the paper's CG needs none


def test_the_loader_sends_the_frames_at_crop_frame_size(tiny_test_split):
    """`load_clip` with a crop frame: every frame of the clip at that size (its own size:
    the decoded frame itself), and `collate` hands them to the targets."""
    from raysys.io.frames import read_frame
    from raysys.training.data import ClipSpec, collate, load_clip, plan_samples
    from raysys.training.sources import GroundTruthSource

    src = GroundTruthSource(tiny_test_split)
    base = dict(size=64, frames=2, stride=4, step=1, max_objects=4, max_views=None,
                min_box_side=2.0, use_masks=False, variant="standard")
    sample = plan_samples(src, ClipSpec(**base), 1, seed=0)[0]
    img = read_frame(src.frame_paths(sample["scene"], sample["views"][0])[sample["frames"][1]])
    h, w = img.shape[:2]
    same = load_clip(src, sample, ClipSpec(**base, crop_frame=(h, w)))
    v, t = len(sample["views"]), len(sample["frames"])
    assert same["crop_frames"].shape == (v, t, 3, h, w)
    assert np.array_equal(same["crop_frames"][0, 1].transpose(1, 2, 0), img)
    half = load_clip(src, sample, ClipSpec(**base, crop_frame=(h // 2, w // 2)))
    # resampled as the tracker resamples the frames it is given, to the nearest uint8
    tracker = crop_frames_at(torch.as_tensor(np.array(img)).permute(2, 0, 1)[None, None, None],
                             (h // 2, w // 2))[0]
    got = torch.from_numpy(half["crop_frames"][0, 1]).float() / 255
    assert got.shape == tracker.shape and float((got - tracker).abs().max()) <= 0.5 / 255 + 1e-6
    _, _, targets, _ = collate({k: x[None] for k, x in half.items()})
    assert tuple(targets.crop_frames.shape) == (1, v, t, 3, h // 2, w // 2)
    assert "crop_frames" not in load_clip(src, sample, ClipSpec(**base))


@pytest.fixture(scope="module")
def attr_viewsam(always_present):
    """The trackers' tiny random ViewSAM (64 px, clips of 2) with the attribute net on."""
    from raysys.training.config import StageConfig, quick_config
    from raysys.training.model import build_model
    from raysys.viewsam.base import sam2_yaml_text

    torch.manual_seed(0)
    cg = {"fine": True, "pixel_roi": 8, "attribute_net": "embedded", "crop_frame": (48, 80)}
    cfg = quick_config(clip_frames=2, image_size=64, sam2_image_size=64, max_objects=4,
                       max_samples=4, stages=(StageConfig("all", ("cgct",), 1, 1e-3),),
                       model={"candidate_generator": cg})
    return always_present(build_model(cfg, sam2_yaml_text(None, 64)).eval())


def test_tracking_cuts_the_same_crops_alone_and_batched(attr_viewsam):
    """The tracker's own clip encoding and the replica's batched one (clip_input +
    encode_clips, the crops made from the frames there) give the same tracks."""
    from raysys.tracking import MultiExpressionTracker, TrackConfig
    from raysys.tracking.encode import clip_input, encode_clips

    cfg = TrackConfig(clip_frames=2, keep_masks=False, memory_frames=2, refer_threshold=0.0,
                      objectness_threshold=0.0, min_refer=0.0)
    rng = np.random.default_rng(0)
    sets = [[rng.integers(0, 255, (48, 80, 3), dtype=np.uint8) for _ in range(2)]
            for _ in range(4)]
    runs = []
    for batched in (False, True):
        tr = MultiExpressionTracker(attr_viewsam, ["a person in a red coat"], 2, cfg)
        out = []
        for fs in sets:
            enc = None
            if batched and (c := clip_input(tr, fs)) is not None:
                enc = encode_clips(attr_viewsam, [c])[0]
            out += [(r.index, k, o.track_id, np.asarray(o.box, float).round(4).tolist())
                    for res in tr.step(fs, enc) for r in res for k, objs in enumerate(r.views)
                    for o in objs]
        runs.append(out)
    assert len(runs[0]) > 4 and runs[0] == runs[1]


def test_training_reads_the_loaders_frames(attr_viewsam, two_box_targets):
    """The Candidate Generator's losses take the crops from the targets' crop_frames, and
    the attribute path learns."""
    b, v, t, s = 1, 2, 2, 64
    targets = two_box_targets
    model = attr_viewsam.train()
    frames = torch.rand(b, v, t, 3, s, s)
    try:
        res = model.candidate_losses(frames, model.tokenize(["a person in a red coat"]),
                                     targets)
        res["total"].backward()
        g = model.candidate_generator.attribute_match[0].weight.grad
        assert torch.isfinite(res["cg_match"]) and g is not None and g.abs().sum() > 0
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()
