"""Cross-table rules: declared on the DatasetSchema, detected, edited, kept by relational, measured and gated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fairsynth.backends.dataset import create_dataset_generator
from fairsynth.metadata.dataset import DatasetSchema
from fairsynth.metadata.dataset_rules import (
    cross_rule_counts,
    infer_dataset_with_rules,
    parse_cross_rule,
    with_cross_rule_edits,
)
from fairsynth.metadata.rules import RuleError, RuleStatus
from fairsynth.metadata.schema import SchemaError
from fairsynth.services.entry.cli import app
from fairsynth.services.run.config import SchemaOverrides
from fairsynth.services.run.dataset_crate import dataset_measures
from fairsynth.services.run.datasets import split_by_subject
from fairsynth.services.run.evaluation.relational import evaluate_dataset
from fairsynth.services.run.evaluation.rules import evaluate_dataset_rules
from fairsynth.services.run.rule_edits import with_user_dataset_rules

from helpers import pbc_tables, relational_rule_adherence

FAST = {"table_backend": "marginals"}  # columns learned one by one: nothing keeps a rule unless it is enforced
KEY_OFFSET = 1_000_000


def stays(n_patients: int = 150, seed: int = 0) -> dict[str, pd.DataFrame]:
    """patients (admitted on a date) -> admissions (dated on or after the patient's admission, in time order) ->
    labs (dated on or after their admission's date): patients.admit <= admissions.date <= labs.date."""
    rng = np.random.default_rng(seed)
    admit = pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 2000, n_patients), unit="D")
    patients = pd.DataFrame(
        {
            "patient_id": np.arange(1, n_patients + 1),
            "sex": rng.choice(["f", "m"], n_patients),
            "admit": admit.strftime("%Y-%m-%d"),
            "age": rng.integers(20, 90, n_patients),
        }
    )
    n_stays = rng.integers(1, 5, n_patients)
    owner = np.repeat(patients["patient_id"], n_stays).to_numpy()
    days = pd.Series(rng.integers(0, 300, len(owner))).groupby(owner).cumsum().to_numpy()
    dates = np.repeat(admit, n_stays) + pd.to_timedelta(days, unit="D")
    admissions = pd.DataFrame(
        {
            "admission_id": np.arange(5000, 5000 + len(owner)),
            "patient_id": owner,
            "date": dates.strftime("%Y-%m-%d"),
            "ward": rng.choice(["A", "B", "C"], len(owner)),
        }
    )
    n_labs = rng.integers(0, 4, len(admissions))
    lab_owner = np.repeat(admissions["admission_id"], n_labs).to_numpy()
    after = pd.Series(rng.integers(0, 5, len(lab_owner))).groupby(lab_owner).cumsum().to_numpy()
    labs = pd.DataFrame(
        {
            "lab_id": [f"L{i:05d}" for i in range(len(lab_owner))],
            "admission_id": lab_owner,
            "date": (np.repeat(dates, n_labs) + pd.to_timedelta(after, unit="D")).strftime("%Y-%m-%d"),
            "value": rng.normal(5, 1, len(lab_owner)).round(2),
        }
    )
    return {"patients": patients, "admissions": admissions, "labs": labs}


@pytest.fixture(scope="module")
def three_levels():
    tables = stays()
    return tables, infer_dataset_with_rules(tables)


def rules_off(schema: DatasetSchema) -> DatasetSchema:
    return schema.model_copy(update={"rules": [r.model_copy(update={"status": RuleStatus.OFF}) for r in schema.rules]})


# -- declared and detected --------------------------------------------------------------------------
def test_the_three_level_chain_is_detected_between_each_child_and_its_parent(three_levels):
    tables, schema = three_levels
    texts = {rule.text: rule for rule in schema.rules}
    assert set(texts) == {"admissions.date >= patients.admit", "labs.date >= admissions.date"}
    assert all(rule.status == RuleStatus.ENFORCED for rule in schema.rules)
    assert texts["admissions.date >= patients.admit"].support == len(tables["admissions"])
    assert texts["labs.date >= admissions.date"].support == len(tables["labs"])


def test_a_rule_broken_in_one_child_row_is_not_detected():
    tables = stays()
    first = tables["admissions"]["patient_id"] == 1
    tables["admissions"].loc[first.idxmax(), "date"] = "2000-01-01"  # before the patient's admission
    texts = [rule.text for rule in infer_dataset_with_rules(tables).rules]
    assert "admissions.date >= patients.admit" not in texts and "labs.date >= admissions.date" in texts


