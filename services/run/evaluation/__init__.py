"""Evaluation of synthetic tables: quality, privacy, utility — pure functions of the tables and schema.

`evaluate(train, holdout, synthetic, schema)` returns an EvaluationResult, written as
evaluation/metrics.json. Its layout is the models in `results` (one per metric family; the field
descriptions are the documentation); the headline measures, with their goal and range, are declared
once in `metrics`; the release policy and its decision are in `gate`.
"""

# The heavy parts (sdmetrics, torch, scikit-learn) load on first use, so that importing a light
# submodule such as evaluation.gate (the request model needs ReleasePolicy) stays fast.
from __future__ import annotations

import importlib

_EXPORTS = {
    "evaluate": "suite",
    "compare": "suite",
    "evaluate_files": "suite",
    "METRICS_VERSION": "results",
    "EvaluationResult": "results",
    "ExactCopyCounter": "privacy",
    "ReleasePolicy": "gate",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    """Load the submodule that defines `name` on first access."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
