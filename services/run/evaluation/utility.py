"""Utility: train on synthetic, test on real (TSTR) beside train on real, test on real (TRTR).

Both sides train on the same number of rows and are scored on the same holdout rows. Classification
(boolean or categorical target) is scored with balanced accuracy (chance = 1 / number of classes),
regression (numeric or date target) with R² (chance = 0).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import balanced_accuracy_score, r2_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from fairsynth.metadata.schema import TableSchema
from fairsynth.services.run.evaluation.frames import compared_columns, is_numeric, subsample, values_frame
from fairsynth.services.run.evaluation.results import Skipped, UtilityResult

TRAIN_ROWS = 20_000
TEST_ROWS = 20_000
MIN_ROWS = 20
CHANCE_MARGIN = 0.02  # a TRTR score within this of chance makes the ratio meaningless


def evaluate_utility(
    train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, schema: TableSchema, *, seed: int = 0
) -> UtilityResult | Skipped:
    """The utility block of metrics.json: TSTR and TRTR scores per model and their ratio."""
    target = schema.target
    if not target:
        return Skipped(
            skipped="No target column is set, so utility (TSTR vs TRTR) was not measured; "
            "choose a target column to measure it."
        )
    specs = compared_columns(schema, train, holdout, synthetic)
    spec = next((s for s in specs if s.name == target), None)
    if spec is None:
        return Skipped(skipped=f"The target '{target}' is not a compared column of all three tables.")
    features = [s for s in specs if s.name != target]
    if not features:
        return Skipped(skipped=f"There is no feature column besides the target '{target}'.")
    task = "regression" if is_numeric(spec) else "classification"
    n_train = min(len(train), len(synthetic), TRAIN_ROWS)
    real = _labelled(values_frame(subsample(train, n_train, seed), specs), target)
    synth = _labelled(values_frame(subsample(synthetic, n_train, seed + 1), specs), target)
    test = _labelled(values_frame(subsample(holdout, TEST_ROWS, seed + 2), specs), target)
    if min(len(real), len(synth), len(test)) < MIN_ROWS:
        return Skipped(skipped=f"Fewer than {MIN_ROWS} rows with a known '{target}' in one of the tables.")
    if task == "classification" and (real[target].nunique() < 2 or synth[target].nunique() < 2):
        return Skipped(skipped=f"The target '{target}' has a single class in the training or synthetic rows.")
    models = {}
    for name in ("gradient_boosting", "linear"):
        trtr = _fit_score(name, task, real, test, features, target, seed)
        tstr = _fit_score(name, task, synth, test, features, target, seed)
        models[name] = {"trtr": trtr, "tstr": tstr}
    chance = 0.0 if task == "regression" else 1.0 / test[target].nunique()
    for scores in models.values():
        scores["ratio"] = _ratio(scores["tstr"], scores["trtr"], chance)
    result = {
        "target": target,
        "task": task,
        "metric": "r2" if task == "regression" else "balanced_accuracy",
        "chance": chance,
        "models": models,
    }
    if any(scores["ratio"] is None for scores in models.values()):
        result["note"] = (
            "A model trained on the real rows does no better than chance, so the TSTR/TRTR ratio is "
            "not defined for it: the target is not predictable from the other columns."
        )
    result["sample_sizes"] = {"train": len(real), "synthetic": len(synth), "test": len(test)}
    return UtilityResult.model_validate(result)


def _labelled(values: pd.DataFrame, target: str) -> pd.DataFrame:
    return values[values[target].notna()]


def _fit_score(
    name: str, task: str, train: pd.DataFrame, test: pd.DataFrame, features: list, target: str, seed: int
) -> float:
    model = _model(name, task, features, seed)
    # One thread: OpenMP spinning on a shared, busy machine slows gradient boosting a hundredfold.
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore")
        model.fit(train[[f.name for f in features]], train[target])
        predicted = model.predict(test[[f.name for f in features]])
    if task == "regression":
        return float(r2_score(test[target], predicted))
    return float(balanced_accuracy_score(test[target], predicted))


def _model(name: str, task: str, features: list, seed: int):
    numeric = [f.name for f in features if is_numeric(f)]
    categorical = [f.name for f in features if not is_numeric(f)]
    fill = SimpleImputer(strategy="constant", fill_value="__missing__")
    if name == "gradient_boosting":
        encode = ColumnTransformer(
            [
                ("numeric", "passthrough", numeric),
                (
                    "categorical",
                    make_pipeline(
                        fill,
                        OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1),
                    ),
                    categorical,
                ),
            ]
        )
        is_categorical = [False] * len(numeric) + [True] * len(categorical)
        params = {"random_state": seed, "max_iter": 100, "categorical_features": is_categorical or None}
        estimator = (
            HistGradientBoostingRegressor(**params)
            if task == "regression"
            else HistGradientBoostingClassifier(**params)
        )
        return make_pipeline(encode, estimator)
    encode = ColumnTransformer(
        [
            ("numeric", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), numeric),
            ("categorical", make_pipeline(fill, OneHotEncoder(handle_unknown="ignore", min_frequency=5)), categorical),
        ]
    )
    estimator = Ridge(alpha=1.0) if task == "regression" else LogisticRegression(max_iter=500)
    return make_pipeline(encode, estimator)


def _ratio(tstr: float, trtr: float, chance: float) -> float | None:
    """TSTR / TRTR, or None when the real-trained model is no better than chance (the ratio is noise)."""
    if np.isnan(trtr) or trtr <= chance + CHANCE_MARGIN:
        return None
    return float(tstr / trtr)
