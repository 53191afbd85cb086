"""REST API on SQLite and the local executor: a two-backend job end to end, uploads, auth and problem errors."""

from __future__ import annotations

import asyncio
import io
import json

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from fairsynth.services.entry.api import check_exposure, create_app
from fairsynth.services.settings import Settings, SettingsError

from helpers import wait_for_job

PROBLEM = "application/problem+json"


@pytest.fixture
def settings(tmp_path) -> Settings:
    """A fresh data directory, a small upload limit."""
    return Settings.from_env({"FAIRSYNTH_DATA_DIR": str(tmp_path / "data"), "FAIRSYNTH_MAX_UPLOAD_MB": "1"})


@pytest.fixture
def client(settings):
    """A TestClient with the app's lifespan (store + local executor) running."""
    with TestClient(create_app(settings)) as client:
        yield client


def csv_bytes(table: pd.DataFrame) -> bytes:
    """A table as CSV bytes."""
    return table.to_csv(index=False).encode()


@pytest.mark.slow
def test_two_backend_job_on_an_uploaded_table_end_to_end(client, settings, demo):
    upload = client.post("/datasets", files={"file": ("episodes.csv", csv_bytes(demo.head(800)), "text/csv")})
    assert upload.status_code == 201, upload.text
    dataset = upload.json()
    assert (dataset["rows"], dataset["columns"], dataset["format"]) == (800, demo.shape[1], "csv")
    schema = client.get(f"/datasets/{dataset['id']}/schema").json()
    schema["columns"][[c["name"] for c in schema["columns"]].index("ward")]["drop"] = True
    assert client.put(f"/datasets/{dataset['id']}/schema", json=schema).status_code == 200

    submitted = client.post(
        "/jobs",
        json={
            "dataset_id": dataset["id"],
            "backends": ["marginals", "sdv.gaussian_copula"],
            "rows": 400,
            "anonymeter": False,
            "evaluation_rows": 400,
            "output_format": "parquet",
        },
    )
    assert submitted.status_code == 202, submitted.text
    job = wait_for_job(client, submitted.json()["id"], 180)
    assert job["state"] == "succeeded", job
    for task in job["tasks"]:
        assert task["state"] == "succeeded" and task["started_at"] and task["finished_at"]
        assert task["progress"]["rows_written"] == 400 and task["fit_seconds"] is not None
        synthetic = client.get(f"/jobs/{job['id']}/results/{task['backend']}/synthetic")
        assert synthetic.headers["content-type"] == "application/vnd.apache.parquet"
        table = pd.read_parquet(io.BytesIO(synthetic.content))
        assert len(table) == 400 and "ward" not in table.columns  # the edited schema was used
        metrics = client.get(f"/jobs/{job['id']}/results/{task['backend']}/metrics").json()
        assert 0 < metrics["quality"]["quality"] <= 1
        assert "<html" in client.get(f"/jobs/{job['id']}/results/{task['backend']}/report").text.lower()
    comparison = client.get(f"/jobs/{job['id']}/comparison").json()
    assert [row["backend"] for row in comparison] == ["marginals", "sdv.gaussian_copula"]
    assert [j["id"] for j in client.get("/jobs").json()] == [job["id"]]
    cancel = client.post(f"/jobs/{job['id']}/cancel")
    assert cancel.status_code == 409 and cancel.headers["content-type"] == PROBLEM


def test_upload_names_never_reach_the_filesystem(client, settings, demo):
    response = client.post(
        "/datasets", files={"file": ("../../../../tmp/evil.csv", csv_bytes(demo.head(50)), "text/csv")}
    )
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert dataset["name"] == "evil.csv"
    stored = list((settings.data_dir / "datasets").rglob("*"))
    assert {p.name for p in stored if p.is_file()} == {"table.csv"}
    assert all(p.resolve().is_relative_to(settings.data_dir) for p in stored)


