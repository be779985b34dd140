"""The deploy files (issue #25 item 4) checked offline: no cloud call, no docker, no Ray start.

- ``cluster.yaml`` passes Ray's own cluster-config validation, as ``ray up`` runs it before
  any provider call (``prepare_config`` then ``validate_config``), with sockets refused.
- The KubeRay manifests (no CRD schema ships in the registries this project reaches) are
  parsed: kinds and apiVersions, token auth, one image, one storage URI, entrypoints that
  exist in the repo and parse with their job's own options, and a RayService whose app
  resolves and accepts its args, the args of ``serve/config.yaml``.
- ``docker/Dockerfile``'s pins are the project's pins.
- The docs' "Running on a cluster" commands name files that exist and options that parse.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import importlib.util
import re
import shlex
import socket
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERAY = ROOT / "deploy" / "kuberay"
IMAGE_HOME = "/home/ray/raysys"  # where docker/Dockerfile puts the repo in the image
STORAGE_PLACEHOLDER = "s3://your-bucket/raysys"


def _yaml(rel: str):
    return yaml.safe_load((ROOT / rel).read_text(encoding="utf-8"))


def _manifests() -> dict[str, dict]:
    return {p.name: yaml.safe_load(p.read_text(encoding="utf-8"))
            for p in sorted(KUBERAY.glob("*.yaml"))}


def _prepared(cfg: dict) -> dict:
    """Ray's checks of ``ray up`` up to the provider's bootstrap (which calls the cloud)."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = prepare_config(copy.deepcopy(cfg))
    validate_config(cfg)
    return cfg


