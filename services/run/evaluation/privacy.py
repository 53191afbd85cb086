"""Privacy: how much the synthetic table gives away about the training rows, with the holdout as baseline.

`evaluate_privacy(train, holdout, synthetic, schema)` returns the PrivacyResult of metrics.json
(evaluation.results). Distances are Euclidean in a mixed-type
space: numbers (dates as days) standardised by the training table's spread, a missing number as an
indicator plus the training median, categories one-hot scaled so that a mismatch adds exactly 1 to
the squared distance — the same as a one-standard-deviation difference in a number.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.neighbors import NearestNeighbors

from fairsynth.metadata.schema import NUMERIC_KINDS, TableSchema
from fairsynth.services.run.evaluation.anonymity import anonymeter_risks
from fairsynth.services.run.evaluation.bootstrap import auc_interval, clustered_share_interval, distance_auc
from fairsynth.services.run.evaluation.frames import compared_columns, is_numeric, subsample, values_frame
from fairsynth.services.run.evaluation.results import ExactCopies, PrivacyResult

REFERENCE_ROWS = 5_000  # train and holdout rows used as distance references (equal numbers of each)
QUERY_ROWS = 5_000  # synthetic rows whose distances are measured
MIA_SYNTHETIC_ROWS = 20_000  # synthetic rows the membership attacker searches
MAX_LEVELS = 50  # one-hot levels per categorical column; rarer ones share one "other" level
HISTOGRAM_BINS = 30
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95)
SCREEN_COLUMNS = 3  # number columns an exact-copy check keys a batch on first (those with the most distinct values)


class MixedSpace:
    """Maps a table into the numeric space where Euclidean distance is the mixed-type distance."""

    def __init__(self, train_values: pd.DataFrame, specs: list) -> None:
        self.specs = specs
        self.centre, self.scale, self.levels, self.has_missing = {}, {}, {}, {}
        for spec in specs:
            column = train_values[spec.name]
            if is_numeric(spec):
                observed = column.dropna()
                self.centre[spec.name] = float(observed.median()) if len(observed) else 0.0
                std = float(observed.std()) if len(observed) > 1 else 0.0
                self.scale[spec.name] = std if std > 0 else 1.0
                self.has_missing[spec.name] = bool(column.isna().any())
            else:
                counts = column.fillna("__missing__").value_counts()
                self.levels[spec.name] = list(counts.index[:MAX_LEVELS])

    def transform(self, values: pd.DataFrame) -> np.ndarray:
        """The rows as float32 coordinates."""
        blocks = []
        for spec in self.specs:
            column = values[spec.name]
            if is_numeric(spec):
                missing = column.isna().to_numpy()
                filled = column.fillna(self.centre[spec.name]).to_numpy(dtype=float)
                blocks.append(((filled - self.centre[spec.name]) / self.scale[spec.name])[:, None])
                if self.has_missing[spec.name]:  # the same columns for every table, fixed by train
                    blocks.append(missing.astype(float)[:, None])
            else:
                blocks.append(self._one_hot(column, self.levels[spec.name]))
        if not blocks:
            return np.zeros((len(values), 1), dtype=np.float32)
        return np.hstack(blocks).astype(np.float32)

    @staticmethod
    def _one_hot(column: pd.Series, levels: list) -> np.ndarray:
        codes = pd.Categorical(column.fillna("__missing__"), categories=levels).codes  # -1 = other
        out = np.zeros((len(column), len(levels) + 1))
        out[np.arange(len(column)), np.where(codes < 0, len(levels), codes)] = 1.0
        return out / np.sqrt(2.0)


def evaluate_privacy(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: TableSchema,
    *,
    seed: int = 0,
    fit: dict | None = None,
    anonymeter: bool = True,
    copies: ExactCopies | None = None,
) -> PrivacyResult:
    """The privacy block of metrics.json: exact copies, DCR, NNDR, membership inference, anonymeter, ε/δ."""
    specs = compared_columns(schema, train, holdout, synthetic)
    result = {"exact_copies": copies or count_exact_copies(train, holdout, synthetic, specs)}
    if len(holdout) < 2 or len(train) < 2:
        result["note"] = "No holdout rows: distance-based risks need a holdout the generator never saw."
        return PrivacyResult.model_validate(result | {"dp": _dp(fit)})
    result |= distance_measures(train, holdout, synthetic, specs, seed=seed)
    if anonymeter:
        result["anonymeter"] = anonymeter_risks(train, holdout, synthetic, schema, seed=seed)
    result["dp"] = _dp(fit)
    return PrivacyResult.model_validate(result)


def distance_measures(
    train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, specs: list, *, seed: int = 0
) -> dict:
    """DCR, NNDR and membership inference in the mixed space of `specs` (train and holdout need 2 rows each), with
    the rows they used: the row-level measures here, the subject-level ones on subject summaries (subjects.py)."""
    n_ref = min(len(train), len(holdout), REFERENCE_ROWS)
    train_ref = values_frame(subsample(train, n_ref, seed), specs)
    holdout_ref = values_frame(subsample(holdout, n_ref, seed + 1), specs)
    queries = values_frame(subsample(synthetic, QUERY_ROWS, seed + 2), specs)
    space = MixedSpace(train_ref, specs)
    x_train, x_holdout, x_synth = space.transform(train_ref), space.transform(holdout_ref), space.transform(queries)
    mia_synth = values_frame(subsample(synthetic, MIA_SYNTHETIC_ROWS, seed + 3), specs)
    return {
        "dcr": distance_to_closest_record(x_train, x_holdout, x_synth, seed=seed),
        "nndr": nearest_neighbour_distance_ratio(x_train, x_holdout, x_synth),
        "membership_inference": membership_inference(x_train, x_holdout, space.transform(mia_synth), seed=seed),
        "sample_sizes": {
            "train_reference": n_ref,
            "holdout_reference": n_ref,
            "synthetic_queries": len(queries),
            "synthetic_for_mia": len(mia_synth),
            "dimensions": int(x_train.shape[1]),
        },
    }


# -- exact copies -----------------------------------------------------------------------------------
def row_hashes(data: pd.DataFrame, specs: list) -> np.ndarray:
    """A 64-bit hash per row of the compared columns (numbers rounded to 6 decimals, dates as days)."""
    return _hashes(compared_values(data, specs))


def compared_values(data: pd.DataFrame, specs: list) -> pd.DataFrame:
    """The compared columns as rows are matched on: numbers rounded to 6 decimals, dates as days, a gap in a
    label column as one token (the index reset)."""
    values = values_frame(data, specs).reset_index(drop=True)
    for spec in specs:
        column = values[spec.name]
        values[spec.name] = column.round(6) + 0.0 if is_numeric(spec) else column.fillna("__missing__")  # -0 is 0
    return values


def _hashes(values: pd.DataFrame) -> np.ndarray:
    return pd.util.hash_pandas_object(values, index=False).to_numpy()


def number_keys(columns: list[np.ndarray], rows: int) -> np.ndarray:
    """A 64-bit key per row from float columns, equal for rows whose numbers are (rounded as in
    row_hashes; a gap as one value); straight from arrays, so a batch needs no DataFrame."""
    keys = np.zeros(rows, dtype=np.uint64)
    for values in columns:
        rounded = np.round(values, 6) + 0.0
        rounded[np.isnan(rounded)] = (
            np.inf
        )  # a gap, whatever its NaN payload, keys as inf (at worst an extra candidate)
        keys = keys * np.uint64(0x9E3779B97F4A7C15) + pd.util.hash_array(rounded)
    return keys


def _most_distinct(numbers: pd.DataFrame) -> list[str]:
    """The SCREEN_COLUMNS columns with the most distinct values (gaps count as one)."""
    distinct = numbers.nunique(dropna=False).sort_values(ascending=False, kind="stable")
    return list(distinct.index[:SCREEN_COLUMNS])


def count_exact_copies(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, specs: list) -> ExactCopies:
    """Synthetic rows identical to a training row, to a holdout row, and the real table's own repeat rate."""
    counter = ExactCopyCounter(train, holdout, specs)
    counter.update(synthetic)
    return counter.result()


