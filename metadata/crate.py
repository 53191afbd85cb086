"""RO-Crate writer: one crate per backend result (RO-Crate 1.1 + Process Run Crate 0.5 + Bioschemas Dataset 1.0).

The pipeline lays the run's files out in a directory (data/, model/, config/, evaluation/) and
calls `build_crate(directory, info, facts)`; this module adds metadata/dome.json,
metadata/biostudies.pagetab.json, ro-crate-metadata.json and ro-crate-preview.html to that
directory and writes nowhere else. The real table is described (rows, columns, checksum), never
copied.
"""

from __future__ import annotations

import re
import shutil
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from html import escape
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator
from rocrate.model.contextentity import ContextEntity
from rocrate.model.dataset import Dataset
from rocrate.model.file import File
from rocrate.rocrate import ROCrate

from fairsynth.metadata.checksums import sha256_file
from fairsynth.metadata.schema import NUMERIC_KINDS, TEMPORAL_KINDS, ColumnKind, ColumnSpec, TableSchema

RO_CRATE_VERSION = "1.1"
PROCESS_RUN_CRATE = "https://w3id.org/ro/wfrun/process/0.5"
BIOSCHEMAS_DATASET = "https://bioschemas.org/profiles/Dataset/1.0-RELEASE"
COMPLETED = "http://schema.org/CompletedActionStatus"
SPDX = "https://spdx.org/licenses/"
DEFAULT_LICENSE = SPDX + "CC-BY-4.0"
EXTRA_TERMS = {"sha256": "http://schema.org/sha256", "Profile": "http://www.w3.org/ns/dx/prof/Profile"}
METADATA_NAME = "ro-crate-metadata.json"
PREVIEW_NAME = "ro-crate-preview.html"
DOME_PATH = "metadata/dome.json"
PAGETAB_PATH = "metadata/biostudies.pagetab.json"
DICTIONARY_PATH = "data/data-dictionary.csv"
SYNTHETIC_CANDIDATES = ("data/synthetic.csv", "data/synthetic.parquet")
MODEL_DIR = "model/"
SOURCE_ID = "#source-table"
TRAINING_ID = "#training-table"
WITHHELD_MODEL_ID = "#model-withheld"
CATALOG_ID = "#fairsynth-catalog"
DOWNLOAD_ID = "#crate-download"
ORCID = re.compile(r"^(https://orcid\.org/)?(\d{4}-\d{4}-\d{4}-\d{3}[\dX])$")
ROR = re.compile(r"^(https://ror\.org/)?(0[a-z0-9]{6}\d{2})$")

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
    "missing share and how the synthetic table treats it.",
    "config/generation.json": "The generation request, seed and package versions that repeat this run.",
    "evaluation/metrics.json": "Quality, privacy and utility measures of the synthetic table and the release decision.",
    "evaluation/report.html": "Human-readable evaluation report with plots.",
    DOME_PATH: "DOME recommendations record: data, optimisation, model and evaluation of this run.",
    PAGETAB_PATH: "BioStudies PageTab submission describing this dataset.",
    METADATA_NAME: "RO-Crate metadata (JSON-LD) describing every file of this dataset.",
    PREVIEW_NAME: "Human-readable page of the RO-Crate metadata.",
}


class CrateError(ValueError):
    """A crate cannot be built or read; the message says what is wrong and what to do."""


# -- what the user says about the dataset ------------------------------------------------------
class Organization(BaseModel):
    """An organisation, identified by its ROR id, or else by its web address."""

    name: str = Field(min_length=1)
    ror: str | None = None
    url: str | None = None

    @field_validator("ror")
    @classmethod
    def _ror_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        match = ROR.match(value.strip())
        if not match:
            raise ValueError(f"'{value}' is not a ROR id; give it as https://ror.org/0xxxxxxxx.")
        return "https://ror.org/" + match.group(2)

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
        return self.ror or "#org-" + _slug(self.name)

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
        if not value:
            return None
        match = ORCID.match(value.strip())
        if not match:
            raise ValueError(f"'{value}' is not an ORCID iD; give it as https://orcid.org/0000-0000-0000-0000.")
        return "https://orcid.org/" + match.group(2)

    @property
    def id(self) -> str:
        """JSON-LD @id: the ORCID URL, or a local id from the name."""
        return self.orcid or "#person-" + _slug(self.name)


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


