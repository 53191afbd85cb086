"""Offline validation of a crate: roc-validator (Process Run Crate 0.5, RECOMMENDED), a Bioschemas Dataset
SHACL shape, file integrity, DOME completeness. Nothing is fetched from the network.

roc-validator resolves the RO-Crate JSON-LD context over HTTP; offline it would silently skip most
checks. Its requests-cache is therefore seeded with the contexts vendored in metadata/contexts and
it runs with offline=True, and skipped checks are reported next to issues.
"""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from rdflib import Graph, URIRef

from fairsynth.errors import os_errors_as
from fairsynth.metadata.archive import UnpackLimits, read_crate_zip
from fairsynth.metadata.biostudies import pagetab_paths
from fairsynth.metadata.checksums import sha256_file
from fairsynth.metadata.containment import crate_path, crate_paths, outside_links
from fairsynth.metadata.dome import dome_problems
from fairsynth.metadata.model import (
    BIOSCHEMAS_DATASET,
    DICTIONARY_PATH,
    DOME_PATH,
    METADATA_NAME,
    PAGETAB_PATH,
    PREVIEW_NAME,
    RELATIONSHIPS_PATH,
    CrateError,
)

PROFILE = "process-run-crate-0.5"
CONTEXT_URLS = {f"https://w3id.org/ro/crate/{v}/context": f"ro-crate-{v}-context.jsonld" for v in ("1.1", "1.2", "1.3")}
BASE_IRI = "http://fairsynth.local/crate/"
FILE_FIELDS = ("name", "encodingFormat", "contentSize", "sha256")
SH_RESULT_MESSAGE = URIRef("http://www.w3.org/ns/shacl#resultMessage")
SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
LOCAL_SCHEMES = {"file"}  # and one-letter schemes, which are drive letters (C:/x)
_cache_dir: tempfile.TemporaryDirectory | None = None


@dataclass
class CheckResult:
    """One validator's outcome: its issues and the checks it could not run."""

    name: str
    issues: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the validator found nothing and skipped nothing."""
        return not self.issues and not self.skipped


@dataclass
class ValidationReport:
    """All validators' outcomes for one crate."""

    checks: list[CheckResult]

    @property
    def ok(self) -> bool:
        """True when every validator passed with nothing skipped."""
        return all(c.ok for c in self.checks)

    @property
    def issues(self) -> list[str]:
        """Every issue, prefixed by the validator that found it."""
        return [f"{c.name}: {i}" for c in self.checks for i in c.issues]

    @property
    def skipped(self) -> list[str]:
        """Every skipped check, prefixed by its validator."""
        return [f"{c.name}: {s}" for c in self.checks for s in c.skipped]

    def summary(self) -> str:
        """Readable pass/fail per validator."""
        lines = []
        for check in self.checks:
            state = "PASS" if check.ok else "FAIL"
            lines.append(f"{state}  {check.name} ({len(check.issues)} issues, {len(check.skipped)} skipped)")
            lines += [f"      - {i}" for i in check.issues + [f"skipped: {s}" for s in check.skipped]]
        return "\n".join(lines)


@os_errors_as(CrateError, "read the crate")
def validate_crate(crate: Path | str, *, limits: UnpackLimits | None = None) -> ValidationReport:
    """Validate a crate directory, or a crate zip (unpacked within limits), offline with every validator.

    A zip is checked by roc-validator twice, as shipped and unpacked, so the report shows what a repository sees.
    """
    path = Path(crate)
    if path.is_file() and zipfile.is_zipfile(path):
        if limits is None:
            raise TypeError("validate_crate needs the unpack limits (the services' Settings) to read a zip.")
        with tempfile.TemporaryDirectory(prefix="fairsynth-crate-") as tmp:
            unpacked = _checks(read_crate_zip(path, tmp, limits), rocrate_on="the unpacked copy")
            return ValidationReport([check_rocrate(path, on="the zip as shipped"), *unpacked])
    return ValidationReport(_checks(path))


