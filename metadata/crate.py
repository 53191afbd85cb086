"""RO-Crate JSON-LD writer: ro-crate-metadata.json of one backend result (RO-Crate 1.1 + Process Run Crate 0.5
+ Bioschemas Dataset 1.0).

Every file under the crate directory becomes a File entity (name, media type, size, sha256); the backend,
the real table (described, never copied), the fit and sample actions, the people and the columns become
context entities. builder.py calls write_rocrate after the run's other files are in place.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from rocrate.model.contextentity import ContextEntity
from rocrate.model.dataset import Dataset
from rocrate.model.file import File
from rocrate.rocrate import ROCrate

from fairsynth.metadata.checksums import sha256_file
from fairsynth.metadata.model import (
    BIOSCHEMAS_DATASET,
    COMPLETED,
    METADATA_NAME,
    MODEL_DIR,
    PREVIEW_NAME,
    PROCESS_RUN_CRATE,
    SPDX,
    CrateInfo,
    RunFacts,
    TableFacts,
    describe_dataset,
    describe_path,
    slug,
)
from fairsynth.metadata.schema import NUMERIC_KINDS, TEMPORAL_KINDS, ColumnKind, ColumnSpec
from fairsynth.metadata.spreadsheet import neutralised_names

RO_CRATE_VERSION = "1.1"
EXTRA_TERMS = {"sha256": "http://schema.org/sha256", "Profile": "http://www.w3.org/ns/dx/prof/Profile"}
SOURCE_ID = "#source-table"
TRAINING_ID = "#training-table"
WITHHELD_MODEL_ID = "#model-withheld"
CATALOG_ID = "#fairsynth-catalog"
DOWNLOAD_ID = "#crate-download"
MODEL_PICKLED = (
    "The saved generator (settings as JSON, the model as the joblib pickle its library writes, signed with "
    "HMAC-SHA256 by the installation that saved it); fairsynth loads it only with that installation's key."
)
CSV_NEUTRALISED = (
    "Text cells and headers that begin with =, +, -, @, a tab or a carriage return carry a leading single "
    "quote so spreadsheets show them as text instead of running them as formulas (OWASP CSV injection); "
    "drop that quote to get the raw value."
)
CSV_RAW = "Text cells are written raw: a cell beginning with =, +, -, @ may run as a formula in a spreadsheet."


def write_rocrate(root: Path, info: CrateInfo, facts: RunFacts) -> dict[str, Any]:
    """Write ro-crate-metadata.json describing every file under root; returns the JSON-LD it wrote.

    `facts.tables` lists the synthetic tables (RunFacts.with_tables fills a one-table run's).
    """
    facts = facts.with_tables(root)
    crate = ROCrate(version=RO_CRATE_VERSION, gen_preview=True)
    crate.metadata.extra_terms.update(EXTRA_TERMS)
    people = _add_people(crate, info)
    model_id = _add_files(crate, root, facts)
    backend = _add_backend(crate, facts)
    _add_source(crate, facts)
    _add_actions(crate, facts, backend, people[0], model_id)
    _describe_root(crate, info, facts, people)
    crate.metadata.write(root)
    return crate.metadata.generate()


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


def _add_files(crate: ROCrate, root: Path, facts: RunFacts) -> str:
    """Add every file under root as a File entity; returns the id of the fit's result (model).

    A CSV file's description says whether its formula-like text cells were neutralised.
    """
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
                properties=file_properties(path, rel, facts.csv_formulas_neutralised, facts.tables),
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
                    "description": f"The fitted model is not shipped with this crate: {facts.model_withheld}.",
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
            "description": MODEL_PICKLED
            if any(entity.id.endswith(".pkl") for entity in model_files)
            else "The saved generator (weights as safetensors, settings as JSON); loading it needs no unpickling.",
        },
    )
    crate.add(model_dir)
    model_dir["hasPart"] = _one_or_many(model_files)
    # files under model/ are reached through the directory, not listed on the root
    crate.root_dataset["hasPart"] = [e for e in crate.data_entities if not e.id.startswith(MODEL_DIR) or e is model_dir]
    return MODEL_DIR


def file_properties(
    path: Path, rel: str, neutralised: bool = True, tables: Sequence[TableFacts] = ()
) -> dict[str, Any]:
    """name, description, encodingFormat, contentSize (bytes, as text) and sha256 of one file."""
    description, media_type = describe_path(rel, tables)
    if media_type == "text/csv":
        description += " " + (CSV_NEUTRALISED if neutralised else CSV_RAW)
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
    unit = "subjects" if facts.dataset else "rows"
    crate.add(
        ContextEntity(
            crate,
            SOURCE_ID,
            properties={
                **shared,
                "name": f"Real {src.kind} ({src.name})",
                "description": (src.description or f"The real {src.kind} the generator learned from")
                + f": {src.rows} rows, {src.columns} columns. Its content is not part of this crate; "
                "only its size and SHA-256 checksum are recorded." + _source_files(src.files),
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
                "name": f"Training split of the real {'tables' if facts.dataset else 'table'}",
                "description": f"{facts.train_rows} {unit} of the real {'tables' if facts.dataset else 'table'} "
                f"drawn with split seed {facts.split_seed}; {facts.holdout_rows} further {unit} were held out for "
                "evaluation and never seen by the generator"
                + (" (a subject's rows in every table on the same side)" if facts.dataset else "")
                + ". Described here without its content.",
                "isBasedOn": {"@id": SOURCE_ID},
            },
        )
    )


def _source_files(files: dict[str, str]) -> str:
    """Several source files: each one's SHA-256, and what the recorded checksum is then."""
    if not files:
        return ""
    listed = "; ".join(f"{name} sha256 {digest}" for name, digest in sorted(files.items()))
    return (
        f" It is made of {len(files)} files ({listed}); the checksum recorded here is that of their sha256sum "
        "listing, one '<sha256>  <name>' line per file in name order."
    )


def _add_actions(crate: ROCrate, facts: RunFacts, backend: str, agent: str, model_id: str) -> None:
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
                "name": f"Fit {facts.backend} on the training {'tables' if facts.dataset else 'table'}",
                "description": f"Fitted the {facts.model_family} generator '{facts.backend}' on {facts.train_rows} "
                f"training {'subjects' if facts.dataset else 'rows'} with seed {facts.seed} in "
                f"{facts.fit_duration:.1f} s.",
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
                "name": f"Sample {facts.synthetic_text()} from {facts.backend}",
                "description": f"Drew {facts.synthetic_text()} from the fitted generator with seed "
                f"{facts.seed} in {facts.sample_seconds:.1f} s.",
                "object": {"@id": model_id},
                "result": _one_or_many([{"@id": quote(table.path)} for table in facts.tables]),  # as File ids
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
    _add_variables(crate, facts)
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
        "variableMeasured": _one_or_many(
            [{"@id": _variable_id(t.column_label(c.name))} for t in facts.tables for c in t.schema.output_columns()]
        ),
    }
    if info.funder:
        props["funder"] = {"@id": info.funder.id}
    for key, value in props.items():
        root[key] = value


def _add_variables(crate: ROCrate, facts: RunFacts) -> None:
    for table in facts.tables:
        columns = table.schema.output_columns()
        names = [c.name for c in columns]
        shown = neutralised_names(names) if facts.csv_formulas_neutralised else names  # as the data dictionary says
        for column, name in zip(columns, shown, strict=True):
            crate.add(
                ContextEntity(
                    crate,
                    _variable_id(table.column_label(column.name)),
                    properties=variable_properties(column, table.column_label(name)),
                )
            )


def variable_properties(column: ColumnSpec, name: str) -> dict[str, Any]:
    """One PropertyValue for a column (named as the data dictionary names it): kind, unit, range or levels, gaps."""
    props: dict[str, Any] = {
        "@type": "PropertyValue",
        "name": name,
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
    return "#column-" + slug(name)


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