@dataclass
class RunFacts:
    """What one backend's run did, handed over by the pipeline after fit, sample and evaluation."""

    backend: str
    backend_version: str
    backend_url: str
    backend_license: str
    model_family: str
    schema: TableSchema
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
    gate: str | None = None
    packages: dict[str, str] = field(default_factory=dict)
    run_id: str | None = None
    interpretability: str = ""

    def __post_init__(self) -> None:
        if not self.backend_url.startswith(("http://", "https://")):
            raise CrateError(
                f"The backend '{self.backend}' needs an http(s) URL for its software "
                f"entity, not '{self.backend_url}'; set Capabilities.url."
            )
        for name in ("fit_start", "fit_end", "sample_start", "sample_end"):
            if getattr(self, name).tzinfo is None:
                raise CrateError(f"RunFacts.{name} has no time zone; pass an aware UTC datetime.")

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


# -- building ------------------------------------------------------------------------------------
def build_crate(directory: Path | str, info: CrateInfo, facts: RunFacts) -> Path:
    """Describe the run files in `directory` as an RO-Crate; returns the ro-crate-metadata.json path."""
    from fairsynth.metadata.biostudies import write_pagetab  # late: biostudies imports this module
    from fairsynth.metadata.dome import write_dome

    root = Path(directory)
    synthetic = synthetic_path(root)
    if not (root / DICTIONARY_PATH).exists():
        facts.schema.data_dictionary().to_csv(root / DICTIONARY_PATH, index=False)
    write_dome(root, info, facts)
    write_pagetab(root, info, facts)
    crate = _assemble(root, info, facts, synthetic)
    crate.metadata.write(root)
    (root / PREVIEW_NAME).write_text(render_preview(crate.metadata.generate()), encoding="utf-8")
    return root / METADATA_NAME


def synthetic_path(root: Path) -> str:
    """The crate-relative path of the synthetic table, or a CrateError when there is none."""
    for candidate in SYNTHETIC_CANDIDATES:
        if (root / candidate).is_file():
            return candidate
    raise CrateError(
        f"No synthetic table in {root}: expected data/synthetic.csv or data/synthetic.parquet; "
        "write the sampled rows there before building the crate."
    )


def _assemble(root: Path, info: CrateInfo, facts: RunFacts, synthetic: str) -> ROCrate:
    crate = ROCrate(version=RO_CRATE_VERSION, gen_preview=True)
    crate.metadata.extra_terms.update(EXTRA_TERMS)
    people = _add_people(crate, info)
    model_id = _add_files(crate, root)
    backend = _add_backend(crate, facts)
    _add_source(crate, facts)
    _add_actions(crate, facts, backend, people[0], model_id, synthetic)
    _describe_root(crate, info, facts, people)
    return crate


def _add_people(crate: ROCrate, info: CrateInfo) -> list[str]:
    orgs = {a.affiliation.id: a.affiliation for a in info.authors}
    for extra in (info.publisher_org, info.funder):
        if extra is not None:
            orgs.setdefault(extra.id, extra)
    for org in orgs.values():
        crate.add(ContextEntity(crate, org.id, properties={"@type": "Organization", "name": org.name, "url": org.home}))
    for author in info.authors:
        props = {"@type": "Person", "name": author.name, "affiliation": {"@id": author.affiliation.id}}
        if author.orcid:
            props["identifier"] = author.orcid
        crate.add(ContextEntity(crate, author.id, properties=props))
    return [a.id for a in info.authors]


