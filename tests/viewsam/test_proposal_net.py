"""The Candidate Generator's proposals from a frozen, pretrained RGB-only person detector
(raysys.viewsam.proposal_net, CandidateGeneratorConfig.proposal_net)."""

import numpy as np
import pytest
import torch

from raysys.backends.classical.person_net import (
    build_net,
    load_person_detector,
    save_person_detector,
)
from raysys.viewsam.candidate_generator import CandidateGenerator, CandidateGeneratorConfig
from raysys.viewsam.proposal_net import EMBEDDED_RGB_PATH

HC, WC = 72, 128  # a small crop_frame keeps the test fast


@pytest.fixture(scope="module")
def rgb_file(tmp_path_factory):
    """A random-init RGB-only detector saved as `pretrain-detector --rgb-only` saves it."""
    torch.manual_seed(0)
    net = build_net(3).eval()
    with torch.no_grad():  # peaky, varied heat-maps
        net.heat.weight.mul_(30)
    return save_person_detector(net, tmp_path_factory.mktemp("det") / "person_net_rgb.pt",
                                {"steps": 0})


def _cg(spec, k=6, attribute_net=""):
    torch.manual_seed(0)
    cfg = CandidateGeneratorConfig(num_convs=1, num_proposals=k, proposal_net=str(spec),
                                   attribute_net=attribute_net, crop_frame=(HC, WC))
    return CandidateGenerator(8, 16, cfg, width=8, hidden=16).eval()


