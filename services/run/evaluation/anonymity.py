"""anonymeter attacks (singling out, linkability, attribute inference) with confidence intervals.

The original table for anonymeter is the training table, the control table is the holdout, so each
risk is the attacker's success on training rows beyond their success on rows never seen.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd

from fairsynth.metadata.schema import TableSchema
from fairsynth.services.run.evaluation.frames import compared_columns, is_numeric, subsample, values_frame
from fairsynth.services.run.evaluation.metrics import CONFIDENCE

ATTACKS = 300  # attacks per evaluator
ROWS = 2_000  # rows of train, holdout and synthetic given to anonymeter
INFERENCE_SECRETS = 3  # attribute-inference runs: the target first, then the columns in schema order


def anonymeter_risks(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: TableSchema,
    *,
    seed: int = 0,
    n_attacks: int = ATTACKS,
) -> dict:
    """Singling-out, linkability and attribute-inference risks (value and 95 % interval) from anonymeter."""
    specs = compared_columns(schema, train, holdout, synthetic)
    if len(specs) < 2:
        return {"skipped": "anonymeter needs at least two compared columns."}
    n_control = min(len(holdout), ROWS)
    n_attacks = max(1, min(n_attacks, n_control - 1, len(train) - 1))
    ori = values_frame(subsample(train, ROWS, seed), specs)
    control = values_frame(subsample(holdout, ROWS, seed + 1), specs)
    syn = values_frame(subsample(synthetic, ROWS, seed + 2), specs)
    ori, control, syn = (_anonymeter_ready(t, specs) for t in (ori, control, syn))
    logging.getLogger("anonymeter").setLevel(logging.ERROR)
    result = {
        "n_attacks": n_attacks,
        "rows": {"train": len(ori), "holdout": len(control), "synthetic": len(syn)},
        "confidence_level": CONFIDENCE,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result["singling_out"] = _guard(_singling_out, ori, syn, control, n_attacks, seed)
        result["linkability"] = _guard(_linkability, ori, syn, control, n_attacks, seed)
        result["attribute_inference"] = _inference(ori, syn, control, specs, schema.target, n_attacks)
    return result


def _anonymeter_ready(values: pd.DataFrame, specs: list) -> pd.DataFrame:
    """Numbers stay float, categories become strings with an explicit missing label (anonymeter's own
    preprocessing cannot handle NaN in object columns)."""
    out = values.copy()
    for spec in specs:
        if not is_numeric(spec):
            out[spec.name] = out[spec.name].fillna("__missing__").astype(str)
    return out.reset_index(drop=True)


def _guard(attack, *args) -> dict:
    try:
        return attack(*args)
    except Exception as error:  # anonymeter raises plain exceptions on degenerate tables
        return {"skipped": f"anonymeter could not run this attack: {error}"}


def _risk(evaluator) -> dict:
    risk = evaluator.risk(confidence_level=CONFIDENCE)
    results = evaluator.results(confidence_level=CONFIDENCE)
    return {
        "risk": float(risk.value),
        "ci_low": float(risk.ci[0]),
        "ci_high": float(risk.ci[1]),
        "attack_rate": float(results.attack_rate.value),
        "baseline_rate": float(results.baseline_rate.value),
        "control_rate": None if results.control_rate is None else float(results.control_rate.value),
    }


def _singling_out(ori, syn, control, n_attacks, seed) -> dict:
    from anonymeter.evaluators import SinglingOutEvaluator

    evaluator = SinglingOutEvaluator(ori=ori, syn=syn, control=control, n_attacks=n_attacks, seed=seed)
    evaluator.evaluate(mode="univariate")
    return {"mode": "univariate"} | _risk(evaluator)


def _linkability(ori, syn, control, n_attacks, seed) -> dict:
    from anonymeter.evaluators import LinkabilityEvaluator

    columns = list(ori.columns)
    order = np.random.default_rng(seed).permutation(len(columns))
    half = len(columns) // 2
    aux = ([columns[i] for i in order[:half]], [columns[i] for i in order[half:]])
    evaluator = LinkabilityEvaluator(ori=ori, syn=syn, control=control, aux_cols=aux, n_attacks=n_attacks)
    evaluator.evaluate(n_jobs=1)
    return {"aux_columns": [aux[0], aux[1]]} | _risk(evaluator)


def _inference(ori, syn, control, specs, target, n_attacks) -> dict:
    from anonymeter.evaluators import InferenceEvaluator

    names = [s.name for s in specs]
    secrets = ([target] if target in names else []) + [n for n in names if n != target]
    out = {}
    for secret in secrets[:INFERENCE_SECRETS]:
        regression = is_numeric(next(s for s in specs if s.name == secret))

        def attack(ori, syn, control, secret=secret, regression=regression):
            evaluator = InferenceEvaluator(
                ori=ori,
                syn=syn,
                control=control,
                secret=secret,
                regression=regression,
                aux_cols=[n for n in names if n != secret],
                n_attacks=n_attacks,
            )
            evaluator.evaluate(n_jobs=1)
            return _risk(evaluator)

        out[secret] = _guard(attack, ori, syn, control)
    risks = [r["risk"] for r in out.values() if "risk" in r]
    return {"secrets": out, "max_risk": max(risks) if risks else None}
