"""Measures of a synthetic dataset: per-table quality, sdmetrics' multi-table QualityReport, referential integrity,
children per parent, time order, within-subject trajectories, cross-table rule adherence (evaluation.rules) and
subject-level privacy (evaluation.subjects), judged by the dataset gate (gate.dataset_gate)."""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp
from sdmetrics.reports import QualityReport

from fairsynth.metadata.dataset import DatasetSchema, Relationship
from fairsynth.metadata.schema import ColumnSpec
from fairsynth.services.run.evaluation.frames import QUALITY_ROWS, is_numeric, values_frame
from fairsynth.services.run.evaluation.gate import ReleasePolicy, dataset_gate
from fairsynth.services.run.evaluation.quality import (
    quality_rows,
    quality_score,
    scored_columns,
    scoring_sample,
    sdmetrics_columns,
)
from fairsynth.services.run.evaluation.relational_results import (
    DatasetEvaluation,
    DatasetMeasurements,
    DatasetQuality,
    DatasetStructure,
    Trajectories,
)
from fairsynth.services.run.evaluation.results import Skipped
from fairsynth.services.run.evaluation.rules import evaluate_dataset_rules
from fairsynth.services.run.evaluation.subjects import evaluate_subject_privacy, value_schema

Tables = Mapping[str, pd.DataFrame]
#: sdmetrics' multi-table property names -> the DatasetQuality fields
PROPERTIES = {
    "Column Shapes": "column_shapes",
    "Column Pair Trends": "column_pair_trends",
    "Cardinality": "cardinality",
    "Intertable Trends": "intertable_trends",
}


def evaluate_dataset(
    train: Tables,
    holdout: Tables,
    synthetic: Tables,
    schema: DatasetSchema,
    *,
    seed: int = 0,
    max_rows: int = QUALITY_ROWS,
    policy: ReleasePolicy | None = None,
) -> DatasetEvaluation:
    """metrics.json of a dataset run: per table and relationship, the multi-table quality, trajectories, subject
    privacy and the gate. `max_rows` bounds the rows of the largest table the multi-table report compares (the
    entry points pass FAIRSYNTH_DATASET_QUALITY_ROWS)."""
    start = time.perf_counter()
    relationships = [_relationship_block(link, train, synthetic, schema) for link in schema.relationships]
    measured = DatasetMeasurements(
        tables={name: _table_block(name, train, holdout, synthetic, schema, seed) for name in schema.names},
        relationships=relationships,
        structure=_structure(relationships),
        quality=dataset_quality(train, holdout, synthetic, schema, max_rows=max_rows, seed=seed),
        privacy=evaluate_subject_privacy(train, holdout, synthetic, schema, seed=seed),
        trajectories=trajectories(train, synthetic, schema),
        rules=evaluate_dataset_rules(train, synthetic, schema),
    )
    return DatasetEvaluation(**dict(measured), gate=dataset_gate(measured, policy), seconds=time.perf_counter() - start)


def _structure(relationships: list[dict]) -> DatasetStructure:
    """The worst integrity over the relationships and the worst synthetic time order over the sequences."""
    integrity = [r["referential_integrity"] for r in relationships if r["referential_integrity"] is not None]
    order = [r["within_parent_order"]["synthetic"] for r in relationships if r["within_parent_order"]]
    return DatasetStructure(
        referential_integrity=min(integrity, default=None),
        time_order=min((o for o in order if o is not None), default=None),
    )


# -- sdmetrics' multi-table QualityReport --------------------------------------------------------------
def sdmetrics_dataset_metadata(schema: DatasetSchema, real: Tables, synthetic: Tables) -> dict:
    """sdmetrics multi-table metadata from the DatasetSchema: per table its keys (sdtype id, the primary key
    named) and the columns the single-table score covers that both sides hold; the relationships."""
    tables = {}
    for name in schema.names:
        keys = schema.key_columns(name)
        columns = {key: {"sdtype": "id"} for key in keys}
        columns |= sdmetrics_columns(scored_columns(value_schema(schema, name), real[name], synthetic[name]))
        primary = schema.entry(name).primary_key or next((r.parent_key for r in schema.children_of(name)), None)
        tables[name] = {"columns": columns} | ({"primary_key": primary} if primary else {})
    relationships = [
        {
            "parent_table_name": r.parent,
            "parent_primary_key": r.parent_key,
            "child_table_name": r.child,
            "child_foreign_key": r.child_key,
        }
        for r in schema.relationships
    ]
    return {"tables": tables, "relationships": relationships}


