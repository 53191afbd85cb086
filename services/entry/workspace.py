"""What the UI calls: datasets, schema edits, backends, estimates, jobs, results, crates and deposits.

A thin facade over the job store, the executors, the pipeline and the metadata packages: the UI never
imports backends or metadata itself, and the API and the UI share the same dataset and job paths.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fairsynth.metadata.biostudies import DepositError, deposit
from fairsynth.metadata.model import PAGETAB_PATH
from fairsynth.metadata.rule_checks import infer_with_rules
from fairsynth.metadata.rules import Rule, RuleStatus, parse_rule
from fairsynth.metadata.schema import ColumnKind, ColumnSpec, SchemaError, TableSchema
from fairsynth.metadata.validate import validate_crate
from fairsynth.services.entry.catalog import backend_catalog, parameter_defaults
from fairsynth.services.jobs.executors import Executor, LocalExecutor, create_job, make_executor
from fairsynth.services.jobs.store import TERMINAL, Dataset, Job, JobStore, TaskState, new_id, now
from fairsynth.services.run import pipeline
from fairsynth.services.run.config import (
    ConfigError,
    organisation,
    parse_author,
    parse_request,
    validate_crate_info,
)
from fairsynth.services.run.demo import DEMO_PATH
from fairsynth.services.run.evaluation.gate import GateResult
from fairsynth.services.run.evaluation.metrics import DCR_SHARE, FIT_SECONDS, QUALITY, UTILITY_RATIO
from fairsynth.services.run.evaluation.results import EvaluationResult
from fairsynth.services.run.rule_edits import with_posted_rules
from fairsynth.services.run.tables import (
    FLAGS,
    TEXT_ENCODING,
    InputError,
    Options,
    as_plain_csv,
    read_table,
    stored_name,
)
from fairsynth.services.settings import Settings

UI_EXECUTOR = "ui"  # the UI's own local executor: it recovers and runs only the jobs the UI submitted
SCHEMA_KINDS = tuple(kind.value for kind in ColumnKind)  # what the UI's kind selector offers
RULE_NOTES = {
    RuleStatus.ENFORCED: "every synthetic row keeps it",
    RuleStatus.IMPLIED: "implied by the columns' ranges: measured only",
    RuleStatus.OFF: "turned off: measured only",
}
PRIORITIES = {"quality": QUALITY, "privacy": DCR_SHARE, "utility": UTILITY_RATIO, "speed": FIT_SECONDS}  # ranked by
# Measured in benchmarks/results (tvae.md, tvae_pairs.md, ydata.md) on SUPPORT2: 7,284 training rows x 38 columns,
# a shared 2-core CPU. Fit seconds per (training row x column x epoch) and peak memory there; epoch-free
# backends count one.
BENCH_CELLS = 7_284 * 38
FIT_SECONDS_PER_CELL_EPOCH = {
    "marginals": 3.6e-7,
    "sdv.gaussian_copula": 1.7e-5,
    "sdv.tvae": 1.7e-6,
    "sdv.ctgan": 6.6e-5,
    "sdv.copulagan": 6.6e-5,
    "tvae": 3.1e-7,
    "tvae.dp": 4.4e-6,
    "ydata.fast": 2.0e-4,
    "ydata.ctgan": 2.9e-5,
}
PEAK_MB_ON_BENCH = {
    "marginals": 418,
    "sdv.gaussian_copula": 460,
    "sdv.tvae": 585,
    "sdv.ctgan": 643,
    "sdv.copulagan": 643,
    "tvae": 444,
    "tvae.dp": 505,
    "ydata.fast": 864,
    "ydata.ctgan": 5502,
}
FAMILY_FALLBACK = {"basic": "marginals", "torch": "tvae", "sdv": "sdv.ctgan", "ydata": "ydata.ctgan"}
BASE_MB = 400  # a worker process with its imports, before any data


@dataclass
class Workspace:
    """One data directory: its settings, its job store and the executor that runs the UI's jobs."""

    settings: Settings
    store: JobStore
    executor: Executor

    def close(self) -> None:
        """Stop the executor (killing running task processes) and close the store."""
        self.executor.stop()
        self.store.close()


