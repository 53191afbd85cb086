"""Measures of a synthetic dataset: per-table quality, referential integrity, children per parent, time order."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from fairsynth.metadata.dataset import DatasetSchema, Relationship
from fairsynth.services.run.evaluation.quality import quality_rows, quality_score, scored_columns, scoring_sample

Tables = Mapping[str, pd.DataFrame]


def evaluate_dataset(
    train: Tables, holdout: Tables, synthetic: Tables, schema: DatasetSchema, *, seed: int = 0
) -> dict:
    """metrics.json of a dataset run: one block per table and one per relationship."""
    return {
        "tables": {name: _table_block(name, train, holdout, synthetic, schema, seed) for name in schema.names},
        "relationships": [_relationship_block(link, train, synthetic, schema) for link in schema.relationships],
    }


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
