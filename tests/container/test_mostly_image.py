"""The image built with WITH_MOSTLY=1: it carries the MOSTLY AI venv where the docker runner looks for it, lists the
mostly.* backends as available, and runs their worker and the second evaluator in containers through the docker SDK.

The engine is podman behind its Docker-compatible socket, as in test_docker_runner.py.
"""

from __future__ import annotations

import json
import threading

import pandas as pd
import pytest

import fairsynth.backends.mostly as mostly
from fairsynth.metadata.schema import TableSchema
from fairsynth.services.run.evaluation.results import SecondEvaluator
from fairsynth.services.run.evaluation.second import evaluate_second

from container.test_docker_runner import watch_containers, worker_containers

pytestmark = [pytest.mark.slow, pytest.mark.integration]
QUICK = {"max_epochs": 1, "max_training_time": 0.2}  # minutes: a smoke fit, not a good model


@pytest.fixture
def docker_mostly(monkeypatch, docker_socket, docker_client, mostly_image):
    """The mostly backends and the second evaluator configured to run their worker in the with-mostly image."""
    monkeypatch.setenv("FAIRSYNTH_MOSTLY_RUNNER", "docker")
    monkeypatch.setenv("FAIRSYNTH_MOSTLY_IMAGE", mostly_image)
    monkeypatch.setenv("DOCKER_HOST", docker_socket)
    return docker_client


@pytest.fixture
def small_support2(support2) -> pd.DataFrame:
    """400 SUPPORT2 rows."""
    return support2.sample(n=400, random_state=3).reset_index(drop=True)


def run_python(client, image: str, python: str, probe: str) -> str:
    """What a Python snippet prints in a fresh container of the image (no network)."""
    printed = client.containers.run(image, entrypoint=[python, "-c", probe], remove=True, network_mode="none")
    return printed.decode().strip()


def test_the_image_lists_the_mostly_backends_as_available(docker_client, mostly_image):
    probe = (
        "import json; from fairsynth.backends import registry; "
        "print(json.dumps({i.name: [i.available, i.reason] for i in registry.list_backends() "
        "if i.name.startswith('mostly.')}))"
    )
    listed = json.loads(run_python(docker_client, mostly_image, "python3", probe))
    assert set(listed) == {"mostly.argn", "mostly.argn.dp"} and all(ok for ok, _ in listed.values()), listed
    # the docker runner's interpreter is the venv's; its torch is the CPU build and triton is left out (1 GB)
    venv = run_python(
        docker_client,
        mostly_image,
        mostly.IMAGE_PYTHON,
        "import importlib.util as u, torch; print(torch.version.cuda, u.find_spec('triton') is None)",
    )
    assert venv == "None True"


def test_mostly_argn_fits_and_samples_in_a_container(docker_mostly, mostly_image, small_support2):
    schema = TableSchema.infer(small_support2)
    seen: set[str] = set()
    stop = threading.Event()
    watcher = watch_containers(docker_mostly, mostly_image, stop, seen)
    try:
        generator = mostly.ARGNGenerator(**QUICK)
        fitted = generator.fit(small_support2, schema, seed=1)
        synthetic = pd.concat(generator.sample(300, seed=2), ignore_index=True)
    finally:
        stop.set()
        watcher.join()
    assert fitted.details["packages"]["mostlyai-engine"] == "2.7.3"
    assert list(synthetic.columns) == list(small_support2.columns) and len(synthetic) == 300
    assert seen, "no worker container was seen: the job did not run in the engine"
    assert not set(worker_containers(docker_mostly, mostly_image)) & seen  # each one was removed


def test_the_second_evaluator_scores_in_a_container(docker_mostly, small_support2):
    schema = TableSchema.infer(small_support2)
    train, holdout = small_support2.iloc[:300], small_support2.iloc[300:]
    scored = evaluate_second(train, holdout, small_support2.sample(n=300, random_state=4), schema)
    assert isinstance(scored, SecondEvaluator), scored
    assert 0.5 < scored.accuracy <= 1 and scored.packages["mostlyai-qa"] == "1.10.11"
