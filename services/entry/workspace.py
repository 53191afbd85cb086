"""What the UI calls: datasets, schema edits, backends, estimates, jobs, results, crates and deposits.

A thin facade over the job store, the executors, the pipeline and the metadata packages: the UI never
imports backends or metadata itself, and the API and the UI share the same dataset and job paths.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fairsynth.backends import registry
from fairsynth.backends.dataset import dataset_backends
from fairsynth.metadata.biostudies import DepositError, deposit
from fairsynth.metadata.dataset import DatasetSchema, split_long_table
from fairsynth.metadata.model import PAGETAB_PATH
from fairsynth.metadata.rule_checks import infer_with_rules
from fairsynth.metadata.rules import Rule, RuleStatus, parse_rule
from fairsynth.metadata.schema import NUMERIC_KINDS, ColumnKind, ColumnSpec, SchemaError, TableSchema
from fairsynth.metadata.validate import validate_crate
from fairsynth.services.entry import estimates
from fairsynth.services.entry.catalog import backend_catalog, parameter_defaults
from fairsynth.services.jobs.executors import (
    Executor,
    LocalExecutor,
    create_dataset_job,
    create_job,
    make_executor,
)
from fairsynth.services.jobs.store import TERMINAL, Dataset, Job, JobStore, TaskState, new_id, now
from fairsynth.services.jobs.tasks import record_dataset_crates, table_artefact
from fairsynth.services.run import datasets, pipeline
from fairsynth.services.run.config import (
    BackendSpec,
    ConfigError,
    GenerationRequest,
    organisation,
    parse_author,
    parse_request,
    validate_crate_info,
)
from fairsynth.services.run.dataset_crate import package_dataset_crates
from fairsynth.services.run.demo import DEMO_PATH
from fairsynth.services.run.evaluation import second
from fairsynth.services.run.evaluation.gate import BY_METRIC, GateResult
from fairsynth.services.run.evaluation.metrics import CONFIDENCE, DCR_SHARE, FIT_SECONDS, QUALITY, UTILITY_RATIO
from fairsynth.services.run.evaluation.results import EvaluationResult
from fairsynth.services.run.rule_edits import with_posted_rules
from fairsynth.services.run.tables import (
    FLAGS,
    PAGE_CONTROLS,
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
OUTCOME_NAME = re.compile(r"dead|death|died|mortal|outcome|status|event|readmi|diagnos|label|class", re.IGNORECASE)
PRIORITIES = {"quality": QUALITY, "privacy": DCR_SHARE, "utility": UTILITY_RATIO, "speed": FIT_SECONDS}  # ranked by


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


def upload_dataset(
    ws: Workspace, file_name: str | None, content: bytes, encoding: str | None = "utf-8", separator: str | None = None
) -> Dataset:
    """Store an uploaded CSV or Parquet table under a server-chosen name and register it with its inferred schema.

    `encoding` None: detected; `separator` None: detected. Errors name the Data page's choices.
    """
    if len(content) > ws.settings.max_upload_bytes:
        raise InputError(too_large_message(ws.settings.max_upload_bytes))
    if not content:
        raise InputError("The uploaded file is empty; send a CSV or Parquet table.")
    fmt, stored = stored_name(content[:8])
    reading = {"encoding": encoding, "separator": separator, "options": PAGE_CONTROLS}
    return _store_dataset(ws, file_name, fmt, lambda path: path.write_bytes(content), stored=stored, reading=reading)


def demo_dataset(ws: Workspace) -> Dataset:
    """The embedded demo table as a dataset (registered once per data directory)."""
    for dataset in ws.store.list_datasets():
        if dataset.name == DEMO_PATH.name and dataset.path.endswith("demo/" + DEMO_PATH.name):
            return dataset
    return _store_dataset(ws, DEMO_PATH.name, "csv", lambda path: shutil.copyfile(DEMO_PATH, path), folder="demo")


def _store_dataset(
    ws: Workspace,
    file_name: str | None,
    fmt: str,
    write,
    folder: str | None = None,
    stored: str | None = None,
    reading: dict | None = None,
) -> Dataset:
    dataset_id = new_id()
    directory = ws.settings.data_dir / "datasets" / dataset_id / (folder or "")
    directory.mkdir(parents=True)
    path = directory / (stored or DEMO_PATH.name)
    try:
        write(path)
        size = path.stat().st_size
        return register_dataset(ws.store, ws.settings, dataset_id, file_name, path, fmt, size, **(reading or {}))
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


def column_profiles(ws: Workspace, dataset: Dataset, bins: int = 12, levels: int = 8) -> pd.DataFrame:
    """Per learned column: its kind, a small histogram (numbers, dates) or its top levels' counts, and its top level."""
    data = dataset_table(ws, dataset)
    rows = []
    for spec in dataset_schema(dataset).learned_columns():
        values = data[spec.name].dropna()
        numbers = pd.to_numeric(values, errors="coerce").dropna() if spec.kind in NUMERIC_KINDS else None
        if numbers is not None and numbers.nunique() > 2:
            shape = np.histogram(numbers, bins=bins)[0].tolist()
            top = f"{numbers.min():g} to {numbers.max():g}"
        else:
            counts = values.astype(str).value_counts().head(levels)
            shape, top = counts.tolist(), ", ".join(counts.index[:3])
        rows.append({"column": spec.name, "kind": str(spec.kind.value), "shape": shape, "range or top levels": top})
    return pd.DataFrame(rows, columns=["column", "kind", "shape", "range or top levels"])


