"""The model describers end to end: ``hf-vlm`` on a tiny random Qwen3-VL built here (no
download), and ``vllm`` with the engine replaced at its module boundary (vLLM cannot be
installed next to raysys: it pins other torch/transformers versions and has no CPU wheel).

Both go prompt -> generation -> :func:`parse_description`; whatever comes back is parsed,
garbage included, and a failed parse raises or is recorded as the backend documents.
"""

from __future__ import annotations

import base64
import io
import sys
import types

import numpy as np
import pytest

from raysys.backends import DESCRIBER_BACKENDS
from raysys.backends.describer import (
    DescriptionParseError,
    build_prompt,
    parse_description,
    select_crops,
)

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
           "<|image_pad|>", "<|video_pad|>"]
# Qwen's chat layout, images as <|vision_start|><|image_pad|><|vision_end|>
TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}"
    "{{ m['content'] }}{% else %}{% for c in m['content'] %}{% if c['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif c['type'] == 'text' %}{{ c['text'] }}"
    "{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
ANSWER = "A man wearing a red coat."


def _tiny_qwen3_vl(seed: int = 0):
    """(model, processor): a 0.2 M-parameter Qwen3-VL with random weights and a byte-level
    tokenizer made here (256 byte tokens + Qwen's special tokens)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
    )
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(
        sorted(pre_tokenizers.ByteLevel.alphabet()))}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>")
    ids = {s: fast.convert_tokens_to_ids(s) for s in SPECIAL}
    # crops are resized to 32x32 .. 64x64 pixels: 1-4 image tokens each
    image = Qwen2VLImageProcessor(size={"shortest_edge": 32 * 32, "longest_edge": 64 * 64},
                                  patch_size=16, merge_size=2, temporal_patch_size=2)
    video = Qwen3VLVideoProcessor(size={"shortest_edge": 2048, "longest_edge": 8192},
                                  patch_size=16, merge_size=2)
    processor = Qwen3VLProcessor(image_processor=image, tokenizer=fast, video_processor=video,
                                 chat_template=TEMPLATE)
    cfg = Qwen3VLConfig(
        text_config=dict(vocab_size=len(fast), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         head_dim=16, max_position_embeddings=4096,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                          "mrope_section": [2, 3, 3],
                                          "mrope_interleaved": True}),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2,
                           patch_size=16, spatial_merge_size=2, temporal_patch_size=2,
                           out_hidden_size=64, num_position_embeddings=64,
                           deepstack_visual_indexes=[0]),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(seed)
    return Qwen3VLForConditionalGeneration(cfg).eval(), processor


def _crops(n: int = 3):
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 255, (96, 40, 3), dtype=np.uint8) for _ in range(n)]
    crops[0][10:50] = (200, 30, 35)  # a red coat, to make it look like one
    return crops


def _teach(model, processor, crops, answer: str, steps: int = 250) -> float:
    """Overfit the model to answer ``answer`` to the describer's own prompt; final loss."""
    import torch
    from PIL import Image

    images = [Image.fromarray(c) for c in select_crops(crops, None, 4)]
    content = [{"type": "image", "image": im} for im in images]
    content.append({"type": "text", "text": build_prompt("person", len(images))})
    inputs = processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=True,
        return_dict=True, return_tensors="pt")
    target = processor.tokenizer(answer + "<|im_end|>", return_tensors="pt")["input_ids"]
    ids = torch.cat([inputs["input_ids"], target], 1)
    labels = torch.full_like(ids, -100)
    labels[:, -target.shape[1]:] = target
    batch = {**inputs, "input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if "mm_token_type_ids" in inputs:  # the answer is text
        batch["mm_token_type_ids"] = torch.cat(
            [inputs["mm_token_type_ids"], torch.zeros_like(target)], 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(**batch, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.005:
            break
    model.eval()
    return float(loss.item())


@pytest.fixture(scope="module")
def random_vlm_dir(tmp_path_factory):
    pytest.importorskip("transformers")
    model, processor = _tiny_qwen3_vl()
    d = tmp_path_factory.mktemp("tiny-qwen3-vl-random")
    model.save_pretrained(d)
    processor.save_pretrained(d)
    return d


def test_parse_description_accepts_sentences_and_names_garbage():
    assert parse_description('Answer: "a man wearing a red coat and black trousers." '
                             'More text.') == "A man wearing a red coat and black trousers"
    assert parse_description("A person in a grey hoodie") == "A person in a grey hoodie"
    assert parse_description("A red car", "car") == "A red car"
    for answer, reason in [("", "empty"), ("   \n ", "empty"),
                           ("��\x08�ͤ�.\x00���k�O", "not text"),
                           ("Hello", "fewer than two words"),
                           ("I cannot tell from these images", "names no attribute")]:
        with pytest.raises(DescriptionParseError, match=reason) as e:
            parse_description(answer)
        assert e.value.answer == answer and "no attribute sentence" in str(e.value)


def test_hf_vlm_random_tiny_qwen3_vl_end_to_end(random_vlm_dir):
    """Random weights answer garbage: it is parsed, recorded, and the trajectory gets the
    category sentence; with ``on_parse_error="raise"`` the same answer raises."""
    d = DESCRIBER_BACKENDS.build("hf-vlm", model_dir=random_vlm_dir, max_new_tokens=12,
                                 max_images=2)
    assert type(d.model).__name__ == "Qwen3VLForConditionalGeneration"
    crops = _crops()
    text = d.describe(crops, None, "person")
    if d.parse_errors:  # what random weights say is almost surely no sentence
        assert text == "A man" and len(d.parse_errors) == 1
        raw = d.parse_errors[0].answer
        assert isinstance(raw, str) and "no attribute sentence" in str(d.parse_errors[0])
        strict = DESCRIBER_BACKENDS.build("hf-vlm", model_dir=random_vlm_dir,
                                          max_new_tokens=12, max_images=2,
                                          on_parse_error="raise")
        with pytest.raises(DescriptionParseError) as e:
            strict.describe(crops, None, "person")
        assert e.value.answer == raw  # greedy: the same answer, now an error
    else:  # if it did say something parseable, that is what comes back
        assert text == parse_description(text)


@pytest.mark.slow  # about 100 training steps: about 45 s on an idle 2-core machine
def test_hf_vlm_taught_tiny_qwen3_vl_answers_the_sentence(tmp_path):
    """A tiny Qwen3-VL overfit to answer one sentence to the describer's prompt: the backend
    generates it and returns only the new tokens, parsed (not the prompt echoed)."""
    pytest.importorskip("transformers")
    model, processor = _tiny_qwen3_vl(seed=1)
    crops = _crops()
    assert _teach(model, processor, crops, ANSWER) < 0.01
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    d = DESCRIBER_BACKENDS.build("hf-vlm", model_dir=tmp_path, max_new_tokens=60,
                                 on_parse_error="raise")
    assert d.describe(crops, None, "person") == "A man wearing a red coat"
    assert d.parse_errors == []


class _FakeVLLM:
    """``vllm`` at its boundary: ``LLM(...)`` records its arguments, ``LLM.chat`` records
    the conversations and answers from a list."""

    def __init__(self, answers):
        self.answers, self.engine_kwargs, self.calls = list(answers), None, []
        fake = self

        class LLM:
            def __init__(self, **kw):
                fake.engine_kwargs = kw

            def chat(self, convs, sampling, use_tqdm=True):
                fake.calls.append((convs, sampling))
                return [types.SimpleNamespace(outputs=[types.SimpleNamespace(
                    text=fake.answers.pop(0))]) for _ in convs]

        class SamplingParams:
            def __init__(self, temperature, max_tokens):
                self.temperature, self.max_tokens = temperature, max_tokens

        self.module = types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams)


def test_vllm_requests_and_parsing_with_the_engine_replaced(tmp_path, monkeypatch):
    from PIL import Image

    fake = _FakeVLLM(['"A man in a white cap, black coat and gray trousers." He walks.',
                      "��\x08�ͤ�", "A red car"])
    monkeypatch.setitem(sys.modules, "vllm", fake.module)
    d = DESCRIBER_BACKENDS.build("vllm", model_dir=tmp_path, max_images=2, temperature=0.0)
    assert fake.engine_kwargs["model"] == str(tmp_path)
    assert fake.engine_kwargs["limit_mm_per_prompt"] == {"image": 2}
    crops = _crops(3)
    out = d.describe_batch([(crops, None, "person"), (crops[:1], None, "person"),
                            (crops[:1], None, "car")])
    assert out == ["A man in a white cap, black coat and gray trousers", "A man", "A red car"]
    assert len(d.parse_errors) == 1 and "not text" in str(d.parse_errors[0])
    (convs, sampling), = fake.calls
    assert (sampling.temperature, sampling.max_tokens) == (0.0, 64)
    first = convs[0][0]["content"]
    assert [c["type"] for c in first] == ["image_url", "image_url", "text"]
    assert first[-1]["text"] == build_prompt("person", 2)
    assert convs[2][0]["content"][-1]["text"] == build_prompt("car", 1)
    url = first[0]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert img.size == (40, 96)  # the crop itself, as JPEG
    fake.answers = ["nothing to see"]
    strict = DESCRIBER_BACKENDS.build("vllm", model_dir=tmp_path, on_parse_error="raise")
    with pytest.raises(DescriptionParseError, match="names no attribute"):
        strict.describe(crops, None, "person")
    with pytest.raises(ValueError, match="on_parse_error"):
        DESCRIBER_BACKENDS.build("vllm", model_dir=tmp_path, on_parse_error="ignore")
