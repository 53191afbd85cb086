"""The isolated-backend runner's protocol with a stand-in worker: fit-like jobs, errors, timeouts, cancel."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest
from requests.exceptions import ReadTimeout

from fairsynth.backends.base import BackendUnavailable
from fairsynth.backends.isolated import (
    DockerRunner,
    IsolatedEnvironment,
    Job,
    SubprocessRunner,
    WorkerCancelled,
    WorkerError,
    WorkerTimeout,
)

from helpers import alive, live_processes, wait_for, wait_for_file

# A worker with the real protocol, written in plain Python so these tests need no ydata venv.
FAKE_WORKER = r"""
import json, os, subprocess, sys, time
request = json.load(open(sys.argv[1]))
action = request["action"]
def emit(message):
    sys.stdout.write(json.dumps(message) + "\n"); sys.stdout.flush()
if action == "copy":
    print("a library printing its own chatter on stdout")
    for step in (1, 2, 3):
        emit({"type": "progress", "stage": "fit", "step": step, "total": 3, "loss": 1.0 / step})
    rows = open(request["data"]).read().splitlines()
    open("out.txt", "w").write("\n".join(reversed(rows)))
    open("junk.tmp", "w").write("left in the job dir")
    emit({"type": "result", "rows": len(rows), "cwd": os.getcwd(), "env": os.environ.get("WORKER_FLAG")})
elif action == "fail":
    emit({"type": "error", "error": "bad_request", "message": "The worker refused the request: no such model."})
    sys.exit(2)
elif action == "crash":
    sys.stderr.write("Traceback (most recent call last):\nZeroDivisionError: division by zero\n")
    sys.exit(1)
elif action == "no_output":
    emit({"type": "result"})
elif action == "hang":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    open(request["pids"], "w").write(json.dumps([os.getpid(), child.pid]))
    emit({"type": "progress", "stage": "fit", "step": 0, "total": None})
    time.sleep(120)
"""


@pytest.fixture
def environment(tmp_path: Path) -> IsolatedEnvironment:
    """A stand-in venv whose python is this interpreter, running FAKE_WORKER."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    worker = tmp_path / "worker.py"
    worker.write_text(FAKE_WORKER)
    return IsolatedEnvironment(
        label="fake",
        venv=venv,
        worker=worker,
        modules=("json",),
        fix_command="make install-fake",
        environment={"WORKER_FLAG": "set"},
    )


def assert_all_gone(pids_file: Path) -> None:
    leader, child = json.loads(pids_file.read_text())
    wait_for(
        lambda: not alive(leader) and not alive(child),
        5,
        interval=0.05,
        message=lambda: "worker still running" if alive(leader) else "worker's child left behind",
    )
    assert live_processes(group=leader) == []


def test_job_round_trip_relays_progress_and_cleans_up(environment, tmp_path):
    data = tmp_path / "rows.txt"
    data.write_text("a\nb\nc")
    seen: list[dict] = []
    job = Job(
        {"action": "copy", "data": "input.txt"},
        inputs={"input.txt": data},
        outputs={"out.txt": tmp_path / "result" / "out.txt"},
        timeout=60,
    )
    result = SubprocessRunner(environment).run(job, progress=seen.append)
    assert result["rows"] == 3 and result["env"] == "set"
    assert [m["step"] for m in seen] == [1, 2, 3] and seen[-1]["loss"] == pytest.approx(1 / 3)
    assert (tmp_path / "result" / "out.txt").read_text() == "c\nb\na"
    assert not Path(result["cwd"]).exists(), "job directory left behind"
    assert data.read_text() == "a\nb\nc"  # the input was linked in, not moved


def test_structured_error_comes_back_as_one_sentence(environment):
    with pytest.raises(WorkerError) as caught:
        SubprocessRunner(environment).run(Job({"action": "fail"}, timeout=60))
    assert caught.value.kind == "bad_request"
    assert str(caught.value) == "The worker refused the request: no such model."


def test_a_crash_without_result_names_the_last_error_line(environment):
    with pytest.raises(WorkerError) as caught:
        SubprocessRunner(environment).run(Job({"action": "crash"}, timeout=60))
    assert caught.value.kind == "worker_died"
    assert "exit status 1" in str(caught.value) and "ZeroDivisionError" in str(caught.value)
    assert "Traceback" in caught.value.detail


