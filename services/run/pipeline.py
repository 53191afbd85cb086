"""One run: inspect -> seeded split -> per backend: fit, stream samples to disk, measure -> run directory.

Each backend's result is written to a hidden `.NAME.partial` directory and renamed into place only
when it is complete, so a failed or interrupted backend never leaves output that looks finished.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata as package_metadata
from pathlib import Path

import numpy as np
import pandas as pd

from fairsynth.backends import registry
from fairsynth.backends.base import BackendError, Progress, table_to_frame
from fairsynth.errors import FairsynthError
from fairsynth.metadata.archive import zip_crate
from fairsynth.metadata.builder import build_crate, write_data_dictionary
from fairsynth.metadata.checksums import sha256_file
from fairsynth.metadata.model import DICTIONARY_PATH, CrateInfo, RunFacts, SourceFacts
from fairsynth.metadata.rule_checks import infer_with_rules
from fairsynth.metadata.rules import MIN_RULE_SUPPORT
from fairsynth.metadata.schema import TableSchema
from fairsynth.metadata.spreadsheet import write_csv
from fairsynth.services.run.config import GenerationRequest, crate_info
from fairsynth.services.run.demo import DEMO_PATH
from fairsynth.services.run.evaluation import ExactCopyCounter, compare, evaluate
from fairsynth.services.run.evaluation.metrics import COLUMN_PAIR_TRENDS, COLUMN_SHAPES, METRICS, QUALITY, Goal, Metric
from fairsynth.services.run.evaluation.relational_results import DatasetEvaluation
from fairsynth.services.run.evaluation.results import EvaluationResult, SamplingResult
from fairsynth.services.run.evaluation.suite import interval_columns
from fairsynth.services.run.report import render_comparison, render_report
from fairsynth.services.run.rule_edits import with_user_rules
from fairsynth.services.run.tables import read_table
from fairsynth.services.run.writers import SUFFIXES, write_sampled

PACKAGES = ("fairsynth", "torch", "sdv", "sdmetrics", "pandas", "numpy", "pyarrow", "opacus")

ProgressSink = Callable[[Progress], None]


class RunError(FairsynthError):
    """The run cannot start; the message says what to change."""


@dataclass
class BackendOutcome:
    """What one backend produced in a run (or why it failed)."""

    backend: str
    ok: bool
    directory: str | None = None
    fit_seconds: float | None = None
    sample_seconds: float | None = None
    rows: int = 0
    rows_per_second: float | None = None
    quality: dict = field(default_factory=dict)
    gate: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict, repr=False)  # metrics.json as a dict; typed by evaluation()
    fit: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)  # every parameter the backend ran with, defaults included
    times: dict[str, datetime] = field(default_factory=dict)  # fit_start, fit_end, sample_start, sample_end
    crate: str | None = None
    error: str | None = None

    def evaluation(self) -> EvaluationResult:
        """The typed metrics of a backend that ran."""
        return EvaluationResult.model_validate(self.metrics)


@dataclass
class RunResult:
    """A finished run: where it is, the schema used and each backend's outcome."""

    directory: Path
    schema: TableSchema
    outcomes: list[BackendOutcome]

    def comparison(self) -> pd.DataFrame:
        """One row per backend: fit seconds, rows/s, quality, status."""
        return comparison_table(self.outcomes)


# -- the steps ------------------------------------------------------------------------------------
def load_input(request: GenerationRequest) -> tuple[pd.DataFrame, Path]:
    """The input table (or the demo table) and its path."""
    path = Path(request.input_path) if request.input_path else DEMO_PATH
    return read_table(path, encoding=request.encoding, separator=request.separator), path


def inspect(data: pd.DataFrame, request: GenerationRequest) -> TableSchema:
    """Infer the schema (rules included) and apply the user's overrides."""
    support = request.schema_overrides.min_rule_support or MIN_RULE_SUPPORT
    return _apply_overrides(infer_with_rules(data, seed=request.seed, min_support=support), data, request)


def _apply_overrides(schema: TableSchema, data: pd.DataFrame, request: GenerationRequest) -> TableSchema:
    """The user's column choices, then the rule edits (checked against the data: a rule it breaks is refused)."""
    overrides = request.schema_overrides
    schema = schema.with_overrides(
        kinds=overrides.kinds, drop=overrides.drop, target=overrides.target, formats=overrides.formats
    )
    return with_user_rules(schema, data, overrides)