def test_proposals_are_the_detectors_boxes(rgb_file):
    """The CG's proposals are the detector's best peaks (its own decode, frame pixels, as
    the classical tracker reads them), in the model input's pixels; its objectness is their
    centre probability; one frame shared by several expressions gets the same proposals."""
    frames = torch.rand(2, 3, HC, WC)
    det = load_person_detector(str(rgb_file), 0.0)
    assert not det.uses_foreground
    imgs = [(f.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for f in frames]
    want = det.detect(imgs, [None, None])  # xywh frame pixels, every peak
    cg = _cg(rgb_file, k=6)
    out = cg(torch.randn(4, 8, 8, 8), torch.randn(4, 16), 16,
             crop_frames=torch.stack([torch.from_numpy(i).permute(2, 0, 1) for i in imgs])
             .float() / 255)
    side = 128  # the model input: 8 cells x stride 16
    assert out.boxes.shape == (4, 6, 4) and torch.equal(out.boxes[:2], out.boxes[2:])
    for n in range(2):
        boxes, scores = want[n]
        top = np.argsort(-scores, kind="stable")[:6]
        xyxy = np.column_stack([boxes[top, :2], boxes[top, :2] + boxes[top, 2:]])
        xyxy = np.clip(xyxy * [side / WC, side / HC, side / WC, side / HC], 0, side)
        np.testing.assert_allclose(out.objectness[n].numpy(), scores[top], atol=1e-5)
        np.testing.assert_allclose(out.boxes[n].numpy(), xyxy, atol=1e-3)
    assert out.refer_logits.shape == (4, 6)


def test_the_detector_is_frozen_and_not_saved(rgb_file):
    cg = _cg(rgb_file)
    net = cg._proposal[0]
    assert not any(k.startswith("_proposal") for k in cg.state_dict())
    cg.train()
    assert not net.training  # batch norms as pre-trained
    out = cg(torch.randn(1, 8, 8, 8), torch.randn(1, 16), 16, crop_frames=torch.rand(1, 3, HC, WC))
    (out.refer_logits.sum() + out.heatmap.sum()).backward()
    assert all(p.grad is None and not p.requires_grad for p in net.parameters())
    assert cg.match_head[0].weight.grad is not None  # the matching branch learns
    assert cg.heat_head.weight.grad is not None  # the dense branch is still trained (Eq. 14)


def test_bad_weights_and_missing_frames_say_what_to_do(rgb_file, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt.*pretrain-detector.*--rgb-only"):
        _cg(tmp_path / "nope.pt")
    four = save_person_detector(build_net(4), tmp_path / "person_net.pt", {})
    with pytest.raises(ValueError, match="foreground.*--rgb-only"):
        _cg(four)
    cg = _cg(rgb_file)
    with pytest.raises(ValueError, match="crop_frame"):
        cg(torch.randn(1, 8, 8, 8), torch.randn(1, 16), 16)


def test_with_the_attribute_net_each_frames_proposals_are_read_once(rgb_file):
    """Several expressions on one clip share the detector's boxes: the attribute net reads
    them once per frame, and the logits equal those of each expression alone."""
    cg = _cg(rgb_file, k=4, attribute_net="embedded")
    frames = torch.rand(2, 3, HC, WC)
    feat, text = torch.randn(2, 8, 8, 8), torch.randn(3, 16)
    both = cg(feat.repeat(3, 1, 1, 1), text.repeat_interleave(2, 0), 16, crop_frames=frames)
    calls = []
    orig = cg._attribute[0].forward
    cg._attribute[0].forward = lambda *a: calls.append(a[0].shape[0]) or orig(*a)
    try:
        cg.match_boxes(both, both.boxes)
    finally:
        del cg._attribute[0].forward
    assert calls == [2 * 4]  # 2 frames x 4 boxes, not 6 rows x 4 boxes
    for e in range(3):
        alone = cg(feat, text[e:e + 1].expand(2, -1), 16, crop_frames=frames)
        assert torch.allclose(alone.refer_logits, both.refer_logits[2 * e:2 * e + 2],
                              atol=1e-5)


@pytest.mark.skipif(not EMBEDDED_RGB_PATH.is_file(), reason="embedded weights not built")
def test_embedded_rgb_detector_loads_as_a_proposal_net():
    cg = _cg("embedded", k=4)
    out = cg(torch.randn(1, 8, 8, 8), torch.randn(1, 16), 16,
             crop_frames=torch.rand(1, 3, HC, WC))
    assert out.boxes.shape == (1, 4, 4) and float(out.objectness.max()) <= 1


def test_training_remembers_what_the_frozen_models_said(rgb_file):
    """In training, a frame seen before is not read again by the detector or the attribute
    net (their outputs are a pure function of the frame and box), and the outputs are the
    same; another frame is read; in eval mode nothing is kept."""
    cg = _cg(rgb_file, k=4, attribute_net="embedded")
    calls = {"det": 0, "attr": 0}
    for name, net in (("det", cg._proposal[0]), ("attr", cg._attribute[0])):
        orig = net.forward

        def counted(*a, _orig=orig, _name=name):
            calls[_name] += a[0].shape[0]
            return _orig(*a)

        net.forward = counted
    feat, text = torch.randn(2, 8, 8, 8), torch.randn(2, 16)
    frames = torch.rand(2, 3, HC, WC)
    teacher = torch.tensor([[[10.0, 20.0, 40.0, 90.0]]]).expand(2, 1, 4)
    cg.eval()
    ev = cg(feat, text, 16, crop_frames=frames)
    ev_t = cg.match_boxes(ev, teacher)
    assert len(cg._memo) == 0 and calls == {"det": 2, "attr": 2 * 4 + 2}
    cg.train()
    first = cg(feat, text, 16, crop_frames=frames)
    first_t = cg.match_boxes(first, teacher)
    assert calls == {"det": 4, "attr": 2 * (2 * 4 + 2)}
    again = cg(feat, text, 16, crop_frames=frames)
    again_t = cg.match_boxes(again, teacher)
    assert calls == {"det": 4, "attr": 2 * (2 * 4 + 2)}  # nothing read again
    for a, b in ((first, again), (ev, first)):
        assert torch.allclose(a.boxes, b.boxes, atol=1e-5)
        assert torch.allclose(a.refer_logits, b.refer_logits, atol=1e-5)
    assert torch.allclose(again_t, first_t) and torch.allclose(ev_t, first_t, atol=1e-5)
    other = frames.clone()
    other[1] = torch.rand(3, HC, WC)
    cg(feat, text, 16, crop_frames=other)
    assert calls["det"] == 5  # only the new frame
    assert "_memo" not in str(list(cg.state_dict()))


@pytest.fixture(scope="module")
def pn_viewsam(always_present, rgb_file):
    """The trackers' tiny random ViewSAM (64 px, clips of 2) with both frozen parts on."""
    from raysys.training.config import StageConfig, quick_config
    from raysys.training.model import build_model
    from raysys.viewsam.base import sam2_yaml_text

    torch.manual_seed(0)
    cg = {"fine": True, "pixel_roi": 8, "attribute_net": "embedded",
          "proposal_net": str(rgb_file), "crop_frame": (48, 80)}
    cfg = quick_config(clip_frames=2, image_size=64, sam2_image_size=64, max_objects=4,
                       max_samples=4, stages=(StageConfig("all", ("cgct",), 1, 1e-3),),
                       model={"candidate_generator": cg})
    return always_present(build_model(cfg, sam2_yaml_text(None, 64)).eval())


def test_tracking_and_training_with_the_proposal_net(pn_viewsam, two_box_targets):
    """Two expressions tracked together equal each alone (the detector's boxes shared,
    each scored by its own text), and the Candidate Generator's losses train through the
    detector's proposals."""
    from raysys.tracking import MultiExpressionTracker, TrackConfig, ViewSAMTracker

    cfg = TrackConfig(clip_frames=2, keep_masks=False, memory_frames=2, refer_threshold=0.0,
                      objectness_threshold=0.0, min_refer=0.0)
    rng = np.random.default_rng(0)
    sets = [[rng.integers(0, 255, (48, 80, 3), dtype=np.uint8) for _ in range(2)]
            for _ in range(4)]
    texts = ["a person in a red coat", "a man in black trousers"]

    def rows(results):
        return [(r.index, k, o.track_id, np.asarray(o.box, float).round(3).tolist())
                for r in results for k, objs in enumerate(r.views) for o in objs]

    both = MultiExpressionTracker(pn_viewsam, texts, 2, cfg)
    outs = {e: [] for e in range(2)}
    for fs in sets:
        for e, res in enumerate(both.step(fs)):
            outs[e] += rows(res)
    for e, text in enumerate(texts):
        alone = ViewSAMTracker(pn_viewsam, text, 2, cfg)
        got = [row for fs in sets for row in rows(alone.step(fs))]
        assert got == outs[e] and len(got) > 2
    b, v, t, s = 1, 2, 2, 64
    targets = two_box_targets
    model = pn_viewsam.train()
    try:
        res = model.candidate_losses(torch.rand(b, v, t, 3, s, s), model.tokenize(texts[:1]),
                                     targets)
        res["total"].backward()
        g = model.candidate_generator.match_head[0].weight.grad
        assert torch.isfinite(res["cg_match"]) and g is not None and g.abs().sum() > 0
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()
