"""Utility: TSTR vs TRTR on the holdout, chance for a noise target, skipped without a target."""

from __future__ import annotations

import numpy as np
import pytest

from fairsynth.metadata.schema import TableSchema
from fairsynth.services.run.evaluation.utility import evaluate_utility


@pytest.fixture(scope="module")
def support():
    from SurvSet.data import SurvLoader

    table = SurvLoader().load_dataset("support2")["df"].sample(n=3000, random_state=1).reset_index(drop=True)
    table = table[
        ["num_age", "num_sps", "num_surv2m", "num_meanbp", "num_crea", "num_scoma", "fac_dzgroup", "fac_sex", "event"]
    ].copy()
    table["noise"] = np.random.default_rng(7).choice(["x", "y"], len(table))
    return table, TableSchema.infer(table)


def test_noise_target_gives_chance_both_ways(support):
    table, schema = support
    result = evaluate_utility(
        table.iloc[:1200], table.iloc[1200:2000], table.iloc[2000:], schema.with_overrides(target="noise")
    )
    assert result.task == "classification" and result.chance == 0.5
    for scores in result.models.values():
        assert abs(scores.trtr - 0.5) < 0.06
        assert abs(scores.tstr - 0.5) < 0.06
    assert result.note


def test_predictable_target_scores_above_chance_and_a_shuffled_target_does_not(support):
    table, schema = support
    schema = schema.with_overrides(target="num_surv2m")
    train, holdout, other = table.iloc[:1200], table.iloc[1200:2000], table.iloc[2000:]
    faithful = evaluate_utility(train, holdout, other, schema)
    broken = other.copy()
    broken["num_surv2m"] = np.random.default_rng(0).permutation(broken["num_surv2m"].to_numpy())
    scrambled = evaluate_utility(train, holdout, broken, schema)
    assert faithful.task == "regression" and faithful.metric == "r2"
    boosted = faithful.models["gradient_boosting"]
    assert boosted.trtr > 0.5 and boosted.ratio > 0.85
    assert faithful.best.ratio == max(m.ratio for m in faithful.models.values())
    assert scrambled.models["gradient_boosting"].tstr < 0.1
    assert scrambled.models["gradient_boosting"].ratio < 0.2


def test_no_target_is_skipped_with_a_note(support):
    table, schema = support
    result = evaluate_utility(table.iloc[:500], table.iloc[500:1000], table.iloc[1000:1500], schema)
    assert "target" in result.skipped
