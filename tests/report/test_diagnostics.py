"""The report's diagnostics section (raysys.report.diagnostics, oracle, diagnostics_table)
and the labelled ablation tables (fully supervised as the paper, and weak)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from raysys.report.config import ABLATIONS, ReportConfig
from raysys.report.diagnostics import DiagnosticsConfig, auc
from raysys.report.diagnostics_table import diagnostics_markdown, slim_diagnostics
from raysys.report.runner import StepRunner
from raysys.report.tables import METHOD_NAMES


def diag(mem=0.41, box=0.62, rec=0.065, auc_gt=0.64, margin=0.12, gt_all=12.12, ref=23.3):
    """One model's run_diagnostics output, its shape as the module writes it."""
    return {"split": "In-domain/test", "config": {"clips": 12, "base_frames": 8},
            "seconds": {"base": 1.0},
            "base": {"clips": 32, "objects": 90, "memory_iou": mem, "box_iou": box,
                     "memory_object_frames": 600, "memory_iou_per_frame": [None, 0.5]},
            "candidates": {"objects": 400, "recall_iou50": rec, "recall_iou30": 0.18,
                           "refer_auc_gt_boxes": auc_gt, "refer_auc": 0.67},
            "cgct": {"margin": margin, "same_id": 0.9, "different_id": 0.78,
                     "pairs": {"same": 10, "different": 90}, "within_view_margin": 0.2},
            "identity": {"gt_all": {"CVR-IDF1": gt_all, "CVR-MA": 0.0},
                         "true_ids": {"CVR-IDF1": ref, "CVR-MA": 4.85}, "gap": ref - gt_all,
                         "units": 4, "category": "person", "max_tracks": 20}}


def test_auc_by_hand():
    # pairs (pos > neg): 0.9 > 0.5, 0.9 > 0.1, 0.4 < 0.5, 0.4 > 0.1 -> 3 of 4
    assert auc([0.9, 0.4], [0.5, 0.1]) == pytest.approx(0.75)
    # a tie counts half: (0.5 vs 0.5) 0.5, (0.5 vs 0.2) 1 -> 1.5 / 2
    assert auc([0.5], [0.5, 0.2]) == pytest.approx(0.75)
    assert auc([], [0.1]) is None and auc([0.1], []) is None


def test_diagnostics_config_rejects_bad_sizes():
    with pytest.raises(ValueError, match="base_frames"):
        DiagnosticsConfig(base_frames=1)
    with pytest.raises(ValueError, match="units"):
        DiagnosticsConfig(units=-1)


def test_diagnostics_table_slim_and_markdown():
    slim = slim_diagnostics({"viewsam_weak": diag(), "viewsam_full": diag(
        mem=0.4, rec=0.055, auc_gt=0.62, margin=0.3, gt_all=15.0)})
    assert list(slim) == ["viewsam_weak", "viewsam_full"]
    assert "memory_iou_per_frame" not in slim["viewsam_weak"]["base"]  # kept in the JSON file
    assert slim["viewsam_full"]["cgct"]["margin"] == 0.3
    md = "\n".join(diagnostics_markdown(slim, METHOD_NAMES))
    assert "## Diagnostics (In-domain test)" in md
    assert "| figure | ViewSAM, weak (ours) | ViewSAM, fully supervised |" in md
    assert "| base: memory-only mask IoU (GT box on frame 1, memory carries the next 7) | " \
           "0.410 | 0.400 |" in md
    assert "the zero-shot rows' concept tracker) | 6.5% | 5.5% |" in md
    assert "its text filter on its trajectories) | 0.670 | 0.670 |" in md
    assert "referring AUC on GT boxes (0.5 = chance) | 0.640 | 0.620 |" in md
    assert "0.248 → 0.422) | 0.120 | 0.300 |" in md
    assert "(gt_all): CVR-IDF1 / CVR-MA | 12.12 / 0.00 | 15.00 / 0.00 |" in md
    assert "true id: CVR-IDF1 / CVR-MA | 23.30 / 4.85 | 23.30 / 4.85 |" in md
    # a model whose diagnostics failed has no column; none at all: "not run"
    one = diagnostics_markdown(slim_diagnostics({"viewsam_full": diag()}), METHOD_NAMES)
    assert "| figure | ViewSAM, fully supervised |" in "\n".join(one)
    assert "_not run_" in "\n".join(diagnostics_markdown({}, METHOD_NAMES))
    # units 0: no identity diagnostic, its rows say "-"
    no_id = {k: v for k, v in diag().items() if k != "identity"}
    md = "\n".join(diagnostics_markdown(slim_diagnostics({"viewsam_weak": no_id}), METHOD_NAMES))
    assert "(gt_all): CVR-IDF1 / CVR-MA | - |" in md and "| 0.120 |" in md


