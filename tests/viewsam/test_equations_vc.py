"""The paper's Eq. 3-7 (view token, VCCA, visual and text updates) against values worked out
by hand from the formulas, on tiny tensors with weights set explicitly; and the text flow:
the Candidate Generator scores proposals against the updated text ``T_ca`` (Eq. 7).

The expected numbers are computed here from the paper's formulas with plain Python / numpy
(``_ln``, ``_attend``), never by calling the code under test.
"""

import math

import numpy as np
import pytest
import torch

from raysys.viewsam import ViewSAMConfig, build_viewsam
from raysys.viewsam.vc_cma import VCCMAAdapter, VCCMAConfig, ViewConditionedCrossAttention
from raysys.viewsam.view_token import ViewToken

EPS = 1e-5  # torch LayerNorm's default


def _ln(x, w=1.0, b=0.0):
    """The paper's Norm as implemented (LayerNorm over the last axis), by hand."""
    x = np.asarray(x, dtype=np.float64)
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return w * (x - mu) / np.sqrt(var + EPS) + b


def _attend(q, k, v, valid=None):
    """Single-head attention with identity projections: softmax(q k^T / sqrt(d)) v."""
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    s = q @ k.T / math.sqrt(q.shape[-1])
    if valid is not None:
        s = np.where(np.asarray(valid)[None, :], s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)) @ v


def _identity_mha(attn: torch.nn.MultiheadAttention) -> None:
    d = attn.embed_dim
    with torch.no_grad():
        attn.in_proj_weight.copy_(torch.eye(d).repeat(3, 1))
        attn.in_proj_bias.zero_()
        attn.out_proj.weight.copy_(torch.eye(d))
        attn.out_proj.bias.zero_()


def _t(x):
    return torch.tensor(x, dtype=torch.float32)


# ---------------------------------------------------------------- Eq. 3-4
def _view_token(decay=0.25, lam=0.5):
    vt = ViewToken(in_dim=3, dim=3, num_views=2, dynamic_weight=lam, decay=decay)
    with torch.no_grad():
        vt.proj.weight.copy_(_t([[1, 0, 0], [0, 2, 0], [1, 0, 1]]))  # W_view
        vt.proj.bias.zero_()
        vt.base.weight.copy_(_t([[0.5, -1.0, 0.0], [0.0, 0.0, 3.0]]))  # g_0, g_1
        vt.norm_ema.weight.fill_(2.0)  # tell the Norm of Eq. 4 from those of Eq. 3
        vt.norm_ema.bias.fill_(0.1)
    return vt


def test_eq3_4_view_token_by_hand():
    lam, a = 0.5, 0.25
    vt = _view_token(a, lam)
    w_view = np.array([[1, 0, 0], [0, 2, 0], [1, 0, 1]], dtype=np.float64)
    g1 = np.array([0.0, 0.0, 3.0])
    f = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 4.0], [2.0, 2.0, -1.0]])  # Pool_avg(F_t), t=1..3

    def e_hat(ft):  # Eq. 3
        return _ln(g1 + lam * _ln(w_view @ ft))

    e1 = e_hat(f[0])  # e_1 = ê_1
    e2 = _ln(a * e1 + (1 - a) * e_hat(f[1]), 2.0, 0.1)  # Eq. 4
    e3 = _ln(a * e2 + (1 - a) * e_hat(f[2]), 2.0, 0.1)
    tokens, last = vt(_t(f[:2])[None, None], torch.tensor([[1]]))
    np.testing.assert_allclose(tokens[0, 0].detach().numpy(), np.stack([e1, e2]), atol=1e-5)
    np.testing.assert_allclose(last[0, 0].detach().numpy(), e2, atol=1e-5)
    # online: the next clip starts from the carried token e_2
    tokens3, last3 = vt(_t(f[2:])[None, None], torch.tensor([[1]]), state=last)
    np.testing.assert_allclose(tokens3[0, 0, 0].detach().numpy(), e3, atol=1e-5)
    np.testing.assert_allclose(last3[0, 0].detach().numpy(), e3, atol=1e-5)


