"""Job store and local executor: transitions, cancel kills the process tree, crashes and restarts end tasks."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from fairsynth.services.jobs.executors import LocalExecutor, create_job, run_job
from fairsynth.services.jobs.store import TERMINAL, JobStore
from fairsynth.services.run.config import BackendSpec, GenerationRequest
from fairsynth.services.settings import Settings

from helpers import alive, wait_for, wait_for_file

HOOKS = Path(__file__).parent / "task_hooks"
TWO = [BackendSpec(name="marginals"), BackendSpec(name="sdv.gaussian_copula")]


@pytest.fixture
def settings(tmp_path) -> Settings:
    """Settings on a fresh data directory with a SQLite store."""
    return Settings.from_env({"FAIRSYNTH_DATA_DIR": str(tmp_path / "data"), "FAIRSYNTH_WORKERS": "2"})


@pytest.fixture
def store(settings):
    """A migrated SQLite job store."""
    store = JobStore(settings.database_url)
    yield store
    store.close()


@pytest.fixture
def hook(monkeypatch, tmp_path):
    """Load the task-process hook; returns a function that sets its mode and the file it writes pids to."""
    monkeypatch.setenv("PYTHONPATH", f"{HOOKS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    pids = tmp_path / "pids"
    monkeypatch.setenv("FAIRSYNTH_TEST_PIDS", str(pids))

    def set_mode(mode: str) -> Path:
        monkeypatch.setenv("FAIRSYNTH_TEST_HOOK", mode)
        return pids

    return set_mode


def request(backends=TWO, **extra) -> GenerationRequest:
    """A small, fast request on the demo table."""
    return GenerationRequest(backends=backends, rows=300, anonymeter=False, evaluation_rows=300, **extra)


def hung_fit_pids(pids: Path) -> tuple[int, int]:
    """The task process's and its child's pids, once the hung fit has written them."""
    task_pid, child_pid = map(int, wait_for_file(pids, 60, message="the hung fit did not start").split())
    return task_pid, child_pid


def wait_for_end(store: JobStore, job_id: str):
    """The job once it has ended (within 120 s)."""
    return wait_for(lambda: (j := store.get_job(job_id)).state in TERMINAL and j, 120, message="the job did not end")


def test_store_transitions_are_won_once(store):
    job = store.create_job(
        request_json=request().model_dump_json(),
        run_dir="runs/x",
        executor="local",
        backends=[("marginals", "basic"), ("sdv.gaussian_copula", "sdv")],
    )
    first, second = job.tasks
    assert [t.state for t in job.tasks] == ["queued", "queued"] and job.state == "queued"
    assert store.claim(first.id, worker="a", pid=1) and not store.claim(first.id, worker="b", pid=2)
    assert store.get_job(job.id).state == "running"
    assert not store.claim_finish(job.id)  # tasks still open
    cancelled_running = store.cancel_job(job.id)
    assert [t.id for t in cancelled_running] == [first.id]
    assert not store.finish_task(first.id, "succeeded")  # a cancelled task never turns into a succeeded one
    assert store.get_task(second.id).state == "cancelled"
    assert store.claim_finish(job.id) and not store.claim_finish(job.id)
    assert store.complete_job(job.id) == "cancelled"


def test_store_reopens_on_sqlite_in_wal_mode(settings, store):
    store.create_job(request_json="{}", run_dir="runs/y", executor="local", backends=[("marginals", "basic")])
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    again = JobStore(settings.database_url)  # migrations are idempotent
    assert len(again.list_jobs()) == 1
    again.close()


def test_a_bad_request_is_refused_before_anything_is_queued(store, settings):
    with pytest.raises(Exception, match="no-such-backend"):
        create_job(store, settings, request([BackendSpec(name="no-such-backend")]), executor="local")
    assert store.list_jobs() == []


@pytest.mark.slow
def test_cancel_kills_the_process_tree(store, settings, hook):
    pids = hook("hang")
    executor = LocalExecutor(store, settings)
    executor.start()
    try:
        job = create_job(store, settings, request([BackendSpec(name="marginals")]), executor="local")
        task_pid, child_pid = hung_fit_pids(pids)
        assert alive(task_pid) and alive(child_pid)
        ended = executor.cancel(job.id)
        assert ended.state == "cancelled" and ended.tasks[0].state == "cancelled"
        wait_for(lambda: not alive(task_pid) and not alive(child_pid), 10, message="the process tree lives on")
        wait_for(lambda: executor.processes == {}, 5, message="the executor did not reap it")
        assert store.get_task(ended.tasks[0].id).error == "cancelled by the user"
    finally:
        executor.stop()


@pytest.mark.slow
def test_a_crashed_task_process_fails_its_task_with_the_reason_and_the_other_finishes(store, settings, hook):
    hook("crash")
    executor = LocalExecutor(store, settings)
    executor.start()
    try:
        job = create_job(store, settings, request(), executor="local")
        done = wait_for_end(store, job.id)
    finally:
        executor.stop()
    crashed, other = done.tasks
    assert done.state == "failed" and crashed.state == "failed" and "killed by SIGKILL" in crashed.error
    assert not list((settings.data_dir / done.run_dir).glob(".*.partial"))  # the killed task's half output
    assert other.state == "succeeded" and "synthetic" in other.artefacts
    comparison = (settings.data_dir / done.run_dir / "comparison.csv").read_text()
    assert "sdv.gaussian_copula" in comparison


@pytest.mark.slow
def test_restart_fails_orphaned_tasks_and_runs_the_queued_ones(store, settings, hook):
    pids = hook("hang")
    one_at_a_time = settings.with_(workers=1)
    first = LocalExecutor(store, one_at_a_time)
    first.start()
    job = create_job(store, settings, request(), executor="local")
    task_pid, child_pid = hung_fit_pids(pids)
    first._stopping.set()  # the service dies without cleaning up: its task process lives on as an orphan
    first._thread.join()
    assert store.get_job(job.id).tasks[1].state == "queued"

    second = LocalExecutor(store, one_at_a_time)
    second.start()
    try:
        wait_for(lambda: not alive(task_pid) and not alive(child_pid), 10, message="the orphan was not killed")
        hung = store.get_job(job.id).tasks[0]
        assert hung.state == "failed" and "stopped while it ran" in hung.error
        done = wait_for_end(store, job.id)
    finally:
        second.stop()
    assert [t.state for t in done.tasks] == ["failed", "succeeded"]
    assert done.state == "failed"  # not every backend succeeded; the other one's results are there
    assert "synthetic" in done.tasks[1].artefacts
    assert (settings.data_dir / done.run_dir / "comparison.csv").is_file()
    assert not (settings.data_dir / done.run_dir / ".marginals.partial").exists()  # recovery removed it


@pytest.mark.slow
def test_run_job_is_the_commands_path_with_relayed_progress(settings, tmp_path):
    events = []
    out = tmp_path / "my-run"
    result = run_job(request(output_dir=str(out)), settings, progress=events.append)
    assert result.directory == out.resolve()
    assert [o.backend for o in result.outcomes] == ["marginals", "sdv.gaussian_copula"]
    assert all(o.ok and o.rows == 300 for o in result.outcomes)
    assert (out / "comparison.csv").is_file() and (out / "marginals" / "data" / "synthetic.csv").is_file()
    assert {e.backend for e in events} == {"marginals", "sdv.gaussian_copula"}  # polled: short stages may be skipped
    assert all(e.stage in ("fit", "sample", "evaluate", "crate") for e in events)
    job = JobStore(settings.database_url).list_jobs()[0]
    assert job.executor == "cli" and job.state == "succeeded"
    assert list(result.comparison()["status"]) == ["ok", "ok"]


def test_recovery_finishes_a_job_whose_tasks_ended_but_nobody_finished_it(store, settings):
    job = store.create_job(
        request_json=request().model_dump_json(), run_dir="runs/z", executor="local", backends=[("marginals", "basic")]
    )
    store.claim(job.tasks[0].id, worker="gone", pid=None)
    store.finish_task(job.tasks[0].id, "failed", error="boom")  # then the process died before finishing the job
    assert store.get_job(job.id).state == "running"
    executor = LocalExecutor(store, settings)
    executor.start()
    executor.stop()
    assert store.get_job(job.id).state == "failed"


def test_a_starting_command_leaves_the_jobs_of_another_running_command_alone(store, settings):
    """Two `fairsynth generate` commands on one store: the second's recovery must not touch the first's job."""
    alive_command = f"local:{socket.gethostname()}:{os.getpid()}"  # this test process stands in for command one
    claimed = store.create_job(
        request_json=request().model_dump_json(), run_dir="runs/a", executor="cli", backends=[("marginals", "basic")]
    )
    store.claim(claimed.tasks[0].id, worker=alive_command, pid=None)  # claimed, its process not started yet
    finishing = store.create_job(
        request_json=request().model_dump_json(), run_dir="runs/b", executor="cli", backends=[("marginals", "basic")]
    )
    store.claim(finishing.tasks[0].id, worker=alive_command, pid=None)
    store.finish_task(finishing.tasks[0].id, "succeeded")
    assert store.claim_finish(finishing.id)  # command one is packaging this job right now
    gone = store.create_job(
        request_json=request().model_dump_json(), run_dir="runs/c", executor="cli", backends=[("marginals", "basic")]
    )
    store.claim(gone.tasks[0].id, worker=f"local:{socket.gethostname()}:{2**22 + 7}", pid=None)  # no such process
    second = LocalExecutor(store, settings, kind="cli", job_id="another-command's-job")
    second.start()
    second.stop()
    assert store.get_job(claimed.id).tasks[0].state == "running"
    assert store.get_job(finishing.id).state == "finishing"
    assert store.get_job(gone.id).tasks[0].state == "failed"  # its command is gone: recovered as before


def test_the_migrations_build_exactly_the_models_tables(store):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from fairsynth.services.jobs.store import Base

    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def task_processes_left(task_id: str) -> list[int]:
    """Live processes still carrying the task's marker (what the task started, wherever it was re-parented)."""
    marker = f"FAIRSYNTH_TASK_ID={task_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if (
                entry.name.isdigit()
                and marker in (entry / "environ").read_bytes().split(b"\0")
                and alive(int(entry.name))
            ):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_cancel_kills_processes_that_left_the_process_group_and_the_partial_output(store, settings, hook):
    pids = hook("orphan")  # like loky's workers: a child beyond the task's process group
    executor = LocalExecutor(store, settings)
    executor.start()
    try:
        job = create_job(store, settings, request([BackendSpec(name="marginals")]), executor="local")
        task_pid, child_pid = hung_fit_pids(pids)
        assert (settings.data_dir / job.run_dir / ".marginals.partial").is_dir()
        executor.cancel(job.id)
        wait_for(lambda: not alive(task_pid) and not alive(child_pid), 10, message="the process tree lives on")
        assert task_processes_left(job.tasks[0].id) == []
        assert not (settings.data_dir / job.run_dir / ".marginals.partial").exists()
    finally:
        executor.stop()


@pytest.mark.slow
def test_a_failed_task_leaves_no_process_behind(store, settings, hook):
    pids = hook("fail")
    executor = LocalExecutor(store, settings)
    executor.start()
    try:
        job = create_job(store, settings, request([BackendSpec(name="marginals")]), executor="local")
        done = wait_for_end(store, job.id)
    finally:
        executor.stop()
    _, child_pid = hung_fit_pids(pids)
    assert done.state == "failed" and "injected failure" in done.tasks[0].error
    assert not alive(child_pid) and task_processes_left(job.tasks[0].id) == []
    assert not list((settings.data_dir / job.run_dir).glob(".*.partial"))
