"""Generated code and the incident JSON Schema are checked in; they must match their sources."""

from pathlib import Path

from retina.services.core import incident
from retina.services.core.protogen import PROTO_ROOT, generate


def test_generated_grpc_code_is_current(tmp_path: Path):
    for fresh in generate(tmp_path):
        checked_in = PROTO_ROOT / fresh.relative_to(tmp_path)
        assert checked_in.exists(), f"{checked_in} missing: run `make protos`"
        assert checked_in.read_text() == fresh.read_text(), f"{checked_in} is stale: run `make protos`"


def test_incident_schema_file_is_current():
    assert incident.SCHEMA_PATH.read_text() == incident.json_schema(), (
        "services/core/incident.schema.json is stale: run `python -m retina.services.core.incident`"
    )
