"""The `fairsynth` command line: backends, inspect, generate, ui."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Bar
from rich.table import Table
from typer.core import TyperGroup

from fairsynth.backends import registry
from fairsynth.backends.base import Progress
from fairsynth.errors import FairsynthError
from fairsynth.metadata.dataset_rules import listed_rules
from fairsynth.metadata.rule_checks import infer_with_rules
from fairsynth.metadata.rules import MIN_RULE_SUPPORT, Rule
from fairsynth.services.entry.catalog import parameter_defaults, parameter_fields
from fairsynth.services.run.config import (
    ConfigError,
    GenerationRequest,
    SchemaOverrides,
    crate_info_from,
    load_request,
    parse_author,
    parse_fields,
    parse_request,
    read_config,
)
from fairsynth.services.run.demo import DEMO_PATH
from fairsynth.services.run.evaluation.metrics import (
    CARDINALITY,
    COLUMN_PAIR_TRENDS,
    COLUMN_SHAPES,
    DATASET_QUALITY,
    DCR_SHARE,
    EXACT_COPIES,
    FIT_SECONDS,
    INTERTABLE_TRENDS,
    MIA_AUC,
    QA_ACCURACY,
    QUALITY,
    REFERENTIAL_INTEGRITY,
    ROWS_PER_SECOND,
    RULE_ADHERENCE,
    SUBJECT_COPIES,
    SUBJECT_DCR_SHARE,
    SUBJECT_MIA_AUC,
    TIME_ORDER,
    TRAJECTORY_KS,
    Metric,
)
from fairsynth.services.run.evaluation.relational_results import DatasetEvaluation
from fairsynth.services.run.rule_edits import with_user_dataset_rules, with_user_rules
from fairsynth.services.run.tables import read_table

if TYPE_CHECKING:
    from fairsynth.services.run.evaluation.results import EvaluationResult

errors = Console(stderr=True, soft_wrap=True)


class _Commands(TyperGroup):
    """Every command ends a user error the same way: each problem on its own line, exit status 2, no traceback."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except FairsynthError as exc:
            for problem in exc.problems:
                errors.print(f"[bold red]error:[/] {problem}", highlight=False)
            raise typer.Exit(code=2) from None


app = typer.Typer(
    cls=_Commands,
    add_completion=False,
    no_args_is_help=True,
    help="fairsynth: synthetic health tables from several backends, measured and packaged.",
)
console = Console()
if not console.is_terminal:  # piped or captured output: never fold names and messages
    console.width = 200
GENERATE_COLUMNS = (FIT_SECONDS, ROWS_PER_SECOND, QUALITY, RULE_ADHERENCE, DCR_SHARE, MIA_AUC)  # the run table
SECOND_COLUMNS = {QUALITY: QA_ACCURACY}  # with the second evaluator asked for, its score beside sdmetrics quality
EVALUATE_SUMMARY = (QUALITY, COLUMN_SHAPES, COLUMN_PAIR_TRENDS, RULE_ADHERENCE, EXACT_COPIES, DCR_SHARE, MIA_AUC)
DATASET_SUMMARY = (  # a dataset run's key figures, one row each
    DATASET_QUALITY,
    CARDINALITY,
    INTERTABLE_TRENDS,
    TRAJECTORY_KS,
    REFERENTIAL_INTEGRITY,
    TIME_ORDER,
    SUBJECT_COPIES,
    SUBJECT_DCR_SHARE,
    SUBJECT_MIA_AUC,
)


@app.command()
def backends(
    name: str | None = typer.Argument(None, help="a backend: list its parameters (set them with --set NAME.PARAM=V)"),
) -> None:
    """List every declared backend, whether it can run here, and why not; or one backend's parameters."""
    if name:
        _print_parameters(registry.backend_info(name))
        return
    table = Table("backend", "available", "family", "license", "parameters (defaults) / reason")
    for info in registry.list_backends():
        caps = info.capabilities
        defaults = parameter_defaults(info.parameter_schema())
        detail = ", ".join(f"{k}={v}" for k, v in defaults.items()) if info.available else info.reason
        table.add_row(
            info.name,
            "yes" if info.available else "no",
            caps.family if caps else "",
            caps.license if caps else "",
            detail,
        )
    console.print(table)


