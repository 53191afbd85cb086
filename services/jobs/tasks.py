"""The one task function both executors run: one backend of a job, with progress and state in the store.

Local executor: `python -m fairsynth.services.jobs.tasks TASK_ID` in its own process group. Celery: the
`fairsynth.run_task` task calls `execute_task` in a worker. Either way the store decides who may run and end a task.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from fairsynth.backends.base import Progress
from fairsynth.errors import ControlFlow
from fairsynth.metadata.schema import TableSchema
from fairsynth.services.jobs.store import TERMINAL, JobState, JobStore, TaskState, now, utc
from fairsynth.services.run import datasets, pipeline
from fairsynth.services.run.config import GenerationRequest, crate_info_from
from fairsynth.services.settings import Settings

log = logging.getLogger("fairsynth.tasks")
PROGRESS_INTERVAL = 0.5  # seconds between stored progress rows (stage changes are always stored)
# Set in a task's process while it runs: every process it starts (joblib/loky workers, subprocesses) inherits it,
# so the whole tree is found again even after its parent died and it was re-parented to PID 1.
TASK_MARKER = "FAIRSYNTH_TASK_ID"
T = TypeVar("T")


class TaskCancelled(ControlFlow):
    """The task was cancelled while it ran: unwinds the backend's fit or sample, never reported as a failure."""


def worker_name() -> str:
    """host:pid of this process, recorded on the task it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def execute_task(
    task_id: str, settings: Settings | None = None, store: JobStore | None = None, *, claimed: bool = False
) -> TaskState:
    """Run one task to its end (succeeded, failed or cancelled) and finish its job if it was the last.

    `claimed`: the local executor already moved the task to running for this process.
    """
    settings = settings or Settings.from_env()
    own_store = store is None
    store = store or JobStore(settings.database_url, run_migrations=False)
    try:
        task = store.get_task(task_id)
        if claimed:
            if task.state == TaskState.RUNNING:
                _run_claimed(store, task_id, settings)
                finish_job_if_done(store, task.job_id, settings.data_dir)
            return store.get_task(task_id).state
        if task.state == TaskState.RUNNING:
            _take_over(store, task, settings)
            return store.get_task(task_id).state
        if not store.claim(task_id, worker=worker_name(), pid=os.getpid()):
            return store.get_task(task_id).state  # cancelled before it started, or run by someone else
        _run_claimed(store, task_id, settings)
        finish_job_if_done(store, task.job_id, settings.data_dir)
        return store.get_task(task_id).state
    finally:
        if own_store:
            store.close()


def _take_over(store: JobStore, task, settings: Settings) -> None:
    """A redelivered task: fail it when its first run stopped showing signs of life, else leave it be."""
    silent = (now() - utc(task.heartbeat_at)).total_seconds() if task.heartbeat_at else float("inf")
    if silent > settings.stale_seconds:
        store.fail_task(
            task.id,
            f"its worker ({task.worker}) stopped while it ran (no sign of life for "
            f"{silent:.0f} s); submit the job again",
        )
        finish_job_if_done(store, task.job_id, settings.data_dir)


def _run_claimed(store: JobStore, task_id: str, settings: Settings) -> None:
    os.environ[TASK_MARKER] = task_id
    try:
        _run_marked(store, task_id, settings)
    finally:
        os.environ.pop(TASK_MARKER, None)
        kill_task_processes(task_id)  # however it ended: nothing it started outlives it


def kill_task_processes(task_id: str) -> list[int]:
    """SIGKILL every process of this task (found by TASK_MARKER in its environment) but the calling one."""
    marker = f"{TASK_MARKER}={task_id}".encode()
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            os.kill(int(entry.name), signal.SIGKILL)
        except OSError:  # gone meanwhile, or not ours to read
            continue
        killed.append(int(entry.name))
    return killed


def _run_marked(store: JobStore, task_id: str, settings: Settings) -> None:
    task = store.get_task(task_id)
    job = store.get_job(task.job_id)
    beat = _Heartbeat(store, task_id, settings.heartbeat_seconds)
    beat.start()
    run_dir = settings.data_dir / job.run_dir
    if datasets.is_dataset_run(run_dir):
        _run_dataset_task(store, task, run_dir, beat)
        return
    progress = _progress_sink(store, task_id, beat)
    outcome = _ran(
        store,
        task,
        beat,
        lambda: pipeline.run_planned_backend(pipeline.load_plan(run_dir), task.backend, progress=progress),
    )
    if outcome is None:
        return
    store.finish_task(
        task_id,
        TaskState.SUCCEEDED if outcome.ok else TaskState.FAILED,
        error=outcome.error,
        outcome_json=pipeline.outcome_to_json(outcome),
        artefacts=artefacts_of(settings.data_dir / job.run_dir, task.backend) if outcome.ok else None,
        fit_seconds=outcome.fit_seconds,
        sample_seconds=outcome.sample_seconds,
    )


def _ran(store: JobStore, task, beat: _Heartbeat, run: Callable[[], T]) -> T | None:
    """`run`'s outcome, or None when the task was cancelled or failed (a failure stored with its reason)."""
    try:
        outcome = run()
    except TaskCancelled:
        return None
    except Exception as exc:  # any error ends the task failed with its reason, never stuck
        log.exception("task %s (%s) failed", task.id, task.backend)
        store.finish_task(task.id, TaskState.FAILED, error=f"{type(exc).__name__}: {exc}")
        return None
    finally:
        beat.stop()
    return None if beat.cancelled else outcome