def test_eq3_inner_norm_makes_the_dynamic_part_scale_free():
    """Norm(W_view Pool(F)): scaling the frame feature (bias-free W_view) changes nothing."""
    vt = _view_token()
    f = torch.randn(1, 1, 3, 3)
    ids = torch.tensor([[0]])
    a, _ = vt(f, ids)
    b, _ = vt(10.0 * f, ids)
    assert torch.allclose(a, b, atol=1e-4)


def test_eq4_decay_is_viewsam_alpha():
    """α of Eq. 4 is ``ViewSAMConfig.alpha``; α = 0 is no smoothing (e_t = ê_t)."""
    vt0, vt1 = _view_token(decay=0.0), _view_token(decay=0.9)
    f = torch.randn(1, 1, 3, 3)
    ids = torch.tensor([[0]])
    e0, _ = vt0(f, ids)
    lam = 0.5
    w = vt0.proj.weight.detach().numpy().astype(np.float64)
    g0 = np.array([0.5, -1.0, 0.0])
    for t in range(1, 3):  # α = 0: Norm_ema(ê_t) with its affine 2, 0.1
        want = _ln(_ln(g0 + lam * _ln(w @ f[0, 0, t].numpy())), 2.0, 0.1)
        np.testing.assert_allclose(e0[0, 0, t].detach().numpy(), want, atol=1e-5)
    e1, _ = vt1(f, ids)
    assert not torch.allclose(e0[0, 0, 1:], e1[0, 0, 1:], atol=1e-3)
    with pytest.raises(ValueError, match="alpha"):
        ViewSAMConfig(alpha=1.5)
    with pytest.raises(ValueError, match="decay"):
        ViewToken(3, 3, 2, 0.5, decay=-0.1)


# ---------------------------------------------------------------- Eq. 5
U = [[1.0, 2.0], [-1.0, 0.5]]  # two query tokens
R = [[1.0, 0.0], [0.0, 1.0], [2.0, -1.0]]  # three reference tokens
E = [1.0, -1.0]  # view token
W_U = np.array([[0.5, 0.0], [1.0, -1.0]])  # b_u(e) = e W_u (row vector times matrix)
W_R = np.array([[0.0, 1.0], [2.0, 0.0]])


def _vcca(view_conditioned=True):
    m = ViewConditionedCrossAttention(2, 1, view_conditioned)
    _identity_mha(m.attn)
    if view_conditioned:
        with torch.no_grad():  # nn.Linear computes e W^T, so W^T = the paper's W
            m.q_view.weight.copy_(_t(W_U.T))
            m.k_view.weight.copy_(_t(W_R.T))
    return m


def test_eq5_vcca_by_hand():
    u, r, e = np.array(U), np.array(R), np.array(E)
    want = u * _attend(u + e @ W_U, r + e @ W_R, r)  # U ⊙ MHA(U + eW_u, R + eW_r, R)
    got = _vcca()(_t(U)[None], _t(R)[None], _t(E)[None])
    np.testing.assert_allclose(got[0].detach().numpy(), want, atol=1e-5)
    # a padded reference token takes no attention
    valid = np.array([True, False, True])
    want = u * _attend(u + e @ W_U, r + e @ W_R, r, valid)
    got = _vcca()(_t(U)[None], _t(R)[None], _t(E)[None], torch.tensor([valid.tolist()]))
    np.testing.assert_allclose(got[0].detach().numpy(), want, atol=1e-5)


def test_eq5_gate_is_the_query_tokens_not_the_view():
    """Scaling U scales the gate: a zero query token gives a zero output, whatever e."""
    m = _vcca()
    u = _t([[0.0, 0.0], [1.0, 1.0]])[None]
    out = m(u, _t(R)[None], _t(E)[None])
    assert torch.equal(out[0, 0], torch.zeros(2))
    assert out[0, 1].abs().sum() > 0