def _print_parameters(info: registry.BackendInfo) -> None:
    """One backend's parameters from its JSON schema: type, default, allowed values, meaning."""
    table = Table("parameter", "type", "default", "allowed", "meaning", title=f"{info.name} parameters")
    for field in parameter_fields(info.parameter_schema()):
        kind = f"{field.kind} or empty" if field.optional else field.kind
        table.add_row(field.name, kind, str(field.default), field.allowed(), field.description)
    console.print(table)


RULE_HELP = "add a rule the data keeps and enforce it, e.g. 'discharge_date >= admission_date'; repeatable"
NO_RULE_HELP = "turn a detected rule off (measured only, not enforced), written as inspect prints it; repeatable"
MIN_RULE_SUPPORT_HELP = f"rows a detected rule must hold in (default {MIN_RULE_SUPPORT})"


@app.command()
def inspect(
    file: Path = typer.Argument(DEMO_PATH, help="CSV or Parquet table (default: the demo table)"),
    out: Path | None = typer.Option(None, help="write the schema as JSON here"),
    encoding: str = "utf-8",
    separator: str | None = None,
    rule: list[str] = typer.Option([], "--rule", help=RULE_HELP),
    no_rule: list[str] = typer.Option([], "--no-rule", help=NO_RULE_HELP),
    min_rule_support: int | None = typer.Option(None, min=1, help=MIN_RULE_SUPPORT_HELP),
) -> None:
    """Show the inferred schema of a table: kind, missing share and distinct values per column, then its rules."""
    data = read_table(file, encoding=encoding, separator=separator)
    edits = SchemaOverrides(rules=rule, rules_off=no_rule, min_rule_support=min_rule_support)
    schema = with_user_rules(
        infer_with_rules(data, min_support=edits.min_rule_support or MIN_RULE_SUPPORT), data, edits
    )
    table = Table("column", "kind", "missing", "distinct", "format / PII", "synthetic handling")
    for c in schema.columns:
        table.add_row(
            c.name,
            c.kind.value,
            f"{c.missing_share:.1%}",
            str(c.cardinality),
            c.datetime_format or c.pii_type or "",
            c.handling().split(":")[0],
        )
    console.print(table)
    _print_rules(schema.rules, schema.min_rule_support)
    for warning in schema.warnings:
        console.print(f"[yellow]note:[/] {warning}", highlight=False)
    if out:
        out.write_text(schema.to_json())


def _print_rules(rules: Sequence[Rule], min_support: int, what: str = "rules") -> None:
    """The table's (or the dataset's) rules: status (enforced, implied, off; added by the user), text and support."""
    if not rules:
        console.print(f"{what}: none found in at least {min_support:,} rows", highlight=False)
        return
    table = Table("status", "rule", "support", title=f"{what} (each holds in every row; min support {min_support:,})")
    for item in rules:
        status = f"{item.status.value}, added" if item.added_by_user else item.status.value
        table.add_row(status, item.text, f"{item.support:,}")
    console.print(table)


