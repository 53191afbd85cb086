"""REST API (FastAPI): datasets, backends, jobs, progress, cancel and downloads; errors as RFC 9457 problems.

On loopback no token is needed; bound to any other address the server refuses to start without
FAIRSYNTH_API_TOKEN, and once a token is set every request must carry it as a bearer token, except the health
probe and the API's description (/docs, /openapi.json), which hold no data.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from fastapi import Depends, FastAPI, File, Form, Header, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from fairsynth.errors import ControlFlow, FairsynthError, field_problems
from fairsynth.metadata.dataset import DatasetSchema
from fairsynth.metadata.schema import SchemaError, TableSchema
from fairsynth.services.entry import workspace
from fairsynth.services.entry.catalog import backend_catalog
from fairsynth.services.entry.workspace import Workspace, register_dataset, save_schema, too_large_message
from fairsynth.services.jobs.executors import (
    BrokerUnavailable,
    Executor,
    create_dataset_job,
    create_job,
    make_executor,
)
from fairsynth.services.jobs.store import (
    TERMINAL,
    Dataset,
    Job,
    JobState,
    JobStore,
    JobStoreError,
    Task,
    TaskState,
    new_id,
    utc,
)
from fairsynth.services.jobs.tasks import table_artefact
from fairsynth.services.run import datasets
from fairsynth.services.run.config import BackendSpec, SchemaOverrides, parse_request
from fairsynth.services.run.evaluation.frames import QUALITY_ROWS
from fairsynth.services.run.evaluation.gate import ReleasePolicy
from fairsynth.services.run.tables import FORM_FIELDS, InputError, stored_name
from fairsynth.services.settings import Settings, SettingsError

log = logging.getLogger("fairsynth.api")
PROBLEM = "application/problem+json"
CHUNK = 1 << 20
HEALTH = "/health"  # without a token: container probes; it tells nothing but "up"
# The OpenAPI description of the bearer token: the docs page's Authorize button sends it; the middleware checks it
BEARER = HTTPBearer(auto_error=False, description="the server's FAIRSYNTH_API_TOKEN")
MULTIPART_SLACK = 64 * 1024  # multipart headers and boundaries around the file
CSV_TYPES = {"text/csv", "application/csv", "text/plain", "application/vnd.ms-excel", "text/tab-separated-values"}
PARQUET_TYPES = {"application/vnd.apache.parquet", "application/x-parquet", "application/parquet"}
ANY_TYPES = {"", "application/octet-stream"}
COMPRESSED_TYPES = {
    "application/gzip",
    "application/x-gzip",
    "application/x-bzip2",
    "application/x-xz",
    "application/zip",
    "application/x-zip-compressed",
}
# The HTTP status of each user error, found along its class hierarchy: an unknown id is not found; any other
# FairsynthError is a request that cannot be used as given. An ApiProblem carries its own status.
STATUS: dict[type[FairsynthError], int] = {JobStoreError: 404, BrokerUnavailable: 503, FairsynthError: 422}
SERVER_PATHS = ("input_path", "input_paths", "output_dir")  # request fields that name server files: never in a response
TITLES = {413: "Content Too Large", 422: "Unprocessable Content"}  # RFC 9110 names newer than Python 3.11's
Responses = dict[int | str, dict[str, Any]]  # FastAPI's extra OpenAPI responses per status


class ApiProblem(FairsynthError):
    """A user error only the API raises, answered with its own HTTP status (too large, wrong type, conflict...)."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status


# -- typed models ---------------------------------------------------------------------------------
class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str = Field(description="every problem found, as one text")
    errors: list[str] = Field(default_factory=list, description="each problem found, one sentence each")
    instance: str | None = None


class DatasetOut(BaseModel):
    """An uploaded table, or a table set: several related tables (format "tables")."""

    id: str
    name: str = Field(description="the upload's file name, for display only")
    format: Literal["csv", "parquet", "tables"] = Field(description='"tables": several related tables')
    size_bytes: int
    rows: int = Field(description="rows; of a table set: subjects (the rows of its root table)")
    columns: int = Field(description="columns; of a table set: of all its tables")
    created_at: datetime
    tables: list[str] = Field(default_factory=list, description="a table set's tables, parents first")

    @field_validator("created_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return utc(value)


class BackendOut(BaseModel):
    """A declared backend, whether it can run here and why not, and whether it takes one table or a table set."""

    name: str
    available: bool
    reason: str | None = None
    takes: Literal["table", "tables"] = Field(
        "table", description='"table": one table; "tables": a table set (several related tables)'
    )
    fits: bool | None = Field(None, description="with ?dataset_id of a table set: whether it takes that set's shape")
    why_not: str | None = Field(None, description="why it does not fit or is not available here")
    capabilities: dict[str, Any] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="JSON Schema of the backend's parameters (each one's type, default, bounds and description); "
        "a job's backends[].params must satisfy it",
    )


