"""BioStudies PageTab field by field, and the deposit client: dry run and a local stand-in server."""

from __future__ import annotations

import json
import re
import shutil
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI, Header, HTTPException, Request, UploadFile

from fairsynth.metadata.biostudies import (
    PASSWORD_ENV,
    SERVER_ENV,
    USER_ENV,
    BioStudiesClient,
    DepositError,
    build_pagetab,
    deposit,
)
from fairsynth.metadata.builder import build_crate
from fairsynth.metadata.checksums import sha256_file
from fairsynth.metadata.model import Author, CrateError, CrateInfo, Organization, RunFacts, SourceFacts
from fairsynth.metadata.schema import TableSchema
from fairsynth.metadata.validate import validate_crate
from fairsynth.services.run.demo import DEMO_PATH, load_demo_table
from fairsynth.services.settings import Settings

from helpers import wait_for

T0 = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
USER, PASSWORD, TOKEN = "depositor@example.org", "correct horse", "session-token-123"


def crate_info() -> CrateInfo:
    ucl = Organization(name="University College London", ror="https://ror.org/02jx3x895")
    return CrateInfo(
        title="Synthetic episodes for BioStudies",
        description="Synthetic hospital episodes",
        authors=[
            Author(name="Ada Lovelace", orcid="https://orcid.org/0000-0002-1825-0097", affiliation=ucl),
            Author(name="Grace Hopper", affiliation=Organization(name="Navy Lab", url="https://example.org/navy")),
            Author(name="Alan Turing", affiliation=ucl),
        ],
        keywords=["synthetic data", "hospital episodes", "RO-Crate"],
        url="https://example.org/datasets/episodes",
    )


@pytest.fixture(scope="module")
def crate(tmp_path_factory) -> tuple[Path, CrateInfo, RunFacts]:
    """A built crate around a small real table written as the synthetic file."""
    root = tmp_path_factory.mktemp("biostudies-crate")
    table = load_demo_table().head(200)
    schema = TableSchema.infer(table)
    for sub in ("data", "config", "evaluation", "model"):
        (root / sub).mkdir()
    table.to_csv(root / "data/synthetic.csv", index=False)
    (root / "config/generation.json").write_text("{}")
    (root / "evaluation/metrics.json").write_text(json.dumps({"quality": {"quality": 0.7}}))
    (root / "model/weights.safetensors").write_bytes(b"\0" * 64)
    facts = RunFacts(
        backend="sdv.gaussian_copula",
        backend_version="2.0.0",
        backend_url="https://github.com/sdv-dev/SDV",
        backend_license="BUSL-1.1",
        model_family="Gaussian copula",
        schema=schema,
        source=SourceFacts(rows=2000, columns=14, sha256=sha256_file(DEMO_PATH)),
        seed=1,
        fit_start=T0,
        fit_end=T0 + timedelta(seconds=5),
        sample_start=T0 + timedelta(seconds=6),
        sample_end=T0 + timedelta(seconds=7),
        train_rows=1600,
        holdout_rows=400,
        split_seed=1,
        synthetic_rows=200,
    )
    build_crate(root, crate_info(), facts)
    return root, crate_info(), facts


def attrs(node: dict) -> list[tuple[str, str]]:
    return [(a["name"], a["value"]) for a in node["attributes"]]


# -- PageTab --------------------------------------------------------------------------------------
def test_pagetab_top_level_and_study_attributes(crate):
    root, info, facts = crate
    pagetab = json.loads((root / "metadata/biostudies.pagetab.json").read_text())
    assert pagetab == build_pagetab(root, info, facts)  # the same after the crate files were added
    assert attrs(pagetab) == [("Title", "Synthetic episodes for BioStudies"), ("ReleaseDate", "2026-11-23")]
    study = pagetab["section"]
    assert study["type"] == "Study"
    values = attrs(study)
    names = [n for n, _ in values]
    assert names[0] == "Description" and "SYNTHETIC" in values[0][1]
    assert [v for n, v in values if n == "Keywords"] == ["synthetic data", "hospital episodes", "RO-Crate"]
    license_attr = next(a for a in study["attributes"] if a["name"] == "License")
    assert license_attr["value"] == "CC-BY-4.0"
    assert license_attr["valqual"] == [{"name": "URL", "value": "https://spdx.org/licenses/CC-BY-4.0"}]
    assert ("Organism", "Homo sapiens") in values
    assert ("Synthetic", "true") in values
    assert ("Generator", "sdv.gaussian_copula 2.0.0") in values
    source = dict(values)["Source"]
    assert "2000 rows, 14 columns" in source and sha256_file(DEMO_PATH) in source


