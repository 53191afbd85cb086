"""Executors: a local pool of task processes (default) or Celery workers behind a Redis broker.

Both run tasks.execute_task, one task per backend; the store decides every state change.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from kombu.exceptions import KombuError

from fairsynth.backends import registry
from fairsynth.backends.base import Progress
from fairsynth.errors import FairsynthError
from fairsynth.metadata.dataset import DatasetSchema
from fairsynth.metadata.schema import TableSchema
from fairsynth.services.jobs.store import TERMINAL, Job, JobStore, Task, TaskState, new_id
from fairsynth.services.jobs.tasks import execute_task, finish_job_if_done, kill_task_processes
from fairsynth.services.run import datasets, pipeline
from fairsynth.services.run.config import GenerationRequest
from fairsynth.services.run.datasets import DatasetRequest
from fairsynth.services.settings import Settings

log = logging.getLogger("fairsynth.executors")
TASK_LOGS = "logs"  # the run folder's subfolder for each task process's output
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)(: .+)?$")  # a traceback's last line
CELERY_TASK = "fairsynth.run_task"


class BrokerUnavailable(FairsynthError):
    """The job could not be handed to the broker; it was failed with the reason and may be submitted again."""


class Executor(Protocol):
    """Runs the tasks of submitted jobs and stops them on cancel."""

    name: str

    def start(self) -> None: ...
    def submit(self, job: Job) -> None: ...
    def cancel(self, job_id: str) -> Job: ...
    def stop(self) -> None: ...


def create_job(
    store: JobStore,
    settings: Settings,
    request: GenerationRequest,
    *,
    executor: str,
    schema: TableSchema | None = None,
    dataset_id: str | None = None,
    run_dir: Path | None = None,
    idempotency: tuple[str, str] | None = None,
) -> Job:
    """Prepare the run directory (input read, split, schema written) and store a queued job, one task per backend.

    The run goes to runs/<job id> in the data directory unless `run_dir` (absolute) is given. `idempotency`:
    the client's key and the submission's fingerprint (a key already taken raises IntegrityError, nothing kept).
    """
    job_id = new_id()
    run_dir = run_dir or Path("runs") / job_id
    request = request.model_copy(update={"output_dir": str(settings.data_dir / run_dir)})
    # bad input or unknown backends fail here, before anything is queued
    pipeline.prepare_run(request, schema, neutralise_csv_formulas=settings.neutralise_csv_formulas)
    backends = [(spec.name, registry.backend_info(spec.name).capabilities.family) for spec in request.backends]
    return _stored_job(store, settings, request, run_dir, job_id, executor, backends, dataset_id, idempotency)


def create_dataset_job(
    store: JobStore,
    settings: Settings,
    request: DatasetRequest,
    *,
    executor: str,
    schema: DatasetSchema | None = None,
    dataset_id: str | None = None,
    idempotency: tuple[str, str] | None = None,
) -> Job:
    """Prepare a dataset run (tables read, split by subject, plan written) and store a queued job, one task per
    dataset backend; the run goes to runs/<job id> in the data directory."""
    job_id = new_id()
    run_dir = Path("runs") / job_id
    try:
        datasets.prepare_dataset_run(request, settings.data_dir / run_dir, schema)  # bad input fails before queuing
        backends = [
            (spec.name, registry.backend_info(spec.name, registry.DATASET_GROUP).capabilities.family)
            for spec in request.backends
        ]
    except BaseException:
        shutil.rmtree(settings.data_dir / run_dir, ignore_errors=True)  # no run folder without its job
        raise
    return _stored_job(store, settings, request, run_dir, job_id, executor, backends, dataset_id, idempotency)


def _stored_job(
    store: JobStore,
    settings: Settings,
    request: GenerationRequest | DatasetRequest,
    run_dir: Path,
    job_id: str,
    executor: str,
    backends: list[tuple[str, str]],
    dataset_id: str | None,
    idempotency: tuple[str, str] | None,
) -> Job:
    """The queued job of a prepared run; its run folder removed if the job cannot be stored."""
    try:
        return store.create_job(
            request_json=request.model_dump_json(),
            run_dir=str(run_dir),
            executor=executor,
            backends=backends,
            dataset_id=dataset_id,
            job_id=job_id,
            idempotency=idempotency,
        )
    except BaseException:
        shutil.rmtree(settings.data_dir / run_dir, ignore_errors=True)  # no run folder without its job
        raise


def make_executor(store: JobStore, settings: Settings) -> Executor:
    """The executor the settings ask for."""
    return CeleryExecutor(store, settings) if settings.executor == "celery" else LocalExecutor(store, settings)


# -- local ----------------------------------------------------------------------------------------
class LocalExecutor:
    """At most `settings.workers` task processes at once, each in its own process group.

    kind "local" serves every local job of the store (the API); kind "cli" runs one job for a command and
    leaves other processes' jobs alone.
    """

    def __init__(
        self,
        store: JobStore,
        settings: Settings,
        poll_seconds: float = 0.2,
        *,
        kind: str = "local",
        job_id: str | None = None,
    ):
        self.store, self.settings, self.poll_seconds = store, settings, poll_seconds
        self.name, self.job_id = kind, job_id
        self.identity = f"local:{socket.gethostname()}:{os.getpid()}"
        self.processes: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Recover what a previous process left running, then dispatch queued tasks in the background."""
        self.settings.ensure_dirs()
        recover(self.store, self.settings, self.name, reason="the process that started this task stopped while it ran")
        self._thread = threading.Thread(target=self._loop, daemon=True, name="fairsynth-local-executor")
        self._thread.start()

    def submit(self, job: Job) -> None:
        """Nothing to send: the dispatcher picks queued tasks from the store."""

    def cancel(self, job_id: str) -> Job:
        """Cancel the job's tasks and kill the process tree of each one that runs."""
        for task in self.store.cancel_job(job_id):
            with self._lock:
                process = self.processes.get(task.id)
            if process is not None:
                _kill_group(process)
            kill_task_processes(task.id)
        finish_job_if_done(self.store, job_id, self.settings.data_dir)
        return self.store.get_job(job_id)

    def stop(self) -> None:
        """Stop dispatching, kill running task processes and fail their tasks with the reason."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            running = dict(self.processes)
        for task_id, process in running.items():
            _kill_group(process)
            self._ended(task_id, process, reason="the service stopped while this task ran")

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._reap()
                self._dispatch()
            except Exception:  # a store hiccup must not stop the dispatcher
                log.exception("local executor loop")
            self._stopping.wait(self.poll_seconds)

    def _dispatch(self) -> None:
        with self._lock:
            free = self.settings.workers - len(self.processes)
        if free <= 0:
            return
        for task in self.store.queued_tasks(free, executor=self.name, job_id=self.job_id):
            if self._stopping.is_set() or not self.store.claim(task.id, worker=self.identity, pid=None):
                continue
            try:
                process = self._spawn(task)
            except OSError as exc:
                self.store.fail_task(task.id, f"the task's process could not be started ({exc})")
                finish_job_if_done(self.store, task.job_id, self.settings.data_dir)
                continue
            self.store.set_pid(task.id, process.pid, self.identity)
            with self._lock:
                self.processes[task.id] = process

    def _spawn(self, task: Task) -> subprocess.Popen:
        log_path = task_log(self.store, self.settings, task)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = self.settings.task_environment(os.environ)
        with open(log_path, "ab") as log_file:
            return subprocess.Popen(
                [sys.executable, "-m", "fairsynth.services.jobs.tasks", "--claimed", task.id],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )  # own process group: cancel kills the whole tree

    def _reap(self) -> None:
        with self._lock:
            ended = {tid: p for tid, p in self.processes.items() if p.poll() is not None}
        for task_id, process in ended.items():
            self._ended(task_id, process, reason=_exit_reason(process.returncode))

    def _ended(self, task_id: str, process: subprocess.Popen, reason: str) -> None:
        _kill_group(process)  # what the task started dies with it, however it ended
        kill_task_processes(task_id)
        with self._lock:
            self.processes.pop(task_id, None)
        self.store.fail_task(task_id, death_sentence(reason, task_log(self.store, self.settings, task_id)))
        job_id = self.store.get_task(task_id).job_id  # finished here too when the process died after its task ended
        threading.Thread(
            target=finish_job_if_done, args=(self.store, job_id, self.settings.data_dir), daemon=True
        ).start()


def recover(store: JobStore, settings: Settings, executor: str, reason: str) -> list[str]:
    """Fail tasks a stopped process left `running` (killing leftover processes) and finish half-finished jobs.

    Only jobs of this executor kind are touched. The API ("local") owns every local task; a command ("cli")
    leaves alone the jobs of another command that still runs, and tasks whose process still runs.
    """
    failed = []
    for task in store.running_tasks(executor):
        if executor == "cli" and (_claimant_alive(task.worker) or task.pid and _runs_task(task.pid, task.id)):
            continue
        if task.pid and _runs_task(task.pid, task.id):
            _kill_orphan(task.pid)
        kill_task_processes(task.id)
        if store.fail_task(task.id, f"{reason}; submit the job again"):
            failed.append(task.job_id)
    for job_id in store.unfinished_jobs(executor):
        if executor == "cli" and any(_claimant_alive(t.worker) for t in store.get_job(job_id).tasks):
            continue  # its command is packaging it right now
        store.reopen_job(job_id)
        failed.append(job_id)
    failed.extend(store.ended_but_open_jobs(executor))
    for job_id in dict.fromkeys(failed):
        finish_job_if_done(store, job_id, settings.data_dir)
    return failed


def _claimant_alive(worker: str | None) -> bool:
    """True when a task was claimed by a local executor whose process still runs on this host."""
    kind, _, place = (worker or "").partition(":")
    host, _, pid = place.rpartition(":")
    return kind == "local" and host == socket.gethostname() and pid.isdigit() and Path(f"/proc/{pid}").exists()


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _runs_task(pid: int, task_id: str) -> bool:
    """True when this pid is (still) the process running this very task, not a reused pid."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return task_id.encode() in command and b"fairsynth.services.jobs.tasks" in command


