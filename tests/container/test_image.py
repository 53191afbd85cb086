"""The image gives the whole product: UI and API run as non-root, write only to /data, pass their healthchecks."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest
import yaml

from fairsynth.metadata.validate import validate_crate
from fairsynth.services.settings import Settings

from container.conftest import ROOT
from helpers import free_port, wait_for, wait_for_job, wait_for_url

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


def test_the_cpu_image_has_a_cpu_torch_and_says_what_it_is(docker_client, image):
    probe = (
        "import importlib.metadata as m, torch; "
        "print(torch.version.cuda, sorted(d.name for d in m.distributions() if d.name[:6] in ('nvidia', 'triton')))"
    )
    printed = docker_client.containers.run(image, entrypoint=["python3", "-c", probe], remove=True, network_mode="none")
    assert printed.decode().strip() == "None []"  # no CUDA build, no nvidia-* or triton wheels
    labels = docker_client.images.get(image).labels
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert labels["org.opencontainers.image.version"] == project["version"]
    assert labels["org.opencontainers.image.licenses"] == project["license"]["text"]
    assert "org.opencontainers.image.source" in labels


def test_the_build_fails_in_one_sentence_when_the_torch_index_is_unreachable(engine, base_image):
    unreachable = "http://127.0.0.1:9/simple"  # nothing listens on the discard port
    built = engine.run(
        "build",
        "--force-rm",
        "--target",
        "build",
        "--build-arg",
        f"BASE_IMAGE={base_image}",
        "--build-arg",
        f"TORCH_INDEX_URL={unreachable}",
        "-f",
        str(ROOT / "Dockerfile"),
        str(ROOT),
        check=False,
        timeout=600,
    )
    assert built.returncode != 0
    assert (
        f"Could not install torch==2.13.0 from {unreachable}: make that index reachable" in built.stderr + built.stdout
    )


@pytest.mark.parametrize("health_port", [None, "8000"], ids=["command-only", "with-FAIRSYNTH_HEALTH_PORT"])
def test_the_api_is_healthy_and_its_docs_open_without_a_token(engine, container, health_port):
    port = free_port()
    environment = {"FAIRSYNTH_API_TOKEN": TOKEN} | ({"FAIRSYNTH_HEALTH_PORT": health_port} if health_port else {})
    running = container(
        ports={"8000/tcp": ("127.0.0.1", port)},
        environment=environment,
        command=("serve", "--host", "0.0.0.0", "--port", "8000"),
    )
    base = f"http://127.0.0.1:{port}"
    wait_for_url(f"{base}/health")
    assert engine.run("healthcheck", "run", running.id, check=False).returncode == 0
    docs = httpx.get(f"{base}/docs", timeout=10)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = httpx.get(f"{base}/openapi.json", timeout=10)
    assert spec.status_code == 200 and "securitySchemes" in spec.json()["components"]
    assert httpx.get(f"{base}/jobs", timeout=10).status_code == 401  # the data still needs the token


def test_a_root_owned_bind_mount_is_one_sentence_and_user_runs_as_the_folders_owner(docker_client, image, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir(mode=0o755)  # owned by root, as `mkdir data` under sudo leaves it
    refused = docker_client.containers.run(
        image, ["backends"], detach=True, read_only=True, volumes={str(folder): {"bind": "/data", "mode": "rw"}}
    )
    try:
        assert refused.wait(timeout=120)["StatusCode"] != 0
        said = refused.logs().decode(errors="replace").strip()
    finally:
        refused.remove(force=True)
    assert said.count("\n") == 0 and "Traceback" not in said, said
    assert "/data is not writable by the container's user (uid 10001)" in said
    assert "sudo chown -R 10001" in said and "--user $(id -u)" in said

    os.chown(folder, 12345, 12345)  # the host user's folder, the container run as that user
    owner = docker_client.containers.run(
        image,
        ["serve", "--host", "127.0.0.1", "--port", "8000"],
        detach=True,
        read_only=True,
        tmpfs={"/tmp": ""},
        user="12345:12345",
        volumes={str(folder): {"bind": "/data", "mode": "rw"}},
    )
    try:
        wait_for(lambda: (folder / "fairsynth.db").exists() and (folder / "runs").is_dir(), 120, message="no job store")
    finally:
        owner.remove(force=True)
    for written in (folder / "runs", folder / "datasets", folder / "fairsynth.db"):
        info = written.stat()
        assert (info.st_uid, info.st_gid) == (12345, 12345), written
    for shared in (folder / "runs", folder / "datasets"):  # umask 002 (SQLite makes its own file 0644)
        assert shared.stat().st_mode & stat.S_IWGRP, f"{shared} is not group-writable"


def test_api_in_the_container_generates_a_crate_that_validates(engine, container, tmp_path):
    port = free_port()
    running = container(
        ports={"8000/tcp": ("127.0.0.1", port)},
        environment={"FAIRSYNTH_API_TOKEN": TOKEN},
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
    variables = {
        "FAIRSYNTH_API_PORT": "18000",
        "FAIRSYNTH_DISTRIBUTED_UI_PORT": "18502",
        "FAIRSYNTH_UI_PORT": "18501",
        "FAIRSYNTH_API_TOKEN": "a-token",
        "TORCH_INDEX_URL": "https://download.pytorch.org/whl/cu128",
        "WITH_SDV": "0",
    }
    services = rendered_services(variables)
    for piece in ("postgres", "redis", "api", "ui", "worker-torch-sdv", "worker-ydata", "worker-mostly"):
        assert piece in services
    assert "FAIRSYNTH_BROKER_URL" in services["worker-ydata"]["environment"]
    # published on this machine only by default
    assert services["api"]["ports"] == ["127.0.0.1:18000:8000"]
    assert services["ui"]["ports"] == ["127.0.0.1:18502:8501"]
    assert services["app"]["ports"] == ["127.0.0.1:18501:8501"]
    opened = rendered_services({**variables, "FAIRSYNTH_BIND_ADDRESS": "0.0.0.0"})
    assert opened["app"]["ports"] == ["0.0.0.0:18501:8501"]
    for waiting in ("ui", "worker-torch-sdv", "worker-ydata", "worker-mostly"):  # the API migrates the store first
        assert services[waiting]["depends_on"]["api"]["condition"] == "service_healthy", waiting
    for name, service in services.items():  # hardened, every one
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name
        assert service["security_opt"] == ["no-new-privileges:true"], name
    # the app keeps its SQLite store on its own volume, apart from the distributed stack's
    assert services["app"]["volumes"] == ["fairsynth-app-data:/data"] and "profiles" not in services["app"]
    assert services["api"]["volumes"] == ["fairsynth-data:/data"]
    # no password anywhere: a secret file, read by PostgreSQL and the services
    assert "POSTGRES_PASSWORD" not in services["postgres"]["environment"]
    assert services["api"]["environment"]["FAIRSYNTH_DATABASE_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert services["api"]["environment"]["FAIRSYNTH_DATABASE_URL"].startswith(
        "postgresql+psycopg://fairsynth@postgres"
    )
    # the build arguments pass through
    assert {
        "TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128",
        "WITH_SDV=0",
        "WITH_YDATA=1",
        "WITH_MOSTLY=0",
    } <= set(services["app"]["build"]["args"])


def rendered_services(variables: dict[str, str]) -> dict:
    """docker-compose.yml's services as podman-compose renders them with the distributed profile."""
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
        env={**os.environ, **variables},
    )
    assert rendered.returncode == 0, rendered.stderr
    return yaml.safe_load(rendered.stdout)["services"]