def _run_dataset_task(store: JobStore, task, run_dir: Path, beat: _Heartbeat) -> None:
    """One dataset backend of a job: fit, stream every table, evaluate; a failure ends the task with its reason."""
    progress = _progress_sink(store, task.id, beat)
    outcome = _ran(
        store,
        task,
        beat,
        lambda: datasets.run_planned_dataset_backend(datasets.load_dataset_plan(run_dir), task.backend, progress),
    )
    if outcome is None:
        return
    store.finish_task(
        task.id,
        TaskState.SUCCEEDED,
        outcome_json=datasets.dataset_outcome_to_json(outcome),
        artefacts=dataset_artefacts(run_dir, outcome),
        fit_seconds=outcome.fit.seconds,
        sample_seconds=(outcome.times["sample_end"] - outcome.times["sample_start"]).total_seconds(),
    )


def dataset_artefacts(run_dir: Path, outcome: datasets.DatasetOutcome) -> dict[str, str]:
    """The downloadable files of one dataset backend's result (report, metrics, each table), relative to the run."""
    found = {"metrics": outcome.files[next(iter(outcome.files))].parent / "metrics.json"}
    found |= {"report": outcome.report} if outcome.report else {}
    found |= {table_artefact(table): path for table, path in outcome.files.items()}
    return {name: str(Path(path).relative_to(run_dir)) for name, path in found.items()}


def table_artefact(table: str) -> str:
    """The artefact name of one synthetic table of a dataset backend's result."""
    return f"table:{table}"


def _progress_sink(store: JobStore, task_id: str, beat: _Heartbeat):
    last = {"stage": None, "at": 0.0}

    def sink(event: Progress) -> None:
        if beat.cancelled:
            raise TaskCancelled()
        moment = time.monotonic()
        if event.stage == last["stage"] and moment - last["at"] < PROGRESS_INTERVAL and event.step != event.total:
            return
        last.update(stage=event.stage, at=moment)
        if not store.record_progress(task_id, event):
            beat.cancelled = True
            raise TaskCancelled()

    return sink


class _Heartbeat(threading.Thread):
    """Writes a sign of life every few seconds and notices when the task was cancelled."""

    def __init__(self, store: JobStore, task_id: str, seconds: float):
        super().__init__(daemon=True, name=f"heartbeat-{task_id}")
        self.store, self.task_id, self.seconds = store, task_id, seconds
        self.cancelled = False
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                if not self.store.heartbeat(self.task_id):
                    self.cancelled = True
                    kill_task_processes(self.task_id)  # cancelled or timed out elsewhere: its helpers stop now
                    return
            except Exception:  # a store hiccup must not kill the task; the next beat retries
                log.warning("heartbeat of task %s failed", self.task_id, exc_info=True)

    def stop(self) -> None:
        self._stop.set()


