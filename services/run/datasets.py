"""A dataset run: several related tables in, whole synthetic subjects out (every table), evaluated.

Split like a one-table run (services/run/pipeline.py), so a job runs one task per backend:
`prepare_dataset_run` reads the tables, infers the DatasetSchema with its cross-table rules (or checks an
edited one), splits by subject (a root row and
all its descendants go to the same side), checks every backend and writes the plan to the run directory;
`run_planned_dataset_backend` fits one backend on the training subjects, saves
the fitted model (<run>/<backend>/model/), streams batches of subjects into one
file per table and evaluates -> <run>/<backend>/metrics.json and report.html; `finish_dataset_run` writes
comparison.csv and, given crate metadata, one crate per releasable backend (services/run/dataset_crate.py) ->
<run>/<backend>.crate.zip. `run_dataset` is the three in one process (the CLI).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Self, TypeGuard

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fairsynth.backends.base import FitResult, Progress
from fairsynth.backends.dataset import DatasetGenerator, create_dataset_generator
from fairsynth.metadata.checksums import sha256_file
from fairsynth.metadata.dataset import DatasetSchema, TableKeys
from fairsynth.metadata.dataset_rules import infer_dataset_with_rules, with_detected_dataset_rules
from fairsynth.metadata.model import CrateInfo
from fairsynth.metadata.rules import MIN_RULE_SUPPORT
from fairsynth.metadata.schema import SchemaError
from fairsynth.metadata.spreadsheet import write_csv
from fairsynth.services.run.config import BackendSpec, ConfigError, parse_fields, read_config
from fairsynth.services.run.dataset_crate import DatasetOutcome, dataset_context, package_dataset_crates
from fairsynth.services.run.evaluation.frames import QUALITY_ROWS
from fairsynth.services.run.evaluation.metrics import DATASET_METRICS
from fairsynth.services.run.evaluation.relational import evaluate_dataset
from fairsynth.services.run.evaluation.relational_results import DatasetEvaluation
from fairsynth.services.run.pipeline import ProgressSink, RunError
from fairsynth.services.run.report import render_dataset_report
from fairsynth.services.run.tables import InputError, read_table
from fairsynth.services.run.writers import BatchWriter

TABLE_SUFFIXES = (".csv", ".parquet", ".csv.gz", ".csv.bz2", ".csv.xz", ".csv.zip")
DEFAULT_DATASET_BACKEND = "relational"
PLAN_PATH = "plan.json"  # the DatasetRequest of a prepared run
SCHEMA_PATH = "dataset.json"  # the DatasetSchema the run used
CONTEXT_PATH = "request.json"  # what every crate of the run says about its input and request
MODEL_FOLDER = "model"  # <run>/<backend>/model/: the fitted generator, as a one-table run's
CRATE_WHAT = "Synthetic related tables"  # what a dataset crate's default description says was generated
COMPARISON_COLUMNS = ["backend", "status", "decision", *(m.name for m in DATASET_METRICS), "fit_seconds", "error"]


class TableSpec(TableKeys):
    """One table of a dataset file's `tables:` list: its file, its name (default: the file's stem) and the keys
    given; a key left out is inferred."""

    path: str

    @model_validator(mode="before")
    @classmethod
    def _named_after_the_file(cls, raw: object) -> object:
        if isinstance(raw, dict) and raw.get("name") is None and isinstance(raw.get("path"), str):
            return {**raw, "name": table_name(Path(raw["path"]))}
        return raw


class DatasetRequest(BaseModel):
    """Everything that defines a dataset run; stored as a dataset job's request and as <run>/plan.json (with every
    table's keys as used)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["dataset"] = "dataset"  # tells a dataset job's request from a GenerationRequest
    input_paths: list[str] = Field(
        default_factory=list, description="the table files (or a folder holding them); default: the tables' paths"
    )
    tables: list[TableSpec] = Field(
        default_factory=list,
        description="each table's file, name and keys (a dataset file's `tables:`); given, these are the tables read",
    )
    backends: list[BackendSpec] = Field(default_factory=lambda: [BackendSpec(name=DEFAULT_DATASET_BACKEND)])
    subjects: int | None = Field(None, ge=1, description="synthetic subjects (root rows); default: as many as trained")
    seed: int = Field(0, ge=0, le=2**32 - 1)
    holdout_share: float = Field(0.2, ge=0.05, le=0.5)
    output_format: Literal["csv", "parquet"] = "csv"
    encoding: str | None = None
    separator: str | None = None
    batch_subjects: int = Field(1_000, ge=1)
    neutralise: bool = True
    quality_rows: int = Field(QUALITY_ROWS, ge=100)
    crate: dict | None = Field(None, description="CrateInfo fields: given, the job ends with one crate per backend")

    @model_validator(mode="after")
    def _tables_named(self) -> Self:
        """input_paths default to the tables' paths; a request with neither names no table."""
        if not self.input_paths and not self.tables:
            raise ValueError("name the tables: input_paths (the files or a folder) or tables (a path each)")
        self.input_paths = self.input_paths or [t.path for t in self.tables]
        return self


