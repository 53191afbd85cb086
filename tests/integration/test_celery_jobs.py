"""Distributed execution: the API on PostgreSQL sends tasks through a real Redis to a real Celery worker."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fairsynth.services.entry.api import create_app
from fairsynth.services.settings import Settings

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
    log = open(root / "worker.log", "wb")
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
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield settings, mode, pids, root / "worker.log"
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        log.close()


def wait_job(client: TestClient, job_id: str, log: Path, timeout: float = 240) -> dict:
    """Poll until the job ends; the worker's log is shown when it does not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not end; worker log:\n{log.read_text()[-3000:]}")


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
            deadline = time.monotonic() + 120
            while not (pids.exists() and pids.read_text()):
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
            task_pid, child_pid = map(int, pids.read_text().split())
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
            deadline = time.monotonic() + 120
            while not (pids.exists() and pids.read_text()):
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
            task_pid, child_pid = map(int, pids.read_text().split())
            cancelled = client.post(f"/jobs/{job_id}/cancel").json()
            assert cancelled["state"] == "cancelled" and cancelled["tasks"][0]["state"] == "cancelled"
            deadline = time.monotonic() + 20
            while (
                Path(f"/proc/{task_pid}").exists() and "Z" not in Path(f"/proc/{task_pid}/stat").read_text().split()[2]
            ):
                assert time.monotonic() < deadline, "the revoked task's process still runs"
                time.sleep(0.2)
        finally:
            mode.unlink(missing_ok=True)
            if child_pid:
                os.kill(child_pid, signal.SIGKILL)  # Celery kills the pool process, not processes it started


def test_an_api_restart_mid_job_leaves_the_job_right(distributed):
    settings, _, _, log = distributed
    body = {"backends": ["marginals", "sdv.gaussian_copula"], "rows": 200, "anonymeter": False, "evaluation_rows": 200}
    with TestClient(create_app(settings)) as first:
        job_id = first.post("/jobs", json=body).json()["id"]
    with TestClient(create_app(settings)) as second:  # the API went away and came back; the workers went on
        job = wait_job(second, job_id, log)
    assert job["state"] == "succeeded" and all(t["attempts"] == 1 for t in job["tasks"])