def test_missing_output_is_an_error(environment, tmp_path):
    job = Job({"action": "no_output"}, outputs={"model.pkl": tmp_path / "model.pkl"}, timeout=60)
    with pytest.raises(WorkerError, match="without writing model.pkl"):
        SubprocessRunner(environment).run(job)


def test_timeout_kills_the_worker_and_its_children(environment, tmp_path):
    pids = tmp_path / "pids.json"
    started = time.monotonic()
    with pytest.raises(WorkerTimeout, match="ran past its 3 s limit"):
        SubprocessRunner(environment).run(Job({"action": "hang", "pids": str(pids)}, timeout=3))
    assert time.monotonic() - started < 15
    assert_all_gone(pids)


def test_cancel_from_another_thread_leaves_no_orphan(environment, tmp_path):
    pids = tmp_path / "pids.json"
    cancel = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            SubprocessRunner(environment).run(Job({"action": "hang", "pids": str(pids)}, timeout=120), cancel=cancel)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    wait_for_file(pids, 20, interval=0.05)
    cancel.set()
    thread.join(timeout=15)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], WorkerCancelled)
    assert_all_gone(pids)


def test_missing_venv_is_unavailable_with_the_fix(environment, tmp_path):
    missing = IsolatedEnvironment(
        label="fake",
        venv=tmp_path / "nowhere",
        worker=environment.worker,
        modules=("json",),
        fix_command="make install-fake",
    )
    available, reason = missing.availability()
    assert not available
    assert "missing" in reason and "make install-fake" in reason and str(tmp_path / "nowhere") in reason
    with pytest.raises(BackendUnavailable, match="make install-fake"):
        SubprocessRunner(missing).run(Job({"action": "copy"}))


def test_broken_venv_names_what_is_missing(environment):
    broken = IsolatedEnvironment(
        label="fake",
        venv=environment.venv,
        worker=environment.worker,
        modules=("json", "no_such_module_xyz"),
        fix_command="make install-fake",
    )
    available, reason = broken.availability()
    assert not available
    assert "broken" in reason and "no_such_module_xyz" in reason and "make install-fake" in reason


