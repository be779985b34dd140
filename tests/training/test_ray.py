"""Stage 2 on a real local Ray: 2-worker DDP on CPU, checkpoints, a killed worker, reload.

A tiny setting (3 views, T=2, 64 px, a SAM2 base resized to 64 px, 4 clips) so that an
epoch takes seconds. The local Ray runs the weak-supervision guard in every worker: the
clip decoders and the training workers would fail on any GT read.
"""

import json
import os
import sys
import time
from pathlib import Path

import cloudpickle
import pytest
import torch

from raysys import guard
from raysys.config import to_dict
from raysys.io.dataset import DatasetLayout
from raysys.runtime import Resources
from raysys.training.config import StageConfig, quick_config
from raysys.training.model import build_model
from raysys.training.sources import open_source
from raysys.training.trainer import RUN_NAME, run_training
from raysys.viewsam.base import sam2_yaml_text
from raysys.viewsam.checkpoint import (
    load_viewsam_checkpoint,
    model_state,
    read_checkpoint,
    write_checkpoint,
)

# Ray Train runs of a few epochs each: minutes on 2 cores
pytestmark = pytest.mark.slow

ray = pytest.importorskip("ray")
cloudpickle.register_pickle_by_value(sys.modules[__name__])

ALL = ("candidate_generator", "vc_cma", "bar", "cgct", "base")


def tiny_config(epochs: int = 3, **kw):
    return quick_config(**{"clip_frames": 2, "clip_stride": 4, "image_size": 64,
                           "sam2_image_size": 64, "max_objects": 4, "max_samples": 4,
                           "max_failures": 1, "calibration_clips": 4,
                           "stages": (StageConfig("all", ALL, epochs, 1e-3),), **kw})


@pytest.fixture(scope="module")
def local_ray(labeled):
    data, _ = labeled
    forbidden = DatasetLayout(data, "In-domain", "train").ground_truth_dirs()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env=guard.runtime_env(forbidden))
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


def _workers():
    return Resources(workers=2, cpus_per_worker=0.5, loader_cpus=0.25)


def _kill_once(marker: str, log: str):
    def hook(row, rank):
        with open(log, "a") as f:
            f.write(f"{row['epoch']} {rank}\n")
        if rank == 1 and row["epoch"] == 1 and not os.path.exists(marker):
            Path(marker).write_text("killed once")
            time.sleep(5.0)  # let the controller register epoch 1's checkpoint (slow when loaded)
            os._exit(1)

    return hook


def ddp_config():
    """The shared run's config: a dead worker ends the run (no restart inside it)."""
    return tiny_config(3, max_failures=0)


@pytest.fixture(scope="module")
def ddp_run(labeled, local_ray, tmp_path_factory):
    """One 3-epoch, 2-worker run whose second worker dies after epoch 1, which ends the
    run; the job run again resumes from epoch 1's checkpoint, its clip stream planned from
    epoch 2 on: (result, run folder, marker, epoch log). The tests below read it; a run
    per test took minutes on 2 cores. (A restart inside a run, whose workers drop the
    stream's rows of the epochs done: ``tests/cluster/test_multinode.py``.)"""
    _, labels = labeled
    base = tmp_path_factory.mktemp("ddp")
    marker, log = base / "killed.txt", base / "epochs.log"
    hook = _kill_once(str(marker), str(log))
    with pytest.raises(Exception, match="(?i)worker|fail"):
        run_training(open_source("weak", labels), base / "run", ddp_config(), _workers(),
                     after_epoch=hook, progress=False)
    from raysys.training.resume import done_slot

    (base / "done_slot.txt").write_text(str(done_slot(base / "run", ddp_config())))
    res = run_training(open_source("weak", labels), base / "run", ddp_config(), _workers(),
                       after_epoch=hook, progress=False)
    return res, base / "run", marker, log