def open_workspace(settings: Settings | None = None) -> Workspace:
    """Open the data directory's store and start the UI's executor (once per process): Celery when configured."""
    settings = settings or Settings.from_env()
    settings.ensure_dirs()
    store = JobStore(settings.database_url)
    executor = (
        make_executor(store, settings)
        if settings.executor == "celery"
        else LocalExecutor(store, settings, kind=UI_EXECUTOR)
    )
    executor.start()
    return Workspace(settings, store, executor)


# -- datasets -------------------------------------------------------------------------------------
def upload_limit_mb(ws: Workspace) -> int:
    """The largest upload accepted, in MiB."""
    return ws.settings.max_upload_bytes // (1024 * 1024)


def too_large_message(limit_bytes: int) -> str:
    """The one sentence for an upload over the limit."""
    return (
        f"The upload is larger than this server accepts ({limit_bytes // (1024 * 1024)} MiB); "
        "send a smaller table or raise FAIRSYNTH_MAX_UPLOAD_MB."
    )


def upload_dataset(ws: Workspace, file_name: str | None, content: bytes) -> Dataset:
    """Store an uploaded CSV or Parquet table under a server-chosen name and register it with its inferred schema."""
    if len(content) > ws.settings.max_upload_bytes:
        raise InputError(too_large_message(ws.settings.max_upload_bytes))
    if not content:
        raise InputError("The uploaded file is empty; send a CSV or Parquet table.")
    fmt, stored = stored_name(content[:8])
    return _store_dataset(ws, file_name, fmt, lambda path: path.write_bytes(content), stored=stored)


def demo_dataset(ws: Workspace) -> Dataset:
    """The embedded demo table as a dataset (registered once per data directory)."""
    for dataset in ws.store.list_datasets():
        if dataset.name == DEMO_PATH.name and dataset.path.endswith("demo/" + DEMO_PATH.name):
            return dataset
    return _store_dataset(ws, DEMO_PATH.name, "csv", lambda path: shutil.copyfile(DEMO_PATH, path), folder="demo")


def _store_dataset(
    ws: Workspace, file_name: str | None, fmt: str, write, folder: str | None = None, stored: str | None = None
) -> Dataset:
    dataset_id = new_id()
    directory = ws.settings.data_dir / "datasets" / dataset_id / (folder or "")
    directory.mkdir(parents=True)
    path = directory / (stored or DEMO_PATH.name)
    try:
        write(path)
        return register_dataset(ws.store, ws.settings, dataset_id, file_name, path, fmt, path.stat().st_size)
    except InputError as exc:  # the problems name the stored file; the user knows the upload's name
        shutil.rmtree(ws.settings.data_dir / "datasets" / dataset_id, ignore_errors=True)
        shown = display_name(file_name, fmt)
        raise InputError(*(problem.replace(path.name, shown, 1) for problem in exc.problems)) from None
    except BaseException:
        shutil.rmtree(ws.settings.data_dir / "datasets" / dataset_id, ignore_errors=True)
        raise


def register_dataset(
    store: JobStore,
    settings: Settings,
    dataset_id: str,
    upload_name: str | None,
    path: Path,
    fmt: str,
    size: int,
    *,
    encoding: str | None = "utf-8",
    separator: str | None = None,
    options: Options = FLAGS,
) -> Dataset:
    """Read a stored table (clear errors naming the upload), infer its schema and record it as a dataset.

    `encoding` None: detected (the API's uploads). A CSV that is not UTF-8, or whose given separator differs from the
    detected one, is stored again as plain UTF-8, so runs read it with the defaults.
    """
    data = read_table(
        path,
        encoding=encoding,
        separator=separator,
        max_unpacked_bytes=settings.max_unpacked_bytes,
        label=display_name(upload_name, fmt),
        options=options,
    )
    if fmt == "csv":
        path = as_plain_csv(path, encoding=data.attrs[TEXT_ENCODING], separator=separator)
    schema = infer_with_rules(data)
    dataset = Dataset(
        id=dataset_id,
        name=display_name(upload_name, fmt),
        path=str(path.relative_to(settings.data_dir)),
        format=fmt,
        size_bytes=size,
        rows=len(data),
        columns=int(data.shape[1]),
        schema_json=schema.to_json(),
        created_at=now(),
    )
    store.add_dataset(dataset)
    return dataset


