"""The `fairsynth` command line: backends, inspect, generate, ui."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress as Bar, TextColumn, TimeElapsedColumn
from rich.table import Table

from backends import registry
from backends.base import BackendError, Progress
from metadata.schema import SchemaError, TableSchema

from .config import BackendSpec, ConfigError, GenerationRequest, load_request, parse_request
from .demo import DEMO_PATH
from .pipeline import RunError, run
from .tables import InputError, read_table

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="fairsynth: synthetic health tables from several backends, measured and packaged.")
console = Console()
errors = Console(stderr=True)
USER_ERRORS = (InputError, ConfigError, SchemaError, BackendError, RunError)
SHARED_PARAMS = ("epochs", "batch_size", "epsilon")


def _fail(exc: Exception) -> None:
    errors.print(f"[bold red]error:[/] {exc}", highlight=False)
    raise typer.Exit(code=2)


@app.command()
def backends() -> None:
    """List every declared backend, whether it can run here, and why not."""
    table = Table("backend", "available", "family", "license", "parameters / reason")
    for info in registry.list_backends():
        caps = info.capabilities
        detail = ", ".join(f"{k}={v}" for k, v in info.parameters.items()) if info.available else info.reason
        table.add_row(info.name, "yes" if info.available else "no", caps.family if caps else "",
                      caps.license if caps else "", detail)
    console.print(table)


@app.command()
def inspect(file: Path = typer.Argument(DEMO_PATH, help="CSV or Parquet table (default: the demo table)"),
            out: Optional[Path] = typer.Option(None, help="write the schema as JSON here"),
            encoding: str = "utf-8", separator: Optional[str] = None) -> None:
    """Show the inferred schema of a table: kind, missing share and distinct values per column."""
    try:
        schema = TableSchema.infer(read_table(file, encoding=encoding, separator=separator))
    except USER_ERRORS as exc:
        _fail(exc)
    table = Table("column", "kind", "missing", "distinct", "format / PII", "synthetic handling")
    for c in schema.columns:
        table.add_row(c.name, c.kind.value, f"{c.missing_share:.1%}", str(c.cardinality),
                      c.datetime_format or c.pii_type or "", c.handling().split(":")[0])
    console.print(table)
    for warning in schema.warnings:
        console.print(f"[yellow]note:[/] {warning}", highlight=False)
    if out:
        out.write_text(schema.to_json())


@app.command()
def generate(
    file: Optional[Path] = typer.Argument(None, help="CSV or Parquet table (default: the demo table)"),
    backend: list[str] = typer.Option([], "--backend", "-b", help="backend name; repeat for side by side"),
    rows: Optional[int] = typer.Option(None, help="rows to generate per backend (default: training rows)"),
    seed: Optional[int] = typer.Option(None, help="seed for split, fit and sampling"),
    out: Optional[Path] = typer.Option(None, help="run directory (default: runs/<time>)"),
    fmt: Optional[str] = typer.Option(None, "--format", help="csv or parquet"),
    config: Optional[Path] = typer.Option(None, help="YAML/JSON GenerationRequest; options override it"),
    epochs: Optional[int] = typer.Option(None, help="epochs for every backend that trains in epochs"),
    batch_size: Optional[int] = typer.Option(None, help="batch size for every backend that takes one"),
    epsilon: Optional[float] = typer.Option(None, help="privacy budget for differentially private backends"),
    param: list[str] = typer.Option([], "--set", help="BACKEND.PARAM=VALUE, e.g. sdv.tvae.epochs=50"),
    target: Optional[str] = typer.Option(None, help="target column for utility"),
    drop: list[str] = typer.Option([], help="column to leave out; repeatable"),
    kind: list[str] = typer.Option([], help="COLUMN=KIND override, e.g. ward=categorical"),
    encoding: Optional[str] = typer.Option(None, help="text encoding of a CSV (default utf-8)"),
    separator: Optional[str] = typer.Option(None, help="CSV separator (default: detected)"),
) -> None:
    """Generate synthetic tables from one or more backends side by side and compare them."""
    try:
        request = _build_request(config, file, backend, rows, seed, out, fmt, target, drop, kind, encoding, separator)
        request = _apply_params(request, epochs=epochs, batch_size=batch_size, epsilon=epsilon, assignments=param)
        result = _run_with_bars(request)
    except USER_ERRORS as exc:
        _fail(exc)
    table = Table("backend", "status", "fit s", "rows/s", "quality", title=f"run: {result.directory}")
    for row in result.comparison().to_dict("records"):
        quality = "" if row["quality"] is None or row["quality"] != row["quality"] else f"{row['quality']:.3f}"
        table.add_row(row["backend"], row["status"] if row["status"] == "ok" else f"failed: {row['error']}",
                      _num(row["fit_seconds"], ".1f"), _num(row["rows_per_second"], ",.0f"), quality)
    console.print(table)
    if not all(o.ok for o in result.outcomes):
        raise typer.Exit(code=1)


@app.command()
def ui(port: int = 8501, address: str = "127.0.0.1") -> None:
    """Start the Streamlit UI (on the demo table)."""
    app_path = Path(__file__).resolve().parent.parent / "ui" / "app.py"
    env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", "STREAMLIT_SERVER_HEADLESS": "true"}
    command = [sys.executable, "-m", "streamlit", "run", str(app_path), "--server.port", str(port),
               "--server.address", address]
    raise typer.Exit(code=subprocess.call(command, env=env))


# -- helpers --------------------------------------------------------------------------------------
def _build_request(config, file, backend, rows, seed, out, fmt, target, drop, kind, encoding, separator):
    request = load_request(config) if config else GenerationRequest()
    raw = request.model_dump()
    given = {"input_path": str(file) if file else None, "rows": rows, "seed": seed,
             "output_dir": str(out) if out else None, "output_format": fmt, "encoding": encoding,
             "separator": separator}
    raw.update({k: v for k, v in given.items() if v is not None})
    if backend:
        raw["backends"] = [{"name": name, "params": _params_of(request, name)} for name in backend]
    overrides = raw["schema_overrides"]
    overrides["drop"] = list(overrides["drop"]) + list(drop)
    overrides["kinds"].update(_pairs(kind, "--kind", "COLUMN=KIND"))
    if target:
        overrides["target"] = target
    return parse_request(raw, "the command line")


def _params_of(request: GenerationRequest, name: str) -> dict:
    return next((dict(b.params) for b in request.backends if b.name == name), {})


def _apply_params(request: GenerationRequest, *, epochs, batch_size, epsilon, assignments) -> GenerationRequest:
    shared = {k: v for k, v in {"epochs": epochs, "batch_size": batch_size, "epsilon": epsilon}.items() if v is not None}
    specific = _pairs(assignments, "--set", "BACKEND.PARAM=VALUE")
    specs = []
    for spec in request.backends:
        accepted = registry.backend_info(spec.name).parameters
        params = {**spec.params, **{k: v for k, v in shared.items() if k in accepted}}
        for key, value in specific.items():
            owner, _, name = key.rpartition(".")
            if owner == spec.name:
                params[name] = yaml.safe_load(value)
        specs.append(BackendSpec(name=spec.name, params=params))
    unknown = {k.rpartition(".")[0] for k in specific} - {s.name for s in request.backends}
    if unknown:
        raise ConfigError(f"--set names backend(s) not in this run: {', '.join(sorted(unknown))}; "
                          "add them with --backend.")
    return request.model_copy(update={"backends": specs})


def _pairs(items: list[str], option: str, shape: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ConfigError(f"{option} takes {shape}; got '{item}'.")
        pairs[key.strip()] = value.strip()
    return pairs


def _run_with_bars(request: GenerationRequest):
    with Bar(TextColumn("{task.description:<22}"), BarColumn(), TextColumn("{task.fields[info]}"),
             TimeElapsedColumn(), console=console, disable=not console.is_terminal) as bars:
        tasks: dict[tuple[str, str], int] = {}

        def report(event: Progress) -> None:
            if not console.is_terminal:
                return
            key = (event.backend, event.stage)
            if key not in tasks:
                tasks[key] = bars.add_task(f"{event.backend} {event.stage}", total=event.total, info="")
            info = f"loss {event.loss:.3f}" if event.loss is not None else event.message
            bars.update(tasks[key], completed=event.step, total=event.total, info=info)

        return run(request, progress=report)


def _num(value, spec: str) -> str:
    return "" if value is None or value != value else format(value, spec)
