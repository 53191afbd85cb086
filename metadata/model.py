"""The metadata model: what every crate file is built from. A new metadata field starts here.

- what the user says about the dataset: CrateInfo (with Author and Organization);
- what one backend's run did: RunFacts (with SourceFacts and, for several tables, one TableFacts per table),
  handed over by the pipeline;
- where each file lies in a crate (METADATA_NAME, DOME_PATH, ...) and what it holds (describe_path);
- the profiles a crate conforms to (PROCESS_RUN_CRATE, BIOSCHEMAS_DATASET).

The writers (crate.py: RO-Crate JSON-LD, dome.py: DOME, biostudies.py: PageTab, preview.py: HTML page)
read these definitions; builder.py assembles a crate from them. This module imports none of them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from fairsynth.errors import FairsynthError
from fairsynth.metadata.dataset import DatasetSchema
from fairsynth.metadata.schema import TableSchema

# -- profiles and vocabularies -----------------------------------------------------------------
PROCESS_RUN_CRATE = "https://w3id.org/ro/wfrun/process/0.5"
BIOSCHEMAS_DATASET = "https://bioschemas.org/profiles/Dataset/1.0-RELEASE"
COMPLETED = "http://schema.org/CompletedActionStatus"
SPDX = "https://spdx.org/licenses/"
DEFAULT_LICENSE = SPDX + "CC-BY-4.0"
ORCID = re.compile(r"^(https://orcid\.org/)?(\d{4}-\d{4}-\d{4}-\d{3}[\dX])$")
CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"  # base32 without i, l, o, u: a ROR id's body
ROR = re.compile(r"^(https://ror\.org/)?(0[0-9a-hjkmnp-tv-z]{6}\d{2})$")

# -- crate layout: where each file lies, what it holds, its media type ---------------------------
METADATA_NAME = "ro-crate-metadata.json"
PREVIEW_NAME = "ro-crate-preview.html"
DOME_PATH = "metadata/dome.json"
PAGETAB_PATH = "metadata/biostudies.pagetab.json"
DICTIONARY_PATH = "data/data-dictionary.csv"
RULES_PATH = "data/rules.csv"
RELATIONSHIPS_PATH = "data/relationships.json"
SINGLE_TABLE = "synthetic"  # the name of a one-table crate's only table (data/synthetic.csv)
RULES_TABLE_COLUMNS = {  # RunFacts.rules key -> data/rules.csv header
    "text": "rule",
    "kind": "kind",
    "columns": "columns",
    "status": "status",
    "support": "support_real_rows",
    "applicable": "synthetic_rows_applicable",
    "kept": "synthetic_rows_kept",
    "adherence": "adherence",
}
SYNTHETIC_CANDIDATES = ("data/synthetic.csv", "data/synthetic.parquet")
MODEL_DIR = "model/"
ENCODING_FORMATS = {
    ".csv": "text/csv",
    ".parquet": "application/vnd.apache.parquet",
    ".json": "application/json",
    ".html": "text/html",
    ".safetensors": "application/octet-stream",
    ".txt": "text/plain",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".zip": "application/zip",
}
FILE_DESCRIPTIONS = {
    "data/synthetic": "The synthetic table: rows drawn from the fitted generator, no row of the real table.",
    DICTIONARY_PATH: "Data dictionary: one row per column with kind, unit, allowed values or range, "
    "missing share, how the synthetic table treats it, the cross-column rules it takes part in, and whether the "
    "run's CSV files neutralise formula-like text (csv_formulas_neutralised).",
    RELATIONSHIPS_PATH: "The dataset's tables and how they relate, as data: per table its file, data dictionary, "
    "rows, primary key and time column; per relationship the parent table and key and the child table and foreign "
    "key (every child row's foreign key is one of its parent's keys).",
    RULES_PATH: "Cross-column rules of the real table (one row each): kind, columns, whether generation enforces "
    "it, real rows supporting it, and the share of synthetic rows that keep it.",
    "config/generation.json": "The generation request, seed and package versions that repeat this run.",
    "evaluation/metrics.json": "Quality, privacy and utility measures of the synthetic table and the release decision.",
    "evaluation/report.html": "Human-readable evaluation report with plots.",
    DOME_PATH: "DOME recommendations record: data, optimisation, model and evaluation of this run.",
    PAGETAB_PATH: "BioStudies PageTab submission describing this dataset.",
    METADATA_NAME: "RO-Crate metadata (JSON-LD) describing every file of this dataset.",
    PREVIEW_NAME: "Human-readable page of the RO-Crate metadata.",
}


# what a file holds in a crate of several tables, where it differs from FILE_DESCRIPTIONS
DATASET_FILE_DESCRIPTIONS = {
    "evaluation/metrics.json": "Measures of the synthetic dataset: per table its quality (with the holdout's as "
    "reference) and real keys copied; per relationship referential integrity, children per parent (real and "
    "synthetic means, KS statistic) and the share of parents whose children are in time order.",
}
TABLE_DICTIONARY = (
    ": one row per column with its role in the dataset (primary key, foreign key, time column), kind, unit, "
    "allowed values or range, missing share, how the synthetic table treats it, and whether the run's CSV files "
    "neutralise formula-like text (csv_formulas_neutralised)."
)


class CrateError(FairsynthError):
    """A crate cannot be built or read; the message says what is wrong and what to do."""


# -- what the user says about the dataset ------------------------------------------------------
def _persistent_id(
    value: str | None, pattern: re.Pattern[str], base: str, what: str, example: str, check: Callable[[str], bool]
) -> str | None:
    """A ROR id or ORCID iD, bare or as a URL, as its URL, its check digits verified; None when not given."""
    if not value:
        return None
    match = pattern.match(value.strip())
    if not match:
        raise ValueError(f"'{value}' is not {what}; give it as {base}{example}.")
    if not check(match.group(2)):
        raise ValueError(f"'{value}' is not {what}: its checksum does not match; copy it again from {base}.")
    return base + match.group(2)


def orcid_checks(orcid: str) -> bool:
    """Whether an ORCID iD's last character is its ISO 7064 MOD 11-2 check digit (X stands for 10)."""
    total = 0
    for digit in orcid.replace("-", "")[:-1]:
        total = (total + int(digit)) * 2
    expected = (12 - total % 11) % 11
    return orcid[-1] == ("X" if expected == 10 else str(expected))


