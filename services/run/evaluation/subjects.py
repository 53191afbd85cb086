"""Privacy at the subject level: a subject is a root row with every descendant row (a patient's visits and labs).

The holdout is split by subject (services.run.datasets.split_by_subject), so the baselines here are subjects the
generator never saw, whole. Three measures:

- exact copies of whole histories: a subject's signature hashes its root row and, recursively, the multiset of
  its children's signatures (keys left out), so a synthetic subject equals a real one only when its root row and
  every descendant row, under the same parents, do;
- DCR / NNDR on subject summaries: one row per subject, the root's columns plus, per descendant table, the
  row count and each number's mean and last value (in time order when the table has a time column);
- membership inference on those summaries: training subjects vs held-out subjects, by distance to synthetic ones.

The distances are the row-level ones of evaluation.privacy (`distance_measures`), run on the summaries.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from fairsynth.metadata.dataset import DatasetSchema
from fairsynth.metadata.schema import ColumnKind, ColumnSpec, TableSchema
from fairsynth.services.run.evaluation.frames import compared_columns, is_numeric, values_frame
from fairsynth.services.run.evaluation.privacy import distance_measures, row_hashes
from fairsynth.services.run.evaluation.relational_results import SubjectCopies, SubjectPrivacy

Tables = Mapping[str, pd.DataFrame]
MIX = np.uint64(0x9E3779B97F4A7C15)  # the multiplier privacy.number_keys folds hashes with


def subject_root(schema: DatasetSchema) -> str:
    """The table whose rows are the subjects: the first root (the one the dataset run counts subjects by)."""
    return schema.roots()[0]


def value_schema(schema: DatasetSchema, name: str) -> TableSchema:
    """A table's schema without its keys (regenerated, never compared)."""
    return schema.value_table(name)


def evaluate_subject_privacy(
    train: Tables, holdout: Tables, synthetic: Tables, schema: DatasetSchema, *, seed: int = 0
) -> SubjectPrivacy:
    """The subject-level privacy block of a dataset's metrics.json."""
    root = subject_root(schema)
    result: dict = {"root": root, "exact_copies": count_subject_copies(train, holdout, synthetic, schema)}
    specs = summary_specs(schema, train)
    columns = [spec.name for spec in specs]  # the training columns, absent ones empty
    summaries = [subject_summaries(tables, schema).reindex(columns=columns) for tables in (train, holdout, synthetic)]
    result["summary_columns"] = columns
    if min(len(summaries[0]), len(summaries[1])) < 2 or not len(summaries[2]):
        result["note"] = "Fewer than two training or held-out subjects, or no synthetic one: no distances measured."
        return SubjectPrivacy.model_validate(result)
    return SubjectPrivacy.model_validate(result | distance_measures(*summaries, specs, seed=seed))


# -- whole-history copies ----------------------------------------------------------------------------
def count_subject_copies(train: Tables, holdout: Tables, synthetic: Tables, schema: DatasetSchema) -> SubjectCopies:
    """Synthetic subjects whose whole history equals a training subject's, and (the baseline) a holdout subject's."""
    root = subject_root(schema)
    specs = {name: compared_columns(value_schema(schema, name), train[name], synthetic[name]) for name in schema.names}
    train_sigs, holdout_sigs, synth_sigs = (
        history_signatures(tables, schema, root, specs) for tables in (train, holdout, synthetic)
    )
    in_train = int(np.isin(synth_sigs, train_sigs).sum())
    in_holdout = int(np.isin(synth_sigs, holdout_sigs).sum())
    n = len(synth_sigs)
    return SubjectCopies(
        count=in_train,
        rate=in_train / n if n else 0.0,
        holdout_count=in_holdout,
        holdout_rate=in_holdout / n if n else 0.0,
        synthetic_subjects_checked=n,
    )


def history_signatures(
    tables: Tables, schema: DatasetSchema, name: str, specs: Mapping[str, list[ColumnSpec]]
) -> np.ndarray:
    """A 64-bit signature per row of `name`: its values (keys left out) folded with, per child table, the
    order-free combination of its children's signatures, so equal signatures mean equal subtrees."""
    data = tables[name]
    signatures = row_hashes(data, specs[name]) if specs[name] else np.zeros(len(data), dtype=np.uint64)
    for link in schema.children_of(name):
        child = tables[link.child]
        child_sigs = history_signatures(tables, schema, link.child, specs)
        per_parent = _multiset_hashes(child[link.child_key], child_sigs)
        position = per_parent.index.get_indexer(data[link.parent_key])  # not map: NaN would make the hashes floats
        combined = np.append(per_parent.to_numpy(), np.uint64(0))[position]  # -1 (no children): the appended 0
        signatures = signatures * MIX + combined
    return signatures