def _kill_orphan(pid: int) -> None:
    """Kill the process group of a task process left by a stopped service."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _exit_reason(returncode: int) -> str:
    if returncode < 0:
        return f"the task's process was killed by {signal.Signals(-returncode).name}"
    return f"the task's process exited with code {returncode} before finishing"


def task_log(store: JobStore, settings: Settings, task: Task | str) -> Path:
    """Where a task process writes its output, library logging included: logs/<backend>.log in its run folder."""
    task = store.get_task(task) if isinstance(task, str) else task
    return settings.data_dir / store.get_job(task.job_id).run_dir / TASK_LOGS / f"{task.backend}.log"


def death_sentence(reason: str, log_path: Path) -> str:
    """Why a task process died: the reason and its last exception's own sentence, never library log lines."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    raised = next((line.strip() for line in reversed(lines) if EXCEPTION_LINE.match(line)), None)
    told = f" ({raised})" if raised else ""
    return f"{reason}{told}; its log is {TASK_LOGS}/{log_path.name} in the run folder."


# -- one job for a command (the CLI) ----------------------------------------------------------------
def run_job(
    request: GenerationRequest,
    settings: Settings | None = None,
    progress: pipeline.ProgressSink | None = None,
    poll_seconds: float = 0.3,
) -> pipeline.RunResult:
    """Run a request as a job on the local executor and wait for it: the CLI's path, the same as the API's.

    Progress from the task processes is relayed to `progress`; an interrupt cancels the job (killing its processes).
    """
    settings = settings or Settings.from_env()
    settings.ensure_dirs()
    store = JobStore(settings.database_url)
    try:
        run_dir = Path(request.output_dir or pipeline.default_run_dir()).resolve()
        job = create_job(store, settings, request, executor="cli", run_dir=run_dir)
        executor = LocalExecutor(store, settings, kind="cli", job_id=job.id)
        executor.start()
        try:
            job = _follow(store, job.id, progress or (lambda _: None), poll_seconds)
        except BaseException:
            executor.cancel(job.id)
            raise
        finally:
            executor.stop()
        return job_result(store, settings, job)
    finally:
        store.close()