def display_name(upload_name: str | None, fmt: str) -> str:
    """The last component of the upload's name without control characters: shown, never used as a path."""
    name = re.split(r"[\\/]", upload_name or "")[-1]
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).strip()[:255]
    return name or f"upload.{fmt}"


def dataset_table(ws: Workspace, dataset: Dataset, rows: int | None = None) -> pd.DataFrame:
    """The dataset's table (or its first rows)."""
    data = read_table(ws.settings.data_dir / dataset.path)
    return data.head(rows) if rows else data


def dataset_schema(dataset: Dataset) -> TableSchema:
    """The dataset's current schema."""
    return TableSchema.from_json(dataset.schema_json)


def schema_frame(schema: TableSchema) -> pd.DataFrame:
    """The schema as an editable table: column, kind, drop, target, missing share, cardinality, note."""
    return pd.DataFrame(
        [
            {
                "column": c.name,
                "kind": str(getattr(c.kind, "value", c.kind)),
                "drop": bool(c.drop),
                "target": c.name == schema.target,
                "missing %": round(100 * c.missing_share, 1),
                "distinct": c.cardinality,
                "handling": c.handling(),
            }
            for c in schema.columns
        ]
    )


def edit_schema(ws: Workspace, dataset: Dataset, edited: pd.DataFrame) -> TableSchema:
    """Apply the edited table (kinds, drops, one target) to the dataset's schema and store it."""
    schema = dataset_schema(dataset)
    targets = edited.loc[edited["target"].astype(bool), "column"].tolist()
    problems = []
    if list(edited["column"]) != schema.names:
        problems.append("Edit kinds, drops and the target only; the columns cannot be renamed or reordered.")
    if len(targets) > 1:
        problems.append(f"Choose at most one target column; {', '.join(targets)} are ticked.")
    if problems:
        raise SchemaError(*problems)
    base = schema.model_copy(deep=True, update={"target": None})
    for spec in base.columns:
        spec.drop = False
    updated = base.with_overrides(
        kinds=dict(zip(edited["column"], edited["kind"])),
        drop=edited.loc[edited["drop"].astype(bool), "column"].tolist(),
        target=targets[0] if targets else None,
    )
    ws.store.set_schema(dataset.id, updated.to_json())
    return updated


def save_schema(store: JobStore, settings: Settings, dataset: Dataset, posted: TableSchema) -> TableSchema:
    """Store a schema the user edited, its rules checked against the table (a rule the data breaks: RuleError)."""
    data = read_table(settings.data_dir / dataset.path, max_unpacked_bytes=settings.max_unpacked_bytes)
    schema = with_posted_rules(dataset_schema(dataset), posted, data)
    store.set_schema(dataset.id, schema.to_json())
    return schema


def rules_frame(schema: TableSchema) -> pd.DataFrame:
    """The schema's rules as an editable table: rule, kind, support, enforced (the toggle), note."""
    return pd.DataFrame(
        [
            {
                "rule": rule.text,
                "kind": rule.kind.value.replace("_", " "),
                "support": rule.support,
                "enforced": rule.enforced,
                "note": RULE_NOTES[rule.status] + (" (added by you)" if rule.added_by_user else ""),
            }
            for rule in schema.rules
        ],
        columns=["rule", "kind", "support", "enforced", "note"],
    )


def edit_rules(ws: Workspace, dataset: Dataset, edited: pd.DataFrame) -> TableSchema:
    """Apply the rule toggles: ticked is enforced; unticked is off (measured only), an implied rule stays implied."""
    schema = dataset_schema(dataset)
    ticked = dict(zip(edited["rule"], edited["enforced"].astype(bool)))
    rules = [rule.model_copy(update={"status": _toggled(rule, ticked.get(rule.text))}) for rule in schema.rules]
    return save_schema(ws.store, ws.settings, dataset, schema.model_copy(update={"rules": rules}))


