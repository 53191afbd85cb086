"""Load: 50 concurrent submissions through the API are all accepted and all end, no task lost or run twice."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from fairsynth.services.entry.api import create_app
from fairsynth.services.jobs.store import TERMINAL
from fairsynth.services.settings import Settings

from helpers import wait_for

JOBS = 50


def job_states(client: TestClient) -> list[str]:
    """The state of every job the API lists."""
    return [j["state"] for j in client.get("/jobs?limit=500").json()]


@pytest.mark.slow
def test_fifty_concurrent_submissions_all_accepted_and_all_end(tmp_path):
    settings = Settings.from_env({"FAIRSYNTH_DATA_DIR": str(tmp_path / "data"), "FAIRSYNTH_WORKERS": "2"})
    body = {"backends": ["marginals"], "rows": 100, "anonymeter": False, "evaluation_rows": 100}
    with TestClient(create_app(settings)) as client:
        with ThreadPoolExecutor(16) as pool:
            responses = list(pool.map(lambda _: client.post("/jobs", json=body), range(JOBS)))
        assert [r.status_code for r in responses] == [202] * JOBS
        ids = {r.json()["id"] for r in responses}
        assert len(ids) == JOBS
        wait_for(lambda: "succeeded" in job_states(client), 90, interval=0.5, message="no job succeeded")
        for job_id in ids:  # end the rest quickly: a cancel must not lose or duplicate anything either
            client.post(f"/jobs/{job_id}/cancel")
        wait_for(lambda: set(job_states(client)) <= set(TERMINAL), 60, interval=0.5, message="not every job ended")
        jobs = client.get("/jobs?limit=500").json()
    assert {j["id"] for j in jobs} == ids
    states = [j["state"] for j in jobs]
    assert set(states) <= {"succeeded", "cancelled"} and "succeeded" in states, states
    tasks = [t for j in jobs for t in j["tasks"]]
    assert len(tasks) == JOBS and all(t["attempts"] <= 1 for t in tasks)
    assert all("synthetic" in t["artefacts"] for t in tasks if t["state"] == "succeeded")