def test_two_worker_ddp_run_reports_checkpoints_and_learns(labeled, ddp_run):
    _, labels = labeled
    res, out, _, _ = ddp_run
    h = res.history
    assert [r["epoch"] for r in h] == [1, 2, 3] and all(r["stage"] == "all" for r in h)
    assert all(r["steps"] == 4 for r in h), "4 clips over 2 workers, batch 1, every epoch"
    assert {"loss_mask", "loss_cg_heatmap", "loss_bar", "loss_consistency_inter"} <= set(h[0])
    assert h[-1]["loss"] < h[0]["loss"], f"loss did not fall: {[r['loss'] for r in h]}"
    m = json.loads((out / "metrics.json").read_text())
    assert m["history"] == h and m["samples"] == 4
    # the tracker's thresholds come from clips left out of training (max_samples=4)
    from raysys.training.data import ClipSpec, plan_samples

    cfg = tiny_config(3)
    total = len(plan_samples(open_source("weak", labels), ClipSpec.from_config(cfg, 64),
                             None, cfg.seed))
    assert total > 4, "the tiny dataset should have clips beyond the 4 trained on"
    assert m["calibration"]["held_out"] is True
    assert m["calibration"]["level"] == "proposal"  # TrainConfig.calibration_level's default
    assert m["calibration"]["clips"] == min(4, total - 4)  # calibration_clips
    # 4 clips: fewer than two tasks' worth (MIN_PART_CLIPS), scored in the run's one task
    from raysys.training.calibrate import MIN_PART_CLIPS, calibrate_payload

    assert m["calibration"]["parts"] == 1 and 4 < 2 * MIN_PART_CLIPS
    # in two Ray tasks (a part per worker), the thresholds are those of one pass
    payload = read_checkpoint(out / "final")
    held = plan_samples(open_source("weak", labels), ClipSpec.from_config(cfg, 64), None,
                        cfg.seed)[4:]
    two = calibrate_payload(payload, open_source("weak", labels), ClipSpec.from_config(cfg, 64),
                            held, clips=4, held_out=True, parts=2, cpus=0.5, min_part_clips=1)
    assert two["parts"] == 2 and {**two, "parts": 1} == m["calibration"]
    assert (out / "loss_curves.png").stat().st_size > 1000
    ckpts = sorted(p for p in (out / RUN_NAME).glob("checkpoint_*") if p.is_dir())
    assert len(ckpts) == 2, "keep_checkpoints=2 of the 3 epoch checkpoints"
    last = read_checkpoint(ckpts[-1])
    assert last["epoch"] == 3 and "optimizer" in last
    assert not any(k.startswith("text_encoder.") for k in last["model"]), "rebuilt from spec"
    loaded = load_viewsam_checkpoint(res.final)
    assert loaded.epoch == 3 and not loaded.missing_keys and not loaded.unexpected_keys
    assert loaded.model.image_size == 64


def test_each_worker_reads_its_own_samples_in_order(labeled, local_ray):
    """Reproducible runs: worker r reads samples r, r + W, ... of each epoch in order, the
    same count for every worker (a dynamic split would hand clips to whichever worker asks
    first), in one stream for the run whose rows carry their epoch's slot."""
    import numpy as np

    from raysys.training.data import (
        SLOT,
        ClipSpec,
        EpochBatches,
        build_train_datasets,
        load_clip,
        plan_samples,
        shard_name,
    )

    _, labels = labeled
    src = open_source("weak", labels)
    cfg = tiny_config(1)
    spec = ClipSpec.from_config(cfg, 64)
    samples = plan_samples(src, spec, 5, cfg.seed)  # 5 clips over 2 workers: 2 each
    assert len(samples) == 5
    # as the trainer reads them (DataConfig preserve_order); set before the datasets are
    # made, which bind the context they are made in
    ctx = ray.data.DataContext.get_current()
    old, ctx.execution_options.preserve_order = ctx.execution_options.preserve_order, True
    try:
        # two epochs: slot 2 on all five samples, slot 3 on the last four
        ds = build_train_datasets([(2, samples), (3, samples[1:])], src, spec, workers=2)
        seen = []
        for r in range(2):
            rows = list(ds[shard_name(r)].iter_batches(batch_size=1, batch_format="numpy"))
            assert [int(b[SLOT][0]) for b in rows] == [2, 2, 3, 3]
            got = [(str(b["text"][0]), b["frames"][0], b["ids"][0]) for b in rows]
            want = [load_clip(src, s, spec) for s in samples[r::2][:2] + samples[1:][r::2][:2]]
            for (text, frames, ids), w in zip(got, want, strict=True):
                assert text == str(w["text"]) and np.array_equal(frames, w["frames"])
                assert np.array_equal(ids, w["ids"])
            seen += [(text, frames.tobytes(), ids.tobytes()) for text, frames, ids in got[:2]]
        # four different samples (two expressions may share a clip's frames)
        assert len(set(seen)) == 4
        stream = EpochBatches(ds[shard_name(1)], batch_size=2)
        assert [len(b["frames"]) for b in stream.epoch(3)] == [2], "slot 2 dropped"
    finally:
        ctx.execution_options.preserve_order = old


