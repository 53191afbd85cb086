"""docker-compose.yml for real: the default one-container app, and the `distributed` profile (postgres, redis,
API, UI and the workers from the images) running a job on its workers.

podman-compose drives the compose file (see the `compose_stack` fixture for the one thing it cannot do
with podman 4.3: wait on healthchecks, so the stack is brought up stage by stage in the same order).
PostgreSQL and Redis come from local stand-in images (tests/container/standins/: no registry here).
"""

from __future__ import annotations

import io
import json
import subprocess
import time
import uuid

import httpx
import pandas as pd
import pytest

from container.conftest import ROOT, assert_hardened, compose_command, compose_down, compose_env, wait_healthy
from helpers import free_port, wait_for_job, wait_for_url

pytestmark = [pytest.mark.slow, pytest.mark.integration]
WORKERS = {"marginals": "worker-torch-sdv", "ydata.fast": "worker-ydata"}  # backend -> the service that serves it


def test_distributed_profile_runs_a_two_backend_job_on_its_workers(compose_stack, docker_client):
    stack, auth = compose_stack, {"Authorization": f"Bearer {compose_stack.token}"}
    print(f"\ncompose up -> healthy (s): {json.dumps({k: round(v, 1) for k, v in stack.seconds.items()})}")
    assert httpx.get(f"{stack.api}/jobs", timeout=10).status_code == 401  # the token is required
    submitted = httpx.post(
        f"{stack.api}/jobs",
        headers=auth,
        timeout=30,
        json={"backends": list(WORKERS), "rows": 300, "seed": 2, "anonymeter": False},
    )
    assert submitted.status_code == 202, submitted.text
    assert submitted.json()["executor"] == "celery"
    started = time.monotonic()
    with httpx.Client(base_url=stack.api, headers=auth, timeout=10) as api:
        job = wait_for_job(api, submitted.json()["id"], 600, interval=2)
    print(f"two-backend job on the workers: {time.monotonic() - started:.1f} s")
    assert job["state"] == "succeeded", json.dumps(job, indent=1)[-3000:]

    # each task ran on its family's worker: the job store's record, and the worker's own log (via the SDK)
    for task in job["tasks"]:
        service = WORKERS[task["backend"]]
        worker = docker_client.containers.get(stack.container(service))
        assert (task["worker"] or "").startswith(f"{worker.attrs['Config']['Hostname']}:"), task
        logs = worker.logs().decode(errors="replace")
        assert f"run_task[{task['id']}] succeeded" in logs, logs[-2000:]
        other = next(s for s in set(WORKERS.values()) if s != service)
        assert task["id"] not in docker_client.containers.get(stack.container(other)).logs().decode(errors="replace")

    tables = {}
    for backend in WORKERS:
        download = httpx.get(f"{stack.api}/jobs/{job['id']}/results/{backend}/synthetic", headers=auth, timeout=60)
        assert download.status_code == 200, download.text
        tables[backend] = pd.read_csv(io.BytesIO(download.content))
    assert len(tables["ydata.fast"]) == 300 and list(tables["ydata.fast"].columns) == list(tables["marginals"].columns)
    assert tables["ydata.fast"].isna().any().any()  # the demo table's gaps came back through the ydata worker
    comparison = httpx.get(f"{stack.api}/jobs/{job['id']}/comparison", headers=auth, timeout=30).json()
    assert {row["backend"] for row in comparison if row["ok"]} == set(WORKERS)
    # the UI on the same store answers too
    assert httpx.get(f"{stack.ui}/_stcore/health", timeout=10).text == "ok"


def test_every_distributed_service_runs_read_only_without_capabilities(compose_stack, engine):
    for service in ("postgres", "redis", "api", "ui", "worker-torch-sdv", "worker-ydata", "worker-mostly"):
        assert_hardened(engine, compose_stack.container(service))
    # the services read the job store's password from the secret file: it is in no container's environment
    for service in ("postgres", "api", "worker-ydata"):
        environment = json.loads(engine.run("inspect", compose_stack.container(service)).stdout)[0]["Config"]["Env"]
        assert not any(compose_stack.password in variable for variable in environment), service


def test_default_compose_up_serves_the_one_container_app(engine, image, tmp_path):
    project, port = f"fstest{uuid.uuid4().hex[:8]}", free_port()
    command = compose_command(project)
    env = compose_env(engine, tmp_path, FAIRSYNTH_IMAGE=image, FAIRSYNTH_UI_PORT=str(port))
    try:
        done = subprocess.run([*command, "up", "-d"], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert done.returncode == 0, done.stderr[-3000:]
        assert wait_for_url(f"http://127.0.0.1:{port}/_stcore/health").text == "ok"
        wait_healthy(engine, f"{project}_app_1")
        running = engine.run(
            "ps", "--filter", f"label=io.podman.compose.project={project}", "--format", "{{.Names}}"
        ).stdout.split()
        assert running == [f"{project}_app_1"]  # the default profile is the app alone
        assert_hardened(engine, f"{project}_app_1")
    finally:
        compose_down(engine, command, env)
    assert not engine.run("ps", "-a", "-q", "--filter", f"label=io.podman.compose.project={project}").stdout.strip()


def test_compose_refuses_to_start_without_a_token(engine):
    env = {k: v for k, v in engine.env.items() if k != "FAIRSYNTH_API_TOKEN"}
    for profiles in ((), ("distributed",)):
        done = subprocess.run(
            [*compose_command("fstestnotoken", *profiles), "config"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        assert done.returncode != 0
        assert "FAIRSYNTH_API_TOKEN is missing a value: set a token" in done.stderr