def test_on_pbc_the_visit_day_is_not_bounded_by_the_patients_follow_up_time():
    """pbcseq's visits run past pbc's follow-up `time` (pbcseq was followed up longer): 138 of 1,945 visits come
    after it, so that rule is not detected and a user adding it is told how many rows break it."""
    tables = pbc_tables()
    schema = infer_dataset_with_rules(tables)
    assert "pbcseq.day <= pbc.time" not in [rule.text for rule in schema.rules]
    assert [(r.text, r.support) for r in schema.rules] == [("pbcseq.status >= pbc.status", 1945)]
    with pytest.raises(RuleError, match="'pbcseq.day <= pbc.time' is broken in 138 of 1,945 rows"):
        with_cross_rule_edits(schema, tables, add=["pbcseq.day <= pbc.time"])


def test_rules_round_trip_through_json_and_their_text(three_levels):
    _, schema = three_levels
    again = DatasetSchema.from_json(schema.to_json())
    assert again == schema and again.rules[0].child == "admissions"
    for rule in schema.rules:
        assert parse_cross_rule(rule.text, schema).same_rule(rule)
    written_the_other_way = parse_cross_rule("patients.admit <= admissions.date", schema)
    assert written_the_other_way.same_rule(schema.rules[0])


def test_a_rule_between_tables_that_are_not_parent_and_child_is_refused_by_the_schema(three_levels):
    _, schema = three_levels
    wrong = schema.rules[0].model_copy(update={"child": "labs"})
    with pytest.raises(SchemaError, match="not its parent"):
        schema.model_copy(update={"rules": [wrong]}).checked()
    unlinked = schema.with_edits(relationships=schema.relationships[:1])
    assert [rule.child for rule in unlinked.rules] == ["admissions"]


def test_every_bad_rule_is_one_sentence_in_one_error(three_levels):
    tables, schema = three_levels
    with pytest.raises(RuleError) as caught:
        with_cross_rule_edits(
            schema,
            tables,
            add=[
                "labs.date is late",
                "labs.date >= patients.admit",
                "labs.value >= admissions.date",
                "admissions.ward >= patients.sex",
                "labs.nothing >= admissions.date",
                "labs.date <= admissions.date",
            ],
            off=["labs.value >= admissions.date"],
        )
    problems = caught.value.problems
    assert len(problems) == 7
    assert "cannot be read" in problems[1]
    assert "'patients' and 'labs', which are not a child table and its parent" in problems[2]
    assert "not both numbers or both dates" in problems[3] and "not both numbers or both dates" in problems[4]
    assert "'labs.nothing'" in problems[5]
    assert "'labs.date <= admissions.date' is broken in" in problems[6]


def test_no_rule_turns_a_detected_rule_off_and_rule_adds_one_the_data_keeps(three_levels):
    tables, schema = three_levels
    edited = with_cross_rule_edits(schema, tables, off=["labs.date >= admissions.date"])
    assert [rule.status for rule in edited.rules] == [RuleStatus.ENFORCED, RuleStatus.OFF]
    overrides = SchemaOverrides(min_rule_support=10_000, rules=["labs.date >= admissions.date"])
    added = with_user_dataset_rules(schema, tables, overrides)
    assert [(r.text, r.support, r.added_by_user) for r in added.rules] == [
        ("labs.date >= admissions.date", len(tables["labs"]), True)
    ]
    assert added.min_rule_support == 10_000 and added.rules[0].status == RuleStatus.ENFORCED


# -- kept by relational, measured for every backend ------------------------------------------------
def test_relational_keeps_every_enforced_rule_in_every_child_row_and_not_when_they_are_off(three_levels):
    tables, schema = three_levels
    measured = relational_rule_adherence(tables, {"enforced": schema, "off": rules_off(schema)})
    for rule in schema.rules:
        assert measured["enforced"][rule.text].real_adherence == 1.0
        assert measured["enforced"][rule.text].adherence == 1.0
        assert measured["enforced"][rule.text].applicable > 100
        assert measured["off"][rule.text].adherence < 0.9  # marginals alone put children before their parents
    orders = [text for text in measured["enforced"] if "in order within" in text]
    assert orders == ["admissions.date in order within patients", "labs.date in order within admissions"]
    assert all(measured["enforced"][text].adherence == 1.0 for text in orders)


def test_a_bound_from_above_is_kept_too():
    tables = pbc_tables()
    tables["pbc"]["horizon"] = tables["pbc"]["id"].map(tables["pbcseq"].groupby("id")["day"].max()).fillna(0) + 30
    schema = with_cross_rule_edits(infer_dataset_with_rules(tables), tables, add=["pbcseq.day <= pbc.horizon"])
    rule = next(rule for rule in schema.rules if rule.text == "pbcseq.day <= pbc.horizon")
    generator = create_dataset_generator("relational", **FAST)
    generator.fit(tables, schema, seed=0)
    synthetic = next(generator.sample(200, seed=2, batch_subjects=200))
    applicable, kept = cross_rule_counts(rule, synthetic, schema)
    assert applicable == len(synthetic["pbcseq"]) and kept == applicable
    status = next(rule for rule in schema.rules if rule.text == "pbcseq.status >= pbc.status")
    assert cross_rule_counts(status, synthetic, schema)[1] == len(synthetic["pbcseq"])
    assert set(synthetic["pbcseq"]["status"]) <= {0, 1, 2}  # rebuilt from the parent, yet a status code
    off = rules_off(schema)
    generator.fit(tables, off, seed=0)
    unkept = next(generator.sample(200, seed=2, batch_subjects=200))
    assert cross_rule_counts(rule, unkept, off)[1] < 0.95 * len(unkept["pbcseq"])