def test_ablations_run_on_both_supervisions_labelled(tmp_path, monkeypatch):
    from raysys.report import pipeline

    trained, tracked = [], []

    def train_step(r, cfg, name, *, supervision, data, labels, switch_off=None):
        trained.append((name, supervision, labels, switch_off))
        r.fingerprints[f"train_{name}"] = name
        return tmp_path / name

    def track_step(r, cfg, method, ck, data, domain, up):
        tracked.append((method, ck.name, domain))
        return tmp_path / "pred" / method

    def eval_step(r, method, data, domain, pred):
        return {"All": {"CVR-IDF1": float(len(method)), "CVR-MA": 0.0}, "method": method}

    for name, fn in (("train_step", train_step), ("track_step", track_step),
                     ("eval_step", eval_step)):
        monkeypatch.setattr(pipeline, name, fn)
    cfg = ReportConfig(out=tmp_path, ablations=("use_bar", "use_cgct"))
    labels = tmp_path / "labels"
    res = pipeline._ablations(StepRunner(tmp_path), cfg, tmp_path / "data", labels)
    assert list(res) == ["full", "weak"] and list(res["full"]) == ["use_bar", "use_cgct"]
    assert res["full"]["use_bar"]["method"] == "ablation_full_use_bar"
    assert res["weak"]["use_cgct"]["method"] == "ablation_weak_use_cgct"
    # the full runs read GT (no labels), the weak ones the pseudo labels
    assert ("ablation_full_use_bar", "full", None, "use_bar") in trained
    assert ("ablation_weak_use_bar", "weak", labels, "use_bar") in trained
    assert all(d == "In-domain" for *_, d in tracked) and len(tracked) == 4
    # only the paper's: one supervision
    only = ReportConfig(out=tmp_path, ablations=("use_bar",), ablation_models=("full",))
    assert list(pipeline._ablations(StepRunner(tmp_path), only, tmp_path, labels)) == ["full"]
    with pytest.raises(ValueError, match="ablation_models"):
        ReportConfig(ablation_models=("semi",))
    # the main job runs no ablation: its cost is unchanged
    assert ReportConfig.preset("main-job").ablations == ()


@pytest.fixture(scope="module")
def tiny_model(always_present):
    """An untrained quick ViewSAM at 64 px (SAM2 object-score head forced "present", so
    tracks open and live)."""
    import torch

    from raysys.training.config import quick_config
    from raysys.training.model import build_model
    from raysys.viewsam.base import sam2_yaml_text

    torch.manual_seed(0)
    cfg = quick_config(clip_frames=2, image_size=64, sam2_image_size=64, max_objects=4)
    return always_present(build_model(cfg, sam2_yaml_text(None, 64)).eval())


def _in(x, lo, hi):
    return x is not None and lo <= x <= hi


