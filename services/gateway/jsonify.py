"""Protobuf answers of the services as the JSON the REST API returns (one shape everywhere), and
the times the API takes (those a protobuf Timestamp holds)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from google.protobuf import json_format
from google.protobuf.message import Message
from pydantic import AfterValidator

from retina.services.core.serving import to_timestamp


def to_json(message: Message) -> dict[str, Any]:
    """The message as a dict: proto field names, every field present (empty ones as "", 0, [] or
    false, so a client can rely on the keys), timestamps as RFC 3339 strings."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def iso_time(epoch: float | None) -> str | None:
    """Epoch seconds as the API writes times (RFC 3339 in UTC); None stays None."""
    return datetime.fromtimestamp(epoch, UTC).isoformat() if epoch is not None else None


def _fits_a_timestamp(value: datetime) -> datetime:
    """``value`` if a protobuf Timestamp holds it; otherwise the ValueError that FastAPI answers
    with 422 naming the field (instead of a 500 where the handler converts it)."""
    try:
        to_timestamp(value.timestamp())
    except (ValueError, OverflowError):  # before 0001-01-01 or after 9999-12-31 in UTC
        raise ValueError("must be between 0001-01-01 and 9999-12-31 (UTC)") from None
    return value


# A date and time the API takes (a query, form or body field), within a protobuf Timestamp's range.
Time = Annotated[datetime, AfterValidator(_fits_a_timestamp)]
