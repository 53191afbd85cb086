"""Job store: datasets, jobs (one per run) and tasks (one per backend) in SQLite or PostgreSQL.

Every state change is one conditional UPDATE (`... WHERE state = 'running'`), so an executor, a worker and
the API racing on the same task cannot both win: a cancelled task never turns into a succeeded one.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import overload

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    create_engine,
    delete,
    event,
    exists,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload, sessionmaker
from sqlalchemy.types import TypeDecorator

from fairsynth.backends.base import Progress
from fairsynth.errors import FairsynthError


class TaskState(StrEnum):
    """Where one backend's task is; the values are the strings the store and the API hold."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobState(StrEnum):
    """Where a job is: its tasks' states, and finishing while crates and the comparison are written."""

    QUEUED = "queued"
    RUNNING = "running"
    FINISHING = "finishing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: the states that never change again, of a task or a job (a member equals its string, so both enums match)
TERMINAL: frozenset[str] = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED})
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class JobStoreError(FairsynthError):
    """A dataset, job or task that does not exist was asked for."""


class StateText(TypeDecorator):
    """A state enum stored as its plain string (String(16), as the migrations made it) and read back as the enum."""

    impl = String(16)
    cache_ok = True

    def __init__(self, states: type[StrEnum]):
        super().__init__()
        self.states = states

    def process_bind_param(self, value, dialect) -> str | None:
        return None if value is None else self.states(value).value  # an unknown state never reaches the database

    def process_result_value(self, value, dialect) -> StrEnum | None:
        return None if value is None else self.states(value)


class Base(DeclarativeBase):
    """Declarative base of the job store's tables."""


class Dataset(Base):
    """An uploaded table and its (editable) schema."""

    __tablename__ = "datasets"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))  # the upload's name, for display only: never a path
    path: Mapped[str] = mapped_column(String(1024))  # relative to the data directory, chosen by the server
    format: Mapped[str] = mapped_column(String(16))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(Integer)
    columns: Mapped[int] = mapped_column(Integer)
    schema_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Job(Base):
    """One run of a GenerationRequest: one task per backend, then crates and the comparison."""

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    dataset_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.id"), nullable=True)
    request_json: Mapped[str] = mapped_column(Text)
    run_dir: Mapped[str] = mapped_column(String(1024))
    executor: Mapped[str] = mapped_column(String(16))
    state: Mapped[JobState] = mapped_column(StateText(JobState), index=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True, unique=True, index=True)
    submission_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)  # what the key was sent with
    tasks: Mapped[list[Task]] = relationship(order_by="Task.position", back_populates="job")

    @property
    def request(self) -> dict:
        """The GenerationRequest as a dict."""
        return json.loads(self.request_json)