def test_pagetab_files_each_have_path_description_and_type(crate):
    root, _, _ = crate
    files = json.loads((root / "metadata/biostudies.pagetab.json").read_text())["section"]["files"]
    paths = [f["path"] for f in files]
    assert paths == sorted(paths)
    assert {
        "data/synthetic.csv",
        "data/data-dictionary.csv",
        "model/weights.safetensors",
        "metadata/dome.json",
        "ro-crate-metadata.json",
        "ro-crate-preview.html",
        "config/generation.json",
        "evaluation/metrics.json",
    } == set(paths)
    for entry in files:
        assert entry["type"] == "file"
        fields = dict(attrs(entry))
        assert set(fields) == {"Description", "Type", "Format"} and fields["Description"]
        assert (root / entry["path"]).is_file()
    by_path = {f["path"]: dict(attrs(f)) for f in files}
    assert by_path["data/synthetic.csv"]["Type"] == "Synthetic data"
    assert by_path["data/synthetic.csv"]["Format"] == "text/csv"
    assert by_path["model/weights.safetensors"]["Type"] == "Model"


def test_pagetab_links_authors_and_organisations_by_reference(crate):
    root, _, _ = crate
    study = json.loads((root / "metadata/biostudies.pagetab.json").read_text())["section"]
    links = {link["url"]: dict(attrs(link)) for link in study["links"]}
    assert links["https://github.com/sdv-dev/SDV"]["Type"] == "Software"
    assert links["https://example.org/datasets/episodes"]["Type"] == "Dataset"
    assert links["https://spdx.org/licenses/CC-BY-4.0"]["Type"] == "License"
    authors = [s for s in study["subsections"] if s["type"] == "Author"]
    orgs = [s for s in study["subsections"] if s["type"] == "Organization"]
    assert [dict(attrs(a))["Name"] for a in authors] == ["Ada Lovelace", "Grace Hopper", "Alan Turing"]
    assert dict(attrs(authors[0]))["ORCID"] == "0000-0002-1825-0097"
    assert "ORCID" not in dict(attrs(authors[1]))
    assert [o["accno"] for o in orgs] == ["o1", "o2"]
    assert attrs(orgs[0]) == [("Name", "University College London"), ("RORID", "https://ror.org/02jx3x895")]
    assert attrs(orgs[1]) == [("Name", "Navy Lab"), ("URL", "https://example.org/navy")]
    refs = [next(a for a in author["attributes"] if a["name"] == "affiliation") for author in authors]
    assert [(r["value"], r["reference"]) for r in refs] == [("o1", True), ("o2", True), ("o1", True)]


# -- deposit: dry run -------------------------------------------------------------------------------
def test_dry_run_is_the_default_and_writes_the_pagetab_and_file_list(crate, tmp_path):
    root, _, _ = crate
    result = deposit(root, out_dir=tmp_path, environ={})
    assert result.dry_run and result.accno is None
    plan = json.loads((result.plan_dir / "files.json").read_text())
    assert plan["dry_run_because"] == "no server URL given"
    assert [f["path"] for f in plan["files"]] == result.files
    assert plan["files"][0]["bytes"] == (root / result.files[0]).stat().st_size
    sent = json.loads((result.plan_dir / "pagetab.json").read_text())
    assert sent == json.loads((root / "metadata/biostudies.pagetab.json").read_text())


def test_dry_run_without_credentials_even_with_a_server(crate, tmp_path):
    root, _, _ = crate
    result = deposit(root, out_dir=tmp_path, server="http://127.0.0.1:9", environ={USER_ENV: "someone"})
    assert result.dry_run
    assert USER_ENV in json.loads((result.plan_dir / "files.json").read_text())["dry_run_because"]


