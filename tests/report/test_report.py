"""``raysys report``: tables, report.json shape, target checks, charts, resumable steps,
input errors. No model runs here (the pipeline itself is exercised by the main job)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from raysys.report.config import ABLATIONS, ReportConfig, parse_ablations
from raysys.report.runner import StepError, StepRunner
from raysys.report.tables import check_targets, render_markdown
from raysys.synth import SynthConfig


def ev(idf1: float, ma: float, scenes: dict | None = None) -> dict:
    """An evaluation result as raysys.eval's to_json() gives it (expressions left out)."""
    scenes = scenes or {"PlazaTest01": (idf1 + 1, ma + 1), "PlazaTest02": (idf1 - 1, ma - 1)}
    return {"All": {"CVR-IDF1": idf1, "CVR-MA": ma, "n": 20},
            "scenes": {s: {"CVR-IDF1": a, "CVR-MA": b, "n": 10} for s, (a, b) in scenes.items()},
            "expressions": {"ignored": {}}}


QUALITY = {"identity": {st: {"CVR-IDF1": v, "CVR-MA": v / 2, "n": 2}
                        for st, v in (("tracklets", 34.5), ("association", 73.7),
                                      ("reprompt", 73.6))},
           "referring": {"tracklets": {"CVR-IDF1": 16.0, "CVR-MA": 7.2, "n": 20},
                         "association": {"CVR-IDF1": 10.2, "CVR-MA": 3.7, "n": 20},
                         "reprompt": {"CVR-IDF1": 14.3, "CVR-MA": 4.9, "n": 20},
                         "similarity": 0.656},
           "split": "In-domain/train"}


def table1(weak=50.0, full=55.0, concept=30.0, sam2=34.0) -> dict:
    return {"zero_shot_concept": ev(concept, 5.0), "zero_shot_sam2": ev(sam2, 8.0),
            "viewsam_weak": ev(weak, 20.0), "viewsam_full": ev(full, 25.0)}


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize("spec, want", [
    ("all", ABLATIONS), (None, ABLATIONS), ("none", ()), ("", ()),
    ("bar,use_cgct", ("use_bar", "use_cgct")),  # prefix optional, table order kept
    ("use_consistency_loss,vc_cma", ("use_vc_cma", "use_consistency_loss")),
])
def test_parse_ablations(spec, want):
    assert parse_ablations(spec) == want


def test_parse_ablations_unknown_lists_valid():
    with pytest.raises(ValueError, match="use_vc_cma"):
        parse_ablations("use_bar,use_magic")


def test_bad_weak_checkpoint_is_a_clear_error(tmp_path):
    cfg = ReportConfig(out=tmp_path / "rep", weak_model=tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=r"--weak-model .*nope.*checkpoint\.json"):
        cfg.validate_inputs()


def test_report_command_bad_weak_exits_2(tmp_path, capsys):
    from raysys.cli import main

    rc = main(["report", "--out", str(tmp_path / "rep"), "--weak-model",
               str(tmp_path / "missing")])
    assert rc == 2  # before Ray starts or anything runs
    err = capsys.readouterr().err
    assert err.startswith("raysys report: error: --weak-model") and "final/" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "rep").exists()


# ----------------------------------------------------------------------------- targets


def test_targets_all_met():
    abl = {"full": {a: ev(54.0 - i, 15.0) for i, a in enumerate(ABLATIONS)},
           "weak": {a: ev(45.0 - i, 15.0) for i, a in enumerate(ABLATIONS)}}
    t = check_targets(table1(weak=50.0, full=55.0), abl, QUALITY)
    # 1: 50 - max(30, 34) = 16 >= 15; 2: all full ablations < 55, all weak ones < 50;
    # 3: 50 / 55 = 90.9% >= 80%
    assert [x["passed"] for x in t] == [True, True, True]
    assert t[0]["numbers"]["best_baseline"] == "zero_shot_sam2"
    assert t[0]["numbers"]["gap"] == pytest.approx(16.0)
    assert t[2]["numbers"]["ratio"] == pytest.approx(50 / 55)
    assert t[1]["numbers"]["full"]["complete"] == 55.0
    assert t[1]["numbers"]["weak"]["complete"] == 50.0
    assert "full: all 7 below the complete model's 55.00" in t[1]["text"]