@app.command()
def generate(
    files: list[Path] | None = typer.Argument(
        None,
        help="CSV or Parquet table (default: the demo table); several tables, a folder or a dataset file "
        "(YAML/JSON with a tables: list): a dataset",
    ),
    backend: list[str] = typer.Option(
        [], "--backend", "-b", help="backend name; repeat for side by side (default: tvae; a dataset: relational)"
    ),
    rows: int | None = typer.Option(None, help="rows to generate per backend (default: training rows)"),
    min_level_rows: int | None = typer.Option(
        None,
        help="a category level in fewer training rows is never reproduced nor listed (default "
        f"{GenerationRequest.model_fields['min_level_rows'].default})",
    ),
    seed: int | None = typer.Option(None, help="seed for split, fit and sampling"),
    out: Path | None = typer.Option(None, help="run directory (default: runs/<time>)"),
    fmt: str | None = typer.Option(None, "--format", help="csv or parquet"),
    config: Path | None = typer.Option(
        None, help="YAML/JSON GenerationRequest, or a dataset file (a tables: list); options override it"
    ),
    epochs: int | None = typer.Option(None, help="epochs for every backend that trains in epochs"),
    batch_size: int | None = typer.Option(None, help="batch size for every backend that takes one"),
    epsilon: float | None = typer.Option(None, help="privacy budget for differentially private backends"),
    param: list[str] = typer.Option([], "--set", help="BACKEND.PARAM=VALUE, e.g. sdv.tvae.epochs=50"),
    target: str | None = typer.Option(None, help="target column for utility"),
    drop: list[str] = typer.Option([], help="column to leave out; repeatable"),
    kind: list[str] = typer.Option([], help="COLUMN=KIND override, e.g. ward=categorical"),
    rule: list[str] = typer.Option([], "--rule", help=RULE_HELP),
    no_rule: list[str] = typer.Option([], "--no-rule", help=NO_RULE_HELP),
    min_rule_support: int | None = typer.Option(None, min=1, help=MIN_RULE_SUPPORT_HELP),
    encoding: str | None = typer.Option(None, help="text encoding of a CSV (default utf-8)"),
    separator: str | None = typer.Option(None, help="CSV separator (default: detected)"),
    crate: bool = typer.Option(False, "--crate", help="write <backend>.crate.zip (RO-Crate) per backend"),
    title: str | None = typer.Option(None, help="crate title (default: from the source name)"),
    description: str | None = typer.Option(None, help="crate description"),
    author: list[str] = typer.Option([], help="'Name;ORCID;Affiliation;ROR-or-URL' (ORCID may be empty); repeatable"),
    license: str | None = typer.Option(None, help="SPDX id or URL of the data license (default CC-BY-4.0)"),
    keyword: list[str] = typer.Option([], help="crate keyword; repeatable"),
    second_evaluator: bool = typer.Option(
        False,
        "--second-evaluator",
        help="also score quality with mostlyai-qa's accuracy, beside sdmetrics (needs make install-mostly)",
    ),
) -> None:
    """Generate synthetic tables from one or more backends side by side and compare them."""
    dataset_file = _dataset_file(files or [], config)
    if dataset_file or (files and (len(files) > 1 or files[0].is_dir())):
        if second_evaluator:
            raise ConfigError(
                "The second evaluator scores single tables only; leave out --second-evaluator for a dataset."
            )
        given = {"subjects": rows, "seed": seed, "output_format": fmt, "encoding": encoding, "separator": separator}
        request = _dataset_request(
            dataset_file, files or [], given, backend, epochs=epochs, epsilon=epsilon, assignments=param
        )
        fields = _crate_fields(title=title, description=description, authors=author, license=license, keywords=keyword)
        edits = SchemaOverrides(rules=rule, rules_off=no_rule, min_rule_support=min_rule_support)
        _generate_dataset(request, out, crate=crate, fields=fields, edits=edits)
        return
    file = files[0] if files else None
    request = _build_request(
        config, file, backend, rows, seed, out, fmt, target, drop, kind, encoding, separator, min_level_rows
    )
    request = _apply_rules(request, added=rule, off=no_rule, min_support=min_rule_support)
    request = _apply_params(request, epochs=epochs, batch_size=batch_size, epsilon=epsilon, assignments=param)
    request = _apply_crate(
        request, crate, title=title, description=description, authors=author, license=license, keywords=keyword
    )
    request = _apply_second_evaluator(request, second_evaluator)
    result = _run_with_bars(request)
    columns = _generate_columns(request)
    table = Table("backend", "status", *(m.label for m in columns), "gate", "crate", title=f"run: {result.directory}")
    for row, outcome in zip(result.comparison().to_dict("records"), result.outcomes):
        status = row["status"] if outcome.ok and not outcome.error else f"{row['status']}: {outcome.error}"
        table.add_row(
            row["backend"],
            status,
            *(m.text(row[m.name], missing="") for m in columns),
            _text(row["decision"]),
            Path(outcome.crate).name if outcome.crate else "",
        )
    console.print(table)
    if not all(o.ok and not o.error for o in result.outcomes):
        raise typer.Exit(code=1)