def suggest_target(schema: TableSchema) -> str | None:
    """A likely outcome column to score utility on: a learned yes/no column, one named like an outcome first."""
    binary = [
        c.name
        for c in schema.learned_columns()
        if c.kind == ColumnKind.BOOLEAN or (c.kind == ColumnKind.CATEGORICAL and c.cardinality == 2)
    ]
    return next((name for name in binary if OUTCOME_NAME.search(name)), binary[0] if binary else None)


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


# -- table sets: a dataset of several related tables ----------------------------------------------
TABLE_SET_FORMAT = "tables"  # Dataset.format of a table set: its path is a folder holding one file per table
TABLE_SET_FOLDER = "tables"


def is_table_set(dataset: Dataset) -> bool:
    """True when the dataset holds several related tables (a table set), not one table."""
    return dataset.format == TABLE_SET_FORMAT


def upload_table_set(ws: Workspace, files: Sequence[tuple[str | None, bytes]], name: str | None = None) -> Dataset:
    """Store uploaded related tables (CSV or Parquet, one per file) in one server-chosen folder and register them
    with their inferred keys and relationships; one InputError names every problem and nothing is kept."""
    names = [table_file_name(file_name, i) for i, (file_name, _) in enumerate(files)]
    problems = table_set_upload_problems(ws.settings, files, names)
    if problems:
        raise InputError(*problems)

    def stage(folder: Path) -> None:
        read_problems = []
        for table, (file_name, content) in zip(names, files):
            try:
                _store_table(ws, folder, table, file_name, content)
            except InputError as exc:
                read_problems += exc.problems
        if read_problems:
            raise InputError(*read_problems)

    return _store_table_set(ws, name, stage)


def table_file_name(file_name: str | None, position: int) -> str:
    """A table's name from its upload's file name, letters, digits and _ only (never a path); table<N> if none."""
    stem = display_name(file_name, "csv").split(".")[0]
    return re.sub(r"[^A-Za-z0-9_]+", "_", stem).strip("_")[:64] or f"table{position + 1}"


def table_set_upload_problems(
    settings: Settings, files: Sequence[tuple[str | None, bytes]], names: list[str]
) -> list[str]:
    """Each problem of a table-set upload in one sentence: too few or too many tables, too large, empty, names."""
    problems = []
    if len(files) < 2:
        problems.append("A dataset of related tables needs at least two table files; upload each table as a file.")
    if len(files) > settings.max_dataset_tables:
        problems.append(
            f"{len(files)} tables were sent; this server takes at most {settings.max_dataset_tables} "
            "(FAIRSYNTH_MAX_DATASET_TABLES)."
        )
    if sum(len(content) for _, content in files) > settings.max_upload_bytes:
        problems.append(too_large_message(settings.max_upload_bytes))
    problems += [
        f"The uploaded file {display_name(file_name, 'csv')} is empty; send a CSV or Parquet table."
        for file_name, content in files
        if not content
    ]
    problems += [f"Two files give the table name '{n}'; rename one." for n in sorted(set(names)) if names.count(n) > 1]
    return problems


