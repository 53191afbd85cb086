"""The REST API's table sets: several related tables uploaded, keys edited, dataset backends run as one job."""

from __future__ import annotations

import io
import zipfile

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from test_datasets import FAST

from fairsynth.services.entry.api import create_app
from fairsynth.services.settings import Settings

from helpers import pbc_tables, wait_for_job

PROBLEM = "application/problem+json"
AUTHOR = {"name": "Ada Lovelace", "affiliation": {"name": "Example University", "url": "https://example.org"}}


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.from_env({"FAIRSYNTH_DATA_DIR": str(tmp_path / "data"), "FAIRSYNTH_MAX_UPLOAD_MB": "1"})


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings)) as client:
        yield client


def upload_pbc(client) -> dict:
    files = [
        ("files", (f"{name}.csv", frame.to_csv(index=False).encode(), "text/csv"))
        for name, frame in pbc_tables().items()
    ]
    response = client.post("/datasets", files=files, data={"name": "PBC"})
    assert response.status_code == 201, response.text
    return response.json()


def test_a_table_set_is_uploaded_and_its_keys_edited_with_every_problem_named(client, settings):
    dataset = upload_pbc(client)
    assert (dataset["format"], dataset["tables"], dataset["rows"], dataset["name"]) == (
        "tables",
        ["pbc", "pbcseq"],
        418,
        "PBC",
    )
    schema = client.get(f"/datasets/{dataset['id']}/dataset-schema").json()
    assert schema["relationships"] == [{"parent": "pbc", "parent_key": "id", "child": "pbcseq", "child_key": "id"}]
    sequence = {t["name"]: t["sequence"] for t in schema["tables"]}
    assert sequence["pbcseq"] == "day"
    for table in schema["tables"]:
        if table["name"] == "pbcseq":
            table["sequence"] = None
    edited = client.put(f"/datasets/{dataset['id']}/dataset-schema", json=schema)
    assert edited.status_code == 200, edited.text
    assert client.get(f"/datasets/{dataset['id']}/dataset-schema").json()["tables"][1]["sequence"] is None
    for table in schema["tables"]:
        if table["name"] == "pbc":
            table["primary_key"] = "sex"
    schema["relationships"][0]["child_key"] = "status"
    broken = client.put(f"/datasets/{dataset['id']}/dataset-schema", json=schema)
    assert broken.status_code == 422 and broken.headers["content-type"] == PROBLEM
    assert len(broken.json()["errors"]) == 2 and "'sex' cannot be the primary key" in broken.json()["detail"]
    one_table = client.post(
        "/datasets", files={"file": ("pbc.csv", pbc_tables()["pbc"].to_csv(index=False).encode(), "text/csv")}
    )
    assert client.get(f"/datasets/{one_table.json()['id']}/dataset-schema").status_code == 409


def test_backends_say_which_take_a_table_set_and_whether_they_fit(client):
    dataset = upload_pbc(client)
    fitting = {b["name"]: b for b in client.get("/backends", params={"dataset_id": dataset["id"]}).json()}
    assert {"relational", "sdv.hma", "sdv.par"} <= set(fitting)
    assert all(b["takes"] == "tables" for b in fitting.values()) and fitting["relational"]["fits"]
    assert {b["takes"] for b in client.get("/backends").json()} == {"table"}  # the one-table listing as before
    listed = {b["name"] for b in client.get("/backends", params={"takes": "tables"}).json()}
    assert listed == set(fitting)
    wrong = client.post("/jobs", json={"dataset_id": dataset["id"], "backends": ["tvae"]})
    assert wrong.status_code == 422 and "tvae cannot run on this table set" in wrong.json()["detail"]


def test_bad_table_set_uploads_are_one_problem_each_and_leave_nothing(client, settings):
    one = client.post("/datasets", files=[("files", ("a.csv", b"id,x\n1,2\n", "text/csv"))])
    assert one.status_code == 422 and "at least two table files" in one.json()["detail"]
    assert client.get("/datasets").json() == []
    assert list((settings.data_dir / "datasets").iterdir()) == []


def test_a_long_table_is_split_into_a_table_set(client):
    upload = client.post(
        "/datasets", files={"file": ("pbcseq.csv", pbc_tables()["pbcseq"].to_csv(index=False).encode(), "text/csv")}
    )
    split = client.post(f"/datasets/{upload.json()['id']}/split", json={"key": "id"})
    assert split.status_code == 201, split.text
    assert split.json()["tables"] == ["subjects", "events"] and split.json()["rows"] == 312


@pytest.mark.slow
def test_relational_and_sdv_hma_run_on_pbc_side_by_side_with_tables_and_crates_to_download(client):
    dataset = upload_pbc(client)
    schema = client.get(f"/datasets/{dataset['id']}/dataset-schema").json()
    assert client.put(f"/datasets/{dataset['id']}/dataset-schema", json=schema).status_code == 200
    submitted = client.post(
        "/jobs",
        json={
            "dataset_id": dataset["id"],
            "backends": [{"name": "relational", "params": FAST}, "sdv.hma"],
            "rows": 60,
            "package_crates": True,
            "crate": {"authors": [AUTHOR], "keywords": ["pbc"], "license": "CC-BY-4.0"},
        },
    )
    assert submitted.status_code == 202, submitted.text
    assert "input_paths" not in submitted.json()["request"]  # no server path in a response
    job = wait_for_job(client, submitted.json()["id"], 600)
    assert job["state"] == "succeeded", job
    for task in job["tasks"]:
        assert task["state"] == "succeeded" and task["progress"]["rows_written"] == 60
        visits = client.get(f"/jobs/{job['id']}/results/{task['backend']}/tables/pbcseq")
        assert visits.status_code == 200 and visits.headers["content-type"].startswith("text/csv")
        patients = client.get(f"/jobs/{job['id']}/results/{task['backend']}/tables/pbc")
        ids = set(pd.read_csv(io.BytesIO(patients.content))["id"])
        assert len(ids) == 60 and set(pd.read_csv(io.BytesIO(visits.content))["id"]) <= ids
        assert "<html" in client.get(f"/jobs/{job['id']}/results/{task['backend']}/report").text.lower()
    comparison = client.get(f"/jobs/{job['id']}/comparison").json()
    assert [row["backend"] for row in comparison] == ["relational", "sdv.hma"]
    assert {row["referential_integrity"] for row in comparison} == {1.0}
    crates = {row["backend"]: row["artefacts"].get("crate") for row in comparison}
    released = [row["backend"] for row in comparison if row["decision"] != "block"]
    assert {name for name, url in crates.items() if url} == set(released)
    for name in released:
        crate = client.get(crates[name])
        assert crate.headers["content-type"] == "application/zip"
        assert {"data/pbc.csv", "data/pbcseq.csv"} <= set(zipfile.ZipFile(io.BytesIO(crate.content)).namelist())
    missing = client.get(f"/jobs/{job['id']}/results/relational/tables/nope")
    assert missing.status_code == 404 and "pbc, pbcseq" in missing.json()["detail"]
