"""The job store on a real PostgreSQL: migrations, and one winner when many claim the same task."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from fairsynth.services.jobs.store import JobStore

from helpers import wait_for_job

pytestmark = pytest.mark.integration


def test_migrations_and_racing_claims_on_postgres(postgres_url):
    store = JobStore(postgres_url)
    again = JobStore(postgres_url)  # a second start finds the schema current
    try:
        job = store.create_job(
            request_json="{}",
            run_dir="runs/pg",
            executor="celery",
            backends=[("marginals", "basic"), ("sdv.gaussian_copula", "sdv")],
        )
        task = job.tasks[0]
        with ThreadPoolExecutor(8) as pool:
            wins = list(pool.map(lambda i: again.claim(task.id, worker=f"w{i}", pid=i), range(50)))
        assert wins.count(True) == 1
        assert store.get_task(task.id).attempts == 1 and store.get_job(job.id).state == "running"
        store.finish_task(task.id, "succeeded", artefacts={"synthetic": "marginals/data/synthetic.csv"})
        store.cancel_job(job.id)
        with ThreadPoolExecutor(8) as pool:
            finishers = list(pool.map(lambda _: again.claim_finish(job.id), range(20)))
        assert finishers.count(True) == 1
        assert store.complete_job(job.id) == "cancelled"
        assert store.get_task(task.id).artefacts == {"synthetic": "marginals/data/synthetic.csv"}
    finally:
        store.close()
        again.close()


@pytest.mark.slow
def test_two_backend_job_through_the_api_on_postgres_with_the_local_executor(postgres_url, tmp_path):
    from fastapi.testclient import TestClient

    from fairsynth.services.entry.api import create_app
    from fairsynth.services.settings import Settings

    settings = Settings.from_env({"FAIRSYNTH_DATA_DIR": str(tmp_path / "data"), "FAIRSYNTH_DATABASE_URL": postgres_url})
    with TestClient(create_app(settings)) as client:
        job_id = client.post(
            "/jobs",
            json={
                "backends": ["marginals", "sdv.gaussian_copula"],
                "rows": 300,
                "anonymeter": False,
                "evaluation_rows": 300,
            },
        ).json()["id"]
        job = wait_for_job(client, job_id, 180)
        assert job["state"] == "succeeded" and job["executor"] == "local"
        for task in job["tasks"]:
            table = client.get(f"/jobs/{job_id}/results/{task['backend']}/synthetic")
            assert table.status_code == 200 and len(table.text.splitlines()) == 301
