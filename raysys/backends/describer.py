"""Attribute descriptions of cross-view trajectories (paper §3.2, MLLM step).

A :class:`Describer` turns crops of one trajectory (across views and frames) into one
attribute sentence in CRTrack's style, later embedded and grouped into expressions.

Backends (``DESCRIBER_BACKENDS``):

* ``"attributes"`` (default): :class:`~raysys.backends.attribute_describer.AttributeDescriber`,
  the embedded attribute net (shipped weights) over the trajectory's crops and frames.
* ``"colours"`` (no weights at all): :class:`~raysys.backends.colours.ColourDescriber`.
* ``"hf-vlm"``: any local transformers vision-language model directory (e.g. Qwen3-VL).
* ``"vllm"``: Qwen3-VL (or another VLM) served by vLLM - an optional extra for GPU nodes.

The paper (§3.2.2) asks Qwen3-VL-8B for "attribute-centric descriptions ... capturing
appearance cues such as color, clothing, and accessories" and prints no prompt text;
:func:`build_prompt` asks for those cues in CRTrack's sentence style. A model's answer
that is no attribute sentence (:func:`parse_description`: empty, garbled, naming no
attribute) is a :class:`DescriptionParseError`, raised or recorded (``on_parse_error``).
"""

from __future__ import annotations

import base64
import io
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from raysys.backends._image import check_crops
from raysys.backends.checkpoints import require_dir
from raysys.backends.colours import (
    COLOUR_NAMES,
    PERSON_CATEGORIES,
    ColourDescriber,
    ColourDescriberConfig,
)
from raysys.backends.registry import Registry

__all__ = [
    "Describer",
    "DescriptionParseError",
    "HFVLMDescriber",
    "VLLMDescriber",
    "DESCRIBER_BACKENDS",
    "build_prompt",
    "clean_sentence",
    "describe_levels",
    "parse_description",
    "select_crops",
]

_log = logging.getLogger(__name__)


@runtime_checkable
class Describer(Protocol):
    """Crops of one trajectory -> one attribute sentence.

    ``describe(crops, masks, category)``: ``crops`` are ``(H, W, 3)`` uint8 RGB arrays from
    any views/frames of the same object, ``masks`` optional same-size bool arrays, and
    ``category`` the object category the tracker was prompted with (e.g. ``"person"``).

    A describer may also offer ``describe_levels(crops, masks, category) -> [full, *more
    general sentences]`` (the colours backend does); Stage 1 then also groups the general
    sentences into expressions (``GroupingConfig.general``). See :func:`describe_levels`,
    also for ``frame_context(frame)``, offered by a describer that reads the whole frame.
    """

    def describe(
        self, crops: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None = None,
        category: str = "person",
    ) -> str: ...


def describe_levels(describer, crops: Sequence[np.ndarray],
                    masks: Sequence[np.ndarray] | None = None, category: str = "person",
                    contexts: Sequence[np.ndarray] | None = None) -> list[str]:
    """``[full sentence, *more general sentences]`` from any describer: its own
    ``describe_levels`` when it has one, else ``[describe(...)]`` (no general sentences).
    ``contexts`` (its ``frame_context`` of each crop's frame) reach only a describer with
    ``frame_context``."""
    levels = getattr(describer, "describe_levels", None)
    if callable(levels):
        reads = contexts is not None and callable(getattr(describer, "frame_context", None))
        out = list(levels(crops, masks, category, **({"contexts": contexts} if reads else {})))
        if not out or not all(isinstance(t, str) for t in out):
            raise TypeError(f"{type(describer).__name__}.describe_levels must return a "
                            f"non-empty list of sentences, got {out!r}")
        return out
    return [describer.describe(crops, masks, category)]


_PERSON_EXAMPLES = (
    "'A man wearing a red coat and black trousers', "
    "'A man in a white cap, black coat and gray trousers, carrying a backpack', "
    "'A man in a black helmet, blue coat and gray trousers, riding a bicycle'"
)