def test_uploads_over_the_size_limit_are_refused_and_leave_nothing(client, settings, demo):
    big = csv_bytes(pd.concat([demo] * 6))  # > 1 MiB, under the early Content-Length refusal: counted while streamed
    assert len(big) > settings.max_upload_bytes
    response = client.post("/datasets", files={"file": ("big.csv", big, "text/csv")})
    assert response.status_code == 413 and response.headers["content-type"] == PROBLEM
    assert "FAIRSYNTH_MAX_UPLOAD_MB" in response.json()["detail"]
    assert list((settings.data_dir / "datasets").iterdir()) == []


def test_uploads_without_a_length_are_cut_off_at_the_limit(client, settings):
    head = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="t.csv"\r\nContent-Type: text/csv\r\n\r\na,b\n'
    )
    chunks = [head] + [b"1,2\n" * 16384] * 64  # 4 MiB offered in 64 KiB pieces, no Content-Length
    pulled, sent = [], []

    async def receive():
        pulled.append(1)
        return {"type": "http.request", "body": chunks[len(pulled) - 1], "more_body": len(pulled) < len(chunks)}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/datasets",
        "raw_path": b"/datasets",
        "query_string": b"",
        "headers": [(b"content-type", b"multipart/form-data; boundary=b")],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1234),
        "root_path": "",
        "app": client.app,
    }
    asyncio.run(client.app(scope, receive, send))
    assert sent[0]["status"] == 413 and (b"content-type", PROBLEM.encode()) in sent[0]["headers"]
    assert b"FAIRSYNTH_MAX_UPLOAD_MB" in sent[1]["body"]
    assert len(pulled) < 20  # stopped reading just past 1 MiB, not after the whole body
    assert list((settings.data_dir / "datasets").iterdir()) == []


def test_bad_uploads_get_one_clear_problem(client):
    wrong_type = client.post("/datasets", files={"file": ("x.png", b"\x89PNG....", "image/png")})
    assert wrong_type.status_code == 415 and "CSV or Parquet" in wrong_type.json()["detail"]
    one_column = client.post("/datasets", files={"file": ("x.csv", b"a\n1\n2\n", "text/csv")})
    assert one_column.status_code == 422 and "only one column" in one_column.json()["detail"]
    fake_parquet = client.post(
        "/datasets", files={"file": ("x.parquet", b"a,b\n1,2\n", "application/vnd.apache.parquet")}
    )
    assert fake_parquet.status_code == 415


def test_job_errors_are_problem_json(client):
    unknown = client.post("/jobs", json={"backends": ["no-such-backend"]})
    assert unknown.status_code == 422 and unknown.headers["content-type"] == PROBLEM
    assert "no-such-backend" in unknown.json()["detail"]
    paths = client.post("/jobs", json={"backends": ["marginals"], "input_path": "/etc/passwd"})
    assert paths.status_code == 422 and "input_path" in paths.json()["detail"]
    missing = client.get("/jobs/0123")
    assert missing.status_code == 404 and missing.json()["title"] == "Not Found"
    assert client.get("/datasets/nope/schema").status_code == 404


def test_backends_list_availability(client):
    names = {b["name"]: b for b in client.get("/backends").json()}
    assert names["marginals"]["available"] and names["marginals"]["capabilities"]["family"] == "basic"
    assert names["sdv.gaussian_copula"]["capabilities"]["family"] == "sdv"


def test_backends_list_each_ones_parameter_schema(client):
    names = {b["name"]: b for b in client.get("/backends").json()}
    epochs = names["tvae"]["parameters"]["properties"]["epochs"]
    assert (epochs["type"], epochs["minimum"], epochs["default"]) == ("integer", 1, 300) and epochs["description"]
    assert names["tvae"]["parameters"]["additionalProperties"] is False
    copula = names["sdv.gaussian_copula"]["parameters"]["properties"]["default_distribution"]
    assert "beta" in copula["enum"]