def _store_table(ws: Workspace, folder: Path, table: str, file_name: str | None, content: bytes) -> None:
    """Write one uploaded table as <folder>/<table>.csv|.csv.gz|.parquet, a CSV stored again as plain UTF-8."""
    fmt, stored = stored_name(content[:8])
    staging = folder / f".{table}"
    staging.mkdir()
    path = staging / stored
    path.write_bytes(content)
    data = read_table(
        path,
        encoding=None,
        max_unpacked_bytes=ws.settings.max_unpacked_bytes,
        label=display_name(file_name, fmt),
        options=PAGE_CONTROLS,
    )
    if fmt == "csv":
        path = as_plain_csv(path, encoding=data.attrs[TEXT_ENCODING], separator=None)
    path.rename(folder / (table + "".join(path.suffixes)))
    shutil.rmtree(staging)


def split_into_table_set(ws: Workspace, dataset: Dataset, key: str) -> Dataset:
    """A new table set from one long table: its subjects (the key and the columns constant per subject) and events."""
    if is_table_set(dataset):
        raise InputError("This dataset already holds several tables; split a single long table instead.")
    tables = split_long_table(dataset_table(ws, dataset), key)

    def stage(folder: Path) -> None:
        for table, frame in tables.items():
            frame.to_csv(folder / f"{table}.csv", index=False)

    return _store_table_set(ws, f"{dataset.name} by {key}", stage)


def _store_table_set(ws: Workspace, name: str | None, stage) -> Dataset:
    """Let `stage` write the tables into a new dataset folder, then register them; on any error nothing stays."""
    dataset_id = new_id()
    root = ws.settings.data_dir / "datasets" / dataset_id
    folder = root / TABLE_SET_FOLDER
    folder.mkdir(parents=True)
    try:
        stage(folder)
        files = datasets.dataset_files([folder])
        tables = {
            datasets.table_name(p): read_table(p, max_unpacked_bytes=ws.settings.max_unpacked_bytes) for p in files
        }
        schema = datasets.related_schema(tables)
        dataset = Dataset(
            id=dataset_id,
            name=(name or ", ".join(tables))[:255],
            path=str(folder.relative_to(ws.settings.data_dir)),
            format=TABLE_SET_FORMAT,
            size_bytes=sum(p.stat().st_size for p in files),
            rows=len(tables[schema.roots()[0]]),  # subjects
            columns=sum(int(frame.shape[1]) for frame in tables.values()),
            schema_json=schema.to_json(),
            created_at=now(),
        )
        ws.store.add_dataset(dataset)
        return dataset
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def table_set_schema(dataset: Dataset) -> DatasetSchema:
    """The table set's current DatasetSchema: tables, keys, relationships, time columns."""
    return DatasetSchema.from_json(dataset.schema_json)


def table_set_tables(
    ws: Workspace, dataset: Dataset, rows: int | None = None, names: Sequence[str] | None = None
) -> dict[str, pd.DataFrame]:
    """Every table of the table set by name, or only those `names` (each whole, or its first rows)."""
    files = datasets.dataset_files([ws.settings.data_dir / dataset.path])
    wanted = [p for p in files if names is None or datasets.table_name(p) in names]
    tables = {datasets.table_name(p): read_table(p) for p in wanted}
    return {name: frame.head(rows) if rows else frame for name, frame in tables.items()}


def save_table_set_schema(ws: Workspace, dataset: Dataset, schema: DatasetSchema) -> DatasetSchema:
    """Store the user's keys, relationships and time columns once the tables bear them out; one InputError lists
    every problem (an unknown table or column, a key that repeats, a link whose values are not parent keys)."""
    stored = table_set_schema(dataset)
    unknown = sorted(set(schema.names) - set(stored.names))
    if unknown:
        raise InputError(
            *(f"The dataset has no table '{name}'; its tables are {', '.join(stored.names)}." for name in unknown)
        )
    try:
        edited = stored.with_edits(
            primary_keys={t.name: t.primary_key for t in schema.tables},
            relationships=schema.relationships,
            sequences={t.name: t.sequence for t in schema.tables},
        )
    except SchemaError as exc:
        raise InputError(*exc.problems) from None
    problems = datasets.schema_problems(table_set_tables(ws, dataset), edited)
    if problems:
        raise InputError(*problems)
    edited = edited.model_copy(update={"warnings": []})
    ws.store.set_schema(dataset.id, edited.to_json())
    dataset.schema_json = edited.to_json()
    return edited


