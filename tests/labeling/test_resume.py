"""Content-aware resume of Stage 1 and the checks made before anything is written
(issue #19): a dataset regenerated in place is labelled again, the actor pool never blocks
a resume, a failed run leaves nothing that blocks the next one, labels are checked against
the dataset they are used with."""

from __future__ import annotations

import json
import shutil
import sys

import cloudpickle
import pytest

from raysys.cli import main
from raysys.io.dataset import DatasetLayout
from raysys.io.fingerprint import write_record
from raysys.io.tables import read_table
from raysys.labeling.config import LabelConfig
from raysys.labeling.pipeline import check_labeling_inputs, run_labeling
from raysys.labeling.record import RECORD, check_labels_match, label_record, prepare_out
from raysys.runtime import Resources

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture
def data(tiny_test_split, tmp_path):
    """A copy of the tiny test split (1 scene, 3 views) this test may change."""
    root = tmp_path / "data"
    shutil.copytree(tiny_test_split.root, root)
    return DatasetLayout(root, "In-domain", "test")


def _scene(layout: DatasetLayout) -> str:
    return next(iter(label_record(LabelConfig(), layout)["dataset"]))


def _touch_frame(layout: DatasetLayout, view: str = "View2") -> None:
    """Rewrite one frame in place (what a regenerated dataset does to every frame)."""
    f = sorted(layout.view_dir(_scene(layout), view).iterdir())[2]
    f.write_bytes(f.read_bytes())


def test_resource_settings_are_not_in_the_record(data):
    rec = label_record(LabelConfig(), data)
    assert set(rec) == {"label_config", "data", "domain", "split", "dataset"}
    assert "device" not in rec["label_config"]  # GPUs are a resource: never blocks
    assert label_record(LabelConfig(device="cuda"), data) == rec


@pytest.mark.parametrize("argv, message", [
    (["--tracker", "bogus"], "bogus"),
    (["--out-in-gt"], "inside the dataset's ground truth"),
    (["--no-view3"], "view View3 is missing"),
])
def test_a_failed_validation_leaves_nothing_behind(data, tmp_path, capsys, argv, message):
    out = tmp_path / "labels"
    if argv == ["--out-in-gt"]:
        out, argv = data.gt_root / "labels", []
    if argv == ["--no-view3"]:
        shutil.rmtree(data.view_dir(_scene(data), "View3"))
        argv = []
    rc = main(["label", "--data", str(data.root), "--split", "test", "--out", str(out), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_a_record_left_by_a_failed_run_does_not_block_the_next(data, tmp_path):
    """A run that failed after writing its record (e.g. a ReID backend that could not load
    in an actor) guards no finished work: the next run, with other settings, goes ahead."""
    out = tmp_path / "labels"
    write_record(out / RECORD, label_record(LabelConfig(reid="osnet"), data))
    check_labeling_inputs(data, out, LabelConfig())  # no "other settings" refusal
    assert prepare_out(out, label_record(LabelConfig(), data)) == []
    assert label_record(LabelConfig(), data) == json.loads((out / RECORD).read_text())
    # with finished work, other settings are refused, naming the field
    (out / "units").mkdir()
    (out / "units" / "S__View1__person.parquet").write_bytes(b"done")
    with pytest.raises(ValueError, match=r"other settings \(label_config.reid: was "
                                         r"\"stripes\", now \"osnet\"; .*pass a new --out"):
        check_labeling_inputs(data, out, LabelConfig(reid="osnet"))


def test_labels_are_checked_against_the_dataset_they_are_used_with(data, tmp_path):
    labels = tmp_path / "labels"
    write_record(labels / RECORD, label_record(LabelConfig(), data))
    check_labels_match(labels, data)
    copy = DatasetLayout(tmp_path / "copy", "In-domain", "test")
    shutil.copytree(data.root, copy.root)  # the same frames elsewhere: accepted
    check_labels_match(labels, copy)
    _touch_frame(copy)  # another dataset: refused, naming the labels' own
    with pytest.raises(ValueError, match=f"--data {copy.root} is not the dataset the labels "
                                         f".* were made from .*pass --data {data.root}"):
        check_labels_match(labels, copy)
    with pytest.raises(ValueError, match="not from the In-domain/train split: pass --domain "
                                         "In-domain --split test"):
        check_labels_match(labels, DatasetLayout(data.root, "In-domain", "train"))
    _touch_frame(data)  # the labels' own dataset, regenerated since: the labels are stale
    with pytest.raises(ValueError, match="changed since the labels .* were made .*raysys "
                                         "label"):
        check_labels_match(labels, data)
    # quality refuses to score them against that GT (the check comes before any read)
    from raysys.labeling.quality import quality_report

    with pytest.raises(ValueError, match="changed since"):
        quality_report(labels, data)


def test_quality_command_takes_the_labels_split(data, tmp_path, capsys):
    """`raysys quality` defaults to the labels' own split (it used to default to test
    whatever the labels were made from) and refuses another dataset in one line."""
    labels = tmp_path / "labels"
    write_record(labels / RECORD, label_record(LabelConfig(), data))
    _touch_frame(data)
    rc = main(["quality", "--labels", str(labels), "--data", str(data.root)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "changed since the labels" in err[0], err
    rc = main(["quality", "--labels", str(labels), "--data", str(data.root), "--split",
               "train"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "--split test" in err[0], err
    assert not (labels / "quality.json").exists()


# ----------------------------------------------------------------------------- on Ray


@pytest.fixture
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _bytes(out, names=("tracklets.parquet", "trajectories.parquet", "expressions.parquet",
                       RECORD)):
    return {n: (out / n).read_bytes() for n in names}


@pytest.mark.slow
def test_resume_redoes_a_regenerated_dataset_and_ignores_the_actor_pool(data, local_ray,
                                                                         tmp_path):
    from raysys.synth import SynthConfig, generate

    out = tmp_path / "labels"
    # what a failed run with other settings left: not a reason to refuse this one
    write_record(out / RECORD, label_record(LabelConfig(reid="osnet"), data))
    first = run_labeling(data, out, LabelConfig(), progress=False)
    assert first.summary["units_processed"] == first.summary["units"] == 9
    before = _bytes(out)
    # another actor pool: a resource setting, the resume goes on (nothing left to do)
    again = run_labeling(data, out, LabelConfig(), progress=False,
                         resources=Resources(label_actors=2, label_actor_cpus=0.5))
    assert again.summary["units_processed"] == 0 and again.summary["redone_scenes"] == []
    assert _bytes(out) == before  # byte for byte, the record included
    # the dataset regenerated in place (another seed, same scene names): labelled again
    shutil.rmtree(data.root)
    generate(SynthConfig(seed=6, scenes=1, frames=16, width=320, height=180, people=4,
                         domains=("In-domain",), splits=("test",)), data.root)
    redone = run_labeling(data, out, LabelConfig(), progress=False)
    assert redone.summary["redone_scenes"] == [_scene(data)]
    assert redone.summary["units_processed"] == 9
    assert _bytes(out)[RECORD] != before[RECORD]
    assert _bytes(out)["tracklets.parquet"] != before["tracklets.parquet"]
    assert read_table(out / "trajectories.parquet").num_rows > 0
    check_labels_match(out, data)  # the labels now match the dataset as it is