class JobSubmission(BaseModel):
    """A generation run: a dataset (or the demo table) and several backends side by side.

    On a table set (several related tables) the backends are dataset backends that fit it (GET /backends?dataset_id=),
    `rows` is the number of synthetic subjects, and anonymeter, the second evaluator, the policy and the schema
    overrides (single-table options) do not apply; with package_crates and crate, the job ends with the crates.
    """

    model_config = ConfigDict(extra="forbid")
    dataset_id: str | None = Field(None, description="an uploaded dataset; omitted: the embedded demo table")
    backends: list[BackendSpec | str] = Field(..., min_length=1, examples=[["marginals", "sdv.gaussian_copula"]])
    rows: int | None = Field(
        None,
        ge=1,
        description="rows per backend (at most FAIRSYNTH_MAX_ROWS); default: as many as the training split; "
        "of a table set: synthetic subjects",
    )
    seed: int = Field(0, ge=0, le=2**32 - 1)
    holdout_share: float = Field(0.2, ge=0.05, le=0.5)
    output_format: Literal["csv", "parquet"] = "csv"
    batch_rows: int = Field(100_000, ge=1, le=10**8)
    evaluation_rows: int = Field(QUALITY_ROWS, ge=100, le=10**7)
    anonymeter: bool = True
    second_evaluator: bool = Field(
        False,
        description="also score quality with mostlyai-qa's accuracy (a second, independent evaluator) beside "
        "sdmetrics quality; needs the MOSTLY AI venv where the tasks run (without it, metrics.json says why it "
        "was skipped); see GET /backends for mostly.argn's availability",
    )
    package_crates: bool = False
    crate: dict[str, Any] | None = None
    policy: ReleasePolicy | None = None
    schema_overrides: SchemaOverrides | None = None


class TaskProgress(BaseModel):
    """Where a task is: stage, step of total, epoch and loss while fitting, rows written while sampling."""

    stage: str | None = None
    step: int | None = None
    total: int | None = None
    epoch: int | None = None
    loss: float | None = None
    rows_written: int = 0
    message: str | None = None


class TaskOut(BaseModel):
    """One backend of a job."""

    id: str
    backend: str
    family: str
    state: TaskState
    attempts: int
    worker: str | None = None
    progress: TaskProgress
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    fit_seconds: float | None = None
    sample_seconds: float | None = None
    error: str | None = None
    artefacts: list[str] = Field(
        default_factory=list, description="names to download from .../results/{backend}/{name}"
    )


class JobOut(BaseModel):
    """A run and its tasks."""

    id: str
    state: JobState
    dataset_id: str | None = None
    executor: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    request: dict[str, Any]
    tasks: list[TaskOut]


class Artefact(StrEnum):
    """What can be downloaded from one backend's result."""

    synthetic = "synthetic"
    report = "report"
    metrics = "metrics"
    crate = "crate"
    data_dictionary = "data_dictionary"
    config = "config"


MEDIA = {
    "report": "text/html",
    "metrics": "application/json",
    "crate": "application/zip",
    "data_dictionary": "text/csv",
    "config": "application/json",
}


class SplitRequest(BaseModel):
    """Split one long table into a table set: its subjects and their events."""

    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, description="the subject key column, repeated over a subject's rows")


