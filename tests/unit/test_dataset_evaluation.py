"""A dataset's evaluation: multi-table quality, within-subject trajectories, subject-level privacy and the gate."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fairsynth.metadata.dataset import DatasetSchema
from fairsynth.services.entry.cli import app
from fairsynth.services.run.datasets import split_by_subject
from fairsynth.services.run.evaluation.gate import DATASET_LIMITS, ReleasePolicy
from fairsynth.services.run.evaluation.metrics import DATASET_METRICS
from fairsynth.services.run.evaluation.relational import evaluate_dataset, sample_subjects
from fairsynth.services.run.evaluation.relational_results import DatasetEvaluation
from fairsynth.services.run.evaluation.results import walk_metric_fields
from fairsynth.services.run.evaluation.subjects import count_subject_copies, subject_summaries

KEY_OFFSET = 1_000_000  # synthetic keys: never a real one


def cohort(n_subjects: int = 200, seed: int = 0) -> dict[str, pd.DataFrame]:
    """subjects -> visits: each subject's lab value rises from visit to visit (days in time order), the height
    stays."""
    rng = np.random.default_rng(seed)
    subjects = pd.DataFrame(
        {
            "subject_id": np.arange(1, n_subjects + 1),
            "sex": rng.choice(["f", "m"], n_subjects),
            "age": rng.integers(20, 90, n_subjects),
            "weight": rng.normal(75, 12, n_subjects).round(1),
        }
    )
    n_visits = rng.integers(2, 7, n_subjects)
    owner = np.repeat(subjects["subject_id"].to_numpy(), n_visits)
    position = np.concatenate([np.arange(n) for n in n_visits])
    visits = pd.DataFrame(
        {
            "visit_id": np.arange(1, len(owner) + 1),
            "subject_id": owner,
            "day": pd.Series(rng.integers(20, 200, len(owner))).groupby(owner).cumsum().to_numpy(),
            "bili": (1.0 + 0.8 * position + rng.normal(0, 0.2, len(owner))).round(2),
            "height": np.repeat(rng.normal(170, 10, n_subjects).round(), n_visits),  # constant within a subject
        }
    )
    return {"subjects": subjects, "visits": visits}


def with_fresh_keys(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The same rows under keys no real row has (what a dataset backend writes)."""
    subjects, visits = tables["subjects"].copy(), tables["visits"].copy()
    subjects["subject_id"] += KEY_OFFSET
    visits["subject_id"] += KEY_OFFSET
    visits["visit_id"] += KEY_OFFSET
    return {"subjects": subjects, "visits": visits}


@pytest.fixture(scope="module")
def split():
    real = cohort()
    schema = DatasetSchema.infer(real)
    train, holdout = split_by_subject(real, schema, 0.25, seed=0)
    return schema, train, holdout


def test_the_fabricated_cohort_is_inferred_as_subjects_with_dated_visits(split):
    schema, train, _ = split
    assert [(r.parent, r.child, r.child_key) for r in schema.relationships] == [("subjects", "visits", "subject_id")]
    assert schema.entry("visits").sequence == "day"


# -- subject-level privacy ------------------------------------------------------------------------
def test_copies_of_training_subjects_are_counted_whole_and_blocked(split):
    schema, train, holdout = split
    result = evaluate_dataset(train, holdout, with_fresh_keys(train), schema)
    copies = result.privacy.exact_copies
    assert copies.count == len(train["subjects"]) and copies.rate == 1.0 and copies.holdout_count == 0
    assert result.privacy.membership_inference.auc > 0.9  # every member has a synthetic twin at distance 0
    assert result.gate.decision == "block"
    assert any("Exact copies of training subjects" in reason for reason in result.gate.reasons)


def test_subjects_whose_visits_differ_are_no_copies_even_with_their_root_rows_copied(split):
    schema, train, holdout = split
    synthetic = with_fresh_keys(train)
    last_visit = ~synthetic["visits"].duplicated("subject_id", keep="last")
    synthetic["visits"].loc[last_visit, "bili"] += 0.5  # one visit per subject changed
    assert count_subject_copies(train, holdout, synthetic, schema).count == 0


def test_visits_shuffled_between_subjects_are_no_copies(split):
    schema, train, holdout = split
    synthetic = with_fresh_keys(train)
    visits = synthetic["visits"]
    visits["subject_id"] = np.random.default_rng(1).permutation(visits["subject_id"].to_numpy())
    copies = count_subject_copies(train, holdout, synthetic, schema)
    assert copies.rate == 0.0 and copies.synthetic_subjects_checked == len(train["subjects"])


