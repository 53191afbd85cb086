"""Quality metrics tell a table that keeps column relations from one that does not, and spot lost detail."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairsynth.metadata.schema import TableSchema
from fairsynth.services.run.demo import load_demo_table
from fairsynth.services.run.evaluation.quality import evaluate_quality, quality_score, sdmetrics_metadata


@pytest.fixture(scope="module")
def support():
    """2,400 rows of SUPPORT2 (strongly related clinical measurements), split in three."""
    from SurvSet.data import SurvLoader

    table = SurvLoader().load_dataset("support2")["df"].sample(n=2400, random_state=0).reset_index(drop=True)
    table = table[
        [
            "num_age",
            "num_sps",
            "num_surv2m",
            "num_surv6m",
            "num_meanbp",
            "num_crea",
            "num_bun",
            "num_scoma",
            "num_adls",
            "fac_dzgroup",
            "fac_dzclass",
            "fac_sex",
            "fac_dnr",
            "event",
        ]
    ]
    return table.iloc[:800], table.iloc[800:1600], table.iloc[1600:], TableSchema.infer(table)


def _independent_columns(table: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Each column shuffled on its own: perfect marginals, no relation between columns."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({c: table[c].to_numpy()[rng.permutation(len(table))] for c in table.columns})


def test_independent_columns_lose_pair_trends_but_keep_shapes(support):
    train, holdout, other, schema = support
    faithful = evaluate_quality(train, holdout, other, schema)
    shuffled = evaluate_quality(train, holdout, _independent_columns(other, 1), schema)
    # every pair counts (weakly related ones too, which shuffling barely changes), so the drop is diluted
    assert shuffled.column_pair_trends < faithful.column_pair_trends - 0.04
    assert shuffled.quality_interval[1] < faithful.quality_interval[0]
    assert shuffled.association.mean_abs_difference > 2 * faithful.association.mean_abs_difference
    assert abs(shuffled.column_shapes - faithful.column_shapes) < 0.03
    assert faithful.holdout_reference.quality > 0.85
    assert faithful.pairs_scored > 0


def test_diagnostic_and_per_column_entries_are_reported(support):
    train, holdout, other, schema = support
    quality = evaluate_quality(train, holdout, other, schema)
    assert 0 < quality.diagnostic.score <= 1 and 0 < quality.diagnostic.validity <= 1
    assert quality.diagnostic.structure == 1.0
    assert set(quality.columns) == {s.name for s in schema.learned_columns()}
    assert quality.columns["num_age"].range and quality.columns["fac_dzgroup"].categories


def test_lost_and_invented_categories_and_shifted_dates_are_caught():
    table = load_demo_table()
    schema = TableSchema.infer(table)
    train, holdout = table.iloc[:1000], table.iloc[1000:1500]
    synthetic = table.iloc[1500:].copy()
    synthetic["ward"] = synthetic["ward"].replace({"Stroke Unit": "Imaginary Ward"})
    synthetic["admission_date"] = (
        pd.to_datetime(synthetic["admission_date"], format="%d/%m/%Y") + pd.Timedelta(days=400)
    ).dt.strftime("%d/%m/%Y")
    synthetic.loc[synthetic.index[:250], "creatinine_umol_l"] = np.nan
    columns = evaluate_quality(train, holdout, synthetic, schema).columns
    ward = columns["ward"].categories
    assert ward.lost_examples == ["Stroke Unit"] and ward.invented_examples == ["Imaginary Ward"]
    dates = columns["admission_date"].range
    assert dates.outside_share > 0.4 and dates.synthetic_max_date > dates.real_max_date
    assert columns["creatinine_umol_l"].missing_share_synthetic > columns["creatinine_umol_l"].missing_share_real + 0.3
    assert columns["age"].range.outside_share == 0.0


def test_quality_score_keeps_its_signature():
    table = load_demo_table()
    schema = TableSchema.infer(table)
    scores = quality_score(table.iloc[:800], table.iloc[800:1600], schema)
    assert set(scores) == {"quality", "column_shapes", "column_pair_trends"}
    assert 0.8 < scores["quality"] <= 1.0
    assert sdmetrics_metadata(schema)["tables"]["table"]["columns"]["episode_id"] == {"sdtype": "numerical"}