# -- the app --------------------------------------------------------------------------------------
def create_app(settings: Settings | None = None) -> FastAPI:
    """The API on these settings: a job store, an executor started with the app and stopped with it."""
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        settings.ensure_dirs()
        store = JobStore(settings.database_url)
        executor = make_executor(store, settings)
        executor.start()
        app.state.store, app.state.executor = store, executor
        try:
            yield
        finally:
            executor.stop()
            store.close()

    app = FastAPI(
        title="fairsynth",
        version="0.1.0",
        lifespan=lifespan,
        description="Synthetic health tables from several generator backends side by side, measured "
        "and packaged as FAIR RO-Crates. Errors are RFC 9457 problem JSON.",
        responses={422: {"model": Problem, "description": "the request cannot be used as given"}},
        dependencies=[Depends(BEARER)],
    )
    app.state.settings = settings
    _add_security(app, settings)
    _add_error_handlers(app)
    _add_dataset_routes(app, settings)
    _add_job_routes(app, settings)
    return app


class _UploadTooLarge(ControlFlow):
    """Stops the app reading an upload's body; UploadLimit answers 413 itself."""


class UploadLimit:
    """Stop reading an upload's body once it passes the limit, even without a Content-Length (chunked)."""

    def __init__(self, app, limit: int, path: str = "/datasets"):
        self.app, self.limit, self.path = app, limit, path

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            return await self.app(scope, receive, send)
        received, exceeded = 0, False

        async def counted_receive():
            nonlocal received, exceeded
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                exceeded = True
                raise _UploadTooLarge()
            return message

        async def guarded_send(message):
            if not exceeded:  # whatever the app answers to the aborted body, the client gets the 413
                await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded:
            detail = _too_large_bytes(self.limit)
            body = (
                Problem(title=_title(413), status=413, detail=detail, errors=[detail], instance=scope["path"])
                .model_dump_json()
                .encode()
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [(b"content-type", PROBLEM.encode()), (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})


def _add_security(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(UploadLimit, limit=settings.max_upload_bytes + MULTIPART_SLACK)
    # the health probe and the API's own description (docs pages and their schema hold no data) need no token
    open_paths = {HEALTH, app.docs_url, app.openapi_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url} - {None}

    @app.middleware("http")
    async def bearer_token(request: Request, call_next):
        if (
            settings.api_token
            and request.url.path not in open_paths
            and not _token_ok(request.headers.get("authorization", ""), settings.api_token)
        ):
            return _problem(
                401,
                "Unauthorized",
                "This server needs a bearer token: send 'Authorization: Bearer <FAIRSYNTH_API_TOKEN>'.",
                request,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return await call_next(request)


def _token_ok(header: str, token: str) -> bool:
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FairsynthError)
    async def user_error(request: Request, exc: FairsynthError):
        status = _status(exc)
        return _problem(status, _title(status), str(exc), request, errors=exc.problems)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        problems = field_problems(exc.errors())
        return _problem(422, _title(422), " ".join(problems), request, errors=problems)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return _problem(exc.status_code, _title(exc.status_code), detail, request, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s", request.url.path)
        return _problem(
            500,
            "Internal Server Error",
            f"The server failed unexpectedly ({type(exc).__name__}); the error is in its log.",
            request,
        )


def _status(exc: FairsynthError) -> int:
    """The HTTP status of a user error: an ApiProblem's own, else the nearest entry of its class hierarchy in STATUS."""
    if isinstance(exc, ApiProblem):
        return exc.status
    return next(STATUS[cls] for cls in type(exc).__mro__ if cls in STATUS)


def _problem(
    status: int,
    title: str,
    detail: str,
    request: Request,
    headers: Mapping[str, str] | None = None,
    errors: Sequence[str] | None = None,
) -> JSONResponse:
    body = Problem(
        title=title, status=status, detail=detail, errors=list(errors or [detail]), instance=request.url.path
    )
    return JSONResponse(body.model_dump(), status_code=status, media_type=PROBLEM, headers=headers)


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return TITLES.get(status) or HTTPStatus(status).phrase
    except ValueError:
        return "Error"


# -- datasets -------------------------------------------------------------------------------------
def _add_dataset_routes(app: FastAPI, settings: Settings) -> None:
    errors: Responses = {404: {"model": Problem}, 413: {"model": Problem}, 415: {"model": Problem}}

    @app.post("/datasets", status_code=201, response_model=DatasetOut, responses=errors, tags=["datasets"])
    async def upload_dataset(
        request: Request,
        file: UploadFile | None = File(None, description="a CSV or Parquet table"),
        files: list[UploadFile] | None = File(
            None,
            description="instead of `file`: several related tables (a table set), one per file, each named by its file "
            "name; a child table names its parent's key (patient_id for patients.id)",
        ),
        name: str | None = Form(None, description="a table set's name, for display; omitted: its tables' names"),
        encoding: str | None = Form(
            None, description="a CSV's text encoding, e.g. latin-1; omitted: detected (UTF-8, UTF-16, cp1252, latin-1)"
        ),
        separator: str | None = Form(None, description="a CSV's separator, one character; omitted: detected"),
    ):
        """Upload a table (CSV or Parquet), streamed to disk; its schema is inferred. A CSV is stored as UTF-8.

        Several files as `files`: a table set, its keys and relationships inferred (GET .../dataset-schema).
        """
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > settings.max_upload_bytes + MULTIPART_SLACK:
            raise ApiProblem(413, _too_large(settings))
        if files:
            if file is not None:
                raise InputError("Send one table as `file` or several related tables as `files`, not both.")
            contents = await _read_uploads(files, settings)
            ws = _workspace(app)
            return dataset_out(await run_in_threadpool(lambda: workspace.upload_table_set(ws, contents, name)))
        if file is None:
            raise InputError("Send a table as the multipart field `file`, or several related tables as `files`.")
        dataset_id = new_id()
        folder = settings.data_dir / "datasets" / dataset_id
        folder.mkdir(parents=True)
        try:
            path, fmt, size = await _store_upload(file, folder, settings)
            dataset = await run_in_threadpool(
                lambda: register_dataset(
                    app.state.store,
                    settings,
                    dataset_id,
                    file.filename,
                    path,
                    fmt,
                    size,
                    encoding=encoding,
                    separator=separator,
                    options=FORM_FIELDS,
                )
            )
            return dataset_out(dataset)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    @app.get("/datasets", response_model=list[DatasetOut], tags=["datasets"])
    def list_datasets():
        """Every uploaded dataset, newest first."""
        return [dataset_out(d) for d in app.state.store.list_datasets()]

    @app.get("/datasets/{dataset_id}", response_model=DatasetOut, responses=errors, tags=["datasets"])
    def get_dataset(dataset_id: str):
        """One dataset."""
        return dataset_out(app.state.store.get_dataset(dataset_id))

    @app.get("/datasets/{dataset_id}/schema", response_model=TableSchema, responses=errors, tags=["datasets"])
    def get_schema(dataset_id: str):
        """The dataset's schema: column kinds, formats, what is dropped, the target, the rules (support, status)."""
        return TableSchema.from_json(app.state.store.get_dataset(dataset_id).schema_json)

    @app.put("/datasets/{dataset_id}/schema", response_model=TableSchema, responses=errors, tags=["datasets"])
    def put_schema(dataset_id: str, schema: TableSchema):
        """Replace the dataset's schema (the same columns, edited kinds, formats, drops, target, rules).

        Rules: a listed rule takes the status given (enforced, or off: measured only); a new rule must hold in every
        row of the table (otherwise 422 naming the rule and its rows); a different min_rule_support detects again.
        """
        dataset = app.state.store.get_dataset(dataset_id)
        current = TableSchema.from_json(dataset.schema_json)
        given, expected = [c.name for c in schema.columns], [c.name for c in current.columns]
        problems = []
        if given != expected:
            problems.append(
                "The schema must list the dataset's columns in its order "
                f"({', '.join(expected)}); edit kinds, formats, drops and the target, not the names."
            )
        if schema.target is not None and schema.target not in expected:
            problems.append(
                f"The target '{schema.target}' is not a column of the dataset; "
                "choose one of its columns or leave it empty."
            )
        if problems:
            raise SchemaError(*problems)
        return save_schema(app.state.store, settings, dataset, schema)

    @app.post(
        "/datasets/{dataset_id}/split", status_code=201, response_model=DatasetOut, responses=errors, tags=["datasets"]
    )
    def split_dataset(dataset_id: str, split: SplitRequest):
        """A new table set from one long table: its subjects (key and columns constant per subject) and events."""
        ws = _workspace(app)
        return dataset_out(workspace.split_into_table_set(ws, app.state.store.get_dataset(dataset_id), split.key))

    @app.get("/datasets/{dataset_id}/dataset-schema", response_model=DatasetSchema, responses=errors, tags=["datasets"])
    def get_dataset_schema(dataset_id: str):
        """A table set's tables, primary keys, relationships (parent -> child) and each child's time column."""
        return workspace.table_set_schema(_table_set(app, dataset_id))

    @app.put("/datasets/{dataset_id}/dataset-schema", response_model=DatasetSchema, responses=errors, tags=["datasets"])
    def put_dataset_schema(dataset_id: str, schema: DatasetSchema):
        """Edit a table set's primary keys, relationships and time columns (the tables' columns stay as inferred).

        A schema the tables contradict (a key that repeats, a link whose values are not parent keys, an unknown
        column, a cycle) is refused with 422 listing every problem.
        """
        return workspace.save_table_set_schema(_workspace(app), _table_set(app, dataset_id), schema)


async def _read_uploads(files: list[UploadFile], settings: Settings) -> list[tuple[str | None, bytes]]:
    """Each uploaded table's name and bytes; 413 once their total passes the upload limit."""
    contents, total = [], 0
    for upload in files:
        chunks = []
        while chunk := await upload.read(CHUNK):
            total += len(chunk)
            if total > settings.max_upload_bytes:
                raise ApiProblem(413, _too_large(settings))
            chunks.append(chunk)
        contents.append((upload.filename, b"".join(chunks)))
    return contents


def _workspace(app: FastAPI) -> Workspace:
    """The workspace facade over the app's settings, store and executor."""
    return Workspace(app.state.settings, app.state.store, app.state.executor)


def _table_set(app: FastAPI, dataset_id: str) -> Dataset:
    """A stored table set; a one-table dataset is refused in one sentence pointing to its schema."""
    dataset = app.state.store.get_dataset(dataset_id)
    if not workspace.is_table_set(dataset):
        raise ApiProblem(409, f"Dataset {dataset_id} holds one table; its schema is at /datasets/{dataset_id}/schema.")
    return dataset


def dataset_out(dataset: Dataset) -> DatasetOut:
    """A stored dataset as its API model (a table set with its tables, parents first)."""
    tables = workspace.table_set_schema(dataset).top_down() if workspace.is_table_set(dataset) else []
    return DatasetOut.model_validate(dataset, from_attributes=True).model_copy(update={"tables": tables})


async def _store_upload(file: UploadFile, folder: Path, settings: Settings) -> tuple[Path, str, int]:
    """Copy the upload in chunks to a server-chosen name; the upload's own name never becomes a path."""
    content_type = (file.content_type or "").split(";")[0].strip().lower()
    if content_type not in CSV_TYPES | PARQUET_TYPES | ANY_TYPES | COMPRESSED_TYPES:
        raise ApiProblem(
            415,
            f"Uploads must be CSV or Parquet (a CSV may be gzip, bz2, xz or zip compressed); '{content_type}' is "
            "neither — send text/csv, application/gzip or application/vnd.apache.parquet.",
        )
    partial = folder / "upload.partial"
    size, head = 0, b""
    with open(partial, "wb") as out:
        while chunk := await file.read(CHUNK):
            size += len(chunk)
            if size > settings.max_upload_bytes:
                raise ApiProblem(413, _too_large(settings))
            head = head or chunk[:8]
            out.write(chunk)
    if size == 0:
        raise InputError("The uploaded file is empty; send a CSV or Parquet table.")
    fmt, stored = stored_name(head)
    if fmt == "csv" and content_type in PARQUET_TYPES:
        raise ApiProblem(
            415,
            "The upload says it is Parquet but is not a Parquet file; export it again or send it as CSV.",
        )
    path = folder / stored
    partial.rename(path)
    return path, fmt, size


def _too_large(settings: Settings) -> str:
    return _too_large_bytes(settings.max_upload_bytes)


def _too_large_bytes(limit: int) -> str:
    return too_large_message(limit)


# -- jobs -----------------------------------------------------------------------------------------
def _add_job_routes(app: FastAPI, settings: Settings) -> None:
    errors: Responses = {404: {"model": Problem}, 409: {"model": Problem}}

    @app.get(HEALTH, tags=["service"])
    def health() -> dict[str, str]:
        """Liveness probe (no token needed): the API is up and its store answers."""
        app.state.store.list_jobs(limit=1)
        return {"status": "ok"}

    @app.get("/backends", response_model=list[BackendOut], responses=errors, tags=["backends"])
    def list_backends(
        dataset_id: str | None = Query(None, description="a table set: its dataset backends, each saying if it fits"),
        takes: Literal["table", "tables"] = Query(
            "table", description='"tables": the dataset backends, which take a table set'
        ),
    ):
        """Every declared backend with its availability here (and why not), capabilities and parameters.

        With `takes=tables`, or the `dataset_id` of a table set, the dataset backends instead, with `fits`.
        """
        dataset = app.state.store.get_dataset(dataset_id) if dataset_id else None
        if dataset is not None and workspace.is_table_set(dataset):
            choices = workspace.dataset_backend_choices(workspace.table_set_schema(dataset))
            return [BackendOut.model_validate(row | {"takes": "tables"}) for row in choices]
        if takes == "tables":
            return [BackendOut.model_validate(row | {"takes": "tables"}) for row in workspace.dataset_backend_choices()]
        return [BackendOut.model_validate(row) for row in backend_catalog()]

    @app.post(
        "/jobs",
        status_code=202,
        response_model=JobOut,
        responses={**errors, 503: {"model": Problem, "description": "the broker does not answer; nothing is queued"}},
        tags=["jobs"],
    )
    def submit_job(
        submission: JobSubmission,
        idempotency_key: str | None = Header(
            None,
            min_length=1,
            max_length=255,
            description="any unique text: a retry with the same key and body answers with the job it made",
        ),
    ):
        """Queue a run: one task per backend, side by side, on the configured executor."""
        store: JobStore = app.state.store
        executor: Executor = app.state.executor
        if submission.rows and submission.rows > settings.max_rows:
            raise ApiProblem(
                422,
                f"rows is {submission.rows:,} but this server makes at most {settings.max_rows:,} rows per backend "
                "(FAIRSYNTH_MAX_ROWS); ask for fewer.",
            )
        idempotency = (idempotency_key, _fingerprint(submission)) if idempotency_key else None
        if idempotency and (earlier := _submitted_with(store, *idempotency)):
            return earlier
        raw = submission.model_dump(exclude_none=True, exclude={"dataset_id"})
        schema = None
        dataset = store.get_dataset(submission.dataset_id) if submission.dataset_id else None
        if dataset is not None and not workspace.is_table_set(dataset):
            raw["input_path"] = str(settings.data_dir / dataset.path)
            schema = TableSchema.from_json(dataset.schema_json)
        try:
            if dataset is not None and workspace.is_table_set(dataset):
                job = _create_table_set_job(store, executor, settings, dataset, submission, idempotency)
            else:
                job = create_job(
                    store,
                    settings,
                    parse_request(raw, "the job"),
                    executor=executor.name,
                    schema=schema,
                    dataset_id=submission.dataset_id,
                    idempotency=idempotency,
                )
        except IntegrityError:
            if idempotency and (earlier := _submitted_with(store, *idempotency)):
                return earlier  # the same key's other request won the race
            raise
        try:
            executor.submit(job)
        except BrokerUnavailable:
            store.release_key(job.id)  # a retry with the same key submits again
            raise
        return job_out(store.get_job(job.id))

    @app.get("/jobs", response_model=list[JobOut], tags=["jobs"])
    def list_jobs(
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0, le=10**9),
        state: JobState | None = None,
    ):
        """Jobs, newest first."""
        return [job_out(job) for job in app.state.store.list_jobs(limit=limit, offset=offset, state=state)]

    @app.get("/jobs/{job_id}", response_model=JobOut, responses=errors, tags=["jobs"])
    def get_job(job_id: str):
        """A job's state and each task's progress."""
        return job_out(app.state.store.get_job(job_id))

    @app.post("/jobs/{job_id}/cancel", response_model=JobOut, responses=errors, tags=["jobs"])
    def cancel_job(job_id: str):
        """Cancel a job: queued tasks never start, running ones are stopped (their processes killed)."""
        job = app.state.store.get_job(job_id)
        if job.state in TERMINAL:
            raise ApiProblem(409, f"Job {job_id} already ended ({job.state}); there is nothing to cancel.")
        return job_out(app.state.executor.cancel(job_id))

    @app.get("/jobs/{job_id}/comparison", responses=errors, tags=["jobs"])
    def comparison(job_id: str) -> list[dict[str, Any]]:
        """The side-by-side comparison of the job's backends (once the job has ended)."""
        job = app.state.store.get_job(job_id)
        path = settings.data_dir / job.run_dir / "comparison.json"
        if path.is_file():
            return [_public_outcome(job_id, row) for row in json.loads(path.read_text())]
        table = settings.data_dir / job.run_dir / "comparison.csv"
        if datasets.is_dataset_run(settings.data_dir / job.run_dir) and table.is_file():
            return _dataset_comparison(job, table)
        if job.state in TERMINAL:
            raise ApiProblem(
                404, f"Job {job_id} {job.state} with no backend result, so it has no comparison: {_why(job)}."
            )
        raise ApiProblem(409, f"Job {job_id} is {job.state}; the comparison is written when it ends.")

    @app.get(
        "/jobs/{job_id}/results/{backend}/{artefact}",
        responses={
            **errors,
            200: {
                "content": {
                    "text/csv": {},
                    "application/vnd.apache.parquet": {},
                    "text/html": {},
                    "application/json": {},
                    "application/zip": {},
                },
                "description": "the file",
            },
        },
        tags=["jobs"],
    )
    def download(job_id: str, backend: str, artefact: Artefact):
        """Download one backend's synthetic table, report, metrics, data dictionary, config or crate zip."""
        job = app.state.store.get_job(job_id)
        task = next((t for t in job.tasks if t.backend == backend), None)
        if task is None:
            raise ApiProblem(
                404,
                f"Job {job_id} has no backend '{backend}'; it ran {', '.join(t.backend for t in job.tasks)}.",
            )
        relative = task.artefacts.get(artefact.value)
        if relative is None:
            raise ApiProblem(
                404 if task.state in TERMINAL else 409,
                f"{backend} in job {job_id} has no {artefact.value} ({task.state}"
                f"{': ' + task.error if task.error else ''}).",
            )
        path = _inside(settings.data_dir / job.run_dir, relative)
        media = MEDIA.get(artefact.value) or (
            "application/vnd.apache.parquet" if path.suffix == ".parquet" else "text/csv"
        )
        return FileResponse(path, media_type=media, filename=f"{job_id}-{backend}-{path.name}")

    @app.get(
        "/jobs/{job_id}/results/{backend}/tables/{table}",
        responses={
            **errors,
            200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}}, "description": "the table"},
        },
        tags=["jobs"],
    )
    def download_table(job_id: str, backend: str, table: str):
        """Download one synthetic table that a dataset backend wrote (report, metrics, crate: .../{artefact})."""
        job = app.state.store.get_job(job_id)
        task = next((t for t in job.tasks if t.backend == backend), None)
        relative = task.artefacts.get(table_artefact(table)) if task else None
        if task is None or relative is None:
            tables = sorted(k.split(":", 1)[1] for t in job.tasks for k in t.artefacts if k.startswith("table:"))
            raise ApiProblem(
                404 if task is None or task.state in TERMINAL else 409,
                f"Job {job_id} has no synthetic table '{table}' from '{backend}'"
                f" (tables there: {', '.join(sorted(set(tables))) or 'none yet'}).",
            )
        path = _inside(settings.data_dir / job.run_dir, relative)
        media = "application/vnd.apache.parquet" if path.suffix == ".parquet" else "text/csv"
        return FileResponse(path, media_type=media, filename=f"{job_id}-{backend}-{path.name}")


