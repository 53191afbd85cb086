"""One run: inspect -> seeded split -> per backend: fit, stream samples to disk, measure -> run directory.

Each backend's result is written to a hidden `.NAME.partial` directory and renamed into place only
when it is complete, so a failed or interrupted backend never leaves output that looks finished.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from backends import registry
from backends.base import BackendError, Progress
from metadata.schema import SchemaError, TableSchema

from .config import GenerationRequest
from .demo import DEMO_PATH
from .evaluation.quality import quality_score
from .tables import InputError, file_sha256, read_table
from .writers import SUFFIXES, write_batches

PACKAGES = ("fairsynth", "torch", "sdv", "sdmetrics", "pandas", "numpy", "pyarrow", "opacus")
QUALITY_SAMPLE = 5_000

ProgressSink = Callable[[Progress], None]


class RunError(ValueError):
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
    fit: dict = field(default_factory=dict)
    error: str | None = None


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
    """Infer the schema and apply the user's overrides."""
    overrides = request.schema_overrides
    return TableSchema.infer(data, seed=request.seed).with_overrides(
        kinds=overrides.kinds, drop=overrides.drop, target=overrides.target, formats=overrides.formats)


def split(data: pd.DataFrame, holdout_share: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded train/holdout split; the holdout is never shown to any backend."""
    order = np.random.default_rng(seed).permutation(len(data))
    n_holdout = max(1, int(round(len(data) * holdout_share)))
    return data.iloc[order[n_holdout:]], data.iloc[order[:n_holdout]]


def run(request: GenerationRequest, progress: ProgressSink | None = None) -> RunResult:
    """Run every requested backend side by side and write the run directory."""
    progress = progress or (lambda _: None)
    for spec in request.backends:
        registry.backend_class(spec.name)  # unknown or unavailable backends fail before any work
    data, source = load_input(request)
    schema = inspect(data, request)
    train, holdout = split(data, request.holdout_share, request.seed)
    run_dir = _prepare_run_dir(Path(request.output_dir or default_run_dir()))
    context = _run_context(request, source, data, train, holdout)
    (run_dir / "schema.json").write_text(schema.to_json())
    (run_dir / "request.json").write_text(json.dumps(context, indent=2))
    outcomes = [run_backend(spec.name, spec.params, train, schema, request, run_dir, context, progress)
                for spec in request.backends]
    result = RunResult(run_dir, schema, outcomes)
    result.comparison().to_csv(run_dir / "comparison.csv", index=False)
    (run_dir / "comparison.json").write_text(json.dumps([asdict(o) for o in outcomes], indent=2, default=str))
    return result


def run_backend(name: str, params: dict, train: pd.DataFrame, schema: TableSchema, request: GenerationRequest,
                run_dir: Path, context: dict, progress: ProgressSink) -> BackendOutcome:
    """Fit, sample (streamed to disk) and measure one backend; failures are recorded, not raised."""
    partial = run_dir / f".{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        outcome = _produce(name, params, train, schema, request, partial, context, progress)
        final = run_dir / name
        partial.rename(final)
        outcome.directory = str(final)
        return outcome
    except (BackendError, SchemaError, InputError, ValueError, RuntimeError, MemoryError) as exc:
        shutil.rmtree(partial, ignore_errors=True)
        progress(Progress(name, "failed", 0, message=str(exc)))
        return BackendOutcome(name, ok=False, error=f"{type(exc).__name__}: {exc}")


def _produce(name: str, params: dict, train: pd.DataFrame, schema: TableSchema, request: GenerationRequest,
             out: Path, context: dict, progress: ProgressSink) -> BackendOutcome:
    for sub in ("data", "config", "evaluation", "model"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    generator = registry.create(name, **params)
    fit = generator.fit(train, schema, seed=request.seed, progress=progress)
    generator.save(out / "model")

    n_rows = request.rows or len(train)
    data_path = out / "data" / f"synthetic{SUFFIXES[request.output_format]}"
    kept: list[pd.DataFrame] = []
    kept_rows = 0
    start = time.perf_counter()
    for batch in write_batches(generator.sample(n_rows, seed=request.seed, batch_rows=request.batch_rows),
                               data_path, request.output_format):
        if kept_rows < request.evaluation_rows:
            kept.append(batch.head(request.evaluation_rows - kept_rows))
            kept_rows += len(kept[-1])
        progress(Progress(name, "sample", kept_rows if kept_rows < n_rows else n_rows, n_rows,
                          seconds=time.perf_counter() - start))
    sample_seconds = time.perf_counter() - start

    synthetic = pd.concat(kept, ignore_index=True) if kept else pd.DataFrame(columns=train.columns)
    real = train.sample(n=min(len(train), QUALITY_SAMPLE), random_state=request.seed)
    quality = quality_score(real, synthetic.head(QUALITY_SAMPLE), schema)
    progress(Progress(name, "evaluate", 1, 1, message=f"quality {quality['quality']:.3f}"))

    output_schema = schema.model_copy(update={"columns": schema.output_columns()})
    output_schema.data_dictionary().to_csv(out / "data" / "data-dictionary.csv", index=False)
    generation = {**context, "backend": {"name": name, "params": generator.params}, "fit": fit.to_dict()}
    (out / "config" / "generation.json").write_text(json.dumps(generation, indent=2, default=str))
    metrics = {"backend": name, "rows": n_rows, "quality": quality,
               "samples": {"real_rows": len(real), "synthetic_rows": min(len(synthetic), QUALITY_SAMPLE)}}
    (out / "evaluation" / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return BackendOutcome(name, ok=True, fit_seconds=fit.seconds, sample_seconds=sample_seconds, rows=n_rows,
                          rows_per_second=n_rows / sample_seconds if sample_seconds > 0 else None,
                          quality=quality, fit=fit.to_dict())


# -- helpers --------------------------------------------------------------------------------------
def comparison_table(outcomes: list[BackendOutcome]) -> pd.DataFrame:
    """Side-by-side table of backends."""
    return pd.DataFrame([{
        "backend": o.backend, "status": "ok" if o.ok else "failed",
        "fit_seconds": None if o.fit_seconds is None else round(o.fit_seconds, 2),
        "rows": o.rows, "rows_per_second": None if o.rows_per_second is None else round(o.rows_per_second),
        "quality": o.quality.get("quality"), "error": o.error or "",
    } for o in outcomes])


def default_run_dir() -> Path:
    """runs/<UTC timestamp> under the working directory."""
    return Path("runs") / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def _prepare_run_dir(path: Path) -> Path:
    if path.exists() and any(path.iterdir()):
        raise RunError(f"{path} already holds files; choose an empty or new output directory.")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run_context(request: GenerationRequest, source: Path, data: pd.DataFrame, train: pd.DataFrame,
                 holdout: pd.DataFrame) -> dict:
    return {
        "request": request.model_dump(mode="json"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": {"name": source.name, "sha256": file_sha256(source), "rows": len(data),
                   "columns": int(data.shape[1])},
        "split": {"seed": request.seed, "train_rows": len(train), "holdout_rows": len(holdout)},
        "packages": _package_versions(),
    }


def _package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = package_metadata.version(name)
        except package_metadata.PackageNotFoundError:
            continue
    return versions