@pytest.mark.slow
def test_diagnostics_on_tiny_split_in_range_and_rendered(tiny_test_split, tiny_model,
                                                         tmp_path):
    from raysys.report.diagnostics import run_diagnostics
    from raysys.report.pipeline import write_report

    cfg = DiagnosticsConfig(clips=2, clip_frames=2, base_clips=2, base_frames=4, units=1,
                            threads=1)
    res = run_diagnostics(tiny_model, tiny_test_split, cfg)
    b, c, g, i = res["base"], res["candidates"], res["cgct"], res["identity"]
    assert b["clips"] == 2 and b["memory_object_frames"] > 0
    assert _in(b["memory_iou"], 0, 1) and _in(b["box_iou"], 0, 1)
    assert c["objects"] > 0 and _in(c["recall_iou50"], 0, 1)
    assert c["recall_iou30"] >= c["recall_iou50"]  # a looser IoU covers at least as many
    assert c["refer_auc_gt_boxes"] is None or _in(c["refer_auc_gt_boxes"], 0, 1)
    # unit-norm embeddings: cosines in [-1, 1], margins in [-2, 2]
    assert g["pairs"]["same"] > 0 and g["pairs"]["different"] > 0
    assert _in(g["same_id"], -1, 1) and _in(g["different_id"], -1, 1)
    assert g["margin"] == pytest.approx(g["same_id"] - g["different_id"], abs=2e-4)
    assert i["units"] == 1 and i["category"] == "person"
    assert _in(i["gt_all"]["CVR-IDF1"], 0, 100) and _in(i["true_ids"]["CVR-IDF1"], 0.01, 100)
    # the same boxes under the true ids are the best any id assignment can do
    assert i["gt_all"]["CVR-IDF1"] <= i["true_ids"]["CVR-IDF1"] + 1e-6
    json.dumps(res)  # JSON-able, as the step's marker keeps it
    rep = write_report(tmp_path, {}, {}, {}, None, timing={}, config={},
                       diagnostics={"viewsam_weak": res})
    assert rep["diagnostics"]["viewsam_weak"]["cgct"]["margin"] == g["margin"]
    md = (tmp_path / "report.md").read_text()
    assert "## Diagnostics (In-domain test)" in md
    assert f"| {g['margin']:.3f} |" in md


def test_referred_bucket_by_hand():
    from raysys.report.oracle import referred_bucket

    box = np.array([10.0, 10, 20, 30])
    near, far = [11.0, 10, 21, 30], [50.0, 50, 60, 70]  # IoU 0.82 / 0 with the box
    th = (0.6, 0.4)  # refer, objectness
    none = (np.zeros((0, 4)), np.zeros(0), np.zeros(0))
    assert referred_bucket(box, np.array([near]), none, th) == "output"
    assert referred_bucket(box, np.array([far]), none, th) == "no_proposal"

    def props(refer, obj):  # the far proposal passes both thresholds but is not this box
        return np.array([far, near]), np.array([0.9, refer]), np.array([0.9, obj])

    nothing = np.zeros((0, 4))
    assert referred_bucket(box, nothing, props(0.5, 0.9), th) == "refer_below"
    assert referred_bucket(box, nothing, props(0.5, 0.1), th) == "refer_below"
    assert referred_bucket(box, nothing, props(0.7, 0.3), th) == "objectness_below"
    assert referred_bucket(box, nothing, props(0.6, 0.4), th) == "not_output"
    assert referred_bucket(box, np.array([far]), props(0.6, 0.4), th) == "not_output"


@pytest.mark.slow
def test_track_oracle_breakdown_counts_every_referred_box(tiny_test_split, tiny_model):
    from raysys.io import crtrack
    from raysys.report.oracle import BUCKETS, gt_index, spread_units, track_oracle_modes
    from raysys.tracking.config import TrackConfig
    from raysys.tracking.run import plan_track_units

    layout = tiny_test_split
    units = spread_units(plan_track_units(layout), 1)
    gts = {u.scene: gt_index(layout, u.scene, u.views) for u in units}
    res = track_oracle_modes(tiny_model, layout, units, ["model", "gt_referred"],
                             TrackConfig(clip_frames=2), gts, breakdown=True)
    total = sum(len(rows) for u in units
                for rows in crtrack.read_expression_gt(layout.gt_root, u.name).values())
    assert total > 0
    for mode in ("model", "gt_referred"):
        counts = res[mode]["referred_boxes"]
        assert list(counts) == list(BUCKETS) and sum(counts.values()) == total
    # GT boxes as proposals, referring and objectness 1: every referred box has a proposal
    # that passes both thresholds, so it is output or held back by the tracker itself
    g = res["gt_referred"]["referred_boxes"]
    assert g["no_proposal"] == g["refer_below"] == g["objectness_below"] == 0
    assert g["output"] > 0


