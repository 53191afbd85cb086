"""Service configuration from the environment: data directory, job store, broker, API token, limits.

Each field is one FAIRSYNTH_<FIELD> variable; its description is the documentation (README,
"Configuration (environment)", lists the same variables, meanings and defaults).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import (
    Field,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from fairsynth.errors import FairsynthError, requirement

ENV_PREFIX = "FAIRSYNTH_"
DEFAULT_DATA_DIR = "~/.fairsynth"
DEFAULT_MAX_UPLOAD_MB = 200
MODEL_KEY_NAME = "model-signing.key"
UNPACKED_PER_UPLOAD = 20  # a compressed upload may unpack to this many times the upload limit
# A task process keeps freed memory for its next batch instead of handing it back to the system and
# faulting fresh pages in again (glibc below 64 MiB per block and up to 256 MiB idle; Arrow's mimalloc
# pool never purges): 4-5% less CPU per sampled row on SUPPORT2. A variable already set wins.
TASK_ALLOCATOR_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(64 << 20),
    "MALLOC_TRIM_THRESHOLD_": str(256 << 20),
    "MIMALLOC_PURGE_DELAY": "-1",
}


class SettingsError(FairsynthError):
    """An environment variable has a value the services cannot use; the message names it."""


class Settings(BaseSettings):
    """Where data and jobs live and how work is executed, read from the FAIRSYNTH_* variables by `from_env`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True, frozen=True, extra="forbid")

    data_dir: Path = Field(
        default=Path(DEFAULT_DATA_DIR),
        validate_default=True,
        description="uploads, runs, job store, logs (a shared volume when distributed)",
    )
    database_url: str = Field(
        default="",
        validate_default=True,
        description="job store (SQLAlchemy URL), e.g. `postgresql+psycopg://user:pw@host/db`",
    )
    database_password_file: Path | None = Field(
        default=None,
        description="a file holding the job store's password (a compose or Kubernetes secret), "
        "put into FAIRSYNTH_DATABASE_URL so the password is never in the environment",
    )
    broker_url: str | None = Field(
        default=None, description="Redis URL: run tasks on Celery workers (`fairsynth worker --queues torch,sdv`)"
    )
    executor: Literal["local", "celery"] = Field(default="", validate_default=True, description="`local` or `celery`")
    api_token: str | None = Field(
        default=None, description="bearer token; `fairsynth serve` refuses to bind beyond loopback without it"
    )
    max_upload_mb: PositiveFloat = Field(
        default=DEFAULT_MAX_UPLOAD_MB,
        description=f"largest upload as sent, in MiB; a compressed CSV may unpack to {UNPACKED_PER_UPLOAD} times this",
    )
    crate_max_unpacked_mb: PositiveFloat = Field(
        default=4096, description="largest total a crate zip may unpack to, in MiB (validate, deposit)"
    )
    crate_max_entries: PositiveInt = Field(default=10_000, description="most files and folders a crate zip may hold")
    crate_max_ratio: PositiveFloat = Field(
        default=200, description="largest compression ratio of one crate zip entry (a guard against zip bombs)"
    )
    max_rows: PositiveInt = Field(
        default=10_000_000, description="most synthetic rows per backend one API job may ask for (`rows`)"
    )
    dataset_batch_subjects: PositiveInt = Field(
        default=1_000, description="synthetic subjects (root rows with all their descendants) generated per batch"
    )
    max_dataset_tables: PositiveInt = Field(
        default=20, description="most tables one uploaded table set (a dataset of several related tables) may hold"
    )
    dataset_quality_rows: PositiveInt = Field(
        default=20_000,
        description="rows of a dataset's largest table the multi-table quality report compares (whole subjects are "
        "sampled to this size from the real and from the synthetic tables)",
    )
    workers: PositiveInt = Field(default=2, description="parallel task processes of the local executor")
    stale_seconds: PositiveFloat = Field(
        default=120.0, description="a running task silent for this many seconds is failed"
    )
    model_key_file: Path | None = Field(
        default=None,
        validate_default=True,
        description="the installation's key that signs saved pickled models (ydata); "
        "kept outside every model folder, made on first use",
    )
    neutralise_csv_formulas: bool = Field(
        default=True,
        description="CSV text cells and headers beginning with = + - @ tab or CR get a leading ' so spreadsheets "
        "show them as text (OWASP CSV injection); `false` writes raw values for pipelines that need them",
    )
    progress_percent: PositiveInt = Field(
        default=10,
        description="with output not a terminal, the CLI prints a stage's progress each time it gains this many %",
    )
    progress_seconds: PositiveFloat = Field(
        default=60.0,
        description="with output not a terminal, the CLI prints a running stage's progress at least this often",
    )
    reuse_task_memory: bool = Field(
        default=True,
        description="local task processes keep freed memory for reuse instead of returning it to the system "
        "(allocator variables; fewer page faults, 4-5% faster sampling); `false` gives memory back at once",
    )
    # How often a running task says it is alive; not a variable: stale_seconds must stay well above it.
    heartbeat_seconds: ClassVar[float] = 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the FAIRSYNTH_* variables of env (default os.environ), with one clear sentence per bad value."""
        values = _EnvironSource(cls, os.environ if env is None else env)()
        try:
            return cls(**values)
        except ValidationError as error:
            raise SettingsError(*(_sentence(detail) for detail in error.errors())) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        **_other_sources: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the values given: from_env hands over the variables of the one mapping it reads."""
        return (init_settings,)

    @model_validator(mode="before")
    @classmethod
    def _password_from_file(cls, values: Any) -> Any:
        password_file = values.get("database_password_file") if isinstance(values, dict) else None
        if not password_file or not values.get("database_url"):
            return values
        return {**values, "database_url": url_with_password(values["database_url"], Path(password_file))}

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("database_url")
    @classmethod
    def _sqlite_in_data_dir(cls, value: str, info: ValidationInfo) -> str:
        if value or "data_dir" not in info.data:
            return value
        return sqlite_url(info.data["data_dir"] / "fairsynth.db")

    @field_validator("model_key_file")
    @classmethod
    def _key_in_data_dir(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None or "data_dir" not in info.data:
            return value.expanduser().resolve() if value is not None else None
        return info.data["data_dir"] / MODEL_KEY_NAME

    @field_validator("executor", mode="before")
    @classmethod
    def _executor_follows_broker(cls, value: Any, info: ValidationInfo) -> Any:
        if not value:
            return "celery" if info.data.get("broker_url") else "local"
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _celery_needs_broker(self) -> Settings:
        if self.executor == "celery" and not self.broker_url:
            raise ValueError(
                f"{ENV_PREFIX}EXECUTOR is 'celery' but {ENV_PREFIX}BROKER_URL is not set; "
                "give the Redis URL, e.g. redis://localhost:6379/0."
            )
        return self

    @property
    def max_upload_bytes(self) -> int:
        """The upload limit in bytes."""
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def crate_max_unpacked_bytes(self) -> int:
        """What a crate zip may unpack to, in bytes."""
        return int(self.crate_max_unpacked_mb * 1024 * 1024)

    @property
    def max_unpacked_bytes(self) -> int:
        """What a compressed upload may unpack to, in bytes (a guard against decompression bombs)."""
        return self.max_upload_bytes * UNPACKED_PER_UPLOAD

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed."""
        return self.model_copy(update=changes)

    def environment(self) -> dict[str, str]:
        """These settings as FAIRSYNTH_* variables, for worker processes."""
        values = {
            "FAIRSYNTH_DATA_DIR": str(self.data_dir),
            "FAIRSYNTH_DATABASE_URL": self.database_url,
            "FAIRSYNTH_EXECUTOR": self.executor,
            "FAIRSYNTH_STALE_SECONDS": str(self.stale_seconds),
            "FAIRSYNTH_NEUTRALISE_CSV_FORMULAS": str(self.neutralise_csv_formulas).lower(),
            "FAIRSYNTH_MODEL_KEY_FILE": str(self.model_key_file),
        }
        if self.broker_url:
            values["FAIRSYNTH_BROKER_URL"] = self.broker_url
        return values

    def task_environment(self, inherited: Mapping[str, str]) -> dict[str, str]:
        """The environment of a task process: the inherited one, the allocator's reuse settings where it sets
        none (when reuse_task_memory), and these settings."""
        reuse = TASK_ALLOCATOR_ENV if self.reuse_task_memory else {}
        return {**reuse, **inherited, **self.environment()}

    def ensure_dirs(self) -> None:
        """Create the data directory layout, and name the model signing key to backends in this process."""
        for sub in ("datasets", "runs", "logs"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        os.environ[env_name("model_key_file")] = str(self.model_key_file)


class _EnvironSource(EnvSettingsSource):
    """pydantic-settings' environment source reading a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self.environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self.environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


def env_name(field: str) -> str:
    """The environment variable of a Settings field."""
    return ENV_PREFIX + field.upper()


def url_with_password(url: str, password_file: Path) -> str:
    """The database URL with the password read from a file (its content less the trailing newline)."""
    from sqlalchemy.engine import make_url

    try:
        password = password_file.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as error:
        raise ValueError(
            f"{ENV_PREFIX}DATABASE_PASSWORD_FILE names {password_file}, which cannot be read ({error.strerror}); "
            "mount the password file there, readable by the service's user."
        ) from None
    return make_url(url).set(password=password).render_as_string(hide_password=False)


def sqlite_url(path: Path) -> str:
    """SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{path}"


def _sentence(error: Mapping[str, Any]) -> str:
    """One pydantic error as one sentence naming the variable, its value and what to give instead."""
    context = error.get("ctx", {})
    if not error["loc"]:  # a check across variables words its own sentence
        return str(context.get("error", error["msg"]))
    return f"{env_name(str(error['loc'][0]))} is '{error['input']}'; it {requirement(error)}."