def _takes(dataset_backend: str, parameter: str) -> bool:
    """True when the dataset backend has the parameter (--epochs and --epsilon go only to those)."""
    params = registry.backend_info(dataset_backend, registry.DATASET_GROUP).params
    return params is not None and parameter in params.model_fields


def _dataset_file(files: Sequence[Path], config: Path | None) -> Path | None:
    """The dataset file given (--config, or the one argument ending .yaml, .yml or .json) when it holds a `tables:`
    list; None for a run of table files."""
    from fairsynth.services.run.datasets import has_tables

    named = [path for path in files if len(files) == 1 and path.suffix.lower() in (".yaml", ".yml", ".json")]
    candidates = [path for path in [config, *named] if path and has_tables(read_config(path))]
    if candidates and config and files:
        raise ConfigError(f"{candidates[0]} lists the dataset's tables; give it alone, as the argument or as --config.")
    return candidates[0] if candidates else None


def _dataset_request(dataset_file, files, given, backend, *, epochs, epsilon, assignments):
    """The dataset run asked for: the dataset file's request (or the table files named) with the settings' defaults
    beneath and the options over it; --epochs and --epsilon go to each backend that takes them, then --set."""
    from fairsynth.services.run.datasets import DEFAULT_DATASET_BACKEND, DatasetRequest, load_dataset_request
    from fairsynth.services.settings import Settings

    settings = Settings.from_env()
    raw: dict = {
        "batch_subjects": settings.dataset_batch_subjects,
        "neutralise": settings.neutralise_csv_formulas,
        "quality_rows": settings.dataset_quality_rows,
    }
    if dataset_file:
        raw |= load_dataset_request(dataset_file).model_dump(exclude_unset=True)
    else:
        raw["input_paths"] = [str(path) for path in files]
    raw |= {key: value for key, value in given.items() if value is not None}
    specs = {spec["name"]: dict(spec.get("params") or {}) for spec in raw.get("backends") or []}
    names = backend or list(specs) or [DEFAULT_DATASET_BACKEND]
    shared = {"epochs": epochs, "epsilon": epsilon}
    params = {name: specs.get(name, {}) | {k: v for k, v in shared.items() if v and _takes(name, k)} for name in names}
    for target, value in _pairs(assignments, "--set", "BACKEND.PARAM=VALUE").items():
        name, _, parameter = target.rpartition(".")
        if name not in params:
            raise ConfigError(f"--set {target}: '{name}' is not a backend of this run ({', '.join(names)}).")
        params[name][parameter] = value
    raw["backends"] = [{"name": name, "params": params[name]} for name in names]
    return parse_fields(DatasetRequest, raw, str(dataset_file or "the command line"))


def _generate_dataset(request, out, *, crate, fields, edits):
    """Several related tables: whole synthetic subjects per dataset backend, measured per table, relationship and
    cross-table rule (detected on the keys given or inferred, then --rule / --no-rule); with --crate (or the
    dataset file's crate:) one crate per backend."""
    from fairsynth.services.run.datasets import (
        CRATE_WHAT,
        dataset_schema,
        read_sources,
        request_sources,
        run_dataset_request,
    )
    from fairsynth.services.run.pipeline import default_run_dir

    sources = request_sources(request)
    label = ", ".join(path.name for _, path in sources)
    crate_fields = {**(request.crate or {}), **fields}
    info = crate_info_from(crate_fields, label, what=CRATE_WHAT) if crate or request.crate else None  # before work
    tables = read_sources(sources, encoding=request.encoding, separator=request.separator)
    detected = dataset_schema(tables, request.tables, min_support=edits.min_rule_support or MIN_RULE_SUPPORT)
    schema = with_user_dataset_rules(detected, tables, edits)
    _print_rules(listed_rules(schema), schema.min_rule_support, what="rules within each table and cross-table rules")
    result = run_dataset_request(request, out or default_run_dir(), schema=schema, crate=info)
    for name, metrics in result.metrics.items():
        tables = Table(
            "table",
            "real rows",
            "synthetic rows",
            "quality",
            "holdout quality",
            "real keys copied",
            title=f"{name}: {result.directory / name}",
        )
        for table, block in metrics["tables"].items():
            tables.add_row(
                table,
                str(block["rows"]["real"]),
                str(block["rows"]["synthetic"]),
                _score(block["quality"]),
                _score(block["holdout_reference"]),
                str(sum(block["real_keys_copied"].values())),
            )
        console.print(tables)
        links = Table("parent -> child", "integrity", "children/parent real", "synthetic", "KS", "in time order")
        for link in metrics["relationships"]:
            counts, order = link["children_per_parent"], link["within_parent_order"]
            links.add_row(
                f"{link['parent']} -> {link['child']}",
                _score(link["referential_integrity"]),
                _score(counts["real_mean"]),
                _score(counts["synthetic_mean"]),
                _score(counts["ks_statistic"]),
                _score(order["synthetic"]) if order else "no time column",
            )
        console.print(links)
        _print_dataset_rules(DatasetEvaluation.model_validate(metrics))
        _print_dataset_figures(name, DatasetEvaluation.model_validate(metrics))
        if name in result.crates:
            console.print(f"crate: {result.crates[name]}", highlight=False)
        elif crate and metrics["gate"]["decision"] == "block":
            console.print(f"{name}: no crate, the release gate blocked it", highlight=False)


