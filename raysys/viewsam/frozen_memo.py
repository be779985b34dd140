"""Training-time memory of what the Candidate Generator's frozen models said about a frame.

The proposal detector (:mod:`raysys.viewsam.proposal_net`) and the attribute net
(:mod:`raysys.viewsam.attribute_roi`) are frozen: their outputs are a pure function of the
frame (and of a box). Training visits each clip once per epoch, so the Candidate Generator
keeps their outputs, keyed by the frame's exact content (SHA-1 of its float32 pixels),
and runs them only on frames and boxes it has not seen. Bounded (least recently used
first out) and used only in training mode; nothing of it is saved.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import torch

__all__ = ["FrozenMemo", "frame_keys"]


def frame_keys(frames: torch.Tensor) -> list[bytes]:
    """One digest per frame ``(F, 3, H, W)`` of its exact float32 content."""
    x = frames.detach().float().contiguous().cpu().numpy()
    return [hashlib.sha1(memoryview(f).cast("B")).digest() for f in x]


class FrozenMemo:
    """An LRU map of at most ``size`` entries, each a tuple of CPU tensors."""

    def __init__(self, size: int) -> None:
        self.size, self._d = size, OrderedDict()
        self.hits = self.misses = 0

    def get(self, key):
        out = self._d.get(key)
        if out is None:
            self.misses += 1
            return None
        self._d.move_to_end(key)
        self.hits += 1
        return out

    def put(self, key, value) -> None:
        self._d[key] = value
        self._d.move_to_end(key)
        while len(self._d) > self.size:
            self._d.popitem(last=False)

    def __len__(self) -> int:
        return len(self._d)
