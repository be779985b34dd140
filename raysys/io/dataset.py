"""Where things live in a raysys dataset (the CRTrack layout plus side tables).

::

    <root>/dataset.json                                   what generated it (config, seed)
    <root>/<domain>/images/<split>/<Scene>_View<k>/000001.jpg       frames (input)
    <root>/<domain>/labels/<split>/<Scene>.json           {"categories": [...]} (input)
    <root>/<domain>/gt/sorted_gt_<split>_<domain>/<Scene>_<expression>/gt/View<k>.txt
    <root>/<domain>/meta/<split>/<Scene>/...              calibration, per-object GT

``domain`` is ``In-domain`` or ``Cross-domain``; ``split`` is ``train`` or ``test``.

Weak supervision: training and pseudo-labelling may read **only** the frames and the
category labels (:meth:`DatasetLayout.weak_inputs`). Everything under ``gt/`` and
``meta/`` is ground truth, for evaluation and the explicitly named fully supervised mode.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DatasetLayout", "DOMAINS", "SPLITS"]

DOMAINS = ("In-domain", "Cross-domain")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class DatasetLayout:
    """Paths of one (domain, split) of a dataset rooted at ``root``."""

    root: Path
    domain: str = "In-domain"
    split: str = "test"

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        if self.domain not in DOMAINS:
            raise ValueError(f"domain must be one of {DOMAINS}, got {self.domain!r}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")

    @property
    def domain_dir(self) -> Path:
        return self.root / self.domain

    @property
    def image_root(self) -> Path:
        return self.domain_dir / "images" / self.split

    def view_dir(self, scene: str, view: str) -> Path:
        return self.image_root / f"{scene}_{view}"

    @property
    def labels_dir(self) -> Path:
        return self.domain_dir / "labels" / self.split

    def categories_file(self, scene: str) -> Path:
        return self.labels_dir / f"{scene}.json"

    @property
    def gt_root(self) -> Path:
        return self.domain_dir / "gt" / f"sorted_gt_{self.split}_{self.domain}"

    def meta_dir(self, scene: str) -> Path:
        return self.domain_dir / "meta" / self.split / scene

    def weak_inputs(self) -> tuple[Path, Path]:
        """The only folders weakly supervised code may read: frames and category labels."""
        return (self.image_root, self.labels_dir)

    def ground_truth_dirs(self) -> list[Path]:
        """Every GT folder of the dataset (all domains): what weak supervision must not read."""
        return [self.root / d / sub for d in DOMAINS for sub in ("gt", "meta")]

    @staticmethod
    def available(root: str | os.PathLike) -> list[DatasetLayout]:
        """Every (domain, split) present under ``root``."""
        out = []
        for d in DOMAINS:
            for s in SPLITS:
                lay = DatasetLayout(Path(root), d, s)
                if lay.image_root.is_dir() or lay.gt_root.is_dir():
                    out.append(lay)
        return out