def _create_table_set_job(
    store: JobStore,
    executor: Executor,
    settings: Settings,
    dataset: Dataset,
    submission: JobSubmission,
    idempotency: tuple[str, str] | None,
) -> Job:
    """A queued job of dataset backends on a table set, one task per backend."""
    single = [name for name in ("second_evaluator", "policy", "schema_overrides") if getattr(submission, name)]
    if single:
        raise InputError(f"{', '.join(single)} apply to one table only; leave them out for a table set.")
    specs = [{"name": b} if isinstance(b, str) else b.model_dump() for b in submission.backends]
    crate = (submission.crate or {}) if submission.package_crates else None
    request = workspace.table_set_request(
        settings,
        dataset,
        specs,
        subjects=submission.rows,
        seed=submission.seed,
        holdout_share=submission.holdout_share,
        output_format=submission.output_format,
        crate=crate,
    )
    return create_dataset_job(
        store,
        settings,
        request,
        executor=executor.name,
        schema=workspace.table_set_schema(dataset),
        dataset_id=dataset.id,
        idempotency=idempotency,
    )


def _dataset_comparison(job: Job, table: Path) -> list[dict[str, Any]]:
    """A dataset job's comparison rows, each ok backend with the URLs of its report, metrics, tables and crate."""
    rows = json.loads(pd.read_csv(table).to_json(orient="records"))
    for row in rows:
        task = next((t for t in job.tasks if t.backend == row["backend"]), None)
        base = f"/jobs/{job.id}/results/{row['backend']}"
        if task is not None and row.get("status") == "ok":
            row["artefacts"] = {
                name.replace("table:", "tables/"): f"{base}/{name.replace('table:', 'tables/')}"
                for name in task.artefacts
            }
    return rows


