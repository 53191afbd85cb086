"""Typed configuration: what one generation run asks for, from the CLI, a YAML file, the API or the UI."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Self, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fairsynth.backends import registry
from fairsynth.backends.base import BackendError, ParameterError
from fairsynth.errors import FairsynthError, field_problems
from fairsynth.metadata.model import CrateInfo
from fairsynth.metadata.rules import MIN_RULE_SUPPORT
from fairsynth.metadata.schema import MIN_LEVEL_ROWS, MinLevelRows
from fairsynth.services.run.evaluation.frames import QUALITY_ROWS
from fairsynth.services.run.evaluation.gate import ReleasePolicy
from fairsynth.services.run.tables import reading_problems

M = TypeVar("M", bound=BaseModel)
DEFAULT_BACKENDS = ("tvae",)  # the in-house TVAE: what a run uses when it names no backend


class ConfigError(FairsynthError):
    """A request or config file is invalid; each problem says which field and why."""


class BackendSpec(BaseModel):
    """One backend to run and its parameters (epochs, batch_size, epsilon, ...); the request checks them."""

    model_config = ConfigDict(extra="forbid")
    name: str
    params: dict[str, object] = Field(
        default_factory=dict, description="the backend's parameters; GET /backends gives each one's JSON schema"
    )


class SchemaOverrides(BaseModel):
    """The user's corrections to the inferred schema."""

    model_config = ConfigDict(extra="forbid")
    kinds: dict[str, str] = Field(default_factory=dict)
    formats: dict[str, str] = Field(default_factory=dict)
    drop: list[str] = Field(default_factory=list)
    target: str | None = None
    rules: list[str] = Field(
        default_factory=list,
        description="rules to add and enforce, as written: 'discharge_date >= admission_date'; the data must keep them",
    )
    rules_off: list[str] = Field(
        default_factory=list, description="detected rules to turn off (measured only, not enforced), as written"
    )
    min_rule_support: int | None = Field(
        None,
        ge=1,
        description=f"rows a detected rule must hold in; a new value detects again (default {MIN_RULE_SUPPORT})",
    )


class GenerationRequest(BaseModel):
    """Everything that defines a run: with the seed and the environment it repeats the same rows."""

    model_config = ConfigDict(extra="forbid")
    input_path: str | None = None  # None: the embedded demo table
    schema_overrides: SchemaOverrides = Field(default_factory=SchemaOverrides)
    backends: list[BackendSpec] = Field(default_factory=lambda: [BackendSpec(name=n) for n in DEFAULT_BACKENDS])
    rows: int | None = Field(default=None, ge=1, description="rows to generate; default: as many as the training split")
    min_level_rows: MinLevelRows = MIN_LEVEL_ROWS
    seed: int = Field(default=0, ge=0, le=2**32 - 1, description="seed for split, fit and sampling")
    holdout_share: float = Field(default=0.2, ge=0.05, le=0.5)
    output_dir: str | None = None  # None: runs/<UTC time>
    output_format: Literal["csv", "parquet"] = "csv"
    batch_rows: int = Field(default=100_000, ge=1)
    evaluation_rows: int = Field(
        default=QUALITY_ROWS,
        ge=100,
        description="synthetic rows kept in memory for metrics (the quality score samples up to QUALITY_ROWS)",
    )
    encoding: str = "utf-8"
    separator: str | None = None
    policy: ReleasePolicy = Field(default_factory=ReleasePolicy)
    anonymeter: bool = Field(default=True, description="run anonymeter's attacks (slowest privacy measure)")
    second_evaluator: bool = Field(
        default=False,
        description="also score quality with mostlyai-qa's accuracy, in the MOSTLY AI venv (make install-mostly)",
    )
    package_crates: bool = Field(default=False, description="write <backend>.crate.zip per backend")
    crate: dict | None = Field(default=None, description="CrateInfo fields: title, description, authors, license, ...")

    @model_validator(mode="after")
    def _backends_and_params_exist(self) -> Self:
        """Every entry point (CLI, config file, API, UI) refuses bad backend parameters here, before a run starts.

        All backends' problems are raised together as one ParameterError (a BackendError, not a ValueError, so
        pydantic passes it through unchanged); the given values are kept, converted to their types. Unknown and
        unavailable backends are the run's concern (pipeline.prepare_run): a stored request stays readable.
        """
        problems: list[str] = []
        for spec in self.backends:
            try:
                checked = registry.params_model(spec.name).checked(spec.name, spec.params)
            except ParameterError as exc:
                problems += exc.problems
                continue
            except BackendError:  # unknown or unloadable: prepare_run names it with the others
                continue
            spec.params = checked.model_dump(mode="json", exclude_unset=True)
        if problems:
            raise ParameterError(*problems)
        return self

    @model_validator(mode="after")
    def _reading_options_exist(self) -> Self:
        """An unknown encoding or a separator of more than one character is refused before anything is read."""
        problems = reading_problems(self.encoding, self.separator)
        if problems:
            raise ConfigError(*problems)
        return self

    @field_validator("backends")
    @classmethod
    def _distinct_backends(cls, value: list[BackendSpec]) -> list[BackendSpec]:
        names = [b.name for b in value]
        if not names:
            raise ValueError("name at least one backend")
        if len(set(names)) != len(names):
            raise ValueError(f"each backend may appear once; got {', '.join(names)}")
        return value


