"""Shared views of a table for the metrics: numbers (dates as days) and category labels, subsamples."""

from __future__ import annotations

import pandas as pd

from fairsynth.metadata.schema import NUMERIC_KINDS, TEMPORAL_KINDS, ColumnSpec, TableSchema, column_values

#: real and synthetic rows each quality report compares: the same for both tables and every backend of a run
#: (5 evaluation seeds move the quality of one synthetic file by < 0.01 on the benchmark tables)
QUALITY_ROWS = 20_000


def is_numeric(spec: ColumnSpec) -> bool:
    """True when a column is compared as numbers (integers, floats, dates as days)."""
    return spec.kind in NUMERIC_KINDS or spec.kind in TEMPORAL_KINDS


def compared_columns(schema: TableSchema, *tables: pd.DataFrame) -> list[ColumnSpec]:
    """The learned columns present in every table given, in schema order."""
    return [spec for spec in schema.learned_columns() if all(spec.name in t.columns for t in tables)]


def listed_labels(spec: ColumnSpec) -> set[str]:
    """The real levels a report may name: those the data dictionary lists (never one under the rare-level
    threshold, none of a column with too many levels), as lower-case labels."""
    return {label.lower() for label in spec.allowed_values or []}


def values_frame(data: pd.DataFrame, specs: list[ColumnSpec]) -> pd.DataFrame:
    """The compared columns of a table as numbers and labels (see column_values)."""
    return pd.DataFrame({spec.name: column_values(data[spec.name], spec) for spec in specs}, index=data.index)


def subsample(data: pd.DataFrame, n_max: int, seed: int) -> pd.DataFrame:
    """At most n_max rows drawn without replacement (seeded); the table itself when smaller."""
    if len(data) <= n_max:
        return data
    return data.sample(n=n_max, random_state=seed)