def build_prompt(category: str = "person", num_images: int = 1) -> str:
    """The instruction given to a VLM for one trajectory."""
    colours = ", ".join(COLOUR_NAMES)
    views = ("These images show the same {c} from different cameras and times. "
             if num_images > 1 else "This image shows a {c}. ").format(c=category)
    if category.strip().lower() in PERSON_CATEGORIES:
        return (views + "Describe the person in one short sentence in exactly this style: "
                + _PERSON_EXAMPLES + ". Give the colour of the headwear (cap or helmet) if "
                "any, the coat and the trousers, and say if the person carries a bag or "
                f"backpack or rides a bicycle. Use only these colour words: {colours}. "
                "Answer with the sentence only.")
    return (views + f"Describe the {category} in one short sentence such as 'A red "
            f"{category}'. Use only these colour words: {colours}. Answer with the sentence "
            "only.")


def clean_sentence(text: str) -> str:
    """A model's answer -> one sentence: first line, no quotes/trailing period, capitalised."""
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    line = re.sub(r"^(answer|description)\s*:\s*", "", line, flags=re.IGNORECASE)
    # keep the first sentence only (a closing quote may follow its period)
    m = re.match(r"(.+?[.!?])[\"'`]?(\s|$)", line)
    if m:
        line = m.group(1)
    line = line.strip().strip("\"'`").rstrip(".!? ").strip()
    return line[:1].upper() + line[1:]


class DescriptionParseError(ValueError):
    """A model's answer is no attribute sentence; ``answer`` is the raw text."""

    def __init__(self, answer: str, reason: str) -> None:
        super().__init__(f"the describer's answer {answer[:200]!r} is no attribute sentence: "
                         f"{reason}")
        self.answer, self.reason = answer, reason


# words an attribute sentence names: colours, garments, accessories, vehicles
_ATTRIBUTE_WORDS = frozenset(COLOUR_NAMES) | frozenset((
    "grey coat jacket shirt top sweater hoodie dress trousers pants jeans shorts skirt "
    "shoes boots cap hat helmet hood bag backpack handbag suitcase bicycle bike riding "
    "carrying wearing").split())


def parse_description(answer: str, category: str = "person") -> str:
    """A model's raw answer -> the one sentence used as the trajectory's description.

    The first sentence of the answer (:func:`clean_sentence`) must be text (at least 90% of
    its characters letters, spaces or ``,.'-``) of at least two words, one of which names an
    attribute (a colour, garment, accessory, bicycle) or the category.

    Raises:
        DescriptionParseError: the answer fails that, with the raw answer and the reason.
    """
    text = clean_sentence(answer) if isinstance(answer, str) else ""
    if not text:
        raise DescriptionParseError(str(answer), "it is empty")
    plain = sum(c.isascii() and (c.isalpha() or c in " ,.'-") for c in text)
    if plain < 0.9 * len(text):
        raise DescriptionParseError(answer, "it is not text (garbled characters)")
    words = re.findall(r"[a-z]+", text.lower())
    if len(words) < 2:
        raise DescriptionParseError(answer, "it has fewer than two words")
    if not set(words) & (_ATTRIBUTE_WORDS | {category.strip().lower()} | PERSON_CATEGORIES):
        raise DescriptionParseError(answer, "it names no attribute (colour, garment, "
                                            "accessory, bicycle) nor the category")
    return text


def _fallback(category: str) -> str:
    """The sentence of a trajectory whose answer failed to parse: the category alone."""
    from raysys.backends.phrases import attributes_to_text

    is_person = category.strip().lower() in PERSON_CATEGORIES
    return attributes_to_text({"is_person": is_person, "category": category})


class _Parses:
    """Parsing of answers for the model backends (``on_parse_error``: raise or record)."""

    on_parse_error: str = "record"
    parse_errors: list[DescriptionParseError]

    def _init_parsing(self, on_parse_error: str) -> None:
        if on_parse_error not in ("raise", "record"):
            raise ValueError(f"on_parse_error must be 'raise' or 'record', got "
                             f"{on_parse_error!r}")
        self.on_parse_error, self.parse_errors = on_parse_error, []

    def _parse(self, answer: str, category: str) -> str:
        try:
            return parse_description(answer, category)
        except DescriptionParseError as e:
            if self.on_parse_error == "raise":
                raise
            self.parse_errors.append(e)
            _log.warning("%s; described as %r instead", e, _fallback(category))
            return _fallback(category)


