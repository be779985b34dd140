"""Safe loading (issue #19, item 1): checkpoints and SAM2 YAMLs never run code, weights load
strictly, and old checkpoints convert.

(a) a ``model.pt`` whose pickle calls ``os.system("touch MARKER")``, handed to every door:
nothing runs, exit 2, one line; (b) a SAM2 YAML whose ``_target_`` is not a SAM2 class,
given or embedded in a checkpoint: refused naming the ``_target_``, nothing copied;
(c) strict loading and ``--allow-partial``; (d) a round trip; (e) the converter. The model
is the real ViewSAM (embedded tiny SAM2 at 64 px, MiniLM) with random weights.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from raysys.cli import main
from raysys.config import to_dict
from raysys.errors import UserError
from raysys.training.config import StageConfig, quick_config
from raysys.training.model import build_model
from raysys.viewsam.base import sam2_yaml_text
from raysys.viewsam.checkpoint import (
    checkpoint_digest,
    load_viewsam_checkpoint,
    model_state,
    read_checkpoint,
    write_checkpoint,
)
from raysys.viewsam.safe_load import read_sam2_file
from raysys.viewsam.sam2_yaml import SAM2_TARGETS, read_sam2_yaml


def _cfg():
    return quick_config(clip_frames=2, image_size=64, sam2_image_size=64, max_objects=4,
                        max_samples=4, stages=(StageConfig("all", ("cgct",), 1, 1e-3),))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model(_cfg(), sam2_yaml_text(None, 64)).eval()
    with torch.no_grad():  # move every trainable weight away from its init (the frozen
        for p in m.parameters():  # text encoder is rebuilt from its package, not saved)
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    return m


def _payload(model, **extra) -> dict:
    return {"model": model_state(model), "config": to_dict(_cfg()),
            "model_config": to_dict(_cfg().model_config), "build_spec": model.build_spec,
            "epoch": 2, "history": [{"epoch": 1, "loss": 0.5}], **extra}


@pytest.fixture(scope="module")
def ck(model, tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("ck") / "final",
                            _payload(model, calibration={"refer_threshold": 0.5}))


class _Touch:
    """Pickles to ``os.system("touch <marker>")``: what a hostile checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def _evil(folder: Path, marker: Path, model=None) -> Path:
    """An old-format checkpoint folder whose ``model.pt`` runs ``touch marker`` when
    unpickled."""
    folder.mkdir(parents=True, exist_ok=True)
    sd = model_state(model) if model is not None else {"w": torch.zeros(2)}
    torch.save({"model": sd, "build_spec": {"sam2_yaml": "model: {}\n"}, "config": {},
                "epoch": _Touch(marker)}, folder / "model.pt")
    return folder


def _one_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"raysys {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


# ----------------------------------------------------------------------------- (a) pickles


def test_the_hostile_pickle_is_live(tmp_path):
    """Without the safe reader the payload runs: the tests below prove something."""
    marker = tmp_path / "ran"
    f = _evil(tmp_path / "old", marker) / "model.pt"
    code = f"import torch; torch.load({str(f)!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert marker.exists()


@pytest.mark.parametrize("as_file", [False, True], ids=["folder", "model.pt"])
def test_hostile_pickle_runs_nowhere(tiny_test_split, tmp_path, capsys, as_file):
    marker = tmp_path / "MARKER"
    old = _evil(tmp_path / "old", marker)
    model = old / "model.pt" if as_file else old
    data, out = str(tiny_test_split.root), str(tmp_path / "out")
    doors = [("track", ["--model", str(model), "--data", data, "--out", out]),
             ("baseline", ["sam2", "--model", str(model), "--data", data, "--out", out]),
             ("report", ["--out", str(tmp_path / "rep"), "--weak-model", str(model)]),
             ("convert-checkpoint", [str(model), "--out", str(tmp_path / "new")])]
    for command, argv in doors:
        assert main([command, *argv]) == 2, command
        line = _one_line(capsys, command)
        if as_file:  # the file is opened, with a weights-only load only
            assert "posix.system" in line or "os.system" in line, line
            assert "cannot be loaded safely" in line
        else:  # the folder is named old-format, its file never opened
            want = "--trust" if command == "convert-checkpoint" else "raysys convert-checkpoint"
            assert want in line, line
        assert not marker.exists(), f"{command} ran the pickle"
    assert not (tmp_path / "new" / "checkpoint.json").exists()
    assert not (tmp_path / "out").exists() and not (tmp_path / "rep").exists()


