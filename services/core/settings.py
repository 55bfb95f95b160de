"""Each long-running service's own settings: one typed model per service, loaded in layers.

Where a value comes from, lowest precedence first:

1. the default below;
2. the cluster configuration file given with ``--config`` (only the few keys a service takes from
   it: ``nats.url``, ``scheduler.database_url``, ``plates.detector_model``, ``detector.model``);
3. the environment: ``RETINA_<SERVICE>_<SETTING>``, e.g. ``RETINA_WORKER_GRPC_PORT``,
   ``RETINA_INCIDENTS_DATABASE_URL`` (``<SERVICE>`` is ``WORKER``, ``SCHEDULER``, ``INCIDENTS``,
   ``SEARCH`` or ``GATEWAY``; ``<SETTING>`` is the field name in capitals);
4. the command line: ``--<setting>`` with dashes, e.g. ``--grpc-port``.

``retina up`` and the Kubernetes manifests pass the same settings, as flags (and the secrets as
environment variables); ``tests/test_deploy_manifests.py`` loads what each manifest passes with the
loader below. A bad value is a :class:`ConfigError` naming the setting and where it came from::

    grpc_port (from RETINA_WORKER_GRPC_PORT): Input should be a valid integer, ...

Two environment variables are not per service: ``RETINA_MODEL`` (the detector's weights when the
configuration file names none; read by :meth:`DetectorConfig.model_path` only) and
``RETINA_LOG_LEVEL`` (the ``retina --log-level`` option). Kubernetes sets variables such as
``RETINA_SEARCH_SERVICE_HOST`` and ``RETINA_SEARCH_PORT`` for its Services; no setting is named
``service_*`` or ``port`` so they never collide (a test checks), and other ``RETINA_<SERVICE>_*``
variables are ignored.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import Field, PrivateAttr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from retina.algorithms.sdk import error_message
from retina.services.core.config import MODEL_ENV, ConfigError, DetectorConfig, RetinaConfig, load_config
from retina.services.core.ports import DEFAULT_PORTS as PORTS
from retina.services.core.ports import LOCAL_NATS_URL as LOCAL_NATS
from retina.services.core.ports import local_address

LOCAL_INCIDENTS = local_address(PORTS.incidents_grpc)
NATS_SCHEMES = ("nats://", "tls://", "ws://", "wss://")

# The RETINA_* variables every service reads besides its own ``RETINA_<SERVICE>_*`` ones.
SHARED_ENV = {
    MODEL_ENV: "detector weights when the configuration file names none (workers, search, gateway)",
    "RETINA_LOG_LEVEL": "log level (retina --log-level)",
}

# The file values of the load in progress (see ServiceSettings.load): a context variable, so the
# file layer travels into pydantic-settings' source without becoming an init argument.
_FILE_LAYER: ContextVar[dict[str, Any] | None] = ContextVar("retina_settings_file_layer", default=None)


def _port(default: int, what: str) -> Any:
    return Field(default=default, ge=0, le=65535, description=f"{what} (0: any free port)")


class _ConfigFileSource(PydanticBaseSettingsSource):
    """The values taken from the cluster configuration file (the lowest layer but the defaults)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return (_FILE_LAYER.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_FILE_LAYER.get() or {})


