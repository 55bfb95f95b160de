"""retina installs as one namespace: `retina.v1`, `retina.services…`, `retina.algorithms…`."""

from __future__ import annotations

import subprocess
import sys
import tomllib

from tests.conftest import REPO

FOLDERS = {"protos/retina": "retina", "services": "retina.services", "algorithms": "retina.algorithms"}


def test_every_package_folder_is_installed_under_retina():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for folder, package in FOLDERS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder).parts
            found.add(".".join([package, *relative]))
    assert found == listed, f"add to / remove from pyproject's packages: {sorted(found ^ listed)}"


def test_only_retina_is_on_the_import_path(tmp_path):
    script = (
        "import importlib.util as u, retina.services.cli, retina.algorithms.base, retina.v1.common_pb2\n"
        "print([n for n in ('services', 'algorithms') if u.find_spec(n) is not None])"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", "top-level `services`/`algorithms` packages must not be importable"