def dataset_backend_choices(schema: DatasetSchema | None = None) -> list[dict]:
    """Every dataset backend: name, available, reason, fits (it takes this shape; without a schema: None), why_not,
    description, parameters."""
    choices = []
    for info in dataset_backends():
        problem = None
        if info.available and schema is not None:
            problem = registry.backend_class(info.name, registry.DATASET_GROUP).shape_problem(schema)
        choices.append(
            {
                "name": info.name,
                "available": info.available,
                "reason": info.reason,
                "fits": None if schema is None else info.available and problem is None,
                "why_not": info.reason if not info.available else (problem or ""),
                "description": info.capabilities.description if info.capabilities else "",
                "parameters": info.parameter_schema(),
            }
        )
    return choices


def _submit_table_set_job(ws: Workspace, dataset: Dataset, specs: list[dict], subjects: int | None, seed: int) -> Job:
    """Queue a run of dataset backends on a table set with its edited schema: one task per backend."""
    request = table_set_request(ws.settings, dataset, specs, subjects=subjects, seed=seed)
    job = create_dataset_job(
        ws.store,
        ws.settings,
        request,
        executor=ws.executor.name,
        schema=table_set_schema(dataset),
        dataset_id=dataset.id,
    )
    ws.executor.submit(job)
    return ws.store.get_job(job.id)


def table_set_request(
    settings: Settings, dataset: Dataset, specs: list[dict], *, subjects: int | None, seed: int, **options
) -> datasets.DatasetRequest:
    """The dataset run of these backends (dicts of name and params) on a table set; each must be a dataset backend
    that fits it (one sentence naming those that do otherwise). `options`: further DatasetRequest fields."""
    fitting = [c["name"] for c in dataset_backend_choices(table_set_schema(dataset)) if c["fits"]]
    wrong = [spec["name"] for spec in specs if spec["name"] not in fitting]
    if wrong:
        raise InputError(
            f"{', '.join(wrong)} cannot run on this table set; choose among the dataset backends that fit it: "
            f"{', '.join(fitting) or 'none is available here'}."
        )
    return datasets.DatasetRequest(
        input_paths=[str(settings.data_dir / dataset.path)],
        backends=[BackendSpec(name=spec["name"], params=spec.get("params") or {}) for spec in specs],
        subjects=subjects,
        seed=seed,
        batch_subjects=settings.dataset_batch_subjects,
        neutralise=settings.neutralise_csv_formulas,
        quality_rows=settings.dataset_quality_rows,
        **options,
    )


def is_dataset_job(job: Job) -> bool:
    """True when the job runs dataset backends on a table set."""
    return job.request.get("kind") == "dataset"


def dataset_metrics(ws: Workspace, job: Job, backend: str) -> dict | None:
    """One dataset backend's metrics.json as a dict (None when it failed or has not ended)."""
    path = artefact(ws, job, backend, "metrics")
    return json.loads(path.read_text()) if path else None


def synthetic_tables(ws: Workspace, job: Job, backend: str, rows: int = 2000) -> dict[str, pd.DataFrame]:
    """The first rows of each synthetic table one dataset backend wrote, by table name (empty before it ended)."""
    schema = DatasetSchema.from_json((run_dir(ws, job) / datasets.SCHEMA_PATH).read_text())
    found = {name: artefact(ws, job, backend, table_artefact(name)) for name in schema.names}
    return {
        name: pd.read_parquet(path).head(rows) if path.suffix == ".parquet" else pd.read_csv(path, nrows=rows)
        for name, path in found.items()
        if path is not None
    }


# -- backends and estimates -----------------------------------------------------------------------
def backends() -> list[dict]:
    """Every declared backend: name, available, reason, capabilities, parameters (JSON schema)."""
    return backend_catalog()