@dataclass
class DatasetPlan:
    """Everything a backend of a dataset run needs, rebuilt identically in any process from the run directory."""

    request: DatasetRequest
    run_dir: Path
    schema: DatasetSchema
    sources: dict[str, Path]  # table -> its file
    train: dict[str, pd.DataFrame]
    holdout: dict[str, pd.DataFrame]
    context: dict

    @property
    def subjects(self) -> int:
        """Synthetic subjects each backend writes."""
        return self.request.subjects or len(self.train[self.schema.roots()[0]])


@dataclass
class DatasetRunResult:
    """Where a dataset run wrote its files and what each backend measured."""

    directory: Path
    schema: DatasetSchema
    metrics: dict[str, dict] = field(default_factory=dict)
    crates: dict[str, Path] = field(default_factory=dict)  # backend -> <run>/<backend>.crate.zip


def dataset_files(paths: Sequence[Path]) -> list[Path]:
    """The table files named, a folder standing for every table file in it (sorted)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.name.lower().endswith(TABLE_SUFFIXES))
        else:
            files.append(path)
    return files


def table_name(path: Path) -> str:
    """A table's name: its file name without the suffixes (pbcseq.csv.gz -> pbcseq)."""
    return path.name.split(".")[0]


def request_sources(request: DatasetRequest) -> list[tuple[str, Path]]:
    """Each table's name and file: the request's tables as named, else every file its input_paths name."""
    if request.tables:
        return [(t.name, Path(t.path)) for t in request.tables]
    return [(table_name(p), p) for p in dataset_files([Path(p) for p in request.input_paths])]


def read_dataset(
    paths: Sequence[Path], *, encoding: str | None = None, separator: str | None = None
) -> dict[str, pd.DataFrame]:
    """Every table of the files (a folder: each table file in it), by name (the file's stem)."""
    sources = [(table_name(p), p) for p in dataset_files(paths)]
    return read_sources(sources, encoding=encoding, separator=separator)


def read_sources(
    sources: Sequence[tuple[str, Path]], *, encoding: str | None = None, separator: str | None = None
) -> dict[str, pd.DataFrame]:
    """Every table, by name; one InputError for too few tables, two tables of one name or files not there."""
    names = [name for name, _ in sources]
    problems = [f"Two files give the table name '{n}'; rename one." for n in sorted(set(names)) if names.count(n) > 1]
    if len(sources) < 2:
        problems.append("A dataset needs at least two table files (or a folder holding them).")
    problems += missing_files(path for _, path in sources)
    if problems:
        raise InputError(*problems)
    return {name: read_table(path, encoding=encoding or "utf-8", separator=separator) for name, path in sources}


def missing_files(paths: Iterable[Path]) -> list[str]:
    """One sentence per file that is not there."""
    return [f"There is no file {path}; check its path." for path in paths if not path.is_file()]


def load_dataset_request(path: Path) -> DatasetRequest:
    """A dataset file (YAML or JSON with a `tables:` list, each path relative to the file): its request, with one
    ConfigError naming every bad field and every table file that is not there."""
    raw = read_config(path)
    if not has_tables(raw):
        raise ConfigError(f"{path} has no `tables:` list; list each table's path under it.")
    given = [_path_of(table) for table in raw["tables"]]
    paths = [path.parent / given_path for given_path in given if given_path is not None]
    tables = [
        {**table, "path": str(path.parent / given_path)} if given_path is not None else table
        for table, given_path in zip(raw["tables"], given)
    ]
    return parse_fields(DatasetRequest, {**raw, "tables": tables}, str(path), problems=missing_files(paths))


