"""Parquet pseudo-label tables round-trip exactly."""

import numpy as np

from raysys.io import tables
from raysys.types import CrossViewTrajectory, Expression, MaskRLE, Tracklet


def _tracklet(view, lid, frames, with_masks=True):
    n = len(frames)
    rng = np.random.default_rng(lid)
    masks = tuple(MaskRLE.encode(rng.random((6, 5)) > 0.5) for _ in range(n)) \
        if with_masks else None
    return Tracklet("Plaza1", view, lid, "person", np.array(frames),
                    rng.random((n, 4)) * 50, rng.random(n), masks)


def test_tracklets_round_trip(tmp_path):
    tls = [_tracklet("View1", 1, [1, 2, 5]), _tracklet("View2", 4, [3], with_masks=False)]
    tables.write_table(tables.tracklets_to_table(tls), tmp_path / "t.parquet")
    back = tables.table_to_tracklets(tables.read_table(tmp_path / "t.parquet"))
    assert len(back) == 2
    for a, b in zip(tls, back, strict=True):
        assert (a.view, a.local_id, a.category) == (b.view, b.local_id, b.category)
        np.testing.assert_array_equal(a.frames, b.frames)
        np.testing.assert_array_equal(a.boxes, b.boxes)
        assert a.masks == b.masks


def test_trajectories_and_expressions(tmp_path):
    t1, t2 = _tracklet("View1", 1, [1]), _tracklet("View2", 2, [1])
    tr = CrossViewTrajectory("Plaza1", 9, "person", {"View1": (t1,), "View2": (t2,)})
    tab = tables.trajectories_to_table([tr])
    assert tab.to_pydict()["local_id"] == [1, 2] and tab.num_rows == 2
    ex = [Expression("Plaza1", "A man wearing a red coat, and  gray trousers", (3, 1))]
    tables.write_table(tables.expressions_to_table(ex), tmp_path / "e.parquet")
    assert tables.table_to_expressions(tables.read_table(tmp_path / "e.parquet")) == ex


def test_parquet_and_text_outputs_get_one_file_mode(tmp_path):
    """Both are written through a temporary file (mkstemp: 0600); both end up with the
    mode a plain open() gives (0666 & ~umask), as the text outputs always did."""
    import os
    import stat

    from raysys.io.crtrack import atomic_write_text, new_file_mode

    tables.write_table(tables.expressions_to_table([Expression("S", "a man", (1,))]),
                       tmp_path / "e.parquet")
    atomic_write_text(tmp_path / "e.txt", "x\n")
    modes = {stat.S_IMODE(os.stat(tmp_path / f).st_mode) for f in ("e.parquet", "e.txt")}
    assert modes == {new_file_mode()} and new_file_mode() != 0o600