def test_hostile_sam2_file_runs_nowhere(tmp_path, capsys):
    from raysys.training.pretrain_sam2 import load_base

    marker = tmp_path / "MARKER"
    f = tmp_path / "sam2.pt"
    torch.save({"model": {"w": torch.zeros(1)}, "yaml": _Touch(marker)}, f)
    for call in (lambda: read_sam2_file(f), lambda: load_base(f)):
        with pytest.raises(UserError, match="cannot be loaded safely"):
            call()
    assert main(["train", "--labels", str(tmp_path), "--out", str(tmp_path / "run"),
                 "--sam2-checkpoint", str(f)]) == 2
    assert "posix.system" in _one_line(capsys, "train")
    assert not marker.exists()


def test_converter_trusts_a_full_unpickle_only_when_asked(model, tmp_path, capsys):
    """A payload a weights-only load refuses (a ``pathlib`` object) converts with --trust."""
    old = tmp_path / "old"
    old.mkdir()
    payload = _payload(model)
    payload["build_spec"] = {**payload["build_spec"], "sam2_config": Path("x.yaml")}
    torch.save(payload, old / "model.pt")
    assert main(["convert-checkpoint", str(old), "--out", str(tmp_path / "a")]) == 2
    line = _one_line(capsys, "convert-checkpoint")
    assert "PosixPath" in line and "--trust" in line
    assert main(["convert-checkpoint", str(old), "--out", str(tmp_path / "b"), "--trust"]) == 0
    back = read_checkpoint(tmp_path / "b")
    assert back["build_spec"]["sam2_config"] == "x.yaml"


# ----------------------------------------------------------------------------- (b) YAMLs


def _yaml(kind: str, tmp: Path) -> str:
    src, dst = tmp / "src.txt", tmp / "copied.txt"
    src.write_text("secret\n")
    ok = "sam2.modeling.sam2_base.SAM2Base"
    return {
        "shutil.copyfile": f"model:\n  _target_: {ok}\n  image_encoder:\n"
                           f"    _target_: shutil.copyfile\n    src: {src}\n    dst: {dst}\n",
        "builtins.exec": f"model:\n  _target_: {ok}\n  image_encoder:\n"
                         f"    _target_: builtins.exec\n"
                         f"    _args_: [\"open('{dst}', 'w').write('x')\"]\n",
        "os.system": f"model:\n  _target_: os.system\n  command: touch {dst}\n",
        "hydra.utils.get_method": f"model:\n  _target_: {ok}\n  extra:\n"
                                  f"    - a: 1\n    - _target_: hydra.utils.get_method\n"
                                  f"      path: shutil.copyfile\n",
        "_partial_": f"model:\n  _target_: {ok}\n  image_encoder:\n"
                     f"    _target_: sam2.modeling.position_encoding.PositionEmbeddingSine\n"
                     f"    _partial_: true\n    num_pos_feats: 8\n",
    }[kind]


KINDS = ["shutil.copyfile", "builtins.exec", "os.system", "hydra.utils.get_method", "_partial_"]


