"""Describers: the classical colour describer on synthetic crops drawn here, phrasing,
and the clear errors of the model backends that cannot run on this machine."""

import numpy as np
import pytest

from raysys.backends import (
    COLOUR_NAMES,
    DESCRIBER_BACKENDS,
    ColourDescriber,
    Describer,
    attributes_to_text,
)
from raysys.backends.colours import name_colours
from raysys.backends.describer import build_prompt, clean_sentence, select_crops

RGB = {"red": (200, 30, 35), "blue": (35, 60, 170), "black": (25, 25, 28),
       "gray": (120, 120, 125), "white": (235, 235, 235), "green": (40, 130, 50),
       "yellow": (225, 200, 40), "skin": (215, 170, 140), "hair": (40, 30, 25)}
# per-camera colour responses (channel gains): warm, cold, dark, bright, neutral
CASTS = [(1.15, 1.0, 0.85), (0.85, 1.0, 1.2), (0.8, 0.8, 0.8), (1.2, 1.1, 1.0), (1, 1, 1)]


def draw_person(top, bottom, cap=None, bicycle=False, gains=(1, 1, 1), seed=0):
    """A 160-row crop of a person on a grey background, and its mask.

    Rows: cap or hair 4-14, face 14-28, coat 30-80, trousers 80-150, shoes 150-156; a
    cyclist's crop is 150 wide, with two wheel rings (radius 20-27) centred on row 128.
    """
    rng = np.random.default_rng(seed)
    h, w = 160, (150 if bicycle else 64)
    img = np.full((h, w, 3), 128.0)
    mask = np.zeros((h, w), bool)
    cx = w // 2

    def rect(y0, y1, half, colour):
        img[y0:y1, cx - half:cx + half] = RGB.get(colour, colour)
        mask[y0:y1, cx - half:cx + half] = True

    rect(4, 14, 7, cap or "hair")
    rect(14, 28, 6, "skin")
    rect(30, 80, 14, top)
    rect(80, 150, 12, bottom)
    rect(150, 156, 13, "black")
    if bicycle:
        yy, xx = np.mgrid[:h, :w]
        for wx in (cx - 45, cx + 45):
            ring = np.abs(np.hypot(yy - 128, xx - wx) - 23.5) < 3.5
            img[ring] = (30, 30, 30)
            mask[ring] = True
    img = img * np.asarray(gains, float) + rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), mask


def trajectory(top, bottom, cap=None, bicycle=False, casts=CASTS):
    pairs = [draw_person(top, bottom, cap, bicycle, g, i) for i, g in enumerate(casts)]
    return [c for c, _ in pairs], [m for _, m in pairs]


@pytest.mark.parametrize("top, bottom, cap, bicycle, text", [
    ("red", "black", None, False, "A man wearing a red coat and black trousers"),
    ("black", "gray", "white", False, "A man in a white cap, black coat and gray trousers"),
    ("white", "blue", None, False, "A man wearing a white coat and blue trousers"),
    ("green", "black", "red", False, "A man in a red cap, green coat and black trousers"),
    ("blue", "gray", None, True, "A man in a blue coat and gray trousers, riding a bicycle"),
    ("yellow", "blue", "blue", True,
     "A man in a blue helmet, yellow coat and blue trousers, riding a bicycle"),
])
def test_colour_describer_on_casted_views(top, bottom, cap, bicycle, text):
    d = ColourDescriber()
    crops, masks = trajectory(top, bottom, cap, bicycle)
    a = d.describe_attributes(crops, masks)
    assert (a["top"], a["bottom"], a["headwear"], a["bicycle"]) == (top, bottom, cap, bicycle)
    assert a["bag"] is None and a["n_crops"] == 5
    assert d.describe(crops, masks, "person") == text


def test_voting_outvotes_one_bad_camera():
    # four normal views and one with a strong red cast that the background cannot fully undo
    crops, masks = trajectory("blue", "gray", casts=CASTS[:4] + [(1.6, 0.7, 0.7)])
    a = ColourDescriber().describe_attributes(crops, masks)
    assert (a["top"], a["bottom"]) == ("blue", "gray")


def test_without_masks_distinct_colours_still_work():
    crops, _ = trajectory("red", "black", cap="white")
    a = ColourDescriber().describe_attributes(crops)
    assert (a["top"], a["bottom"], a["headwear"]) == ("red", "black", "white")


def test_non_person_category():
    img = np.full((60, 120, 3), 128, np.uint8)
    img[15:50, 10:110] = RGB["red"]
    mask = np.zeros((60, 120), bool)
    mask[15:50, 10:110] = True
    d = DESCRIBER_BACKENDS.build("colours")
    assert d.describe([img], [mask], "car") == "A red car"


