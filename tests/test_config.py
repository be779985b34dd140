"""The one config reader (:mod:`raysys.config`): nested merges, type checks whose message
names the field path, unknown fields, tuple / Path conversion, JSON and YAML files."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from raysys.config import from_dict, load_config, save_config, to_dict


@dataclass(frozen=True)
class Inner:
    lr: float = 0.1
    name: str = "a"


@dataclass(frozen=True)
class Step:  # no defaults: every field required
    name: str
    epochs: int


@dataclass(frozen=True)
class Outer:
    size: int = 4
    ratio: float = 0.5
    on: bool = True
    root: Path = Path("runs")
    maybe: int | None = None
    mode: Literal["fast", "slow"] = "fast"
    box: tuple[float, float] = (1.0, 2.0)
    names: tuple[str, ...] = ("x",)
    inner: Inner = field(default_factory=lambda: Inner(name="b"))  # default differs from Inner()
    steps: tuple[Step, ...] = ()
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"size must be >= 1, got {self.size}")


def test_nested_merge_keeps_the_other_fields():
    cfg = from_dict(Outer, {"inner": {"lr": 0.5}})
    # lr replaced, name kept from the *field's* default (Inner(name="b")), not Inner()'s "a"
    assert cfg.inner == Inner(lr=0.5, name="b") and cfg.size == 4
    base = Outer(size=9, inner=Inner(lr=0.2, name="c"))
    cfg = from_dict(Outer, {"inner": {"name": "d"}}, base)
    assert cfg.size == 9 and cfg.inner == Inner(lr=0.2, name="d")  # merged into base
    assert from_dict(Outer, {"inner": Inner(lr=3.0)}).inner == Inner(lr=3.0)  # an instance


def test_conversions_lists_to_tuples_str_to_path_int_to_float():
    cfg = from_dict(Outer, {"box": [3, 4.5], "names": ["p", "q"], "root": "/tmp/x",
                            "ratio": 2, "steps": [{"name": "s", "epochs": 2}]})
    assert cfg.box == (3.0, 4.5) and isinstance(cfg.box[0], float)
    assert cfg.names == ("p", "q") and cfg.root == Path("/tmp/x")
    assert cfg.ratio == 2.0 and isinstance(cfg.ratio, float)  # ints are floats
    assert cfg.steps == (Step("s", 2),)


def test_round_trip_through_json_is_exact():
    cfg = Outer(size=2, root=Path("/a/b"), maybe=3, box=(0.5, 1.5), names=("u", "v"),
                inner=Inner(lr=1e-3), steps=(Step("a", 1), Step("b", 2)), extra={"k": [1]})
    d = to_dict(cfg)
    assert d["root"] == "/a/b" and d["box"] == [0.5, 1.5] and d["steps"][1] == {
        "name": "b", "epochs": 2}
    assert from_dict(Outer, json.loads(json.dumps(d))) == cfg


@pytest.mark.parametrize("data, message", [
    ({"size": "4"}, "Outer.size: expected int, got '4'"),
    ({"size": True}, "Outer.size: expected int, got True"),  # a bool is no int here
    ({"ratio": "fast"}, "Outer.ratio: expected float, got 'fast'"),
    ({"ratio": float("inf")}, "Outer.ratio: expected a finite float, got inf"),  # no JSON
    ({"on": 1}, "Outer.on: expected bool, got 1"),
    ({"maybe": 1.5}, "Outer.maybe: expected int | None, got 1.5"),
    ({"mode": "medium"}, "Outer.mode: expected one of 'fast', 'slow', got 'medium'"),
    ({"box": [1.0]}, "Outer.box: expected a list of 2 (float, float), got [1.0]"),
    ({"names": ["a", 2]}, "Outer.names[1]: expected str, got 2"),
    ({"inner": {"lr": "x"}}, "Outer.inner.lr: expected float, got 'x'"),
    ({"inner": 3}, "Outer.inner: expected a mapping of Inner fields, got 3"),
    ({"steps": [{"name": "a", "epochs": 1}, {"name": "b", "epochs": "two"}]},
     "Outer.steps[1].epochs: expected int, got 'two'"),
    ({"steps": [{"name": "a"}]}, "Outer.steps[0]: missing fields ['epochs']"),
    ({"root": 5}, "Outer.root: expected a path, got 5"),
    ({"size": 0}, "Outer: size must be >= 1, got 0"),  # the config's own check
])
def test_wrong_values_name_the_field_path_type_and_value(data, message):
    with pytest.raises(ValueError) as e:
        from_dict(Outer, data)
    assert str(e.value) == message


def test_unknown_field_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown Outer fields \['sise'\]; valid: box, extra"):
        from_dict(Outer, {"sise": 3})
    with pytest.raises(ValueError, match=r"Outer.inner: unknown Inner fields \['rate'\]; "
                                         r"valid: lr, name"):
        from_dict(Outer, {"inner": {"rate": 3}})


def test_real_configs_round_trip_and_the_message_of_the_issue():
    from raysys.labeling.config import LabelConfig
    from raysys.report.config import PRESETS, ReportConfig
    from raysys.synth.config import SynthConfig
    from raysys.training.config import TrainConfig, quick_config

    for cfg in (TrainConfig(), quick_config(), LabelConfig(), SynthConfig(), *PRESETS.values()):
        assert from_dict(type(cfg), json.loads(json.dumps(to_dict(cfg)))) == cfg
    stages = [{"name": "a", "modules": ["cgct"], "epochs": 1, "lr": 1e-3},
              {"name": "b", "modules": ["cgct"], "epochs": 1, "lr": "fast"}]
    with pytest.raises(ValueError, match=r"TrainConfig.stages\[1\].lr: expected float, "
                                         r"got 'fast'"):
        from_dict(TrainConfig, {"stages": stages})
    # the report's benchmark (SynthConfig's defaults, 48 frames): a partial synth keeps it
    rep = from_dict(ReportConfig, {"synth": {"seed": 3}, "resources": {"track_actors": 4}})
    assert (rep.synth.seed, rep.synth.people, rep.synth.frames) == (3, 20, 48)
    assert rep.resources.track_actors == 4 and rep.resources.workers == 2


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_files_json_and_yaml(tmp_path, suffix):
    f = tmp_path / f"cfg{suffix}"
    if suffix == ".json":
        f.write_text('{"size": 7, "inner": {"lr": 0.25}, "box": [5, 6]}')
    else:
        f.write_text("size: 7\ninner:\n  lr: 0.25\nbox: [5, 6]\n")
    cfg = load_config(Outer, f)
    assert (cfg.size, cfg.inner, cfg.box) == (7, Inner(lr=0.25, name="b"), (5.0, 6.0))
    # save then load: the same config
    out = save_config(cfg, tmp_path / "saved" / f"again{suffix}")
    assert load_config(Outer, out) == cfg


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"cannot read .*none\.yaml"):
        load_config(Outer, tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("size: [1, 2\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: not valid YAML"):
        load_config(Outer, bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"ratio": "fast"}')
    with pytest.raises(ValueError, match=r"wrong\.json: Outer.ratio: expected float"):
        load_config(Outer, wrong)
    with pytest.raises(ValueError, match=r"\.json, \.yaml, \.yml"):
        load_config(Outer, tmp_path / "cfg.toml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(Outer, empty) == Outer()  # an empty file: all defaults
