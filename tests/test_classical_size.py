"""The classical tracker's perspective size model (``fit_size_model``)."""

from pathlib import Path

import numpy as np

from raysys.labeling.backends.classical.config import ClassicalTrackerConfig
from raysys.labeling.backends.classical.detect import fit_size_model

DATA = Path(__file__).parent / "data"


def _blobs(rng, true_h, rows, n, scale=1.0, jitter=0.04):
    """xywh boxes of upright blobs whose feet are on ``rows``: height ``scale * true_h``."""
    y = rng.choice(rows, n)
    h = scale * true_h(y) * (1 + rng.normal(0, jitter, n))
    w = h / 2.4
    return np.stack([rng.uniform(20, 600, n), y - h, w, h], 1)


def test_size_model_ignores_columns_of_people_under_a_steep_camera():
    """Foreground blobs (xywh) of 40 frames of a generated high, steep camera (``raysys
    synth --seed 0``, test scene 1, View1): seen from above, people are 34 px tall far
    away and 48 px near by. Near the camera many blobs are two people in a column or a
    person with their shadow, about twice as tall. The line must follow the single people
    (it once ran through the far singles and the near columns, doubling every expected
    height near the camera so that no window fitted a person there)."""
    boxes = np.load(DATA / "size_blobs_steep_view.npy").astype(float)
    model = fit_size_model(boxes, (360, 640), ClassicalTrackerConfig())
    assert model is not None
    # ground truth: median GT box height of the people whose feet are near that row
    for y, h in ((100.0, 39.0), (180.0, 43.0), (260.0, 48.0), (300.0, 48.0)):
        assert abs(float(model.height(y)) - h) < 0.15 * h, (y, model)


def test_size_model_of_a_low_camera_is_steep():
    """A low camera: height grows fast with the foot row (perspective), and is fitted."""
    rng = np.random.default_rng(1)

    def true_h(y):
        return 0.45 * y - 20.0

    boxes = _blobs(rng, true_h, np.arange(150, 350), 150)
    boxes = boxes[boxes[:, 1] > 2]
    model = fit_size_model(boxes, (360, 640), ClassicalTrackerConfig())
    assert model is not None
    for y in (180.0, 250.0, 330.0):
        assert abs(float(model.height(y)) - true_h(y)) < 0.1 * true_h(y), (y, model)