def _toggled(rule: Rule, enforce: bool | None) -> RuleStatus:
    if enforce is None or enforce == rule.enforced:
        return rule.status
    if enforce:
        return RuleStatus.ENFORCED
    return RuleStatus.IMPLIED if rule.status == RuleStatus.IMPLIED else RuleStatus.OFF


def add_rule(ws: Workspace, dataset: Dataset, text: str) -> TableSchema:
    """Add a rule the user wrote, enforced; RuleError in one sentence when it cannot be read or the data breaks it."""
    schema = dataset_schema(dataset)
    added = parse_rule(text, schema.names)
    rules = [rule for rule in schema.rules if not rule.same_rule(added)] + [added]  # a listed one becomes enforced
    return save_schema(ws.store, ws.settings, dataset, schema.model_copy(update={"rules": rules}))


def detect_rules_again(ws: Workspace, dataset: Dataset, min_support: int) -> TableSchema:
    """Detect the rules again with another minimum support, keeping the rules the user added or turned off."""
    schema = dataset_schema(dataset)
    return save_schema(ws.store, ws.settings, dataset, schema.model_copy(update={"min_rule_support": min_support}))


def rule_overrides(schema: TableSchema) -> dict[str, list[str]]:
    """The user's rule edits as the request's schema overrides (recorded in request.json with the run)."""
    return {
        "rules": [rule.text for rule in schema.rules if rule.enforced and rule.added_by_user],
        "rules_off": [rule.text for rule in schema.rules if rule.status == RuleStatus.OFF and not rule.added_by_user],
    }


# -- backends and estimates -----------------------------------------------------------------------
def backends() -> list[dict]:
    """Every declared backend: name, available, reason, capabilities, parameters (JSON schema)."""
    return backend_catalog()


def estimate(backend: dict, rows: int, columns: int, params: dict, holdout_share: float = 0.2) -> dict:
    """Fit time and peak memory scaled from the benchmark of the same backend (or its family): an estimate only."""
    name = backend["name"]
    known = (
        name
        if name in FIT_SECONDS_PER_CELL_EPOCH
        else FAMILY_FALLBACK.get(backend["capabilities"].get("family"), "sdv.ctgan")
    )
    epochs = int(params.get("epochs", parameter_defaults(backend["parameters"]).get("epochs", 1)) or 1)
    cells = max(1, round(rows * (1 - holdout_share))) * max(columns, 1)
    seconds = cells * epochs * FIT_SECONDS_PER_CELL_EPOCH[known]
    memory_mb = BASE_MB + (PEAK_MB_ON_BENCH[known] - BASE_MB) * cells / BENCH_CELLS
    return {
        "backend": name,
        "fit_seconds": round(seconds, 1),
        "memory_mb": round(memory_mb),
        "based_on": known if known == name else f"{known} (same family)",
    }


# -- jobs -----------------------------------------------------------------------------------------
def submit_job(
    ws: Workspace,
    dataset: Dataset,
    specs: list[dict],
    *,
    rows: int | None,
    seed: int = 0,
    anonymeter: bool = True,
    min_level_rows: int | None = None,
) -> Job:
    """Queue a run of these backends (dicts of name and params) on the dataset with its edited schema and rules."""
    raw = {
        "input_path": str(ws.settings.data_dir / dataset.path),
        "backends": specs,
        "rows": rows,
        "seed": seed,
        "anonymeter": anonymeter,
        "min_level_rows": min_level_rows,
    }
    schema = dataset_schema(dataset)
    raw = {k: v for k, v in raw.items() if v is not None} | {"schema_overrides": rule_overrides(schema)}
    request = parse_request(raw, "the run")
    job = create_job(ws.store, ws.settings, request, executor=ws.executor.name, schema=schema, dataset_id=dataset.id)
    ws.executor.submit(job)
    return ws.store.get_job(job.id)


def get_job(ws: Workspace, job_id: str) -> Job:
    """A job with its tasks, fresh from the store."""
    return ws.store.get_job(job_id)


def list_jobs(ws: Workspace, limit: int = 50) -> list[Job]:
    """Earlier jobs, newest first."""
    return ws.store.list_jobs(limit=limit)


def cancel_job(ws: Workspace, job_id: str) -> Job:
    """Cancel a job that is still running; an ended job is returned as it is."""
    job = ws.store.get_job(job_id)
    return job if job.state in TERMINAL else ws.executor.cancel(job_id)