def _path_of(table: object) -> str | None:
    """A `tables:` entry's path as written, if it has one."""
    return table["path"] if isinstance(table, dict) and isinstance(table.get("path"), str) else None


def has_tables(raw: object) -> TypeGuard[dict]:
    """True when a config file's content is a dataset's: a mapping with a `tables:` list."""
    return isinstance(raw, dict) and isinstance(raw.get("tables"), list)


def dataset_schema(
    tables: Mapping[str, pd.DataFrame], keys: Sequence[TableKeys] = (), *, min_support: int = MIN_RULE_SUPPORT
) -> DatasetSchema:
    """The inferred schema with the keys given over it (inferred where not given; one SchemaError lists every key
    the tables contradict), then every rule within each table and across tables detected on those keys."""
    if not keys:
        return infer_dataset_with_rules(tables, min_support=min_support)
    keyed = DatasetSchema.infer(tables).with_table_keys(keys)
    problems = schema_problems(tables, keyed)
    if problems:
        raise SchemaError(*problems)
    return with_detected_dataset_rules(keyed, tables, min_support=min_support)


def keys_as_used(schema: DatasetSchema, sources: Mapping[str, Path]) -> list[TableSpec]:
    """Every table's file and keys as the run used them (what plan.json records)."""
    specs = []
    for name, path in sources.items():
        link, entry = schema.parent_of(name), schema.entry(name)
        specs.append(
            TableSpec(
                path=str(path),
                name=name,
                primary_key=entry.primary_key,
                parent=link.parent if link else None,
                foreign_key=link.child_key if link else None,
                time=entry.sequence,
            )
        )
    return specs


def related_schema(tables: Mapping[str, pd.DataFrame], schema: DatasetSchema | None = None) -> DatasetSchema:
    """The given (or inferred, with its cross-table rules) schema, checked; one InputError saying how to name keys
    when no table links."""
    schema = (schema or infer_dataset_with_rules(tables)).checked()
    if not schema.relationships:
        raise InputError(
            "No relationship was found between the tables: a child table needs a column named as its parent's "
            "key (e.g. patient_id for patients.id) whose values are all parent keys; rename it or pass a schema."
        )
    return schema


def schema_problems(tables: Mapping[str, pd.DataFrame], schema: DatasetSchema) -> list[str]:
    """What the tables contradict in a (structurally checked) schema, one sentence each: keys that repeat or are
    missing, links whose child values are not all parent keys, no relationship at all."""
    problems = []
    for entry in schema.tables:
        key = entry.primary_key
        if key and not (tables[entry.name][key].notna().all() and tables[entry.name][key].is_unique):
            problems.append(
                f"'{key}' cannot be the primary key of '{entry.name}': it repeats or is missing; choose another column."
            )
    for r in schema.relationships:
        parent_keys = tables[r.parent][r.parent_key]
        if not parent_keys.is_unique:
            problems.append(f"{r.parent}.{r.parent_key} repeats, so it cannot be the key {r.child} rows point to.")
        elif not tables[r.child][r.child_key].dropna().isin(set(parent_keys)).all():
            problems.append(
                f"Some {r.child}.{r.child_key} values are not {r.parent}.{r.parent_key} values; link another column."
            )
    if not schema.relationships:
        problems.append("Link at least two tables: a dataset of related tables needs one relationship.")
    return problems


