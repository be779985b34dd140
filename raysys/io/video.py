"""A lazily read video: the frames of one ``<Scene>_View<k>`` image folder.

A frame that cannot be decoded, or whose size differs from the view's first decoded frame,
raises :class:`raysys.io.frames.FrameError` naming its file, scene, view and frame number
(a corrupt frame fails the run, see :mod:`raysys.io.frames`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from raysys.io.frames import FrameError, list_frames, read_frame

__all__ = ["VideoFrames"]


class VideoFrames(Sequence):
    """Frames of one camera, read on access as (H, W, 3) uint8 RGB.

    Index ``i`` is the i-th image in frame order; ``frame_numbers[i]`` is its 1-based
    CRTrack frame number. Arrays can be passed instead of a folder (tests, streams).
    """

    def __init__(self, scene: str, view: str, source: str | os.PathLike | Sequence[np.ndarray],
                 frame_numbers: Sequence[int] | None = None):
        self.scene, self.view = scene, view
        if isinstance(source, (str, os.PathLike)):
            listed = list_frames(source)  # a folder, local or in storage (a local copy)
            self._paths = [p for _, p in listed]
            self._arrays = None
            self._hw: tuple[int, int] | None = None  # the first decoded frame's (H, W)
            self.frame_numbers = np.array([f for f, _ in listed], dtype=np.int64)
        else:
            self._paths = None
            self._arrays = list(source)
            n = len(self._arrays)
            self.frame_numbers = np.asarray(
                frame_numbers if frame_numbers is not None else np.arange(1, n + 1),
                dtype=np.int64)
            if self.frame_numbers.shape != (n,):
                raise ValueError(f"{n} frames but {self.frame_numbers.size} frame numbers")

    def __len__(self) -> int:
        return int(self.frame_numbers.size)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if self._arrays is not None:
            return self._arrays[i]
        n = int(self.frame_numbers[i])
        img = read_frame(self._paths[i], self.scene, self.view, n)
        if self._hw is None:
            self._hw = img.shape[:2]
        elif img.shape[:2] != self._hw:
            h, w = self._hw
            raise FrameError(self._paths[i], f"{img.shape[1]}x{img.shape[0]} pixels, while "
                             f"the view's other frames are {w}x{h}", self.scene, self.view, n)
        return img

    def index_of(self, frame: int) -> int:
        """Position of a 1-based frame number."""
        k = int(np.searchsorted(self.frame_numbers, frame))
        if k >= len(self) or self.frame_numbers[k] != frame:
            raise KeyError(f"frame {frame} not in {self.scene}/{self.view}")
        return k

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the frames."""
        return tuple(self[0].shape[:2]) if len(self) else (0, 0)
