"""Run a backend's model code in its own environment: a venv worker over a subprocess, or a container.

Some model libraries cannot share the main environment (ydata-synthetic 1.4 pins TensorFlow 2.15,
numpy<2, requests<2.31). They run in a worker script inside their own venv. The protocol is the
same for every runner:

- the main process writes a job directory: `request.json` (the action and its arguments) plus
  input files (Parquet tables, model files), all named relative to the job directory;
- the worker is started with the job directory as its working directory and `request.json` as
  its only argument; it prints one JSON object per line on stdout:
  `{"type": "progress", "stage", "step", "total", "loss", "message"}` while it works, then exactly
  one `{"type": "result", ...}` or `{"type": "error", "error": kind, "message": one sentence}`;
- it writes its output files into the job directory; the runner moves the ones asked for out and
  removes the job directory, whatever happened.

A timeout or a cancel kills the worker's whole process group (subprocess runner) or the container
(docker runner). The subprocess runner holds the worker's stdin open and sets
FAIRSYNTH_WORKER_WATCH_STDIN=1: a worker must exit when its stdin closes, so it cannot outlive a main
process that was killed outright (its own process group keeps it out of the terminal's signals).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from fairsynth.backends.base import BackendError, BackendUnavailable, _batch_plan

WorkerProgress = Callable[[dict], None]

STDERR_TAIL_LINES = 20
KILL_GRACE_SECONDS = 3.0
AVAILABILITY_TTL = 30.0
_AVAILABLE: dict[tuple, float] = {}  # (venv, modules) -> when it was last found complete


class WorkerError(BackendError):
    """The worker reported a failure (kind + one sentence) or died without a result."""

    def __init__(self, message: str, kind: str = "worker_failed", detail: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.detail = detail


class WorkerTimeout(WorkerError):
    """The worker ran past its time limit and was killed."""


class WorkerCancelled(WorkerError):
    """The caller cancelled the job and the worker was killed."""


@dataclass(frozen=True)
class Job:
    """One request to a worker: what to do, which files go in, which come back out."""

    request: dict
    inputs: dict[str, Path] = field(default_factory=dict)  # name in the job dir -> source path
    outputs: dict[str, Path] = field(default_factory=dict)  # name in the job dir -> destination path
    timeout: float | None = None


class Runner(Protocol):
    """Something that runs a worker job to completion and returns its result message."""

    def run(
        self, job: Job, *, progress: WorkerProgress | None = None, cancel: threading.Event | None = None
    ) -> dict: ...

    def availability(self) -> tuple[bool, str]: ...


IN_CONTAINER_ENV = "FAIRSYNTH_IN_CONTAINER"  # set to 1 by the image (Dockerfile)


def venv_fix_command(name: str, build_arg: str) -> str:
    """How to build a backend's venv: its make target on a checkout; inside the image, which has no build tools
    and is built with or without the venv, a rebuild of the image with the venv's build argument."""
    if os.environ.get(IN_CONTAINER_ENV, "").strip() == "1":
        return (
            f"docker build --build-arg {build_arg}=1 -t fairsynth . (this image was built without it: "
            f"rebuild the image with --build-arg {build_arg}=1)"
        )
    return f"make install-{name} (or: bash scripts/install-{name}.sh, from the repository root)"