def _multiset_hashes(owners: pd.Series, signatures: np.ndarray) -> pd.Series:
    """Per owner, a hash of its children's signatures that ignores their order (each signature hashed with its
    rank among equal owners' sorted signatures, then summed): equal only for equal multisets."""
    frame = pd.DataFrame({"owner": owners.to_numpy(), "sig": signatures})
    frame = frame[frame["owner"].notna()].sort_values(["owner", "sig"], kind="stable")  # an orphan belongs to none
    rank = frame.groupby("owner", sort=False).cumcount().to_numpy(dtype=np.uint64)
    hashed = pd.util.hash_array(frame["sig"].to_numpy() * MIX + rank)
    codes, owners_found = pd.factorize(frame["owner"])
    sums = np.zeros(len(owners_found), dtype=np.uint64)
    np.add.at(sums, codes, hashed)  # wraps modulo 2**64, like the hashes themselves
    return pd.Series(sums + np.uint64(1), index=owners_found)  # +1: one child with hash 0 differs from none


# -- subject summaries -------------------------------------------------------------------------------
def subject_of(tables: Tables, schema: DatasetSchema) -> dict[str, np.ndarray]:
    """For every table under the subject root (the root included), the subject of each row: the position of its
    root row (so that a synthetic table with a repeated or missing key is still measured; a row whose parent
    is not there has none, NaN)."""
    root = subject_root(schema)
    owners = {root: np.arange(len(tables[root]), dtype=float)}
    for name in schema.top_down():
        link = schema.parent_of(name)
        if link is None or link.parent not in owners:
            continue
        parent_subject = pd.Series(owners[link.parent], index=tables[link.parent][link.parent_key].to_numpy())
        parent_subject = parent_subject[~parent_subject.index.duplicated()]
        owners[name] = tables[name][link.child_key].map(parent_subject).to_numpy(dtype=float)
    return owners


def summary_specs(schema: DatasetSchema, train: Tables) -> list[ColumnSpec]:
    """The columns of a subject summary: root columns (numbers or labels), then per descendant table its row count
    and each number's mean and last value."""
    root = subject_root(schema)
    specs = [
        ColumnSpec(name=spec.name, kind=ColumnKind.FLOAT if is_numeric(spec) else ColumnKind.CATEGORICAL)
        for spec in compared_columns(value_schema(schema, root), train[root])
    ]
    for name in _descendants(schema, root):
        names = [f"{name}.rows"]
        for spec in _numbers(schema, name, train[name]):
            names += [f"{name}.{spec.name}.mean", f"{name}.{spec.name}.last"]
        specs += [ColumnSpec(name=column, kind=ColumnKind.FLOAT) for column in names]
    return specs


def subject_summaries(tables: Tables, schema: DatasetSchema) -> pd.DataFrame:
    """One row per subject: its root columns and, per descendant table, row count, numbers' means and last values."""
    root = subject_root(schema)
    owners = subject_of(tables, schema)
    subjects = pd.Index(owners[root])
    parts = [values_frame(tables[root], compared_columns(value_schema(schema, root), tables[root])).set_axis(subjects)]
    for name in _descendants(schema, root):
        parts.append(_table_summary(tables[name], owners[name], schema, name).reindex(subjects))
    summary = pd.concat(parts, axis=1).reset_index(drop=True)
    rows = [column for column in summary.columns if column.endswith(".rows")]
    summary[rows] = summary[rows].fillna(0.0)  # a subject without rows in a table has 0 of them
    return summary


def _table_summary(data: pd.DataFrame, owners: np.ndarray, schema: DatasetSchema, name: str) -> pd.DataFrame:
    numbers = _numbers(schema, name, data)
    values = values_frame(data, numbers)
    values.index = pd.Index(owners, name="subject")
    sequence = schema.entry(name).sequence
    if sequence:  # "last" is the latest in time; stable, so rows of one time keep their stored order
        spec = schema.entry(name).table.column(sequence)
        times = values_frame(data, [spec])[sequence].to_numpy()
        values = values.iloc[np.argsort(times, kind="stable")]
    grouped = values.groupby(level="subject", sort=False)
    summary = pd.DataFrame({f"{name}.rows": grouped.size().astype(float)})
    for spec in numbers:
        summary[f"{name}.{spec.name}.mean"] = grouped[spec.name].mean()
        summary[f"{name}.{spec.name}.last"] = grouped[spec.name].last()
    return summary


def _numbers(schema: DatasetSchema, name: str, data: pd.DataFrame) -> list[ColumnSpec]:
    return [spec for spec in compared_columns(value_schema(schema, name), data) if is_numeric(spec)]


def _descendants(schema: DatasetSchema, root: str) -> list[str]:
    """The tables below `root`, each after its parent."""
    below: list[str] = []
    for name in schema.top_down():
        link = schema.parent_of(name)
        if link is not None and (link.parent == root or link.parent in below):
            below.append(name)
    return below