def ror_checks(ror: str) -> bool:
    """Whether a ROR id's last two digits are the ISO 7064 MOD 97-10 checksum of its base32 body."""
    body = 0
    for character in ror[1:7]:
        body = body * 32 + CROCKFORD.index(character)
    return int(ror[7:]) == 98 - (body * 100) % 97


class Organization(BaseModel):
    """An organisation, identified by its ROR id, or else by its web address."""

    name: str = Field(min_length=1)
    ror: str | None = None
    url: str | None = None

    @field_validator("ror")
    @classmethod
    def _ror_url(cls, value: str | None) -> str | None:
        return _persistent_id(value, ROR, "https://ror.org/", "a ROR id", "0xxxxxxxx", ror_checks)

    @model_validator(mode="after")
    def _needs_address(self) -> Organization:
        if not self.ror and not (self.url or "").startswith(("http://", "https://")):
            raise ValueError(
                f"the organisation '{self.name}' needs a ROR id (https://ror.org/...) or a web address (https://...)."
            )
        return self

    @property
    def id(self) -> str:
        """JSON-LD @id: the ROR URL, or a local id from the name."""
        return self.ror or "#org-" + slug(self.name)

    @property
    def home(self) -> str:
        """The organisation's address: its ROR URL, else its web address."""
        return self.ror or self.url or ""