def test_ablation_target_checks_each_table_against_its_own_complete_model():
    # full 55: w/o BAR 52 is below it; weak 40: w/o BAR 52 is above it
    abl = {"full": {"use_bar": ev(52.0, 1.0)}, "weak": {"use_bar": ev(52.0, 1.0)}}
    t = check_targets(table1(weak=40.0, full=55.0), abl)[1]
    assert t["passed"] is False
    assert "full: all 1 below the complete model's 55.00" in t["text"]
    assert "weak: missed by 1 of 1: w/o BAR 52.00 >= complete 40.00" in t["text"]
    t = check_targets(table1(weak=40.0, full=55.0), {"full": abl["full"]})[1]
    assert t["passed"] is True and list(t["numbers"]) == ["full"]


def test_targets_missed_say_why():
    abl = {"weak": {"use_bar": ev(52.0, 15.0), "use_cgct": ev(40.0, 15.0)}}
    t = check_targets(table1(weak=40.0, full=60.0), abl, QUALITY)
    # 1: 40 - 34 = 6 < 15, and full clears it (60 - 34 = 26): the pseudo labels limit it
    assert t[0]["passed"] is False
    assert "+6.00" in t[0]["text"] and "pseudo labels limit" in t[0]["text"]
    assert "14.30" in t[0]["text"]  # Stage 1 referring CVR-IDF1 quoted
    # 2: w/o BAR 52 >= 40 misses, w/o CGCT 40 >= 40 misses too (ties do not count as below)
    assert t[1]["passed"] is False and "2 of 2" in t[1]["text"] and "w/o BAR 52.00" in t[1]["text"]
    # 3: 40 / 60 = 66.7%
    assert t[2]["passed"] is False and "66.7%" in t[2]["text"]


def test_targets_full_also_short_blames_model():
    t = check_targets(table1(weak=36.0, full=40.0), {}, QUALITY)
    # 36 - 34 = 2; full 40 - 34 = 6 < 15 as well
    assert t[0]["passed"] is False and "does not clear it either" in t[0]["text"]
    assert t[1]["passed"] is None  # no ablations run: not measured, not met


def test_targets_not_measured_without_rows():
    t = check_targets({}, {}, None)
    assert [x["passed"] for x in t] == [None, None, None]


# ----------------------------------------------------------------------------- report files