# -- deposit: the stand-in server --------------------------------------------------------------------
class StandIn:
    """A local BioStudies stand-in: login, user-folder upload, async submission, submission status."""

    def __init__(self) -> None:
        self.uploads: dict[str, bytes] = {}
        self.submissions: dict[str, dict] = {}
        self.fail_upload_of: str | None = None
        self.app = self._app()

    def _app(self) -> FastAPI:
        app = FastAPI()

        def authorised(token: str | None) -> None:
            if token != TOKEN:
                raise HTTPException(401, "Authentication required")

        @app.post("/auth/login")
        async def login(body: dict):
            if body != {"login": USER, "password": PASSWORD}:
                raise HTTPException(401, "Invalid email address or password.")
            return {"sessionToken": TOKEN, "email": USER}

        @app.post("/files/user/{folder:path}")
        async def upload(
            folder: str, files: list[UploadFile], token: str | None = Header(default=None, alias="X-SESSION-TOKEN")
        ):
            authorised(token)
            for item in files:
                if item.filename == self.fail_upload_of:
                    raise HTTPException(507, "User folder quota exceeded")
                self.uploads[f"{folder}/{item.filename}"] = await item.read()
            return []

        @app.post("/submissions/async")
        async def submit(request: Request, token: str | None = Header(default=None, alias="X-SESSION-TOKEN")):
            authorised(token)
            if request.headers.get("Submission_Type") != "application/json":
                raise HTTPException(400, "Submission_Type header must be application/json")
            pagetab = await request.json()
            missing = [f["path"] for f in pagetab["section"]["files"] if f["path"] not in self.uploads]
            if missing:
                raise HTTPException(400, f"File(s) not found: {missing}")
            accno = f"S-BSST{len(self.submissions) + 1}"
            self.submissions[accno] = pagetab
            return {"accNo": accno, "version": 1}

        @app.get("/submissions/{accno}.json")
        async def status(accno: str, token: str | None = Header(default=None, alias="X-SESSION-TOKEN")):
            authorised(token)
            if accno not in self.submissions:
                raise HTTPException(404, "Submission not found")
            return {"accno": accno, **self.submissions[accno]}

        return app


@pytest.fixture(scope="module")
def server():
    """The stand-in served by uvicorn on 127.0.0.1 (a free port) in a thread for this module."""
    stand_in = StandIn()
    config = uvicorn.Config(stand_in.app, host="127.0.0.1", port=0, log_level="warning")
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    wait_for(lambda: runner.started, 20, interval=0.05, message="the stand-in server did not start")
    port = runner.servers[0].sockets[0].getsockname()[1]
    yield stand_in, f"http://127.0.0.1:{port}"
    runner.should_exit = True
    thread.join(timeout=10)


def credentials(url: str, password: str = PASSWORD) -> dict[str, str]:
    return {SERVER_ENV: url, USER_ENV: USER, PASSWORD_ENV: password}


def test_deposit_logs_in_uploads_every_file_submits_and_reads_status(crate, server, tmp_path):
    root, _, _ = crate
    stand_in, url = server
    stand_in.fail_upload_of = None
    result = deposit(root, out_dir=tmp_path, environ=credentials(url), folder="fairsynth-test")
    assert not result.dry_run and result.accno.startswith("S-BSST")
    assert not (tmp_path / "biostudies-dry-run").exists()
    for rel in result.files:
        assert stand_in.uploads[f"fairsynth-test/{rel}"] == (root / rel).read_bytes()
    submitted = stand_in.submissions[result.accno]
    assert [f["path"] for f in submitted["section"]["files"]] == [f"fairsynth-test/{rel}" for rel in result.files]
    assert result.status["accno"] == result.accno
    assert ("Synthetic", "true") in attrs(result.status["section"])


def test_wrong_password_gives_one_clear_sentence(crate, server, tmp_path):
    root, _, _ = crate
    _, url = server
    with pytest.raises(DepositError) as error:
        deposit(root, out_dir=tmp_path, environ=credentials(url, password="wrong"))
    message = str(error.value)
    assert message == (f"BioStudies at {url} refused the login for '{USER}'; check {USER_ENV} and {PASSWORD_ENV}.")


