"""The ydata backends through DockerRunner for real: the worker runs in the image, driven by the docker SDK.

The engine is podman behind its Docker-compatible socket (the `docker_socket` fixture); the backend
finds it through DOCKER_HOST exactly as it would find a Docker daemon.
"""

from __future__ import annotations

import os
import re
import threading
import time

import pandas as pd
import pytest

import fairsynth.backends.ydata as ydata
from fairsynth.backends.base import BackendUnavailable
from fairsynth.backends.isolated import DockerRunner, Job, WorkerCancelled, WorkerError, WorkerTimeout
from fairsynth.metadata.schema import ColumnKind, TableSchema

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture
def docker_ydata(monkeypatch, docker_socket, docker_client, image):
    """The ydata backends configured to run their worker in the test image through the socket."""
    monkeypatch.setenv("FAIRSYNTH_YDATA_RUNNER", "docker")
    monkeypatch.setenv("FAIRSYNTH_YDATA_IMAGE", image)
    monkeypatch.setenv("DOCKER_HOST", docker_socket)
    return docker_client


@pytest.fixture
def dated_support2(support2) -> pd.DataFrame:
    """600 SUPPORT2 rows (about 10% missing) plus an admission date (dd/mm/YYYY, 1 in 8 missing)."""
    sample = support2.sample(n=600, random_state=5).reset_index(drop=True)
    admitted = pd.Timestamp("1989-06-01") + pd.to_timedelta((sample["num_age"] * 17).round() % 1800, unit="D")
    sample["admission_date"] = admitted.dt.strftime("%d/%m/%Y").where(sample.index % 8 != 0, None)
    return sample


def worker_containers(client, image: str) -> list[str]:
    """Ids of the worker containers from this image that exist now (running or not)."""
    found = client.containers.list(
        all=True,
        sparse=True,  # sparse: no inspect of a container being removed
        filters={"label": "fairsynth.role=isolated-worker", "ancestor": image},
    )
    return [c.id for c in found]


def watch_containers(client, image: str, stop: threading.Event, seen: set[str]) -> threading.Thread:
    """Record every worker container that appears while a job runs."""

    def poll() -> None:
        while not stop.is_set():
            seen.update(worker_containers(client, image))
            time.sleep(0.3)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    return thread


def assert_round_trip(synthetic: pd.DataFrame, source: pd.DataFrame, schema: TableSchema, rows: int) -> None:
    """Same columns, the missing shares and the date column's format and range come back."""
    assert list(synthetic.columns) == list(source.columns) and len(synthetic) == rows
    for spec in schema.columns:
        column = synthetic[spec.name]
        assert abs(column.isna().mean() - spec.missing_share) <= 0.05, spec.name
        if spec.kind in (ColumnKind.DATE, ColumnKind.DATETIME):
            parsed = pd.to_datetime(column.dropna(), format=spec.datetime_format)  # raises on another format
            assert parsed.between(pd.Timestamp(spec.minimum), pd.Timestamp(spec.maximum)).all(), spec.name
    assert synthetic["admission_date"].isna().any() and synthetic["admission_date"].notna().mean() > 0.8


def test_ydata_fast_fits_and_samples_in_a_container(docker_ydata, image, dated_support2):
    schema = TableSchema.infer(dated_support2)
    assert schema.column("admission_date").kind == ColumnKind.DATE
    available, reason = ydata.FastGenerator.availability()
    assert available, reason
    seen: set[str] = set()
    stop = threading.Event()
    watcher = watch_containers(docker_ydata, image, stop, seen)
    try:
        generator = ydata.FastGenerator(max_fit_rows=300)
        fitted = generator.fit(dated_support2, schema, seed=3)
        synthetic = pd.concat(generator.sample(500, seed=8, batch_rows=250), ignore_index=True)
    finally:
        stop.set()
        watcher.join()
    assert fitted.details["packages"]["ydata-synthetic"] == "1.4.0" and fitted.details["rows_fitted"] == 300
    assert_round_trip(synthetic, dated_support2, schema, 500)
    assert seen, "no worker container was seen: the job did not run in the engine"
    assert not set(worker_containers(docker_ydata, image)) & seen  # each one was removed


def test_a_gan_fits_two_epochs_in_a_container(docker_ydata, dated_support2):
    schema = TableSchema.infer(dated_support2)
    steps = []
    generator = ydata.CTGANGenerator(epochs=2, batch_size=100)
    fitted = generator.fit(dated_support2, schema, seed=2, progress=steps.append)
    assert fitted.epochs == 2 and len(fitted.losses) == 2
    assert [s.step for s in steps if s.stage == "fit"][-1] == 2  # progress streamed out of the container
    assert_round_trip(pd.concat(generator.sample(300, seed=1), ignore_index=True), dated_support2, schema, 300)


