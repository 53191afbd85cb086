"""BioStudies: the PageTab JSON of a crate and a deposit client for the submission API (dry run by default).

Deposit flow of the BioStudies submission API: POST /auth/login {"login", "password"} gives a
session token (sent back as the X-SESSION-TOKEN header); POST /files/user/<folder> uploads files
(multipart field "files") into the user's folder; POST /submissions/async (or /submissions) with
the PageTab JSON submits; GET /submissions/<accno>.json reads the submission back. The server URL
is configuration; credentials come from the environment; without both nothing is sent.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from fairsynth.errors import FairsynthError, os_errors_as
from fairsynth.metadata.archive import UnpackLimits, read_crate_zip
from fairsynth.metadata.containment import crate_path, crate_paths
from fairsynth.metadata.model import (
    DOME_PATH,
    METADATA_NAME,
    MODEL_DIR,
    PAGETAB_PATH,
    PREVIEW_NAME,
    CrateInfo,
    RunFacts,
    TableFacts,
    describe_dataset,
    describe_path,
    is_synthetic_data,
)

USER_ENV = "FAIRSYNTH_BIOSTUDIES_USER"
PASSWORD_ENV = "FAIRSYNTH_BIOSTUDIES_PASSWORD"
SERVER_ENV = "FAIRSYNTH_BIOSTUDIES_SERVER"
TOKEN_HEADER = "X-SESSION-TOKEN"
DRY_RUN_DIR = "biostudies-dry-run"


class DepositError(FairsynthError):
    """The deposit failed; the message is one sentence saying what went wrong and what to do."""


# -- PageTab ------------------------------------------------------------------------------------
def attribute(name: str, value: Any, **extra: Any) -> dict[str, Any]:
    """One PageTab attribute."""
    return {"name": name, "value": str(value), **extra}


def build_pagetab(root: Path, info: CrateInfo, facts: RunFacts) -> dict[str, Any]:
    """The PageTab JSON submission for the crate in root: Study section, files, links, authors, organisations."""
    facts = facts.with_tables(root)
    release = info.date_published.isoformat() if info.date_published else facts.sample_end.date().isoformat()
    return {
        "attributes": [attribute("Title", info.title), attribute("ReleaseDate", release)],
        "section": {
            "type": "Study",
            "attributes": _study_attributes(info, facts),
            "files": [_file_entry(rel, facts.tables) for rel in pagetab_files(root)],
            "links": _links(info, facts),
            "subsections": _people(info),
        },
    }


def write_pagetab(root: Path, info: CrateInfo, facts: RunFacts) -> Path:
    """Write metadata/biostudies.pagetab.json inside the crate directory."""
    path = Path(root) / PAGETAB_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(build_pagetab(Path(root), info, facts), indent=2), encoding="utf-8")
    return path


def pagetab_files(root: Path) -> list[str]:
    """Crate-relative paths the submission lists: every run file plus the crate metadata, not the PageTab itself."""
    found = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    found |= {METADATA_NAME, PREVIEW_NAME, DOME_PATH}
    found.discard(PAGETAB_PATH)
    return sorted(found)


def _study_attributes(info: CrateInfo, facts: RunFacts) -> list[dict[str, Any]]:
    attrs = [attribute("Description", describe_dataset(info, facts))]
    attrs += [attribute("Keywords", k) for k in info.keywords]
    attrs.append(attribute("License", info.license_name, valqual=[{"name": "URL", "value": info.license}]))
    if facts.source.organism:
        attrs.append(attribute("Organism", facts.source.organism))
    attrs += [
        attribute("Synthetic", "true"),
        attribute("Generator", f"{facts.backend} {facts.backend_version}"),
        attribute(
            "Source",
            f"{facts.source.kind}: {facts.source.rows} rows, {facts.source.columns} columns, "
            f"sha256 {facts.source.sha256}",
        ),
    ]
    if info.funder:
        attrs.append(attribute("Funding", info.funder.name))
    return attrs


def _file_entry(rel: str, tables: Sequence[TableFacts] = ()) -> dict[str, Any]:
    description, media_type = describe_path(rel, tables)
    kind = "Synthetic data" if is_synthetic_data(rel, tables) else "Model" if rel.startswith(MODEL_DIR) else "Metadata"
    return {
        "path": rel,
        "type": "file",
        "attributes": [attribute("Description", description), attribute("Type", kind), attribute("Format", media_type)],
    }


def _links(info: CrateInfo, facts: RunFacts) -> list[dict[str, Any]]:
    links = [
        {
            "url": facts.backend_url,
            "attributes": [attribute("Type", "Software"), attribute("Description", f"Generator {facts.backend}")],
        }
    ]
    if info.url:
        links.append(
            {
                "url": info.url,
                "attributes": [attribute("Type", "Dataset"), attribute("Description", "Landing page of this dataset")],
            }
        )
    links.append({"url": info.license, "attributes": [attribute("Type", "License")]})
    return links


def _people(info: CrateInfo) -> list[dict[str, Any]]:
    orgs: dict[str, Any] = {}
    for org in [a.affiliation for a in info.authors] + [info.publisher_org]:
        orgs.setdefault(org.id, (f"o{len(orgs) + 1}", org))
    authors = []
    for author in info.authors:
        attrs = [attribute("Name", author.name)]
        if author.orcid:
            attrs.append(attribute("ORCID", author.orcid.removeprefix("https://orcid.org/")))
        attrs.append(attribute("affiliation", orgs[author.affiliation.id][0], reference=True))
        authors.append({"type": "Author", "attributes": attrs})
    organisations = []
    for accno, org in orgs.values():
        attrs = [attribute("Name", org.name)]
        if org.ror:
            attrs.append(attribute("RORID", org.ror))
        elif org.url:
            attrs.append(attribute("URL", org.url))
        organisations.append({"type": "Organization", "accno": accno, "attributes": attrs})
    return authors + organisations


# -- deposit --------------------------------------------------------------------------------------
@dataclass
class DepositResult:
    """What a deposit did: dry run (with where the plan lies) or a submission (with its accession)."""

    dry_run: bool
    files: list[str]
    plan_dir: Path | None = None
    accno: str | None = None
    status: dict[str, Any] = field(default_factory=dict)


class BioStudiesClient:
    """A small client for the BioStudies submission API."""

    def __init__(self, server: str, *, timeout: float = 60.0, transport: httpx.BaseTransport | None = None) -> None:
        self.server = server.rstrip("/")
        self.http = httpx.Client(base_url=self.server, timeout=timeout, transport=transport)
        self.token: str | None = None

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def login(self, user: str, password: str) -> str:
        """Log in and keep the session token."""
        response = self._call("POST", "/auth/login", json={"login": user, "password": password}, auth=False)
        if response.status_code in (401, 403):
            raise DepositError(
                f"BioStudies at {self.server} refused the login for '{user}'; check {USER_ENV} and {PASSWORD_ENV}."
            )
        self._raise_for(response, "log in")
        token = response.json().get("sessionToken")
        if not token:
            raise DepositError(
                f"BioStudies at {self.server} answered the login without a session token; "
                "check the server URL points at the submission API."
            )
        self.token = token
        return token

    def upload(self, path: Path, folder: str) -> None:
        """Upload one file into the user's folder (sub-folder `folder`)."""
        with open(path, "rb") as handle:
            response = self._call("POST", f"/files/user/{folder}".rstrip("/"), files=[("files", (path.name, handle))])
        self._raise_for(response, f"upload {path.name}")

    def submit(self, pagetab: dict[str, Any], *, asynchronous: bool = True) -> str:
        """Submit the PageTab JSON; returns the accession number."""
        endpoint = "/submissions/async" if asynchronous else "/submissions"
        response = self._call("POST", endpoint, json=pagetab, headers={"Submission_Type": "application/json"})
        self._raise_for(response, "submit the PageTab")
        body = response.json()
        accno = body.get("accNo") or body.get("accno")
        if not accno:
            raise DepositError(
                "BioStudies accepted the submission but returned no accession number; "
                "look it up in the BioStudies submission tool."
            )
        return accno

    def status(self, accno: str) -> dict[str, Any]:
        """The submission as the server holds it now."""
        response = self._call("GET", f"/submissions/{accno}.json")
        self._raise_for(response, f"read submission {accno}")
        return response.json()

    def _call(
        self, method: str, url: str, *, auth: bool = True, headers: dict | None = None, **kwargs
    ) -> httpx.Response:
        sent = dict(headers or {})
        if auth:
            if not self.token:
                raise DepositError("Not logged in to BioStudies; call login() first.")
            sent[TOKEN_HEADER] = self.token
        try:
            return self.http.request(method, url, headers=sent, **kwargs)
        except httpx.HTTPError as error:
            raise DepositError(
                f"Could not reach BioStudies at {self.server} ({error}); check the server URL and the network."
            ) from None

    def _raise_for(self, response: httpx.Response, action: str) -> None:
        if response.status_code >= 400:
            detail = response.text.strip().replace("\n", " ")[:200]
            raise DepositError(
                f"BioStudies could not {action} (HTTP {response.status_code}: {detail}); "
                "fix the cause and deposit again."
            )