def test_upload_error_names_the_file_and_status(crate, server, tmp_path):
    root, _, _ = crate
    stand_in, url = server
    stand_in.fail_upload_of = "synthetic.csv"
    try:
        with pytest.raises(DepositError, match=r"could not upload synthetic.csv \(HTTP 507: .*quota exceeded"):
            deposit(root, out_dir=tmp_path, environ=credentials(url))
    finally:
        stand_in.fail_upload_of = None


def test_client_refuses_calls_before_login_and_unreachable_server_is_named(server):
    _, url = server
    client = BioStudiesClient(url)
    with pytest.raises(DepositError, match="Not logged in"):
        client.status("S-BSST1")
    client.close()
    dead = BioStudiesClient("http://127.0.0.1:9", timeout=2)
    with pytest.raises(DepositError, match="Could not reach BioStudies at http://127.0.0.1:9"):
        dead.login(USER, PASSWORD)
    dead.close()


def test_deposit_refuses_a_directory_without_pagetab(tmp_path):
    with pytest.raises(DepositError, match="build the crate before depositing"):
        deposit(tmp_path, out_dir=tmp_path)


def test_deposit_reads_a_crate_zip_that_validates_as_shipped(crate, server, tmp_path):
    from fairsynth.metadata.archive import zip_crate

    root, _, _ = crate
    stand_in, url = server
    archive = zip_crate(root, tmp_path / "crate.zip")
    report = validate_crate(archive, limits=Settings())
    assert report.ok and report.checks[0].name.endswith("on the zip as shipped"), report.summary()
    result = deposit(archive, out_dir=tmp_path, environ=credentials(url), folder="from-zip", limits=Settings())
    assert stand_in.uploads["from-zip/data/synthetic.csv"] == (root / "data/synthetic.csv").read_bytes()
    assert result.accno in stand_in.submissions


# -- deposit: files outside the crate ---------------------------------------------------------------
def hostile_copy(crate_root: Path, tmp_path: Path, named: str) -> Path:
    """A copy of the crate whose PageTab also lists `named`, a file outside the crate."""
    root = tmp_path / "hostile"
    shutil.copytree(crate_root, root)
    path = root / "metadata/biostudies.pagetab.json"
    pagetab = json.loads(path.read_text())
    pagetab["section"]["subsections"].append({"type": "Files", "files": [[{"path": named, "type": "file"}]]})
    path.write_text(json.dumps(pagetab))
    return root


@pytest.mark.parametrize("named", ["/etc/passwd", "../../../../../../../../etc/hostname", "../secret.txt"])
def test_a_pagetab_naming_a_file_outside_the_crate_is_refused_and_nothing_is_listed_or_sent(
    crate, server, tmp_path, named
):
    (tmp_path / "secret.txt").write_text("the secret outside the crate")
    root = hostile_copy(crate[0], tmp_path, named)
    stand_in, url = server
    before = dict(stand_in.uploads)
    for environ in ({}, credentials(url)):  # the dry run, then a configured server
        with pytest.raises(CrateError, match=rf"^'{re.escape(named)}' points outside the crate .* refused"):
            deposit(root, out_dir=tmp_path / "plan", environ=environ, folder="hostile")
    assert not (tmp_path / "plan").exists()
    assert stand_in.uploads == before


def test_a_pagetab_file_that_is_a_link_leaving_the_crate_is_never_uploaded(crate, server, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("the secret outside the crate")
    root = hostile_copy(crate[0], tmp_path, "data/notes.txt")
    (root / "data/notes.txt").symlink_to(secret)
    stand_in, url = server
    with pytest.raises(CrateError, match="'data/notes.txt' points outside the crate"):
        deposit(root, out_dir=tmp_path / "plan", environ=credentials(url), folder="linked")
    assert not any(key.startswith("linked/") for key in stand_in.uploads)


def test_every_pagetab_file_in_subsections_is_uploaded_under_the_folder(crate, server, tmp_path):
    root = hostile_copy(crate[0], tmp_path, "data/synthetic.csv")
    stand_in, url = server
    result = deposit(root, out_dir=tmp_path, environ=credentials(url), folder="nested")
    files = stand_in.submissions[result.accno]["section"]["subsections"][-1]["files"]
    assert files == [[{"path": "nested/data/synthetic.csv", "type": "file"}]]