@pytest.mark.parametrize("stop_by", ["cancel", "timeout"])
def test_cancel_or_timeout_removes_the_container(docker_ydata, image, dated_support2, monkeypatch, stop_by):
    schema = TableSchema.infer(dated_support2)
    generator = ydata.CTGANGenerator(epochs=5000, batch_size=100)  # far longer than the test waits
    seen: set[str] = set()
    stop = threading.Event()
    watcher = watch_containers(docker_ydata, image, stop, seen)
    monkeypatch.setenv("FAIRSYNTH_YDATA_TIMEOUT", "12" if stop_by == "timeout" else "300")  # never hangs
    if stop_by == "timeout":
        expected = WorkerTimeout
    else:

        def cancel_after_first_epoch(step) -> None:
            if step.stage == "fit" and step.step >= 1:
                generator.cancel()

        expected = WorkerCancelled
    started = time.monotonic()
    try:
        with pytest.raises(expected):
            generator.fit(
                dated_support2, schema, seed=1, progress=None if stop_by == "timeout" else cancel_after_first_epoch
            )
    finally:
        stop.set()
        watcher.join()
    assert time.monotonic() - started < 120
    assert seen, "no worker container was seen"
    assert not set(worker_containers(docker_ydata, image)) & seen, "the stopped worker's container is still there"


CRASHING_WORKER = """
import json, os, sys
print("a library printing on stdout")
print(json.dumps({"type": "progress", "stage": "fit", "step": 1, "total": 2, "uid": os.getuid()}), flush=True)
print("RuntimeError: the model blew up", file=sys.stderr)
sys.exit(3)
"""


def test_a_dying_worker_reports_its_exit_status_and_stderr(docker_client, image, tmp_path):
    worker = tmp_path / "worker" / "crash.py"
    worker.parent.mkdir()
    worker.write_text(CRASHING_WORKER)
    runner = DockerRunner(image, worker, python=ydata.IMAGE_PYTHON, client=docker_client)
    seen: list[dict] = []
    volumes_before = {v.name for v in docker_client.volumes.list()}
    with pytest.raises(WorkerError, match=r"exit status 3: RuntimeError: the model blew up") as caught:
        runner.run(Job({"action": "fit"}, timeout=60), progress=seen.append)
    assert caught.value.kind == "worker_died" and "a library printing" not in caught.value.detail  # stderr only
    assert [m["step"] for m in seen] == [1] and seen[0]["uid"] == os.getuid()  # runs as the caller
    assert not worker_containers(docker_client, image)
    left = [v.name for v in docker_client.volumes.list() if v.name not in volumes_before]
    assert not [name for name in left if re.fullmatch("[0-9a-f]{64}", name)], "its anonymous /data volume was left"


def test_a_worker_that_cannot_start_or_a_missing_image_leaves_nothing(docker_client, image, tmp_path):
    broken = DockerRunner(image, tmp_path / "worker.py", python="/no/such/python", client=docker_client)
    with pytest.raises(WorkerError, match="did not start.*check that the image carries /no/such/python"):
        broken.run(Job({"action": "fit"}, timeout=60))
    assert not worker_containers(docker_client, image)
    missing = DockerRunner(
        "localhost/fairsynth-absent:none", tmp_path / "worker.py", python="/py", client=docker_client
    )
    with pytest.raises(BackendUnavailable, match="localhost/fairsynth-absent:none.*build the image"):
        missing.run(Job({"action": "fit"}, timeout=60))  # refused up front: nothing is pulled


def test_a_worker_quiet_for_longer_than_the_client_timeout_is_still_followed(docker_socket, image, tmp_path):
    import docker

    worker = tmp_path / "worker" / "quiet.py"
    worker.parent.mkdir()
    worker.write_text(
        'import json, time\ntime.sleep(5)\nprint(json.dumps({"type": "result", "slept": 5}), flush=True)\n'
    )
    impatient = docker.DockerClient(base_url=docker_socket, timeout=2)  # podman answers the log request late
    try:
        runner = DockerRunner(image, worker, python=ydata.IMAGE_PYTHON, client=impatient)
        assert runner.run(Job({"action": "fit"}, timeout=60))["slept"] == 5
    finally:
        impatient.close()
