"""A dataset run's crates: per dataset backend one RO-Crate holding every synthetic table, built like one table's.

The backend's run folder (<run>/<backend>/: one file per table, metrics.json) stays as it is; the crate is laid
out beside it in <run>/<backend>.crate/ (the tables hard-linked, not copied, where the file system allows):

    data/<table>.csv|parquet              every synthetic table (a File in the root's hasPart)
    data/<table>.data-dictionary.csv      each table's dictionary, with each column's role (written by the builder)
    data/relationships.json               tables, keys, time columns and parent -> child links (the builder)
    model/                                the fitted generator as the backend saved it (or why it is not kept)
    config/generation.json                backends, parameters, seed, split and source checksums: the run again
    evaluation/metrics.json               per table quality, per relationship integrity, children per parent, order
    evaluation/report.html                the same as a page: relationships, then per table scores and plots

then metadata.builder.build_crate adds DOME, the PageTab and the RO-Crate metadata and archive.zip_crate packs it
as <run>/<backend>.crate.zip.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from fairsynth.backends import registry
from fairsynth.backends.base import FitResult
from fairsynth.metadata.archive import zip_crate
from fairsynth.metadata.builder import build_crate
from fairsynth.metadata.checksums import sha256_file
from fairsynth.metadata.dataset import DatasetSchema
from fairsynth.metadata.model import (
    MODEL_DIR,
    CrateInfo,
    RunFacts,
    SourceFacts,
    TableFacts,
    dataset_checksum,
    table_dictionary_path,
    table_path,
)
from fairsynth.services.run.evaluation.metrics import DATASET_METRICS
from fairsynth.services.run.evaluation.relational_results import DatasetEvaluation
from fairsynth.services.run.pipeline import crate_measures, package_version, package_versions

METRICS_PATH = "evaluation/metrics.json"
GENERATION_PATH = "config/generation.json"
REPORT_PATH = "evaluation/report.html"
QUALITY_MEANING = "sdmetrics quality (column shapes and pair trends) of the table's non-key columns, real vs synthetic"


@dataclass
class DatasetOutcome:
    """What one dataset backend produced: its synthetic table files, rows, fit, parameters, times and measures."""

    backend: str
    files: dict[str, Path]
    rows: dict[str, int]
    fit: FitResult
    params: dict[str, Any]
    times: dict[str, datetime]
    metrics: dict[str, Any]
    report: Path | None = None
    model: Path | None = None  # the folder the backend saved its fitted model in


def dataset_context(
    sources: Mapping[str, Path],
    train: Mapping[str, pd.DataFrame],
    holdout: Mapping[str, pd.DataFrame],
    schema: DatasetSchema,
    request: dict[str, Any],
) -> dict[str, Any]:
    """What every crate of the run says about its input and request: source files by checksum, the subject split."""
    root = schema.roots()[0]
    files = {path.name: sha256_file(path) for path in sources.values()}
    frames = {name: (len(train[name]) + len(holdout[name]), train[name].shape[1]) for name in schema.names}
    return {
        "request": request,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": {
            "name": ", ".join(sorted(files)),
            "files": files,
            "sha256": dataset_checksum(files),
            "rows": sum(rows for rows, _ in frames.values()),
            "columns": sum(columns for _, columns in frames.values()),
        },
        "split": {
            "seed": request["seed"],
            "by": f"subject (a {root} row with all its descendants)",
            "train_subjects": len(train[root]),
            "holdout_subjects": len(holdout[root]),
        },
        "packages": package_versions(),
    }


def package_dataset_crates(
    run_dir: Path,
    outcomes: list[DatasetOutcome],
    schema: DatasetSchema,
    info: CrateInfo,
    context: dict[str, Any],
    *,
    neutralise: bool,
) -> dict[str, Path]:
    """One crate zip per backend (<run>/<backend>.crate.zip), each describing every table; returns them by backend."""
    crates = {}
    for outcome in outcomes:
        folder = _lay_out(run_dir / f"{outcome.backend}.crate", outcome, context)
        facts = dataset_facts(outcome, outcomes, schema, context, neutralise=neutralise)
        build_crate(folder, info, facts)
        crates[outcome.backend] = zip_crate(folder, run_dir / f"{outcome.backend}.crate.zip")
    return crates


def _lay_out(folder: Path, outcome: DatasetOutcome, context: dict[str, Any]) -> Path:
    """The crate folder with the tables, the generation config and the metrics in the crate layout."""
    shutil.rmtree(folder, ignore_errors=True)
    for table, path in outcome.files.items():
        _link_or_copy(path, folder / table_path(table, path.suffix))
    generation = {
        **context,
        "backend": {"name": outcome.backend, "params": outcome.params},
        "fit": outcome.fit.to_dict(),
    }
    (folder / GENERATION_PATH).parent.mkdir(parents=True)
    (folder / GENERATION_PATH).write_text(json.dumps(generation, indent=2, default=str))
    (folder / METRICS_PATH).parent.mkdir(parents=True)
    (folder / METRICS_PATH).write_text(json.dumps(outcome.metrics, indent=2, default=str))
    if outcome.report is not None:
        _link_or_copy(outcome.report, folder / REPORT_PATH)
    if outcome.model is not None:
        for path in sorted(p for p in outcome.model.rglob("*") if p.is_file()):
            _link_or_copy(path, folder / MODEL_DIR / path.relative_to(outcome.model))
    return folder


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link (no second copy of a large table), or a copy where links are not allowed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def dataset_facts(
    outcome: DatasetOutcome,
    outcomes: list[DatasetOutcome],
    schema: DatasetSchema,
    context: dict[str, Any],
    *,
    neutralise: bool,
) -> RunFacts:
    """What the crate says about one dataset backend's run, from its outcome and the run context."""
    caps = registry.backend_info(outcome.backend, registry.DATASET_GROUP).capabilities
    source, split = context["source"], context["split"]
    tables = [
        TableFacts(
            name,
            table_path(name, outcome.files[name].suffix),
            table_dictionary_path(name),
            schema.entry(name).table,
            outcome.rows[name],
            qualified=True,
        )
        for name in schema.top_down()  # parents first: the order the crate lists them in
    ]
    return RunFacts(
        backend=outcome.backend,
        backend_version=context["packages"].get(caps.package) or package_version(caps.package) or "unknown",
        backend_url=caps.url,
        backend_license=caps.license,
        model_family=caps.model_family or caps.description.split(":")[0],
        backend_description=caps.description,
        schema=None,
        source=SourceFacts(
            rows=source["rows"],
            columns=source["columns"],
            sha256=source["sha256"],
            kind="related tables of tabular health records",
            name=source["name"],
            files=source["files"],
        ),
        seed=split["seed"],
        **outcome.times,
        train_rows=split["train_subjects"],
        holdout_rows=split["holdout_subjects"],
        split_seed=split["seed"],
        synthetic_rows=outcome.rows[schema.roots()[0]],
        params=outcome.params,
        fit_seconds=outcome.fit.seconds,
        epochs=outcome.fit.epochs or outcome.params.get("epochs"),
        losses=outcome.fit.losses,
        epsilon=outcome.fit.epsilon,  # relational.dp: the subject-level epsilon its fit composed
        delta=outcome.fit.delta,
        measures=dataset_measures(outcome.metrics),
        comparison={
            other.backend: {m["name"]: m["value"] for m in dataset_measures(other.metrics)}
            for other in outcomes
            if other is not outcome
        },
        packages={k: v for k, v in context["packages"].items() if k != "fairsynth"},  # fairsynth: not on PyPI
        csv_formulas_neutralised=neutralise,
        dataset=schema,
        tables=tables,
    )