def test_diagnostics_step_runs_the_job_in_its_own_process_and_caches(tmp_path, monkeypatch):
    from raysys.report import steps
    from raysys.report.diagnostics import diagnostics_job

    calls = []

    def fake_isolated(self, name, fn, ck, layout, out, cfg, allow_partial, base_cache):
        calls.append((name, fn, layout, cfg, base_cache))
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(diag()))

    monkeypatch.setattr(StepRunner, "isolated", fake_isolated)
    ck = tmp_path / "weak" / "final"
    ck.mkdir(parents=True)
    (ck / "model.safetensors").write_bytes(b"x")
    cfg = ReportConfig(out=tmp_path, ablations=ABLATIONS)
    r = StepRunner(tmp_path)
    got = steps.diagnostics_step(r, cfg, "viewsam_weak", ck, tmp_path / "data", "up")
    assert got["cgct"]["margin"] == 0.12
    (name, fn, layout, dcfg, cache), = calls
    assert name == "diagnostics_viewsam_weak" and fn is diagnostics_job
    assert cache == tmp_path / "diagnostics" / "cache"  # shared by the models on one base
    assert (layout.domain, layout.split) == ("In-domain", "test")
    assert dcfg == cfg.diagnostics_config
    steps.diagnostics_step(StepRunner(tmp_path), cfg, "viewsam_weak", ck, tmp_path / "data",
                           "up")
    assert len(calls) == 1  # done: skipped on a re-run


def test_models_on_one_base_share_its_scores_and_another_base_measures_its_own(
        tiny_model, tiny_test_split, tmp_path, monkeypatch):
    import torch

    from raysys.report import diagnostics as D

    measured = []

    def fake_base_scores(model, layout, cfg):
        measured.append(float(next(model.sam2.parameters()).detach().sum()))
        return {"memory_iou": 0.25, "box_iou": 0.5, "n": len(measured)}

    monkeypatch.setattr(D, "base_scores", fake_base_scores)
    cfg = DiagnosticsConfig(base_clips=2)
    first = D._cached_base(tiny_model, tiny_test_split, cfg, tmp_path)
    again = D._cached_base(tiny_model, tiny_test_split, cfg, tmp_path)
    assert len(measured) == 1 and "cached" not in first
    assert again == {**first, "cached": True}
    # other base sizes, or other base weights: measured again, under another file
    D._cached_base(tiny_model, tiny_test_split, DiagnosticsConfig(base_clips=3), tmp_path)
    w = next(tiny_model.sam2.parameters())
    with torch.no_grad():
        w.add_(1e-3)
    try:
        other = D._cached_base(tiny_model, tiny_test_split, cfg, tmp_path)
    finally:
        with torch.no_grad():
            w.sub_(1e-3)  # the module's model, as the other tests expect it
    assert len(measured) == 3 and "cached" not in other
    assert len(list(tmp_path.glob("base_*.json"))) == 3
    assert D._cached_base(tiny_model, tiny_test_split, cfg, None)["n"] == 4  # no cache


def test_report_config_file_sets_diagnostics_and_ablation_models(tmp_path):
    import argparse

    from raysys.commands import report

    f = tmp_path / "report.yaml"
    f.write_text("diagnostics: false\ndiagnostics_config: {units: 2, clips: 3}\n"
                 "ablation_models: [full]\n")
    p = argparse.ArgumentParser()
    report.add_arguments(p)
    args = p.parse_args(["--out", str(tmp_path / "rep"), "--config", str(f)])
    cfg = report.build_report_config(args, ReportConfig.preset(args.preset))
    assert cfg.diagnostics is False and cfg.ablation_models == ("full",)
    assert cfg.diagnostics_config == DiagnosticsConfig(units=2, clips=3)
    # the defaults: diagnostics on, both supervisions, full first
    assert ReportConfig().diagnostics and ReportConfig().ablation_models == ("full", "weak")
