"""Each service's settings: defaults < config file < RETINA_<SERVICE>_* environment < flags; a bad
value names the setting and where it came from; RETINA_MODEL is read in one place."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.main import get_command

from retina.services.cli import app
from retina.services.cli.common import settings_from_args
from retina.services.core.config import ConfigError, DetectorConfig, FeaturesConfig
from retina.services.core.ports import ClusterPorts
from retina.services.core.settings import (
    SERVICES,
    IncidentStoreSettings,
    SchedulerSettings,
    SearchSettings,
    WorkerSettings,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No RETINA_* variable of the machine running the tests leaks into the settings."""
    for name in list(os.environ):
        if name.upper().startswith("RETINA_"):
            monkeypatch.delenv(name)


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "nats": {"url": "nats://from-file:4222"},
                "scheduler": {"database_url": "sqlite:////file.sqlite"},
            }
        )
    )
    return str(path)


def test_defaults_are_the_cluster_layout():
    ports = ClusterPorts()
    scheduler = SchedulerSettings.load()
    assert (scheduler.grpc_port, scheduler.metrics_port) == (ports.scheduler_grpc, ports.scheduler_metrics)
    assert scheduler.incidents_address == f"127.0.0.1:{ports.incidents_grpc}"
    assert scheduler.database_url is None and scheduler.data_dir == Path("var/scheduler")
    store = IncidentStoreSettings.load()
    assert (store.grpc_port, store.metrics_port, store.listen) == (
        ports.incidents_grpc,
        ports.incidents_metrics,
        "127.0.0.1",
    )
    assert store.nats_url == f"nats://127.0.0.1:{ports.nats}"
    assert store.media_max_bytes == 50 * 1024**3 and store.media_max_age_seconds == 30 * 24 * 3600


def test_precedence_file_then_environment_then_flag(monkeypatch, config_file):
    # the file's nats.url over the default
    assert WorkerSettings.load({"config": config_file}).nats_url == "nats://from-file:4222"
    # the environment over the file
    monkeypatch.setenv("RETINA_WORKER_NATS_URL", "nats://from-env:4222")
    monkeypatch.setenv("RETINA_WORKER_GRPC_PORT", "6000")
    settings = WorkerSettings.load({"config": config_file})
    assert (settings.nats_url, settings.grpc_port) == ("nats://from-env:4222", 6000)
    # the flag over the environment
    settings = WorkerSettings.load(
        {"config": config_file, "nats_url": "nats://from-flag:4222", "grpc_port": 7000}
    )
    assert (settings.nats_url, settings.grpc_port) == ("nats://from-flag:4222", 7000)
    # the file is read once and kept: the service runs the config its settings came from
    assert settings.cluster.nats.url == "nats://from-file:4222"


def test_precedence_through_the_command_line(monkeypatch, config_file):
    """Flags left at their defaults do not hide the environment; flags given do."""
    monkeypatch.setenv("RETINA_SEARCH_METRICS_PORT", "8111")
    monkeypatch.setenv("RETINA_SEARCH_CONFIG", config_file)
    settings = settings_from_args(["search", "serve"])
    assert (settings.metrics_port, settings.nats_url, settings.config) == (
        8111,
        "nats://from-file:4222",
        config_file,
    )
    settings = settings_from_args(["search", "serve", "--metrics-port", "9113", "--incidents-address", ""])
    assert settings.metrics_port == 9113 and settings.incidents_address is None


def test_database_url_one_setting_in_layers(monkeypatch, config_file):
    assert SchedulerSettings.load({"config": config_file}).database_url == "sqlite:////file.sqlite"
    monkeypatch.setenv("RETINA_DATABASE_URL", "sqlite:////old-name.sqlite")  # the old name, still read
    assert SchedulerSettings.load({"config": config_file}).database_url == "sqlite:////old-name.sqlite"
    monkeypatch.setenv("RETINA_SCHEDULER_DATABASE_URL", "postgresql+psycopg://u:p@db/retina")
    assert (
        SchedulerSettings.load({"config": config_file}).database_url == "postgresql+psycopg://u:p@db/retina"
    )
    flag = {"config": config_file, "database_url": "sqlite:////flag.sqlite"}
    assert SchedulerSettings.load(flag).database_url == "sqlite:////flag.sqlite"
    monkeypatch.setenv("RETINA_INCIDENTS_DATABASE_URL", "postgresql+psycopg://u:p@db/incidents")
    assert IncidentStoreSettings.load().database_url == "postgresql+psycopg://u:p@db/incidents"