@dataclass(frozen=True)
class IsolatedEnvironment:
    """A venv with its own packages, the worker script run inside it, and how to build it."""

    label: str  # e.g. "ydata-synthetic 1.4"
    venv: Path
    worker: Path
    modules: tuple[str, ...]  # importable names that prove the venv is complete
    fix_command: str  # the command that (re)builds the venv
    environment: dict[str, str] = field(default_factory=dict)  # extra env vars for the worker

    @property
    def python(self) -> Path:
        """The venv's interpreter."""
        return self.venv / "bin" / "python"

    def availability(self) -> tuple[bool, str]:
        """Whether the venv exists and holds its packages; the reason and the fix when not.

        A positive answer is remembered for AVAILABILITY_TTL seconds: listing backends asks once per
        backend, and each probe starts the venv's Python.
        """
        key = (str(self.venv), self.modules)
        remembered = _AVAILABLE.get(key)
        if remembered is not None and time.monotonic() - remembered < AVAILABILITY_TTL and self.python.exists():
            return True, ""
        available, reason = self._probe()
        if available:
            _AVAILABLE[key] = time.monotonic()
        return available, reason

    def _probe(self) -> tuple[bool, str]:
        if not self.python.exists():
            return False, f"the {self.label} environment is missing ({self.venv}); build it with: {self.fix_command}"
        # find_spec of a dotted name raises when its parent package is missing: that counts as missing too
        probe = (
            "import importlib.util, sys\n"
            "def found(m):\n"
            "    try:\n        return importlib.util.find_spec(m) is not None\n"
            "    except ImportError:\n        return False\n"
            "missing = [m for m in sys.argv[1:] if not found(m)]\n"
            "print(' '.join(missing)); sys.exit(1 if missing else 0)"
        )
        try:
            done = subprocess.run(
                [str(self.python), "-c", probe, *self.modules],
                capture_output=True,
                text=True,
                timeout=30,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, (
                f"the {self.label} environment in {self.venv} is broken ({exc}); rebuild it with: {self.fix_command}"
            )
        if done.returncode != 0:
            what = done.stdout.strip() or (done.stderr.strip().splitlines() or ["its Python does not start"])[-1]
            return False, (
                f"the {self.label} environment in {self.venv} is broken (missing: {what}); "
                f"rebuild it with: {self.fix_command}"
            )
        return True, ""


class SubprocessRunner:
    """Runs the worker with the venv's Python in a new process group, one process per job."""

    def __init__(self, environment: IsolatedEnvironment) -> None:
        self.environment = environment

    def availability(self) -> tuple[bool, str]:
        """The venv's availability."""
        return self.environment.availability()

    def run(self, job: Job, *, progress: WorkerProgress | None = None, cancel: threading.Event | None = None) -> dict:
        """Run one job; raises WorkerError / WorkerTimeout / WorkerCancelled on failure."""
        _check_ready(self, cancel)
        with job_directory(job) as job_dir:
            command = [str(self.environment.python), "-u", str(self.environment.worker), "request.json"]
            stderr_path = job_dir / ".worker-stderr.txt"
            with open(stderr_path, "w") as stderr:
                process = subprocess.Popen(
                    command,
                    cwd=job_dir,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=stderr,
                    env=self._worker_env(),
                    text=True,
                    bufsize=1,
                    start_new_session=True,
                )
                try:
                    lines = _line_reader(process.stdout)
                    result = follow_worker(lines, progress, cancel, job.timeout)
                finally:
                    kill_process_group(process)
            if result is None:
                raise _died(process.returncode, stderr_path.read_text(errors="replace"))
            collect_outputs(job_dir, job.outputs)
            return result

    def _worker_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env.update(self.environment.environment)
        env["FAIRSYNTH_WORKER_WATCH_STDIN"] = "1"
        env["PATH"] = f"{self.environment.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        return env


class DockerRunner:
    """Runs the same worker inside a container through the docker SDK (image carries the venv).

    The job directory is bind-mounted at /job (the working directory); the container has no network
    and runs as this user so the job's files stay removable. The worker is the host's script mounted
    at /worker, or `worker_in_image` (a path inside the image) when the engine cannot see host paths.
    The image's entrypoint is replaced by the venv's Python. Each job gets a fresh container labelled
    fairsynth.role=isolated-worker, removed with its anonymous volumes however the job ends; a
    missing image makes the runner unavailable (it is never pulled). Tested against podman's Docker API.
    """

    JOB_MOUNT = "/job"
    WORKER_MOUNT = "/worker"
    LABELS = {"fairsynth.role": "isolated-worker"}  # finds leftovers: docker ps -a --filter label=fairsynth.role

    def __init__(
        self,
        image: str,
        worker: Path,
        *,
        python: str,
        worker_in_image: str | None = None,
        environment: dict[str, str] | None = None,
        client=None,
    ) -> None:
        self.image = image
        self.worker = Path(worker)
        self.python = python
        self.worker_in_image = worker_in_image
        self.environment = dict(environment or {})
        self._client = client

    def client(self):
        """The docker client (from the environment, e.g. DOCKER_HOST) unless one was given."""
        if self._client is None:
            import docker

            self._client = docker.from_env()
        return self._client

    def availability(self) -> tuple[bool, str]:
        """Whether the engine answers and holds the image."""
        try:
            client = self.client()
            client.ping()
            client.images.get(self.image)
        except ImportError:
            return False, "the docker Python package is not installed; pip install docker"
        except Exception as exc:  # the SDK raises many kinds: engine down, image missing, permissions
            return False, (
                f"the container engine or the image '{self.image}' is not available ({exc}); "
                "start the engine and build the image, or unset FAIRSYNTH_YDATA_RUNNER"
            )
        return True, ""

    def container_arguments(self, job_dir: Path) -> dict:
        """The keyword arguments of containers.run for one job."""
        volumes = {str(job_dir): {"bind": self.JOB_MOUNT, "mode": "rw"}}
        worker = self.worker_in_image
        if worker is None:
            volumes[str(self.worker.parent)] = {"bind": self.WORKER_MOUNT, "mode": "ro"}
            worker = f"{self.WORKER_MOUNT}/{self.worker.name}"
        return {
            "image": self.image,
            "entrypoint": [self.python, "-u", worker],  # the image's own entrypoint is the fairsynth CLI
            "command": ["request.json"],
            "working_dir": self.JOB_MOUNT,
            "volumes": volumes,
            # this user may have no home in the image: libraries that write caches get /tmp
            "environment": {"HOME": "/tmp", **self.environment},
            "labels": dict(self.LABELS),
            "network_disabled": True,
            "user": f"{os.getuid()}:{os.getgid()}",
            "healthcheck": {"test": ["NONE"]},  # the image's check probes the UI port, which a worker never opens
            "stdin_open": False,
        }

    def run(self, job: Job, *, progress: WorkerProgress | None = None, cancel: threading.Event | None = None) -> dict:
        """Run one job in a fresh container, removed afterwards whatever happened."""
        _check_ready(self, cancel)
        with job_directory(job) as job_dir:
            # create + start rather than containers.run: run() would pull a missing image, and a start
            # that fails would leave the created container behind
            container = self.client().containers.create(**self.container_arguments(job_dir))
            try:
                self._start(container)
                lines = _line_reader(_split_lines(_stdout_of(container)))  # opened on the reader thread
                result = follow_worker(lines, progress, cancel, job.timeout)
                if result is None:
                    status = container.wait(timeout=KILL_GRACE_SECONDS)
                    errors = container.logs(stdout=False, stderr=True).decode(errors="replace")
                    raise _died(status.get("StatusCode"), errors)
            finally:
                _remove_container(container)
            collect_outputs(job_dir, job.outputs)
            return result

    def _start(self, container) -> None:
        try:
            container.start()
        except Exception as exc:  # docker.errors.APIError: the entrypoint is missing, a mount is refused...
            explanation = getattr(exc, "explanation", None) or str(exc)
            raise WorkerError(
                f"The worker container from '{self.image}' did not start ({explanation}); "
                f"check that the image carries {self.python}.",
                kind="worker_not_started",
            ) from exc


def _stdout_of(container) -> Iterable[bytes]:
    """The container's stdout as it comes, to the end.

    podman's Docker API answers a followed log request only once the container has printed something:
    a worker that is quiet for longer than the client's timeout (a slow import) would time the request
    out, so it is asked again while the container runs. Once data flows the SDK lifts the timeout.
    """
    from requests.exceptions import ReadTimeout

    while True:
        try:
            stream = container.logs(stream=True, follow=True, stdout=True, stderr=False)
            break
        except ReadTimeout:
            container.reload()
            if container.status not in ("created", "running"):
                raise
    yield from stream


# -- the job directory ------------------------------------------------------------------------------
class job_directory:
    """A temporary directory holding request.json and the job's inputs; removed on exit."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.path: Path | None = None

    def __enter__(self) -> Path:
        self.path = Path(tempfile.mkdtemp(prefix="fairsynth-worker-"))
        try:
            for name, source in self.job.inputs.items():
                _place(Path(source), self.path / name)
            (self.path / "request.json").write_text(json.dumps(self.job.request))
        except BaseException:
            shutil.rmtree(self.path, ignore_errors=True)
            raise
        return self.path

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _place(source: Path, target: Path) -> None:
    """Hard-link an input into the job dir (no copy of big files), copying across file systems."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def collect_outputs(job_dir: Path, outputs: dict[str, Path]) -> None:
    """Move the requested outputs out of the job dir; a missing one is the worker's fault."""
    for name, destination in outputs.items():
        produced = job_dir / name
        if not produced.is_file():
            raise WorkerError(f"The worker finished without writing {name}.", kind="missing_output")
        Path(destination).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(produced), str(destination))