def _follow(store: JobStore, job_id: str, progress: pipeline.ProgressSink, poll_seconds: float) -> Job:
    seen: dict[str, tuple] = {}
    while True:
        job = store.get_job(job_id)
        for task in job.tasks:
            key = (task.state, task.stage, task.step, task.loss, task.message)
            if task.stage and seen.get(task.id) != key:
                seen[task.id] = key
                stage = "failed" if task.state == TaskState.FAILED else task.stage
                progress(
                    Progress(
                        task.backend,
                        stage,
                        task.step or 0,
                        task.total,
                        task.loss,
                        message=(task.error if task.state == TaskState.FAILED else task.message) or "",
                    )
                )
        if job.state in TERMINAL:
            return job
        time.sleep(poll_seconds)


def job_result(store: JobStore, settings: Settings, job: Job) -> pipeline.RunResult:
    """A finished job as the pipeline's RunResult: the run directory, the schema and each backend's outcome."""
    if job.error:
        raise pipeline.RunError(job.error)
    run_dir = settings.data_dir / job.run_dir
    outcomes = [
        pipeline.outcome_from_json(t.outcome_json)
        if t.outcome_json
        else pipeline.BackendOutcome(t.backend, ok=False, error=t.error or t.state)
        for t in job.tasks
    ]
    schema = TableSchema.from_json((run_dir / "schema.json").read_text())
    return pipeline.RunResult(run_dir, schema, outcomes)