def test_an_enforced_rule_broken_blocks_release_and_a_rule_turned_off_flags_it(three_levels):
    tables, schema = three_levels
    train, holdout = split_by_subject(tables, schema, 0.25, seed=0)
    synthetic = {name: frame.copy() for name, frame in train.items()}
    for name, key in (("patients", "patient_id"), ("admissions", "admission_id")):
        synthetic[name][key] += KEY_OFFSET
    synthetic["admissions"]["patient_id"] += KEY_OFFSET
    synthetic["labs"]["admission_id"] += KEY_OFFSET
    admissions = synthetic["admissions"]
    moved = admissions["patient_id"] <= admissions["patient_id"].quantile(0.1)  # a tenth of the patients' stays
    earlier = pd.to_datetime(admissions.loc[moved, "date"]) - pd.DateOffset(years=20)  # before their admission
    admissions.loc[moved, "date"] = earlier.dt.strftime("%Y-%m-%d")
    result = evaluate_dataset(train, holdout, synthetic, schema)
    broken = next(r for r in result.rules.rules if r.text == "admissions.date >= patients.admit")
    assert broken.applicable == len(admissions) and broken.kept == broken.applicable - moved.sum()
    assert broken.real_adherence == 1.0 and broken.adherence < 0.95
    assert result.rules.worst_enforced == broken.adherence
    assert any("The enforced rule 'admissions.date >= patients.admit'" in reason for reason in result.gate.reasons)
    measures = {m["name"]: m["value"] for m in dataset_measures(result.model_dump(mode="json"))}
    assert measures["rule_adherence.admissions.date >= patients.admit"] == broken.adherence
    relaxed = evaluate_dataset(train, holdout, synthetic, rules_off(schema))
    assert not any("The enforced rule" in reason for reason in relaxed.gate.reasons)
    assert any("(off, not enforced) 'admissions.date >= patients.admit'" in r for r in relaxed.gate.reasons)


def test_hma_rule_adherence_is_measured_beside_the_real_rows():
    tables = {name: frame for name, frame in stays().items() if name != "labs"}  # sdv.hma: one level of children
    schema = infer_dataset_with_rules(tables)
    generator = create_dataset_generator("sdv.hma")
    generator.fit(tables, schema, seed=0)
    synthetic = next(generator.sample(150, seed=1, batch_subjects=150))
    measured = {r.text: r for r in evaluate_dataset_rules(tables, synthetic, schema).rules}
    assert list(measured) == ["admissions.date >= patients.admit", "admissions.date in order within patients"]
    for rule in measured.values():
        assert rule.real_adherence == 1.0 and rule.applicable > 0 and 0 <= rule.adherence <= 1
    assert measured["admissions.date >= patients.admit"].applicable == len(synthetic["admissions"])


# -- the command line ----------------------------------------------------------------------------
def test_cli_refuses_a_cross_table_rule_the_data_breaks_before_any_work(tmp_path):
    for name, frame in stays().items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    files = [str(tmp_path / f"{name}.csv") for name in ("patients", "admissions", "labs")]
    result = CliRunner().invoke(
        app, ["generate", *files, "--rule", "labs.date <= admissions.date", "--out", str(tmp_path / "run")]
    )
    assert result.exit_code != 0
    assert "'labs.date <= admissions.date' is broken in" in result.output
    assert not (tmp_path / "run").exists()


def test_cli_prints_the_detected_rules_and_their_adherence_and_turns_one_off(tmp_path):
    for name, frame in stays().items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    files = [str(tmp_path / f"{name}.csv") for name in ("patients", "admissions", "labs")]
    args = ["generate", *files, "--set", "relational.table_backend=marginals", "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(app, [*args, "--no-rule", "labs.date >= admissions.date"])
    assert result.exit_code == 0, result.output
    assert "cross-table rules" in result.output and "admissions.date >= patients.admit" in result.output
    schema = DatasetSchema.from_json((tmp_path / "run" / "dataset.json").read_text())
    assert [rule.status for rule in schema.rules] == [RuleStatus.ENFORCED, RuleStatus.OFF]
    assert "Cross-table rules" in (tmp_path / "run" / "relational" / "report.html").read_text()