def split(data: pd.DataFrame, holdout_share: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded train/holdout split; the holdout is never shown to any backend."""
    order = np.random.default_rng(seed).permutation(len(data))
    n_holdout = max(1, int(round(len(data) * holdout_share)))
    return data.iloc[order[n_holdout:]], data.iloc[order[:n_holdout]]


@dataclass
class RunPlan:
    """Everything a backend of a run needs, rebuilt identically in any process from the run directory."""

    request: GenerationRequest
    run_dir: Path
    schema: TableSchema
    train: pd.DataFrame
    holdout: pd.DataFrame
    context: dict


def run(request: GenerationRequest, progress: ProgressSink | None = None) -> RunResult:
    """Run every requested backend side by side and write the run directory."""
    progress = progress or (lambda _: None)
    plan = prepare_run(request)
    outcomes = [
        run_backend(
            spec.name, spec.params, plan.train, plan.holdout, plan.schema, request, plan.run_dir, plan.context, progress
        )
        for spec in request.backends
    ]
    return finish_run(plan.request, plan.run_dir, plan.schema, plan.context, outcomes, progress)


def prepare_run(
    request: GenerationRequest, schema: TableSchema | None = None, *, neutralise_csv_formulas: bool = True
) -> RunPlan:
    """Check the request, read and split the input, and write schema.json and request.json into a new run directory.

    `schema` replaces the inferred one (a schema the user edited); the request's overrides still apply.
    `neutralise_csv_formulas` (the installation's setting) is recorded in the run context: every CSV of the
    run follows it, in whichever process writes it.
    """
    _check_backends(request)
    data, source = load_input(request)
    if request.package_crates:
        crate_info(request, source.name)  # missing crate metadata fails before any work
    schema = _apply_overrides(schema, data, request) if schema is not None else inspect(data, request)
    train, holdout = split(data, request.holdout_share, request.seed)
    schema = schema.with_level_rule(train, request.min_level_rows)  # the codec counts levels in train too
    run_dir = _prepare_run_dir(Path(request.output_dir or default_run_dir()))
    context = _run_context(request, source, data, train, holdout)
    context["neutralise_csv_formulas"] = neutralise_csv_formulas
    (run_dir / "schema.json").write_text(schema.to_json())
    (run_dir / "request.json").write_text(json.dumps(context, indent=2))
    return RunPlan(request, run_dir, schema, train, holdout, context)


def _check_backends(request: GenerationRequest) -> None:
    """Unknown or unavailable backends fail before any work, all of them named at once."""
    problems = []
    for spec in request.backends:
        try:
            registry.backend_class(spec.name)
        except BackendError as exc:
            problems += exc.problems
    if problems:
        raise BackendError(*problems)


def load_plan(run_dir: str | Path) -> RunPlan:
    """Rebuild a prepared run's plan from its directory (in a worker process); the input must be unchanged."""
    run_dir = Path(run_dir)
    context = json.loads((run_dir / "request.json").read_text())
    request = GenerationRequest.model_validate(context["request"])
    schema = TableSchema.from_json((run_dir / "schema.json").read_text())
    data, source = load_input(request)
    if sha256_file(source) != context["source"]["sha256"]:
        raise RunError(f"{source.name} changed after the run was prepared; submit the run again.")
    train, holdout = split(data, request.holdout_share, request.seed)
    return RunPlan(request, run_dir, schema, train, holdout, context)


def run_planned_backend(plan: RunPlan, name: str, progress: ProgressSink | None = None) -> BackendOutcome:
    """Run one backend of a prepared run into its directory (one task of a job)."""
    spec = next((b for b in plan.request.backends if b.name == name), None)
    if spec is None:
        raise RunError(
            f"{name} is not a backend of this run; choose one of {', '.join(b.name for b in plan.request.backends)}."
        )
    return run_backend(
        name,
        spec.params,
        plan.train,
        plan.holdout,
        plan.schema,
        plan.request,
        plan.run_dir,
        plan.context,
        progress or (lambda _: None),
    )


def finish_run(
    request: GenerationRequest,
    run_dir: Path,
    schema: TableSchema,
    context: dict,
    outcomes: list[BackendOutcome],
    progress: ProgressSink | None = None,
) -> RunResult:
    """After every backend ended: package the crates the request asks for and write the comparison."""
    progress = progress or (lambda _: None)
    if request.package_crates:
        info = crate_info(request, context["source"]["name"])
        for outcome in outcomes:
            if outcome.ok:
                package_crate(outcome, outcomes, info, schema, context, run_dir, progress)
    result = RunResult(run_dir, schema, outcomes)
    write_comparison(result, context)
    return result


def outcome_to_json(outcome: BackendOutcome) -> str:
    """A backend outcome as JSON (to store it between processes)."""
    return json.dumps(asdict(outcome), default=str)


def outcome_from_json(text: str) -> BackendOutcome:
    """The inverse of outcome_to_json."""
    raw = json.loads(text)
    raw["times"] = {k: datetime.fromisoformat(v) for k, v in (raw.get("times") or {}).items()}
    return BackendOutcome(**raw)


def write_comparison(result: RunResult, context: dict) -> None:
    """comparison.csv (headline per backend), comparison.json (outcomes) and comparison.html."""
    write_csv(result.comparison(), result.directory / "comparison.csv", neutralise=neutralises_csv(context))
    outcomes = [{k: v for k, v in asdict(o).items() if k != "metrics"} for o in result.outcomes]
    (result.directory / "comparison.json").write_text(json.dumps(outcomes, indent=2, default=str))
    measured = {o.backend: o.evaluation() for o in result.outcomes if o.ok}
    if measured:
        (result.directory / "comparison.html").write_text(render_comparison(measured))


def run_backend(
    name: str,
    params: dict,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    schema: TableSchema,
    request: GenerationRequest,
    run_dir: Path,
    context: dict,
    progress: ProgressSink,
) -> BackendOutcome:
    """Fit, sample (streamed to disk) and measure one backend; failures are recorded, not raised."""
    partial = run_dir / f".{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        outcome = _produce(name, params, train, holdout, schema, request, partial, context, progress)
        final = run_dir / name
        partial.rename(final)
        outcome.directory = str(final)
        return outcome
    except (FairsynthError, ValueError, RuntimeError, MemoryError) as exc:  # builtins: a library failed inside
        shutil.rmtree(partial, ignore_errors=True)
        progress(Progress(name, "failed", 0, message=str(exc)))
        return BackendOutcome(name, ok=False, error=f"{type(exc).__name__}: {exc}")
    except BaseException:  # cancelled, interrupted (Ctrl-C) or an unexpected error: no half-written output stays
        shutil.rmtree(partial, ignore_errors=True)
        raise


def remove_partial(run_dir: Path) -> list[str]:
    """Remove the half-written `.NAME.partial` folders of a run (its backends' processes have ended)."""
    removed = sorted(p.name for p in run_dir.glob(".*.partial") if p.is_dir())
    for name in removed:
        shutil.rmtree(run_dir / name, ignore_errors=True)
    return removed


def _produce(
    name: str,
    params: dict,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    schema: TableSchema,
    request: GenerationRequest,
    out: Path,
    context: dict,
    progress: ProgressSink,
) -> BackendOutcome:
    for sub in ("data", "config", "evaluation", "model"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    generator = registry.create(name, **params)
    times = {"fit_start": _now()}
    fit = generator.fit(train, schema, seed=request.seed, progress=progress)
    times["fit_end"] = _now()
    generator.save(out / "model")

    n_rows = request.rows or len(train)
    data_path = out / "data" / f"synthetic{SUFFIXES[request.output_format]}"
    kept: list[pd.DataFrame] = []
    kept_rows = 0
    copies = ExactCopyCounter.for_schema(train, holdout, schema)  # every streamed row, not just the sample
    times["sample_start"] = _now()
    start = time.perf_counter()
    decimal_point = [c.name for c in schema.output_columns() if c.decimal_point]
    written = 0
    writing = write_sampled(
        generator,
        n_rows,
        seed=request.seed,
        batch_rows=request.batch_rows,
        path=data_path,
        fmt=request.output_format,
        decimal_point=decimal_point,
        neutralise=neutralises_csv(context),
    )
    for table in writing:
        copies.update_table(table, lambda rows: table_to_frame(generator, rows))
        if kept_rows < request.evaluation_rows:
            kept.append(table_to_frame(generator, table.slice(0, request.evaluation_rows - kept_rows)))
            kept_rows += len(kept[-1])
        written += len(table)
        progress(Progress(name, "sample", written, n_rows, seconds=time.perf_counter() - start))
    sample_seconds = time.perf_counter() - start
    times["sample_end"] = _now()

    synthetic = pd.concat(kept, ignore_index=True) if kept else pd.DataFrame(columns=train.columns)
    progress(Progress(name, "evaluate", 0, 1, message="measuring quality, privacy, utility"))
    result = evaluate(
        train,
        holdout,
        synthetic,
        schema,
        fit=fit,
        policy=request.policy,
        seed=request.seed,
        anonymeter=request.anonymeter,
        exact_copies=copies.result(),
        second_evaluator=request.second_evaluator,
    )
    sampling = SamplingResult(
        rows=n_rows, seconds=sample_seconds, rows_per_second=n_rows / sample_seconds if sample_seconds > 0 else None
    )
    result = result.model_copy(update={"backend": name, "sampling": sampling})
    (out / "evaluation" / "report.html").write_text(
        render_report(train, synthetic, schema, result, backend=name, seed=request.seed)
    )
    message = f"quality {QUALITY.text(result.quality.quality)}, gate {result.gate.decision}"
    progress(Progress(name, "evaluate", 1, 1, message=message))

    output_schema = schema.model_copy(update={"columns": schema.output_columns()})
    write_data_dictionary(output_schema, out / DICTIONARY_PATH, neutralise=neutralises_csv(context))
    used = generator.params.model_dump(mode="json")  # every parameter, defaults included: the run can be repeated
    generation = {**context, "backend": {"name": name, "params": used}, "fit": fit.to_dict()}
    (out / "config" / "generation.json").write_text(json.dumps(generation, indent=2, default=str))
    (out / "evaluation" / "metrics.json").write_text(result.to_json())
    return BackendOutcome(
        name,
        ok=True,
        fit_seconds=fit.seconds,
        sample_seconds=sample_seconds,
        rows=n_rows,
        rows_per_second=sampling.rows_per_second,
        quality={metric.name: result.value(metric) for metric in (QUALITY, COLUMN_SHAPES, COLUMN_PAIR_TRENDS)},
        gate=result.gate.model_dump(mode="json"),
        metrics=result.model_dump(mode="json"),
        fit=fit.to_dict(),
        params=used,
        times=times,
    )


def package_crate(
    outcome: BackendOutcome,
    outcomes: list[BackendOutcome],
    info: CrateInfo,
    schema: TableSchema,
    context: dict,
    run_dir: Path,
    progress: ProgressSink,
) -> None:
    """Describe a finished backend directory as an RO-Crate and zip it beside the run; errors are recorded.

    A result the release gate blocked is never packaged as releasable: it gets no crate.
    """
    if outcome.gate.get("decision") == "block":
        outcome.error = "no crate: the release gate blocked this result (" + "; ".join(outcome.gate["reasons"]) + ")"
        return
    try:
        facts = run_facts(outcome, outcomes, schema, context)
        build_crate(outcome.directory, info, facts)
        outcome.crate = str(zip_crate(outcome.directory, run_dir / f"{outcome.backend}.crate.zip"))
        progress(Progress(outcome.backend, "crate", 1, 1, message="crate written"))
    except (FairsynthError, OSError, ValueError) as exc:
        outcome.error = f"crate not written: {exc}"


def run_facts(outcome: BackendOutcome, outcomes: list[BackendOutcome], schema: TableSchema, context: dict) -> RunFacts:
    """What the crate says about one backend's run, from the outcome and the run context."""
    caps = registry.backend_info(outcome.backend).capabilities
    packages = {k: v for k, v in context["packages"].items() if k != "fairsynth"}  # not on PyPI
    isolated = (outcome.fit.get("details") or {}).get("packages") or {}  # versions in a backend's own venv
    backend_version = (
        context["packages"].get(caps.package)
        or isolated.get(caps.package)
        or package_version(caps.package)
        or "unknown"
    )
    fit, params, evaluation = outcome.fit, outcome.params, outcome.evaluation()
    return RunFacts(
        backend=outcome.backend,
        backend_version=backend_version,
        backend_url=caps.url,
        backend_license=caps.license,
        model_family=caps.model_family or caps.description.split(":")[0],
        backend_description=caps.description,
        schema=schema.model_copy(update={"columns": schema.output_columns()}),
        source=SourceFacts(
            rows=context["source"]["rows"],
            columns=context["source"]["columns"],
            sha256=context["source"]["sha256"],
            name=context["source"]["name"],
        ),
        seed=context["request"]["seed"],
        **outcome.times,
        train_rows=context["split"]["train_rows"],
        holdout_rows=context["split"]["holdout_rows"],
        split_seed=context["split"]["seed"],
        synthetic_rows=outcome.rows,
        params=params,
        fit_seconds=fit.get("seconds"),
        epochs=fit.get("epochs"),
        losses=fit.get("losses") or [],
        batch_size=params.get("batch_size"),
        epsilon=fit.get("epsilon"),
        delta=fit.get("delta"),
        measures=crate_measures(evaluation),
        exact_copies=evaluation.privacy.exact_copies.count,
        rules=[rule.model_dump(mode="json", exclude={"note"}) for rule in evaluation.rules.rules],
        gate=outcome.gate.get("decision"),
        comparison={
            o.backend: {"quality": o.quality.get("quality")} for o in outcomes if o.ok and o.backend != outcome.backend
        },
        packages=packages,
        csv_formulas_neutralised=neutralises_csv(context),
    )


def crate_measures(result: EvaluationResult | DatasetEvaluation, metrics: Sequence[Metric] = METRICS) -> list[dict]:
    """The declared metrics a result measured, as plain data for the crate: name, label, value, goal, meaning."""
    measures = []
    for metric in metrics:
        value = result.value(metric)
        if value is not None:
            goal = {"goal": metric.goal.value} | ({"target": metric.target} if metric.goal is Goal.TARGET else {})
            measures.append(
                {"name": metric.name, "label": metric.label, "value": value, **goal, "meaning": metric.meaning}
            )
    return measures


# -- helpers --------------------------------------------------------------------------------------
def neutralises_csv(context: dict) -> bool:
    """Whether the run's CSV files neutralise formula-like text (runs prepared before the setting existed: yes)."""
    return bool(context.get("neutralise_csv_formulas", True))


def comparison_table(outcomes: list[BackendOutcome]) -> pd.DataFrame:
    """Side-by-side table of backends, in the order they ran: status and every declared metric."""
    facts = pd.DataFrame(
        [
            {"backend": o.backend, "status": "ok" if o.ok else "failed", "rows": o.rows, "error": o.error or ""}
            for o in outcomes
        ],
        columns=["backend", "status", "rows", "error"],
    )
    headline = compare({o.backend: o.evaluation() for o in outcomes if o.ok})
    table = facts.merge(headline, on="backend", how="left")
    return table[["backend", "status", "decision", *(m.name for m in METRICS), *interval_columns(), "rows", "error"]]


def default_run_dir() -> Path:
    """runs/<UTC timestamp> under the working directory."""
    return Path("runs") / datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def _prepare_run_dir(path: Path) -> Path:
    if path.exists() and any(path.iterdir()):
        raise RunError(f"{path} already holds files; choose an empty or new output directory.")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run_context(
    request: GenerationRequest, source: Path, data: pd.DataFrame, train: pd.DataFrame, holdout: pd.DataFrame
) -> dict:
    return {
        "request": request.model_dump(mode="json"),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": {
            "name": source.name,
            "sha256": sha256_file(source),
            "rows": len(data),
            "columns": int(data.shape[1]),
        },
        "split": {"seed": request.seed, "train_rows": len(train), "holdout_rows": len(holdout)},
        "packages": package_versions(),
    }


def package_versions() -> dict[str, str]:
    """Versions of the packages a run records (PACKAGES), those installed here."""
    return {name: version for name in PACKAGES if (version := package_version(name))}


def package_version(package: str) -> str | None:
    """One installed distribution's version, or None."""
    try:
        return package_metadata.version(package)
    except package_metadata.PackageNotFoundError:
        return None


def _now() -> datetime:
    return datetime.now(UTC)