# -- celery ---------------------------------------------------------------------------------------
@lru_cache(maxsize=4)
def celery_app(broker_url: str):
    """The Celery app: late acks, one message at a time per worker process, one queue per backend family."""
    from celery import Celery
    from kombu import Queue

    app = Celery("fairsynth", broker=broker_url)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=False,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue="basic",
        task_queues=[Queue(f) for f in backend_families()],
        broker_transport_options={"visibility_timeout": 7 * 24 * 3600},  # long fits are not redelivered
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        task_serializer="json",
        accept_content=["json"],
    )

    @app.task(name=CELERY_TASK)
    def run_task(task_id: str) -> str:
        return execute_task(task_id)

    from celery.signals import task_failure, task_revoked

    @task_revoked.connect(sender=run_task, weak=False)
    def _revoked(request=None, **_):
        """Cancelled: the pool process was killed; kill what it started (they would live on under PID 1)."""
        if request is not None:
            kill_task_processes(request.id)

    @task_failure.connect(sender=run_task, weak=False)
    def _worker_lost(task_id=None, exception=None, args=None, **_):
        """The pool process died under the task (killed, out of memory): kill what it started, fail it."""
        if task_id:
            kill_task_processes(task_id)
        if args:
            from billiard.exceptions import WorkerLostError

            lost = isinstance(exception, WorkerLostError)
            fail_lost_task(
                args[0],
                f"the worker process running it was lost ({exception})"
                if lost
                else f"the task failed on its worker: {type(exception).__name__}: {exception}",
            )

    return app