# -- following the worker's stdout ---------------------------------------------------------------
_EOF = object()


def _line_reader(stream: Iterable[str]) -> queue.Queue:
    """Read lines on a thread so the caller can wait with a timeout and check for cancel."""
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        try:
            for line in stream:
                lines.put(line)
        except (OSError, ValueError):  # the stream closed under us when the worker was killed
            pass
        finally:
            lines.put(_EOF)

    threading.Thread(target=pump, daemon=True, name="worker-stdout").start()
    return lines


def _split_lines(chunks: Iterable[bytes]) -> Iterable[str]:
    """Docker log streams yield arbitrary byte chunks; turn them into text lines."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line.decode(errors="replace") + "\n"
    if pending:
        yield pending.decode(errors="replace")


def follow_worker(
    lines: queue.Queue, progress: WorkerProgress | None, cancel: threading.Event | None, timeout: float | None
) -> dict | None:
    """Relay progress messages until a result (returned) or an error (raised); None if the worker died."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        _stop_if_cancelled(cancel)
        if deadline is not None and time.monotonic() > deadline:
            raise WorkerTimeout(
                f"The worker ran past its {timeout:g} s limit and was stopped; "
                "raise the timeout or use a smaller sample.",
                kind="timeout",
            )
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            continue
        if line is _EOF:
            return None
        message = _parse(line)
        if message is None:
            continue
        if message.get("type") == "progress":
            if progress is not None:
                progress(message)
        elif message.get("type") == "result":
            return message
        elif message.get("type") == "error":
            raise WorkerError(
                str(message.get("message") or "The worker failed."),
                kind=str(message.get("error") or "worker_failed"),
                detail=str(message.get("detail") or ""),
            )