def test_fresh_subjects_of_the_same_population_pass_the_subject_level_privacy_checks(split):
    schema, train, holdout = split
    fresh = with_fresh_keys(cohort(150, seed=7))
    result = evaluate_dataset(train, holdout, fresh, schema)
    privacy = result.privacy
    assert privacy.exact_copies.count == 0
    assert 0.3 < privacy.dcr.share_closer_to_train < 0.7
    assert 0.3 < privacy.membership_inference.auc < 0.75  # 50 members vs 50 held-out subjects: wide noise
    assert {"visits.rows", "visits.bili.mean", "visits.bili.last", "age", "sex"} <= set(privacy.summary_columns)
    assert result.value(DATASET_METRICS[0]) == result.quality.score


def test_a_subject_summary_has_one_row_per_subject_with_counts_means_and_the_latest_value():
    tables = {
        "subjects": pd.DataFrame({"subject_id": [1, 2, 3], "age": [30, 40, 50]}),
        "visits": pd.DataFrame(
            {"visit_id": [1, 2, 3], "subject_id": [1, 1, 2], "day": [20, 10, 5], "bili": [3.0, 1.0, 2.0]}
        ),
    }
    schema = DatasetSchema.infer(tables).with_edits(sequences={"visits": "day"})
    summary = subject_summaries(tables, schema)
    assert summary["visits.rows"].tolist() == [2.0, 1.0, 0.0]  # the third subject has no visit
    assert summary["visits.bili.mean"].tolist()[:2] == [2.0, 2.0]
    assert summary["visits.bili.last"].tolist()[:2] == [3.0, 2.0]  # day 20 is the latest, whatever the row order
    assert np.isnan(summary["visits.bili.last"].iloc[2])


# -- trajectories and quality ---------------------------------------------------------------------
def test_trajectories_tell_a_reversed_trend_from_the_real_one(split):
    schema, train, holdout = split
    same = evaluate_dataset(train, holdout, with_fresh_keys(train), schema).trajectories
    reversed_trend = with_fresh_keys(train)
    visits = reversed_trend["visits"]
    visits["bili"] = visits.groupby("subject_id")["bili"].transform(lambda v: v.to_numpy()[::-1])
    reversed_result = evaluate_dataset(train, holdout, reversed_trend, schema)
    (column,) = reversed_result.trajectories.columns  # height never changes within a subject: no trajectory
    assert (column.table, column.column) == ("visits", "bili")
    assert same.mean_ks == 0.0
    assert reversed_result.trajectories.mean_ks > 0.8  # every real change is a rise, every synthetic one a fall
    assert column.real_mean_change > 0 > column.synthetic_mean_change
    # the rows and marginals are the same, so row-level measures cannot see it
    assert reversed_result.quality.column_shapes == pytest.approx(1.0)


def test_multi_table_quality_reports_its_four_properties_in_the_unit_interval(split):
    schema, train, holdout = split
    fresh = with_fresh_keys(cohort(150, seed=3))
    quality = evaluate_dataset(train, holdout, fresh, schema).quality
    scores = [quality.score, quality.column_shapes, quality.column_pair_trends]
    scores += [quality.cardinality, quality.intertable_trends]
    assert all(0.0 <= score <= 1.0 for score in scores)
    assert quality.score > 0.7  # the same population
    assert 0.7 < quality.holdout_reference <= 1.0  # held-out subjects: what a perfect generator reaches


def test_big_tables_are_sampled_by_whole_subjects_to_the_bound(split):
    schema, train, _ = split
    sampled = sample_subjects(train, schema, max_rows=200, seed=0)
    assert len(sampled["visits"]) <= 260  # about the bound: whole subjects, so not exactly
    kept = set(sampled["subjects"]["subject_id"])
    assert sampled["visits"]["subject_id"].isin(kept).all()
    full_counts = train["visits"].groupby("subject_id").size()
    sampled_counts = sampled["visits"].groupby("subject_id").size()
    assert sampled_counts.equals(full_counts[sampled_counts.index]) and len(sampled_counts) == len(kept)  # whole