def is_ended(job: Job) -> bool:
    """True once the job has ended (succeeded, failed or cancelled)."""
    return job.state in TERMINAL


def progress_frame(job: Job) -> pd.DataFrame:
    """One row per backend: state, stage, step of total, epoch, loss, rows written, message or error."""
    return pd.DataFrame(
        [
            {
                "backend": t.backend,
                "state": t.state,
                "stage": t.stage or "",
                "progress": (t.step or 0) / t.total if t.total else (1.0 if t.state == TaskState.SUCCEEDED else 0.0),
                "epoch": t.epoch,
                "loss": t.loss,
                "rows written": t.rows_written or 0,
                "fit s": None if t.fit_seconds is None else round(t.fit_seconds, 1),
                "message": t.error or t.message or "",
            }
            for t in job.tasks
        ]
    )


def jobs_frame(jobs: list[Job]) -> pd.DataFrame:
    """Earlier jobs as a table: id, state, created, backends, dataset."""
    return pd.DataFrame(
        [
            {
                "job": j.id,
                "state": j.state,
                "created": j.created_at.strftime("%Y-%m-%d %H:%M"),
                "backends": ", ".join(t.backend for t in j.tasks),
                "rows": j.request.get("rows"),
                "error": j.error or "",
            }
            for j in jobs
        ],
        columns=["job", "state", "created", "backends", "rows", "error"],
    )


# -- results --------------------------------------------------------------------------------------
def run_dir(ws: Workspace, job: Job) -> Path:
    """The job's run directory."""
    return ws.settings.data_dir / job.run_dir


def comparison(ws: Workspace, job: Job) -> pd.DataFrame:
    """The side-by-side comparison of the job's backends (empty until the job has ended)."""
    path = run_dir(ws, job) / "comparison.csv"
    return pd.read_csv(path) if path.is_file() else pd.DataFrame()


def metrics(ws: Workspace, job: Job, backend: str) -> EvaluationResult | None:
    """One backend's metrics.json (None when it failed)."""
    path = artefact(ws, job, backend, "metrics")
    return EvaluationResult.model_validate_json(path.read_text()) if path else None


def artefact(ws: Workspace, job: Job, backend: str, name: str) -> Path | None:
    """The path of one backend's artefact (synthetic, report, metrics, crate, ...), or None."""
    task = next((t for t in job.tasks if t.backend == backend), None)
    relative = task.artefacts.get(name) if task else None
    if relative is None:
        return None
    root = run_dir(ws, job).resolve()
    path = (root / relative).resolve()
    return path if path.is_relative_to(root) and path.is_file() else None


def gate_reasons(ws: Workspace, job: Job) -> dict[str, GateResult]:
    """Each measured backend's gate: decision and reasons."""
    results = {t.backend: metrics(ws, job, t.backend) for t in job.tasks if t.state == TaskState.SUCCEEDED}
    return {backend: result.gate for backend, result in results.items() if result is not None}


def recommend(table: pd.DataFrame, priority: str) -> tuple[str | None, str]:
    """The best released-or-flagged backend by the priority's metric, better as its declaration says, and why."""
    metric = PRIORITIES[priority]
    usable = table[(table.get("status") == "ok") & (table.get("decision") != "block")] if not table.empty else table
    usable = usable.dropna(subset=[metric.name]) if metric.name in usable else usable.iloc[0:0]
    if usable.empty:
        return None, f"No backend passed the release gate with a {metric.label} measure."
    best = usable.loc[usable[metric.name].map(metric.score).idxmax()]
    value = metric.text(best[metric.name])
    return str(
        best["backend"]
    ), f"best {metric.label} ({value}, {metric.goal_text}) among results the gate did not block"


def learned_columns(ws: Workspace, job: Job) -> list[ColumnSpec]:
    """The columns the run's backends modelled (not dropped, not identifiers, PII or text)."""
    return TableSchema.from_json((run_dir(ws, job) / "schema.json").read_text()).learned_columns()