def test_eq5_without_vcca_is_plain_cross_attention():
    u, r = np.array(U), np.array(R)
    got = _vcca(False)(_t(U)[None], _t(R)[None], None)
    np.testing.assert_allclose(got[0].detach().numpy(), _attend(u, r, r), atol=1e-5)


# ---------------------------------------------------------------- Eq. 6-7
def _adapter(view_conditioned=True):
    """in_dim 3 (visual), text width 3, bottleneck 2, one head; every weight explicit."""
    ad = VCCMAAdapter(3, 3, VCCMAConfig(num_heads=1), 2, view_conditioned)
    wv_down = [[1.0, 0.0, 0.5], [0.0, 1.0, -0.5]]  # (out, in): X^s = LN(X) W_v↓
    wt_down = [[0.5, 0.5, 0.0], [0.0, -1.0, 1.0]]
    wv_up = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    wt_up = [[2.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]
    with torch.no_grad():
        for lin, w in ((ad.down[1], wv_down), (ad.text_down[1], wt_down), (ad.up, wv_up),
                       (ad.text_up, wt_up)):
            lin.weight.copy_(_t(w))
            lin.bias.zero_()
    for m in (ad.visual_attn, ad.text_attn):
        _identity_mha(m.attn)
        if view_conditioned:
            with torch.no_grad():
                m.q_view.weight.copy_(_t(W_U.T))
                m.k_view.weight.copy_(_t(W_R.T))
    return ad, (np.array(wv_down).T, np.array(wt_down).T, np.array(wv_up).T,
                np.array(wt_up).T)


def test_eq6_7_visual_and_text_updates_by_hand():
    """One view, T = 2 frames of 2x1 visual tokens, 2 text tokens (the second padding)."""
    ad, (wvd, wtd, wvu, wtu) = _adapter()
    x = np.array([[[[1.0, 2.0, 0.0]], [[0.0, 1.0, 3.0]]],
                  [[[2.0, -1.0, 1.0]], [[1.0, 1.0, 1.0]]]])  # (T=2, h=2, w=1, C=3)
    text = np.array([[1.0, 0.0, 2.0], [0.5, 0.5, 0.5]])  # T_text (L=2, D_t=3)
    valid = np.array([True, False])
    e = np.array([[1.0, -1.0], [0.0, 2.0]])  # e_t of the two frames
    xs = _ln(x.reshape(2, 2, 3)) @ wvd  # X_t^s (T, hw, d_s)
    ts = _ln(text) @ wtd  # T_text^s (L, d_s)

    def vcca(u, r, et, ok=None):  # Eq. 5
        return u * _attend(u + et @ W_U, r + et @ W_R, r, ok)

    want_x = np.stack([x[t].reshape(2, 3) + vcca(xs[t], ts, e[t], valid) @ wvu  # Eq. 6
                       for t in range(2)]).reshape(x.shape)
    x_bar, e_clip = xs.mean(0), e.mean(0)  # clip means of Eq. 7
    want_t = text + vcca(ts, x_bar, e_clip) @ wtu  # Eq. 7
    got_x, got_t = ad(_t(x), _t(text)[None], torch.tensor([valid.tolist()]), _t(e), 2)
    np.testing.assert_allclose(got_x.detach().numpy(), want_x, atol=1e-5)
    np.testing.assert_allclose(got_t[0].detach().numpy(), want_t, atol=1e-5)


def test_eq6_7_untrained_adapter_is_the_identity():
    ad = VCCMAAdapter(3, 5, VCCMAConfig(num_heads=1), 2, True)  # W↑ zero-initialised
    x, text = torch.randn(4, 2, 2, 3), torch.randn(2, 3, 5)
    y, t_ca = ad(x, text, torch.ones(2, 3, dtype=torch.bool), torch.randn(4, 2), 2)
    assert torch.equal(y, x) and torch.equal(t_ca, text)


# ---------------------------------------------------------------- the text flow in ViewSAM
@pytest.fixture(scope="module")
def micro_model(micro_sam2):
    from raysys.viewsam.text_encoder import build_text_encoder

    path = micro_sam2
    torch.manual_seed(0)
    enc = build_text_encoder("minilm")
    return build_viewsam(sam2_config=path, text_encoder=enc).eval(), path, enc


def test_candidate_generator_scores_against_t_ca(micro_model):
    """Changing only the last stage's W_t↑ changes T_ca and the referring logits, not the
    image features or the proposals; the logits are the CG's on the masked mean of T_ca."""
    model = micro_model[0]
    g = torch.Generator().manual_seed(3)
    frames = torch.rand(1, 2, 2, 3, 64, 64, generator=g)
    text = model.tokenize(["the person in a red coat"])
    last = model.vc_cma.adapters[str(max(model.vc_cma.stages))]
    with torch.no_grad():
        a = model.encode_clip(frames, text)
        # untrained: T_ca is the frozen text, each view's copy
        tokens, _ = model.text_encoder(text["input_ids"], text["attention_mask"])
        assert torch.equal(a.text, tokens.repeat_interleave(2, 0))
        last.text_up.weight.normal_(std=0.5)
        b = model.encode_clip(frames, text)
        last.text_up.weight.zero_()
    assert a.text.shape == (2, tokens.shape[1], model.text_encoder.dim)
    assert not torch.allclose(a.text, b.text)
    assert not torch.allclose(b.text[0], b.text[1]), "T_ca is per view"
    for fa, fb in zip(a.enc["fpn"], b.enc["fpn"], strict=True):
        assert torch.equal(fa, fb)
    assert torch.equal(a.cand.boxes, b.cand.boxes)
    assert not torch.allclose(a.cand.refer_logits, b.cand.refer_logits)
    m = b.text_mask[..., None].float()
    t_ref = (b.text * m).sum(1) / m.sum(1)
    assert torch.allclose(b.text_ref, t_ref, atol=1e-6)
    with torch.no_grad():
        want = model.candidate_generator(b.enc["fpn"][-1], t_ref.repeat_interleave(2, 0),
                                         model.sam2.backbone_stride, b.enc["fpn"][-2],
                                         b.cand.pixels).refer_logits
    assert torch.allclose(b.cand.refer_logits, want, atol=1e-5)


def test_view_state_carries_the_ema_across_clips(micro_model):
    """Two clips with the carried token give the view tokens of one long clip (Eq. 4)."""
    model = micro_model[0]
    g = torch.Generator().manual_seed(4)
    frames = torch.rand(1, 2, 4, 3, 64, 64, generator=g)
    text = model.tokenize(["a person"])
    with torch.no_grad():
        whole = model.encode_clip(frames, text)
        first = model.encode_clip(frames[:, :, :2], text)
        second = model.encode_clip(frames[:, :, 2:], text, view_state=first.view_state)
        fresh = model.encode_clip(frames[:, :, 2:], text)
    assert torch.equal(first.view_state, first.views[:, :, -1])
    got = torch.cat([first.views, second.views], 2)
    assert torch.allclose(got, whole.views, atol=1e-5)
    assert not torch.allclose(fresh.views, whole.views[:, :, 2:], atol=1e-3)


def test_a_checkpoint_of_the_old_model_is_refused_with_the_reason(tmp_path):
    import json

    from raysys.errors import UserError
    from raysys.viewsam.checkpoint_format import META_FILE, read_checkpoint

    (tmp_path / META_FILE).write_text(json.dumps(
        {"format": "raysys.viewsam", "version": 1, "weights": {}}))
    with pytest.raises(UserError, match=r"Eq\. 3-7"):
        read_checkpoint(tmp_path)
