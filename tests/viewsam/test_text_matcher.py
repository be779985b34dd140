"""The Candidate Generator's text matcher, the text side of its APTM analogue
(raysys.viewsam.text_matcher, CandidateGeneratorConfig.text_matcher) and its pre-training
(raysys.training.pretrain_matcher)."""

import numpy as np
import pytest
import torch

from raysys.backends.attribute_net import HEADS
from raysys.training.pretrain_matcher import matcher_data, pretrain_text_matcher
from raysys.viewsam.candidate_generator import CandidateGenerator, CandidateGeneratorConfig
from raysys.viewsam.text_matcher import (
    EMBEDDED_PATH,
    TextMatcher,
    load_text_matcher,
    save_text_matcher,
    sentence_embedding,
)

P = sum(len(v) for v in HEADS.values())
HC, WC = 72, 128


@pytest.fixture(scope="module")
def matcher_file(tmp_path_factory):
    torch.manual_seed(0)
    return save_text_matcher(TextMatcher(P, 16, hidden=32),
                             tmp_path_factory.mktemp("m") / "text_matcher.pt", {"steps": 0})


def _cg(matcher, attribute_net="embedded", match_residual=True):
    torch.manual_seed(0)
    cfg = CandidateGeneratorConfig(num_convs=1, num_proposals=4, attribute_net=attribute_net,
                                   text_matcher=str(matcher), crop_frame=(HC, WC),
                                   match_residual=match_residual)
    return CandidateGenerator(8, 16, cfg, width=8, hidden=16).eval()


def test_the_matcher_is_a_conjunction_of_log_probabilities():
    """logit = w(s) . log(a + eps) + b(s) + g(a): with w set to pick two classes, the
    logit is the sum of their log-probabilities (plus the constant terms)."""
    net = TextMatcher(6, 4, hidden=8)
    with torch.no_grad():
        last = net.text[-1]
        last.weight.zero_()
        last.bias.zero_()
        last.bias[[1, 4]] = 1.0
        net.prior[-1].weight.zero_()
        net.prior[-1].bias.zero_()
    a = torch.tensor([[0.1, 0.5, 0.4, 0.2, 0.7, 0.1]])
    want = torch.log(a[0, 1] + 1e-4) + torch.log(a[0, 4] + 1e-4)
    assert torch.allclose(net(a, torch.randn(1, 4)), want[None], atol=1e-6)


def test_sentence_embedding_is_the_normalised_masked_mean():
    tok = torch.randn(2, 5, 3)
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    out = sentence_embedding(tok, mask)
    want = torch.nn.functional.normalize(tok[0, :2].mean(0), dim=0)
    assert torch.allclose(out[0], want, atol=1e-6) and torch.allclose(out.norm(dim=1),
                                                                      torch.ones(2))


