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