class ExactCopyCounter:
    """Counts exact copies batch by batch, so every row of a streamed synthetic output is checked.

    A row can only copy a real row if its number columns do, so a batch is first keyed on the
    SCREEN_COLUMNS number columns with the most distinct real values, then the rows left on every
    number column (cheap: no text, no date parsing), and only rows whose numbers match a real row's are
    hashed on every column. Each pass keeps every row the next could count, so the count stays exact;
    with continuous columns the first pass leaves a handful of rows per batch.
    """

    def __init__(self, train: pd.DataFrame, holdout: pd.DataFrame, specs: list) -> None:
        self.specs = specs
        self._train, self._holdout = (
            _RealRows(compared_values(train, specs)),
            _RealRows(compared_values(holdout, specs)),
        )
        self.real_repeat_rate = _rate(self._train.matches(self._holdout.values, self._holdout.hashes))
        self.number_specs = [spec for spec in specs if spec.kind in NUMERIC_KINDS]
        self.real_number_keys = self._real_keys(train, holdout, self.number_specs)
        screen = _most_distinct(pd.concat([values_frame(t, self.number_specs) for t in (train, holdout)]))
        screen_specs = [spec for spec in self.number_specs if spec.name in screen]
        self._passes = [(screen_specs, self._real_keys(train, holdout, screen_specs))] if screen_specs else []
        self._passes.append((self.number_specs, self.real_number_keys))
        self.rows = self.in_train = self.in_holdout = 0

    @classmethod
    def for_schema(cls, train: pd.DataFrame, holdout: pd.DataFrame, schema: TableSchema) -> ExactCopyCounter:
        """A counter over the schema's learned columns."""
        return cls(train, holdout, compared_columns(schema, train, holdout))

    def update(self, batch: pd.DataFrame) -> None:
        """Add one synthetic batch."""
        self.rows += len(batch)
        if self.number_specs:
            batch = batch[np.isin(self._frame_keys(batch), self.real_number_keys)]
        self._count(compared_values(batch, self.specs))

    def update_table(self, table: pa.Table, to_frame: Callable[[pa.Table], pd.DataFrame]) -> None:
        """Add one synthetic Arrow batch: only the rows whose numbers match a real row's are converted to
        pandas (by to_frame, which gives sample()'s DataFrame) and hashed whole."""
        self.rows += table.num_rows
        for specs, real_keys in self._passes if self.number_specs else []:
            columns = [table.column(spec.name).to_numpy().astype(float) for spec in specs]
            table = table.filter(np.isin(number_keys(columns, table.num_rows), real_keys))
        if table.num_rows:
            self._count(compared_values(to_frame(table), self.specs))

    def _frame_keys(self, data: pd.DataFrame, specs: list | None = None) -> np.ndarray:
        specs = self.number_specs if specs is None else specs
        numbers = values_frame(data, specs)
        return number_keys([numbers[spec.name].to_numpy(dtype=float) for spec in specs], len(data))

    def _real_keys(self, train: pd.DataFrame, holdout: pd.DataFrame, specs: list) -> np.ndarray:
        return np.union1d(self._frame_keys(train, specs), self._frame_keys(holdout, specs))

    def _count(self, values: pd.DataFrame) -> None:
        hashes = _hashes(values)
        self.in_train += int(self._train.matches(values, hashes).sum())
        self.in_holdout += int(self._holdout.matches(values, hashes).sum())

    def result(self) -> ExactCopies:
        """The exact_copies block of metrics.json."""
        rows = max(self.rows, 1)
        return ExactCopies(
            count=self.in_train,
            rate=self.in_train / rows if self.rows else 0.0,
            holdout_count=self.in_holdout,
            holdout_rate=self.in_holdout / rows if self.rows else 0.0,
            real_repeat_rate=self.real_repeat_rate,
            synthetic_rows_checked=self.rows,
        )


