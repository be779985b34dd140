"""The APTM analogue's text-person matching: a pretrained score of "does this sentence
describe the person in this box".

The paper's Candidate Generator is distilled from APTM (App. C.2), a person-attribute
retrieval model pretrained on image-text pairs of people: it says how well a sentence fits
a person crop, and the CG inherits that before it ever sees a pseudo label. raysys's CG
learns the text side from the Stage 1 pseudo labels of the scenes it trains on: a few dozen
expressions, too few to learn which words name which attribute (its referring AUC on GT
boxes stayed near 0.7, docs/lab-notes.md).

This model is the missing half of the APTM analogue. It reads what the frozen attribute net
(:mod:`raysys.viewsam.attribute_roi`) says of a box and the frozen text encoder's sentence
embedding (the masked mean of its token features, normalised: MiniLM's own sentence
vector), and returns a matching logit:

    logit = w(s) . log(a + eps) + b(s) + g(a)

``a`` the attribute net's per-attribute probabilities (every head's softmax, concatenated),
``s`` the sentence embedding, ``w, b`` an MLP of the sentence (one weight per attribute
class: a conjunction of attributes is a sum of their log-probabilities) and ``g`` an MLP of
the reading alone (is this a person at all). ``raysys pretrain-matcher``
(:mod:`raysys.training.pretrain_matcher`) trains it on the GT expressions and person boxes
of generated scenes of its own seeds, never a seed a report scores: supervised pre-training
of a foundation part on other data, as APTM is pretrained. With
``CandidateGeneratorConfig.text_matcher`` the CG's matching logit starts from this score
(:mod:`raysys.viewsam.candidate_generator`); the model is frozen and kept out of the
ViewSAM state dict, like the attribute net.

Checkpoints are plain tensors and JSON-able metadata, loaded with
``torch.load(weights_only=True)``: a matcher file never runs code.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

__all__ = ["TextMatcher", "EMBEDDED_PATH", "save_text_matcher", "load_text_matcher",
           "frozen_text_matcher", "sentence_embedding"]

EMBEDDED_PATH = Path(__file__).resolve().parent / "weights" / "text_matcher_synth.pt"
_EPS = 1e-4
_FORMAT = "raysys-text-matcher/1"


def sentence_embedding(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The frozen text encoder's sentence vector: the masked mean of its token features
    ``(N, L, D)`` over ``mask`` ``(N, L)``, L2-normalised -> ``(N, D)`` (MiniLM's pooling)."""
    m = mask[..., None].to(tokens.dtype)
    mean = (tokens * m).sum(1) / m.sum(1).clamp(min=1)
    return torch.nn.functional.normalize(mean.float(), dim=-1)


class TextMatcher(nn.Module):
    """``forward(attributes (R, P), sentences (R, D)) -> (R,)`` matching logits.

    Args:
        attr_dim: ``P``, the attribute net's concatenated class count.
        text_dim: ``D``, the text encoder's width.
        hidden: MLP width.
    """

    def __init__(self, attr_dim: int, text_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.attr_dim, self.text_dim, self.hidden = attr_dim, text_dim, hidden
        self.text = nn.Sequential(nn.Linear(text_dim, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, attr_dim + 1))  # w(s), b(s)
        self.prior = nn.Sequential(nn.Linear(attr_dim, hidden // 4), nn.ReLU(inplace=True),
                                   nn.Linear(hidden // 4, 1))  # g(a)

    def forward(self, attributes: torch.Tensor, sentences: torch.Tensor) -> torch.Tensor:
        a = attributes.float()
        wb = self.text(sentences.float())
        w, b = wb[:, :-1], wb[:, -1]
        return (w * (a + _EPS).log()).sum(-1) + b + self.prior(a).squeeze(-1)


def save_text_matcher(net: TextMatcher, path: Path, meta: dict) -> Path:
    """Write ``net`` (tensors + JSON-able meta) atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": _FORMAT, "attr_dim": net.attr_dim, "text_dim": net.text_dim,
                "hidden": net.hidden, "state": {k: v.detach().cpu().clone()
                                                for k, v in net.state_dict().items()},
                "meta": dict(meta)}, tmp)
    tmp.replace(path)
    return path


def load_text_matcher(spec: str | Path = "embedded") -> tuple[TextMatcher, dict]:
    """``(net, meta)`` of ``"embedded"`` (the shipped file) or a ``text_matcher.pt`` of
    ``raysys pretrain-matcher``."""
    path = EMBEDDED_PATH if str(spec) == "embedded" else Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"text matcher weights not found: {path}. Make them with `raysys pretrain-matcher "
            f"--out DIR` (writes DIR/text_matcher.pt) and pass that file, or use "
            f"text_matcher='embedded'")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a text matcher of `raysys pretrain-matcher` "
                         f"(format {_FORMAT!r})")
    net = TextMatcher(int(ckpt["attr_dim"]), int(ckpt["text_dim"]), int(ckpt["hidden"]))
    net.load_state_dict(ckpt["state"])
    return net.eval(), dict(ckpt.get("meta", {}))


def frozen_text_matcher(spec: str, attr_dim: int, text_dim: int) -> TextMatcher:
    """A private, frozen copy (eval mode, no gradients) of ``spec``, checked against the
    attribute net's class count and the text encoder's width it is used with."""
    net, meta = load_text_matcher(spec)
    if (net.attr_dim, net.text_dim) != (attr_dim, text_dim):
        raise ValueError(
            f"text matcher {spec!r} reads {net.attr_dim} attribute classes and {net.text_dim}-d "
            f"sentences (text encoder {meta.get('text_encoder', '?')!r}); this model has "
            f"{attr_dim} and {text_dim}: pre-train one for it with `raysys pretrain-matcher`")
    net = copy.deepcopy(net).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net