def _check_ready(runner: Runner, cancel: threading.Event | None) -> None:
    """Refuse a job the runner cannot run (with the reason and the fix) or that was cancelled already."""
    available, reason = runner.availability()
    if not available:
        raise BackendUnavailable(f"Cannot run the worker: {reason}.")
    _stop_if_cancelled(cancel)


def _stop_if_cancelled(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise WorkerCancelled("The job was cancelled and its worker stopped.", kind="cancelled")


def _parse(line: str) -> dict | None:
    """A protocol message, or None for anything else a library printed on stdout."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) and "type" in message else None


def _died(returncode, stderr: str) -> WorkerError:
    tail = "\n".join(stderr.strip().splitlines()[-STDERR_TAIL_LINES:])
    last = tail.splitlines()[-1] if tail else "no message"
    return WorkerError(
        f"The worker stopped without a result (exit status {returncode}: {last}).", kind="worker_died", detail=tail
    )


# -- stopping ---------------------------------------------------------------------------------------
def kill_process_group(process: subprocess.Popen) -> None:
    """Stop the worker and everything it started: SIGTERM to its group, SIGKILL after a grace period."""
    if process.stdin and not process.stdin.closed:
        with contextlib.suppress(OSError):
            process.stdin.close()
    if process.poll() is None:
        _signal_group(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=KILL_GRACE_SECONDS)
    # children that outlived the leader still belong to its group
    _signal_group(process.pid, signal.SIGKILL)
    process.wait()
    if process.stdout:
        process.stdout.close()


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _remove_container(container) -> None:
    # v=True: the image's VOLUME (/data) gives every worker container an anonymous volume; drop it too
    for stop in (lambda: container.kill(), lambda: container.remove(force=True, v=True)):
        with contextlib.suppress(Exception):  # already stopped or removed
            stop()


def configured_runner(prefix: str, environment: Callable[[], IsolatedEnvironment], image_python: str) -> Runner:
    """The runner FAIRSYNTH_<prefix>_RUNNER names: the venv subprocess by default, a container when asked for
    (FAIRSYNTH_<prefix>_IMAGE, _IMAGE_PYTHON, _IMAGE_WORKER)."""
    kind = os.environ.get(f"FAIRSYNTH_{prefix}_RUNNER", "subprocess").strip().lower()
    if kind == "subprocess":
        return SubprocessRunner(environment())
    if kind == "docker":
        isolated = environment()
        return DockerRunner(
            os.environ.get(f"FAIRSYNTH_{prefix}_IMAGE", "fairsynth"),
            isolated.worker,
            python=os.environ.get(f"FAIRSYNTH_{prefix}_IMAGE_PYTHON", image_python),
            worker_in_image=os.environ.get(f"FAIRSYNTH_{prefix}_IMAGE_WORKER") or None,
            environment=dict(isolated.environment),
        )
    raise BackendError(f"FAIRSYNTH_{prefix}_RUNNER is '{kind}'; set it to 'subprocess' or 'docker'.")


def configured_timeout(prefix: str, default: float) -> float:
    """Seconds one worker call may take (FAIRSYNTH_<prefix>_TIMEOUT), the default when it is not set."""
    raw = os.environ.get(f"FAIRSYNTH_{prefix}_TIMEOUT", "")
    try:
        return float(raw) if raw else default
    except ValueError:
        raise BackendError(f"FAIRSYNTH_{prefix}_TIMEOUT is '{raw}'; set it to a number of seconds.") from None


class WorkerDrawnSamples:
    """Sampling for a codec backend whose worker draws every batch in one call (its venv imports slowly):
    `_draw(plan)` returns one Parquet file of encoded rows per (rows, seed) batch; they are decoded in order."""

    def _draw(self, plan: list[tuple[int, int]]) -> list[Path]:
        raise NotImplementedError

    def sample(self, n_rows: int, *, seed: int, batch_rows: int = 100_000) -> Iterator[pd.DataFrame]:
        """Decoded batches adding up to n_rows, drawn by one worker call."""
        codec = self._fitted_codec()  # type: ignore[attr-defined]  # from CodecGenerator, which it is mixed into
        plan = list(_batch_plan(n_rows, batch_rows, np.random.default_rng(seed)))
        if not plan:
            return
        files = self._draw(plan)
        start = 0
        try:
            for (size, batch_seed), path in zip(plan, files):
                encoded = pd.read_parquet(path)
                path.unlink()
                yield codec.decode(encoded, start_row=start, seed=batch_seed, total_rows=n_rows)
                start += size
        finally:
            for path in files:
                path.unlink(missing_ok=True)

    def _sample_encoded(self, n_rows: int, *, seed: int) -> pd.DataFrame:
        [path] = self._draw([(n_rows, seed)])
        try:
            return pd.read_parquet(path)
        finally:
            path.unlink(missing_ok=True)