def sample_subjects(tables: Tables, schema: DatasetSchema, max_rows: int, seed: int) -> dict[str, pd.DataFrame]:
    """Whole subjects drawn (seeded) so that the largest table keeps about max_rows rows: the same share of each
    root table's rows, every descendant following its parent (children per parent stay as they were)."""
    largest = max((len(t) for t in tables.values()), default=0)
    if largest <= max_rows:
        return dict(tables)
    share, kept = max_rows / largest, {}
    for name in schema.top_down():
        data, link = tables[name], schema.parent_of(name)
        if link is None:
            rows = np.random.default_rng(seed).choice(len(data), max(1, int(len(data) * share)), replace=False)
            kept[name] = data.iloc[np.sort(rows)]
        else:
            kept[name] = data[data[link.child_key].isin(set(kept[link.parent][link.parent_key]))]
    return {name: frame.reset_index(drop=True) for name, frame in kept.items()}


def dataset_quality(
    train: Tables, holdout: Tables, synthetic: Tables, schema: DatasetSchema, *, max_rows: int, seed: int = 0
) -> DatasetQuality | Skipped:
    """sdmetrics' multi-table QualityReport (column shapes, column pair trends, cardinality, intertable trends) on
    whole subjects sampled from the training and the synthetic tables, every column pair counted; the held-out
    subjects' score as the reference a perfect generator reaches."""
    if any(len(synthetic[name]) == 0 for name in schema.roots()):
        return Skipped(skipped="The synthetic dataset has no subjects; generate some to measure its quality.")
    real = sample_subjects(train, schema, max_rows, seed)
    synth = sample_subjects(synthetic, schema, max_rows, seed + 1)
    scores = multi_table_scores(real, synth, schema, seed)
    has_holdout = all(len(holdout[name]) for name in schema.roots())
    held_out = sample_subjects(holdout, schema, max_rows, seed + 2)
    reference = multi_table_scores(real, held_out, schema, seed)["score"] if has_holdout else None
    return DatasetQuality(
        **scores,
        holdout_reference=reference,
        sampled_rows={"real": {n: len(t) for n, t in real.items()}, "synthetic": {n: len(t) for n, t in synth.items()}},
    )


def multi_table_scores(real: Tables, other: Tables, schema: DatasetSchema, seed: int) -> dict[str, float]:
    """The QualityReport's overall score and its four properties (PROPERTIES' field names) of `other` vs `real`."""
    metadata = sdmetrics_dataset_metadata(schema, real, other)
    report = QualityReport()  # the unified report: multi-table metadata gives the multi-table properties
    report.real_correlation_threshold = 0
    report.real_association_threshold = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report.generate(
            _report_tables(real, schema, metadata, seed),
            _report_tables(other, schema, metadata, seed),
            metadata,
            verbose=False,
        )
    properties = report.get_properties().set_index("Property")["Score"]
    return {"score": report.get_score(), **{field: properties.get(name) for name, field in PROPERTIES.items()}}


def _report_tables(tables: Tables, schema: DatasetSchema, metadata: dict, seed: int) -> dict[str, pd.DataFrame]:
    """Each table's metadata columns as the single-table score shows them (identifiers as rows per key)."""
    frames = {}
    for name in schema.names:
        columns = list(metadata["tables"][name]["columns"])
        keys = schema.key_columns(name)
        specs = [spec for spec in value_schema(schema, name).columns if spec.name in columns and spec.name not in keys]
        data = tables[name]
        frames[name] = pd.concat([data[keys], scoring_sample(data, specs, len(data), seed)], axis=1)[columns]
    return frames


# -- within-subject trajectories ---------------------------------------------------------------------
def trajectories(train: Tables, synthetic: Tables, schema: DatasetSchema) -> Trajectories:
    """Per child table with a time column and per number in it that changes within some real parent: the change
    from one row to the next within a parent (rows in time order), real vs synthetic (KS); their mean KS."""
    columns = []
    for link in schema.relationships:
        sequence = schema.entry(link.child).sequence
        if not sequence:
            continue
        specs = [
            spec
            for spec in value_schema(schema, link.child).learned_columns()
            if is_numeric(spec) and spec.name != sequence and spec.name in synthetic[link.child]
        ]
        time_spec = schema.entry(link.child).table.column(sequence)
        for spec in specs:
            real = consecutive_changes(train[link.child], link.child_key, time_spec, spec)
            if not np.any(real):  # constant within every real parent (a subject-level column): no trajectory
                continue
            synth = consecutive_changes(synthetic[link.child], link.child_key, time_spec, spec)
            columns.append(
                {
                    "table": link.child,
                    "column": spec.name,
                    "ks_statistic": ks_2samp(real, synth).statistic if len(real) and len(synth) else None,
                    "real_changes": len(real),
                    "synthetic_changes": len(synth),
                    "real_mean_change": real.mean() if len(real) else None,
                    "synthetic_mean_change": synth.mean() if len(synth) else None,
                }
            )
    measured = [c["ks_statistic"] for c in columns if c["ks_statistic"] is not None]
    return Trajectories.model_validate({"columns": columns, "mean_ks": np.mean(measured) if measured else None})


