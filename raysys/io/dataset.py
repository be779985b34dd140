"""Where things live in a raysys dataset (the CRTrack layout plus side tables).

::

    <root>/dataset.json                                   what generated it (config, seed)
    <root>/<domain>/images/<split>/<Scene>_View<k>/000001.jpg       frames (input)
    <root>/<domain>/labels/<split>/<Scene>.json           {"categories": [...]} (input)
    <root>/<domain>/gt/sorted_gt_<split>_<domain>/<Scene>_<expression>/gt/View<k>.txt
    <root>/<domain>/meta/<split>/<Scene>/...              calibration, per-object GT

``domain`` is ``In-domain`` or ``Cross-domain``; ``split`` is ``train`` or ``test``.

Checks every command runs before any work: an output folder is never inside a dataset's
``gt/`` or ``meta/`` (:func:`require_out_outside_ground_truth`), and a scene whose view
folder is missing is an error unless the user allows it (:func:`require_views`).

Weak supervision: training and pseudo-labelling may read **only** the frames and the
category labels (:meth:`DatasetLayout.weak_inputs`). Everything under ``gt/`` and
``meta/`` is ground truth, for evaluation and the explicitly named fully supervised mode.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DatasetLayout", "DOMAINS", "SPLITS", "expected_views", "missing_views",
           "require_out_outside_ground_truth", "require_views"]

DOMAINS = ("In-domain", "Cross-domain")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class DatasetLayout:
    """Paths of one (domain, split) of a dataset rooted at ``root``."""

    root: Path
    domain: str = "In-domain"
    split: str = "test"

    def __post_init__(self) -> None:
        from raysys.io.storage import path

        object.__setattr__(self, "root", path(self.root))  # a local Path or a storage URI
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
                lay = DatasetLayout(root, d, s)
                if lay.image_root.is_dir() or lay.gt_root.is_dir():
                    out.append(lay)
        return out


def require_out_outside_ground_truth(out: str | os.PathLike, layout: DatasetLayout | None = None,
                                     flag: str = "--out") -> None:
    """Refuse an output folder inside a dataset's ground truth (``<domain>/gt/`` or
    ``<domain>/meta/`` of any dataset, or of ``layout``'s by its resolved path), before
    anything is written. ``raysys label`` and ``raysys track`` share it.

    Raises:
        ValueError: naming the option and the GT folder.
    """
    from raysys.io.storage import path

    p = path(out).resolve()
    roots = {r.resolve() for r in layout.ground_truth_dirs()} if layout is not None else set()
    for a in (p, *_parents(p)):
        if a in roots or (a.name in ("gt", "meta") and a.parent.name in DOMAINS):
            raise ValueError(f"{flag} {out} is inside the dataset's ground truth ({a}): "
                             "outputs never go under a dataset's gt/ or meta/ (the evaluator "
                             f"reads them as GT); pass a {flag} folder outside the dataset")


def _parents(p) -> list:
    """``p.parents`` of a local path or of a storage URI."""
    out = []
    while p.parent != p and p.name:
        p = p.parent
        out.append(p)
    return out


def _dataset_json_views(layout: DatasetLayout) -> dict[str, list[str]]:
    """Views per scene of the split, as the dataset's ``dataset.json`` lists them."""
    f = layout.root / "dataset.json"
    if not f.is_file():
        return {}
    try:
        doc = json.loads(f.read_text())
    except ValueError as e:
        raise ValueError(f"{f}: not valid JSON ({e}); regenerate the dataset (`raysys "
                         "synth`) or remove the file") from None
    scenes = doc.get("scenes") if isinstance(doc, dict) else None
    out: dict[str, list[str]] = {}
    for s in scenes if isinstance(scenes, list) else []:  # entries without views: no say
        if isinstance(s, dict) and isinstance(s.get("views"), list) and (
                s.get("domain"), s.get("split")) == (layout.domain, layout.split):
            out[str(s.get("scene"))] = [str(v) for v in s["views"]]
    return out


def _gt_views(layout: DatasetLayout) -> dict[str, set[str]]:
    """Views per scene named by the GT expression folders (``<expr>/gt/View<k>.txt``): the
    file names are listed, no GT file is opened."""
    out: dict[str, set[str]] = {}
    if not layout.gt_root.is_dir():
        return out
    for e in layout.gt_root.iterdir():
        gt = e / "gt"
        if "_" in e.name and gt.is_dir():
            views = {f.name[:-4] for f in gt.iterdir() if re.fullmatch(r"View\d+\.txt", f.name)}
            out.setdefault(e.name.split("_", 1)[0], set()).update(views)
    return out


def expected_views(layout: DatasetLayout) -> dict[str, list[str]]:
    """Every view each scene of the split should have, from what the dataset itself says:
    its ``dataset.json`` (a generated benchmark), the optional ``"views"`` list of a
    scene's category labels file, the view files of its GT expression folders (a CRTrack
    copy; names only), and ``View1`` .. ``View<k>`` up to the highest view number there
    is (a gap)."""
    from raysys.io.frames import list_image_views

    present = list_image_views(layout.image_root) if layout.image_root.is_dir() else {}
    want: dict[str, set[str]] = {s: set(v) for s, v in present.items()}
    for scene, views in _dataset_json_views(layout).items():
        want.setdefault(scene, set()).update(views)
    for scene, views in _gt_views(layout).items():
        want.setdefault(scene, set()).update(views)
    for scene in list(want):
        f = layout.categories_file(scene)
        try:
            extra = json.loads(f.read_text()).get("views", []) if f.is_file() else []
        except (ValueError, AttributeError):
            extra = []  # a bad labels file is reported where the labels are read
        want[scene].update(v for v in extra if isinstance(v, str))
        nums = [int(v[4:]) for v in want[scene] if re.fullmatch(r"View\d+", v)]
        want[scene].update(f"View{k}" for k in range(1, max(nums, default=0) + 1))
    key = lambda v: (int(v[4:]) if v[4:].isdigit() else 1 << 30, v)  # noqa: E731
    return {s: sorted(v, key=key) for s, v in sorted(want.items())}


def missing_views(layout: DatasetLayout) -> dict[str, list[str]]:
    """Scene -> views that :func:`expected_views` expects and that have no image folder."""
    out = {}
    for scene, views in expected_views(layout).items():
        gone = [v for v in views if not layout.view_dir(scene, v).is_dir()]
        if gone:
            out[scene] = gone
    return out


def require_views(layout: DatasetLayout, allow_missing: bool = False,
                  flag: str = "--allow-missing-views") -> dict[str, list[str]]:
    """A scene with a missing view folder is an error (labelled or tracked with fewer views,
    it would look complete), unless ``allow_missing``.

    Returns:
        the missing views (``{scene: [view, ...]}``; empty when none).

    Raises:
        ValueError: the first scene and view missing, the folder expected, the fix.
    """
    gone = missing_views(layout)
    if gone and not allow_missing:
        scene, views = next(iter(gone.items()))
        n = sum(len(v) for v in gone.values())
        more = f" ({n - 1} more missing view folders)" if n > 1 else ""
        raise ValueError(f"scene {scene}: view {views[0]} is missing (no folder "
                         f"{layout.view_dir(scene, views[0])}){more}; restore it, or pass "
                         f"{flag} to use only the views there are")
    return gone
