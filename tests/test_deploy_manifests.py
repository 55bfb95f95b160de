"""The Kubernetes manifests parse, every retina command they run is one the CLI accepts, and the
settings each service's manifest passes (args and environment) are accepted by that service's own
settings loader, as are those `retina up` passes."""

import os
from pathlib import Path

import yaml

from retina.services.cli import check_args
from retina.services.cli.common import settings_from_args
from retina.services.core.config import parse_config
from retina.services.core.settings import SERVICES

K8S = Path(__file__).resolve().parents[1] / "k8s"


def documents():
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc and {"apiVersion", "kind", "metadata"} <= doc.keys(), f"{path.name}: incomplete object"
            yield path.name, doc


def containers(doc):
    spec = doc.get("spec", {})
    template = spec.get("template", {}).get("spec", {})
    return template.get("containers", [])


def test_retina_containers_run_valid_commands():
    seen = 0
    for name, doc in documents():
        for container in containers(doc):
            if container["image"].startswith("retina:"):
                check_args(container["args"])  # raises (fails the test) on a bad flag
                seen += 1
                assert doc["metadata"]["namespace"] == "retina", name
    assert seen == 5  # worker, incident store, search, scheduler, cameras import


def test_config_map_is_a_valid_retina_config():
    (config_map,) = [d for _, d in documents() if d["metadata"]["name"] == "retina-config"]
    loaded = parse_config(yaml.safe_load(config_map["data"]["cameras.yaml"]))
    assert loaded.camera_errors == [] and loaded.config.cameras


# The settings each manifest passes, as args and environment, go through the service's own loader.

STAND_INS = {  # values a secret holds in a real cluster
    "RETINA_SCHEDULER_DATABASE_URL": "postgresql+psycopg://retina:secret@db.example/retina",
    "RETINA_CROP_URL_SECRET": "0" * 64,
}


def pod_environment(container, name):
    env = {}
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
        elif "fieldRef" in entry.get("valueFrom", {}):
            env[entry["name"]] = "retina-worker-0"
        else:
            assert entry["name"] in STAND_INS, f"{name}: no stand-in for the secret {entry['name']}"
            env[entry["name"]] = STAND_INS[entry["name"]]
    return env


def mounted_files(doc, container, root):
    """The config maps a container mounts, written under ``root``: mount path → local folder."""
    volumes = {v["name"]: v for v in doc["spec"]["template"]["spec"].get("volumes", [])}
    maps = {d["metadata"]["name"]: d for _, d in documents() if d["kind"] == "ConfigMap"}
    mounts = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})  # else a StatefulSet's volume claim
        if "configMap" in volume:
            folder = root / mount["name"]
            folder.mkdir(parents=True, exist_ok=True)
            for file, text in maps[volume["configMap"]["name"]]["data"].items():
                (folder / file).write_text(text)
            mounts[mount["mountPath"]] = str(folder)
    return mounts


def test_each_service_accepts_the_settings_its_manifest_passes(tmp_path, monkeypatch):
    checked = set()
    for name, doc in documents():
        for container in containers(doc):
            args = container.get("args", [])
            command = next((c for c in SERVICES if args[: len(c.split())] == c.split()), None)
            if not container["image"].startswith("retina:") or command is None:
                continue
            env = pod_environment(container, name)
            mounts = mounted_files(doc, container, tmp_path / doc["metadata"]["name"])
            for variable in env:  # Kubernetes expands $(VAR) in args from the container's env
                args = [arg.replace(f"$({variable})", env[variable]) for arg in args]
            for mount_path, folder in mounts.items():
                args = [
                    folder + arg[len(mount_path) :] if arg.startswith(mount_path + "/") else arg
                    for arg in args
                ]
            for variable in [v for v in os.environ if v.upper().startswith("RETINA_")]:
                monkeypatch.delenv(variable)
            for variable, value in env.items():
                monkeypatch.setenv(variable, value)
            model = SERVICES[command]
            unknown = {v for v in env if v.startswith("RETINA_")} - set(model.env_names())
            assert not unknown, f"{name}: {command} does not read {sorted(unknown)}"
            settings = settings_from_args(args)  # raises ConfigError naming a bad setting
            assert type(settings) is model and settings.listen == "0.0.0.0", name
            checked.add(command)
    assert checked == set(SERVICES)


def test_retina_up_passes_the_same_settings(tmp_path, monkeypatch):
    """`retina up` starts each service with settings its loader accepts, named as in the manifests."""
    from retina.services.cli.cluster import LocalCluster

    for variable in [v for v in os.environ if v.upper().startswith("RETINA_")]:
        monkeypatch.delenv(variable)
    (config_map,) = [d for _, d in documents() if d["metadata"]["name"] == "retina-config"]
    config = tmp_path / "cameras.yaml"
    config.write_text(config_map["data"]["cameras.yaml"])
    cluster = LocalCluster(config, tmp_path / "data", workers=2)
    for child, args in cluster.service_args().items():
        settings = settings_from_args(args)
        assert settings.data_dir == tmp_path / "data" / child
        if hasattr(settings, "nats_url"):
            assert settings.nats_url == cluster.nats_url, child


def test_no_setting_is_shadowed_by_kubernetes_service_variables():
    """Kubernetes gives every pod <SERVICE>_SERVICE_HOST, <SERVICE>_PORT... for each Service, e.g.
    RETINA_SEARCH_PORT for retina-search: none of them may be read as a setting."""
    services = [d["metadata"]["name"] for _, d in documents() if d["kind"] == "Service"]
    for service in services:
        prefix = service.upper().replace("-", "_")
        for model in SERVICES.values():
            for variable in model.env_names():
                injected = variable == f"{prefix}_PORT" or variable.startswith(
                    (f"{prefix}_SERVICE_", f"{prefix}_PORT_")
                )
                assert not injected, f"{variable} ({model.NAME}) is also set by Kubernetes for {service}"
