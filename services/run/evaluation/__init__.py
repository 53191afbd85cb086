"""Evaluation of synthetic tables: quality, privacy, utility — pure functions of the tables and schema.

`evaluate(train, holdout, synthetic, schema)` returns the content of evaluation/metrics.json:

| key | meaning |
|---|---|
| `version` | layout version of this dict (1) |
| `rows` | `{train, holdout, synthetic}` row counts of the full tables |
| `seconds` | wall time of the evaluation; `timings` has `quality`, `privacy`, `utility` seconds |
| `quality.quality` | sdmetrics QualityReport overall score in [0, 1] (higher is better) |
| `quality.column_shapes`, `quality.column_pair_trends` | its two properties |
| `quality.missing_columns` | learned columns of the real table absent from the synthetic one |
| `quality.pairs_scored`, `quality.pairs_total` | pairs sdmetrics scored (it skips weakly associated real pairs) |
| `quality.diagnostic.{score, validity, structure}` | sdmetrics DiagnosticReport |
| `quality.holdout_reference` | the same quality scores of the holdout against train: what a perfect generator reaches |
| `quality.columns.<name>` | `kind`, `shape_score`, `validity`, `missing_share_real/_synthetic/_difference`, and `range` (numbers and dates: real/synthetic min/max, `*_date` ISO for dates, `outside_share`, `coverage`) or `categories` (`real_levels`, `synthetic_levels`, `lost`, `invented`, examples, `invented_share`) |
| `quality.association` | `columns`, `real`, `synthetic` matrices (|Spearman|, Cramér's V, η) and `mean_abs_difference` |
| `quality.sample_sizes` | rows used by sdmetrics and by the association matrices |
| `privacy.exact_copies` | `count`, `rate` (synthetic rows equal to a training row), `holdout_count`, `holdout_rate`, `real_repeat_rate` (holdout rows equal to a training row), `synthetic_rows_checked` (all rows) |
| `privacy.dcr` | `share_closer_to_train` (ideal ≈ 0.5; ties count half), distributions `synthetic_to_train`, `synthetic_to_holdout`, `holdout_to_train` (`quantiles`, `zero_share`, `histogram` counts over `histogram_edges`) |
| `privacy.nndr` | nearest / second-nearest training distance ratio: `synthetic` and `holdout` (`median`, `quantiles`) |
| `privacy.membership_inference` | `auc` of the distance attack (train members vs holdout non-members; 0.5 = no signal), sizes, median distances |
| `privacy.anonymeter` | `singling_out`, `linkability`, `attribute_inference.secrets.<col>` each `risk`, `ci_low`, `ci_high`, rates; `attribute_inference.max_risk`; `n_attacks`, `rows` |
| `privacy.dp` | `epsilon`, `delta`, `differentially_private` from the backend's fit |
| `privacy.sample_sizes` | reference rows (train = holdout), synthetic query rows, synthetic rows for the attack, dimensions |
| `utility` | `target`, `task`, `metric` (balanced_accuracy or r2), `chance`, `models.{gradient_boosting, linear}.{trtr, tstr, ratio}`, `sample_sizes`, `note`; or `{skipped: reason}` |
| `fit` | the backend's FitResult as a dict (seconds, epochs, epsilon, delta), when given |
| `gate` | `decision` (pass / flag / block), `reasons` (sentences), `policy` (thresholds used) |
"""

# The heavy parts (sdmetrics, torch, scikit-learn) load on first use, so that importing a light
# submodule such as evaluation.gate (the request model needs ReleasePolicy) stays fast.
from __future__ import annotations

import importlib

_EXPORTS = {
    "evaluate": "suite",
    "compare": "suite",
    "evaluate_files": "suite",
    "METRICS_VERSION": "suite",
    "ExactCopyCounter": "privacy",
    "ReleasePolicy": "gate",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    """Load the submodule that defines `name` on first access."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