@pytest.mark.parametrize(
    "params, named",
    [
        ({"epochs": 0}, "Backend 'tvae': epochs must be >= 1 (got 0)."),
        ({"bogus": 1}, "Backend 'tvae': unknown parameter 'bogus' (it takes: epochs, "),
        ({"epochs": "many", "validation_share": 0.7}, "validation_share must be < 0.5 (got 0.7)."),
    ],
)
def test_bad_backend_parameters_are_refused_at_submission_and_nothing_is_stored(client, settings, params, named):
    answer = client.post("/jobs", json={"backends": ["marginals", {"name": "tvae", "params": params}]})
    assert answer.status_code == 422 and answer.headers["content-type"] == PROBLEM
    assert named in answer.json()["detail"]
    assert client.get("/jobs").json() == [] and not any((settings.data_dir / "runs").iterdir())


def test_openapi_documents_the_routes(client):
    spec = client.get("/openapi.json").json()
    assert {
        "/datasets",
        "/jobs",
        "/jobs/{job_id}/cancel",
        "/jobs/{job_id}/results/{backend}/{artefact}",
        "/backends",
    } <= set(spec["paths"])
    assert "JobSubmission" in spec["components"]["schemas"]


def test_a_token_is_required_on_every_request_once_set(settings):
    with TestClient(create_app(settings.with_(api_token="s3cret-token"))) as client:
        for path in ("/jobs", "/datasets", "/backends"):
            refused = client.get(path)
            assert refused.status_code == 401 and refused.headers["content-type"] == PROBLEM
            assert refused.headers["www-authenticate"] == "Bearer"
        assert client.get("/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/jobs", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
        assert client.get("/health").json() == {"status": "ok"}  # container probes carry no token


def test_docs_open_without_a_token_and_offer_the_bearer_scheme(settings):
    with TestClient(create_app(settings.with_(api_token="s3cret-token"))) as client:
        assert client.get("/docs").status_code == 200  # the page holds no data: a browser can open it
        spec = client.get("/openapi.json")
        assert spec.status_code == 200
        schemes = spec.json()["components"]["securitySchemes"]
        assert [scheme["scheme"] for scheme in schemes.values()] == ["bearer"]  # the Authorize button
        assert all(op.get("security") for op in spec.json()["paths"]["/jobs"].values())
        assert client.get("/jobs").status_code == 401  # the data still needs the token


def test_serving_beyond_loopback_needs_a_token(settings):
    check_exposure("127.0.0.1", settings)
    check_exposure("::1", settings)
    with pytest.raises(SettingsError, match="FAIRSYNTH_API_TOKEN"):
        check_exposure("0.0.0.0", settings)
    check_exposure("0.0.0.0", settings.with_(api_token="t"))


def test_bad_settings_name_the_variable():
    with pytest.raises(SettingsError, match="FAIRSYNTH_MAX_UPLOAD_MB"):
        Settings.from_env({"FAIRSYNTH_MAX_UPLOAD_MB": "lots"})
    with pytest.raises(SettingsError, match="FAIRSYNTH_BROKER_URL"):
        Settings.from_env({"FAIRSYNTH_EXECUTOR": "celery"})


def test_rows_over_the_servers_cap_are_refused_with_one_sentence(settings):
    with TestClient(create_app(settings.with_(max_rows=1000))) as client:
        answer = client.post("/jobs", json={"backends": ["marginals"], "rows": 10**10})
        assert answer.status_code == 422 and answer.headers["content-type"] == PROBLEM
        assert answer.json()["errors"] == [
            "rows is 10,000,000,000 but this server makes at most 1,000 rows per backend (FAIRSYNTH_MAX_ROWS); "
            "ask for fewer."
        ]
        assert client.get("/jobs").json() == [] and not any((settings.data_dir / "runs").iterdir())


def test_an_idempotency_key_makes_a_retry_answer_with_the_same_job(client, settings):
    body = {"backends": ["marginals"], "rows": 200, "anonymeter": False, "evaluation_rows": 200}
    first = client.post("/jobs", json=body, headers={"Idempotency-Key": "k-1"})
    again = client.post("/jobs", json=dict(reversed(body.items())), headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 202 and again.json()["id"] == first.json()["id"]
    assert len(client.get("/jobs").json()) == 1 and len(list((settings.data_dir / "runs").iterdir())) == 1
    other = client.post("/jobs", json={**body, "rows": 300}, headers={"Idempotency-Key": "k-1"})
    assert other.status_code == 409 and other.headers["content-type"] == PROBLEM
    assert "different job" in other.json()["detail"] and len(client.get("/jobs").json()) == 1
    client.post(f"/jobs/{first.json()['id']}/cancel")


def ended_job(client, error: str, run_dir: str = "runs/ended", **request) -> str:
    """A job of one task that a lost worker failed (no outcome), stored directly; its id."""
    store = client.app.state.store
    job = store.create_job(
        request_json=json.dumps({"backends": [{"name": "marginals"}], **request}),
        run_dir=run_dir,
        executor="celery",  # no dispatcher here picks it up
        backends=[("marginals", "basic")],
    )
    store.claim(job.tasks[0].id, worker="w", pid=None)
    store.fail_task(job.tasks[0].id, error)
    assert store.claim_finish(job.id)
    store.complete_job(job.id)
    return job.id


def test_the_comparison_of_a_job_that_ended_without_results_says_why(client):
    job_id = ended_job(client, "the worker process running it was lost (SIGKILL)")
    answer = client.get(f"/jobs/{job_id}/comparison")
    assert answer.status_code == 404 and answer.headers["content-type"] == PROBLEM
    assert answer.json()["detail"] == (
        f"Job {job_id} failed with no backend result, so it has no comparison: "
        "marginals: the worker process running it was lost (SIGKILL)."
    )


def test_responses_name_no_server_path(client, settings):
    run_dir = settings.data_dir / "runs" / "paths"
    job_id = ended_job(
        client,
        "boom",
        run_dir="runs/paths",
        input_path=str(settings.data_dir / "datasets/x/table.csv"),
        output_dir=str(run_dir),
    )
    run_dir.mkdir(parents=True)
    outcome = {"backend": "marginals", "ok": True, "directory": str(run_dir / "marginals"), "crate": None, "rows": 5}
    (run_dir / "comparison.json").write_text(json.dumps([outcome]))
    job = client.get(f"/jobs/{job_id}")
    comparison = client.get(f"/jobs/{job_id}/comparison")
    assert str(settings.data_dir) not in job.text + comparison.text
    assert "input_path" not in job.json()["request"] and "output_dir" not in job.json()["request"]
    (row,) = comparison.json()
    assert "directory" not in row and row["artefacts"]["report"] == f"/jobs/{job_id}/results/marginals/report"
    assert "crate" not in row["artefacts"]


def test_a_job_can_ask_for_the_second_evaluator_and_the_spec_documents_it(client, monkeypatch, tmp_path):
    monkeypatch.setenv("FAIRSYNTH_MOSTLY_VENV", str(tmp_path / "absent"))  # the run records why it was skipped
    field = client.get("/openapi.json").json()["components"]["schemas"]["JobSubmission"]["properties"]
    assert field["second_evaluator"]["default"] is False and "mostlyai-qa" in field["second_evaluator"]["description"]
    body = {"backends": ["marginals"], "rows": 200, "anonymeter": False, "evaluation_rows": 200}
    submitted = client.post("/jobs", json=body | {"second_evaluator": True})
    assert submitted.status_code == 202, submitted.text
    assert submitted.json()["request"]["second_evaluator"] is True
    assert client.post("/jobs", json=body).json()["request"]["second_evaluator"] is False
    for job in client.get("/jobs").json():
        client.post(f"/jobs/{job['id']}/cancel")