# -- gate -------------------------------------------------------------------------------------------
def test_orphan_children_and_unordered_visits_block_release(split):
    schema, train, holdout = split
    synthetic = with_fresh_keys(cohort(150, seed=5))
    synthetic["visits"].loc[:4, "subject_id"] = -1  # ten visits without a parent
    synthetic["visits"].loc[5:9, "subject_id"] = np.nan
    synthetic["subjects"].loc[1, "subject_id"] = synthetic["subjects"].loc[2, "subject_id"]  # a repeated key
    visits = synthetic["visits"]
    first = visits.drop_duplicates("subject_id").index[1:6]
    visits.loc[first, "day"] = 10_000  # five subjects' first visit is now their latest
    result = evaluate_dataset(train, holdout, synthetic, schema)
    assert result.structure.referential_integrity < 1.0 and result.structure.time_order < 1.0
    assert result.gate.decision == "block"
    assert any(reason.startswith("Referential integrity") for reason in result.gate.reasons)
    assert any(reason.startswith("Within-subject order") for reason in result.gate.reasons)


def test_the_dataset_gate_reads_the_single_table_thresholds(split):
    schema, train, holdout = split
    synthetic = with_fresh_keys(train)
    lenient = ReleasePolicy(max_exact_copies=10_000, max_dcr_share=1.0, max_mia_auc=1.0)
    result = evaluate_dataset(train, holdout, synthetic, schema, policy=lenient)
    assert not any("Exact copies" in reason for reason in result.gate.reasons)
    fields = {limit.policy_field for limit in DATASET_LIMITS}
    assert {"max_exact_copies", "max_dcr_share", "max_mia_auc", "min_quality"} <= fields


def test_every_dataset_metric_has_one_field_and_the_json_round_trips(split):
    names = [name for name, _ in walk_metric_fields(DatasetEvaluation)]
    assert sorted(names) == sorted(m.name for m in DATASET_METRICS) and len(set(names)) == len(names)
    schema, train, holdout = split
    result = evaluate_dataset(train, holdout, with_fresh_keys(cohort(100, seed=2)), schema)
    text = json.dumps(result.model_dump(mode="json"))
    assert DatasetEvaluation.model_validate_json(text).headline() == result.headline()


def test_cli_writes_the_dataset_measures_and_shows_the_key_figures(tmp_path):
    folder = tmp_path / "cohort"
    folder.mkdir()
    for name, frame in cohort(80).items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["generate", str(folder), "--out", str(out), "--set", "relational.table_backend=marginals"]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "relational" / "metrics.json").read_text())
    assert metrics["structure"] == {"referential_integrity": 1.0, "time_order": 1.0}
    assert metrics["gate"]["decision"] in ("pass", "flag", "block")
    assert 0.0 <= metrics["quality"]["score"] <= 1.0
    for label in ("Dataset quality", "Trajectory KS", "Exact copies of training subjects", "Subject DCR share"):
        assert label in result.output
    assert "held-out subjects (reference)" in result.output and "relational: gate" in result.output


def test_a_synthetic_dataset_without_child_rows_is_measured_and_not_released(split):
    schema, train, holdout = split
    synthetic = with_fresh_keys(cohort(40, seed=4))
    synthetic["visits"] = synthetic["visits"].iloc[:0]  # no child row at all
    result = evaluate_dataset(train, holdout, synthetic, schema)
    assert result.structure.referential_integrity is None and result.trajectories.mean_ks is None
    assert result.quality.cardinality == 0.0 and result.privacy.exact_copies.count == 0
    assert "Referential integrity (worst) was not measured." in result.gate.reasons
    assert result.gate.decision != "pass"


def test_a_copied_subject_needs_each_grandchild_under_the_same_child():
    real = {
        "patients": pd.DataFrame({"patient_id": [1, 2], "age": [40, 60]}),
        "admissions": pd.DataFrame({"admission_id": [10, 11, 12], "patient_id": [1, 1, 2], "ward": ["A", "B", "A"]}),
        "labs": pd.DataFrame(
            {"lab_id": [100, 101, 102, 103], "admission_id": [10, 10, 11, 12], "value": [1.0, 1.5, 2.0, 3.0]}
        ),
    }
    schema = DatasetSchema.infer(real)
    assert schema.top_down() == ["patients", "admissions", "labs"]
    no_holdout = {name: frame.iloc[:0] for name, frame in real.items()}
    assert count_subject_copies(real, no_holdout, real, schema).count == 2
    swapped = dict(real, labs=real["labs"].assign(admission_id=[11, 11, 10, 12]))  # patient 1's labs change admission
    assert count_subject_copies(real, no_holdout, swapped, schema).count == 1  # only patient 2 is still a copy
