"""The Kubernetes manifests as a cluster receives them: each overlay of k8s/overlays rendered by
``kubectl kustomize`` (the virtual environment's kubectl from the dev extra, else the machine's)."""

from __future__ import annotations

import base64
import functools
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

K8S = Path(__file__).resolve().parents[1] / "k8s"
OVERLAYS = ("single-node", "production")


def tool(name: str) -> str:
    """A command-line tool of the dev extra (next to this interpreter), else from PATH."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert found, f"{name} is not installed: run `make setup`"
    return found


@functools.cache
def render(overlay: str) -> tuple[dict, ...]:
    """Every object ``kubectl kustomize k8s/overlays/<overlay>`` renders, in its order."""
    built = subprocess.run(
        [tool("kubectl"), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, f"kubectl kustomize {overlay}: {built.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(built.stdout) if doc)


def secret_data(doc: dict) -> dict[str, str]:
    """A Secret's values (``data`` decoded, ``stringData`` as is) or a ConfigMap's ``data``."""
    if doc["kind"] == "Secret":
        decoded = {key: base64.b64decode(value).decode() for key, value in doc.get("data", {}).items()}
        return decoded | doc.get("stringData", {})
    return dict(doc.get("data", {}))
