"""The whole evaluation of one synthetic table: quality, privacy, utility and the release gate.

`evaluate` returns an EvaluationResult (evaluation.results), written as evaluation/metrics.json.
"""

from __future__ import annotations

import time
from dataclasses import asdict, is_dataclass

import numpy as np
import pandas as pd

from fairsynth.metadata.rule_checks import infer_with_rules
from fairsynth.metadata.schema import TableSchema
from fairsynth.services.run.evaluation.gate import ReleasePolicy, gate
from fairsynth.services.run.evaluation.metrics import METRICS
from fairsynth.services.run.evaluation.privacy import evaluate_privacy
from fairsynth.services.run.evaluation.quality import evaluate_quality
from fairsynth.services.run.evaluation.results import (
    EvaluationResult,
    ExactCopies,
    Measurements,
    QualityResult,
    SecondEvaluator,
    interval_metrics,
)
from fairsynth.services.run.evaluation.rules import evaluate_rules
from fairsynth.services.run.evaluation.second import evaluate_second
from fairsynth.services.run.evaluation.utility import evaluate_utility
from fairsynth.services.run.tables import InputError, read_table


def evaluate(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: TableSchema,
    *,
    fit=None,
    policy: ReleasePolicy | None = None,
    seed: int = 0,
    anonymeter: bool = True,
    exact_copies: ExactCopies | None = None,
    second_evaluator: bool = False,
) -> EvaluationResult:
    """Quality, privacy, utility and rule adherence of one synthetic table, with the release decision (metrics.json).

    `synthetic` may be a sample of a larger streamed output; pass `exact_copies` from an
    ExactCopyCounter fed every batch so that copies are counted over all rows, not the sample.
    `second_evaluator` adds mostlyai-qa's accuracy beside sdmetrics quality (in the MOSTLY AI venv).
    """
    _check_tables(train, holdout, synthetic)
    started = time.perf_counter()
    fit_dict = _fit_dict(fit)
    blocks = {
        "quality": lambda: _quality(train, holdout, synthetic, schema, seed=seed, second_evaluator=second_evaluator),
        "privacy": lambda: evaluate_privacy(
            train, holdout, synthetic, schema, seed=seed, fit=fit_dict, anonymeter=anonymeter, copies=exact_copies
        ),
        "utility": lambda: evaluate_utility(train, holdout, synthetic, schema, seed=seed),
        "rules": lambda: evaluate_rules(train, synthetic, schema),
    }
    measured, timings = {}, {}
    for name, block in blocks.items():
        tick = time.perf_counter()
        measured[name] = block()
        timings[name] = round(time.perf_counter() - tick, 3)
    measurements = Measurements(
        rows={"train": len(train), "holdout": len(holdout), "synthetic": _synthetic_rows(synthetic, exact_copies)},
        **measured,
        timings=timings,
        fit=fit_dict,
    )
    return EvaluationResult(
        **dict(measurements), gate=gate(measurements, policy), seconds=round(time.perf_counter() - started, 3)
    )


def _quality(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: TableSchema,
    *,
    seed: int,
    second_evaluator: bool,
) -> QualityResult:
    """sdmetrics quality and, when asked for, mostlyai-qa's accuracy beside it."""
    quality = evaluate_quality(train, holdout, synthetic, schema, seed=seed)
    if not second_evaluator:
        return quality
    second = evaluate_second(train, holdout, synthetic, schema)
    accuracy = second.accuracy if isinstance(second, SecondEvaluator) else None
    return quality.model_copy(update={"qa_accuracy": accuracy, "second_evaluator": second})


def interval_columns() -> list[str]:
    """The comparison's columns beside the declared metrics: per metric with a bootstrap interval, its ends and the
    backends it is tied with (`<metric>_low`, `<metric>_high`, `<metric>_tied_with`)."""
    return [f"{metric.name}_{end}" for metric in interval_metrics() for end in ("low", "high", "tied_with")]