@pytest.mark.parametrize("kind", KINDS)
def test_hostile_yaml_is_refused_as_a_config(kind, tiny_test_split, tmp_path, capsys):
    f = tmp_path / "evil.yaml"
    f.write_text(_yaml(kind, tmp_path))
    doors = [("params", ["--sam2-config", str(f)]),
             ("baseline", ["sam2", "--sam2-config", str(f), "--data",
                           str(tiny_test_split.root), "--out", str(tmp_path / "out")]),
             ("train", ["--labels", str(tmp_path), "--out", str(tmp_path / "run"),
                        "--sam2-config", str(f)])]
    for command, argv in doors:
        assert main([command, *argv]) == 2, command
        line = _one_line(capsys, command)
        assert kind in line and "evil.yaml" in line, line
    assert not (tmp_path / "copied.txt").exists()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_hostile_yaml_is_refused_in_a_checkpoint(kind, ck, tiny_test_split, tmp_path,
                                                 capsys):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(ck, bad)
    meta = json.loads((bad / "checkpoint.json").read_text())
    meta["build_spec"]["sam2_yaml"] = _yaml(kind, tmp_path)
    (bad / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match=rf"{kind}.*checkpoint\.json|checkpoint\.json.*{kind}"):
        load_viewsam_checkpoint(bad)
    assert main(["track", "--model", str(bad), "--data", str(tiny_test_split.root),
                 "--out", str(tmp_path / "out")]) == 2
    assert kind in _one_line(capsys, "track")
    assert not (tmp_path / "copied.txt").exists()


@pytest.mark.parametrize("name", ["tiny", "configs/sam2.1/sam2.1_hiera_t.yaml",
                                  "configs/sam2.1/sam2.1_hiera_s.yaml",
                                  "configs/sam2.1/sam2.1_hiera_b+.yaml",
                                  "configs/sam2.1/sam2.1_hiera_l.yaml",
                                  "configs/sam2/sam2_hiera_t.yaml",
                                  "configs/sam2/sam2_hiera_l.yaml"])
def test_real_sam2_configs_pass_the_allowlist(name):
    from raysys.viewsam.base import resolve_sam2_config

    cfg = read_sam2_yaml(resolve_sam2_config(name))
    assert cfg.model._target_ in SAM2_TARGETS


# ----------------------------------------------------------------------------- (c) strict


def _damaged(ck: Path, out: Path, how: str) -> tuple[Path, str]:
    payload = read_checkpoint(ck)
    sd = payload["model"]
    key = next(k for k in sd if k.startswith("cgct.") and sd[k].dim() == 2)
    if how == "renamed":
        sd[key.replace("cgct.", "cgct_old.")] = sd.pop(key)
    elif how == "extra":
        sd["extra.weight"] = torch.zeros(3)
        key = "extra.weight"
    else:  # shape
        sd[key] = torch.zeros(sd[key].shape[0] + 1, sd[key].shape[1])
    return write_checkpoint(out, payload), key


@pytest.mark.parametrize("how", ["renamed", "extra", "shape"])
def test_weights_that_do_not_fit_are_one_line(how, ck, tiny_test_split, tmp_path, capsys,
                                              monkeypatch, caplog):
    bad, key = _damaged(ck, tmp_path / "bad", how)
    with pytest.raises(UserError, match="--allow-partial") as e:
        load_viewsam_checkpoint(bad)
    assert key in str(e.value) and "\n" not in str(e.value)
    data, out = str(tiny_test_split.root), str(tmp_path / "out")
    assert main(["track", "--model", str(bad), "--data", data, "--out", out]) == 2
    assert key in _one_line(capsys, "track")
    assert main(["report", "--out", str(tmp_path / "rep"), "--weak-model", str(bad)]) == 2
    line = _one_line(capsys, "report")
    assert "--weak-model" in line and key in line
    # --allow-partial: what fits loads, the rest is logged
    with caplog.at_level("WARNING"):
        loaded = load_viewsam_checkpoint(bad, allow_partial=True)
    assert key in caplog.text
    skipped = loaded.missing_keys + loaded.unexpected_keys + loaded.mismatched_keys
    assert any(s.startswith(key.split(":")[0]) for s in skipped)

    class Reached(Exception):
        pass

    def stop(*a, **k):
        raise Reached

    monkeypatch.setattr("raysys.tracking.job.connect", stop)  # past every check: Ray next
    with pytest.raises(Reached):
        main(["track", "--model", str(bad), "--data", data, "--out", out, "--allow-partial"])