def second_evaluator_availability() -> tuple[bool, str]:
    """Whether mostlyai-qa, the second evaluator, can run here; why not, with the fix."""
    return second.availability()


def task_work(backend: dict, params: dict, train_rows: int, rows: int, width: int, anonymeter: bool) -> estimates.Work:
    """What one backend's task will do, for the estimate."""
    epochs = params.get("epochs") or parameter_defaults(backend["parameters"]).get("epochs") or 1
    family = backend["capabilities"].get("family", "")
    fit_cost = _relative_fit_cost(backend, params, width, train_rows)
    return estimates.Work(backend["name"], family, train_rows, rows, width, int(epochs), anonymeter, fit_cost)


def _relative_fit_cost(backend: dict, params: dict, width: int, train_rows: int) -> float:
    """What the backend says its fit costs against the recorded runs' (tvae's larger default network), else 1."""
    if not backend.get("available"):
        return 1.0
    declared = getattr(registry.backend_class(backend["name"]), "relative_fit_cost", None)
    return float(declared(params, width, train_rows)) if declared else 1.0


def run_estimate(
    ws: Workspace, dataset: Dataset, chosen: list[dict], params: dict, rows: int, anonymeter: bool
) -> tuple[pd.DataFrame, float]:
    """Each chosen backend's seconds per stage and peak memory, and the whole run's seconds, on this machine now."""
    train_rows = max(1, round(dataset.rows * (1 - GenerationRequest().holdout_share)))
    width = estimates.encoded_width(dataset_schema(dataset))
    works = [task_work(b, params.get(b["name"], {}), train_rows, rows, width, anonymeter) for b in chosen]
    probe = estimates.current_probe()
    table = pd.DataFrame(
        [
            {"backend": w.backend}
            | {
                estimates.STAGE_NAMES[k]: round(v, 1)
                for k, v in estimates.task_estimate(w, probe).items()
                if k != "crate"
            }
            | {"memory_mb": estimates.peak_memory_mb(w)}
            for w in works
        ]
    )
    return table, estimates.run_estimate(works, ws.settings.workers, probe)


def job_times(ws: Workspace, job: Job) -> dict | None:
    """A job's elapsed and remaining seconds and the share done, from its run directory; None before it is prepared."""
    directory = run_dir(ws, job)
    if not (directory / "request.json").is_file() or not (directory / "schema.json").is_file():
        return None
    context = json.loads((directory / "request.json").read_text())
    width = estimates.encoded_width(TableSchema.from_json((directory / "schema.json").read_text()))
    request, train_rows = context["request"], context["split"]["train_rows"]
    catalog = {b["name"]: b for b in backends()}
    works = {
        spec["name"]: task_work(
            catalog[spec["name"]],
            spec.get("params") or {},
            train_rows,
            request.get("rows") or train_rows,
            width,
            request.get("anonymeter", True),
        )
        for spec in request["backends"]
        if spec["name"] in catalog
    }
    return estimates.job_times(job, works, ws.settings.workers, estimates.current_probe(), now())


