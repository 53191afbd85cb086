"""The second evaluator: mostlyai-qa's accuracy, run in the MOSTLY AI venv on the same rows sdmetrics scores.

Two independent scores make a generator that games one of them visible. The scores are shown beside
sdmetrics quality in the report and the comparison; the recommendation still reads sdmetrics quality,
so this one never picks a backend alone.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from fairsynth.backends import mostly
from fairsynth.backends.base import BackendError
from fairsynth.metadata.schema import TableSchema
from fairsynth.services.run.evaluation.frames import QUALITY_ROWS
from fairsynth.services.run.evaluation.quality import scored_columns
from fairsynth.services.run.evaluation.results import SecondEvaluator, Skipped

TABLES = ("train", "holdout", "synthetic")


def availability() -> tuple[bool, str]:
    """Whether mostlyai-qa can run here (in the venv or image the mostly backends use); why not, with the fix."""
    try:
        return mostly.runner().availability()
    except BackendError as exc:  # a misconfigured runner
        return False, str(exc)


def evaluate_second(
    train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, schema: TableSchema
) -> SecondEvaluator | Skipped:
    """mostlyai-qa's accuracy and DCR share on the columns the quality score covers, or why it was not measured."""
    available, reason = availability()
    if not available:
        return Skipped(skipped=f"mostlyai-qa was not run: {reason}.")
    names = [spec.name for spec in scored_columns(schema, train, synthetic)]
    with tempfile.TemporaryDirectory(prefix="fairsynth-qa-") as scratch:
        inputs = {}
        for name, table in zip(TABLES, (train, holdout, synthetic)):
            inputs[f"{name}.parquet"] = Path(scratch) / f"{name}.parquet"
            _as_plain_columns(table[names]).to_parquet(inputs[f"{name}.parquet"], index=False)
        request = {
            "action": "qa",
            **{name: f"{name}.parquet" for name in TABLES},
            "max_sample_size": {"accuracy": QUALITY_ROWS, "embeddings": QUALITY_ROWS},
        }
        try:
            result = mostly.run_worker(mostly.Job(request, inputs=inputs, timeout=mostly.timeout()), "qa", None, None)
        except BackendError as exc:
            return Skipped(skipped=f"mostlyai-qa failed: {str(exc).rstrip('.')}.")
    metrics = result.get("metrics") or {}
    accuracy, distances = metrics.get("accuracy") or {}, metrics.get("distances") or {}
    return SecondEvaluator(
        accuracy=accuracy.get("overall"),
        univariate=accuracy.get("univariate"),
        bivariate=accuracy.get("bivariate"),
        dcr_share=distances.get("dcr_share"),
        packages=dict(result.get("packages") or {}),
    )


def _as_plain_columns(table: pd.DataFrame) -> pd.DataFrame:
    """Columns Parquet writes the same in both venvs: categories as text, everything else as it is."""
    return pd.DataFrame(
        {
            name: column.astype(str).where(column.notna()) if column.dtype == "category" else column
            for name, column in table.items()
        }
    )
