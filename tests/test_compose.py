"""docker-compose.yml cannot run here; keep it consistent with the settings and the CLI."""

from __future__ import annotations

import tomllib

import yaml

from insiderwatch.stream.cli import build_parser
from insiderwatch.stream.settings import SETTINGS_DOC, env_name
from tests.conftest import REPO


def _compose():
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def _subcommands():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices


def test_every_insiderwatch_env_var_is_a_known_setting():
    known = {env_name(n) for n in SETTINGS_DOC}
    for name, service in _compose()["services"].items():
        for key in service.get("environment") or {}:
            if key.startswith("INSIDERWATCH_"):
                assert key in known, f"{name}: {key} is not a setting"


def test_service_commands_are_real_cli_commands():
    commands = _subcommands()
    for name in ("worker", "replay", "tail"):
        command = _compose()["services"][name]["command"]
        parsed = commands[command[0]].parse_args(command[1:])
        assert parsed is not None
    init = _compose()["services"]["init"]["command"][0]
    for step in init.split("&&"):
        words = step.split()
        assert words[0] == "insiderwatch"
        commands[words[1]].parse_args(words[2:])


def test_worker_binds_web_inside_container_and_kafka_image_is_official():
    services = _compose()["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["worker"]["environment"]["INSIDERWATCH_BROKER"] == "kafka:9092"


def test_worker_health_is_its_ready_endpoint_on_its_web_port():
    worker = _compose()["services"]["worker"]
    port = worker["environment"]["INSIDERWATCH_WEB_PORT"]
    probe = " ".join(worker["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/ready" in probe
    assert f"127.0.0.1:{port}:{port}" in worker["ports"]


def test_the_worker_is_restarted_after_it_stops_on_a_delivery_failure():
    # stream/app.py stops the worker (exit 1) instead of skipping a batch it cannot deliver.
    assert _compose()["services"]["worker"]["restart"] == "on-failure"


def test_the_image_installs_the_bindings_of_the_store_the_worker_uses():
    # pip only warns about an extra the package does not define, and a worker on rocksdb://
    # without bindings stops at start-up.
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    installs = [
        line.split()
        for line in (REPO / "Dockerfile").read_text().splitlines()
        if line.startswith("RUN pip install")
    ]
    assert installs, "the image installs the package with pip"
    for words in installs:
        for word in words:
            if word.startswith((".[", '".[')):
                extras = word.strip('"').removeprefix(".[").removesuffix("]").split(",")
                assert set(extras) <= set(project.get("optional-dependencies", {})), word
    store = _compose()["services"]["worker"]["environment"]["INSIDERWATCH_STORE"]
    if store.startswith("rocksdb://"):
        assert any(d.startswith("rocksdict") for d in project["dependencies"])