def consecutive_changes(child: pd.DataFrame, key: str, time_spec: ColumnSpec, spec: ColumnSpec) -> np.ndarray:
    """A number's change between consecutive rows of each parent, the rows ordered by time (gaps left out)."""
    frame = pd.DataFrame(
        {
            "parent": child[key].to_numpy(),
            "time": values_frame(child, [time_spec])[time_spec.name].to_numpy(),
            "value": values_frame(child, [spec])[spec.name].to_numpy(),
        }
    ).sort_values(["parent", "time"], kind="stable")
    changes = frame.groupby("parent", sort=False)["value"].diff().to_numpy()
    return changes[~np.isnan(changes)]


def _table_block(
    name: str, train: Tables, holdout: Tables, synthetic: Tables, schema: DatasetSchema, seed: int
) -> dict:
    """The single-table quality score on the table's non-key columns, the holdout's as reference, key copies."""
    keys = schema.key_columns(name)
    table = schema.entry(name).table.with_overrides(drop=keys)
    real, synth = train[name], synthetic[name]
    return {
        "rows": {"real": len(real), "synthetic": len(synth)},
        "quality": _quality(real, synth, table, seed),
        "holdout_reference": _quality(real, holdout[name], table, seed) if len(holdout[name]) else None,
        "real_keys_copied": {key: int(synth[key].isin(set(real[key].dropna())).sum()) for key in keys if key in synth},
    }


def _quality(real: pd.DataFrame, other: pd.DataFrame, table, seed: int) -> float | None:
    specs = scored_columns(table, real, other)
    n_rows = quality_rows(real, other)
    if not specs or n_rows == 0:
        return None
    sample = scoring_sample(real, specs, n_rows, seed), scoring_sample(other, specs, n_rows, seed + 1)
    return quality_score(*sample, table)["quality"]


def _relationship_block(link: Relationship, train: Tables, synthetic: Tables, schema: DatasetSchema) -> dict:
    """Integrity (every child's parent exists), children per parent (real vs synthetic, KS) and time order."""
    real_counts = children_per_parent(train, link)
    synth_counts = children_per_parent(synthetic, link)
    sequence = schema.entry(link.child).sequence
    return {
        "parent": link.parent,
        "child": link.child,
        "referential_integrity": referential_integrity(synthetic, link),
        "children_per_parent": {
            "real_mean": float(real_counts.mean()) if len(real_counts) else None,
            "synthetic_mean": float(synth_counts.mean()) if len(synth_counts) else None,
            "ks_statistic": float(ks_2samp(real_counts, synth_counts).statistic)
            if len(real_counts) and len(synth_counts)
            else None,
        },
        "time_column": sequence,
        "within_parent_order": {
            "real": in_order_share(train[link.child], link.child_key, sequence),
            "synthetic": in_order_share(synthetic[link.child], link.child_key, sequence),
        }
        if sequence
        else None,
    }


def referential_integrity(tables: Tables, link: Relationship) -> float | None:
    """Share of child rows with a foreign key whose parent exists (1.0: every child has its parent)."""
    keys = tables[link.child][link.child_key].dropna()
    return float(keys.isin(set(tables[link.parent][link.parent_key])).mean()) if len(keys) else None


def children_per_parent(tables: Tables, link: Relationship) -> np.ndarray:
    """How many child rows each parent row has (zero included)."""
    counts = tables[link.child].groupby(link.child_key).size()
    return tables[link.parent][link.parent_key].map(counts).fillna(0).to_numpy(dtype=float)


def in_order_share(child: pd.DataFrame, key: str, sequence: str) -> float | None:
    """Share of parents whose children come in time order, in the order the rows are stored."""
    if child.empty:
        return None
    times = child[sequence]
    if not pd.api.types.is_numeric_dtype(times):
        times = pd.to_datetime(times, errors="coerce")
    ordered = times.groupby(child[key], sort=False).apply(lambda v: v.dropna().is_monotonic_increasing)
    return float(ordered.mean())