@pytest.mark.parametrize("rgb, name", [
    ((255, 0, 0), "red"), ((0, 0, 128), "blue"), ((30, 60, 200), "blue"),
    ((0, 128, 0), "green"), ((250, 220, 20), "yellow"), ((255, 140, 0), "orange"),
    ((128, 0, 128), "purple"), ((255, 105, 180), "pink"), ((139, 69, 19), "brown"),
    ((10, 10, 10), "black"), ((128, 128, 128), "gray"), ((245, 245, 245), "white"),
])
def test_name_colours(rgb, name):
    from raysys.backends._image import rgb_to_lab

    lab = rgb_to_lab(np.array([rgb], np.float32) / 255.0)
    assert COLOUR_NAMES[int(name_colours(lab)[0])] == name


@pytest.mark.parametrize("attrs, text", [
    ({"is_person": True, "top": "red"}, "A man wearing a red coat"),
    ({"is_person": True, "bicycle": True}, "A man riding a bicycle"),
    ({"is_person": True, "top": "white", "bicycle": True},
     "A man in a white coat, riding a bicycle"),
    ({"is_person": True, "top": "orange", "top_colours": [("orange", 0.5), ("gray", 0.45)],
      "bottom": "gray"}, "A man wearing an orange and gray coat and gray trousers"),
    ({"is_person": False, "category": "car", "colour": "orange"}, "An orange car"),
    ({"is_person": False, "category": "bus", "colour": None}, "A bus"),
])
def test_attributes_to_text(attrs, text):
    assert attributes_to_text(attrs) == text


def test_registry_and_protocol():
    assert DESCRIBER_BACKENDS.names() == ["attributes", "colours", "hf-vlm", "vllm"]
    assert isinstance(ColourDescriber(), Describer)
    with pytest.raises(ValueError, match="at least one crop"):
        ColourDescriber().describe([], None)


def test_vllm_absent_gives_clear_error(tmp_path):
    try:
        import vllm  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("vllm is installed here")
    with pytest.raises(ImportError, match=r"optional extra for GPU nodes.*raysys\[vllm\]"):
        DESCRIBER_BACKENDS.build("vllm", model_dir=tmp_path)


def test_hf_vlm_missing_dir_names_it(tmp_path):
    missing = tmp_path / "Qwen3-VL-8B-Instruct"
    with pytest.raises(FileNotFoundError, match="Qwen3-VL-8B-Instruct.*save_pretrained"):
        DESCRIBER_BACKENDS.build("hf-vlm", model_dir=missing)


def test_prompt_and_answer_cleaning():
    p = build_prompt("person", 3)
    assert "same person from different cameras" in p and "purple" in p and "bicycle" in p
    assert "A red car" in build_prompt("car")
    assert clean_sentence('Answer: "a man wearing a red coat and black trousers." More.') == \
        "A man wearing a red coat and black trousers"
    assert clean_sentence("\n  A man in a white cap, black coat and gray trousers\nfoo") == \
        "A man in a white cap, black coat and gray trousers"


def test_select_crops_spreads_over_trajectory():
    crops, masks = trajectory("red", "black")
    sel = select_crops(crops, masks, max_images=3, mask_background=True)
    assert len(sel) == 3 and sel[0].shape == crops[0].shape
    assert (sel[0][~masks[0]] == 128).all()  # background painted mid-grey


def test_describe_levels_gives_the_full_then_the_general_sentences():
    from raysys.backends.describer import describe_levels
    from raysys.backends.phrases import general_phrases

    crops, masks = trajectory("green", "black", cap="red")
    levels = ColourDescriber().describe_levels(crops, masks)
    assert levels == ["A man in a red cap, green coat and black trousers",
                      "A man wearing a green coat",
                      "A man wearing a green coat and black trousers",
                      "A man in a red cap and green coat"]
    crops, masks = trajectory("blue", "gray", bicycle=True)
    assert ColourDescriber().describe_levels(crops, masks)[1:] == [
        "A man wearing a blue coat", "A man wearing a blue coat and gray trousers",
        "A man riding a bicycle", "A man in a blue coat, riding a bicycle"]
    assert general_phrases({"is_person": False, "category": "car", "colour": "red"}) == []

    class OnlyDescribe:  # a describer without describe_levels: its sentence only
        def describe(self, crops, masks=None, category="person"):
            return "A man wearing a red coat"

    assert describe_levels(OnlyDescribe(), crops, masks) == ["A man wearing a red coat"]

    class Broken:
        def describe_levels(self, crops, masks=None, category="person"):
            return []

    with pytest.raises(TypeError, match="non-empty list of sentences"):
        describe_levels(Broken(), crops, masks)
