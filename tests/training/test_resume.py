"""Content-aware resume of `raysys train` and its cross-checks (issue #19): other labels
into the same --out are refused (they used to resume the old weights, re-calibrate them
on the new labels and print the old loss table); the workers never block a resume; labels
are refused with a --data they were not made from."""

from __future__ import annotations

import json
import shutil

import pytest

from raysys.cli import main
from raysys.io.dataset import DatasetLayout
from raysys.io.fingerprint import write_record
from raysys.labeling.config import LabelConfig
from raysys.labeling.record import RECORD as LABEL_RECORD
from raysys.labeling.record import label_record
from raysys.training.config import quick_config
from raysys.training.resume import RECORD, check_run_folder, train_record
from raysys.training.sources import PseudoLabelSource, open_source


@pytest.fixture
def made(tiny_test_split, tmp_path):
    """(dataset copy, labels folder made from it): the record and stand-in label tables."""
    data = DatasetLayout(tmp_path / "data", "In-domain", "test")
    shutil.copytree(tiny_test_split.root, data.root)
    labels = tmp_path / "labels"
    write_record(labels / LABEL_RECORD, label_record(LabelConfig(), data))
    for name in ("tracklets", "trajectories", "expressions"):
        (labels / f"{name}.parquet").write_bytes(name.encode())
    return data, labels


def _other_dataset(data: DatasetLayout, root) -> DatasetLayout:
    """A copy of ``data`` with one frame rewritten: another dataset."""
    shutil.copytree(data.root, root)
    f = next(root.rglob("*_View1/000002.jpg"))
    f.write_bytes(f.read_bytes())
    return DatasetLayout(root, data.domain, data.split)


def test_labels_with_another_data_are_refused_before_anything(made, tmp_path, capsys):
    data, labels = made
    open_source("weak", labels)  # their own dataset, as it is
    other = _other_dataset(data, tmp_path / "other")
    with pytest.raises(ValueError, match=f"--data {other.root} is not the dataset the labels"):
        open_source("weak", labels, data=other.root)
    run = tmp_path / "run"
    rc = main(["train", "--labels", str(labels), "--data", str(other.root), "--out", str(run),
               "--quick"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "is not the dataset the labels" in err[0], err
    assert not run.exists()


def test_a_run_folder_refuses_other_labels_and_not_other_workers(made, tmp_path):
    data, labels = made
    cfg = quick_config()
    mine = train_record(cfg, PseudoLabelSource(labels, data))
    assert "workers" not in json.dumps(mine)  # resources are not recorded
    run = tmp_path / "run"
    check_run_folder(run, mine, write=True)
    (run / "ray_train" / "checkpoint_000000").mkdir(parents=True)  # an epoch is done
    other = tmp_path / "labels2"
    shutil.copytree(labels, other)
    (other / "expressions.parquet").write_bytes(b"other expressions")
    theirs = train_record(cfg, PseudoLabelSource(other, data))
    with pytest.raises(ValueError, match=f"{run} holds a training run on other labels .*"
                                         "labels.expressions.parquet.*pass a new --out"):
        check_run_folder(run, theirs, write=False)
    # the record of an older raysys held the worker count: it does not count any more
    (run / RECORD).write_text(json.dumps({**mine, "workers": 2}))
    check_run_folder(run, mine, write=False)
    # a record that guards no checkpoint (a run that failed early) is replaced
    shutil.rmtree(run / "ray_train")
    check_run_folder(run, theirs, write=True)
    assert json.loads((run / RECORD).read_text())["inputs"] == theirs["inputs"]


# The on-Ray case (other labels into a trained run's --out) is
# tests/training/test_ray.py::test_other_labels_into_the_same_out_are_refused: it reuses
# that module's run.
