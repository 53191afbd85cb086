"""Service configuration from the environment: data directory, job store, broker, API token, limits."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from fairsynth.errors import FairsynthError

DEFAULT_DATA_DIR = "~/.fairsynth"
DEFAULT_MAX_UPLOAD_MB = 200


class SettingsError(FairsynthError):
    """An environment variable has a value the services cannot use; the message names it."""


@dataclass(frozen=True)
class Settings:
    """Where data and jobs live and how work is executed.

    FAIRSYNTH_DATA_DIR        uploads, runs and logs (a shared volume when distributed); default ~/.fairsynth
    FAIRSYNTH_DATABASE_URL    SQLAlchemy URL of the job store; default SQLite file in the data directory
    FAIRSYNTH_BROKER_URL      Redis URL: run tasks on Celery workers instead of the local process pool
    FAIRSYNTH_EXECUTOR        local | celery (default: celery when a broker URL is set, else local)
    FAIRSYNTH_API_TOKEN       bearer token the API requires (mandatory when bound beyond loopback)
    FAIRSYNTH_MAX_UPLOAD_MB   largest accepted upload, in MiB (default 200)
    FAIRSYNTH_WORKERS         concurrent task processes of the local executor (default 2)
    FAIRSYNTH_STALE_SECONDS   a running task silent for this long is failed (default 120)
    """

    data_dir: Path
    database_url: str
    broker_url: str | None = None
    executor: str = "local"
    api_token: str | None = None
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * 1024 * 1024
    workers: int = 2
    heartbeat_seconds: float = 5.0
    stale_seconds: float = 120.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the FAIRSYNTH_* variables, with one clear sentence for a bad value."""
        env = os.environ if env is None else env
        data_dir = Path(env.get("FAIRSYNTH_DATA_DIR") or DEFAULT_DATA_DIR).expanduser().resolve()
        broker = env.get("FAIRSYNTH_BROKER_URL") or None
        executor = (env.get("FAIRSYNTH_EXECUTOR") or ("celery" if broker else "local")).lower()
        if executor not in ("local", "celery"):
            raise SettingsError(f"FAIRSYNTH_EXECUTOR is '{executor}'; use 'local' or 'celery'.")
        if executor == "celery" and not broker:
            raise SettingsError(
                "FAIRSYNTH_EXECUTOR is 'celery' but FAIRSYNTH_BROKER_URL is not set; "
                "give the Redis URL, e.g. redis://localhost:6379/0."
            )
        return cls(
            data_dir=data_dir,
            database_url=env.get("FAIRSYNTH_DATABASE_URL") or sqlite_url(data_dir / "fairsynth.db"),
            broker_url=broker,
            executor=executor,
            api_token=env.get("FAIRSYNTH_API_TOKEN") or None,
            max_upload_bytes=int(_number(env, "FAIRSYNTH_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB) * 1024 * 1024),
            workers=int(_number(env, "FAIRSYNTH_WORKERS", 2)),
            stale_seconds=_number(env, "FAIRSYNTH_STALE_SECONDS", 120.0),
        )

    def with_(self, **changes) -> Settings:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def environment(self) -> dict[str, str]:
        """These settings as FAIRSYNTH_* variables, for worker processes."""
        values = {
            "FAIRSYNTH_DATA_DIR": str(self.data_dir),
            "FAIRSYNTH_DATABASE_URL": self.database_url,
            "FAIRSYNTH_EXECUTOR": self.executor,
            "FAIRSYNTH_STALE_SECONDS": str(self.stale_seconds),
        }
        if self.broker_url:
            values["FAIRSYNTH_BROKER_URL"] = self.broker_url
        return values

    def ensure_dirs(self) -> None:
        """Create the data directory layout."""
        for sub in ("datasets", "runs", "logs"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)


def sqlite_url(path: Path) -> str:
    """SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{path}"


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} is '{raw}'; give a positive number.") from None
    if value <= 0:
        raise SettingsError(f"{name} is '{raw}'; give a positive number.")
    return value