def test_write_report_shape_markdown_charts(tmp_path):
    from raysys.report.pipeline import write_report

    abl = {"full": {"use_bar": ev(53.0, 22.0), "use_vcca": ev(56.0, 26.0)},
           "weak": {"use_bar": ev(44.0, 12.0), "use_vcca": ev(47.0, 14.0)}}
    gif = tmp_path / "video" / "mosaic.gif"
    gif.parent.mkdir()
    gif.write_bytes(b"GIF89a")
    rep = write_report(tmp_path, table1(), table1(weak=30.0, full=35.0, concept=20.0,
                                                   sam2=22.0), abl, QUALITY,
                       timing={"synth": 1.5, "total": 9.0},
                       config={"profile": "test", "seed": 0, "scenes": 2, "frames": 60},
                       video={"gif": str(gif), "scene": "PlazaTest01", "text": "a man",
                              "method": "ViewSAM (weak)"},
                       notes=["a note"])
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk == json.loads(json.dumps(rep))
    assert set(on_disk["table1"]) == {"zero_shot_concept", "zero_shot_sam2", "viewsam_weak",
                                      "viewsam_full"}
    assert set(on_disk["cross_domain"]) == set(on_disk["table1"])
    w = on_disk["table1"]["viewsam_weak"]
    assert w["All"] == {"CVR-IDF1": 50.0, "CVR-MA": 20.0, "n": 20}
    assert set(w["scenes"]) == {"PlazaTest01", "PlazaTest02"} and "expressions" not in w
    assert list(on_disk["ablations"]) == ["full", "weak"]  # the paper's first
    assert set(on_disk["ablations"]["weak"]) == {"use_bar", "use_vcca"}
    assert on_disk["ablations"]["weak"]["use_bar"]["All"]["CVR-IDF1"] == 44.0
    assert on_disk["ablations"]["full"]["use_bar"]["All"]["CVR-IDF1"] == 53.0
    assert on_disk["pseudo_labels"]["identity"]["association"]["CVR-IDF1"] == 73.7
    assert on_disk["timing"]["total"] == 9.0 and len(on_disk["targets"]) == 3
    for name in ("table1_in", "table1_cross", "ablations_full", "ablations_weak",
                 "pseudo_labels"):
        png = tmp_path / on_disk["charts"][name]
        assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "report.md").read_text()
    assert "| ViewSAM, weak (ours) | 51.00 / 21.00 | 49.00 / 19.00 | 50.00 | 20.00 |" in md
    assert "| w/o BAR | 44.00 | 12.00 | -6.00 |" in md  # Table 2, delta vs complete (50)
    assert "| w/o VCCA (plain cross attention) | 47.00 | 14.00 | -3.00 |" in md  # Table 3
    # the fully supervised tables, against the full model (55), come first and say so
    full2 = md.index("## Table 2: component ablations (In-domain test, fully supervised, "
                     "as the paper runs its ablations)")
    weak2 = md.index("## Table 2: component ablations (In-domain test, weak)")
    assert full2 < weak2 < md.index("## Table 3: design ablations (In-domain test, weak)")
    assert "| complete model (full) | 55.00 | 25.00 | |" in md
    assert "| w/o BAR | 53.00 | 22.00 | -2.00 |" in md
    assert "| w/o VCCA (plain cross attention) | 56.00 | 26.00 | +1.00 |" in md
    assert "| + association | 73.70 | 36.85 | 10.20 | 3.70 |" in md  # Table 4
    assert "![mosaic](video/mosaic.gif)" in md and "a note" in md
    assert "charts/table1_in_domain.png" in md


def test_markdown_without_ablations_or_cross_domain():
    from raysys.report.tables import assemble_report

    rep = assemble_report(table1(), {}, {}, None, timing={}, config={})
    md = render_markdown(rep)
    assert md.count("_not run in this profile_") == 4  # Tables 2 and 3, full and weak
    assert "not measured" in md


# ----------------------------------------------------------------------------- steps


def test_step_runner_skips_done_and_reruns_on_change(tmp_path):
    calls = []
    owned = tmp_path / "work"

    def work(tag):
        def fn():
            calls.append(tag)
            owned.mkdir(exist_ok=True)
            (owned / f"{tag}.txt").write_text(tag)
            return {"tag": tag}
        return fn

    r = StepRunner(tmp_path)
    assert r.run("s", {"a": 1}, work("one"), outputs=[owned], owned=[owned]) == {"tag": "one"}
    r2 = StepRunner(tmp_path)  # a second run of the report: skipped, result recorded
    assert r2.run("s", {"a": 1}, work("two"), outputs=[owned], owned=[owned]) == {"tag": "one"}
    assert calls == ["one"] and r2.skipped == ["s"] and "s" in r2.timing
    assert r2.fingerprints["s"] == r.fingerprints["s"]
    # changed settings: the owned output is removed before the step runs again
    r3 = StepRunner(tmp_path)
    assert r3.run("s", {"a": 2}, work("three"), outputs=[owned], owned=[owned])["tag"] == "three"
    assert sorted(p.name for p in owned.iterdir()) == ["three.txt"]
    assert r3.fingerprints["s"] != r.fingerprints["s"]
    # an output that went missing: runs again
    (owned / "three.txt").unlink()
    owned.rmdir()
    StepRunner(tmp_path).run("s", {"a": 2}, work("four"), outputs=[owned], owned=[owned])
    assert calls == ["one", "three", "four"]


def test_step_runner_never_deletes_outside_out(tmp_path):
    outside = tmp_path / "user_data"
    outside.mkdir()
    r = StepRunner(tmp_path / "rep")
    r.run("s", {"a": 1}, lambda: 1, owned=[outside])
    r.run("s", {"a": 2}, lambda: 2, owned=[outside])
    assert outside.is_dir()