def _fingerprint(submission: JobSubmission) -> str:
    """The submission's content, independent of key order: what an Idempotency-Key was first sent with."""
    return hashlib.sha256(json.dumps(submission.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def _submitted_with(store: JobStore, key: str, fingerprint: str) -> JobOut | None:
    """The job an earlier POST /jobs made with this key; a different body under the same key is refused."""
    job = store.job_by_key(key)
    if job is None:
        return None
    if job.submission_sha256 != fingerprint:
        raise ApiProblem(
            409,
            f"The Idempotency-Key '{key}' was sent with a different job (job {job.id}); "
            "send a new key for a new job, or the same body to get that job.",
        )
    return job_out(job)


def _inside(root: Path, relative: str) -> Path:
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        raise ApiProblem(404, "That file is not part of this job's results.")
    return path


def _why(job: Job) -> str:
    """Why a job ended without results: its own error, else each task's."""
    return job.error or "; ".join(f"{t.backend}: {t.error or t.state}" for t in job.tasks)


def _public_outcome(job_id: str, row: dict[str, Any]) -> dict[str, Any]:
    """A comparison row without server paths: its directory and crate become download URLs."""
    public = {k: v for k, v in row.items() if k not in ("directory", "crate")}
    base = f"/jobs/{job_id}/results/{row['backend']}"
    if row.get("ok"):
        kinds = [a.value for a in Artefact if a is not Artefact.crate or row.get("crate")]
        public["artefacts"] = {kind: f"{base}/{kind}" for kind in kinds}
    return public


def job_out(job: Job) -> JobOut:
    """A stored job as its API model."""
    return JobOut(
        id=job.id,
        state=job.state,
        dataset_id=job.dataset_id,
        executor=job.executor,
        created_at=utc(job.created_at),
        started_at=utc(job.started_at),
        finished_at=utc(job.finished_at),
        error=job.error,
        request={k: v for k, v in job.request.items() if k not in SERVER_PATHS},
        tasks=[_task_out(t) for t in job.tasks],
    )


def _task_out(task: Task) -> TaskOut:
    return TaskOut(
        id=task.id,
        backend=task.backend,
        family=task.family,
        state=task.state,
        attempts=task.attempts,
        worker=task.worker,
        created_at=utc(task.created_at),
        started_at=utc(task.started_at),
        finished_at=utc(task.finished_at),
        fit_seconds=task.fit_seconds,
        sample_seconds=task.sample_seconds,
        error=task.error,
        artefacts=sorted(task.artefacts),
        progress=TaskProgress(
            stage=task.stage,
            step=task.step,
            total=task.total,
            epoch=task.epoch,
            loss=task.loss,
            rows_written=task.rows_written or 0,
            message=task.message,
        ),
    )


# -- serving --------------------------------------------------------------------------------------
def is_loopback(host: str) -> bool:
    """True when the address only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, settings: Settings) -> None:
    """Refuse to serve beyond loopback without a token."""
    if not is_loopback(host) and not settings.api_token:
        raise SettingsError(
            f"Refusing to listen on {host} without FAIRSYNTH_API_TOKEN: set it to a long random "
            "secret (clients send it as a bearer token) or bind to 127.0.0.1."
        )


def serve(host: str = "127.0.0.1", port: int = 8000, settings: Settings | None = None) -> None:
    """Run the API with uvicorn (blocks)."""
    import uvicorn

    settings = settings or Settings.from_env()
    check_exposure(host, settings)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