def _add_files(crate: ROCrate, root: Path) -> str:
    """Add every file under root as a File entity; returns the id of the fit's result (model)."""
    model_files = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel in (METADATA_NAME, PREVIEW_NAME):
            continue
        entity = crate.add(
            File(
                crate,
                source=path,
                dest_path=rel,
                fetch_remote=False,
                validate_url=False,
                properties=file_properties(path, rel),
            )
        )
        if rel.startswith(MODEL_DIR):
            model_files.append(entity)
    if not model_files:
        crate.add(
            ContextEntity(
                crate,
                WITHHELD_MODEL_ID,
                properties={
                    "@type": "CreativeWork",
                    "name": "Fitted generator (withheld)",
                    "description": "The fitted model is not shipped with this crate: the release policy withholds it.",
                },
            )
        )
        return WITHHELD_MODEL_ID
    model_dir = Dataset(
        crate,
        source=None,
        dest_path=MODEL_DIR,
        properties={
            "name": "Fitted generator",
            "description": "The saved generator (weights as safetensors, settings as "
            "JSON); loading it needs no unpickling.",
        },
    )
    crate.add(model_dir)
    model_dir["hasPart"] = _one_or_many(model_files)
    # files under model/ are reached through the directory, not listed on the root
    crate.root_dataset["hasPart"] = [e for e in crate.data_entities if not e.id.startswith(MODEL_DIR) or e is model_dir]
    return MODEL_DIR


def describe_path(rel: str) -> tuple[str, str]:
    """What a crate-relative path holds, in words, and its media type."""
    key = rel.rsplit(".", 1)[0] if rel.startswith("data/synthetic") else rel
    description = FILE_DESCRIPTIONS.get(key) or (
        "Part of the saved generator." if rel.startswith(MODEL_DIR) else "A file produced by the run."
    )
    return description, ENCODING_FORMATS.get(PurePosixPath(rel).suffix.lower(), "application/octet-stream")


def file_properties(path: Path, rel: str) -> dict[str, Any]:
    """name, description, encodingFormat, contentSize (bytes, as text) and sha256 of one file."""
    description, media_type = describe_path(rel)
    return {
        "name": PurePosixPath(rel).name,
        "description": description,
        "encodingFormat": media_type,
        "contentSize": str(path.stat().st_size),
        "sha256": sha256_file(path),
    }


def _add_backend(crate: ROCrate, facts: RunFacts) -> str:
    license_url = facts.backend_license if facts.backend_license.startswith("http") else SPDX + facts.backend_license
    props = {
        "@type": "SoftwareApplication",
        "name": facts.backend,
        "version": facts.backend_version,
        "url": facts.backend_url,
        "license": {"@id": license_url},
        "description": facts.backend_description or f"{facts.model_family} generator '{facts.backend}'.",
    }
    requirements = [_add_package(crate, name, version) for name, version in sorted(facts.packages.items())]
    if requirements:
        props["softwareRequirements"] = _one_or_many(requirements)
    crate.add(ContextEntity(crate, facts.backend_url, properties=props))
    _add_license(crate, license_url)
    return facts.backend_url


def _add_package(crate: ROCrate, name: str, version: str) -> dict[str, str]:
    """A Python package the run used, as a SoftwareApplication identified by its PyPI release page."""
    url = f"https://pypi.org/project/{name}/{version}/"
    crate.add(
        ContextEntity(
            crate, url, properties={"@type": "SoftwareApplication", "name": name, "version": version, "url": url}
        )
    )
    return {"@id": url}


def _add_license(crate: ROCrate, license_url: str) -> None:
    if crate.get(license_url) is None:
        name = license_url.removeprefix(SPDX).rstrip("/").rsplit("/", 1)[-1]
        crate.add(ContextEntity(crate, license_url, properties={"@type": "CreativeWork", "name": name}))