def test_failed_subprocess_names_its_log(tmp_path, capsys):
    r = StepRunner(tmp_path)
    with pytest.raises(StepError, match=r"step boom failed \(exit 3\).*boom\.log"):
        r.subprocess("boom", [sys.executable, "-c",
                              "import sys; print('half way'); sys.exit(3)"])
    assert "half way" in (tmp_path / "logs" / "boom.log").read_text()
    assert "half way" in capsys.readouterr().out  # streamed to the console


def test_isolated_step_runs_in_a_fresh_process(tmp_path, capsys):
    r = StepRunner(tmp_path)
    assert r.isolated("pid", os.getpid) != os.getpid()  # the function's result comes back
    assert not list((tmp_path / "steps").iterdir())  # its call files are gone
    with pytest.raises(StepError, match=r"step gone failed \(exit 1\): shutil.rmtree; "
                                        r"see .*gone\.log"):
        r.isolated("gone", shutil.rmtree, str(tmp_path / "no_such_folder"))
    assert "FileNotFoundError" in (tmp_path / "logs" / "gone.log").read_text()


def test_baseline_step_runs_the_guarded_job(tmp_path, monkeypatch):
    from raysys.baselines.job import baseline_job
    from raysys.report import steps

    calls = []

    def fake_isolated(self, name, fn, *args, **kwargs):
        calls.append((name, fn, args, kwargs))
        out = Path(kwargs["summary_json"])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text('{"expressions": 2}')

    monkeypatch.setattr(StepRunner, "isolated", fake_isolated)
    r = StepRunner(tmp_path)
    data, ck = tmp_path / "data", tmp_path / "weak" / "final"
    ck.mkdir(parents=True)
    (ck / "model.safetensors").write_bytes(b"x")
    pred = steps.baseline_step(r, "zero_shot_sam2", data, "Cross-domain", checkpoint=ck)
    steps.baseline_step(r, "zero_shot_concept", data, "In-domain", checkpoint=None)
    (name, fn, args, kw), (_, _, args2, kw2) = calls
    assert name == "baseline_zero_shot_sam2_cross" and fn is baseline_job
    assert args[0] == "sam2" and args[1].domain == "Cross-domain" and args[2] == pred
    assert kw["sam2"].viewsam_checkpoint == str(ck)
    assert args2[0] == "concept" and "sam2" not in kw2
    steps.baseline_step(r, "zero_shot_concept", data, "In-domain", checkpoint=None)
    assert len(calls) == 2  # done: skipped on a re-run


def test_ratio_target_undefined_when_full_scores_zero():
    t = check_targets(table1(weak=0.0, full=0.0), {}, None)
    assert t[2]["passed"] is None and "undefined" in t[2]["text"]
    # a near-zero full model (0.05) gives a ratio of noise, not a verdict
    t = check_targets(table1(weak=0.0, full=0.05), {}, None)
    assert t[2]["passed"] is None and "undefined" in t[2]["text"]
    t = check_targets(table1(weak=30.0, full=40.0), {}, None)
    assert t[2]["passed"] is False and t[2]["numbers"]["ratio"] == 0.75


def _demo_config(argv):
    import argparse

    from raysys.commands import demo

    p = argparse.ArgumentParser()
    demo.add_arguments(p)
    return demo.demo_config(p.parse_args(argv))


def test_main_job_preset_is_the_report_without_ablations(tmp_path):
    from raysys.training.config import quick_config

    main, report = ReportConfig.preset("main-job"), ReportConfig.preset("report")
    assert main.ablations == () and main.data is None and "ablations off" in main.profile
    assert main.baselines == ("zero_shot_concept", "zero_shot_sam2") and main.cross_domain
    # the same benchmark (the synth defaults: 20 people per scene; 48 frames, not 60, for
    # the CPU budget), schedule and resources
    assert main.synth == report.synth and main.synth.scenes == 2 and main.synth.frames == 48
    assert dataclasses.replace(main.synth, frames=SynthConfig().frames) == SynthConfig()
    assert main.train == report.train == quick_config()
    assert main.resources == report.resources and main.resources.workers == 2
    rc = _demo_config(["--out", str(tmp_path)])
    assert rc == ReportConfig(out=tmp_path, ablations=(), profile="main job, ablations off")
    rc = _demo_config(["--out", str(tmp_path), "--ablations", "use_bar", "--seed", "3"])
    assert rc.ablations == ("use_bar",) and rc.profile == "main job" and rc.synth.seed == 3
    assert rc.synth.people == SynthConfig().people
    with pytest.raises(ValueError, match="unknown preset 'demo'; valid: report, main-job"):
        ReportConfig.preset("demo")