def test_each_stage_trains_on_its_own_labels(labeled, local_ray, tmp_path):
    """§4.1: the quick schedule's stages read their own datasets (CG: single-view clips,
    VC-CMA + BAR: ID-agnostic cross-view, CGCT: refer-agnostic cross-view), and the
    ID-agnostic stage computes no identity loss."""
    import dataclasses

    from raysys.training.data import ClipSpec, plan_samples
    from raysys.training.labels import relabel

    _, labels = labeled
    stages = tuple(dataclasses.replace(s, epochs=1, lr=1e-3) for s in quick_config().stages)
    cfg = quick_config(clip_frames=2, clip_stride=4, image_size=64, sam2_image_size=64,
                       max_objects=4, max_samples=4, max_failures=1, calibration_clips=4,
                       stages=stages)
    src = open_source("weak", labels)
    res = run_training(src, tmp_path / "run", cfg, _workers(), progress=False)
    per = json.loads((tmp_path / "run" / "metrics.json").read_text())["samples_per_labels"]
    assert list(per) == [s.labels for s in stages]
    spec = ClipSpec.from_config(cfg, 64)
    samples = plan_samples(src, spec, None, cfg.seed)[:4]
    for kind, n in per.items():
        assert n == len(relabel(samples, kind, src, spec, cfg.seed))
    assert per["id_agnostic_single_view"] > 4, "3 views: more single-view clips than clips"
    rows = {r["stage"]: r for r in res.history}
    assert {k: r["steps"] for k, r in rows.items()} == {
        s.name: per[s.labels] // 2 * 2 for s in stages}, "each stage read its own dataset"
    assert "loss_consistency_inter" not in rows["vc_cma_bar"], "ID-agnostic: no id loss"
    assert "loss_consistency_inter" in rows["cgct"]


def test_an_ablation_skips_a_stage_with_nothing_to_train(labeled, local_ray, tmp_path):
    """The quick schedule trains the Candidate Generator alone, then VC-CMA + BAR, then
    CGCT alone. Without the Candidate Generator (the report's ``use_candidate_generator``
    ablation) its stage has no module; without the consistency loss
    (``use_consistency_loss``) no loss reaches CGCT. Such a stage is skipped and the run
    goes on. Both switches in one run (a run is minutes of this suite): the first stage is
    skipped for want of a module, the last for want of a loss, the middle one trains."""
    _, labels = labeled
    switches = ("use_candidate_generator", "use_consistency_loss")
    cfg = quick_config(clip_frames=2, clip_stride=4, image_size=64, sam2_image_size=64,
                       max_objects=4, max_samples=4, max_failures=1, calibration_clips=4,
                       model={s: False for s in switches},
                       stages=(StageConfig("cg", ("candidate_generator",), 1, 1e-3),
                               StageConfig("mid", ("vc_cma", "bar"), 1, 1e-3),
                               StageConfig("cgct", ("cgct",), 1, 1e-3)))
    res = run_training(open_source("weak", labels), tmp_path / "run", cfg, _workers(),
                       progress=False)
    assert [r["stage"] for r in res.history] == ["mid"]
    model = load_viewsam_checkpoint(res.final).model
    assert all(getattr(model.cfg, s) is False for s in switches)


def test_killed_worker_resumes_from_the_last_checkpoint(ddp_run):
    res, _, marker, log = ddp_run
    assert marker.exists(), "the worker was never killed: the test proves nothing"
    assert [r["epoch"] for r in res.history] == [1, 2, 3]
    seen = log.read_text().split("\n")
    # epoch 1 ran once (before the failure); the job run again went on with epochs 2, 3
    for e in (1, 2, 3):
        assert seen.count(f"{e} 0") == 1 and seen.count(f"{e} 1") == 1, seen
    assert read_checkpoint(res.final)["history"][0] == res.history[0]
    assert (marker.parent / "done_slot.txt").read_text() == "1", \
        "the job run again planned its clip stream from epoch 2"


def test_other_labels_into_the_same_out_are_refused(labeled, ddp_run, tmp_path):
    """Content-aware resume (issue #19): other labels into the same --out are refused
    before any work (they used to resume the old weights, re-calibrate them on the new
    labels and print the old loss table); the worker count is a resource setting."""
    import shutil

    from raysys.io.tables import read_table, write_table
    from raysys.training.resume import RECORD

    _, labels = labeled
    first, out, _, _ = ddp_run
    # one worker instead of two: a resource setting, the run resumes (nothing to do)
    one = Resources(workers=1, cpus_per_worker=0.5, loader_cpus=0.25)
    again = run_training(open_source("weak", labels), out, ddp_config(), one,
                         progress=False)
    assert again.history == first.history
    # other labels of the same dataset (one expression fewer): refused before any work
    other = tmp_path / "labels2"
    shutil.copytree(labels, other)
    ex = read_table(other / "expressions.parquet")
    write_table(ex.slice(0, ex.num_rows - 1), other / "expressions.parquet")
    record = (out / RECORD).read_bytes()
    with pytest.raises(ValueError, match="holds a training run on other labels"):
        run_training(open_source("weak", other), out, ddp_config(), _workers(),
                     progress=False)
    assert (out / RECORD).read_bytes() == record


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_config(1)
    yaml = sam2_yaml_text(None, 64)
    model = build_model(cfg, yaml)
    with torch.no_grad():  # move every trainable weight away from its init
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    write_checkpoint(tmp_path / "ck", {"model": model_state(model), "config": to_dict(cfg),
                                       "build_spec": model.build_spec, "epoch": 7})
    loaded = load_viewsam_checkpoint(tmp_path / "ck")
    # written without ``model_config`` (the older format): rebuilt from the training config
    assert loaded.epoch == 7 and loaded.config == to_dict(cfg)
    assert loaded.model.cfg == cfg.model_config
    assert not loaded.missing_keys and not loaded.unexpected_keys
    g = torch.Generator().manual_seed(3)
    frames = torch.rand(1, 2, 2, 3, 64, 64, generator=g)
    text = model.tokenize(["a man in a red coat"])
    model.eval()
    with torch.no_grad():
        a, b = model.encode_clip(frames, text), loaded.model.encode_clip(frames, text)
    assert torch.equal(a.enc["fpn"][-1], b.enc["fpn"][-1])
    assert torch.equal(a.cand.refer_logits, b.cand.refer_logits)
    # a damaged checkpoint is reported, not silently accepted
    payload = read_checkpoint(tmp_path / "ck")
    payload["model"].pop(next(iter(payload["model"])))
    payload["model"]["extra.weight"] = torch.zeros(1)
    write_checkpoint(tmp_path / "bad", payload)
    bad = load_viewsam_checkpoint(tmp_path / "bad", allow_partial=True)
    assert len(bad.missing_keys) == 1 and bad.unexpected_keys == ["extra.weight"]
    with pytest.raises(ValueError, match="1 missing .* 1 unexpected"):
        load_viewsam_checkpoint(tmp_path / "bad")  # strict by default