class Task(Base):
    """One backend of a job: its state, progress, timings, error and artefacts."""

    __tablename__ = "tasks"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    backend: Mapped[str] = mapped_column(String(128))
    family: Mapped[str] = mapped_column(String(32))
    state: Mapped[TaskState] = mapped_column(StateText(TaskState), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(255), nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    stage: Mapped[str | None] = mapped_column(String(16), nullable=True)
    step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    epoch: Mapped[int | None] = mapped_column(Integer, nullable=True)
    loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    rows_written: Mapped[int] = mapped_column(BigInteger, default=0)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    fit_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    sample_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    artefacts_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    outcome_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    job: Mapped[Job] = relationship(back_populates="tasks")

    @property
    def artefacts(self) -> dict[str, str]:
        """Artefact name -> path relative to the job's run directory."""
        return json.loads(self.artefacts_json) if self.artefacts_json else {}


def make_engine(url: str) -> Engine:
    """An engine for the store; SQLite gets WAL, a busy timeout and foreign keys on every connection."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")  # psycopg 3, not psycopg2
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def migrate(engine: Engine) -> None:
    """Bring the database schema to the newest Alembic revision shipped in services/migrations."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def now() -> datetime:
    """The current UTC time."""
    return datetime.now(UTC)


@overload
def utc(value: datetime) -> datetime: ...
@overload
def utc(value: None) -> None: ...
def utc(value: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite returns naive ones)."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def new_id() -> str:
    """A random identifier (hex, 32 characters)."""
    return uuid.uuid4().hex


class JobStore:
    """Datasets, jobs and tasks, shared by the API, the executors and the workers."""

    def __init__(self, url: str, *, run_migrations: bool = True):
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.engine = make_engine(url)
        if run_migrations:
            migrate(self.engine)
        self.session = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        """Release the store's connections."""
        self.engine.dispose()

    # -- datasets ---------------------------------------------------------------------------------
    def add_dataset(self, dataset: Dataset) -> Dataset:
        """Store a new dataset."""
        with self.session.begin() as session:
            session.add(dataset)
        return dataset

    def get_dataset(self, dataset_id: str) -> Dataset:
        """One dataset, or JobStoreError."""
        with self.session() as session:
            found = session.get(Dataset, dataset_id)
        if found is None:
            raise JobStoreError(f"There is no dataset '{dataset_id}'; list them with GET /datasets.")
        return found

    def list_datasets(self) -> list[Dataset]:
        """Every dataset, newest first."""
        with self.session() as session:
            return list(session.scalars(select(Dataset).order_by(Dataset.created_at.desc())))

    def set_schema(self, dataset_id: str, schema_json: str) -> None:
        """Replace a dataset's schema."""
        self.get_dataset(dataset_id)
        with self.session.begin() as session:
            session.execute(update(Dataset).where(Dataset.id == dataset_id).values(schema_json=schema_json))

    # -- jobs -------------------------------------------------------------------------------------
    def create_job(
        self,
        *,
        request_json: str,
        run_dir: str,
        executor: str,
        backends: list[tuple[str, str]],
        dataset_id: str | None = None,
        job_id: str | None = None,
        idempotency: tuple[str, str] | None = None,
    ) -> Job:
        """A queued job with one queued task per (backend, family); `idempotency`: (key, submission fingerprint).

        A key already taken raises IntegrityError: the caller answers with the job that holds it.
        """
        created = now()
        job = Job(
            id=job_id or new_id(),
            dataset_id=dataset_id,
            request_json=request_json,
            run_dir=run_dir,
            executor=executor,
            state=JobState.QUEUED,
            created_at=created,
            idempotency_key=idempotency[0] if idempotency else None,
            submission_sha256=idempotency[1] if idempotency else None,
        )
        job.tasks = [
            Task(
                id=new_id(),
                position=i,
                backend=name,
                family=family,
                state=TaskState.QUEUED,
                attempts=0,
                rows_written=0,
                created_at=created,
            )
            for i, (name, family) in enumerate(backends)
        ]
        with self.session.begin() as session:
            session.add(job)
        return self.get_job(job.id)

    def get_job(self, job_id: str) -> Job:
        """One job with its tasks, or JobStoreError."""
        with self.session() as session:
            found = session.scalars(select(Job).where(Job.id == job_id).options(selectinload(Job.tasks))).first()
        if found is None:
            raise JobStoreError(f"There is no job '{job_id}'; list them with GET /jobs.")
        return found

    def job_by_key(self, key: str) -> Job | None:
        """The job submitted with this Idempotency-Key, if any."""
        with self.session() as session:
            found = session.scalar(select(Job.id).where(Job.idempotency_key == key))
        return self.get_job(found) if found else None

    def release_key(self, job_id: str) -> None:
        """Forget a job's Idempotency-Key (its submission failed), so a retry with the key submits again."""
        with self.session.begin() as session:
            session.execute(update(Job).where(Job.id == job_id).values(idempotency_key=None))

    def list_jobs(self, limit: int = 50, offset: int = 0, state: JobState | None = None) -> list[Job]:
        """Jobs with their tasks, newest first."""
        query = select(Job).options(selectinload(Job.tasks)).order_by(Job.created_at.desc(), Job.id)
        if state:
            query = query.where(Job.state == state)
        with self.session() as session:
            return list(session.scalars(query.limit(limit).offset(offset)))

    def delete_job(self, job_id: str) -> None:
        """Forget a job and its tasks (its run directory is the caller's to remove)."""
        with self.session.begin() as session:
            session.execute(delete(Task).where(Task.job_id == job_id))
            session.execute(delete(Job).where(Job.id == job_id))

    def get_task(self, task_id: str) -> Task:
        """One task, or JobStoreError."""
        with self.session() as session:
            found = session.get(Task, task_id)
        if found is None:
            raise JobStoreError(f"There is no task '{task_id}'.")
        return found

    def queued_tasks(self, limit: int, executor: str | None = None, job_id: str | None = None) -> list[Task]:
        """The oldest queued tasks (first come, first served), of one executor kind or one job."""
        query = select(Task).join(Job).where(Task.state == TaskState.QUEUED).order_by(Task.created_at, Task.position)
        if executor:
            query = query.where(Job.executor == executor)
        if job_id:
            query = query.where(Task.job_id == job_id)
        with self.session() as session:
            return list(session.scalars(query.limit(limit)))

    def running_tasks(self, executor: str | None = None) -> list[Task]:
        """Every task in the running state."""
        query = select(Task).join(Job).where(Task.state == TaskState.RUNNING)
        if executor:
            query = query.where(Job.executor == executor)
        with self.session() as session:
            return list(session.scalars(query))

    # -- task transitions -------------------------------------------------------------------------
    def claim(self, task_id: str, *, worker: str, pid: int | None) -> bool:
        """queued -> running for exactly one claimant; marks the job running."""
        moment = now()
        with self.session.begin() as session:
            claimed = (
                session.execute(
                    update(Task)
                    .where(Task.id == task_id, Task.state == TaskState.QUEUED)
                    .values(
                        state=TaskState.RUNNING,
                        worker=worker,
                        pid=pid,
                        started_at=moment,
                        heartbeat_at=moment,
                        attempts=Task.attempts + 1,
                    )
                ).rowcount
                == 1
            )
            if claimed:
                job_id = session.scalar(select(Task.job_id).where(Task.id == task_id))
                session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.state == JobState.QUEUED)
                    .values(state=JobState.RUNNING, started_at=moment)
                )
        return claimed

    def set_pid(self, task_id: str, pid: int, worker: str) -> None:
        """Record the process that runs a task (for cancel and recovery)."""
        with self.session.begin() as session:
            session.execute(update(Task).where(Task.id == task_id).values(pid=pid, worker=worker))

    def record_progress(self, task_id: str, event: Progress) -> bool:
        """Write one progress event; False when the task is no longer running (cancelled or failed)."""
        values: dict = {
            "stage": event.stage,
            "step": event.step,
            "total": event.total,
            "message": event.message or None,
            "heartbeat_at": now(),
        }
        if event.stage == "fit":
            values.update(epoch=event.step, loss=event.loss)
        elif event.stage == "sample":
            values["rows_written"] = event.step
        return self._update_running(task_id, values)

    def heartbeat(self, task_id: str) -> bool:
        """Show the task's process is alive; False when the task is no longer running."""
        return self._update_running(task_id, {"heartbeat_at": now()})

    def finish_task(
        self,
        task_id: str,
        state: TaskState,
        *,
        error: str | None = None,
        outcome_json: str | None = None,
        artefacts: dict[str, str] | None = None,
        fit_seconds: float | None = None,
        sample_seconds: float | None = None,
    ) -> bool:
        """running -> succeeded / failed / cancelled; False when someone else ended it first."""
        values = {
            "state": state,
            "finished_at": now(),
            "error": error,
            "outcome_json": outcome_json,
            "fit_seconds": fit_seconds,
            "sample_seconds": sample_seconds,
            "artefacts_json": json.dumps(artefacts) if artefacts is not None else None,
        }
        return self._update_running(task_id, values)

    def set_artefacts(self, task_id: str, artefacts: dict[str, str], outcome_json: str | None = None) -> None:
        """Replace an ended task's artefact paths (and outcome) once its job is finished."""
        values = {"artefacts_json": json.dumps(artefacts)}
        if outcome_json is not None:
            values["outcome_json"] = outcome_json
        with self.session.begin() as session:
            session.execute(update(Task).where(Task.id == task_id).values(**values))

    def fail_task(self, task_id: str, reason: str, *, states: tuple[TaskState, ...] = (TaskState.RUNNING,)) -> bool:
        """Mark a task failed with a reason, if it is in one of `states`."""
        with self.session.begin() as session:
            return (
                session.execute(
                    update(Task)
                    .where(Task.id == task_id, Task.state.in_(states))
                    .values(state=TaskState.FAILED, error=reason, finished_at=now())
                ).rowcount
                == 1
            )

    def cancel_job(self, job_id: str) -> list[Task]:
        """Cancel every task not yet ended; returns those that were running (their processes must be stopped)."""
        self.get_job(job_id)
        with self.session.begin() as session:
            running = list(session.scalars(select(Task).where(Task.job_id == job_id, Task.state == TaskState.RUNNING)))
            session.execute(
                update(Task)
                .where(Task.job_id == job_id, Task.state.in_((TaskState.QUEUED, TaskState.RUNNING)))
                .values(state=TaskState.CANCELLED, finished_at=now(), error="cancelled by the user")
            )
        return running

    def fail_stale(self, older_than_seconds: float, executor: str | None = None) -> list[Task]:
        """Fail running tasks whose process has not shown a sign of life for a while."""
        limit = now() - timedelta(seconds=older_than_seconds)
        failed = []
        for task in self.running_tasks(executor):
            if (
                task.heartbeat_at is not None
                and utc(task.heartbeat_at) < limit
                and self.fail_task(
                    task.id,
                    f"no sign of life from its worker ({task.worker}) for "
                    f"{older_than_seconds:.0f} s: the process running it stopped",
                )
            ):
                failed.append(task)
        return failed

    # -- job completion ---------------------------------------------------------------------------
    def unfinished_jobs(self, executor: str | None = None) -> list[str]:
        """Jobs left half finished by a process that stopped while packaging them."""
        query = select(Job.id).where(Job.state == JobState.FINISHING)
        with self.session() as session:
            return list(session.scalars(query.where(Job.executor == executor) if executor else query))

    def ended_but_open_jobs(self, executor: str | None = None) -> list[str]:
        """Jobs whose tasks all ended but that nobody finished (a process died in between)."""
        pending = exists().where(Task.job_id == Job.id, Task.state.not_in(TERMINAL))
        query = select(Job.id).where(Job.state.in_((JobState.QUEUED, JobState.RUNNING)), ~pending)
        with self.session() as session:
            return list(session.scalars(query.where(Job.executor == executor) if executor else query))

    def reopen_job(self, job_id: str) -> None:
        """Let a half-finished job be finished again."""
        with self.session.begin() as session:
            session.execute(
                update(Job).where(Job.id == job_id, Job.state == JobState.FINISHING).values(state=JobState.RUNNING)
            )

    def claim_finish(self, job_id: str) -> bool:
        """True for exactly one caller once every task of the job has ended: it then finishes the job."""
        pending = exists().where(Task.job_id == job_id, Task.state.not_in(TERMINAL))
        with self.session.begin() as session:
            return (
                session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.state.in_((JobState.QUEUED, JobState.RUNNING)), ~pending)
                    .values(state=JobState.FINISHING)
                ).rowcount
                == 1
            )

    def complete_job(self, job_id: str, *, error: str | None = None) -> JobState:
        """Set the job's final state from its tasks: succeeded only when every task did."""
        job = self.get_job(job_id)
        states = {t.state for t in job.tasks}
        if error or TaskState.FAILED in states:
            state = JobState.FAILED
        elif TaskState.CANCELLED in states:
            state = JobState.CANCELLED
        else:
            state = JobState.SUCCEEDED
        with self.session.begin() as session:
            session.execute(update(Job).where(Job.id == job_id).values(state=state, error=error, finished_at=now()))
        return state

    def _update_running(self, task_id: str, values: dict) -> bool:
        with self.session.begin() as session:
            return (
                session.execute(
                    update(Task).where(Task.id == task_id, Task.state == TaskState.RUNNING).values(**values)
                ).rowcount
                == 1
            )
