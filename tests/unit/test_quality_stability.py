"""The quality score does not move with the rows sampled, covers every column and pair, and has an interval."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import pytest

from fairsynth.metadata.schema import TableSchema
from fairsynth.services.run.evaluation import compare, evaluate
from fairsynth.services.run.evaluation.quality import UNIQUE_KEY, WITHHELD, evaluate_quality
from fairsynth.services.run.evaluation.results import ExactCopies
from fairsynth.services.run.report import render_comparison, render_report


def _long_table(n_rows: int, seed: int) -> pd.DataFrame:
    """Lab values per subject: a test code, its value, unit and date, and two weakly related flags."""
    rng = np.random.default_rng(seed)
    code = rng.integers(0, 20, n_rows)
    value = code * 3 + rng.normal(0, 1 + code / 5, n_rows)
    flag = np.where(value > code * 3 + 1, "H", "N")
    repeat = np.where(rng.random(n_rows) < 0.65, flag, np.where(flag == "H", "N", "H"))  # Cramér's V about 0.3
    day = pd.Timestamp("2014-01-01") + pd.to_timedelta(rng.integers(0, 900, n_rows) + code * 10, unit="D")
    return pd.DataFrame(
        {
            "LBTESTCD": [f"T{c:02d}" for c in code],
            "LBSTRESN": value.round(2),
            "LBSTRESU": np.array(["mg/dL", "g/L", "mmol/L"])[code % 3],
            "LBDTC": day.strftime("%Y-%m-%d"),
            "LBNRIND": flag,
            "LBREPEAT": repeat,
        }
    )


@pytest.fixture(scope="module")
def long_tables():
    """50k real rows split in two, and a synthetic table whose flags lost their relation."""
    real = _long_table(50_000, 0)
    synthetic = _long_table(50_000, 1)
    synthetic["LBREPEAT"] = synthetic["LBREPEAT"].sample(frac=1.0, random_state=0).to_numpy()
    return real.iloc[:25_000], real.iloc[25_000:], synthetic, TableSchema.infer(real)


def test_every_column_pair_is_scored(long_tables):
    train, holdout, synthetic, schema = long_tables
    quality = evaluate_quality(train, holdout, synthetic, schema)
    assert quality.pairs_total == 15
    assert quality.pairs_scored == 15 and quality.pairs_skipped == []


def test_five_evaluation_seeds_move_quality_by_less_than_a_hundredth(long_tables):
    train, holdout, synthetic, schema = long_tables
    scores = [evaluate_quality(train, holdout, synthetic, schema, seed=seed).quality for seed in range(5)]
    assert max(scores) - min(scores) < 0.01


def test_real_and_synthetic_samples_have_the_same_size_whatever_the_synthetic_rows(long_tables):
    train, holdout, synthetic, schema = long_tables
    few = evaluate_quality(train, holdout, synthetic.iloc[:8_000], schema).sample_sizes
    many = evaluate_quality(train, holdout, synthetic, schema).sample_sizes
    assert few.real == few.synthetic == 8_000
    assert many.real == many.synthetic == 20_000


def test_the_interval_holds_the_score_and_is_narrow_on_many_rows(long_tables):
    train, holdout, synthetic, schema = long_tables
    quality = evaluate_quality(train, holdout, synthetic, schema)
    low, high = quality.quality_interval
    assert low < quality.quality < high
    assert high - low < 0.02


def test_a_pair_without_a_score_is_listed_with_why(long_tables):
    train, holdout, synthetic, schema = long_tables
    constant = synthetic.assign(LBSTRESN=1.0)
    quality = evaluate_quality(train, holdout, constant, schema)
    skipped = {tuple(pair.columns): pair.reason for pair in quality.pairs_skipped}
    assert list(skipped) == [("LBSTRESN", "LBDTC")] and "constant" in skipped["LBSTRESN", "LBDTC"]
    assert quality.pairs_scored == quality.pairs_total - 1


def _clinic_table(n_rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    clinic = rng.choice(["north", "south", "east"], n_rows, p=[0.6, 0.3, 0.1])
    return pd.DataFrame(
        {
            "patient_id": np.sort(rng.integers(0, n_rows // 4, n_rows)) + seed * n_rows,  # about 4 rows each
            "clinic_name": clinic,
            "result": np.where(clinic == "north", "positive", rng.choice(["positive", "negative"], n_rows)),
            "age": rng.integers(18, 90, n_rows),
            "comment": [f"seen on visit {i}, felt fine" for i in range(n_rows)],
            "row_id": np.arange(n_rows) + seed * n_rows,
        }
    )


def test_a_replaced_column_lowers_the_score_and_withheld_text_is_listed():
    real = _clinic_table(4_000, 0)
    kinds = {"clinic_name": "pii", "comment": "text", "patient_id": "identifier", "row_id": "identifier"}
    schema = TableSchema.infer(real).with_overrides(kinds=kinds)
    faithful = _clinic_table(4_000, 1)
    replaced = faithful.assign(clinic_name=[f"Person {i}" for i in range(len(faithful))], comment="")
    kept = evaluate_quality(real.iloc[:2_000], real.iloc[2_000:], faithful, schema)
    lost = evaluate_quality(real.iloc[:2_000], real.iloc[2_000:], replaced, schema)
    assert lost.quality < kept.quality - 0.1
    assert lost.columns_left_out == {"comment": WITHHELD, "row_id": UNIQUE_KEY}
    assert lost.pairs_total == lost.pairs_scored == 6  # patient_id (rows per key), clinic_name, result, age


def test_a_range_is_the_whole_real_column_not_a_sample(long_tables):
    train, holdout, synthetic, schema = long_tables
    train = train.copy()
    train.loc[train.index[123], "LBSTRESN"] = 13_682.0  # one extreme value a sample of 2,000 rows rarely holds
    for seed in range(3):
        extent = evaluate_quality(train, holdout, synthetic.iloc[:2_000], schema, seed=seed).columns["LBSTRESN"].range
        assert extent.real_max == 13_682.0 and extent.real_min == train["LBSTRESN"].min()


def test_the_synthetic_row_count_is_the_whole_output_not_the_kept_sample():
    real = _clinic_table(3_000, 0)
    schema = TableSchema.infer(real)
    kept = _clinic_table(1_000, 1)
    copies = ExactCopies(count=0, rate=0.0, synthetic_rows_checked=12_419)
    result = evaluate(real.iloc[:2_000], real.iloc[2_000:], kept, schema, anonymeter=False, exact_copies=copies)
    assert result.rows.synthetic == result.privacy.exact_copies.synthetic_rows_checked == 12_419


def test_the_comparison_ties_backends_whose_intervals_overlap_and_the_report_names_left_out_columns():
    real = _clinic_table(3_000, 0)
    schema = TableSchema.infer(real).with_overrides(kinds={"comment": "text", "row_id": "identifier"})
    train, holdout = real.iloc[:2_000], real.iloc[2_000:]
    broken = _clinic_table(2_000, 3).assign(result="negative", clinic_name="east")
    results = {
        name: evaluate(train, holdout, synthetic, schema, anonymeter=False)
        for name, synthetic in (("a", _clinic_table(2_000, 1)), ("b", _clinic_table(2_000, 2)), ("broken", broken))
    }
    table = compare(results).set_index("backend")
    assert table.loc["a", "quality_tied_with"] == "b" and table.loc["broken", "quality_tied_with"] == ""
    assert table.loc["a", "quality_low"] < table.loc["a", "quality"] < table.loc["a", "quality_high"]
    assert "tied with b" in render_comparison(results)
    page = render_report(train, broken, schema, results["broken"])
    assert f"The quality score leaves out: comment ({WITHHELD})" in html.unescape(page)
