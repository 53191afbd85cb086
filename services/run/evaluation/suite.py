"""The whole evaluation of one synthetic table: quality, privacy, utility and the release gate.

The layout of its result (metrics.json) is documented in services/evaluation/__init__.py.
"""

from __future__ import annotations

import time
from dataclasses import asdict, is_dataclass

import numpy as np
import pandas as pd

from fairsynth.metadata.schema import TableSchema
from fairsynth.services.run.evaluation.gate import ReleasePolicy, gate
from fairsynth.services.run.evaluation.privacy import evaluate_privacy
from fairsynth.services.run.evaluation.quality import evaluate_quality
from fairsynth.services.run.evaluation.utility import evaluate_utility
from fairsynth.services.run.tables import InputError, read_table

METRICS_VERSION = 1


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
    exact_copies: dict | None = None,
) -> dict:
    """Quality, privacy and utility of one synthetic table, with the release decision (metrics.json).

    `synthetic` may be a sample of a larger streamed output; pass `exact_copies` from an
    ExactCopyCounter fed every batch so that copies are counted over all rows, not the sample.
    """
    _check_tables(train, holdout, synthetic)
    started = time.perf_counter()
    fit_dict = _fit_dict(fit)
    metrics = {
        "version": METRICS_VERSION,
        "rows": {"train": len(train), "holdout": len(holdout), "synthetic": len(synthetic)},
    }
    timings = {}
    blocks = {
        "quality": lambda: evaluate_quality(train, holdout, synthetic, schema, seed=seed),
        "privacy": lambda: evaluate_privacy(
            train, holdout, synthetic, schema, seed=seed, fit=fit_dict, anonymeter=anonymeter, copies=exact_copies
        ),
        "utility": lambda: evaluate_utility(train, holdout, synthetic, schema, seed=seed),
    }
    for name, block in blocks.items():
        tick = time.perf_counter()
        metrics[name] = block()
        timings[name] = round(time.perf_counter() - tick, 3)
    metrics["timings"] = timings
    if fit_dict:
        metrics["fit"] = fit_dict
    metrics["gate"] = gate(metrics, policy)
    metrics["seconds"] = round(time.perf_counter() - started, 3)
    return _json_ready(metrics)


def compare(results: dict[str, dict]) -> pd.DataFrame:
    """One row per backend with the headline metrics of its metrics.json, best quality first."""
    rows = []
    for backend, m in results.items():
        privacy, utility = m.get("privacy", {}), m.get("utility", {})
        best = _best_utility(utility)
        rows.append(
            {
                "backend": backend,
                "decision": m.get("gate", {}).get("decision"),
                "quality": m.get("quality", {}).get("quality"),
                "column_shapes": m.get("quality", {}).get("column_shapes"),
                "column_pair_trends": m.get("quality", {}).get("column_pair_trends"),
                "association_difference": (m.get("quality", {}).get("association") or {}).get("mean_abs_difference"),
                "exact_copies": privacy.get("exact_copies", {}).get("count"),
                "dcr_share": (privacy.get("dcr") or {}).get("share_closer_to_train"),
                "mia_auc": (privacy.get("membership_inference") or {}).get("auc"),
                "singling_out_risk": ((privacy.get("anonymeter") or {}).get("singling_out") or {}).get("risk"),
                "epsilon": (privacy.get("dp") or {}).get("epsilon"),
                "tstr": best.get("tstr"),
                "trtr": best.get("trtr"),
                "utility_ratio": best.get("ratio"),
                "fit_seconds": (m.get("fit") or {}).get("seconds"),
            }
        )
    table = pd.DataFrame(rows)
    return table.sort_values("quality", ascending=False, na_position="last").reset_index(drop=True) if rows else table


def _best_utility(utility: dict) -> dict:
    models = (utility or {}).get("models") or {}
    scored = [m for m in models.values() if m.get("tstr") is not None]
    return max(scored, key=lambda m: m["trtr"]) if scored else {}


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
) -> dict:
    """Evaluate any synthetic file against the real one (CLI `fairsynth evaluate REAL SYNTH`).

    With holdout_path the real file is the training table. Without it the real table is split in
    two halves (seeded) for the baselines and the result says so (`holdout_known: false`).
    """
    real, synthetic = (read_table(p, encoding=encoding, separator=separator) for p in (real_path, synthetic_path))
    schema = schema or TableSchema.infer(real)
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
    metrics = _partial_evaluate(
        train, holdout, synthetic, schema, holdout_known=holdout_path is not None, policy=policy, seed=seed
    )
    if missing:
        metrics["missing_columns"] = missing
    return metrics


def _partial_evaluate(train, holdout, synthetic, schema, *, holdout_known: bool, policy, seed) -> dict:
    metrics = evaluate(train, holdout, synthetic, schema, policy=policy, seed=seed)
    metrics["holdout_known"] = holdout_known
    metrics["gate"] = gate(metrics, policy)
    return metrics


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
        return asdict(fit)
    if hasattr(fit, "to_dict"):
        return fit.to_dict()
    return dict(fit)


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