def fail_lost_task(task_id: str, reason: str) -> None:
    """Fail a task whose worker process died, and finish its job if it was the last."""
    settings = Settings.from_env()
    store = JobStore(settings.database_url, run_migrations=False)
    try:
        store.fail_task(task_id, reason)
        finish_job_if_done(store, store.get_task(task_id).job_id, settings.data_dir)
    finally:
        store.close()


class CeleryExecutor:
    """Sends each task to the queue of its backend family; workers run them with `fairsynth worker`."""

    name = "celery"

    def __init__(self, store: JobStore, settings: Settings):
        self.store, self.settings = store, settings
        self.app = celery_app(settings.broker_url)
        self._sent: set[str] = set()  # task ids this process handed to the broker
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Send the queued tasks nobody sent (a lost send is harmless to repeat) and watch for silent workers."""
        self.settings.ensure_dirs()
        self._resend()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="fairsynth-celery-watch")
        self._thread.start()

    def submit(self, job: Job) -> None:
        """One message per task, on its family's queue; a broker that cannot be reached fails the job with the reason.

        A task sent before the broker failed finds its task failed and does nothing.
        """
        try:
            for task in job.tasks:
                self._send(task)
        except (KombuError, OSError) as exc:
            reason = f"the broker could not be reached ({exc}); submit the job again"
            for task in job.tasks:
                self.store.fail_task(task.id, reason, states=(TaskState.QUEUED,))
            finish_job_if_done(self.store, job.id, self.settings.data_dir)
            raise BrokerUnavailable(
                f"The job could not be queued: the broker does not answer ({exc}); submit it again in a while."
            ) from exc

    def cancel(self, job_id: str) -> Job:
        """Cancel the job's tasks; running ones are terminated on their workers."""
        for task in self.store.cancel_job(job_id):
            self.app.control.revoke(task.id, terminate=True, signal="SIGKILL")
        finish_job_if_done(self.store, job_id, self.settings.data_dir)
        return self.store.get_job(job_id)

    def stop(self) -> None:
        """Stop watching (the workers keep running their tasks)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _send(self, task: Task) -> None:
        self.app.send_task(CELERY_TASK, args=[task.id], queue=task.family, task_id=task.id)
        self._sent.add(task.id)

    def _resend(self) -> None:
        """Send every queued task this process has not sent: left by a process that stopped between store and send."""
        try:
            for task in self.store.queued_tasks(10_000, executor="celery"):
                if task.id not in self._sent:
                    self._send(task)
        except (KombuError, OSError) as exc:
            log.warning("queued tasks not sent, the broker does not answer (%s); trying again shortly", exc)

    def _watch(self) -> None:
        interval = max(1.0, self.settings.stale_seconds / 4)
        while not self._stopping.wait(interval):
            self._resend()
            try:
                stale = [t.job_id for t in self.store.fail_stale(self.settings.stale_seconds, executor="celery")]
                for job_id in dict.fromkeys(stale + self.store.ended_but_open_jobs("celery")):
                    finish_job_if_done(self.store, job_id, self.settings.data_dir)
            except Exception:
                log.exception("celery watch")


def backend_families() -> list[str]:
    """The executor queues: one per backend family the registry declares (Capabilities.family)."""
    return sorted({info.capabilities.family for info in registry.list_backends() if info.capabilities} | {"basic"})


def run_worker(settings: Settings, queues: list[str], concurrency: int) -> None:
    """Start a Celery worker for these queues (blocks)."""
    settings.ensure_dirs()  # the tasks' backends find the model signing key through the environment
    JobStore(settings.database_url).close()  # migrate once before any task runs
    app = celery_app(settings.broker_url)
    app.worker_main(
        [
            "worker",
            "--queues",
            ",".join(queues),
            "--concurrency",
            str(concurrency),
            "--loglevel",
            "INFO",
            "--pool",
            "prefork",
            "--without-gossip",
            "--without-mingle",
            "--hostname",
            f"fairsynth-{'-'.join(queues)}@%h",
        ]
    )
