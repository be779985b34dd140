"""Tests of the mosaic visualiser (raysys.viz) and ``raysys viz``."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from raysys.cli import main
from raysys.io.crtrack import list_expressions, read_expression_gt, write_expression_pred
from raysys.io.dataset import DatasetLayout
from raysys.synth import SynthConfig, generate
from raysys.viz import draw_mosaic, id_colour, match_rows

CFG = SynthConfig(scenes=1, frames=6, width=160, height=96, people=5, splits=("test",),
                  domains=("In-domain",))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("vizdata") / "ds"
    generate(CFG, root, map_fn=lambda fn, items: [fn(x) for x in items])
    return root


def test_match_rows_greedy_iou():
    # box 0 overlaps ref 0 with IoU 1; box 1 overlaps ref 1 with IoU 50/150 = 1/3 < 0.5
    boxes = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], float)
    ref = np.array([[0, 0, 10, 10], [25, 0, 35, 10]], float)
    mb, mr = match_rows(boxes, ref)
    assert mb.tolist() == [True, False] and mr.tolist() == [True, False]
    mb, mr = match_rows(boxes[:0], ref)
    assert mb.shape == (0,) and not mr.any()


def test_id_colours_differ_for_neighbours():
    cols = [id_colour(g) for g in range(1, 30)]
    assert all(a != b for a, b in zip(cols, cols[1:], strict=False))
    assert id_colour(7) == id_colour(7)


def test_draw_mosaic_grid_size_and_boxes():
    frames = {f"View{k}": np.full((90, 160, 3), 128, np.uint8) for k in (1, 2, 3)}
    rows = {"View1": np.array([[1, 4, 10, 10, 30, 50]], float)}
    m = draw_mosaic(frames, rows, tile_width=160, title="t")
    # 3 views -> 2 x 2 grid of 160 x 90 tiles, plus title bar and legend
    assert m.shape[1] == 320 and m.shape[0] > 180 and m.dtype == np.uint8
    # the id colour appears on the box outline in View1 (tile at the top left)
    assert (m == np.array(id_colour(4), np.uint8)).all(axis=2).sum() > 50
    # an FP against an empty reference is drawn in red
    m2 = draw_mosaic(frames, rows, tile_width=160, ref_rows_by_view={"View1": np.zeros((0, 6))})
    assert (m2 == np.array([255, 40, 40], np.uint8)).all(axis=2).sum() > 50
    assert m2.shape == m.shape


def test_cli_viz_gt_png_and_gif(data, tmp_path):
    out = tmp_path / "v"
    rc = main(["viz", "--data", str(data), "--scene", "PlazaTest01", "--out", str(out),
               "--frames", "2:5", "--every", "2", "--tile-width", "200"])
    assert rc == 0
    pngs = sorted(out.glob("frame_*.png"))
    assert [p.name for p in pngs] == ["frame_000002.png", "frame_000004.png"]
    img = iio.imread(pngs[0])
    assert img.shape[1] == 400 and img.shape[2] == 3      # 2 columns of 200 px
    gif = iio.imread(out / "mosaic.gif", index=None)
    assert gif.shape[0] == 2 and gif.shape[1:3] == img.shape[:2]


def test_cli_viz_expression_with_predictions(data, tmp_path, capsys):
    lay = DatasetLayout(data, "In-domain", "test")
    expr = list_expressions(lay.gt_root)[0]
    gt = read_expression_gt(lay.gt_root, expr.name)
    pred = {}
    for v, rows in gt.items():
        p = rows.copy()
        p[:, 4:6] += p[:, 2:4]                               # xywh -> xyxy
        pred[v] = p
    write_expression_pred(tmp_path / "pred", expr.name, pred)
    out = tmp_path / "e"
    rc = main(["viz", "--data", str(data), "--scene", "PlazaTest01", "--out", str(out),
               "--expression", expr.name, "--pred", str(tmp_path / "pred"), "--no-gif"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["pngs"] == CFG.frames and res["gif"] is None
    assert not (out / "mosaic.gif").exists()


def test_cli_viz_unknown_scene_is_an_error(data, tmp_path, capsys):
    rc = main(["viz", "--data", str(data), "--scene", "Nowhere", "--out", str(tmp_path)])
    assert rc == 2 and "Nowhere" in capsys.readouterr().err
