"""Quality: how closely the synthetic table's columns and column pairs follow the real one.

`evaluate_quality(train, holdout, synthetic, schema)` returns the QualityResult of metrics.json
(evaluation.results). The synthetic table is compared with the
training table; the holdout compared with the training table gives the reference a perfect
generator would reach (two samples of the same population are not identical either).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sdmetrics.reports import DiagnosticReport, QualityReport

from fairsynth.metadata.schema import TEMPORAL_KINDS, ColumnKind, ColumnSpec, TableSchema, column_values
from fairsynth.services.run.evaluation.bootstrap import quality_interval
from fairsynth.services.run.evaluation.frames import (
    QUALITY_ROWS,
    compared_columns,
    is_numeric,
    listed_labels,
    subsample,
    values_frame,
)
from fairsynth.services.run.evaluation.results import QualityResult

TABLE = "table"
SDTYPES = {
    ColumnKind.INTEGER: "numerical",
    ColumnKind.FLOAT: "numerical",
    ColumnKind.BOOLEAN: "categorical",
    ColumnKind.CATEGORICAL: "categorical",
    ColumnKind.DATETIME: "datetime",
    ColumnKind.DATE: "datetime",
    ColumnKind.IDENTIFIER: "numerical",  # compared by rows per key: fresh keys keep the real grouping
    ColumnKind.SUBJECT_KEY: "numerical",  # the same: how many rows each (synthetic) subject has
    ColumnKind.PII: "categorical",  # a replaced column is compared with the real one like any other
}
KEY_KINDS = frozenset({ColumnKind.IDENTIFIER, ColumnKind.SUBJECT_KEY})  # scored as rows per key
WITHHELD = "free text is withheld (written empty), so there is nothing to compare"
DROPPED = "dropped at the user's request"
UNIQUE_KEY = "a unique key, regenerated as fresh unique values: one row per key, as in the real table"
ABSENT = "absent from the synthetic table"
UNSCORED_PAIR = "sdmetrics gave no score (a column is constant or empty in one table)"
ASSOCIATION_ROWS = 5_000  # the association matrices use at most this many rows per table
MAX_LISTED = 20  # lost / invented categories listed by name per column


def scored_columns(schema: TableSchema, *tables: pd.DataFrame) -> list[ColumnSpec]:
    """Every output column the quality score covers present in every table given: all but withheld text and, when
    the real table comes first, its unique keys (one row per key, nothing to compare)."""
    return [
        spec
        for spec in schema.output_columns()
        if spec.kind != ColumnKind.TEXT
        and all(spec.name in t.columns for t in tables)
        and not (tables and _unique_key(spec, tables[0]))
    ]


def left_out_columns(schema: TableSchema, real: pd.DataFrame, synthetic: pd.DataFrame) -> dict[str, str]:
    """Columns of the real table the quality score leaves out, each with why."""
    left_out = {}
    for spec in schema.columns:
        if spec.drop:
            left_out[spec.name] = DROPPED
        elif spec.kind == ColumnKind.TEXT:
            left_out[spec.name] = WITHHELD
        elif spec.name not in synthetic.columns:
            left_out[spec.name] = ABSENT
        elif _unique_key(spec, real):
            left_out[spec.name] = UNIQUE_KEY
    return left_out


def _unique_key(spec: ColumnSpec, real: pd.DataFrame) -> bool:
    return spec.kind == ColumnKind.IDENTIFIER and spec.name in real.columns and real[spec.name].dropna().is_unique


def sdmetrics_metadata(schema: TableSchema) -> dict:
    """sdmetrics metadata for the scored columns (identifiers as rows per key, see scoring_sample)."""
    return {"tables": {TABLE: {"columns": sdmetrics_columns(scored_columns(schema))}}}


def sdmetrics_columns(specs: list[ColumnSpec]) -> dict[str, dict]:
    """sdmetrics column metadata (sdtype, and a date's format) of the given columns."""
    columns = {}
    for spec in specs:
        entry = {"sdtype": SDTYPES[spec.kind]}
        if spec.kind in (ColumnKind.DATETIME, ColumnKind.DATE) and spec.datetime_format:
            entry["datetime_format"] = spec.datetime_format
        columns[spec.name] = entry
    return columns


def scoring_sample(data: pd.DataFrame, specs: list[ColumnSpec], n_rows: int, seed: int) -> pd.DataFrame:
    """n_rows seeded rows of the scored columns; an identifier holds how many rows of the whole table share
    its key (a key's values are fresh by design, its grouping is what a synthetic table must keep)."""
    sample = subsample(data[[spec.name for spec in specs]], n_rows, seed).copy()
    for spec in specs:
        if spec.kind in KEY_KINDS:
            sample[spec.name] = sample[spec.name].map(data[spec.name].value_counts()).astype(float)
    return sample


def quality_rows(real: pd.DataFrame, synthetic: pd.DataFrame) -> int:
    """Rows drawn from each table for the quality report: QUALITY_ROWS, or the smaller table's rows."""
    return min(QUALITY_ROWS, len(real), len(synthetic))


def quality_report(real: pd.DataFrame, synthetic: pd.DataFrame, schema: TableSchema) -> QualityReport:
    """The sdmetrics QualityReport (column shapes and column pair trends) on the scored columns, every pair
    counted (sdmetrics by default averages only the pairs strongly associated in the real sample)."""
    report = QualityReport()
    report.real_correlation_threshold = 0
    report.real_association_threshold = 0
    return _generated(report, real, synthetic, schema)


def diagnostic_report(real: pd.DataFrame, synthetic: pd.DataFrame, schema: TableSchema) -> DiagnosticReport:
    """The sdmetrics DiagnosticReport (data validity and structure) on the scored columns."""
    return _generated(DiagnosticReport(), real, synthetic, schema)


def _generated(report, real: pd.DataFrame, synthetic: pd.DataFrame, schema: TableSchema):
    """An sdmetrics report generated quietly on the scored columns both tables hold."""
    metadata = sdmetrics_metadata(schema)
    names = [
        name for name in metadata["tables"][TABLE]["columns"] if name in real.columns and name in synthetic.columns
    ]
    metadata["tables"][TABLE]["columns"] = {name: metadata["tables"][TABLE]["columns"][name] for name in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report.generate({TABLE: real[names]}, {TABLE: synthetic[names]}, metadata, verbose=False)
    return report


def quality_score(real: pd.DataFrame, synthetic: pd.DataFrame, schema: TableSchema) -> dict:
    """Overall quality in [0, 1] with its two properties."""
    report = quality_report(real, synthetic, schema)
    properties = report.get_properties().set_index("Property")["Score"]
    return {
        "quality": float(report.get_score()),
        "column_shapes": float(properties.get("Column Shapes", float("nan"))),
        "column_pair_trends": float(properties.get("Column Pair Trends", float("nan"))),
    }


def evaluate_quality(
    train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, schema: TableSchema, *, seed: int = 0
) -> QualityResult:
    """The quality block of metrics.json: sdmetrics scores, fidelity of gaps, ranges and categories."""
    specs, scored = compared_columns(schema, train, synthetic), scored_columns(schema, train, synthetic)
    n_rows = quality_rows(train, synthetic)
    real, synth = scoring_sample(train, scored, n_rows, seed), scoring_sample(synthetic, scored, n_rows, seed + 1)
    report = quality_report(real, synth, schema)
    diagnostic = diagnostic_report(real, synth, schema)
    scores = _report_scores(report)
    numeric = {spec.name: SDTYPES[spec.kind] != "categorical" for spec in scored}
    whole_real, whole_synth = (_numbers(scoring_sample(t, scored, len(t), seed), scored) for t in (train, synthetic))
    interval = quality_interval(whole_real, whole_synth, numeric, scores["quality"], n_rows, seed)
    holdout_sample = scoring_sample(holdout, scored, min(n_rows, len(holdout)), seed + 2) if len(holdout) else None
    reference = quality_score(real, holdout_sample, schema) if holdout_sample is not None else None
    real_values, synth_values = values_frame(real, specs), values_frame(synth, specs)
    assoc_real = association_matrix(subsample(real_values, ASSOCIATION_ROWS, seed))
    assoc_synth = association_matrix(subsample(synth_values, ASSOCIATION_ROWS, seed))
    difference = (assoc_real - assoc_synth).abs()
    off_diagonal = difference.where(~np.eye(len(difference), dtype=bool)).stack()
    block = {
        **scores,
        "quality_interval": list(interval) if interval else None,
        "missing_columns": [c.name for c in schema.learned_columns() if c.name not in synthetic.columns],
        "columns_left_out": left_out_columns(schema, train, synthetic),
        "diagnostic": _diagnostic_scores(diagnostic),
        "holdout_reference": reference,
        "columns": {
            spec.name: _column_fidelity(spec, real_values[spec.name], synth_values[spec.name], report, diagnostic)
            | _full_range(spec, train, synthetic)
            for spec in specs
        },
        "association": {
            "columns": list(difference.columns),
            "real": _matrix(assoc_real),
            "synthetic": _matrix(assoc_synth),
            "mean_abs_difference": _number(off_diagonal.mean()) if len(off_diagonal) else None,
        },
        "sample_sizes": {
            "real": len(real),
            "synthetic": len(synth),
            "association_rows": min(len(real_values), ASSOCIATION_ROWS),
        },
    }
    return QualityResult.model_validate(block)


def _report_scores(report: QualityReport) -> dict:
    properties = report.get_properties().set_index("Property")["Score"]
    pairs = report.get_details("Column Pair Trends")
    scored = int(pairs["Score"].notna().sum()) if "Score" in pairs else 0
    errors = pairs["Error"] if "Error" in pairs else pd.Series(None, index=pairs.index, dtype=object)
    skipped = [
        {
            "columns": [row["Column 1"], row["Column 2"]],
            "reason": errors[i] if isinstance(errors[i], str) else UNSCORED_PAIR,
        }
        for i, row in pairs.iterrows()
        if pd.isna(row["Score"])
    ]
    return {
        "quality": _number(report.get_score()),
        "column_shapes": _number(properties.get("Column Shapes")),
        "column_pair_trends": _number(properties.get("Column Pair Trends")),
        "pairs_scored": scored,
        "pairs_total": len(pairs),
        "pairs_skipped": skipped,
    }


def _numbers(sample: pd.DataFrame, specs: list[ColumnSpec]) -> pd.DataFrame:
    """The scored columns with dates as days (for the bootstrap); the rest as they are."""
    return pd.DataFrame(
        {s.name: values_frame(sample, [s])[s.name] if s.kind in TEMPORAL_KINDS else sample[s.name] for s in specs},
        index=sample.index,
    )


def _diagnostic_scores(report: DiagnosticReport) -> dict:
    properties = report.get_properties().set_index("Property")["Score"]
    return {
        "score": _number(report.get_score()),
        "validity": _number(properties.get("Data Validity")),
        "structure": _number(properties.get("Data Structure")),
    }


def _column_fidelity(
    spec, real: pd.Series, synth: pd.Series, report: QualityReport, diagnostic: DiagnosticReport
) -> dict:
    """Per column: shape score, validity, missing shares and either ranges or category coverage."""
    entry = {
        "kind": spec.kind.value,
        "shape_score": _detail_score(report.get_details("Column Shapes"), spec.name),
        "validity": _detail_score(diagnostic.get_details("Data Validity"), spec.name),
        "missing_share_real": _number(real.isna().mean()),
        "missing_share_synthetic": _number(synth.isna().mean()),
    }
    entry["missing_share_difference"] = _number(abs(entry["missing_share_real"] - entry["missing_share_synthetic"]))
    if not is_numeric(spec):
        entry["categories"] = category_coverage(real.dropna(), synth.dropna(), listed_labels(spec))
    return entry


def _detail_score(details: pd.DataFrame, column: str) -> float | None:
    if "Column" not in details:
        return None
    rows = details.loc[details["Column"] == column, "Score"].dropna()
    return _number(rows.mean()) if len(rows) else None


def _full_range(spec: ColumnSpec, train: pd.DataFrame, synthetic: pd.DataFrame) -> dict:
    """A number's or date's range over every row given (a sample's range would understate the real one)."""
    if not is_numeric(spec):
        return {}
    real, synth = column_values(train[spec.name], spec), column_values(synthetic[spec.name], spec)
    return {"range": _range_fidelity(spec, real.dropna(), synth.dropna())}


def _range_fidelity(spec, real: pd.Series, synth: pd.Series) -> dict:
    """Range of real and synthetic values; dates also as ISO dates; share of synthetic values outside."""
    if real.empty or synth.empty:
        return {
            "real_min": None,
            "real_max": None,
            "synthetic_min": None,
            "synthetic_max": None,
            "outside_share": None,
            "coverage": None,
        }
    lo, hi = float(real.min()), float(real.max())
    s_lo, s_hi = float(synth.min()), float(synth.max())
    overlap = max(0.0, min(hi, s_hi) - max(lo, s_lo))
    span = hi - lo
    result = {
        "real_min": lo,
        "real_max": hi,
        "synthetic_min": s_lo,
        "synthetic_max": s_hi,
        "outside_share": _number(((synth < lo) | (synth > hi)).mean()),
        "coverage": _number(overlap / span) if span > 0 else 1.0,
    }
    if spec.kind in TEMPORAL_KINDS:
        for key in ("real_min", "real_max", "synthetic_min", "synthetic_max"):
            result[f"{key}_date"] = (pd.Timestamp("1970-01-01") + pd.Timedelta(days=result[key])).isoformat()
    return result


def category_coverage(real: pd.Series, synth: pd.Series, listed: set[str]) -> dict:
    """Categories of the real column missing from the synthetic one (lost) and the reverse (invented).

    A lost level is named only when it is in `listed` (frames.listed_labels): a level under the rare-level
    threshold is always lost and never named.
    """
    real_levels, synth_levels = set(real.unique()), set(synth.unique())
    lost, invented = sorted(real_levels - synth_levels), sorted(synth_levels - real_levels)
    named_lost = [level for level in lost if str(level).lower() in listed]
    return {
        "real_levels": len(real_levels),
        "synthetic_levels": len(synth_levels),
        "lost": len(lost),
        "invented": len(invented),
        "lost_examples": named_lost[:MAX_LISTED],
        "invented_examples": invented[:MAX_LISTED],
        "invented_share": _number(synth.isin(invented).mean()) if len(synth) else 0.0,
    }


# -- column associations (for the correlation-difference heatmap) ----------------------------------
def association_matrix(values: pd.DataFrame) -> pd.DataFrame:
    """Pairwise association in [0, 1]: |Spearman| for numbers, Cramér's V for categories, η across."""
    names = list(values.columns)
    numeric = {n: pd.api.types.is_float_dtype(values[n]) for n in names}
    ranks = values[[n for n in names if numeric[n]]].rank()
    spearman = ranks.corr().abs() if len(ranks.columns) else pd.DataFrame()
    out = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if numeric[a] and numeric[b]:
                value = spearman.loc[a, b]
            elif not numeric[a] and not numeric[b]:
                value = _cramers_v(values[a], values[b])
            else:
                num, cat = (a, b) if numeric[a] else (b, a)
                value = _correlation_ratio(values[cat], values[num])
            out.loc[a, b] = out.loc[b, a] = 0.0 if pd.isna(value) else float(value)
    return out


def _cramers_v(x: pd.Series, y: pd.Series) -> float:
    table = pd.crosstab(x.fillna("__missing__"), y.fillna("__missing__")).to_numpy(dtype=float)
    n = table.sum()
    if n == 0 or min(table.shape) < 2:
        return 0.0
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return float(np.sqrt(chi2 / n / (min(table.shape) - 1)))


def _correlation_ratio(categories: pd.Series, numbers: pd.Series) -> float:
    frame = pd.DataFrame({"c": categories.fillna("__missing__"), "x": numbers}).dropna()
    if len(frame) < 2 or frame["x"].var() == 0:
        return 0.0
    groups = frame.groupby("c")["x"]
    between = float((groups.count() * (groups.mean() - frame["x"].mean()) ** 2).sum())
    total = float(((frame["x"] - frame["x"].mean()) ** 2).sum())
    return float(np.sqrt(between / total)) if total > 0 else 0.0


def _matrix(frame: pd.DataFrame) -> list[list[float]]:
    return [[round(float(v), 4) for v in row] for row in frame.to_numpy()]


def _number(value) -> float | None:
    """A JSON-ready float (None for missing or NaN)."""
    if value is None:
        return None
    value = float(value)
    return None if np.isnan(value) else value