def test_save_load_and_bad_files(matcher_file, tmp_path):
    net, meta = load_text_matcher(matcher_file)
    a, s = torch.rand(3, P), torch.randn(3, 16)
    torch.manual_seed(0)
    assert torch.equal(net(a, s), TextMatcher(P, 16, hidden=32).eval()(a, s))  # as saved
    again, _ = load_text_matcher(matcher_file)
    assert torch.equal(net(a, s), again(a, s)) and meta == {"steps": 0}
    with pytest.raises(FileNotFoundError, match="nope.pt.*raysys pretrain-matcher"):
        load_text_matcher(tmp_path / "nope.pt")
    torch.save({"state": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a text matcher"):
        load_text_matcher(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="16-d sentences.*pretrain-matcher"):
        CandidateGenerator(8, 32, CandidateGeneratorConfig(
            num_convs=1, attribute_net="embedded", text_matcher=str(matcher_file)), 8, 16)


def test_the_cg_starts_from_the_matchers_score(matcher_file):
    """At init the CG's referring logit is the frozen matcher's score of the attribute
    reading against the sentence (scale 1, bias 0, the learned terms zero); the matcher
    is frozen and unsaved, its scale and bias learn."""
    cg = _cg(matcher_file)
    frames, sent = torch.rand(2, 3, HC, WC), torch.nn.functional.normalize(torch.randn(2, 16))
    out = cg(torch.randn(2, 8, 8, 8), torch.randn(2, 16), 16, crop_frames=frames,
             sentence=sent)
    from raysys.viewsam import attribute_roi as A

    rows = torch.arange(2).repeat_interleave(4)
    probs = A.attribute_probs(cg._attribute[0], frames, A.frame_context(frames),
                              out.boxes.reshape(-1, 4), rows, 128)
    want = cg._matcher[0](probs, sent.repeat_interleave(4, 0)).reshape(2, 4)
    assert torch.allclose(out.refer_logits, want, atol=1e-4)
    assert not any(k.startswith("_matcher") for k in cg.state_dict())
    assert "matcher_scale" in cg.state_dict()
    cg.train()
    out = cg(torch.randn(2, 8, 8, 8), torch.randn(2, 16), 16, crop_frames=frames, sentence=sent)
    out.refer_logits.sum().backward()
    assert cg.matcher_scale.grad is not None and cg.match_head[-1].weight.grad is not None
    assert all(p.grad is None for p in cg._matcher[0].parameters())


def test_without_the_residual_the_cg_refers_by_the_matcher_alone(matcher_file):
    """match_residual=False: the logit is scale * matcher + bias whatever the residual
    heads hold, and only the scale and bias learn from the matching losses."""
    cg = _cg(matcher_file, match_residual=False)
    with torch.no_grad():  # residual heads that would change the logit if they were used
        for head in (cg.match_head[-1], cg.attribute_match[-1]):
            head.weight.normal_()
            head.bias.fill_(3.0)
        cg.matcher_scale.fill_(2.0)
        cg.matcher_bias.fill_(-1.0)
    torch.manual_seed(1)
    x, t = torch.randn(2, 8, 8, 8), torch.randn(2, 16)
    frames, sent = torch.rand(2, 3, HC, WC), torch.nn.functional.normalize(torch.randn(2, 16))
    out = cg(x, t, 16, crop_frames=frames, sentence=sent)
    with_residual = _cg(matcher_file)
    with_residual.load_state_dict(cg.state_dict())
    base = with_residual(x, t, 16, crop_frames=frames, sentence=sent)
    assert torch.equal(out.boxes, base.boxes)
    from raysys.viewsam import attribute_roi as A

    rows = torch.arange(2).repeat_interleave(4)
    probs = A.attribute_probs(cg._attribute[0], frames, A.frame_context(frames),
                              out.boxes.reshape(-1, 4), rows, 128)
    m = cg._matcher[0](probs, sent.repeat_interleave(4, 0)).reshape(2, 4)
    assert torch.allclose(out.refer_logits, 2.0 * m - 1.0, atol=1e-4)
    assert not torch.allclose(base.refer_logits, out.refer_logits, atol=1e-2)  # it does use them
    cg.train()
    out = cg(x, t, 16, crop_frames=frames, sentence=sent)
    out.refer_logits.sum().backward()
    assert cg.matcher_scale.grad is not None and cg.matcher_bias.grad is not None
    assert cg.match_head[-1].weight.grad is None and cg.attribute_match[-1].weight.grad is None


def test_the_cg_says_what_the_matcher_needs(matcher_file):
    with pytest.raises(ValueError, match="attribute_net"):
        _cg(matcher_file, attribute_net="")
    cg = _cg(matcher_file)
    with pytest.raises(ValueError, match="sentence vectors"):
        cg(torch.randn(1, 8, 8, 8), torch.randn(1, 16), 16, crop_frames=torch.rand(1, 3, HC, WC))


def test_the_shipped_matcher_loads():
    net, meta = load_text_matcher("embedded")
    assert EMBEDDED_PATH.is_file() and net.attr_dim == P and net.text_dim == 384
    assert meta["heldout_auc"]["pooled"] > 0.8


@pytest.mark.slow
def test_pretrain_matcher_learns_the_tiny_benchmark(tiny_test_split, tmp_path):
    """`raysys pretrain-matcher` on the tiny benchmark: boxes of every person (and
    background), the scene's expressions, a file that loads and ranks referred people
    above the others on what it trained on."""
    d = matcher_data([tiny_test_split.root], progress=False)
    assert (d.objects >= 0).any() and (d.objects == -1).any() and len(d.texts) > 0
    assert d.sentences.shape == (len(d.texts), 384)
    assert d.views.shape == d.objects.shape and set(d.views) == {0, 1, 2}  # its 3 views
    one = matcher_data([tiny_test_split.root], progress=False, domain="In-domain",
                       split="test")
    assert np.array_equal(one.objects, d.objects) and np.array_equal(one.views, d.views)
    with pytest.raises(FileNotFoundError, match="split train"):
        matcher_data([tiny_test_split.root], progress=False, split="train")
    meta = pretrain_text_matcher(tmp_path, [tiny_test_split.root], steps=150, progress=False)
    net, saved = load_text_matcher(tmp_path / "text_matcher.pt")
    assert saved["steps"] == 150 and saved["boxes"] == len(d.objects)
    assert meta["train_auc"]["pooled"] > 0.8