def _add_source(crate: ROCrate, facts: RunFacts) -> None:
    src = facts.source
    shared = {"@type": "CreativeWork", "encodingFormat": "text/csv"}
    crate.add(
        ContextEntity(
            crate,
            SOURCE_ID,
            properties={
                **shared,
                "name": f"Real {src.kind} ({src.name})",
                "description": (src.description or f"The real {src.kind} the generator learned from")
                + f": {src.rows} rows, {src.columns} columns. Its content is not part of this crate; "
                "only its size and SHA-256 checksum are recorded.",
                "sha256": src.sha256,
            },
        )
    )
    crate.add(
        ContextEntity(
            crate,
            TRAINING_ID,
            properties={
                **shared,
                "name": "Training split of the real table",
                "description": f"{facts.train_rows} rows of the real table drawn with split seed {facts.split_seed}; "
                f"{facts.holdout_rows} further rows were held out for evaluation and never seen by the "
                "generator. Described here without its content.",
                "isBasedOn": {"@id": SOURCE_ID},
            },
        )
    )


def _add_actions(crate: ROCrate, facts: RunFacts, backend: str, agent: str, model_id: str, synthetic: str) -> None:
    common = {
        "@type": "CreateAction",
        "instrument": {"@id": backend},
        "agent": {"@id": agent},
        "actionStatus": COMPLETED,
    }
    crate.add(
        ContextEntity(
            crate,
            "#fit",
            properties={
                **common,
                "name": f"Fit {facts.backend} on the training table",
                "description": f"Fitted the {facts.model_family} generator '{facts.backend}' on {facts.train_rows} "
                f"training rows with seed {facts.seed} in {facts.fit_duration:.1f} s.",
                "object": {"@id": TRAINING_ID},
                "result": {"@id": model_id},
                "startTime": iso_utc(facts.fit_start),
                "endTime": iso_utc(facts.fit_end),
            },
        )
    )
    crate.add(
        ContextEntity(
            crate,
            "#sample",
            properties={
                **common,
                "name": f"Sample {facts.synthetic_rows} synthetic rows from {facts.backend}",
                "description": f"Drew {facts.synthetic_rows} synthetic rows from the fitted generator with seed "
                f"{facts.seed} in {facts.sample_seconds:.1f} s.",
                "object": {"@id": model_id},
                "result": {"@id": synthetic},
                "startTime": iso_utc(facts.sample_start),
                "endTime": iso_utc(facts.sample_end),
            },
        )
    )


def _describe_root(crate: ROCrate, info: CrateInfo, facts: RunFacts, people: list[str]) -> None:
    root = crate.root_dataset
    identifier = info.identifier or crate_identifier(facts)
    for profile, name, version in (
        (PROCESS_RUN_CRATE, "Process Run Crate", "0.5"),
        (BIOSCHEMAS_DATASET, "Bioschemas Dataset profile", "1.0-RELEASE"),
    ):
        crate.add(
            ContextEntity(
                crate, profile, properties={"@type": ["CreativeWork", "Profile"], "name": name, "version": version}
            )
        )
    _add_license(crate, info.license)
    crate.add(
        ContextEntity(
            crate,
            CATALOG_ID,
            properties={
                "@type": "DataCatalog",
                "name": "fairsynth synthetic dataset catalogue",
                "description": "Synthetic datasets generated and packaged by fairsynth runs.",
            },
        )
    )
    crate.add(
        ContextEntity(
            crate,
            DOWNLOAD_ID,
            properties={
                "@type": "DataDownload",
                "name": f"{facts.backend}.crate.zip",
                "encodingFormat": "application/zip",
                "contentUrl": f"{facts.backend}.crate.zip",
            },
        )
    )
    _add_variables(crate, facts.schema)
    authors = _one_or_many([{"@id": p} for p in people])
    props = {
        "name": info.title,
        "description": describe_dataset(info, facts),
        "license": {"@id": info.license},
        "datePublished": (info.date_published or datetime.now(UTC).date()).isoformat(),
        "conformsTo": [{"@id": PROCESS_RUN_CRATE}, {"@id": BIOSCHEMAS_DATASET}],
        "creator": authors,
        "author": authors,
        "publisher": {"@id": info.publisher_org.id},
        "keywords": ", ".join(info.keywords),
        "identifier": identifier,
        "url": info.url or identifier,
        "version": info.version,
        "mentions": [{"@id": "#fit"}, {"@id": "#sample"}],
        "isBasedOn": {"@id": SOURCE_ID},
        "includedInDataCatalog": {"@id": CATALOG_ID},
        "distribution": {"@id": DOWNLOAD_ID},
        "measurementTechnique": f"Synthetic data generation with {facts.model_family} ({facts.backend})",
        "citation": info.citation
        or f"{info.title}. Synthetic dataset generated with {facts.backend} "
        f"{facts.backend_version}; identifier {identifier}.",
        "variableMeasured": _one_or_many([{"@id": _variable_id(c.name)} for c in facts.schema.output_columns()]),
    }
    if info.funder:
        props["funder"] = {"@id": info.funder.id}
    for key, value in props.items():
        root[key] = value