class NetworkCall(Exception):
    """A socket was opened during a check that must stay offline."""


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise NetworkCall(f"network call during an offline check: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def _docker_env(run_options: list[str]) -> dict[str, str]:
    env = {}
    for opt in run_options:
        m = re.fullmatch(r"(?:--env|-e)[ =](\w+)=(\S+)", opt)
        if m:
            env[m[1]] = m[2]
    return env


# ---------------------------------------------------------------- cluster.yaml


def test_cluster_yaml_passes_rays_validation(no_network):
    cfg = _prepared(_yaml("cluster.yaml"))
    types = cfg["available_node_types"]
    assert types[cfg["head_node_type"]]["resources"] == {"CPU": 0}
    gpu = [t for t in types.values() if t["resources"].get("GPU")]
    assert gpu and all(t["min_workers"] == 0 and t["max_workers"] >= 1 for t in gpu)
    # Ray's AWS defaults would pip-install Ray and boto3 on every node: all replaced
    for key in ("setup_commands", "head_setup_commands", "worker_setup_commands"):
        assert not any("pip install" in c or "setup.sh" in c for c in cfg[key]), key
    assert cfg["docker"]["image"] and cfg["docker"]["container_name"]


def _drop_head_node_type(cfg):
    del cfg["head_node_type"]


def _unknown_head(cfg):
    cfg["head_node_type"] = "nope"


def _typo_in_docker(cfg):
    cfg["docker"]["imag"] = cfg["docker"].pop("image")


def _fractional_resource(cfg):
    cfg["available_node_types"]["gpu_worker"]["resources"]["GPU"] = 0.5


def _too_many_min_workers(cfg):
    cfg["available_node_types"]["gpu_worker"]["min_workers"] = cfg["max_workers"] + 1


@pytest.mark.parametrize("breakage", [_drop_head_node_type, _unknown_head, _typo_in_docker,
                                      _fractional_resource, _too_many_min_workers])
def test_rays_validation_catches_a_broken_cluster_yaml(breakage, no_network):
    cfg = _yaml("cluster.yaml")
    breakage(cfg)
    with pytest.raises((ValueError, AssertionError, jsonschema.ValidationError)):
        _prepared(cfg)  # (Ray checks the docker section with an assert)


def test_cluster_yaml_token_auth_loopback_dashboard_storage():
    text = (ROOT / "cluster.yaml").read_text(encoding="utf-8")
    cfg = yaml.safe_load(text)
    env = _docker_env(cfg["docker"]["run_options"])
    assert env["RAY_AUTH_MODE"] == "token"
    assert env["RAY_AUTH_TOKEN_PATH"] in cfg["file_mounts"]  # the token reaches every node
    assert env["RAYSYS_STORAGE"] == STORAGE_PLACEHOLDER
    head = " ".join(cfg["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "0.0.0.0" not in head
    assert "--head" in head and "--autoscaling-config" in head
    assert any("$RAY_HEAD_IP:6379" in c for c in cfg["worker_start_ray_commands"])
    assert ".venv" not in text and "setup.sh" not in text
    for remote, local in cfg["file_mounts"].items():  # repo folders must exist; ~ is a secret
        assert local.startswith("~/") or (ROOT / local).exists(), (remote, local)


# ---------------------------------------------------------------- the image


def _dockerfile() -> str:
    return (ROOT / "docker" / "Dockerfile").read_text(encoding="utf-8")


def _run_commands(dockerfile: str) -> list[str]:
    """Each shell command of the RUN instructions (continuations joined, split on &&)."""
    text = re.sub(r"\\\n\s*", " ", dockerfile)
    runs = [line[4:] for line in text.splitlines() if line.startswith("RUN ")]
    return [c.strip() for r in runs for c in r.split("&&")]


def _pins(text: str) -> dict[str, str]:
    pins = re.findall(r"^\s*([A-Za-z0-9_.\-]+)==(\S+)\s*$", text, re.M)
    return {n.lower().replace("_", "-"): v for n, v in pins}


def _inline_pins(commands: list[str]) -> dict[str, str]:
    out = {}
    for c in commands:
        for name, v in re.findall(r"(?<![\w\-])([A-Za-z][\w.\-]*)==([\w.+]+)", c):
            out[name.lower()] = v
    return out


def _version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_dockerfile_pins_are_the_projects():
    df = _dockerfile()
    cmds = _run_commands(df)
    constraints = _pins((ROOT / "requirements" / "constraints.txt").read_text())
    setup = _inline_pins((ROOT / "scripts" / "setup.sh").read_text().splitlines())
    image = _inline_pins(cmds)
    assert set(setup) <= set(image), "the image pins what scripts/setup.sh pins"
    for name, v in image.items():
        assert constraints[name] == v == setup.get(name, v), name
    for dep in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        m = re.fullmatch(r"([\w\-]+)(?:\[[\w,]+\])?==(\S+)", dep)
        if m and m[1].lower() in image:
            assert image[m[1].lower()] == m[2], dep
    ray_v, major, minor = re.search(r"^FROM rayproject/ray:([\d.]+)-py(\d)(\d+)-gpu$", df,
                                    re.M).groups()
    assert ray_v == constraints["ray"]
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    lo, hi = (tuple(map(int, v.split("."))) for v in
              re.fullmatch(r">=(\d+\.\d+),<(\d+\.\d+)", requires).groups())
    assert lo <= (int(major), int(minor)) < hi
    installs = [c for c in cmds if "pip install" in c]
    assert installs[-1].endswith("pip install --no-deps .")
    assert all("-c requirements/constraints.txt" in c for c in installs[:-1]), installs
    assert "COPY --chown=ray:users requirements/constraints.txt" in df
    assert f"WORKDIR {IMAGE_HOME}" in df and f"PYTHONPATH={IMAGE_HOME}" in df
    assert re.search(rf'org\.opencontainers\.image\.version="{_version()}"', df)


def test_dockerignore_keeps_the_venv_and_runs_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "runs", ".git"} <= set(ignored)


def _image() -> str:
    return _yaml("cluster.yaml")["docker"]["image"]


def _containers(node, path=""):
    """(path, container) for every container of every pod template in a manifest."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "containers":
                yield from ((f"{path}.{k}", c) for c in v)
            else:
                yield from _containers(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _containers(v, f"{path}[{i}]")


def test_one_image_and_one_storage_uri_everywhere():
    image = _image()
    assert image.endswith(f"/raysys:{_version()}")
    seen = 0
    for name, doc in _manifests().items():
        for where, c in _containers(doc):
            seen += 1
            assert c["image"] == image, f"{name}{where}"
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            assert env.get("RAYSYS_STORAGE") == STORAGE_PLACEHOLDER, f"{name}{where}"
    assert seen >= 10


# ---------------------------------------------------------------- KubeRay


def _cluster_spec(doc: dict) -> dict:
    key = {"RayCluster": None, "RayJob": "rayClusterSpec", "RayService": "rayClusterConfig"}
    return doc["spec"] if key[doc["kind"]] is None else doc["spec"][key[doc["kind"]]]


def test_kuberay_kinds_and_cluster_settings():
    docs = _manifests()
    kinds = sorted(d["kind"] for d in docs.values())
    assert kinds == ["RayCluster", "RayJob", "RayJob", "RayJob", "RayService"]
    assert {d["apiVersion"] for d in docs.values()} == {"ray.io/v1"}
    assert len({d["metadata"]["name"] for d in docs.values()}) == len(docs)
    ray_pin = _pins((ROOT / "requirements" / "constraints.txt").read_text())["ray"]
    for name, doc in docs.items():
        spec = _cluster_spec(doc)
        assert spec["rayVersion"] == ray_pin, name
        assert spec["authOptions"] == {"mode": "token"}, name
        head = spec["headGroupSpec"]
        assert head["rayStartParams"].get("num-cpus") == "0", name
        assert head.get("serviceType", "ClusterIP") == "ClusterIP", name
        for g in spec["workerGroupSpecs"]:
            assert 0 <= g["minReplicas"] <= g["replicas"] <= g["maxReplicas"], (name, g)
        for where, c in _containers(doc):  # nothing turns the operator's auth off
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            assert env.get("RAY_AUTH_MODE", "token") == "token", f"{name}{where}"


def _job_parser(script: Path) -> argparse.ArgumentParser:
    """The options of a ``jobs/*.py`` / ``tune/sweep.py`` entrypoint (its command's own)."""
    src = script.read_text(encoding="utf-8")
    command = re.search(r'run_job\("([^"]+)", (\w+),', src)[2]
    spec = importlib.util.spec_from_file_location(f"_job_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # imports only raysys.cli and the command module
    p = argparse.ArgumentParser(prog=script.name)
    getattr(module, command).add_arguments(p)
    return p


def _parse_command(argv: list[str]) -> str:
    """``python SCRIPT ARGS``: SCRIPT must exist in the repo and ARGS parse; returns it."""
    assert argv[0] == "python", argv
    rel = argv[1].removeprefix(IMAGE_HOME + "/")
    assert (ROOT / rel).is_file(), rel
    _job_parser(ROOT / rel).parse_args(argv[2:])
    return rel


def test_rayjob_entrypoints_exist_and_parse():
    scripts = set()
    for name, doc in _manifests().items():
        if doc["kind"] != "RayJob":
            continue
        entry = doc["spec"]["entrypoint"].replace("$RAYSYS_STORAGE", STORAGE_PLACEHOLDER)
        argv = shlex.split(entry)
        assert argv[1].startswith(IMAGE_HOME + "/"), name  # the image's copy of the repo
        scripts.add(_parse_command(argv))
        assert doc["spec"]["shutdownAfterJobFinishes"] is True, name
        # outputs go to storage: the URI, or for a sweep (local folders only) the bucket's mount
        where = "/mnt/raysys/" if "tune/sweep.py" in entry else f"{STORAGE_PLACEHOLDER}/"
        assert where in " ".join(argv), name
    assert scripts == {"jobs/label.py", "jobs/train.py", "tune/sweep.py"}


def test_a_wrong_option_fails_the_entrypoint_check():
    with pytest.raises(SystemExit):
        _parse_command(["python", f"{IMAGE_HOME}/jobs/train.py", "--labels", "L", "--out",
                        "R", "--no-such-option"])
    with pytest.raises(AssertionError):
        _parse_command(["python", "jobs/no_such_job.py"])


def test_rayservice_runs_the_serve_config_app(tmp_path, monkeypatch):
    svc = next(d for d in _manifests().values() if d["kind"] == "RayService")
    conf = yaml.safe_load(svc["spec"]["serveConfigV2"])
    local = _yaml("serve/config.yaml")
    (app,), (lapp,) = conf["applications"], local["applications"]
    for key in ("name", "route_prefix", "import_path"):
        assert app[key] == lapp[key], key
    assert conf["proxy_location"] == local["proxy_location"]
    for key in ("port", "request_timeout_s"):
        assert conf["http_options"][key] == local["http_options"][key], key
    args, largs = app["args"], lapp["args"]
    assert {k: args.get(k) for k in largs if k != "model"} == \
        {k: v for k, v in largs.items() if k != "model"}
    assert set(args) - set(largs) <= {"host", "token_file"}
    # the model from the storage mount, the token from a mounted Secret, in every pod
    for where, c in _containers(_cluster_spec(svc)):
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        assert any(args["model"].startswith(p + "/") for p in mounts), where
        assert str(Path(args["token_file"]).parent) in mounts, where
    # the import path resolves, and the app takes these args (its own checks)
    monkeypatch.syspath_prepend(str(ROOT))
    module, attr = app["import_path"].split(":")
    assert callable(getattr(importlib.import_module(module), attr))
    from raysys.serving.app import config_from_args

    (tmp_path / "token").write_text("secret\n")
    cfg = config_from_args({**args, "token_file": str(tmp_path / "token")})
    assert cfg.host == conf["http_options"]["host"] and cfg.token == "secret"
    with pytest.raises(ValueError, match="loopback"):  # no token on 0.0.0.0: refused
        config_from_args({k: v for k, v in args.items() if k != "token_file"})


# ---------------------------------------------------------------- docs


def _doc_section() -> str:
    text = (ROOT / "docs" / "cluster.md").read_text(encoding="utf-8")
    start = text.index("\n## Running on a cluster\n")
    end = text.find("\n## ", start + 5)
    return text[start:end if end > 0 else None]


def _commands(section: str) -> list[list[str]]:
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", section, re.S)
    lines = [ln for b in blocks for ln in b.replace("\\\n", " ").splitlines()]
    return [argv for ln in lines if (argv := shlex.split(ln, comments=True))]


REPO_PATH = re.compile(r"(?:[\w.\-]+/)*(?:[\w.\-]+\.(?:py|ya?ml|toml|txt|md)|Dockerfile)")


def _missing_paths(commands: list[list[str]]) -> list[str]:
    names = [t for argv in commands for t in argv if REPO_PATH.fullmatch(t)]
    return [n for n in names if not (ROOT / n).exists()]


def test_docs_commands_name_files_that_exist():
    commands = _commands(_doc_section())
    assert len(commands) >= 15
    assert not _missing_paths(commands)
    named = {t for argv in commands for t in argv if REPO_PATH.fullmatch(t)}
    assert {"cluster.yaml", "docker/Dockerfile", "jobs/label.py", "jobs/train.py",
            "jobs/track.py", "serve/config.yaml"} <= named
    assert {f"deploy/kuberay/{p.name}" for p in KUBERAY.glob("*.yaml")} <= named
    assert _missing_paths([["ray", "up", "clusterr.yaml"]]) == ["clusterr.yaml"]


def test_docs_job_commands_parse_and_build_the_image():
    commands = _commands(_doc_section())
    jobs = [argv[argv.index("--") + 1:] for argv in commands if argv[:3] == ["ray", "job",
                                                                              "submit"]]
    assert {_parse_command([a.replace("$S", STORAGE_PLACEHOLDER) for a in argv])
            for argv in jobs} == {"jobs/label.py", "jobs/train.py", "jobs/track.py",
                                  "tune/sweep.py"}
    assert all("--working-dir" in argv for argv in commands if argv[:3] == ["ray", "job",
                                                                             "submit"])
    build = next(argv for argv in commands if argv[:2] == ["docker", "build"])
    assert build[build.index("-t") + 1] == _image()
    assert build[build.index("-f") + 1] == "docker/Dockerfile"