def split_by_subject(
    tables: Mapping[str, pd.DataFrame], schema: DatasetSchema, holdout_share: float, seed: int
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """Seeded train/holdout split of whole subjects: root rows are split, every descendant follows its parent."""
    train, holdout = {}, {}
    for name in schema.top_down():
        data, link = tables[name], schema.parent_of(name)
        if link is None:
            order = np.random.default_rng(seed).permutation(len(data))
            n_holdout = max(1, int(round(len(data) * holdout_share)))
            held = np.zeros(len(data), dtype=bool)
            held[order[:n_holdout]] = True
        else:
            held = data[link.child_key].isin(set(holdout[link.parent][link.parent_key])).to_numpy()
        train[name], holdout[name] = data[~held].reset_index(drop=True), data[held].reset_index(drop=True)
    return train, holdout


# -- the three steps ------------------------------------------------------------------------------
def prepare_dataset_run(request: DatasetRequest, out: Path, schema: DatasetSchema | None = None) -> DatasetPlan:
    """Read, infer with the request's keys (or check the given schema), check every backend, split by subject and
    write the plan to `out`."""
    named = request_sources(request)
    tables = read_sources(named, encoding=request.encoding, separator=request.separator)
    sources = dict(named)
    schema = related_schema(tables, schema or dataset_schema(tables, request.tables))
    misfits = [problem for spec in request.backends if (problem := _generator(spec).shape_problem(schema))]
    if misfits:
        raise InputError(*misfits)
    out.mkdir(parents=True, exist_ok=True)
    (out / SCHEMA_PATH).write_text(schema.to_json())
    train, holdout = split_by_subject(tables, schema, request.holdout_share, request.seed)
    plan = DatasetPlan(request, out, schema, sources, train, holdout, {})
    small = {"backends": [s.name for s in request.backends], "subjects": plan.subjects, "seed": request.seed}
    small |= {"holdout_share": request.holdout_share, "format": request.output_format}
    small |= {"batch_subjects": request.batch_subjects}
    plan.context = dataset_context(sources, train, holdout, schema, small)
    (out / CONTEXT_PATH).write_text(json.dumps(plan.context, indent=2, default=str))
    used = request.model_copy(update={"tables": keys_as_used(schema, sources)})
    (out / PLAN_PATH).write_text(used.model_dump_json(indent=2))
    return plan


def is_dataset_run(run_dir: Path) -> bool:
    """True when the run directory holds a prepared dataset run (not a one-table run)."""
    return (run_dir / PLAN_PATH).is_file()


def load_dataset_plan(run_dir: str | Path, *, tables: bool = True) -> DatasetPlan:
    """Rebuild a prepared dataset run's plan from its directory (in a worker process); the tables must be unchanged.

    `tables` False: without the split tables (finishing and packaging need only the schema and the context).
    """
    run_dir = Path(run_dir)
    request = DatasetRequest.model_validate_json((run_dir / PLAN_PATH).read_text())
    schema = DatasetSchema.from_json((run_dir / SCHEMA_PATH).read_text())
    context = json.loads((run_dir / CONTEXT_PATH).read_text())
    sources = dict(request_sources(request))
    if not tables:
        return DatasetPlan(request, run_dir, schema, sources, {}, {}, context)
    changed = [p.name for p in sources.values() if sha256_file(p) != context["source"]["files"].get(p.name)]
    if changed:
        raise RunError(f"{', '.join(changed)} changed after the run was prepared; submit the run again.")
    tables = read_sources(list(sources.items()), encoding=request.encoding, separator=request.separator)
    train, holdout = split_by_subject(tables, schema, request.holdout_share, request.seed)
    return DatasetPlan(request, run_dir, schema, sources, train, holdout, context)


def run_planned_dataset_backend(plan: DatasetPlan, name: str, progress: ProgressSink | None = None) -> DatasetOutcome:
    """Fit, stream and evaluate one backend of a prepared dataset run into <run>/<name> (one task of a job).

    The result is written to <run>/.<name>.partial and renamed into place when complete: a failed or cancelled
    backend leaves nothing that looks finished.
    """
    spec = next((s for s in plan.request.backends if s.name == name), None)
    if spec is None:
        names = ", ".join(s.name for s in plan.request.backends)
        raise RunError(f"{name} is not a backend of this run; choose one of {names}.")
    progress = progress or (lambda _: None)
    partial, folder = plan.run_dir / f".{name}.partial", plan.run_dir / name
    shutil.rmtree(partial, ignore_errors=True)
    try:
        outcome = _produce(plan, _generator(spec), partial, progress)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return _moved(outcome, partial, folder)


def finish_dataset_run(
    plan: DatasetPlan,
    outcomes: Sequence[DatasetOutcome],
    crate: CrateInfo | None = None,
    failed: Mapping[str, str] | None = None,
) -> DatasetRunResult:
    """After every backend ended: comparison.csv of the backends (`failed`: backend -> error) and, with `crate`,
    a crate per releasable one."""
    result = DatasetRunResult(plan.run_dir, plan.schema, metrics={o.backend: o.metrics for o in outcomes})
    write_dataset_comparison(plan.run_dir, outcomes, neutralise=plan.request.neutralise, failed=failed)
    if crate is not None:
        releasable = [o for o in outcomes if o.metrics["gate"]["decision"] != "block"]  # as for one table
        result.crates = package_dataset_crates(
            plan.run_dir, releasable, plan.schema, crate, plan.context, neutralise=plan.request.neutralise
        )
    return result


def run_dataset(
    paths: Sequence[Path],
    out: Path,
    *,
    backends: Sequence[str] = (DEFAULT_DATASET_BACKEND,),
    params: Mapping[str, Mapping[str, object]] | None = None,
    subjects: int | None = None,
    seed: int = 0,
    holdout_share: float = 0.2,
    fmt: str = "csv",
    schema: DatasetSchema | None = None,
    encoding: str | None = None,
    separator: str | None = None,
    batch_subjects: int = 1_000,
    neutralise: bool = True,
    crate: CrateInfo | None = None,
    quality_rows: int = QUALITY_ROWS,
) -> DatasetRunResult:
    """Read, infer, split by subject, then per backend fit, stream every table's synthetic rows and evaluate;
    with `crate` (the user's crate metadata), one crate per backend.

    The entry points pass the settings' FAIRSYNTH_DATASET_BATCH_SUBJECTS, FAIRSYNTH_NEUTRALISE_CSV_FORMULAS and
    FAIRSYNTH_DATASET_QUALITY_ROWS.
    """
    request = DatasetRequest(
        input_paths=[str(p) for p in paths],
        backends=[BackendSpec(name=name, params=dict((params or {}).get(name, {}))) for name in backends],
        subjects=subjects,
        seed=seed,
        holdout_share=holdout_share,
        output_format=fmt,  # type: ignore[arg-type]  # the CLI offers csv and parquet only
        encoding=encoding,
        separator=separator,
        batch_subjects=batch_subjects,
        neutralise=neutralise,
        quality_rows=quality_rows,
    )
    return run_dataset_request(request, out, schema=schema, crate=crate)


def run_dataset_request(
    request: DatasetRequest, out: Path, *, schema: DatasetSchema | None = None, crate: CrateInfo | None = None
) -> DatasetRunResult:
    """Prepare, run every backend and finish a dataset run in this process (what run_dataset and the CLI do)."""
    plan = prepare_dataset_run(request, out, schema)
    outcomes = [run_planned_dataset_backend(plan, spec.name) for spec in request.backends]
    return finish_dataset_run(plan, outcomes, crate)


# -- one backend ----------------------------------------------------------------------------------
def _generator(spec: BackendSpec) -> DatasetGenerator:
    """A new dataset generator with its parameters checked (an unknown backend or parameter: one clear error)."""
    return create_dataset_generator(spec.name, **spec.params)


def _produce(plan: DatasetPlan, generator: DatasetGenerator, folder: Path, progress: ProgressSink) -> DatasetOutcome:
    """Fit, stream and evaluate one generator into `folder`, reporting each stage."""
    name, seed = generator.name, plan.request.seed
    times = {"fit_start": _now()}
    progress(Progress(name, "fit", 0, None, message="fitting every table"))
    fit = generator.fit(plan.train, plan.schema, seed=seed, progress=progress)
    times["fit_end"] = _now()
    generator.save(folder / MODEL_FOLDER)
    times["sample_start"] = _now()
    batches = generator.sample(plan.subjects, seed=seed, batch_subjects=plan.request.batch_subjects)
    files = _write(_reported(batches, plan, name, progress), folder, plan.schema, plan.request)
    times["sample_end"] = _now()
    progress(Progress(name, "evaluate", 0, 1, message="measuring quality, integrity, subject privacy"))
    synthetic = {t: _read_back(path) for t, path in files.items()}
    evaluation = evaluate_dataset(
        plan.train, plan.holdout, synthetic, plan.schema, seed=seed, max_rows=plan.request.quality_rows
    )
    metrics = {"backend": name, "fit_seconds": fit.seconds, **evaluation.model_dump(mode="json")}
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    report = folder / "report.html"
    report.write_text(render_dataset_report(plan.train, synthetic, plan.schema, metrics, backend=name, seed=seed))
    progress(Progress(name, "evaluate", 1, 1, message=f"gate {metrics['gate']['decision']}"))
    rows = {t: len(frame) for t, frame in synthetic.items()}
    used = generator.params.model_dump(mode="json")  # every parameter, defaults included
    return DatasetOutcome(name, files, rows, fit, used, times, metrics, report, folder / MODEL_FOLDER)


def _reported(batches, plan: DatasetPlan, name: str, progress: ProgressSink):
    """The batches unchanged, reporting the subjects written so far after each one."""
    root, written, start = plan.schema.roots()[0], 0, time.perf_counter()
    for batch in batches:
        yield batch
        written += len(batch.get(root, ()))
        progress(Progress(name, "sample", written, plan.subjects, seconds=time.perf_counter() - start))


def _moved(outcome: DatasetOutcome, old: Path, new: Path) -> DatasetOutcome:
    """The outcome with its files' paths in the backend's final folder."""
    outcome.files = {t: new / p.relative_to(old) for t, p in outcome.files.items()}
    outcome.report = new / outcome.report.relative_to(old) if outcome.report else None
    outcome.model = new / outcome.model.relative_to(old) if outcome.model else None
    return outcome


def _now() -> datetime:
    return datetime.now(UTC)


def _write(batches, folder: Path, schema: DatasetSchema, request: DatasetRequest) -> dict[str, Path]:
    """Stream each batch of subjects into one file per table; only the current batch is held in memory."""
    fmt, neutralise = request.output_format, request.neutralise
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{name}.{fmt}" for name in schema.names}
    writers = {name: BatchWriter(path, fmt, neutralise=neutralise) for name, path in paths.items()}
    try:
        for batch in batches:
            for name, frame in batch.items():
                if len(frame):
                    writers[name].write(frame)
    finally:
        for writer in writers.values():
            writer.close()
    for name, path in paths.items():
        if not path.exists():  # a table with no rows at all: its header only
            empty = pd.DataFrame(columns=schema.entry(name).table.names)
            empty.to_parquet(path) if fmt == "parquet" else empty.to_csv(path, index=False)
    return paths


def _read_back(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


# -- comparison and stored outcomes ---------------------------------------------------------------
def dataset_comparison_table(
    outcomes: Sequence[DatasetOutcome], failed: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """One row per backend: status, gate decision, every declared dataset metric, fit seconds, error."""
    rows = [
        {
            "backend": o.backend,
            "status": "ok",
            "decision": o.metrics["gate"]["decision"],
            **DatasetEvaluation.model_validate(o.metrics).headline(),
            "fit_seconds": o.fit.seconds,
            "error": "",
        }
        for o in outcomes
    ]
    rows += [{"backend": name, "status": "failed", "error": error} for name, error in (failed or {}).items()]
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def write_dataset_comparison(
    run_dir: Path, outcomes: Sequence[DatasetOutcome], *, neutralise: bool, failed: Mapping[str, str] | None = None
) -> None:
    """<run>/comparison.csv: the backends side by side (failed ones with their error)."""
    write_csv(dataset_comparison_table(outcomes, failed), run_dir / "comparison.csv", neutralise=neutralise)


def dataset_outcome_to_json(outcome: DatasetOutcome) -> str:
    """A dataset backend's outcome as JSON (to store it between processes)."""
    return json.dumps(
        {
            "backend": outcome.backend,
            "files": {t: str(p) for t, p in outcome.files.items()},
            "rows": outcome.rows,
            "fit": outcome.fit.to_dict(),
            "params": outcome.params,
            "times": {k: v.isoformat() for k, v in outcome.times.items()},
            "report": str(outcome.report) if outcome.report else None,
            "model": str(outcome.model) if outcome.model else None,
        },
        default=str,
    )


def dataset_outcome_from_json(text: str) -> DatasetOutcome:
    """The inverse of dataset_outcome_to_json; the metrics are read back from the backend's metrics.json."""
    raw = json.loads(text)
    files = {t: Path(p) for t, p in raw["files"].items()}
    folder = next(iter(files.values())).parent
    return DatasetOutcome(
        raw["backend"],
        files,
        raw["rows"],
        FitResult(**raw["fit"]),
        raw["params"],
        {k: datetime.fromisoformat(v) for k, v in raw["times"].items()},
        json.loads((folder / "metrics.json").read_text()),
        Path(raw["report"]) if raw["report"] else None,
        Path(raw["model"]) if raw.get("model") else None,
    )
