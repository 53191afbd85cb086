"""A broker outage during POST /jobs: a real Redis stopped and started again under the celery executor."""

from __future__ import annotations

import json
import shutil

import pytest
import redis
from fastapi.testclient import TestClient

from fairsynth.services.entry.api import create_app
from fairsynth.services.jobs.executors import create_job
from fairsynth.services.run.config import BackendSpec, GenerationRequest
from fairsynth.services.settings import Settings

from helpers import free_port, start_redis, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BODY = {"backends": ["marginals"], "rows": 200, "anonymeter": False, "evaluation_rows": 200}


@pytest.fixture
def broker(tmp_path):
    """A port for Redis and functions to start and stop a real server on it."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("Redis is not installed; run scripts/system-deps.sh (apt-get install redis-server).")
    port, running = free_port(), []

    def start() -> None:
        running.append(start_redis(server, port, tmp_path))

    def stop() -> None:
        process = running.pop()
        process.terminate()
        process.wait(timeout=10)

    yield f"redis://127.0.0.1:{port}/0", start, stop
    while running:
        stop()


def queued_messages(url: str, queue: str = "basic") -> list[str]:
    """The task ids waiting on a Celery queue in Redis."""
    return [json.loads(m)["headers"]["id"] for m in redis.Redis.from_url(url).lrange(queue, 0, -1)]


def test_a_broker_outage_answers_503_fails_the_job_and_a_retry_with_the_key_submits_once(broker, tmp_path):
    url, start, stop = broker
    settings = Settings.from_env({"FAIRSYNTH_DATA_DIR": str(tmp_path / "data"), "FAIRSYNTH_BROKER_URL": url})
    with TestClient(create_app(settings)) as client:  # the API starts while the broker is down
        down = client.post("/jobs", json=BODY, headers={"Idempotency-Key": "retry-me"})
        assert down.status_code == 503 and down.headers["content-type"] == "application/problem+json"
        assert "broker does not answer" in down.json()["detail"] and "submit it again" in down.json()["detail"]
        (failed,) = client.get("/jobs").json()
        assert failed["state"] == "failed" and "broker could not be reached" in failed["tasks"][0]["error"]

        start()
        again = client.post("/jobs", json=BODY, headers={"Idempotency-Key": "retry-me"})
        assert again.status_code == 202, again.text
        twice = client.post("/jobs", json=BODY, headers={"Idempotency-Key": "retry-me"})
        assert twice.json()["id"] == again.json()["id"] and len(client.get("/jobs").json()) == 2
        assert queued_messages(url) == [again.json()["tasks"][0]["id"]]  # sent once, not once per retry


def test_tasks_left_queued_while_the_broker_was_down_are_sent_when_it_is_back(broker, tmp_path):
    url, start, _ = broker
    settings = Settings.from_env(
        {"FAIRSYNTH_DATA_DIR": str(tmp_path / "data"), "FAIRSYNTH_BROKER_URL": url, "FAIRSYNTH_STALE_SECONDS": "4"}
    )
    with TestClient(create_app(settings)) as client:
        request = GenerationRequest(backends=[BackendSpec(name="marginals")], rows=200, anonymeter=False)
        left = create_job(client.app.state.store, settings, request, executor="celery")  # stored, never sent
        start()
        wait_for(lambda: queued_messages(url) == [left.tasks[0].id], 20, message="the queued task was not re-sent")