def _add_variables(crate: ROCrate, schema: TableSchema) -> None:
    for column in schema.output_columns():
        crate.add(ContextEntity(crate, _variable_id(column.name), properties=variable_properties(column)))


def variable_properties(column: ColumnSpec) -> dict[str, Any]:
    """One PropertyValue for a column: kind, unit, range or allowed values, missing share."""
    props: dict[str, Any] = {
        "@type": "PropertyValue",
        "name": column.name,
        "propertyID": column.kind.value,
        "description": f"{column.kind.value} column; {column.missing_share:.2%} missing; "
        f"synthetic handling: {column.handling()}." + (f" {column.description}" if column.description else ""),
        "value": f"missing share {round(column.missing_share, 4)}",
    }
    if column.unit:
        props["unitText"] = column.unit
    if column.kind in NUMERIC_KINDS | TEMPORAL_KINDS and column.minimum is not None:
        props["minValue"], props["maxValue"] = column.minimum, column.maximum
    if column.allowed_values:
        props["valueReference"] = "; ".join(column.allowed_values)
    if column.kind == ColumnKind.PII and column.pii_type:
        props["description"] += f" PII type: {column.pii_type}."
    return props


def _variable_id(name: str) -> str:
    return "#column-" + _slug(name)


def describe_dataset(info: CrateInfo, facts: RunFacts) -> str:
    """The root description: the user's text plus what the data is and where it comes from."""
    dp = f" Fitted with differential privacy (epsilon {facts.epsilon:g}, delta {facts.delta:g})." if facts.is_dp else ""
    return (
        f"{info.description.rstrip('.')}. This dataset is SYNTHETIC: {facts.synthetic_rows} rows generated by "
        f"the {facts.model_family} generator '{facts.backend}' {facts.backend_version}, fitted on "
        f"{facts.train_rows} rows of real {facts.source.kind} ({facts.source.rows} rows, "
        f"{facts.source.columns} columns); no real record is included.{dp}"
    )


def crate_identifier(facts: RunFacts) -> str:
    """A stable URN for the crate, derived from the source checksum, backend and seed."""
    return "urn:uuid:" + str(
        uuid.uuid5(
            uuid.NAMESPACE_URL,
            f"fairsynth:{facts.source.sha256}:{facts.backend}:{facts.seed}:{facts.synthetic_rows}:{facts.run_id or ''}",
        )
    )


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with +00:00 and whole seconds (the Process Run Crate pattern)."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def _one_or_many(values: list) -> Any:
    return values[0] if len(values) == 1 else values


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


# -- zip ------------------------------------------------------------------------------------------
def zip_crate(directory: Path | str, zip_path: Path | str) -> Path:
    """Zip a built crate (ro-crate-metadata.json at the zip's root)."""
    root, target = Path(directory), Path(zip_path)
    if not (root / METADATA_NAME).is_file():
        raise CrateError(f"{root} is not a crate: it has no {METADATA_NAME}; build the crate first.")
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            archive.write(path, path.relative_to(root).as_posix())
    return target


def read_crate_zip(zip_path: Path | str, dest: Path | str) -> Path:
    """Unpack a crate zip into dest after checking no entry escapes it (zip-slip); returns dest."""
    target = Path(dest).resolve()
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, FileNotFoundError) as error:
        raise CrateError(
            f"{zip_path} is not a readable zip file ({error}); pass a crate zip written by fairsynth."
        ) from None
    with archive:
        names = archive.namelist()
        for name in names:
            _check_member(name, target)
        if METADATA_NAME not in names:
            raise CrateError(f"{zip_path} has no {METADATA_NAME} at its root, so it is not an RO-Crate zip.")
        target.mkdir(parents=True, exist_ok=True)
        for info in archive.infolist():
            destination = target / info.filename
            if info.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, open(destination, "wb") as out:
                shutil.copyfileobj(source, out)
    return target