def _print_dataset_rules(evaluation: DatasetEvaluation) -> None:
    """Each table's own rules, each cross-table rule and child table's time order: its status, the share of real and
    synthetic rows keeping it."""
    if not evaluation.rules.rules:
        return
    table = Table("status", "rule", "real rows kept", "synthetic rows kept", title="rules (within tables, across)")
    for rule in evaluation.rules.rules:
        synthetic = rule.note or _share(rule.adherence)
        table.add_row(rule.status, rule.text, _share(rule.real_adherence), synthetic)
    console.print(table)


def _share(value: float | None) -> str:
    return "" if value is None else f"{value:.2%}"


def _print_dataset_figures(backend: str, evaluation: DatasetEvaluation) -> None:
    """The dataset's key figures (multi-table quality, trajectories, integrity, subject privacy) and the gate."""
    figures = Table("measure", "value", "goal", title=f"{backend}: dataset and subjects")
    for metric in DATASET_SUMMARY:
        figures.add_row(metric.label, metric.text(evaluation.value(metric)), metric.goal_text)
        if metric is DATASET_QUALITY:
            reference = getattr(evaluation.quality, "holdout_reference", None)
            figures.add_row(
                "  held-out subjects (reference)", metric.text(reference), "what a perfect generator reaches"
            )
    console.print(figures)
    console.print(f"{backend}: gate {evaluation.gate.decision}")
    for reason in evaluation.gate.reasons:
        console.print(f"  - {reason}")