def select_crops(
    crops: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None, max_images: int,
    mask_background: bool = False,
) -> list[np.ndarray]:
    """Up to ``max_images`` crops, evenly spaced over the trajectory (RGB uint8 arrays).

    With ``mask_background`` the pixels outside the mask are painted mid-grey, which hides
    neighbours but also a bicycle the person mask does not cover.
    """
    crops_, masks_ = check_crops(crops, masks)
    if not crops_:
        raise ValueError("describe needs at least one crop")
    idx = np.unique(np.linspace(0, len(crops_) - 1, min(max_images, len(crops_))).round())
    out = []
    for i in idx.astype(int):
        c, m = crops_[i], masks_[i]
        if mask_background and m is not None and m.any():
            c = np.where(m[..., None], c, np.uint8(128))
        out.append(np.ascontiguousarray(c))
    return out


_HF_HOW_TO_GET = (
    "save a vision-language model on a machine with internet (e.g. "
    "AutoModelForImageTextToText.from_pretrained('Qwen/Qwen3-VL-8B-Instruct')."
    "save_pretrained(DIR) and the same for AutoProcessor), copy DIR here and pass it as "
    "model_dir (--describer-model DIR)"
)


class HFVLMDescriber(_Parses):
    """A local transformers vision-language model (``AutoModelForImageTextToText``).

    Prompt (:func:`build_prompt`) -> greedy generation -> :func:`parse_description` of the
    new tokens. Tested end to end on a tiny random Qwen3-VL built in the test
    (``tests/backends/test_vlm_describers.py``).

    Args:
        model_dir: directory written by ``save_pretrained`` (model and processor).
        device: torch device for the model.
        dtype: torch dtype name (``"auto"``, ``"bfloat16"``, ``"float32"``, ...).
        max_new_tokens: length limit of the answer.
        max_images: crops per trajectory shown to the model.
        mask_background: grey out pixels outside the masks (see :func:`select_crops`).
        on_parse_error: an answer that is no attribute sentence (:func:`parse_description`)
            raises :class:`DescriptionParseError` (``"raise"``) or (``"record"``) is logged,
            appended to ``parse_errors`` and replaced by the category alone ("A man").
    """

    def __init__(
        self, model_dir: str | Path, device: str = "cpu", dtype: str = "auto",
        max_new_tokens: int = 48, max_images: int = 4, mask_background: bool = False,
        on_parse_error: str = "record",
    ) -> None:
        self._init_parsing(on_parse_error)
        path = require_dir(model_dir, "vision-language model directory", _HF_HOW_TO_GET)
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
        self.processor = AutoProcessor.from_pretrained(str(path), local_files_only=True)
        self.model = AutoModelForImageTextToText.from_pretrained(
            str(path), local_files_only=True, dtype=torch_dtype
        ).to(torch.device(device)).eval()
        gen, tok = self.model.generation_config, getattr(self.processor, "tokenizer", None)
        if gen.eos_token_id is None and getattr(tok, "eos_token_id", None) is not None:
            gen.eos_token_id = tok.eos_token_id  # stop at the end of the answer turn
        self.max_new_tokens = max_new_tokens
        self.max_images = max_images
        self.mask_background = mask_background

    def describe(
        self, crops: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None = None,
        category: str = "person",
    ) -> str:
        import torch
        from PIL import Image

        images = [Image.fromarray(c) for c in
                  select_crops(crops, masks, self.max_images, self.mask_background)]
        content: list[dict[str, Any]] = [{"type": "image", "image": im} for im in images]
        content.append({"type": "text", "text": build_prompt(category, len(images))})
        inputs = self.processor.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True,
            tokenize=True, return_dict=True, return_tensors="pt",
        ).to(self.model.device)
        with torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens,
                                      do_sample=False)
        new = out[:, inputs["input_ids"].shape[1]:]  # (1, new_tokens)
        return self._parse(self.processor.batch_decode(new, skip_special_tokens=True)[0],
                           category)

    def describe_batch(
        self, items: Sequence[tuple[Sequence[np.ndarray], Sequence[np.ndarray] | None, str]]
    ) -> list[str]:
        return [self.describe(c, m, cat) for c, m, cat in items]


def _attribute_describer(device: str = "cpu", **kw: Any):
    from raysys.backends.attribute_describer import AttributeDescriber, AttributeDescriberConfig

    return AttributeDescriber(AttributeDescriberConfig(**kw), device=device)