def synthetic_sample(ws: Workspace, job: Job, backend: str, rows: int = 2000) -> pd.DataFrame:
    """The first rows of one backend's synthetic table."""
    path = artefact(ws, job, backend, "synthetic")
    if path is None:
        return pd.DataFrame()
    return pd.read_parquet(path).head(rows) if path.suffix == ".parquet" else pd.read_csv(path, nrows=rows)


def training_sample(ws: Workspace, job: Job, rows: int = 2000) -> pd.DataFrame:
    """The real input's first rows (for distribution plots next to the synthetic ones)."""
    request = job.request
    path = request.get("input_path")
    return read_table(path).head(rows) if path else pd.DataFrame()


# -- crates, validation and deposit ---------------------------------------------------------------
def metadata_form(
    *,
    title: str,
    description: str,
    authors: str,
    license_id: str,
    keywords: str,
    funder: str = "",
    funder_address: str = "",
) -> dict:
    """The Export form's fields as crate metadata: one author per line as 'Name; ORCID; Affiliation; ROR-or-URL'."""
    people = [parse_author(line, "Each author line") for line in authors.splitlines() if line.strip()]
    form = {
        "title": title.strip(),
        "description": description.strip(),
        "authors": people,
        "license": license_id,
        "keywords": [k.strip() for k in keywords.split(",") if k.strip()],
    }
    if funder.strip():
        if not funder_address.strip():
            raise ConfigError("Give the funder's ROR id or web address too, or leave the funder empty.")
        form["funder"] = organisation(funder, funder_address)
    validate_crate_info(form)  # every field checked now, with one sentence naming the bad one
    return form


def package_crates(ws: Workspace, job: Job, form: dict) -> dict[str, dict]:
    """Describe each finished backend of the job as an RO-Crate zip with the user's metadata, then validate it."""
    info = validate_crate_info(form)
    directory = run_dir(ws, job)
    schema = TableSchema.from_json((directory / "schema.json").read_text())
    context = json.loads((directory / "request.json").read_text())
    outcomes = [pipeline.outcome_from_json(t.outcome_json) for t in job.tasks if t.outcome_json]
    results = {}
    for task in job.tasks:
        outcome = next((o for o in outcomes if o.backend == task.backend and o.ok), None)
        if outcome is None:
            continue
        outcome.error = None
        pipeline.package_crate(outcome, outcomes, info, schema, context, directory, lambda _: None)
        if outcome.crate:
            ws.store.set_artefacts(
                task.id,
                {**task.artefacts, "crate": str(Path(outcome.crate).relative_to(directory))},
                outcome_json=pipeline.outcome_to_json(outcome),
            )
        results[task.backend] = {
            "crate": outcome.crate,
            "error": outcome.error,
            "validation": validate(ws, Path(outcome.crate)) if outcome.crate else None,
        }
    return results


def validate(ws: Workspace, crate_zip: Path) -> dict:
    """Validate a crate zip offline as shipped and unpacked (the check behind "valid crate"): ok, summary, issues."""
    report = validate_crate(crate_zip, limits=ws.settings)
    return {"ok": report.ok, "summary": report.summary(), "issues": report.issues + report.skipped}


def pagetab(ws: Workspace, job: Job, backend: str) -> Path | None:
    """The BioStudies PageTab JSON written into a packaged backend's directory, or None before packaging."""
    outcome = next(
        (pipeline.outcome_from_json(t.outcome_json) for t in job.tasks if t.backend == backend and t.outcome_json), None
    )
    path = Path(outcome.directory) / PAGETAB_PATH if outcome and outcome.directory else None
    return path if path and path.is_file() else None


def deposit_crate(ws: Workspace, job: Job, backend: str) -> dict:
    """Deposit a backend's crate to BioStudies: a dry run (the plan written to the run) unless configured."""
    crate = artefact(ws, job, backend, "crate")
    if crate is None:
        raise DepositError(f"{backend} has no crate yet; package the crates first.")
    result = deposit(crate, out_dir=run_dir(ws, job) / f"{backend}-deposit", limits=ws.settings)
    return {
        "dry_run": result.dry_run,
        "files": result.files,
        "accno": result.accno,
        "plan_dir": str(result.plan_dir) if result.plan_dir else None,
    }