def artefacts_of(run_dir: Path, backend: str) -> dict[str, str]:
    """The downloadable files of one backend's result, relative to the run directory."""
    base = run_dir / backend
    found = {
        "report": base / "evaluation" / "report.html",
        "metrics": base / "evaluation" / "metrics.json",
        "data_dictionary": base / "data" / "data-dictionary.csv",
        "config": base / "config" / "generation.json",
    }
    for data in sorted((base / "data").glob("synthetic.*")):
        found["synthetic"] = data
    return {name: str(path.relative_to(run_dir)) for name, path in found.items() if path.is_file()}


def finish_job_if_done(store: JobStore, job_id: str, data_dir: Path) -> JobState | None:
    """When every task of the job has ended, exactly one caller packages crates and writes the comparison."""
    if not store.claim_finish(job_id):
        return None
    job = store.get_job(job_id)
    pipeline.remove_partial(data_dir / job.run_dir)  # what cancelled, failed or killed tasks left half written
    error = None
    try:
        if datasets.is_dataset_run(data_dir / job.run_dir):
            _finish_dataset_job(store, job, data_dir / job.run_dir)
            return store.complete_job(job_id)
        outcomes = [pipeline.outcome_from_json(t.outcome_json) for t in job.tasks if t.outcome_json]
        if outcomes:
            run_dir = data_dir / job.run_dir
            request = GenerationRequest.model_validate_json(job.request_json)
            if any(t.state == TaskState.CANCELLED for t in job.tasks):
                request = request.model_copy(update={"package_crates": False})  # a cancelled run is not released
            schema = TableSchema.from_json((run_dir / "schema.json").read_text())
            context = json.loads((run_dir / "request.json").read_text())
            result = pipeline.finish_run(request, run_dir, schema, context, outcomes)
            _record_crates(store, job, result)
    except Exception as exc:  # the job must end, with the reason, even when finishing fails
        log.exception("finishing job %s failed", job_id)
        error = f"finishing the run failed: {type(exc).__name__}: {exc}"
    return store.complete_job(job_id, error=error)


def _finish_dataset_job(store: JobStore, job, run_dir: Path) -> None:
    """The dataset job's comparison and, when its request gave crate metadata and nothing was cancelled, crates."""
    plan = datasets.load_dataset_plan(run_dir, tables=False)
    succeeded = [t for t in job.tasks if t.state == TaskState.SUCCEEDED and t.outcome_json]
    outcomes = [datasets.dataset_outcome_from_json(t.outcome_json) for t in succeeded]
    failed = {t.backend: t.error or str(t.state) for t in job.tasks if t.state != TaskState.SUCCEEDED}
    cancelled = any(t.state == TaskState.CANCELLED for t in job.tasks)  # a cancelled run is not released
    crate = None
    if plan.request.crate is not None and not cancelled:
        crate = crate_info_from(plan.request.crate, plan.context["source"]["name"], what=datasets.CRATE_WHAT)
    result = datasets.finish_dataset_run(plan, outcomes, crate, failed)
    record_dataset_crates(store, job, run_dir, result.crates)


def record_dataset_crates(store: JobStore, job, run_dir: Path, crates: dict[str, Path]) -> None:
    """Add each packaged crate zip to its task's artefacts."""
    for task in job.tasks:
        if task.backend in crates:
            crate = str(crates[task.backend].relative_to(run_dir))
            store.set_artefacts(task.id, {**store.get_task(task.id).artefacts, "crate": crate})


def _record_crates(store: JobStore, job, result: pipeline.RunResult) -> None:
    for task in job.tasks:
        outcome = next((o for o in result.outcomes if o.backend == task.backend), None)
        if outcome is None or not task.artefacts:
            continue
        artefacts = dict(task.artefacts)
        if outcome.crate:
            artefacts["crate"] = str(Path(outcome.crate).relative_to(result.directory))
        store.set_artefacts(task.id, artefacts, outcome_json=pipeline.outcome_to_json(outcome))


def main(argv: list[str] | None = None) -> int:
    """Entry point of a local task process: `python -m fairsynth.services.jobs.tasks TASK_ID`."""
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    claimed = "--claimed" in argv
    task_id = next(a for a in argv if not a.startswith("--"))
    state = execute_task(task_id, claimed=claimed)
    return 0 if state in TERMINAL else 1


if __name__ == "__main__":
    sys.exit(main())