class _LegacyEnvSource(PydanticBaseSettingsSource):
    """Old environment names still read, below the current ones (see ``LEGACY_ENV``)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        legacy: dict[str, str] = getattr(self.settings_cls, "LEGACY_ENV", {})
        return {setting: value for name, setting in legacy.items() if (value := _env_value(name)) is not None}


class ServiceSettings(BaseSettings):
    """What every service has: where it listens, its ports, its data folder, its config file.

    A subclass sets ``env_prefix`` (``RETINA_<SERVICE>_``) in its ``model_config``.
    """

    model_config = SettingsConfigDict(extra="forbid", case_sensitive=False, allow_inf_nan=False)

    NAME: ClassVar[str] = ""  # the command, in messages
    FROM_FILE: ClassVar[dict[str, str]] = {}  # setting → ``section.key`` of the configuration file
    CONFIG_REQUIRED: ClassVar[bool] = False
    LEGACY_ENV: ClassVar[dict[str, str]] = {}  # old variable name → setting (read below the new name)
    OTHER_ENV: ClassVar[tuple[str, ...]] = ()  # other RETINA_* variables the service reads

    config: str | None = Field(default=None, description="the cluster configuration file")
    listen: str = Field(default="127.0.0.1", min_length=1, description="address to listen on")
    data_dir: Path
    metrics_port: int
    auth_file: Path | None = Field(
        default=None, description="digests of the service tokens (service-auth.json): who may call"
    )
    token_file: Path | None = Field(default=None, description="this service's own token (gRPC and NATS)")
    allow_unauthenticated: bool = Field(
        default=False, description="without auth_file, accept every call from anyone (development only)"
    )

    _cluster: RetinaConfig = PrivateAttr(default_factory=RetinaConfig)

    @field_validator("config", "incidents_address", "worker_id", "scheduler", "advertise", check_fields=False)
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("data_dir", mode="before")
    @classmethod
    def _not_blank(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("nats_url", check_fields=False)
    @classmethod
    def _nats_url(cls, value: str) -> str:
        if not value.startswith(NATS_SCHEMES):
            raise ValueError(f"a NATS URL starts with {', '.join(NATS_SCHEMES)} (e.g. {LOCAL_NATS})")
        return value

    @field_validator("database_url", check_fields=False)
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(value)
        except (ArgumentError, ValueError):
            raise ValueError(
                "not a database URL (postgresql+psycopg://user:password@host/db, or sqlite:////path)"
            ) from None
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Highest precedence first: flags, RETINA_<SERVICE>_*, old names, the configuration file.
        return (init_settings, env_settings, _LegacyEnvSource(settings_cls), _ConfigFileSource(settings_cls))

    # -- names ------------------------------------------------------------------------------------

    @property
    def role(self) -> str:
        """The role this service calls others as (service_auth.ROLES): ``worker`` for
        ``RETINA_WORKER_``."""
        return self.model_config["env_prefix"].removeprefix("RETINA_").strip("_").lower()

    @classmethod
    def env_name(cls, setting: str) -> str:
        """``RETINA_WORKER_GRPC_PORT`` for the worker's ``grpc_port``."""
        return f"{cls.model_config['env_prefix']}{setting.upper()}"

    @staticmethod
    def flag(setting: str) -> str:
        """``--grpc-port`` for ``grpc_port``."""
        return "--" + setting.replace("_", "-")

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Every RETINA_* environment variable this service reads → the setting it gives, or what
        it is for."""
        names = {cls.env_name(name): name for name in cls.model_fields}
        names |= {old: setting for old, setting in cls.LEGACY_ENV.items()}
        names |= {name: SHARED_ENV.get(name, "read by the service itself") for name in cls.OTHER_ENV}
        return names | {"RETINA_LOG_LEVEL": SHARED_ENV["RETINA_LOG_LEVEL"]}

    # -- loading ----------------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        flags: Mapping[str, Any] | None = None,
        read_config: Callable[[str], RetinaConfig] | None = None,
    ) -> Self:
        """The settings from the file, the environment and ``flags`` (setting → value given on the
        command line); raises ConfigError naming each bad setting and where its value came from.

        ``read_config`` reads the configuration file (default: :func:`load_config`'s config,
        without its per-camera errors); what it read is then :attr:`cluster`.
        """
        flags = dict(flags or {})
        unknown = sorted(set(flags) - set(cls.model_fields))
        if unknown:
            raise ConfigError([f"{name}: not a setting of {cls.NAME}" for name in unknown])
        path = flags.get("config") or _env_value(cls.env_name("config"))
        if cls.CONFIG_REQUIRED and not path:
            raise ConfigError([cls._missing("config")])
        cluster = (read_config or (lambda p: load_config(p).config))(path) if path else RetinaConfig()
        file_values = cls._file_values(cluster)
        token = _FILE_LAYER.set(file_values)
        try:
            settings = cls(**flags)
        except ValidationError as exc:
            raise ConfigError(cls._explain(exc, flags, file_values, path)) from None
        finally:
            _FILE_LAYER.reset(token)
        settings._cluster = cluster
        return settings

    @property
    def cluster(self) -> RetinaConfig:
        """The cluster configuration read from ``config`` (the defaults when there is none)."""
        return self._cluster

    @classmethod
    def _file_values(cls, cluster: RetinaConfig) -> dict[str, Any]:
        """The settings the configuration file sets (keys it leaves out are not taken)."""
        values = {}
        for setting, dotted in cls.FROM_FILE.items():
            section_name, key = dotted.split(".")
            section = getattr(cluster, section_name)
            if key in section.model_fields_set:
                values[setting] = getattr(section, key)
        return values

    @classmethod
    def _missing(cls, setting: str) -> str:
        return f"{setting}: required by {cls.NAME}: give {cls.flag(setting)} or set {cls.env_name(setting)}"

    @classmethod
    def _source(
        cls, setting: str, flags: Mapping[str, Any], file_values: Mapping[str, Any], path: str | None
    ) -> str:
        if setting in flags:
            return cls.flag(setting)
        if _env_value(cls.env_name(setting)) is not None:
            return cls.env_name(setting)
        for old, target in cls.LEGACY_ENV.items():
            if target == setting and _env_value(old) is not None:
                return old
        if setting in file_values:
            return f"{cls.FROM_FILE[setting]} in {path}"
        return "the default"

    @classmethod
    def _explain(
        cls, exc: ValidationError, flags: Mapping[str, Any], file_values: Mapping[str, Any], path: str | None
    ) -> list[str]:
        lines = []
        for item in exc.errors():
            setting = str(item["loc"][0]) if item["loc"] else ""
            if item["type"] == "missing":
                lines.append(cls._missing(setting))
            elif setting in cls.model_fields:
                source = cls._source(setting, flags, file_values, path)
                lines.append(f"{setting} (from {source}): {error_message(item)}")
            else:
                lines.append(f"{cls.NAME}: {error_message(item)}")
        return lines


def _env_value(name: str) -> str | None:
    """The environment variable ``name``, matched without regard to case as pydantic-settings does."""
    if name in os.environ:
        return os.environ[name]
    upper = name.upper()
    return next((value for key, value in os.environ.items() if key.upper() == upper), None)


class WorkerSettings(ServiceSettings):
    """``retina worker``: an analysis worker."""

    model_config = SettingsConfigDict(env_prefix="RETINA_WORKER_")
    NAME: ClassVar[str] = "retina worker"
    FROM_FILE: ClassVar[dict[str, str]] = {"nats_url": "nats.url"}
    CONFIG_REQUIRED: ClassVar[bool] = True
    OTHER_ENV: ClassVar[tuple[str, ...]] = (MODEL_ENV,)

    data_dir: Path = Field(default=Path("var/worker"), description="outboxes of incidents and features")
    nats_url: str = Field(default=LOCAL_NATS, description="NATS server")
    grpc_port: int = _port(PORTS.worker_grpc, "gRPC")
    metrics_port: int = _port(PORTS.worker_metrics, "Prometheus metrics")
    worker_id: str | None = Field(default=None, description="this worker's id (default: from the host name)")
    scheduler: str | None = Field(default=None, description="scheduler address: register there")
    advertise: str | None = Field(default=None, description="host:port the scheduler reaches it at")


class SchedulerSettings(ServiceSettings):
    """``retina scheduler serve``: the scheduler and camera registry."""

    model_config = SettingsConfigDict(env_prefix="RETINA_SCHEDULER_")
    NAME: ClassVar[str] = "retina scheduler serve"
    FROM_FILE: ClassVar[dict[str, str]] = {"database_url": "scheduler.database_url"}
    LEGACY_ENV: ClassVar[dict[str, str]] = {"RETINA_DATABASE_URL": "database_url"}

    data_dir: Path = Field(default=Path("var/scheduler"), description="the SQLite registry (no database URL)")
    grpc_port: int = _port(PORTS.scheduler_grpc, "gRPC")
    metrics_port: int = _port(PORTS.scheduler_metrics, "Prometheus metrics")
    incidents_address: str | None = Field(default=LOCAL_INCIDENTS, description="incident store ('': none)")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default: SQLite in data_dir")


class IncidentStoreSettings(ServiceSettings):
    """``retina incidents serve``: the incident store."""

    model_config = SettingsConfigDict(env_prefix="RETINA_INCIDENTS_")
    NAME: ClassVar[str] = "retina incidents serve"
    FROM_FILE: ClassVar[dict[str, str]] = {"nats_url": "nats.url"}

    data_dir: Path = Field(default=Path("var/incidents"), description="SQLite store and media folder")
    nats_url: str = Field(default=LOCAL_NATS, description="NATS server")
    grpc_port: int = _port(PORTS.incidents_grpc, "gRPC")
    metrics_port: int = _port(PORTS.incidents_metrics, "Prometheus metrics")
    media_max_gb: float = Field(default=50, ge=0, description="snapshots and clips kept, in GiB")
    media_max_age_days: float = Field(default=30, ge=0, description="older media is deleted")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default: SQLite in data_dir")

    @property
    def media_max_bytes(self) -> int:
        return int(self.media_max_gb * 1024**3)

    @property
    def media_max_age_seconds(self) -> float:
        return self.media_max_age_days * 24 * 3600


class SearchSettings(ServiceSettings):
    """``retina search serve``: search by image."""

    model_config = SettingsConfigDict(env_prefix="RETINA_SEARCH_")
    NAME: ClassVar[str] = "retina search serve"
    FROM_FILE: ClassVar[dict[str, str]] = {"nats_url": "nats.url"}
    CONFIG_REQUIRED: ClassVar[bool] = True
    OTHER_ENV: ClassVar[tuple[str, ...]] = (MODEL_ENV,)

    data_dir: Path = Field(default=Path("var/search"), description="index shards and the feature store")
    nats_url: str = Field(default=LOCAL_NATS, description="NATS server")
    grpc_port: int = _port(PORTS.search_grpc, "gRPC")
    metrics_port: int = _port(PORTS.search_metrics, "Prometheus metrics")
    incidents_address: str | None = Field(default=LOCAL_INCIDENTS, description="for searches by incident id")
    replica_id: str | None = Field(
        default=None,
        description="this replica's own FEATURES consumer (search-index-<id>; each replica indexes every"
        " record); default: the host name (a StatefulSet pod's name); '': the one shared consumer"
        " search-index (retina up)",
    )


class GatewaySettings(ServiceSettings):
    """``retina gateway serve``: the authenticated HTTP front door (REST API, live events)."""

    model_config = SettingsConfigDict(env_prefix="RETINA_GATEWAY_")
    NAME: ClassVar[str] = "retina gateway serve"
    FROM_FILE: ClassVar[dict[str, str]] = {
        "nats_url": "nats.url",
        "plate_detector_model": "plates.detector_model",
        "person_detector_model": "detector.model",
    }
    OTHER_ENV: ClassVar[tuple[str, ...]] = (MODEL_ENV,)

    data_dir: Path = Field(default=Path("var/gateway"), description="accounts and audit (SQLite)")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default: SQLite in data_dir")
    nats_url: str = Field(default=LOCAL_NATS, description="NATS server (live events)")
    http_port: int = _port(PORTS.gateway_http, "HTTP: REST API and console")
    metrics_port: int = _port(PORTS.gateway_metrics, "Prometheus metrics")
    incidents_address: str | None = Field(default=LOCAL_INCIDENTS, description="incident store")
    search_address: str = Field(default=local_address(PORTS.search_grpc), description="search service")
    scheduler_address: str = Field(
        default=local_address(PORTS.scheduler_grpc), description="scheduler and camera registry"
    )
    session_hours: float = Field(default=12, gt=0, le=24 * 30, description="a browser session's lifetime")
    token_days: float = Field(default=90, gt=0, le=3650, description="default lifetime of an API token")
    login_max_failures: int = Field(
        default=5, ge=1, description="failed logins for one user or address before it must wait"
    )
    login_lockout_seconds: float = Field(
        default=300, ge=1, le=24 * 3600, description="how long it waits after too many failed logins"
    )
    verify_seconds: float = Field(
        default=120, ge=0, le=24 * 3600,
        description="after 'handle', watch the scene this long before verifying (0: verify by hand)",
    )  # fmt: skip
    max_upload_mb: float = Field(default=20, gt=0, le=200, description="largest photo accepted (MB)")
    cookie_secure: bool = Field(
        default=True, description="session cookies only over HTTPS (browsers count http://localhost as such)"
    )
    tls_cert_file: Path | None = Field(default=None, description="serve HTTPS with this certificate (PEM)")
    tls_key_file: Path | None = Field(default=None, description="the certificate's private key (PEM)")
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="proxies (IPs or CIDRs, comma-separated; '*': any) whose X-Forwarded-For names "
        "the client: the login throttle and the audit trail use that address",
    )
    map_tile_url: str | None = Field(
        default=None,
        description="the console map's tile server, e.g. https://tiles.city.gov/{z}/{x}/{y}.png "
        "(none: cameras drawn by their coordinates)",
    )
    oidc_issuer: str | None = Field(default=None, description="single sign-on: the OIDC issuer URL")
    oidc_client_id: str | None = Field(default=None, description="single sign-on: this gateway's client id")
    oidc_client_secret: str | None = Field(default=None, description="single sign-on: the client secret")
    oidc_department_claim: str = Field(default="department", description="the claim naming the department")
    oidc_role_claim: str = Field(default="retina_role", description="the claim naming the role")
    oidc_state_secret: str | None = Field(
        default=None,
        description="key signing single sign-on state cookies; give every replica the same one "
        "(default: made once in data_dir)",
    )
    redact_evidence: bool = Field(
        default=True,
        description="blur faces and plates in evidence images and clips for roles other than police "
        "and admin (who see originals, audited)",
    )
    plate_detector_model: Path | None = Field(
        default=None, description="y5fu plate detector (.onnx) finding the plates to blur; none: not blurred"
    )
    person_detector_model: str | None = Field(
        default=None,
        description="the workers' detector (.onnx/.pt) finding the people whose heads are blurred; "
        "default: detector.model of --config, else RETINA_MODEL; none: heads not blurred",
    )
    face_detector_model: Path | None = Field(
        default=None,
        description="YuNet face detector (.onnx, run by OpenCV's FaceDetectorYN): faces it finds are "
        "blurred too, besides the heads of the people the person detector finds",
    )

    @field_validator("plate_detector_model", "face_detector_model", mode="before")
    @classmethod
    def _model_file(cls, value: Any) -> Any:
        """An empty value is none; a given model must be a file (checked at load, not on first use)."""
        if value is None or value == "":
            return None
        if isinstance(value, str | Path) and not Path(value).is_file():
            raise ValueError(f"{value}: no such file")
        return value

    @field_validator("person_detector_model")
    @classmethod
    def _person_detector(cls, value: str | None) -> str | None:
        """The detector's weights must load as the workers' do (a path that is a file, or a name
        Ultralytics may download), and run on the CPU."""
        if value and (problem := DetectorConfig.weights_problem(value)):
            raise ValueError(problem)
        if value and Path(value).suffix == ".engine":
            raise ValueError(f"{value}: a TensorRT engine needs a GPU; the gateway detects on the CPU")
        return value or None

    @field_validator("face_detector_model")
    @classmethod
    def _yunet(cls, value: Path | None) -> Path | None:
        """A face model must be a YuNet ONNX that this OpenCV loads (checked at load)."""
        if value is None:
            return None
        import cv2

        try:
            cv2.FaceDetectorYN.create(str(value), "", (320, 320))
        except cv2.error:
            raise ValueError(f"{value}: not a YuNet face model OpenCV {cv2.__version__} can load") from None
        return value

    @field_validator("map_tile_url")
    @classmethod
    def _tile_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("http://", "https://")) or not all(
            p in value for p in ("{z}", "{x}", "{y}")
        ):
            raise ValueError(
                "give an http(s) URL with {z}, {x} and {y}, e.g. https://tiles.city.gov/{z}/{x}/{y}.png"
            )
        return value

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


SERVICES: dict[str, type[ServiceSettings]] = {
    "worker": WorkerSettings,
    "scheduler serve": SchedulerSettings,
    "incidents serve": IncidentStoreSettings,
    "search serve": SearchSettings,
    "gateway serve": GatewaySettings,
}
"""The settings model of each service command (``retina <command>``)."""


def default(model: type[ServiceSettings], setting: str) -> Any:
    """The default of ``setting`` as a flag's default (a Path becomes its string)."""
    value = model.model_fields[setting].default
    return str(value) if isinstance(value, Path) else value