class _RealRows:
    """Real rows (compared_values) and their hashes, to find which rows are equal to one of them."""

    def __init__(self, values: pd.DataFrame) -> None:
        self.values, self.hashes = values, _hashes(values)
        self._order = np.argsort(self.hashes, kind="stable")
        self._sorted = self.hashes[self._order]

    def matches(self, values: pd.DataFrame, hashes: np.ndarray) -> np.ndarray:
        """Whether each row equals a real row: found by its hash, then confirmed value by value (two rows that
        only share a hash are no copy)."""
        found = np.zeros(len(hashes), dtype=bool)
        if not len(self.hashes) or not len(hashes):
            return found
        at = np.minimum(np.searchsorted(self._sorted, hashes), len(self._sorted) - 1)
        hits = np.flatnonzero(self._sorted[at] == hashes)
        found[hits] = _rows_equal(values.iloc[hits], self.values.iloc[self._order[at[hits]]])
        for row in hits[~found[hits]]:  # equal hashes, other values: another real row may share that hash
            same = self._order[self._sorted == hashes[row]]
            found[row] = bool(_rows_equal(values.iloc[[row] * len(same)], self.values.iloc[same]).any())
        return found


def _rows_equal(left: pd.DataFrame, right: pd.DataFrame) -> np.ndarray:
    """Row by row, whether every column holds the same value (two gaps are the same)."""
    equal = np.ones(len(left), dtype=bool)
    for name in left.columns:
        a, b = left[name].to_numpy(), right[name].to_numpy()
        equal &= (a == b) | (pd.isna(a) & pd.isna(b))
    return equal


