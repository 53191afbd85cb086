"""The image gives the whole product: UI and API run as non-root, write only to /data, pass their healthchecks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from fairsynth.metadata.validate import validate_crate
from fairsynth.services.settings import Settings

from container.conftest import ROOT
from helpers import free_port, wait_for_job, wait_for_url

pytestmark = [pytest.mark.slow, pytest.mark.integration]
TOKEN = "container-test-token"
CRATE = {
    "title": "Synthetic demo episodes",
    "description": "Synthetic hospital episodes made in the container",
    "authors": [
        {
            "name": "Ada Lovelace",
            "orcid": "0000-0002-1825-0097",
            "affiliation": {"name": "University College London", "ror": "02jx3x895"},
        }
    ],
}


def output(running, *command: str) -> tuple[int, str]:
    """Exit code and output of a command run inside the container."""
    done = running.exec_run(list(command))
    return done.exit_code, done.output.decode(errors="replace")


def test_ui_runs_as_non_root_on_a_read_only_root_with_a_passing_healthcheck(engine, container, docker_client, image):
    port = free_port()
    running = container(ports={"8501/tcp": ("127.0.0.1", port)})
    assert wait_for_url(f"http://127.0.0.1:{port}/_stcore/health").text == "ok"
    assert engine.run("healthcheck", "run", running.id, check=False).returncode == 0  # no SDK call for this
    assert output(running, "id", "-u") == (0, "10001\n")
    running.reload()
    assert running.attrs["Config"]["User"] == "fairsynth"
    assert {"8501/tcp", "8000/tcp"} <= set(docker_client.images.get(image).attrs["Config"]["ExposedPorts"])
    code, listed = output(running, "fairsynth", "backends")
    assert code == 0 and "marginals" in listed and "sdv.gaussian_copula" in listed
    # it writes only to /data (and the /tmp tmpfs): the root filesystem refuses, even in its own home
    assert output(running, "touch", "/home/fairsynth/probe")[0] != 0
    assert output(running, "touch", "/data/probe")[0] == 0


def test_api_in_the_container_generates_a_crate_that_validates(engine, container, tmp_path):
    port = free_port()
    running = container(
        ports={"8000/tcp": ("127.0.0.1", port)},
        environment={"FAIRSYNTH_API_TOKEN": TOKEN, "FAIRSYNTH_HEALTH_PORT": "8000"},
        command=("serve", "--host", "0.0.0.0", "--port", "8000"),
    )
    base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {TOKEN}"}
    wait_for_url(f"{base}/health")
    assert httpx.get(f"{base}/jobs", timeout=10).status_code == 401  # beyond loopback a token is required
    submitted = httpx.post(
        f"{base}/jobs",
        headers=auth,
        timeout=30,
        json={
            "backends": ["marginals", "sdv.gaussian_copula"],
            "rows": 500,
            "seed": 4,
            "anonymeter": False,
            "package_crates": True,
            "crate": CRATE,
        },
    )
    assert submitted.status_code == 202, submitted.text
    with httpx.Client(base_url=base, headers=auth, timeout=10) as api:
        job = wait_for_job(api, submitted.json()["id"], 600, interval=2)
    assert job["state"] == "succeeded", json.dumps(job, indent=1)[-3000:]
    assert {t["backend"] for t in job["tasks"]} == {"marginals", "sdv.gaussian_copula"}
    assert engine.run("healthcheck", "run", running.id, check=False).returncode == 0
    download = httpx.get(f"{base}/jobs/{job['id']}/results/sdv.gaussian_copula/crate", headers=auth, timeout=60)
    assert download.status_code == 200
    crate = tmp_path / "crate.zip"
    crate.write_bytes(download.content)
    report = validate_crate(crate, limits=Settings())
    assert report.ok and not report.skipped, report.summary()
    # everything the run wrote is on the /data volume: the root filesystem is read-only
    code, listed = output(running, "ls", "/data/runs")
    assert code == 0 and job["id"] in listed


def test_api_beyond_loopback_without_a_token_refuses_to_start(container):
    running = container(command=("serve", "--host", "0.0.0.0", "--port", "8000"))
    status = running.wait(timeout=120)
    assert status["StatusCode"] != 0
    assert "FAIRSYNTH_API_TOKEN" in running.logs().decode(errors="replace")


def test_compose_file_is_valid_and_names_the_distributed_pieces():
    checked = subprocess.run(
        [
            str(Path(sys.executable).with_name("check-jsonschema")),
            "--builtin-schema",
            "vendor.compose-spec",
            str(ROOT / "docker-compose.yml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    ports = {"FAIRSYNTH_API_PORT": "18000", "FAIRSYNTH_DISTRIBUTED_UI_PORT": "18502", "FAIRSYNTH_UI_PORT": "18501"}
    rendered = subprocess.run(
        [
            str(Path(sys.executable).with_name("podman-compose")),
            "-f",
            str(ROOT / "docker-compose.yml"),
            "--profile",
            "distributed",
            "config",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, **ports},
    )
    assert rendered.returncode == 0, rendered.stderr
    for piece in ("postgres", "redis", "api", "ui", "worker-torch-sdv", "worker-ydata", "FAIRSYNTH_BROKER_URL"):
        assert piece in rendered.stdout
    services = yaml.safe_load(rendered.stdout)["services"]
    assert services["api"]["ports"] == ["18000:8000"] and services["ui"]["ports"] == ["18502:8501"]
    assert services["app"]["ports"] == ["18501:8501"]
    for waiting in ("ui", "worker-torch-sdv", "worker-ydata"):  # the API migrates the job store first
        assert services[waiting]["depends_on"]["api"]["condition"] == "service_healthy", waiting