def test_report_config_file_then_flags(tmp_path):
    f = tmp_path / "report.yaml"
    f.write_text("synth: {scenes: 3}\nresources: {track_actors: 4}\nvideo: false\n"
                 "train: {clip_frames: 2}\n")
    rc = _demo_config(["--config", str(f), "--scenes", "5", "--train-workers", "1"])
    assert rc.synth.scenes == 5 and rc.synth.people == 20  # the flag wins over the file
    assert rc.resources.track_actors == 4 and rc.resources.workers == 1 and not rc.video
    assert rc.train.clip_frames == 2 and rc.train.image_size == 128  # merged into quick
    assert rc.out == Path("runs/demo")


def test_teacher_reference_in_targets_and_markdown():
    from raysys.report.tables import assemble_report, teacher_score

    teacher = {**QUALITY, "split": "In-domain/test"}  # reprompt referring 14.30 / 4.90
    assert teacher_score(teacher) == {"CVR-IDF1": 14.3, "CVR-MA": 4.9}
    assert teacher_score(None) is None and teacher_score({}) is None
    t = check_targets(table1(weak=20.0, full=25.0, concept=10.0, sam2=5.0), {}, QUALITY,
                      teacher)
    # best baseline concept 10.0, bar 10 + 15 = 25.00; teacher 14.30 is below it
    assert t[0]["passed"] is False and t[0]["numbers"]["teacher"] == 14.3
    assert "scores 14.30 (below the bar of 25.00)" in t[0]["text"]
    t = check_targets(table1(weak=20.0, full=25.0, concept=-1.0, sam2=-2.0), {}, QUALITY,
                      teacher)
    # bar -1 + 15 = 14.00 <= 14.30: above
    assert "(above the bar of 14.00)" in t[0]["text"]
    rep = assemble_report(table1(), {}, {}, QUALITY, timing={}, config={}, teacher=teacher)
    assert rep["pseudo_labels_test"]["split"] == "In-domain/test"
    md = render_markdown(rep)
    assert "Stage 1 run offline on the In-domain test split" in md and "14.30 / 4.90" in md
    # without it: no line, and report.json keeps the key empty
    rep = assemble_report(table1(), {}, {}, QUALITY, timing={}, config={})
    assert rep["pseudo_labels_test"] == {} and "run offline" not in render_markdown(rep)


def test_label_step_test_split_is_its_own_cached_step(tmp_path, monkeypatch):
    from raysys.labeling.job import label_job
    from raysys.report import steps

    calls = []

    def fake_isolated(self, name, fn, layout, out, cfg, resources):
        calls.append((name, fn, layout, resources))
        out.mkdir(parents=True, exist_ok=True)
        (out / "expressions.parquet").write_bytes(b"x")

    monkeypatch.setattr(StepRunner, "isolated", fake_isolated)
    r = StepRunner(tmp_path, address="10.0.0.1:6379")
    data = tmp_path / "data"
    train = steps.label_step(r, data)
    test = steps.label_step(r, data, split="test")
    assert train == tmp_path / "labels" and test == tmp_path / "labels_test"
    (n1, f1, l1, res1), (n2, _, l2, _) = calls
    assert n1 == "label" and f1 is label_job and l1.split == "train"
    assert n2 == "label_test" and l2.split == "test"
    # the step joins the report's cluster with the report's Stage 1 pool
    assert res1.address == "10.0.0.1:6379" and res1.label_actors == 1
    steps.label_step(r, data, split="test")
    steps.label_step(r, data)
    assert len(calls) == 2  # both done: skipped on a re-run
    assert r.fingerprints["label"] != r.fingerprints["label_test"]
