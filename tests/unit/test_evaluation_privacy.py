"""Privacy metrics catch a generator that copies its training rows and clear one that never saw them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairsynth.metadata.schema import TableSchema
from fairsynth.services.run.demo import load_demo_table
from fairsynth.services.run.evaluation import evaluate
from fairsynth.services.run.evaluation.frames import compared_columns, values_frame
from fairsynth.services.run.evaluation.gate import gate
from fairsynth.services.run.evaluation.privacy import ExactCopyCounter, MixedSpace, count_exact_copies, evaluate_privacy


@pytest.fixture(scope="module")
def split():
    """The demo table (dates, missing values, rare codes) split into train and holdout."""
    table = load_demo_table().sample(n=1600, random_state=3).reset_index(drop=True)
    schema = TableSchema.infer(table).with_overrides(target="readmitted_30d")
    return table.iloc[:800], table.iloc[800:], schema


def test_copier_is_blocked_on_every_privacy_measure(split):
    train, holdout, schema = split
    metrics = evaluate(train, holdout, train.sample(frac=1.0, random_state=1), schema, anonymeter=False)
    privacy = metrics.privacy
    assert privacy.exact_copies.count == len(train)
    assert privacy.dcr.share_closer_to_train > 0.95
    assert privacy.membership_inference.auc > 0.95
    assert metrics.gate.decision == "block"
    assert any("exact copies" in r for r in metrics.gate.reasons)


def test_rows_from_the_holdout_pass_privacy(split):
    train, holdout, schema = split
    synthetic = holdout.sample(n=800, replace=True, random_state=2)
    metrics = evaluate(train, holdout, synthetic, schema, anonymeter=False)
    privacy = metrics.privacy
    assert privacy.exact_copies.count == 0
    assert privacy.exact_copies.holdout_count == 800
    assert privacy.dcr.share_closer_to_train <= 0.6
    assert privacy.membership_inference.auc <= 0.6
    assert not any(r for r in metrics.gate.reasons if "DCR" in r or "Membership" in r or "copies" in r)
    assert metrics.gate.decision != "block"


def test_unseen_rows_of_the_same_population_sit_near_half(split):
    """Rows the generator never saw are as close to train as to holdout: DCR share and AUC ≈ 0.5."""
    table = load_demo_table()
    schema = split[2]
    train, holdout, fresh = table.iloc[:600], table.iloc[600:1200], table.iloc[1200:1800]
    privacy = evaluate_privacy(train, holdout, fresh, schema, anonymeter=False)
    assert abs(privacy.dcr.share_closer_to_train - 0.5) < 0.1
    assert abs(privacy.membership_inference.auc - 0.5) < 0.1
    assert privacy.sample_sizes.train_reference == privacy.sample_sizes.holdout_reference == 600


def test_copies_survive_a_round_trip_through_csv(split, tmp_path):
    """Dates re-read as text and integers as floats still count as the same rows."""
    train, holdout, schema = split
    path = tmp_path / "synthetic.csv"
    train.head(50).to_csv(path, index=False)
    reread = pd.read_csv(path)
    specs = compared_columns(schema, train)
    assert count_exact_copies(train, holdout, reread, specs).count == 50


def test_streamed_batches_are_all_checked_for_copies(split):
    """The pipeline keeps a sample for the metrics but every streamed row is checked for copies."""
    train, holdout, schema = split
    counter = ExactCopyCounter.for_schema(train, holdout, schema)
    for batch in (holdout.iloc[:300], holdout.iloc[300:600], train.iloc[:7]):
        counter.update(batch)
    sample = holdout.iloc[:300]  # the rows kept in memory hold no copy
    metrics = evaluate(train, holdout, sample, schema, anonymeter=False, exact_copies=counter.result())
    assert metrics.privacy.exact_copies.synthetic_rows_checked == 607
    assert metrics.privacy.exact_copies.count == 7
    assert metrics.gate.decision == "block"


def test_a_row_that_matches_only_in_its_numbers_is_no_copy():
    """Copies are found by numbers first, then every column: a changed category or date is no copy."""
    from fairsynth.metadata.schema import ColumnKind, ColumnSpec

    specs = [
        ColumnSpec(name="x", kind=ColumnKind.FLOAT),
        ColumnSpec(name="c", kind=ColumnKind.CATEGORICAL),
        ColumnSpec(name="d", kind=ColumnKind.DATE, datetime_format="%Y-%m-%d"),
    ]
    train = pd.DataFrame({"x": [1.5, 2.5, 3.5], "c": ["a", "b", "a"], "d": ["2020-01-01", "2020-01-02", "2020-01-03"]})
    holdout = pd.DataFrame({"x": [9.5], "c": ["b"], "d": ["2021-05-05"]})
    counter = ExactCopyCounter(train, holdout, specs)
    counter.update(
        pd.DataFrame(
            {
                "x": [1.5, 1.5, 2.5, 9.5, 7.0],
                "c": ["a", "b", "b", "b", "a"],
                "d": ["2020-01-01", "2020-01-01", "2020-01-09", "2021-05-05", "2020-01-01"],
            }
        )
    )
    assert (counter.result().count, counter.result().holdout_count) == (1, 1)
    rounded_to_zero = pd.DataFrame({"x": [-1e-9], "c": ["a"], "d": ["2020-01-01"]})  # -0.0 after rounding
    zero = ExactCopyCounter(train.assign(x=[0.0, 2.5, 3.5]), holdout, specs)
    zero.update(rounded_to_zero)
    assert zero.result().count == 1
    labels_only = ExactCopyCounter(train, holdout, specs[1:])  # no number column: every row hashed whole
    labels_only.update(pd.DataFrame({"c": ["a", "a"], "d": ["2020-01-03", "2020-01-04"]}))
    assert labels_only.result().count == 1


def test_mixed_distance_weighs_one_category_like_one_standard_deviation():
    from fairsynth.metadata.schema import ColumnKind, ColumnSpec

    specs = [ColumnSpec(name="x", kind=ColumnKind.FLOAT), ColumnSpec(name="c", kind=ColumnKind.CATEGORICAL)]
    train = pd.DataFrame({"x": np.random.default_rng(0).normal(5, 2, 1000), "c": ["a", "b"] * 500})
    space = MixedSpace(values_frame(train, specs), specs)
    std = float(train["x"].std())
    rows = space.transform(pd.DataFrame({"x": [0.0, std, 0.0], "c": ["a", "a", "b"]}))
    assert np.linalg.norm(rows[1] - rows[0]) == pytest.approx(1.0, abs=1e-5)
    assert np.linalg.norm(rows[2] - rows[0]) == pytest.approx(1.0, abs=1e-5)


def test_repeated_rows_in_the_real_table_flag_instead_of_block():
    """Low-dimensional tables repeat rows: matching train no more than unseen holdout is not a leak."""
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"sex": rng.choice(["F", "M"], 3000), "band": rng.choice(["a", "b", "c"], 3000)})
    schema = TableSchema.infer(table)
    train, holdout, synthetic = table.iloc[:1000], table.iloc[1000:2000], table.iloc[2000:]
    metrics = evaluate(train, holdout, synthetic, schema, anonymeter=False)
    assert metrics.privacy.exact_copies.real_repeat_rate == 1.0
    assert metrics.gate.decision == "flag"
    assert any("repeats its own rows" in r for r in metrics.gate.reasons)


@pytest.mark.slow
def test_anonymeter_sees_the_copier_and_not_the_holdout(split):
    train, holdout, schema = split
    copied = evaluate_privacy(train, holdout, train, schema).anonymeter
    unseen = evaluate_privacy(train, holdout, holdout.sample(frac=1.0, random_state=4), schema).anonymeter
    assert copied.singling_out.ci_low <= copied.singling_out.risk <= copied.singling_out.ci_high
    assert copied.linkability.risk > 0.5 > unseen.linkability.risk
    assert copied.attribute_inference.max_risk > 0.5 > unseen.attribute_inference.max_risk
    assert "readmitted_30d" in copied.attribute_inference.secrets


def test_dp_budget_is_reported_beside_the_risks(split):
    train, holdout, schema = split
    metrics = evaluate(
        train, holdout, holdout, schema, fit={"seconds": 1.0, "epsilon": 3.0, "delta": 1e-5}, anonymeter=False
    )
    assert metrics.privacy.dp.model_dump() == {"epsilon": 3.0, "delta": 1e-5, "differentially_private": True}
    assert metrics.fit.epsilon == 3.0
    from fairsynth.services.run.evaluation.gate import ReleasePolicy

    judged = gate(metrics, ReleasePolicy(max_epsilon=1.0))
    assert judged.decision in ("flag", "block")
    assert "DP ε is 3.00, above the policy's 1.00." in judged.reasons


def test_gaps_only_outside_the_training_table_map_to_the_same_space():
    """A column complete in train but with gaps in holdout or synthetic rows (found on SUPPORT2)."""
    demo = load_demo_table()
    train, other = demo.iloc[:1000].copy(), demo.iloc[1000:].copy()
    train["systolic_bp"] = train["systolic_bp"].astype(float)
    other.loc[other.index[:50], "systolic_bp"] = np.nan
    schema = TableSchema.infer(demo)
    specs = compared_columns(schema, train, other)
    space = MixedSpace(values_frame(train, specs), specs)
    assert space.transform(values_frame(train, specs)).shape[1] == space.transform(values_frame(other, specs)).shape[1]
    result = evaluate_privacy(train, other.iloc[:400], other.iloc[400:], schema, anonymeter=False)
    assert 0.0 <= result.dcr.share_closer_to_train <= 1.0


def test_arrow_batches_are_screened_on_few_columns_yet_every_copy_is_counted():
    """update_table keys a batch on its most distinct number columns first: rows that match a real row
    there but differ in another number column (or a label) are no copies; real copies, gaps included, are."""
    import pyarrow as pa

    from fairsynth.metadata.schema import ColumnKind, ColumnSpec

    rng = np.random.default_rng(7)
    n = 400
    real = pd.DataFrame({f"x{j}": rng.normal(size=n).round(4) for j in range(4)})
    real["small"] = rng.integers(0, 3, n).astype(float)  # few distinct values: never screened on
    real.loc[::9, "x0"] = np.nan
    real["c"] = rng.choice(["a", "b"], n)
    specs = [ColumnSpec(name=c, kind=ColumnKind.FLOAT) for c in real.columns[:-1]]
    specs.append(ColumnSpec(name="c", kind=ColumnKind.CATEGORICAL))
    train, holdout = real.iloc[:300], real.iloc[300:]
    near = train.iloc[:40].assign(small=train["small"].iloc[:40] + 5)  # screened columns equal, one number not
    relabelled = train.iloc[40:60].assign(c=np.where(train["c"].iloc[40:60] == "a", "b", "a"))
    fresh = pd.DataFrame({c: rng.normal(size=200) for c in real.columns[:-1]}).assign(c="a")
    synthetic = pd.concat([train.iloc[:27], holdout.iloc[:5], near, relabelled, fresh, train.iloc[::10]])
    synthetic = synthetic.sample(frac=1.0, random_state=1).reset_index(drop=True)

    counter = ExactCopyCounter(train, holdout, specs)
    for start in range(0, len(synthetic), 100):
        counter.update_table(
            pa.Table.from_pandas(synthetic.iloc[start : start + 100], preserve_index=False), pa.Table.to_pandas
        )
    expected = count_exact_copies(train, holdout, synthetic, specs)
    assert (counter.result().count, counter.result().holdout_count) == (27 + 30, 5)
    assert counter.result() == expected


def test_rows_that_only_share_a_hash_are_no_copies(split, monkeypatch):
    """A hash hit is confirmed value by value: with every row hashed alike, only the real copies count."""
    from fairsynth.services.run.evaluation import privacy

    train, holdout, schema = split
    synthetic = pd.concat([train.iloc[:9], holdout.iloc[:4], holdout.iloc[4:20].assign(age=200)])
    monkeypatch.setattr(privacy, "_hashes", lambda values: np.zeros(len(values), dtype=np.uint64))
    counter = ExactCopyCounter.for_schema(train, holdout, schema)
    counter.update(synthetic)
    assert (counter.result().count, counter.result().holdout_count) == (9, 4)