# -- distances --------------------------------------------------------------------------------------
def _nearest(reference: np.ndarray, queries: np.ndarray, k: int = 1) -> np.ndarray:
    """Distances from each query to its k nearest reference rows, ascending (n_queries × k)."""
    k = min(k, len(reference))
    model = NearestNeighbors(n_neighbors=k, algorithm="brute", n_jobs=1).fit(reference)
    distances, _ = model.kneighbors(queries)
    return distances


def _closest(reference: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each query's distance to its nearest reference row and that row's index."""
    model = NearestNeighbors(n_neighbors=1, algorithm="brute", n_jobs=1).fit(reference)
    distances, rows = model.kneighbors(queries)
    return distances[:, 0], rows[:, 0]


def distance_to_closest_record(
    x_train: np.ndarray, x_holdout: np.ndarray, x_synth: np.ndarray, *, seed: int = 0
) -> dict:
    """DCR share (synthetic rows closer to train than holdout; ties half) with its bootstrap interval (the real
    reference rows resampled with the synthetic rows nearest each), and DCR distributions."""
    to_train, train_row = _closest(x_train, x_synth)
    to_holdout, holdout_row = _closest(x_holdout, x_synth)
    holdout_to_train = _nearest(x_train, x_holdout)[:, 0]
    closer = (to_train < to_holdout) + 0.5 * (to_train == to_holdout)  # each synthetic row's part of the share
    share = float(np.mean(closer))
    nearest_reference = np.where(to_train <= to_holdout, train_row, len(x_train) + holdout_row)
    top = float(np.quantile(np.concatenate([to_train, to_holdout, holdout_to_train]), 0.99)) or 1.0
    edges = np.linspace(0.0, top, HISTOGRAM_BINS + 1)
    return {
        "share_closer_to_train": share,
        "share_interval": clustered_share_interval(closer, nearest_reference, seed),
        "synthetic_to_train": _distribution(to_train, edges),
        "synthetic_to_holdout": _distribution(to_holdout, edges),
        "holdout_to_train": _distribution(holdout_to_train, edges),
        "histogram_edges": [round(float(e), 6) for e in edges],
    }


def nearest_neighbour_distance_ratio(x_train: np.ndarray, x_holdout: np.ndarray, x_synth: np.ndarray) -> dict:
    """NNDR: nearest / second-nearest training distance per synthetic row, beside the holdout's own."""
    return {
        "synthetic": _ratio_summary(_nearest(x_train, x_synth, k=2)),
        "holdout": _ratio_summary(_nearest(x_train, x_holdout, k=2)),
    }


def membership_inference(x_train: np.ndarray, x_holdout: np.ndarray, x_synth: np.ndarray, *, seed: int = 0) -> dict:
    """AUC of an attacker calling a real row a training member the closer it is to a synthetic row, with its
    bootstrap interval over the member and non-member rows."""
    members, non_members = _nearest(x_synth, x_train)[:, 0], _nearest(x_synth, x_holdout)[:, 0]
    return {
        "auc": distance_auc(members, non_members),
        "auc_interval": auc_interval(members, non_members, seed),
        "members": int(len(members)),
        "non_members": int(len(non_members)),
        "median_distance_members": float(np.median(members)),
        "median_distance_non_members": float(np.median(non_members)),
    }


def _distribution(distances: np.ndarray, edges: np.ndarray) -> dict:
    counts, _ = np.histogram(np.clip(distances, edges[0], edges[-1]), bins=edges)
    return {
        "quantiles": {str(q): float(np.quantile(distances, q)) for q in QUANTILES},
        "zero_share": float(np.mean(distances == 0)),
        "histogram": counts.tolist(),
    }


def _ratio_summary(distances: np.ndarray) -> dict:
    if distances.shape[1] < 2:
        return {"median": None, "quantiles": {}}
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(distances[:, 1] > 0, distances[:, 0] / distances[:, 1], 1.0)
    return {"median": float(np.median(ratio)), "quantiles": {str(q): float(np.quantile(ratio, q)) for q in QUANTILES}}


def _rate(flags: np.ndarray) -> float:
    return float(flags.mean()) if len(flags) else 0.0


def _dp(fit: dict | None) -> dict:
    fit = fit or {}
    return {
        "epsilon": fit.get("epsilon"),
        "delta": fit.get("delta"),
        "differentially_private": fit.get("epsilon") is not None,
    }
