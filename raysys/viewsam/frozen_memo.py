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

    def per_frame(self, tag: tuple, keys: list[bytes], frames: torch.Tensor, run
                  ) -> tuple[torch.Tensor, ...]:
        """``run(frames)`` (a tuple of per-frame tensors ``(F, ...)``) through the memo,
        keyed by ``tag`` and each frame's digest ``keys``; only unseen frames are run."""
        got = [self.get((tag, key)) for key in keys]
        miss = [i for i, g in enumerate(got) if g is None]
        if miss:
            fresh = run(frames[miss])
            for j, i in enumerate(miss):
                got[i] = tuple(x[j].cpu() for x in fresh)
                self.put((tag, keys[i]), got[i])
        return tuple(torch.stack(parts).to(frames.device) for parts in zip(*got, strict=True))

    def per_box(self, read, keys: list[bytes], boxes: torch.Tensor, rows: torch.Tensor
                ) -> torch.Tensor:
        """``read(boxes, rows)`` (the attribute net's ``(R, P)``) through the memo, keyed by
        each box's frame digest (``keys[rows % F]``) and exact coordinates."""
        rows = rows.long() % len(keys)
        flat = boxes.detach().float().cpu().numpy()
        ks = [("attr", keys[r], flat[i].tobytes()) for i, r in enumerate(rows.tolist())]
        got = [self.get(key) for key in ks]
        miss: dict = {}
        for i, g in enumerate(got):
            if g is None:
                miss.setdefault(ks[i], i)
        if miss:
            sel = torch.tensor(list(miss.values()), device=boxes.device)
            probs = read(boxes[sel], rows[sel]).cpu()
            fresh = dict(zip(miss, probs, strict=True))
            for key, p in fresh.items():
                self.put(key, p)
            got = [fresh[key] if g is None else g for key, g in zip(ks, got, strict=True)]
        return torch.stack(got).to(boxes.device)

    def __len__(self) -> int:
        return len(self._d)
