"""Fixtures shared by the ViewSAM tests."""

import pytest
import torch


@pytest.fixture
def two_box_targets():
    """Pseudo-label targets of one clip (B=1, V=2, T=2): two boxes per frame, the first
    referred, with the loader's crop frames (48 x 80, random), for the Candidate
    Generator's losses on a 64 px model."""
    from raysys.viewsam.data import ClipTargets

    b, v, t = 1, 2, 2
    boxes = torch.tensor([20.0, 10.0, 30.0, 50.0]).expand(b, v, t, 2, 4).clone()
    boxes[..., 1, :] += torch.tensor([25.0, 0.0, 25.0, 0.0])
    return ClipTargets(boxes=boxes, visible=torch.ones(b, v, t, 2, dtype=torch.bool),
                       ids=torch.tensor([[0, 1]]), referred=torch.tensor([[True, False]]),
                       crop_frames=torch.randint(0, 255, (b, v, t, 3, 48, 80),
                                                 dtype=torch.uint8))


@pytest.fixture
def crop_clip():
    """``(frames, targets)`` of one clip (B=1, V=2, T=2, 64 px) with three objects and the
    loader's object crops (random), for a CGCT upon crops: ids 3, 7, 9, the first two
    referred."""
    from raysys.viewsam.data import ClipTargets
    from raysys.viewsam.osnet_backbone import CROP_SIZE

    torch.manual_seed(0)
    b, v, t, m, s = 1, 2, 2, 3, 64
    frames = torch.rand(b, v, t, 3, s, s)
    boxes = torch.tensor([[8.0, 8.0, 28.0, 56.0], [34.0, 4.0, 60.0, 40.0],
                          [2.0, 40.0, 20.0, 62.0]]).expand(b, v, t, m, 4).clone()
    crops = torch.randint(0, 255, (b, v, t, m, 3, *CROP_SIZE), dtype=torch.uint8)
    return frames, ClipTargets(boxes=boxes, visible=torch.ones(b, v, t, m, dtype=torch.bool),
                               ids=torch.tensor([[3, 7, 9]]),
                               referred=torch.tensor([[True, True, False]]), crops=crops)


@pytest.fixture
def two_places():
    """``paste(person, other) -> (crops (2, 2, 3, h, w) in [0, 1], boxes (2, 2, 4))``: two
    (3, 40, 16) figures in two 90 x 160 frames, ``person`` at a different place in each,
    ``other`` beside it in the second; rows (frame 0: person twice; frame 1: person,
    other). ``background``: the frames' value."""
    from raysys.viewsam.osnet_backbone import CROP_SIZE, crop_objects

    def paste(person, other, background: float = 0.0):
        img = torch.full((2, 3, 90, 160), background)
        img[0, :, 10:50, 20:36] = person
        img[1, :, 45:85, 120:136] = person
        img[1, :, 0:40, 0:16] = other
        boxes = torch.tensor([[[20.0, 10.0, 36.0, 50.0], [20.0, 10.0, 36.0, 50.0]],
                              [[120.0, 45.0, 136.0, 85.0], [0.0, 0.0, 16.0, 40.0]]])
        return crop_objects(img, boxes, CROP_SIZE) / 255.0, boxes

    return paste
