"""A dataset run: several related tables in, whole synthetic subjects out (every table), evaluated.

read the tables (files or a folder) -> DatasetSchema.infer (or an edited schema) -> split by subject
(a root row and all its descendants go to the same side) -> per dataset backend: fit on the training
subjects, save the fitted model (<run>/<backend>/model/), stream batches of subjects into one file per table,
evaluate -> <run>/<backend>/metrics.json and report.html; given crate metadata, one crate per backend
(services/run/dataset_crate.py) -> <run>/<backend>.crate.zip.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from fairsynth.backends.dataset import create_dataset_generator
from fairsynth.metadata.dataset import DatasetSchema
from fairsynth.metadata.model import CrateInfo
from fairsynth.services.run.dataset_crate import DatasetOutcome, dataset_context, package_dataset_crates
from fairsynth.services.run.evaluation.frames import QUALITY_ROWS
from fairsynth.services.run.evaluation.relational import evaluate_dataset
from fairsynth.services.run.report import render_dataset_report
from fairsynth.services.run.tables import InputError, read_table
from fairsynth.services.run.writers import BatchWriter

TABLE_SUFFIXES = (".csv", ".parquet", ".csv.gz", ".csv.bz2", ".csv.xz", ".csv.zip")
DEFAULT_DATASET_BACKEND = "relational"
MODEL_FOLDER = "model"  # <run>/<backend>/model/: the fitted generator, as a one-table run's


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


def read_dataset(
    paths: Sequence[Path], *, encoding: str | None = None, separator: str | None = None
) -> dict[str, pd.DataFrame]:
    """Every table, by name; one InputError for too few tables or two tables of one name."""
    files = dataset_files(paths)
    names = [table_name(p) for p in files]
    problems = [f"Two files give the table name '{n}'; rename one." for n in sorted(set(names)) if names.count(n) > 1]
    if len(files) < 2:
        problems.append("A dataset needs at least two table files (or a folder holding them).")
    if problems:
        raise InputError(*problems)
    return {
        name: read_table(path, encoding=encoding or "utf-8", separator=separator) for name, path in zip(names, files)
    }


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
    tables = read_dataset(paths, encoding=encoding, separator=separator)
    schema = (schema or DatasetSchema.infer(tables)).checked()
    if not schema.relationships:
        raise InputError(
            "No relationship was found between the tables: a child table needs a column named as its parent's "
            "key (e.g. patient_id for patients.id) whose values are all parent keys; rename it or pass a schema."
        )
    # every backend and its parameters checked before anything is written
    generators = {name: create_dataset_generator(name, **dict((params or {}).get(name, {}))) for name in backends}
    misfits = [problem for generator in generators.values() if (problem := generator.shape_problem(schema))]
    if misfits:
        raise InputError(*misfits)
    out.mkdir(parents=True, exist_ok=True)
    (out / "dataset.json").write_text(schema.to_json())
    train, holdout = split_by_subject(tables, schema, holdout_share, seed)
    result = DatasetRunResult(out, schema)
    n_subjects = subjects or len(train[schema.roots()[0]])
    outcomes = []
    for name, generator in generators.items():
        times = {"fit_start": _now()}
        fit = generator.fit(train, schema, seed=seed)
        times["fit_end"] = _now()
        folder = out / name
        generator.save(folder / MODEL_FOLDER)
        times["sample_start"] = _now()
        files = _write(
            generator.sample(n_subjects, seed=seed, batch_subjects=batch_subjects),
            folder,
            schema,
            fmt,
            neutralise,
        )
        times["sample_end"] = _now()
        synthetic = {t: _read_back(path) for t, path in files.items()}
        metrics = {
            "backend": name,
            "fit_seconds": fit.seconds,
            **evaluate_dataset(train, holdout, synthetic, schema, seed=seed, max_rows=quality_rows).model_dump(
                mode="json"
            ),
        }
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
        report = folder / "report.html"
        report.write_text(render_dataset_report(train, synthetic, schema, metrics, backend=name, seed=seed))
        result.metrics[name] = metrics
        rows = {t: len(frame) for t, frame in synthetic.items()}
        used = generator.params.model_dump(mode="json")  # every parameter, defaults included
        outcomes.append(DatasetOutcome(name, files, rows, fit, used, times, metrics, report, folder / MODEL_FOLDER))
    if crate is not None:
        request = {"backends": list(generators), "subjects": n_subjects, "seed": seed}
        request |= {"holdout_share": holdout_share, "format": fmt, "batch_subjects": batch_subjects}
        sources = {table_name(path): path for path in dataset_files(paths)}
        context = dataset_context(sources, train, holdout, schema, request)
        releasable = [o for o in outcomes if o.metrics["gate"]["decision"] != "block"]  # as for one table
        result.crates = package_dataset_crates(out, releasable, schema, crate, context, neutralise=neutralise)
    return result


def _now() -> datetime:
    return datetime.now(UTC)


def _write(batches, folder: Path, schema: DatasetSchema, fmt: str, neutralise: bool) -> dict[str, Path]:
    """Stream each batch of subjects into one file per table; only the current batch is held in memory."""
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
