"""Distributed execution: the API on PostgreSQL sends tasks through a real Redis to a real Celery worker."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fairsynth.services.entry.api import create_app
from fairsynth.services.settings import Settings

from helpers import alive, wait_for, wait_for_file, wait_for_job

pytestmark = [pytest.mark.integration, pytest.mark.slow]
HOOKS = Path(__file__).resolve().parents[1] / "unit" / "task_hooks"
CRATE = {
    "authors": [{"name": "Ada Lovelace", "affiliation": {"name": "University College London", "ror": "02jx3x895"}}]
}


@pytest.fixture(scope="module")
def distributed(postgres_url, redis_url, tmp_path_factory):
    """Settings for the celery executor and one worker process serving the basic and sdv queues."""
    root = tmp_path_factory.mktemp("distributed")
    settings = Settings.from_env(
        {
            "FAIRSYNTH_DATA_DIR": str(root / "data"),
            "FAIRSYNTH_DATABASE_URL": postgres_url,
            "FAIRSYNTH_BROKER_URL": redis_url,
            "FAIRSYNTH_STALE_SECONDS": "30",
        }
    )
    mode, pids = root / "hook-mode", root / "pids"
    env = {
        **os.environ,
        **settings.environment(),
        "FAIRSYNTH_TEST_HOOK": f"file:{mode}",
        "FAIRSYNTH_TEST_PIDS": str(pids),
        "PYTHONPATH": f"{HOOKS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    log = root / "worker.log"
    with log.open("wb") as output:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from fairsynth.services.entry.cli import app; app()",
                "worker",
                "--queues",
                "basic,sdv",
                "--concurrency",
                "2",
            ],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield settings, mode, pids, log
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def wait_job(client: TestClient, job_id: str, log: Path, timeout: float = 240) -> dict:
    """Poll until the job ends; the worker's log is shown when it does not."""
    return wait_for_job(client, job_id, timeout, message=lambda: f"job {job_id} did not end; worker log:\n{tail(log)}")


def tail(log: Path) -> str:
    """The end of the worker's log."""
    return log.read_text()[-3000:]


def hung_fit_pids(pids: Path, log: Path) -> tuple[int, int]:
    """The task process's and its child's pids, once the hung fit has written them."""
    task_pid, child_pid = map(int, wait_for_file(pids, 120, message=lambda: tail(log)).split())
    return task_pid, child_pid


def test_two_backend_job_through_celery_with_crates(distributed):
    settings, _, _, log = distributed
    with TestClient(create_app(settings)) as client:
        submitted = client.post(
            "/jobs",
            json={
                "backends": ["marginals", "sdv.gaussian_copula"],
                "rows": 300,
                "anonymeter": False,
                "evaluation_rows": 300,
                "package_crates": True,
                "crate": CRATE,
            },
        )
        assert submitted.status_code == 202, submitted.text
        assert submitted.json()["executor"] == "celery"
        job = wait_job(client, submitted.json()["id"], log)
        assert job["state"] == "succeeded", job
        assert {t["family"] for t in job["tasks"]} == {"basic", "sdv"}
        for task in job["tasks"]:
            assert task["progress"]["rows_written"] == 300 and task["worker"]
            assert "crate" in task["artefacts"]
            crate = client.get(f"/jobs/{job['id']}/results/{task['backend']}/crate")
            assert crate.headers["content-type"] == "application/zip"
            assert "ro-crate-metadata.json" in zipfile.ZipFile(io.BytesIO(crate.content)).namelist()


def test_a_killed_worker_process_fails_its_task_and_the_worker_goes_on(distributed):
    settings, mode, pids, log = distributed
    mode.write_text("hang")
    with TestClient(create_app(settings)) as client:
        try:
            job_id = client.post(
                "/jobs", json={"backends": ["marginals"], "rows": 200, "anonymeter": False, "evaluation_rows": 200}
            ).json()["id"]
            task_pid, child_pid = hung_fit_pids(pids, log)
            os.kill(task_pid, signal.SIGKILL)  # the pool process dies mid-fit
            os.kill(child_pid, signal.SIGKILL)
            job = wait_job(client, job_id, log, timeout=60)
        finally:
            mode.unlink(missing_ok=True)
        assert job["state"] == "failed"
        assert "worker process running it was lost" in job["tasks"][0]["error"]
        again = client.post(
            "/jobs", json={"backends": ["marginals"], "rows": 200, "anonymeter": False, "evaluation_rows": 200}
        ).json()["id"]
        assert wait_job(client, again, log)["state"] == "succeeded"


def test_cancel_terminates_the_running_task_on_its_worker(distributed):
    settings, mode, pids, log = distributed
    pids.unlink(missing_ok=True)
    mode.write_text("hang")
    child_pid = None
    with TestClient(create_app(settings)) as client:
        try:
            job_id = client.post(
                "/jobs", json={"backends": ["marginals"], "rows": 200, "anonymeter": False, "evaluation_rows": 200}
            ).json()["id"]
            task_pid, child_pid = hung_fit_pids(pids, log)
            cancelled = client.post(f"/jobs/{job_id}/cancel").json()
            assert cancelled["state"] == "cancelled" and cancelled["tasks"][0]["state"] == "cancelled"
            wait_for(lambda: not alive(task_pid), 20, message="the revoked task's process still runs")
            # Celery kills only the pool process; the worker kills what the task started (re-parented by then)
            wait_for(lambda: not alive(child_pid), 20, message="a process the revoked task started still runs")
        finally:
            mode.unlink(missing_ok=True)
            if child_pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child_pid, signal.SIGKILL)


def test_an_api_restart_mid_job_leaves_the_job_right(distributed):
    settings, _, _, log = distributed
    body = {"backends": ["marginals", "sdv.gaussian_copula"], "rows": 200, "anonymeter": False, "evaluation_rows": 200}
    with TestClient(create_app(settings)) as first:
        job_id = first.post("/jobs", json=body).json()["id"]
    with TestClient(create_app(settings)) as second:  # the API went away and came back; the workers went on
        job = wait_job(second, job_id, log)
    assert job["state"] == "succeeded" and all(t["attempts"] == 1 for t in job["tasks"])
