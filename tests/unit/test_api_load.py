"""Load: 50 concurrent submissions through the API are all accepted and all end, no task lost or run twice."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from fairsynth.services.entry.api import create_app
from fairsynth.services.settings import Settings

JOBS = 50
ENDED = ("succeeded", "cancelled", "failed")


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
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any(
            j["state"] == "succeeded" for j in client.get("/jobs?limit=500").json()
        ):
            time.sleep(0.5)
        for job_id in ids:  # end the rest quickly: a cancel must not lose or duplicate anything either
            client.post(f"/jobs/{job_id}/cancel")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            jobs = client.get("/jobs?limit=500").json()
            if all(j["state"] in ENDED for j in jobs):
                break
            time.sleep(0.5)
    assert {j["id"] for j in jobs} == ids
    states = [j["state"] for j in jobs]
    assert set(states) <= {"succeeded", "cancelled"} and "succeeded" in states, states
    tasks = [t for j in jobs for t in j["tasks"]]
    assert len(tasks) == JOBS and all(t["attempts"] <= 1 for t in tasks)
    assert all("synthetic" in t["artefacts"] for t in tasks if t["state"] == "succeeded")