def _score(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


@app.command()
def split(
    file: Path = typer.Argument(..., help="one long CSV or Parquet table with a subject key repeated over rows"),
    key: str = typer.Option(..., help="the subject key column, e.g. id"),
    out: Path = typer.Option(..., help="folder for subjects.csv and events.csv (then: fairsynth generate FOLDER)"),
    encoding: str = "utf-8",
    separator: str | None = None,
) -> None:
    """Split a long table into a subject table (columns constant within each subject) and an event table."""
    from fairsynth.metadata.dataset import split_long_table

    out.mkdir(parents=True, exist_ok=True)
    for name, frame in split_long_table(read_table(file, encoding=encoding, separator=separator), key).items():
        frame.to_csv(out / f"{name}.csv", index=False)
        console.print(f"{out / name}.csv: {len(frame)} rows, columns {', '.join(map(str, frame.columns))}")


@app.command(name="evaluate")
def evaluate_command(
    real: Path = typer.Argument(..., help="the real table (training rows when --holdout is given)"),
    synthetic: Path = typer.Argument(..., help="a synthetic table from any tool"),
    holdout: Path | None = typer.Option(None, help="real rows the generator never saw"),
    target: str | None = typer.Option(None, help="target column for utility"),
    out: Path | None = typer.Option(None, help="write metrics.json and report.html into this directory"),
    seed: int = 0,
) -> None:
    """Evaluate any synthetic file against the real one: quality, privacy, utility and the release gate."""
    from fairsynth.services.run.evaluation import evaluate_files
    from fairsynth.services.run.report import render_report

    result = evaluate_files(real, synthetic, target=target, holdout_path=holdout, seed=seed)
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(result.to_json())
        real_table = read_table(real)
        (out / "report.html").write_text(
            render_report(real_table, read_table(synthetic), infer_with_rules(real_table), result)
        )
    console.print("; ".join(_with_interval(m, result) for m in EVALUATE_SUMMARY), highlight=False)
    console.print(f"gate: {result.gate.decision}", highlight=False)
    for reason in result.gate.reasons:
        console.print(f"  - {reason}", highlight=False)


def _with_interval(metric: Metric, result: EvaluationResult) -> str:
    """'Quality 0.942 (0.936 – 0.948)': a headline figure with its bootstrap interval when it has one."""
    interval = result.interval(metric)
    ends = f" ({metric.text(interval[0])} – {metric.text(interval[1])})" if interval and None not in interval else ""
    return f"{metric.label} {metric.text(result.value(metric))}{ends}"


@app.command()
def validate(crate: Path = typer.Argument(..., help="crate directory or .crate.zip")) -> None:
    """Validate a crate offline: Process Run Crate (a zip as shipped and unpacked), Bioschemas, files, DOME."""
    from fairsynth.metadata.validate import validate_crate
    from fairsynth.services.settings import Settings

    report = validate_crate(crate, limits=Settings.from_env())
    console.print(report.summary(), highlight=False)
    raise typer.Exit(code=0 if report.ok else 1)


@app.command()
def deposit(
    crate: Path = typer.Argument(..., help="crate directory or .crate.zip"),
    server: str | None = typer.Option(None, help="BioStudies server URL (default: dry run)"),
    out: Path = typer.Option(Path("deposit-plan"), help="where a dry run writes what would be sent"),
) -> None:
    """Deposit a crate to BioStudies: a dry run unless a server and credentials (environment) are given."""
    from fairsynth.metadata.biostudies import deposit as deposit_crate
    from fairsynth.services.settings import Settings

    result = deposit_crate(crate, out_dir=out, server=server, limits=Settings.from_env())
    if result.dry_run:
        console.print(f"dry run: {len(result.files)} files and the PageTab written to {result.plan_dir}")
    else:
        console.print(f"submitted: accession {result.accno}")


@app.command()
def ui(port: int = 8501, address: str = "127.0.0.1") -> None:
    """Start the Streamlit UI (on the demo table)."""
    app_path = Path(importlib.util.find_spec("fairsynth.ui").origin).parent / "app.py"  # located, not imported
    # browser.serverAddress set by hand stops Streamlit looking up its external IP on the network
    env = {
        "STREAMLIT_BROWSER_SERVER_ADDRESS": "localhost",
        "STREAMLIT_CLIENT_TOOLBAR_MODE": "viewer",
        "STREAMLIT_CLIENT_SHOW_ERROR_DETAILS": "type",
        **os.environ,  # no developer menu, no tracebacks
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
        "STREAMLIT_SERVER_HEADLESS": "true",
    }
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app_path),
        "--server.port",
        str(port),
        "--server.address",
        address,
    ]
    os.execve(sys.executable, command, env)  # Streamlit becomes this process: signals reach it (PID 1 in a container)


# -- helpers --------------------------------------------------------------------------------------
def _build_request(
    config, file, backend, rows, seed, out, fmt, target, drop, kind, encoding, separator, min_level_rows
):
    request = load_request(config) if config else GenerationRequest()
    raw = request.model_dump()
    given = {
        "input_path": str(file) if file else None,
        "rows": rows,
        "min_level_rows": min_level_rows,
        "seed": seed,
        "output_dir": str(out) if out else None,
        "output_format": fmt,
        "encoding": encoding,
        "separator": separator,
    }
    raw.update({k: v for k, v in given.items() if v is not None})
    if backend:
        raw["backends"] = [{"name": name, "params": _params_of(request, name)} for name in backend]
    overrides = raw["schema_overrides"]
    overrides["drop"] = list(overrides["drop"]) + list(drop)
    overrides["kinds"].update(_pairs(kind, "--kind", "COLUMN=KIND"))
    if target:
        overrides["target"] = target
    return parse_request(raw, "the command line")