def _data_url(rgb: np.ndarray) -> str:
    """RGB uint8 array -> ``data:image/jpeg;base64,...`` (the OpenAI chat image format)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=92)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class VLLMDescriber(_Parses):
    """Qwen3-VL (or another vLLM-supported VLM) through ``vllm.LLM.chat``.

    vLLM pins its own torch/transformers and is CUDA-only, so it lives in a separate
    environment on GPU nodes (``pip install 'raysys[vllm]'``, or a Ray ``runtime_env`` for
    the describer actors). Batch trajectories with :meth:`describe_batch`: vLLM schedules
    them together.

    Args:
        model_dir: local model directory (e.g. a ``Qwen/Qwen3-VL-8B-Instruct`` snapshot).
        max_new_tokens, temperature: sampling settings (temperature 0 = greedy).
        max_images: crops per trajectory (also vLLM's ``limit_mm_per_prompt``).
        tensor_parallel_size, gpu_memory_utilization, max_model_len: vLLM engine settings.
        mask_background: grey out pixels outside the masks (see :func:`select_crops`).
        on_parse_error: ``"raise"`` or ``"record"``, as for :class:`HFVLMDescriber`.
        **engine_kwargs: more ``vllm.LLM`` arguments.

    vLLM cannot be installed next to raysys (it pins other torch/transformers versions and
    has no CPU wheel), so its test replaces ``vllm`` at the module boundary
    (``tests/backends/test_vlm_describers.py``): the requests and the parsing are tested,
    the engine is not.
    """

    def __init__(
        self, model_dir: str | Path, max_new_tokens: int = 64, temperature: float = 0.0,
        max_images: int = 4, tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.85, max_model_len: int = 8192,
        mask_background: bool = False, device: str | None = None,
        on_parse_error: str = "record", **engine_kwargs: Any,
    ) -> None:
        self._init_parsing(on_parse_error)
        try:
            import vllm
        except ImportError as e:
            raise ImportError(
                "the 'vllm' describer needs vLLM, which is not installed here. vLLM is an "
                "optional extra for GPU nodes: it pins its own torch/transformers, so install "
                "it in a separate environment (pip install 'raysys[vllm]') or give the "
                "describer actors a Ray runtime_env with it; on CPU use the 'colours' "
                "describer, or 'hf-vlm' with a local transformers model"
            ) from e
        path = require_dir(model_dir, "vLLM model directory", _HF_HOW_TO_GET)
        # device: vLLM places the engine itself (Ray's GPU placement); accepted for symmetry
        self.llm = vllm.LLM(
            model=str(path), tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
            limit_mm_per_prompt={"image": max_images}, **engine_kwargs,
        )
        self.sampling = vllm.SamplingParams(temperature=temperature, max_tokens=max_new_tokens)
        self.max_images = max_images
        self.mask_background = mask_background

    def _conversation(self, crops, masks, category: str) -> list[dict[str, Any]]:
        images = select_crops(crops, masks, self.max_images, self.mask_background)
        content: list[dict[str, Any]] = [
            {"type": "image_url", "image_url": {"url": _data_url(im)}} for im in images]
        content.append({"type": "text", "text": build_prompt(category, len(images))})
        return [{"role": "user", "content": content}]

    def describe(
        self, crops: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None = None,
        category: str = "person",
    ) -> str:
        return self.describe_batch([(crops, masks, category)])[0]

    def describe_batch(
        self, items: Sequence[tuple[Sequence[np.ndarray], Sequence[np.ndarray] | None, str]]
    ) -> list[str]:
        """Describe many trajectories in one vLLM call (continuous batching)."""
        convs = [self._conversation(c, m, cat) for c, m, cat in items]
        outs = self.llm.chat(convs, self.sampling, use_tqdm=False)
        return [self._parse(o.outputs[0].text, cat)
                for o, (_, _, cat) in zip(outs, items, strict=True)]


DESCRIBER_BACKENDS: Registry[Describer] = Registry("describer backend")
DESCRIBER_BACKENDS.register("attributes", _attribute_describer)
DESCRIBER_BACKENDS.register(
    "colours",
    lambda device="cpu", **kw: ColourDescriber(ColourDescriberConfig(**kw), device=device),
)
DESCRIBER_BACKENDS.register("hf-vlm", HFVLMDescriber)
DESCRIBER_BACKENDS.register("vllm", VLLMDescriber)