def test_venv_whose_python_cannot_start_is_broken(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(tmp_path / "deleted-interpreter")
    broken = IsolatedEnvironment(
        label="fake", venv=venv, worker=tmp_path / "w.py", modules=("json",), fix_command="make install-fake"
    )
    available, reason = broken.availability()
    assert not available and "make install-fake" in reason


# -- the container runner, against a fake docker client ----------------------------------------------
class FakeContainer:
    """Plays the worker: reads request.json from the bind-mounted job dir, streams chunked logs."""

    def __init__(self, job_dir: Path, hang: bool = False, start_error: Exception | None = None) -> None:
        self.job_dir, self.hang, self.start_error = job_dir, hang, start_error
        self.killed = self.removed = self.started = False

    def start(self):
        if self.start_error is not None:
            raise self.start_error
        self.started = True

    status = "running"
    quiet_timeouts = 0  # how many followed log requests time out first (podman sends no headers until output)

    def reload(self):
        pass

    def logs(self, stream=False, follow=False, stdout=True, stderr=False):
        if not stream:
            return b"worker stderr\nValueError: boom\n"
        if self.quiet_timeouts:
            self.quiet_timeouts -= 1
            raise ReadTimeout("Read timed out. (read timeout=60)")
        return self._stream()

    def _stream(self):
        request = json.loads((self.job_dir / "request.json").read_text())
        if self.hang:
            while not self.killed:
                time.sleep(0.05)
            return
        (self.job_dir / "out.parquet").write_bytes(b"rows")
        text = (
            json.dumps({"type": "progress", "stage": "fit", "step": 1, "total": 1})
            + "\n"
            + json.dumps({"type": "result", "action": request["action"]})
            + "\n"
        ).encode()
        for start in range(0, len(text), 7):  # the engine splits lines anywhere
            yield text[start : start + 7]

    def wait(self, timeout=None):
        return {"StatusCode": 1}

    def kill(self):
        self.killed = True

    def remove(self, force=False, v=False):
        self.removed = force and v  # v: its anonymous volumes go too


class FakeClient:
    """Answers ping and images.get; containers.create makes a FakeContainer (never pulls)."""

    def __init__(self, hang: bool = False, start_error: Exception | None = None) -> None:
        self.hang, self.start_error = hang, start_error
        self.calls: list[dict] = []
        self.container: FakeContainer | None = None
        self.containers = self.images = self

    def ping(self):
        return True

    def get(self, name):
        return name

    def create(self, **kwargs):
        self.calls.append(kwargs)
        job_dir = next(path for path, mount in kwargs["volumes"].items() if mount["bind"] == "/job")
        self.container = FakeContainer(Path(job_dir), self.hang, self.start_error)
        return self.container


def test_docker_runner_builds_an_isolated_container_request(tmp_path):
    worker = tmp_path / "pkg" / "worker.py"
    runner = DockerRunner(
        "fairsynth:test",
        worker,
        python="/opt/venv/bin/python",
        environment={"YDATA_SYNTHETIC_NO_ANALYTICS": "1"},
        client=FakeClient(),
    )
    arguments = runner.container_arguments(tmp_path / "job")
    assert arguments["image"] == "fairsynth:test"
    assert arguments["entrypoint"] == ["/opt/venv/bin/python", "-u", "/worker/worker.py"]
    assert arguments["command"] == ["request.json"]
    assert arguments["working_dir"] == "/job" and arguments["network_disabled"] is True
    assert arguments["volumes"] == {
        str(tmp_path / "job"): {"bind": "/job", "mode": "rw"},
        str(tmp_path / "pkg"): {"bind": "/worker", "mode": "ro"},
    }
    assert arguments["environment"] == {"HOME": "/tmp", "YDATA_SYNTHETIC_NO_ANALYTICS": "1"}
    assert arguments["user"] == f"{os.getuid()}:{os.getgid()}"
    assert arguments["labels"] == {"fairsynth.role": "isolated-worker"}
    assert arguments["healthcheck"] == {"test": ["NONE"]}  # the image's UI probe means nothing for a worker
    inside = DockerRunner("img", worker, python="/py", worker_in_image="/opt/w/worker.py", client=FakeClient())
    arguments = inside.container_arguments(tmp_path / "job")
    assert arguments["entrypoint"] == ["/py", "-u", "/opt/w/worker.py"] and len(arguments["volumes"]) == 1


def test_docker_runner_runs_a_job_and_removes_the_container(tmp_path):
    client = FakeClient()
    seen: list[dict] = []
    job = Job({"action": "fit"}, outputs={"out.parquet": tmp_path / "out.parquet"}, timeout=30)
    result = DockerRunner("img", tmp_path / "worker.py", python="/py", client=client).run(job, progress=seen.append)
    assert result == {"type": "result", "action": "fit"}
    assert [m["step"] for m in seen] == [1]
    assert (tmp_path / "out.parquet").read_bytes() == b"rows"
    assert client.container.started and client.container.removed
    job_dir = next(iter(client.calls[0]["volumes"]))
    assert not Path(job_dir).exists()


def test_docker_runner_waits_out_a_quiet_start_that_times_the_log_request_out(tmp_path):
    client = FakeClient()
    original = client.create

    def create(**kwargs):
        container = original(**kwargs)
        container.quiet_timeouts = 2
        return container

    client.create = create
    result = DockerRunner("img", tmp_path / "worker.py", python="/py", client=client).run(Job({"action": "fit"}))
    assert result["action"] == "fit" and client.container.quiet_timeouts == 0 and client.container.removed


def test_docker_runner_start_failure_is_one_sentence_and_removes_the_container(tmp_path):
    client = FakeClient(start_error=RuntimeError('exec: "/py": no such file or directory'))
    with pytest.raises(WorkerError, match="did not start .*no such file.*check that the image carries /py") as caught:
        DockerRunner("img", tmp_path / "worker.py", python="/py", client=client).run(Job({"action": "fit"}))
    assert caught.value.kind == "worker_not_started" and client.container.removed


def test_docker_runner_cancel_kills_the_container(tmp_path):
    client = FakeClient(hang=True)
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    with pytest.raises(WorkerCancelled):
        DockerRunner("img", tmp_path / "worker.py", python="/py", client=client).run(
            Job({"action": "fit"}, timeout=30), cancel=cancel
        )
    assert client.container.killed and client.container.removed


def test_docker_runner_unavailable_engine_says_how_to_fix(tmp_path):
    class DownClient:
        def ping(self):
            raise ConnectionError("engine not reachable")

    available, reason = DockerRunner("img", tmp_path / "w.py", python="/py", client=DownClient()).availability()
    assert not available and "engine not reachable" in reason and "FAIRSYNTH_YDATA_RUNNER" in reason