def _apply_rules(request: GenerationRequest, *, added, off, min_support) -> GenerationRequest:
    """--rule and --no-rule join the config file's rules; --min-rule-support replaces its value."""
    overrides = request.schema_overrides
    update = {"rules": [*overrides.rules, *added], "rules_off": [*overrides.rules_off, *off]}
    if min_support is not None:
        update["min_rule_support"] = min_support
    return request.model_copy(update={"schema_overrides": overrides.model_copy(update=update)})


def _params_of(request: GenerationRequest, name: str) -> dict:
    return next((dict(b.params) for b in request.backends if b.name == name), {})


def _apply_params(request: GenerationRequest, *, epochs, batch_size, epsilon, assignments) -> GenerationRequest:
    """The shared options for every backend that takes them, then --set values; the request checks them all.

    A --set value stays the string typed: the backend's Params model converts it to the parameter's type.
    """
    shared = {
        k: v for k, v in {"epochs": epochs, "batch_size": batch_size, "epsilon": epsilon}.items() if v is not None
    }
    specific = _pairs(assignments, "--set", "BACKEND.PARAM=VALUE")
    specs = []
    for spec in request.backends:
        accepted = registry.params_model(spec.name).model_fields
        params = {**spec.params, **{k: v for k, v in shared.items() if k in accepted}}
        for key, value in specific.items():
            owner, _, name = key.rpartition(".")
            if owner == spec.name:
                params[name] = value
        specs.append({"name": spec.name, "params": params})
    unknown = {k.rpartition(".")[0] for k in specific} - {s.name for s in request.backends}
    if unknown:
        raise ConfigError(
            f"--set names backend(s) not in this run: {', '.join(sorted(unknown))}; add them with --backend."
        )
    return GenerationRequest.model_validate(request.model_dump() | {"backends": specs})  # validated again


def _apply_crate(
    request: GenerationRequest, enabled: bool, *, title, description, authors, license, keywords
) -> GenerationRequest:
    crate = dict(request.crate or {})
    crate.update(
        _crate_fields(title=title, description=description, authors=authors, license=license, keywords=keywords)
    )
    return request.model_copy(update={"package_crates": enabled or request.package_crates, "crate": crate or None})


def _apply_second_evaluator(request: GenerationRequest, enabled: bool) -> GenerationRequest:
    """--second-evaluator (or the config file's second_evaluator) asks for mostlyai-qa; refused up front when it
    cannot run here, rather than after the run."""
    if not (enabled or request.second_evaluator):
        return request
    from fairsynth.services.run.evaluation.second import availability

    available, reason = availability()
    if not available:
        raise ConfigError(f"The second evaluator (mostlyai-qa) cannot run here: {reason.rstrip('.')}.")
    return request.model_copy(update={"second_evaluator": True})


def _generate_columns(request: GenerationRequest) -> tuple[Metric, ...]:
    """The run table's measures: GENERATE_COLUMNS, with the second evaluator's beside quality when asked for."""
    if not request.second_evaluator:
        return GENERATE_COLUMNS
    return tuple(shown for metric in GENERATE_COLUMNS for shown in (metric, SECOND_COLUMNS.get(metric)) if shown)


def _crate_fields(*, title, description, authors, license, keywords) -> dict:
    """The crate metadata the options give (only those given)."""
    given = {"title": title, "description": description, "license": license, "keywords": keywords or None}
    fields = {k: v for k, v in given.items() if v is not None}
    if authors:
        fields["authors"] = [parse_author(text) for text in authors]
    return fields


def _pairs(items: list[str], option: str, shape: str) -> dict[str, str]:
    """KEY=VALUE options as a dict; every malformed one is named at once."""
    split = [item.partition("=") for item in items]
    malformed = [item for item, (key, sep, value) in zip(items, split) if not sep or not key or not value]
    if malformed:
        raise ConfigError(*(f"{option} takes {shape}; got '{item}'." for item in malformed))
    return {key.strip(): value.strip() for key, _, value in split}