def _checks(root: Path, rocrate_on: str = "") -> list[CheckResult]:
    """Every validator on a crate directory, after refusing a crate that names anything outside itself."""
    metadata_file = crate_path(root, METADATA_NAME)
    if not metadata_file.is_file():
        raise CrateError(f"{root} is not a crate: it has no {METADATA_NAME}; pass a crate directory or zip.")
    try:
        metadata = json.loads(metadata_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise CrateError(f"{metadata_file} is not valid JSON ({error}); rebuild the crate.") from None
    refuse_outside_paths(root, metadata)
    return [
        check_rocrate(root, on=rocrate_on),
        check_bioschemas(metadata),
        check_files(root, metadata),
        check_structure(root, metadata),
        check_dome(root),
    ]


def refuse_outside_paths(root: Path, metadata: dict) -> None:
    """One CrateError naming every metadata @id, PageTab file or link that leads outside the crate."""
    names = local_ids(metadata)
    pagetab = crate_path(root, PAGETAB_PATH)
    if pagetab.is_file():
        try:
            names += pagetab_paths(json.loads(pagetab.read_text(encoding="utf-8")))
        except json.JSONDecodeError as error:
            raise CrateError(f"{PAGETAB_PATH} is not valid JSON ({error}); rebuild the crate.") from None
    crate_paths(root, names + outside_links(root))


def local_ids(metadata: Any) -> list[str]:
    """Every @id in the metadata that names a file of this machine: no web URI, fragment or blank node."""
    found: list[str] = []
    if isinstance(metadata, dict):
        value = metadata.get("@id")
        if isinstance(value, str) and _is_local(value):
            found.append(value)
        for item in metadata.values():
            found += local_ids(item)
    elif isinstance(metadata, list):
        for item in metadata:
            found += local_ids(item)
    return found


def _is_local(identifier: str) -> bool:
    if identifier.startswith(("#", "_:")):
        return False
    scheme = SCHEME.match(identifier)
    return not scheme or len(scheme.group(1)) == 1 or scheme.group(1).lower() in LOCAL_SCHEMES


# -- roc-validator ------------------------------------------------------------------------------
def check_rocrate(crate: Path, profile: str = PROFILE, *, on: str = "") -> CheckResult:
    """roc-validator offline at RECOMMENDED severity on a crate directory or zip, its HTTP cache seeded."""
    from rocrate_validator import services
    from rocrate_validator.models import Severity, ValidationSettings

    settings = ValidationSettings(
        rocrate_uri=str(crate.resolve()),
        profile_identifier=profile,
        requirement_severity=Severity.RECOMMENDED,
        offline=True,
        cache_path=seeded_cache(),
        cache_max_age=-1,
    )
    result = services.validate(settings)
    issues = [_issue_text(i) for i in result.get_issues()]
    skipped = [f"{d.check.identifier}: {d.message} ({d.category.value})" for d in result.skipped_check_details]
    return CheckResult(
        f"roc-validator {profile}" + (f" on {on}" if on else ""),
        issues,
        skipped,
        {"executed_checks": len(result.executed_checks), "profile": profile, "severity": "RECOMMENDED"},
    )


def seeded_cache() -> Path:
    """A requests-cache database holding the vendored RO-Crate contexts under their w3id URLs."""
    global _cache_dir
    if _cache_dir is None:
        _cache_dir = tempfile.TemporaryDirectory(prefix="fairsynth-rocv-cache-")
        _seed(Path(_cache_dir.name) / "http")
    return Path(_cache_dir.name) / "http"


def _seed(cache_path: Path) -> None:
    import requests
    import urllib3
    from requests_cache import CachedSession

    session = CachedSession(
        cache_name=str(cache_path),
        backend="sqlite",
        expire_after=-1,
        allowable_methods=("GET",),
        allowable_codes=(200,),
    )
    try:
        for url, name in CONTEXT_URLS.items():
            body = vendored_context_bytes(name)
            response = requests.Response()
            response.raw = urllib3.HTTPResponse(
                body=io.BytesIO(body),
                status=200,
                preload_content=False,
                headers={"Content-Type": "application/ld+json"},
                request_url=url,
            )
            response.status_code, response.reason, response.url = 200, "OK", url
            response._content, response.encoding = body, "utf-8"
            response.headers["Content-Type"] = "application/ld+json"
            response.request = requests.Request("GET", url).prepare()
            session.cache.save_response(response)
    finally:
        session.close()


def vendored_context_bytes(name: str) -> bytes:
    """One vendored JSON-LD context file, read from the package."""
    return resources.files("fairsynth.metadata.contexts").joinpath(name).read_bytes()


def _issue_text(issue: Any) -> str:
    message = issue.message[0] if isinstance(issue.message, tuple) else issue.message
    where = f" ({issue.violatingEntity})" if issue.violatingEntity else ""
    return f"[{issue.severity.name}] {' '.join(str(message).split())}{where}"


# -- Bioschemas SHACL ---------------------------------------------------------------------------
def check_bioschemas(metadata: dict) -> CheckResult:
    """The Bioschemas Dataset 1.0 shape (minimum + recommended) over the crate parsed with the vendored context."""
    import pyshacl

    data = Graph().parse(data=json.dumps(local_context(metadata)), format="json-ld", base=BASE_IRI)
    shapes = Graph().parse(
        data=resources.files("fairsynth.metadata.shapes").joinpath("bioschemas_dataset.ttl").read_text(),
        format="turtle",
    )
    conforms, report, _ = pyshacl.validate(data, shacl_graph=shapes, advanced=True, allow_warnings=False)
    issues = sorted({str(msg) for msg in report.objects(None, SH_RESULT_MESSAGE)}) if not conforms else []
    root = next((e for e in metadata.get("@graph", []) if e.get("@id") == "./"), {})
    if not _mentions(root.get("conformsTo"), BIOSCHEMAS_DATASET):
        issues.append(f"The root dataset does not list {BIOSCHEMAS_DATASET} in conformsTo.")
    return CheckResult("Bioschemas Dataset 1.0 (SHACL)", issues, [], {"triples": len(data)})


def local_context(metadata: dict) -> dict:
    """The crate JSON-LD with each remote RO-Crate context replaced by the vendored one (nothing fetched)."""
    contexts = metadata.get("@context")
    contexts = contexts if isinstance(contexts, list) else [contexts]
    resolved = []
    for context in contexts:
        if isinstance(context, str):
            if context not in CONTEXT_URLS:
                raise CrateError(
                    f"The crate uses the context {context}, which is not vendored; "
                    "only RO-Crate 1.1-1.3 contexts can be resolved offline."
                )
            context = json.loads(vendored_context_bytes(CONTEXT_URLS[context]))["@context"]
        resolved.append(context)
    return {**metadata, "@context": resolved}


def _mentions(value: Any, target: str) -> bool:
    values = value if isinstance(value, list) else [value]
    return any((v.get("@id") if isinstance(v, dict) else v) == target for v in values if v)


# -- files and structure ------------------------------------------------------------------------
def check_files(root: Path, metadata: dict) -> CheckResult:
    """Every File entity has name, encodingFormat, contentSize, sha256 matching the bytes; every file is listed."""
    issues = []
    files = {e["@id"]: e for e in metadata["@graph"] if _types(e) & {"File"}}
    for rel, entity in files.items():
        if not _is_local(rel):  # a web data entity
            continue
        missing = [name for name in FILE_FIELDS if not entity.get(name)]
        if missing:
            issues.append(f"File {rel} lacks {', '.join(missing)}.")
        path = crate_path(root, unquote(rel))  # an @id is a URI path: 'lab%20results.csv' is 'lab results.csv'
        if not path.is_file():
            issues.append(f"File {rel} is described but missing from the crate.")
            continue
        if entity.get("sha256") and entity["sha256"] != sha256_file(path):
            issues.append(f"File {rel} does not match its sha256: it changed after the crate was built.")
        if entity.get("contentSize") and str(entity["contentSize"]) != str(path.stat().st_size):
            issues.append(f"File {rel} is {path.stat().st_size} bytes but contentSize says {entity['contentSize']}.")
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    for rel in sorted(on_disk - {unquote(rel) for rel in files} - {METADATA_NAME, PREVIEW_NAME}):
        issues.append(f"File {rel} is in the crate but not described in {METADATA_NAME}.")
    return CheckResult("files (presence, size, sha256)", issues, [], {"files": len(files)})


def check_structure(root: Path, metadata: dict) -> CheckResult:
    """fairsynth's own rules: both CreateActions, one PropertyValue per column, no single-item arrays."""
    graph = {e["@id"]: e for e in metadata["@graph"]}
    root_entity = graph.get("./", {})
    issues = []
    for action in ("#fit", "#sample"):
        if "CreateAction" not in _types(graph.get(action, {})):
            issues.append(f"The CreateAction {action} is missing.")
        elif not _mentions(root_entity.get("mentions"), action):
            issues.append(f"The root dataset does not mention the CreateAction {action}.")
    issues += _single_item_arrays(metadata["@graph"])
    issues += _variables_match_dictionary(root, graph, root_entity)
    if not (root / PREVIEW_NAME).is_file():
        issues.append(f"{PREVIEW_NAME} is missing.")
    return CheckResult("crate structure (actions, columns, arrays)", issues)


def _single_item_arrays(entities: list[dict]) -> list[str]:
    return [
        f"Entity {e['@id']} has a single-item array for '{key}'; give the value itself."
        for e in entities
        for key, value in e.items()
        if isinstance(value, list) and len(value) == 1
    ]


def _variables_match_dictionary(root: Path, graph: dict, root_entity: dict) -> list[str]:
    """Every dictionary column (a dataset's as `table.column`) has its PropertyValue, and no PropertyValue more."""
    dictionaries = _dictionaries(root)
    if not dictionaries:
        return [f"{DICTIONARY_PATH} is missing."]
    columns, problems = [], []
    for rel, table in dictionaries.items():
        path = crate_path(root, rel)
        if not path.is_file():
            problems.append(f"{rel} is missing.")
            continue
        with open(path, newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.DictReader(handle) if row.get("synthetic_handling") != "dropped"]
        columns += [f"{table}.{row['column']}" if table else row["column"] for row in rows]
    refs = root_entity.get("variableMeasured")
    refs = refs if isinstance(refs, list) else [refs] if refs else []
    described = [graph.get(r["@id"], {}).get("name") for r in refs if isinstance(r, dict)]
    problems += [f"Column {c} has no variableMeasured PropertyValue." for c in columns if c not in described]
    problems += [
        f"variableMeasured names {d}, which the data dictionary does not list." for d in described if d not in columns
    ]
    return problems


def _dictionaries(root: Path) -> dict[str, str | None]:
    """The crate's data dictionaries, each with the table it names columns of: one table's, or every table's that
    data/relationships.json lists (None: the columns are named as they are)."""
    if crate_path(root, DICTIONARY_PATH).is_file():
        return {DICTIONARY_PATH: None}
    listing = crate_path(root, RELATIONSHIPS_PATH)
    if not listing.is_file():
        return {}
    try:
        tables = json.loads(listing.read_text(encoding="utf-8")).get("tables", [])
    except (json.JSONDecodeError, AttributeError):
        raise CrateError(
            f"{RELATIONSHIPS_PATH} is not a JSON object with a 'tables' list; rebuild the crate."
        ) from None
    return {str(table.get("dictionary")): str(table.get("name")) for table in tables if isinstance(table, dict)}


def _types(entity: dict) -> set[str]:
    value = entity.get("@type", [])
    return set(value if isinstance(value, list) else [value])


# -- DOME ------------------------------------------------------------------------------------------
def check_dome(root: Path) -> CheckResult:
    """Every DOME section and field present and non-empty."""
    path = crate_path(root, DOME_PATH)
    if not path.is_file():
        return CheckResult("DOME completeness", [f"{DOME_PATH} is missing."])
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        return CheckResult("DOME completeness", [f"{DOME_PATH} is not valid JSON ({error})."])
    return CheckResult("DOME completeness", dome_problems(record))
