"""The Kubernetes manifests parse, and every retina command they run is one the CLI accepts."""

from pathlib import Path

import yaml

from retina.services.cli import check_args
from retina.services.core.config import parse_config

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
