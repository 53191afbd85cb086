"""The image gives the whole product: UI and API run as non-root, write only to /data, pass their healthchecks."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from metadata.validate import validate_crate

from .conftest import ROOT, free_port, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.integration]
TOKEN = "container-test-token"
CRATE = {"title": "Synthetic demo episodes", "description": "Synthetic hospital episodes made in the container",
         "authors": [{"name": "Ada Lovelace", "orcid": "0000-0002-1825-0097",
                      "affiliation": {"name": "University College London", "ror": "02jx3x895"}}]}


def test_ui_runs_as_non_root_on_a_read_only_root_with_a_passing_healthcheck(engine, container):
    port = free_port()
    cid = container("-p", f"127.0.0.1:{port}:8501")
    assert wait_for(f"http://127.0.0.1:{port}/_stcore/health").text == "ok"
    assert engine.run("healthcheck", "run", cid, check=False).returncode == 0
    assert engine.run("exec", cid, "id", "-u").stdout.strip() == "10001"
    inspected = json.loads(engine.run("inspect", cid).stdout)[0]
    assert inspected["Config"]["User"] == "fairsynth"
    image_config = json.loads(engine.run("image", "inspect", inspected["Image"]).stdout)[0]["Config"]
    assert {"8501/tcp", "8000/tcp"} <= set(image_config["ExposedPorts"])
    listed = engine.run("exec", cid, "fairsynth", "backends").stdout
    assert "marginals" in listed and "sdv.gaussian_copula" in listed


def test_api_in_the_container_generates_a_crate_that_validates(engine, container, tmp_path):
    port = free_port()
    cid = container("-p", f"127.0.0.1:{port}:8000", "-e", f"FAIRSYNTH_API_TOKEN={TOKEN}",
                    "-e", "FAIRSYNTH_HEALTH_PORT=8000", command=("serve", "--host", "0.0.0.0", "--port", "8000"))
    base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {TOKEN}"}
    wait_for(f"{base}/health")
    assert httpx.get(f"{base}/jobs", timeout=10).status_code == 401  # beyond loopback a token is required
    submitted = httpx.post(f"{base}/jobs", headers=auth, timeout=30, json={
        "backends": ["marginals", "sdv.gaussian_copula"], "rows": 500, "seed": 4, "anonymeter": False,
        "package_crates": True, "crate": CRATE})
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()
    deadline = time.monotonic() + 600
    while job["state"] not in ("succeeded", "failed", "cancelled") and time.monotonic() < deadline:
        time.sleep(2)
        job = httpx.get(f"{base}/jobs/{job['id']}", headers=auth, timeout=10).json()
    assert job["state"] == "succeeded", json.dumps(job, indent=1)[-3000:]
    assert {t["backend"] for t in job["tasks"]} == {"marginals", "sdv.gaussian_copula"}
    assert engine.run("healthcheck", "run", cid, check=False).returncode == 0
    download = httpx.get(f"{base}/jobs/{job['id']}/results/sdv.gaussian_copula/crate", headers=auth, timeout=60)
    assert download.status_code == 200
    crate = tmp_path / "crate.zip"
    crate.write_bytes(download.content)
    report = validate_crate(crate)
    assert report.ok and not report.skipped, report.summary()
    # everything the run wrote is on the /data volume: the root filesystem is read-only
    assert engine.run("exec", cid, "sh", "-c", "ls /data").stdout.strip()


def test_api_beyond_loopback_without_a_token_refuses_to_start(engine, container):
    cid = container(command=("serve", "--host", "0.0.0.0", "--port", "8000"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = json.loads(engine.run("inspect", cid).stdout)[0]["State"]
        if not state["Running"]:
            break
        time.sleep(1)
    assert not state["Running"] and state["ExitCode"] != 0
    assert "FAIRSYNTH_API_TOKEN" in engine.run("logs", cid).stderr + engine.run("logs", cid).stdout


def test_compose_file_is_valid_and_names_the_distributed_pieces():
    checked = subprocess.run([str(Path(sys.executable).with_name("check-jsonschema")), "--builtin-schema",
                              "vendor.compose-spec", str(ROOT / "docker-compose.yml")],
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rendered = subprocess.run([str(Path(sys.executable).with_name("podman-compose")), "-f",
                               str(ROOT / "docker-compose.yml"), "--profile", "distributed", "config"],
                              capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert rendered.returncode == 0, rendered.stderr
    for piece in ("postgres", "redis", "api", "ui", "worker-torch-sdv", "worker-ydata", "FAIRSYNTH_BROKER_URL"):
        assert piece in rendered.stdout