def compare(results: dict[str, EvaluationResult]) -> pd.DataFrame:
    """One row per backend: its decision, every declared metric (evaluation.metrics) and, per metric with a
    bootstrap interval, the interval with the backends tied with it (Metric.tied: the difference is within
    sampling noise), best quality first."""
    columns = ["backend", "decision", *(metric.name for metric in METRICS), *interval_columns()]
    rows = [
        {"backend": backend, "decision": result.gate.decision, **result.headline()}
        for backend, result in results.items()
    ]
    for metric in interval_metrics():
        intervals = {backend: result.interval(metric) for backend, result in results.items()}
        for row in rows:
            own = intervals[row["backend"]]
            row[f"{metric.name}_low"], row[f"{metric.name}_high"] = own if own else (None, None)
            row[f"{metric.name}_tied_with"] = ", ".join(
                other for other in results if other != row["backend"] and metric.tied(own, intervals[other])
            )
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values("quality", ascending=False, na_position="last").reset_index(drop=True)


def evaluate_files(
    real_path,
    synthetic_path,
    schema: TableSchema | None = None,
    target: str | None = None,
    *,
    holdout_path=None,
    policy: ReleasePolicy | None = None,
    seed: int = 0,
    encoding: str = "utf-8",
    separator: str | None = None,
) -> EvaluationResult:
    """Evaluate any synthetic file against the real one (CLI `fairsynth evaluate REAL SYNTH`).

    With holdout_path the real file is the training table. Without it the real table is split in
    two halves (seeded) for the baselines and the result says so (`holdout_known: false`).
    """
    real, synthetic = (read_table(p, encoding=encoding, separator=separator) for p in (real_path, synthetic_path))
    schema = schema or infer_with_rules(real)
    if target:
        schema = schema.with_overrides(target=target)
    if holdout_path is not None:
        train, holdout = real, read_table(holdout_path, encoding=encoding, separator=separator)
    else:
        shuffled = real.sample(frac=1.0, random_state=seed)
        train, holdout = shuffled.iloc[: len(real) // 2], shuffled.iloc[len(real) // 2 :]
    missing = [s.name for s in schema.learned_columns() if s.name not in synthetic.columns]
    if len(missing) == len(schema.learned_columns()):
        raise InputError("The synthetic file shares no column with the real one; check that the two files match.")
    result = evaluate(train, holdout, synthetic, schema, policy=policy, seed=seed)
    if holdout_path is None:  # one count of copies for the printout, metrics.json and the gate's reason
        copies = result.privacy.exact_copies.of_any_real_row()
        privacy = result.privacy.model_copy(update={"exact_copies": copies})
        result = result.model_copy(update={"holdout_known": False, "privacy": privacy})
        result = result.model_copy(update={"gate": gate(result, policy)})
    return result.model_copy(update={"missing_columns": missing or None})


def _synthetic_rows(synthetic: pd.DataFrame, exact_copies: ExactCopies | None) -> int:
    """Rows of the whole synthetic output: the copy counter saw every streamed row, `synthetic` may be a sample."""
    return exact_copies.synthetic_rows_checked if exact_copies else len(synthetic)


def _check_tables(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame) -> None:
    for name, table in (("training", train), ("synthetic", synthetic)):
        if not isinstance(table, pd.DataFrame) or table.empty:
            raise InputError(f"The {name} table is empty; evaluation needs rows in the training and synthetic tables.")
    if not isinstance(holdout, pd.DataFrame):
        raise ValueError("The holdout must be a DataFrame (it may have no rows, then privacy baselines are skipped).")


def _fit_dict(fit) -> dict | None:
    if fit is None:
        return None
    if is_dataclass(fit):
        fit = asdict(fit)
    elif hasattr(fit, "to_dict"):
        fit = fit.to_dict()
    return _json_ready(dict(fit))


def _json_ready(value):
    """Plain Python numbers, lists and dicts (NaN and infinities become None)."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return None if not np.isfinite(value) else value
    if isinstance(value, np.bool_):
        return bool(value)
    return value