class Author(BaseModel):
    """A person credited for the dataset: name, affiliation, and ORCID where known."""

    name: str = Field(min_length=1)
    affiliation: Organization
    orcid: str | None = None

    @field_validator("orcid")
    @classmethod
    def _orcid_url(cls, value: str | None) -> str | None:
        return _persistent_id(value, ORCID, "https://orcid.org/", "an ORCID iD", "0000-0000-0000-0000", orcid_checks)

    @property
    def id(self) -> str:
        """JSON-LD @id: the ORCID URL, or a local id from the name."""
        return self.orcid or "#person-" + slug(self.name)


class CrateInfo(BaseModel):
    """What the user says about the dataset: title, authors, license, keywords, funder, identifiers."""

    title: str = Field(min_length=1)
    description: str = Field(min_length=1)
    authors: list[Author] = Field(min_length=1)
    license: str = DEFAULT_LICENSE
    keywords: list[str] = Field(default_factory=lambda: ["synthetic data", "health data"])
    funder: Organization | None = None
    publisher: Organization | None = None
    url: str | None = None
    identifier: str | None = None
    version: str = "1.0"
    date_published: date | None = None
    citation: str | None = None

    @field_validator("license")
    @classmethod
    def _license_url(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("the license is empty; give an SPDX id such as CC-BY-4.0.")
        return value if value.startswith(("http://", "https://")) else SPDX + value

    @field_validator("keywords")
    @classmethod
    def _some_keywords(cls, value: list[str]) -> list[str]:
        cleaned = [k.strip() for k in value if k.strip()]
        if not cleaned:
            raise ValueError("give at least one keyword so the dataset can be found.")
        return cleaned

    @property
    def publisher_org(self) -> Organization:
        """The publisher, or the first author's affiliation."""
        return self.publisher or self.authors[0].affiliation

    @property
    def license_name(self) -> str:
        """Short license name (the SPDX id where the URL is an SPDX one)."""
        return self.license.removeprefix(SPDX).rstrip("/").rsplit("/", 1)[-1] or self.license


# -- what the run did ---------------------------------------------------------------------------
@dataclass
class SourceFacts:
    """The real table described without its content."""

    rows: int
    columns: int
    sha256: str
    kind: str = "tabular health records"
    description: str = ""
    name: str = "source table"
    organism: str | None = "Homo sapiens"
    # several tables: each source file's name -> its SHA-256 (`sha256` is then that of the listing, see
    # dataset_checksum)
    files: dict[str, str] = field(default_factory=dict)


@dataclass
class TableFacts:
    """One synthetic table of a crate: its name, crate paths (data and dictionary), output schema and rows.

    `qualified` (a table of several) names its columns `table.column` in the crate, so two tables' `id`s differ.
    """

    name: str
    path: str
    dictionary: str
    schema: TableSchema
    rows: int
    qualified: bool = False

    def column_label(self, column: str) -> str:
        """How the crate names one of the table's columns."""
        return f"{self.name}.{column}" if self.qualified else column


@dataclass
class RunFacts:
    """What one backend's run did, handed over by the pipeline after fit, sample and evaluation."""

    backend: str
    backend_version: str
    backend_url: str
    backend_license: str
    model_family: str
    schema: TableSchema | None  # one table's schema (output columns); None for several tables (`tables`, `dataset`)
    source: SourceFacts
    seed: int
    fit_start: datetime
    fit_end: datetime
    sample_start: datetime
    sample_end: datetime
    train_rows: int
    holdout_rows: int
    split_seed: int
    synthetic_rows: int
    params: dict[str, Any] = field(default_factory=dict)
    backend_description: str = ""
    fit_seconds: float | None = None
    epochs: int | None = None
    losses: list[float] = field(default_factory=list)
    batch_size: int | None = None
    parameter_count: int | None = None
    epsilon: float | None = None
    delta: float | None = None
    clipping_norm: float | None = None
    # the declared headline measures, as plain data: {"name", "label", "value", "goal", ["target"], "meaning"}
    measures: list[dict[str, Any]] = field(default_factory=list)
    confidence: dict[str, Any] = field(default_factory=dict)
    comparison: dict[str, dict[str, Any]] = field(default_factory=dict)
    exact_copies: int | None = None
    # each cross-column rule and its adherence, as plain data: {"text", "kind", "columns", "status", "support",
    # "applicable", "kept", "adherence"} (evaluation.results.RuleAdherence)
    rules: list[dict[str, Any]] = field(default_factory=list)
    gate: str | None = None
    packages: dict[str, str] = field(default_factory=dict)
    run_id: str | None = None
    interpretability: str = ""
    # whether the run's CSV files prefix formula-like text cells and headers with ' (metadata.spreadsheet)
    csv_formulas_neutralised: bool = True
    # why the crate holds no model/ folder, when it holds none
    model_withheld: str = "the release policy withholds it"
    # several tables: their keys and relationships, and each synthetic table (a one-table run: filled by the builder)
    dataset: DatasetSchema | None = None
    tables: list[TableFacts] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.backend_url.startswith(("http://", "https://")):
            raise CrateError(
                f"The backend '{self.backend}' needs an http(s) URL for its software "
                f"entity, not '{self.backend_url}'; set Capabilities.url."
            )
        for name in ("fit_start", "fit_end", "sample_start", "sample_end"):
            if getattr(self, name).tzinfo is None:
                raise CrateError(f"RunFacts.{name} has no time zone; pass an aware UTC datetime.")
        if self.schema is None and (self.dataset is None or not self.tables):
            raise CrateError("RunFacts needs the table's schema, or for several tables the dataset and its tables.")

    def with_tables(self, root: Path) -> RunFacts:
        """These facts with their synthetic tables listed: a one-table run's data/synthetic.* as its only entry."""
        if self.tables:
            return self
        if self.schema is None:  # __post_init__ refuses it; this narrows the type
            raise CrateError("RunFacts needs the table's schema.")
        table = TableFacts(SINGLE_TABLE, synthetic_path(root), DICTIONARY_PATH, self.schema, self.synthetic_rows)
        return replace(self, tables=[table])

    @property
    def min_level_rows(self) -> int:
        """The rare-level threshold the run applied (every table of a dataset shares the request's)."""
        return (self.schema or self.tables[0].schema).min_level_rows

    def synthetic_text(self) -> str:
        """What was generated, in words: "400 rows", or "120 subjects: patients 120 rows, visits 431 rows"."""
        if self.dataset is None:
            return f"{self.synthetic_rows} rows"
        return f"{self.synthetic_rows} subjects: " + ", ".join(f"{t.name} {t.rows} rows" for t in self.tables)

    @property
    def sample_seconds(self) -> float:
        """Wall time of sampling."""
        return (self.sample_end - self.sample_start).total_seconds()

    @property
    def fit_duration(self) -> float:
        """Fit seconds as reported by the backend, else the wall time."""
        return self.fit_seconds if self.fit_seconds is not None else (self.fit_end - self.fit_start).total_seconds()

    @property
    def is_dp(self) -> bool:
        """True when the fit spent a differential-privacy budget."""
        return self.epsilon is not None


# -- shared descriptions -------------------------------------------------------------------------
def describe_path(rel: str, tables: Sequence[TableFacts] = ()) -> tuple[str, str]:
    """What a crate-relative path holds, in words, and its media type; `tables` describe a dataset's own files."""
    key = rel.rsplit(".", 1)[0] if rel.startswith("data/synthetic") else rel
    description = (
        _describe_table_file(rel, tables)
        or FILE_DESCRIPTIONS.get(key)
        or ("Part of the saved generator." if rel.startswith(MODEL_DIR) else "A file produced by the run.")
    )
    return description, ENCODING_FORMATS.get(PurePosixPath(rel).suffix.lower(), "application/octet-stream")


def is_synthetic_data(rel: str, tables: Sequence[TableFacts] = ()) -> bool:
    """Whether a crate-relative path is a synthetic table."""
    return rel.startswith("data/synthetic") or any(rel == t.path for t in tables)


def _describe_table_file(rel: str, tables: Sequence[TableFacts]) -> str | None:
    """A dataset crate's own description of a path (a table, its dictionary, the dataset's metrics), else None."""
    if any(t.qualified for t in tables) and rel in DATASET_FILE_DESCRIPTIONS:
        return DATASET_FILE_DESCRIPTIONS[rel]
    for table in tables:
        if not table.qualified:
            continue
        if rel == table.path:
            return (
                f"The synthetic table '{table.name}' ({table.rows} rows): rows drawn from the fitted generator, "
                f"no row of the real table; keys regenerated. {RELATIONSHIPS_PATH} says how it relates to the others."
            )
        if rel == table.dictionary:
            return f"Data dictionary of the table '{table.name}'" + TABLE_DICTIONARY
    return None


def table_path(name: str, suffix: str) -> str:
    """Where a dataset crate holds the synthetic table `name` (suffix: .csv or .parquet)."""
    return f"data/{name}{suffix}"


def table_dictionary_path(name: str) -> str:
    """Where a dataset crate holds the data dictionary of the table `name`."""
    return f"data/{name}.data-dictionary.csv"


def synthetic_path(root: Path) -> str:
    """The crate-relative path of the synthetic table, or a CrateError when there is none."""
    for candidate in SYNTHETIC_CANDIDATES:
        if (root / candidate).is_file():
            return candidate
    raise CrateError(
        f"No synthetic table in {root}: expected data/synthetic.csv or data/synthetic.parquet; "
        "write the sampled rows there before building the crate."
    )


def describe_dataset(info: CrateInfo, facts: RunFacts) -> str:
    """The root description: the user's text plus what the data is and where it comes from."""
    dp = f" Fitted with differential privacy (epsilon {facts.epsilon:g}, delta {facts.delta:g})." if facts.is_dp else ""
    unit = "subjects" if facts.dataset is not None else "rows"
    return (
        f"{info.description.rstrip('.')}. This dataset is SYNTHETIC: {facts.synthetic_text()} generated by "
        f"the {facts.model_family} generator '{facts.backend}' {facts.backend_version}, fitted on "
        f"{facts.train_rows} {unit} of real {facts.source.kind} ({facts.source.rows} rows, "
        f"{facts.source.columns} columns); no real record is included.{dp}{describe_relationships(facts)}"
    )


def describe_relationships(facts: RunFacts) -> str:
    """The tables' keys and relationships in words (empty for one table)."""
    if facts.dataset is None:
        return ""
    parts = []
    for name in facts.dataset.top_down():
        entry, link = facts.dataset.entry(name), facts.dataset.parent_of(name)
        text = f"'{entry.name}'" + (f" (primary key {entry.primary_key})" if entry.primary_key else "")
        if link is not None:
            text += f", child of '{link.parent}' through {link.child_key} -> {link.parent}.{link.parent_key}"
        if entry.sequence:
            text += f", in order of {entry.sequence} within its parent"
        parts.append(text)
    return f" Tables: {'; '.join(parts)}. Keys and relationships as data: {RELATIONSHIPS_PATH}."


def dataset_checksum(files: dict[str, str]) -> str:
    """One SHA-256 for several source files: that of their `sha256sum` listing (one "<sha256>  <name>" line each)."""
    listing = "".join(f"{digest}  {name}\n" for name, digest in sorted(files.items()))
    return hashlib.sha256(listing.encode("utf-8")).hexdigest()


def slug(text: str) -> str:
    """A lower-case, dash-separated form of text for local JSON-LD ids ("x" when nothing is left)."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"