def crate_info(request: GenerationRequest, source_label: str) -> CrateInfo:
    """The crate metadata the user gave, with a title and description made from the run when missing."""
    return crate_info_from(request.crate or {}, source_label)


def crate_info_from(fields: dict, source_label: str, *, what: str = "A synthetic table") -> CrateInfo:
    """Crate metadata from the user's fields (`what` was generated: a table, related tables), defaults filled."""
    given = dict(fields)
    given.setdefault("title", f"Synthetic version of {source_label}")
    given.setdefault(
        "description", f"{what} generated by fairsynth from {source_label}; no row describes a real person."
    )
    if not given.get("authors"):
        raise ConfigError(
            "Crates need at least one author with an affiliation (ROR id or web address); "
            "give --author 'Name;ORCID;Affiliation;ROR-or-URL' or 'crate: authors:' in the config."
        )
    return validate_crate_info(given)


def validate_crate_info(given: dict) -> CrateInfo:
    """Crate metadata from plain fields, with one sentence naming each bad field."""
    try:
        return CrateInfo.model_validate(given)
    except ValidationError as exc:
        raise ConfigError(*field_problems(exc.errors(), "the crate metadata", prefix="crate")) from exc


def organisation(name: str, where: str) -> dict:
    """An organisation from its name and its ROR id or web address."""
    where = where.strip()
    return {"name": name.strip(), ("url" if where.startswith("http") and "ror.org" not in where else "ror"): where}


def parse_author(text: str, option: str = "--author") -> dict:
    """One author from 'Name;ORCID;Affiliation;ROR-or-URL' (ORCID may be empty)."""
    parts = [p.strip() for p in text.split(";")]
    if len(parts) != 4 or not parts[0] or not parts[2] or not parts[3]:
        raise ConfigError(f"{option} takes 'Name;ORCID;Affiliation;ROR-or-URL' (ORCID may be empty); got '{text}'.")
    name, orcid, affiliation, where = parts
    return {"name": name, "orcid": orcid or None, "affiliation": organisation(affiliation, where)}


def read_config(path: str | Path) -> object:
    """A YAML (.yaml, .yml) or JSON file's content, with one clear sentence when it cannot be read."""
    path = Path(path)
    try:
        text = path.read_text()
        return yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml") else json.loads(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path} cannot be read as a run configuration ({exc}).") from exc


def load_request(path: str | Path) -> GenerationRequest:
    """Read a GenerationRequest from YAML or JSON, with one clear sentence on errors."""
    return parse_request(read_config(path) or {}, str(path))


def parse_request(raw: object, label: str = "the request") -> GenerationRequest:
    """Validate a dict into a GenerationRequest (every bad field named at once); backends may be plain names."""
    return parse_fields(GenerationRequest, raw, label)


def parse_fields(model: type[M], raw: object, label: str, problems: Sequence[str] = ()) -> M:
    """Validate a dict of request fields into `model` (backends may be plain names); one ConfigError names every
    bad field, after the caller's own `problems`."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{label} must hold request fields by name (input_path, backends, rows, ...); "
            f"its top level is a {type(raw).__name__}, not a mapping."
        )
    if isinstance(raw.get("backends"), list):
        raw = {**raw, "backends": [{"name": b} if isinstance(b, str) else b for b in raw["backends"]]}
    try:
        parsed = model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(*problems, *field_problems(exc.errors(), label)) from exc
    if problems:
        raise ConfigError(*problems)
    return parsed