def errors(model, flags=None):
    with pytest.raises(ConfigError) as caught:
        model.load(flags or {})
    return caught.value.errors


def test_a_bad_value_names_the_setting_and_its_source(monkeypatch, tmp_path, config_file):
    monkeypatch.setenv("RETINA_WORKER_GRPC_PORT", "fifty")
    (line,) = errors(WorkerSettings, {"config": config_file})
    assert line.startswith("grpc_port (from RETINA_WORKER_GRPC_PORT): ") and "integer" in line

    (line,) = errors(IncidentStoreSettings, {"metrics_port": 70000})
    assert line.startswith("metrics_port (from --metrics-port): ") and "65535" in line

    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text("nats: {url: 'http://nats:4222'}\n")
    (line,) = errors(SearchSettings, {"config": str(bad_file)})
    assert line.startswith(f"nats_url (from nats.url in {bad_file}): a NATS URL starts with nats://")

    monkeypatch.setenv("RETINA_DATABASE_URL", "not a url")
    (line,) = errors(SchedulerSettings)
    assert line.startswith("database_url (from RETINA_DATABASE_URL): not a database URL")
    assert "not a url" not in line  # values are never echoed (a URL may hold a password)

    (line,) = errors(IncidentStoreSettings, {"media_max_gb": -1, "nats_url": "nats://ok:4222"})
    assert line.startswith("media_max_gb (from --media-max-gb): ")

    assert errors(WorkerSettings) == [
        "config: required by retina worker: give --config or set RETINA_WORKER_CONFIG"
    ]
    assert errors(IncidentStoreSettings, {"grpc_port": 1, "retention": 3}) == [
        "retention: not a setting of retina incidents serve"
    ]


def test_the_command_reports_a_bad_setting_and_exits_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("RETINA_")}
    env["RETINA_INCIDENTS_GRPC_PORT"] = "many"
    run = subprocess.run(
        [sys.executable, "-m", "retina.services.cli", "incidents", "serve", "--data-dir", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert "config error: grpc_port (from RETINA_INCIDENTS_GRPC_PORT): " in run.stderr


def test_every_setting_is_a_flag_of_its_command_and_an_environment_variable():
    """The flag, the environment variable and the model field are one name."""
    for command, model in SERVICES.items():
        for setting in model.model_fields:
            assert model.env_names()[model.env_name(setting)] == setting
        group = get_command(app)
        for part in command.split():
            group = group.commands[part]
        flags = {opt for param in group.params for opt in param.opts if opt not in ("--help", "-h")}
        assert flags == {model.flag(name) for name in model.model_fields}, command


def test_model_env_is_read_in_one_place(monkeypatch):
    monkeypatch.setenv("RETINA_MODEL", "/models/from-env.pt")
    assert DetectorConfig().model_path() == DetectorConfig().resolved_model() == "/models/from-env.pt"
    assert DetectorConfig(model="/models/file.onnx").model_path() == "/models/file.onnx"
    # the backbone embedder falls back to the same place
    from retina.services.core.features import BackboneColourEmbedder

    with pytest.raises(ConfigError, match=r"no such file '/models/from-env\.pt'"):
        BackboneColourEmbedder.from_config(FeaturesConfig(), DetectorConfig())
    monkeypatch.delenv("RETINA_MODEL")
    assert DetectorConfig().model_path() is None
    with pytest.raises(ConfigError, match="RETINA_MODEL"):
        DetectorConfig().resolved_model()

    reads = re.compile(r"(environ|getenv)\W[^\n]*(RETINA_MODEL|MODEL_ENV)")
    found = [
        f"{path.relative_to(REPO)}:{number}"
        for top in ("services", "algorithms", "benchmarks", "scripts")
        for path in (REPO / top).rglob("*.py")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if reads.search(line)
    ]
    assert found == [
        "services/core/config.py:" + str(_line_of("services/core/config.py", "environ.get(MODEL_ENV)"))
    ]


def _line_of(relative: str, text: str) -> int:
    lines = (REPO / relative).read_text(encoding="utf-8").splitlines()
    return next(number for number, line in enumerate(lines, 1) if text in line)