def dataset_measures(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """The dataset's measures as the crate's plain data (name, label, value, goal, meaning): the declared dataset
    metrics (dataset quality, trajectories, subject privacy), then per table, per link, per rule (within a table,
    cross-table, time order)."""
    evaluation = DatasetEvaluation.from_metrics(metrics)
    measures = crate_measures(evaluation, DATASET_METRICS)
    for table, block in metrics["tables"].items():
        measures += [
            _measure(f"quality.{table}", f"Quality of {table}", block["quality"], "maximize", QUALITY_MEANING),
            _measure(
                f"real_keys_copied.{table}",
                f"Real keys copied into {table}",
                sum(block["real_keys_copied"].values()),
                "minimize",
                "synthetic key values equal to a real key of the table (keys are regenerated: 0)",
            ),
        ]
    for link in metrics["relationships"]:
        pair = f"{link['parent']}->{link['child']}"
        order = link["within_parent_order"] or {}
        measures += [
            _measure(
                f"referential_integrity.{pair}",
                f"Referential integrity {pair}",
                link["referential_integrity"],
                "maximize",
                "share of child rows whose parent exists (1.0: every child has its parent)",
            ),
            _measure(
                f"children_per_parent_ks.{pair}",
                f"Children per parent KS {pair}",
                link["children_per_parent"]["ks_statistic"],
                "minimize",
                "Kolmogorov-Smirnov statistic between the real and synthetic counts of children per parent",
            ),
            _measure(
                f"within_parent_order.{pair}",
                f"Children in time order {pair}",
                order.get("synthetic"),
                "maximize",
                f"share of synthetic parents whose children come in order of {link['time_column']}",
            ),
        ]
    measures += [
        _measure(
            f"rule_adherence.{rule['text']}",
            f"Rule kept: {rule['text']}",
            rule["adherence"],
            "maximize",
            f"share of the synthetic rows the rule applies to that keep it ({rule['status']}; real rows: "
            f"{_share(rule['real_adherence'])})",
        )
        for rule in metrics["rules"]["rules"]
    ]
    return [measure for measure in measures if measure["value"] is not None]


def _share(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.2%}"


def _measure(name: str, label: str, value: Any, goal: str, meaning: str) -> dict[str, Any]:
    return {"name": name, "label": label, "value": value, "goal": goal, "meaning": meaning}
