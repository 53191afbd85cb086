"""The Dockerfile, docker-compose.yml and the isolated backends' docker runners agree, read statically (no build).

tests/container builds and runs the image; these checks catch a renamed path or a missing worker in seconds.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

import fairsynth.backends.mostly as mostly
import fairsynth.backends.ydata as ydata
from fairsynth.services.jobs.executors import backend_families

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())  # continued lines as one
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
# build argument -> the isolated backend module it puts in the image (the module's IMAGE_PYTHON, its variable prefix)
ISOLATED = {"WITH_YDATA": (ydata, "YDATA"), "WITH_MOSTLY": (mostly, "MOSTLY")}


def queues_served() -> dict[str, str]:
    """Each queue a compose worker serves -> the service serving it."""
    served = {}
    for name, service in COMPOSE["services"].items():
        command = service.get("command") or []
        if command[:1] == ["worker"]:
            for queue in command[command.index("--queues") + 1].split(","):
                served[queue] = name
    return served


@pytest.mark.parametrize("argument", list(ISOLATED))
def test_the_image_builds_each_isolated_venv_where_its_docker_runner_looks(argument):
    module, prefix = ISOLATED[argument]
    venv = str(Path(module.IMAGE_PYTHON).parents[1])  # /opt/fairsynth-X/bin/python -> /opt/fairsynth-X
    assert re.search(rf"^ARG {argument}=[01]$", DOCKERFILE, re.M), f"the Dockerfile declares no ARG {argument}"
    build = next(line for line in DOCKERFILE.splitlines() if line.startswith("RUN") and f"${{{argument}}}" in line)
    assert f"FAIRSYNTH_{prefix}_VENV={venv} " in build, build  # the install step builds it there
    assert f"else mkdir -p {venv};" in build  # left out: an empty folder, so the COPY below still works
    assert f"COPY --from=build {venv} {venv}" in DOCKERFILE
    assert re.search(rf"\bFAIRSYNTH_{prefix}_VENV={venv}\b", DOCKERFILE.split("FROM ${BASE_IMAGE}\n")[-1])
    script = re.search(r"bash (scripts/install-\w+\.sh)", build).group(1)
    assert (ROOT / script).is_file() and f"COPY {script} scripts/" in DOCKERFILE


@pytest.mark.parametrize("argument", list(ISOLATED))
def test_compose_passes_each_build_argument_through(argument):
    default = re.search(rf"^ARG {argument}=([01])$", DOCKERFILE, re.M).group(1)
    for name, service in COMPOSE["services"].items():
        if "build" in service:
            assert service["build"]["args"][argument] == f"${{{argument}:-{default}}}", name


def test_every_backend_family_has_a_compose_worker():
    served = queues_served()
    assert set(backend_families()) <= set(served), sorted(set(backend_families()) - set(served))
    assert served["mostly"] == "worker-mostly" and served["ydata"] == "worker-ydata"
    mostly_worker, ydata_worker = COMPOSE["services"]["worker-mostly"], COMPOSE["services"]["worker-ydata"]
    assert {k: v for k, v in mostly_worker.items() if k != "command"} == {
        k: v for k, v in ydata_worker.items() if k != "command"
    }  # the same profile, environment, hardening and start order