@os_errors_as(DepositError, "read the crate or write the deposit plan")
def deposit(
    crate_dir: Path | str,
    *,
    out_dir: Path | str,
    server: str | None = None,
    environ: Mapping[str, str] | None = None,
    folder: str | None = None,
    transport: httpx.BaseTransport | None = None,
    limits: UnpackLimits | None = None,
) -> DepositResult:
    """Deposit a crate (directory, or zip unpacked within limits); a dry run under out_dir unless server and login.

    Every file the PageTab names must lie inside the crate: nothing outside it is opened, listed or sent.
    """
    if Path(crate_dir).is_file() and zipfile.is_zipfile(crate_dir):
        if limits is None:
            raise TypeError("deposit needs the unpack limits (the services' Settings) to read a zip.")
        with tempfile.TemporaryDirectory(prefix="fairsynth-deposit-") as tmp:
            return deposit(
                read_crate_zip(crate_dir, tmp, limits),
                out_dir=out_dir,
                server=server,
                environ=environ,
                folder=folder,
                transport=transport,
            )
    root = Path(crate_dir)
    env = os.environ if environ is None else environ
    pagetab_file = crate_path(root, PAGETAB_PATH)
    if not pagetab_file.is_file():
        raise DepositError(f"{root} has no {PAGETAB_PATH}; build the crate before depositing it.")
    try:
        pagetab = json.loads(pagetab_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DepositError(f"{PAGETAB_PATH} is not valid JSON ({error}); rebuild the crate.") from None
    paths = crate_paths(root, pagetab_paths(pagetab))  # refuses the crate before any listed file is opened
    missing = [rel for rel, path in paths.items() if not path.is_file()]
    if missing:
        raise DepositError(f"The PageTab lists files the crate lacks ({', '.join(missing)}); rebuild the crate.")
    server = server or env.get(SERVER_ENV)
    user, password = env.get(USER_ENV), env.get(PASSWORD_ENV)
    if not server or not user or not password:
        return _dry_run(paths, pagetab, Path(out_dir), server)
    folder = folder or _folder_name(pagetab)
    client = BioStudiesClient(server, transport=transport)
    try:
        client.login(user, password)
        for rel, path in paths.items():
            client.upload(path, "/".join([folder, *Path(rel).parent.parts]))
        accno = client.submit(with_folder(pagetab, folder))
        return DepositResult(dry_run=False, files=list(paths), accno=accno, status=client.status(accno))
    finally:
        client.close()


def pagetab_paths(pagetab: Any) -> list[str]:
    """Every file path a PageTab lists, in its Study section and all subsections."""
    section = pagetab.get("section") if isinstance(pagetab, dict) else None
    return [str(entry.get("path", "")) for entry in _file_entries(section)]


def with_folder(pagetab: dict[str, Any], folder: str) -> dict[str, Any]:
    """A copy of the PageTab whose file paths point into the user-folder sub-folder the files were uploaded to."""
    copy = json.loads(json.dumps(pagetab))
    for entry in _file_entries(copy["section"]):
        entry["path"] = f"{folder}/{entry['path']}"
    return copy


def _file_entries(section: Any) -> Iterator[dict[str, Any]]:
    """The file entries of a PageTab section and its subsections (a files table may nest one list deep)."""
    if not isinstance(section, dict):
        return
    for entry in _flat(section.get("files", [])):
        if isinstance(entry, dict):
            yield entry
    for subsection in _flat(section.get("subsections", [])):
        yield from _file_entries(subsection)


def _flat(items: Any) -> list[Any]:
    items = items if isinstance(items, list) else []
    return [item for entry in items for item in (entry if isinstance(entry, list) else [entry])]


def _dry_run(paths: dict[str, Path], pagetab: dict, out_dir: Path, server: str | None) -> DepositResult:
    plan_dir = out_dir / DRY_RUN_DIR
    plan_dir.mkdir(parents=True, exist_ok=True)
    (plan_dir / "pagetab.json").write_text(json.dumps(pagetab, indent=2), encoding="utf-8")
    listing = [{"path": rel, "bytes": path.stat().st_size} for rel, path in paths.items()]
    reason = "no server URL given" if not server else f"no credentials in {USER_ENV}/{PASSWORD_ENV}"
    (plan_dir / "files.json").write_text(
        json.dumps({"server": server, "dry_run_because": reason, "files": listing}, indent=2), encoding="utf-8"
    )
    return DepositResult(dry_run=True, files=list(paths), plan_dir=plan_dir)


def _folder_name(pagetab: dict) -> str:
    title = next(a["value"] for a in pagetab["attributes"] if a["name"] == "Title")
    slug = "".join(ch if ch.isalnum() else "-" for ch in title.lower()).strip("-")
    return "fairsynth-" + "-".join(filter(None, slug.split("-")))[:60]
