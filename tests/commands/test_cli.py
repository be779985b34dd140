"""The command line's conventions: ``python -m raysys``, an example in every ``--help``, one
error handler (one line, exit 2 for the user's errors), ``--log-level``."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from raysys.cli import COMMANDS, main, run_command
from raysys.errors import Failure, UserError


def test_python_m_raysys_help():
    r = subprocess.run([sys.executable, "-m", "raysys", "--help"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "examples:" in r.stdout and "--log-level" in r.stdout
    assert all(name in r.stdout for name in COMMANDS)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_help_shows_an_example(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out.lower() and f"raysys {command}" in out


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"raysys {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_missing_data_folder(tmp_path, capsys):
    rc = main(["label", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "labels")])
    assert rc == 2
    line = _one_line_error(capsys, "label")
    assert "--data" in line and "nope" in line and "raysys synth" in line
    assert not (tmp_path / "labels").exists()  # nothing written


def test_bad_config_field_type_names_the_field(tmp_path, capsys):
    f = tmp_path / "track.json"
    f.write_text('{"clip_frames": "eight"}')
    rc = main(["track", "--model", str(tmp_path), "--data", str(tmp_path), "--out",
               str(tmp_path / "pred"), "--config", str(f)])
    assert rc == 2
    line = _one_line_error(capsys, "track")
    assert "track.json" in line and "TrackConfig.clip_frames: expected int, got 'eight'" in line


def test_unknown_ablation_lists_the_valid_ones(tmp_path, capsys):
    rc = main(["report", "--out", str(tmp_path / "rep"), "--ablations", "use_bar,use_magic"])
    assert rc == 2
    line = _one_line_error(capsys, "report")
    assert "use_magic" in line and "use_vc_cma" in line
    assert not (tmp_path / "rep").exists()


def test_ablation_models_flag(tmp_path, capsys):
    from raysys.commands.report import add_arguments, build_report_config
    from raysys.report.config import PRESETS

    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--out", str(tmp_path / "a"), "--ablation-models", "full"])
    assert build_report_config(args, PRESETS["report"]).ablation_models == ("full",)
    args = p.parse_args(["--out", str(tmp_path / "a"), "--ablation-models", "weak, full"])
    assert build_report_config(args, PRESETS["report"]).ablation_models == ("full", "weak")
    rc = main(["report", "--out", str(tmp_path / "rep"), "--ablation-models", "semi"])
    assert rc == 2
    line = _one_line_error(capsys, "report")
    assert "semi" in line and "full" in line and "weak" in line
    assert not (tmp_path / "rep").exists()


def test_usage_errors_are_one_line_too(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["track", "--data", str(tmp_path), "--out", str(tmp_path)])  # no --model
    assert e.value.code == 2
    line = _one_line_error(capsys, "track")
    assert "--model" in line and "raysys track --help" in line


@pytest.mark.parametrize("argv", [["--log-level", "debug", "params", "--help"],
                                  ["params", "--log-level", "WARNING", "--help"]])
def test_log_level_before_or_after_the_command(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0 and "example" in capsys.readouterr().out


def test_log_level_configures_the_raysys_logger(tmp_path, capsys):
    main(["--log-level", "WARNING", "label", "--data", str(tmp_path / "x"), "--out",
          str(tmp_path / "y")])
    assert logging.getLogger("raysys").level == logging.WARNING
    capsys.readouterr()
    main(["label", "--data", str(tmp_path / "x"), "--out", str(tmp_path / "y")])
    assert logging.getLogger("raysys").level == logging.INFO  # the default


class _RayLikeError(ValueError):
    """What Ray raises for a task's error: a subclass of the cause, with ``cause``."""

    def __init__(self, cause):
        super().__init__("ray::Worker.run() (pid=1)\n  File ...\nValueError: " + str(cause))
        self.cause = cause


@pytest.mark.parametrize("exc, code, text", [
    (UserError("--x 3: must be even; pass --x 4"), 2,
     "p: error: --x 3: must be even; pass --x 4"),
    (FileNotFoundError("no such labels folder"), 2, "p: error: no such labels folder"),
    (_RayLikeError(ValueError("frame 7 of View2 is empty")), 2,
     "p: error: frame 7 of View2 is empty"),
    (Failure("step label failed (exit 1); see logs/label.log"), 1,
     "p: step label failed (exit 1); see logs/label.log"),
    (KeyboardInterrupt(), 130, "p: interrupted"),
])
def test_one_error_handler(exc, code, text, capsys):
    def fail():
        raise exc

    assert run_command("p", fail) == code
    err = capsys.readouterr().err
    assert err.strip() == text


def test_a_bug_still_shows_its_traceback():
    with pytest.raises(ZeroDivisionError):
        run_command("p", lambda: 1 / 0)


def test_job_scripts_share_the_options_and_the_error_handler(tmp_path):
    root = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, str(root / "jobs" / "label.py"), "--data",
                        str(tmp_path / "nope"), "--out", str(tmp_path / "labels")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("jobs/label.py: error: --data "), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([sys.executable, str(root / "jobs" / "main.py"), "--help"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "examples:" in r.stdout and "--weak-model" in r.stdout