def test_baseline_allow_partial_reaches_the_sam2_loader(ck, tiny_test_split, tmp_path,
                                                        monkeypatch, capsys):
    bad, _ = _damaged(ck, tmp_path / "bad", "extra")
    seen = {}
    monkeypatch.setattr("raysys.baselines.job.baseline_job",
                        lambda method, layout, out, **kw: seen.update(kw) or
                        {"expressions": 0, "seconds": 0.0, "source": "test"})
    argv = ["sam2", "--model", str(bad), "--data", str(tiny_test_split.root), "--out",
            str(tmp_path / "out"), "--quiet"]
    assert main(["baseline", *argv, "--allow-partial"]) == 0
    spec = seen["sam2"]
    assert spec.allow_partial
    assert spec.build().weights.startswith("viewsam:")
    with pytest.raises(UserError, match="extra.weight"):
        spec.__class__(viewsam_checkpoint=str(bad)).build()
    capsys.readouterr()
    assert main(["baseline", "concept", "--data", str(tiny_test_split.root), "--out",
                 str(tmp_path / "o2"), "--allow-partial"]) == 2
    assert "--allow-partial" in _one_line(capsys, "baseline")


def test_wrong_kind_of_checkpoint_says_so(model, ck, tiny_test_split, tmp_path, capsys):
    sam2_pt = tmp_path / "sam2.pt"
    torch.save({"model": model.sam2.state_dict()}, sam2_pt)
    assert main(["track", "--model", str(sam2_pt), "--data", str(tiny_test_split.root),
                 "--out", str(tmp_path / "out")]) == 2
    line = _one_line(capsys, "track")
    assert "SAM2 checkpoint" in line and "--sam2-checkpoint" in line
    assert main(["train", "--labels", str(tmp_path), "--out", str(tmp_path / "run"),
                 "--sam2-checkpoint", str(ck)]) == 2
    line = _one_line(capsys, "train")
    assert "ViewSAM checkpoint" in line and "--model" in line
    with pytest.raises(UserError, match="ViewSAM checkpoint"):
        read_sam2_file(ck / "model.safetensors")


# ----------------------------------------------------------------------------- (d) round trip


def test_round_trip_gives_identical_weights_outputs_and_optimizer(model, ck, tmp_path):
    loaded = load_viewsam_checkpoint(ck)
    assert loaded.epoch == 2 and loaded.history == [{"epoch": 1, "loss": 0.5}]
    assert loaded.model.calibration == {"refer_threshold": 0.5}
    assert not loaded.missing_keys and not loaded.unexpected_keys
    want, got = model_state(model), model_state(loaded.model)
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    frames = torch.rand(1, 2, 2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    text = model.tokenize(["a man in a red coat"])
    with torch.no_grad():
        a, b = model.encode_clip(frames, text), loaded.model.encode_clip(frames, text)
    assert torch.equal(a.cand.refer_logits, b.cand.refer_logits)
    # an epoch checkpoint's optimizer state comes back as torch gave it
    params = [p.detach().clone().requires_grad_() for p in model.cgct.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3)
    sum(p.square().sum() for p in params).backward()
    opt.step()
    back = read_checkpoint(write_checkpoint(tmp_path / "epoch", _payload(
        model, optimizer=opt.state_dict())))["optimizer"]
    sd = opt.state_dict()
    assert back["param_groups"] == sd["param_groups"]
    for i, st in sd["state"].items():
        assert all(torch.equal(v, back["state"][i][k]) for k, v in st.items())
    torch.optim.AdamW(params, lr=1e-3).load_state_dict(back)
    assert sorted(p.name for p in (tmp_path / "epoch").iterdir()) == [
        "checkpoint.json", "model.safetensors", "optimizer.safetensors"]


def test_digest_follows_content_not_place(model, ck, tmp_path):
    import shutil

    shutil.copytree(ck, tmp_path / "copy")
    assert checkpoint_digest(ck) == checkpoint_digest(tmp_path / "copy")
    other = write_checkpoint(tmp_path / "other", _payload(model, epoch=3))
    assert checkpoint_digest(other) != checkpoint_digest(ck)
    # a weights file swapped under its checkpoint.json is caught on read
    f = tmp_path / "copy" / "model.safetensors"
    f.write_bytes((other / "model.safetensors").read_bytes()[:-1] + b" ")
    with pytest.raises(UserError, match="sha256"):
        read_checkpoint(tmp_path / "copy")


def test_a_read_checkpoint_outlives_its_files(ck, tmp_path):
    """The tensors read own their memory: truncating the files after the read (another
    worker downloading the checkpoint again over them) neither changes nor kills anything.
    In a subprocess, because a tensor mapped from a truncated file dies of SIGBUS (CI,
    stop 50: a restarted Ray Train rank)."""
    import shutil

    shutil.copytree(ck, tmp_path / "copy")
    code = (
        "import sys, torch\n"
        "from pathlib import Path\n"
        "from raysys.viewsam.checkpoint import read_checkpoint\n"
        "d = Path(sys.argv[1])\n"
        "sd = read_checkpoint(d)['model']\n"
        "before = sum(float(v.double().sum()) for v in sd.values())\n"
        "for f in d.glob('*.safetensors'):\n"
        "    open(f, 'wb').close()\n"
        "after = sum(float(v.double().sum()) for v in sd.values())\n"
        "assert before == after, (before, after)\n"
        "print('intact', len(sd))\n")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "copy")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "intact" in r.stdout, (r.returncode, r.stderr[-2000:])


