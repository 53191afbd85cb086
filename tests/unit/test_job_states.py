"""Job and task states are enums declared once; the database and the API keep holding the same strings."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import StatementError

from fairsynth.services.entry.api import create_app
from fairsynth.services.jobs.store import TERMINAL, JobState, JobStore, TaskState
from fairsynth.services.settings import Settings


@pytest.fixture
def settings(tmp_path) -> Settings:
    """Settings on a fresh data directory."""
    return Settings.from_env({"FAIRSYNTH_DATA_DIR": str(tmp_path / "data")})


@pytest.fixture
def store(settings):
    """A migrated SQLite job store."""
    store = JobStore(settings.database_url)
    yield store
    store.close()


def one_task_job(store: JobStore):
    """A queued job with one queued task."""
    return store.create_job(request_json="{}", run_dir="runs/x", executor="local", backends=[("marginals", "basic")])


def test_a_task_has_every_job_state_but_finishing():
    assert {s.value for s in JobState} - {s.value for s in TaskState} == {"finishing"}
    assert {s.value for s in TaskState} <= {s.value for s in JobState}
    assert sorted(TERMINAL) == ["cancelled", "failed", "succeeded"]


def test_the_store_returns_enums_and_keeps_plain_strings_in_the_database(store):
    job = one_task_job(store)
    task = job.tasks[0]
    assert store.claim(task.id, worker="w", pid=1)
    assert store.finish_task(task.id, TaskState.SUCCEEDED)
    assert store.complete_job(job.id) is JobState.SUCCEEDED
    ended = store.get_job(job.id)
    assert ended.state is JobState.SUCCEEDED and ended.tasks[0].state is TaskState.SUCCEEDED
    assert ended.state in TERMINAL and ended.tasks[0].state in TERMINAL
    with store.engine.connect() as connection:
        stored = connection.execute(text("SELECT j.state, t.state FROM jobs j JOIN tasks t ON t.job_id = j.id")).one()
    assert tuple(stored) == ("succeeded", "succeeded") and type(stored[0]) is str


def test_a_state_that_is_not_declared_never_reaches_the_database(store):
    task = one_task_job(store).tasks[0]
    assert store.claim(task.id, worker="w", pid=1)
    with pytest.raises(StatementError, match="'finishing' is not a valid TaskState"):
        store.finish_task(task.id, "finishing")
    assert store.get_task(task.id).state is TaskState.RUNNING


def test_the_api_documents_the_states_and_filters_by_them(settings):
    with TestClient(create_app(settings)) as client:
        schemas = client.get("/openapi.json").json()["components"]["schemas"]
        assert schemas["TaskState"]["enum"] == [s.value for s in TaskState]
        assert schemas["JobState"]["enum"] == [s.value for s in JobState]
        assert client.get("/jobs", params={"state": "finishing"}).json() == []
        refused = client.get("/jobs", params={"state": "done"})
        assert refused.status_code == 422 and refused.json()["errors"][0].startswith("'query.state' is invalid")
