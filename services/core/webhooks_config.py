"""The ``webhooks`` section of the cluster configuration: where the gateway POSTs case transitions.

Each webhook names its receiver's URL and a file holding the signing secret (never the secret
itself, so the configuration can be shared and logged), and optionally which departments' cases
and which transitions it gets. The gateway delivers them (:mod:`retina.services.gateway.webhooks`).

The secret file is only read by the gateway, when it starts (:func:`read_secret`): the other
services load the same configuration without having the file mounted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, field_validator, model_validator

from retina.algorithms.sdk import ConfigModel
from retina.services.core.cases import CASE_ACTIONS, SYSTEM_ACTIONS
from retina.services.core.errors import ConfigError
from retina.services.core.validation import TOKEN_RULE, is_token, quote

TRANSITIONS = (*SYSTEM_ACTIONS, *CASE_ACTIONS)
MIN_SECRET_BYTES = 16


class WebhookConfig(ConfigModel):
    """One receiver of case transitions (数字城管 system, ticketing, chat bridge, ...)."""

    name: str = Field(description="names its JetStream consumer (webhook-<name>), metrics and logs")
    url: str = Field(max_length=2048, description="http(s) URL the transitions are POSTed to")
    secret_file: str = Field(
        min_length=1, description="file holding the HMAC-SHA256 signing secret (relative to this file)"
    )
    departments: list[str] = Field(
        default_factory=list, description="only cases of these responsible departments; none: every one"
    )
    actions: list[str] = Field(
        default_factory=list, description="only these transitions (open, assign, close, ...); none: all"
    )
    timeout_seconds: float = Field(default=10, gt=0, le=300, description="an attempt without answer fails")
    retry_initial_seconds: float = Field(default=1, gt=0, description="wait before the first retry")
    retry_max_seconds: float = Field(default=300, gt=0, description="the longest wait between two attempts")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not is_token(value):
            raise ValueError(f"{quote(value)}: {TOKEN_RULE} (it names a JetStream consumer)")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.isprintable() or " " in value:
            raise ValueError("must be one URL without spaces or control characters")
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 -- raises ValueError on a bad port
        except ValueError as exc:
            raise ValueError(f"not a URL ({exc})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{quote(value)}: give an http:// or https:// URL with a host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not carry credentials (user:password@): the signature authenticates")
        return value

    @field_validator("departments")
    @classmethod
    def _departments(cls, value: list[str]) -> list[str]:
        for department in value:
            if not is_token(department):
                raise ValueError(f"{quote(department)}: a department must {TOKEN_RULE}")
        return sorted(set(value))

    @field_validator("actions")
    @classmethod
    def _actions(cls, value: list[str]) -> list[str]:
        for action in value:
            if action not in TRANSITIONS:
                raise ValueError(
                    f"{quote(action)} is not a case transition (one of {', '.join(TRANSITIONS)})"
                )
        return sorted(set(value))

    @model_validator(mode="after")
    def _retry_bounds(self) -> WebhookConfig:
        if self.retry_initial_seconds > self.retry_max_seconds:
            raise ValueError(
                f"retry_initial_seconds: {self.retry_initial_seconds:g} is more than retry_max_seconds "
                f"({self.retry_max_seconds:g})"
            )
        return self

    @property
    def consumer(self) -> str:
        """The durable JetStream consumer on CASES that every gateway replica shares."""
        return consumer_name(self.name)


def consumer_name(webhook: str) -> str:
    return f"webhook-{webhook}"


def _unique_names(webhooks: list[WebhookConfig]) -> list[WebhookConfig]:
    names = [webhook.name for webhook in webhooks]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"webhook name used twice: {', '.join(duplicates)} (each has its own consumer)")
    return webhooks


Webhooks = Annotated[list[WebhookConfig], AfterValidator(_unique_names)]
"""The section's type: a list of webhooks with distinct names."""


def read_secret(webhook: WebhookConfig, index: int) -> bytes:
    """The signing secret in ``webhook.secret_file`` (surrounding whitespace stripped); ConfigError
    naming ``webhooks[index].secret_file`` when it is missing, unreadable, empty or short."""
    field = f"webhooks[{index}].secret_file"
    try:
        secret = Path(webhook.secret_file).read_bytes().strip()
    except FileNotFoundError:
        raise ConfigError([f"{field}: {webhook.secret_file}: no such file"]) from None
    except OSError as exc:
        raise ConfigError([f"{field}: {webhook.secret_file}: cannot read ({exc.strerror or exc})"]) from None
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(
            [f"{field}: {webhook.secret_file}: the secret must be at least {MIN_SECRET_BYTES} bytes"]
        )
    return secret