def test_a_ray_checkpoint_is_read_from_a_private_copy(ck, tmp_path):
    """A checkpoint in remote storage: Ray's ``as_directory`` folder is one per node, shared
    by its workers. Reading it for training leaves another worker's copy alone (the old
    ``as_directory`` read downloaded it again over the files that worker was reading)."""
    import shutil

    import pyarrow.fs
    from ray.train import Checkpoint

    from raysys.training.trainer import read_ray_checkpoint

    shutil.copytree(ck, tmp_path / "store" / "ck")
    remote = Checkpoint("ck", filesystem=pyarrow.fs.SubTreeFileSystem(
        str(tmp_path / "store"), pyarrow.fs.LocalFileSystem()))
    with remote.as_directory() as shared:  # another rank on the node is reading it
        f = Path(shared) / "model.safetensors"
        seen = (f.stat().st_ino, f.stat().st_mtime_ns, f.stat().st_size)
        payload = read_ray_checkpoint(remote)
        assert (f.stat().st_ino, f.stat().st_mtime_ns, f.stat().st_size) == seen
    want = read_checkpoint(ck)["model"]
    assert want.keys() == payload["model"].keys()
    assert all(torch.equal(want[k], payload["model"][k]) for k in want)


# ----------------------------------------------------------------------------- (e) converter


def test_converter_turns_an_old_checkpoint_into_one_that_loads(model, tmp_path, capsys):
    old = tmp_path / "old"
    old.mkdir()
    opt = torch.optim.AdamW(list(model.cgct.parameters()), lr=1e-3)
    payload = _payload(model, optimizer=opt.state_dict(), stage=0, stage_epoch=2)
    torch.save(payload, old / "model.pt")  # the old writer: torch.save + config.json
    (old / "config.json").write_text(json.dumps({"epoch": 2}))
    with pytest.raises(UserError, match=r"old format.*raysys convert-checkpoint"):
        load_viewsam_checkpoint(old)
    assert main(["convert-checkpoint", str(old), "--out", str(tmp_path / "new")]) == 0
    assert "it loads" in capsys.readouterr().out
    loaded = load_viewsam_checkpoint(tmp_path / "new")
    want, got = payload["model"], model_state(loaded.model)
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    assert read_checkpoint(tmp_path / "new")["optimizer"]["param_groups"] == \
        opt.state_dict()["param_groups"]
    assert main(["convert-checkpoint", str(old / "model.pt"), "--out",
                 str(tmp_path / "new")]) == 2  # never over a checkpoint
    assert "already holds" in _one_line(capsys, "convert-checkpoint")