def _run_with_bars(request: GenerationRequest):
    from fairsynth.services.jobs.executors import run_job
    from fairsynth.services.settings import Settings

    if not console.is_terminal:  # CI, nohup, a scheduler: lines a log keeps, not bars redrawn in place
        settings = Settings.from_env()
        return run_job(request, progress=ProgressLines(settings.progress_percent, settings.progress_seconds))
    with Bar(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
    ) as bars:
        tasks: dict[tuple[str, str], int] = {}

        def report(event: Progress) -> None:
            key = (event.backend, event.stage)
            if key not in tasks:
                tasks[key] = bars.add_task(f"{event.backend} {event.stage}", total=event.total, info="")
            info = f"loss {event.loss:.3f}" if event.loss is not None else event.message
            bars.update(tasks[key], completed=event.step, total=event.total, info=info)

        return run_job(request, progress=report)  # the same job path as the API: stored, parallel, cancellable


class ProgressLines:
    """Progress as plain lines: one when a backend starts a stage, then each `percent` gained or `seconds` passed."""

    def __init__(self, percent: int, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.percent, self.seconds, self.clock = percent, seconds, clock
        self.shown: dict[tuple[str, str], tuple[int | None, float]] = {}  # per stage: percent step and time shown

    def __call__(self, event: Progress) -> None:
        """Print the event when its stage is new, has gained a percent step, or has been quiet long enough."""
        key = (event.backend, event.stage)
        share = 100 * event.step // event.total if event.total else None
        step = share // self.percent if share is not None else None
        now = self.clock()
        last = self.shown.get(key)
        if last and step == last[0] and now - last[1] < self.seconds:
            return
        self.shown[key] = (step, now)
        console.print(_progress_line(event, share), highlight=False, soft_wrap=True)
        console.file.flush()  # a pipe is block-buffered: the line must reach the log now


def _progress_line(event: Progress, share: int | None) -> str:
    """'12:03:04 tvae fit 40% (4/10, loss 0.123)'; a failed stage with its reason."""
    stamp = time.strftime("%H:%M:%S")
    if event.stage == "failed":
        return f"{stamp} {event.backend} failed: {event.message}"
    done = f" {share}% ({event.step:,}/{event.total:,}" if share is not None else f" ({event.step:,}"
    detail = (
        f", loss {event.loss:.3f}"
        if event.loss is not None and event.stage == "fit"
        else (f", {event.message}" if event.message else "")
    )
    return f"{stamp} {event.backend} {event.stage}{done}{detail})"


def _text(value) -> str:
    """A table cell: empty for None and NaN (a failed backend has no gate decision)."""
    return "" if value is None or value != value else str(value)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="address to listen on; beyond loopback needs FAIRSYNTH_API_TOKEN"),
    port: int = typer.Option(8000, help="TCP port"),
) -> None:
    """Start the REST API (OpenAPI at /docs) with the executor from the environment (local by default)."""
    from fairsynth.services.entry.api import serve as serve_api

    serve_api(host, port)


@app.command()
def worker(
    queues: str = typer.Option("basic,torch,sdv,ydata", help="comma-separated backend families to serve"),
    concurrency: int = typer.Option(1, help="tasks this worker runs at once"),
) -> None:
    """Start a Celery worker for the given backend-family queues (needs FAIRSYNTH_BROKER_URL)."""
    from fairsynth.services.jobs.executors import backend_families, run_worker
    from fairsynth.services.settings import Settings, SettingsError

    settings = Settings.from_env()
    chosen = [q.strip() for q in queues.split(",") if q.strip()]
    families = backend_families()
    unknown = sorted(set(chosen) - set(families))
    problems = []
    if not settings.broker_url:
        problems.append("fairsynth worker needs FAIRSYNTH_BROKER_URL (e.g. redis://localhost:6379/0).")
    if unknown or not chosen:
        problems.append(f"--queues takes backend families ({', '.join(families)}); got '{queues}'.")
    if problems:
        raise SettingsError(*problems)
    run_worker(settings, chosen, concurrency)