# -- jobs -----------------------------------------------------------------------------------------
def submit_job(
    ws: Workspace,
    dataset: Dataset,
    specs: list[dict],
    *,
    rows: int | None,
    seed: int = 0,
    anonymeter: bool = True,
    second_evaluator: bool = False,
    min_level_rows: int | None = None,
) -> Job:
    """Queue a run of these backends (dicts of name and params) on the dataset with its edited schema and rules.

    On a table set the backends must be dataset backends that fit it, `rows` is the number of synthetic subjects
    and the single-table options (anonymeter, second evaluator, rare levels) do not apply.
    """
    if is_table_set(dataset):
        return _submit_table_set_job(ws, dataset, specs, rows, seed)
    raw = {
        "input_path": str(ws.settings.data_dir / dataset.path),
        "backends": specs,
        "rows": rows,
        "seed": seed,
        "anonymeter": anonymeter,
        "second_evaluator": second_evaluator,
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


def progress_frame(job: Job, times: dict | None = None) -> pd.DataFrame:
    """One row per backend: state, stage, progress over its whole task (with `times`: job_times), epoch, loss,
    rows written, seconds left and the message or error."""
    return pd.DataFrame(
        [
            {
                "backend": t.backend,
                "state": t.state,
                "stage": estimates.STAGE_NAMES.get(t.stage or "", t.stage or ""),
                "progress": times["done"].get(t.backend, 0.0)
                if times
                else (1.0 if t.state == TaskState.SUCCEEDED else 0.0),
                "epoch": t.epoch,
                "loss": t.loss,
                "rows written": t.rows_written or 0,
                "fit s": None if t.fit_seconds is None else round(t.fit_seconds, 1),
                "≈ s left": round(times["left"].get(t.backend, 0.0)) if times else None,
                "message": t.error or t.message or "",
            }
            for t in job.tasks
        ]
    )


def delete_job(ws: Workspace, job_id: str) -> None:
    """Delete an ended job: its run directory (results, crates) and its record; a running job is refused."""
    job = ws.store.get_job(job_id)
    if not is_ended(job):
        raise InputError("This run is still going; cancel it first, then delete it.")
    directory = run_dir(ws, job).resolve()
    if directory.is_relative_to(ws.settings.data_dir.resolve()):  # never outside the data directory
        shutil.rmtree(directory, ignore_errors=True)
    ws.store.delete_job(job_id)


def runs_frame(ws: Workspace, jobs: list[Job]) -> pd.DataFrame:
    """Earlier jobs for the Past runs page: when, table, backends, each backend's gate decision, duration, state."""

    def table_name(job: Job) -> str:
        return job_input_name(ws, job)

    def gates(job: Job) -> str:
        table = comparison(ws, job)
        if table.empty or "decision" not in table:
            return ""
        return ", ".join(
            f"{row.backend}: {row.decision}" for row in table.itertuples() if isinstance(row.decision, str)
        )

    def took(job: Job) -> float | None:
        return (job.finished_at - job.created_at).total_seconds() if job.finished_at else None

    return pd.DataFrame(
        [
            {
                "job": j.id,
                "created": j.created_at.strftime("%Y-%m-%d %H:%M"),
                "table": table_name(j),
                "backends": ", ".join(t.backend for t in j.tasks),
                "release gate": gates(j),
                "took s": took(j),
                "state": j.state,
                "error": j.error or "",
            }
            for j in jobs
        ],
        columns=["job", "created", "table", "backends", "release gate", "took s", "state", "error"],
    )


def job_input_name(ws: Workspace, job: Job) -> str:
    """What the job ran on, as shown: its dataset's name, else its input file's (or files') name."""
    if job.dataset_id:
        return ws.store.get_dataset(job.dataset_id).name
    request = job.request
    return ", ".join(Path(p).name for p in request.get("input_paths") or [request.get("input_path") or "demo"])


# -- results --------------------------------------------------------------------------------------
def run_dir(ws: Workspace, job: Job) -> Path:
    """The job's run directory."""
    return ws.settings.data_dir / job.run_dir


def comparison(ws: Workspace, job: Job) -> pd.DataFrame:
    """The side-by-side comparison of the job's backends (empty until the job has ended); for a dataset job one row
    per dataset backend: status, gate decision, every dataset metric."""
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


def threshold_decisions(table: pd.DataFrame, gates: dict[str, GateResult]) -> pd.DataFrame:
    """For each backend's value of a metric the release gate checks: pass, flag or block against its threshold."""
    decisions = pd.DataFrame("", index=table.index, columns=table.columns)
    for index, row in table.iterrows():
        gate = gates.get(row["backend"])
        for name in table.columns.intersection(list(BY_METRIC)):
            if gate is not None and pd.notna(row[name]):
                decisions.loc[index, name] = BY_METRIC[name].judge(float(row[name]), gate.policy)
    return decisions


def recommend(
    table: pd.DataFrame, priority: str, results: dict[str, EvaluationResult | None] | None = None
) -> tuple[str | None, str]:
    """The best released-or-flagged backend by the priority's metric, better as its declaration says, and why.

    With `results`, a backend whose bootstrap interval overlaps the best one's is a tie: no backend is picked.
    """
    metric = PRIORITIES[priority]
    ok = table[table.get("status") == "ok"] if not table.empty else table
    measured = ok.dropna(subset=[metric.name]) if metric.name in ok else ok.iloc[0:0]
    if measured.empty:
        why = " — no target column was set for this run: tick one on the Data page" if metric is UTILITY_RATIO else ""
        return None, f"No backend has a {metric.label} measure{why}."
    usable = measured[measured["decision"] != "block"]
    if usable.empty:
        return None, f"The release gate blocked every backend with a {metric.label} measure."
    best = usable.loc[usable[metric.name].map(metric.score).idxmax()]
    tied = _tied_with(str(best["backend"]), list(usable["backend"]), results or {}, metric)
    if tied:
        names = ", ".join([str(best["backend"]), *tied])
        return None, f"A tie on {metric.label} between {names}: their {CONFIDENCE:.0%} intervals overlap."
    value = metric.text(best[metric.name])
    return str(
        best["backend"]
    ), f"best {metric.label} ({value}, {metric.goal_text}) among results the gate did not block"


def _tied_with(best: str, names: list[str], results: dict[str, EvaluationResult | None], metric) -> list[str]:
    """The other backends whose interval of the metric overlaps the best one's."""

    def bounds(name: str) -> list | None:
        found = results.get(name)
        interval = found.interval(metric) if found else None
        return interval if interval and None not in interval else None

    mine = bounds(best)
    return [
        name
        for name in names
        if mine and name != best and (other := bounds(name)) and other[0] <= mine[1] and mine[0] <= other[1]
    ]


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
    given = {"a title": title, "a description": description, "an author": authors}
    missing = [label for label, value in given.items() if not value.strip()]
    if missing:
        raise ConfigError(f"Give the crate {' and '.join(missing)}: every FAIR crate names what it is and who made it.")
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
    if is_dataset_job(job):
        return _package_dataset_crates(ws, job, info)
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


def _package_dataset_crates(ws: Workspace, job: Job, info) -> dict[str, dict]:
    """One crate per dataset backend whose result the gate did not block, validated; the blocked ones say why."""
    directory = run_dir(ws, job)
    plan = datasets.load_dataset_plan(directory, tables=False)
    outcomes = [datasets.dataset_outcome_from_json(t.outcome_json) for t in job.tasks if t.outcome_json]
    blocked = {o.backend: o.metrics["gate"] for o in outcomes if o.metrics["gate"]["decision"] == "block"}
    crates = package_dataset_crates(
        directory,
        [o for o in outcomes if o.backend not in blocked],
        plan.schema,
        info,
        plan.context,
        neutralise=plan.request.neutralise,
    )
    record_dataset_crates(ws.store, job, directory, crates)
    results = {
        backend: {"crate": str(path), "error": None, "validation": validate(ws, path)}
        for backend, path in crates.items()
    }
    for backend, gate in blocked.items():
        reasons = "; ".join(gate["reasons"])
        results[backend] = {
            "crate": None,
            "error": f"no crate: the release gate blocked this result ({reasons})",
            "validation": None,
        }
    return results


def download_name(ws: Workspace, job: Job, backend: str, path: Path) -> str:
    """The name a downloaded result gets: `<table>-<backend>-<date>` and the file's own suffixes."""
    table = job_input_name(ws, job)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", table.split(".")[0]) or "table"
    suffixes = "".join(path.suffixes[-2:]) if path.name.endswith(".crate.zip") else path.suffix
    return f"{stem}-{backend}-{job.created_at:%Y-%m-%d}{suffixes}"


def validate(ws: Workspace, crate_zip: Path) -> dict:
    """Validate a crate zip offline as shipped and unpacked (the check behind "valid crate"): ok, summary, issues."""
    report = validate_crate(crate_zip, limits=ws.settings)
    return {"ok": report.ok, "summary": report.summary(), "issues": report.issues + report.skipped}


def pagetab(ws: Workspace, job: Job, backend: str) -> Path | None:
    """The BioStudies PageTab JSON written into a packaged backend's directory, or None before packaging."""
    if is_dataset_job(job):
        path = run_dir(ws, job) / f"{backend}.crate" / PAGETAB_PATH
        return path if path.is_file() else None
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
