"""Typed configuration: what one generation run asks for, from the CLI, a YAML file, the API or the UI."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_BACKENDS = ("marginals",)


class ConfigError(ValueError):
    """A request or config file is invalid; the message says which field and why."""


class BackendSpec(BaseModel):
    """One backend to run and its parameters (epochs, batch_size, epsilon, ...)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    params: dict[str, object] = Field(default_factory=dict)


class SchemaOverrides(BaseModel):
    """The user's corrections to the inferred schema."""

    model_config = ConfigDict(extra="forbid")
    kinds: dict[str, str] = Field(default_factory=dict)
    formats: dict[str, str] = Field(default_factory=dict)
    drop: list[str] = Field(default_factory=list)
    target: str | None = None


class GenerationRequest(BaseModel):
    """Everything that defines a run: with the seed and the environment it repeats the same rows."""

    model_config = ConfigDict(extra="forbid")
    input_path: str | None = None  # None: the embedded demo table
    schema_overrides: SchemaOverrides = Field(default_factory=SchemaOverrides)
    backends: list[BackendSpec] = Field(default_factory=lambda: [BackendSpec(name=n) for n in DEFAULT_BACKENDS])
    rows: int | None = Field(default=None, ge=1, description="rows to generate; default: as many as the training split")
    seed: int = 0
    holdout_share: float = Field(default=0.2, ge=0.05, le=0.5)
    output_dir: str | None = None  # None: runs/<UTC time>
    output_format: Literal["csv", "parquet"] = "csv"
    batch_rows: int = Field(default=100_000, ge=1)
    evaluation_rows: int = Field(default=10_000, ge=100, description="synthetic rows kept in memory for metrics")
    encoding: str = "utf-8"
    separator: str | None = None

    @field_validator("backends")
    @classmethod
    def _distinct_backends(cls, value: list[BackendSpec]) -> list[BackendSpec]:
        names = [b.name for b in value]
        if not names:
            raise ValueError("name at least one backend")
        if len(set(names)) != len(names):
            raise ValueError(f"each backend may appear once; got {', '.join(names)}")
        return value


def load_request(path: str | Path) -> GenerationRequest:
    """Read a GenerationRequest from YAML or JSON, with one clear sentence on errors."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) if path.suffix.lower() in (".yaml", ".yml") else json.loads(path.read_text())
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path} cannot be read as a run configuration ({exc}).") from exc
    return parse_request(raw or {}, str(path))


def parse_request(raw: dict, label: str = "the request") -> GenerationRequest:
    """Validate a dict into a GenerationRequest; backends may be given as plain names."""
    if isinstance(raw.get("backends"), list):
        raw = {**raw, "backends": [{"name": b} if isinstance(b, str) else b for b in raw["backends"]]}
    try:
        return GenerationRequest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "request"
        raise ConfigError(f"In {label}, '{where}' is invalid: {first['msg']}.") from exc