def _check_member(name: str, target: Path) -> None:
    pure = PurePosixPath(name.replace("\\", "/"))
    unsafe = (
        pure.is_absolute()
        or ".." in pure.parts
        or re.match(r"^[A-Za-z]:", name)
        or not (target / pure).resolve().is_relative_to(target)
    )
    if unsafe:
        raise CrateError(
            f"The zip entry '{name}' points outside the crate (absolute path or '..'); refusing to unpack this zip."
        )


# -- preview ----------------------------------------------------------------------------------
def render_preview(metadata: dict) -> str:
    """A self-contained, human-readable HTML page of the crate's metadata (no scripts, no CDN)."""
    graph = {e["@id"]: e for e in metadata["@graph"]}
    root = graph["./"]

    def name_of(ref: Any) -> str:
        ids = [r["@id"] if isinstance(r, dict) else str(r) for r in _listed(ref)]
        return ", ".join(escape(str(graph.get(i, {}).get("name", i))) for i in ids)

    files = [graph[i] for i in graph if graph[i].get("@type") == "File"]
    file_rows = "".join(
        f"<tr><td>{escape(f['@id'])}</td><td>{escape(f.get('description', ''))}</td>"
        f"<td>{escape(f.get('encodingFormat', ''))}</td><td>{escape(f.get('contentSize', ''))}</td>"
        f"<td><code>{escape(f.get('sha256', ''))}</code></td></tr>"
        for f in files
    )
    columns = [graph[r["@id"]] for r in _listed(root.get("variableMeasured"))]
    column_rows = "".join(
        f"<tr><td>{escape(c['name'])}</td><td>{escape(c.get('propertyID', ''))}</td>"
        f"<td>{escape(c.get('description', ''))}</td></tr>"
        for c in columns
    )
    actions = "".join(
        f"<li><b>{escape(graph[a['@id']]['name'])}</b> ({graph[a['@id']]['startTime']} to "
        f"{graph[a['@id']]['endTime']}): {escape(graph[a['@id']]['description'])}</li>"
        for a in _listed(root.get("mentions"))
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(root["name"])}</title>
<style>body{{font-family:sans-serif;max-width:70em;margin:2em auto;line-height:1.4}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em;text-align:left;vertical-align:top}}
code{{font-size:.8em}}</style></head><body>
<h1>{escape(root["name"])}</h1>
<p>{escape(root["description"])}</p>
<dl><dt>Authors</dt><dd>{name_of(root["creator"])}</dd>
<dt>Publisher</dt><dd>{name_of(root["publisher"])}</dd>
<dt>License</dt><dd><a href="{escape(root["license"]["@id"])}">{name_of(root["license"])}</a></dd>
<dt>Keywords</dt><dd>{escape(root["keywords"])}</dd>
<dt>Identifier</dt><dd>{escape(root["identifier"])}</dd>
<dt>Published</dt><dd>{escape(root["datePublished"])}</dd>
<dt>Based on</dt><dd>{escape(graph[root["isBasedOn"]["@id"]]["description"])}</dd>
<dt>Conforms to</dt><dd>{name_of(root["conformsTo"])}</dd></dl>
<h2>How it was made</h2><ul>{actions}</ul>
<h2>Files</h2><table><tr><th>path</th><th>what</th><th>format</th><th>bytes</th><th>sha256</th></tr>{file_rows}</table>
<h2>Columns</h2><table><tr><th>column</th><th>kind</th><th>description</th></tr>{column_rows}</table>
<p>Machine-readable metadata: <a href="{METADATA_NAME}">{METADATA_NAME}</a> (RO-Crate 1.1).</p>
</body></html>
"""


def _listed(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
