"""Rules within one table of a dataset: detected per table (keys left out), kept by relational, measured for every
dataset backend, gated, edited by their table-qualified text."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fairsynth.backends.dataset import create_dataset_generator
from fairsynth.metadata.dataset import DatasetSchema
from fairsynth.metadata.dataset_rules import infer_dataset_with_rules, listed_rules, with_dataset_rule_edits
from fairsynth.metadata.rules import RuleError, RuleStatus
from fairsynth.services.entry.cli import app
from fairsynth.services.run.config import SchemaOverrides
from fairsynth.services.run.dataset_crate import dataset_measures
from fairsynth.services.run.datasets import split_by_subject
from fairsynth.services.run.evaluation.relational import evaluate_dataset
from fairsynth.services.run.evaluation.rules import evaluate_dataset_rules
from fairsynth.services.run.rule_edits import with_user_dataset_rules

from helpers import pbc_tables, relational_rule_adherence

FAST = {"table_backend": "marginals"}  # columns learned one by one: nothing keeps a rule unless it is enforced
DISCHARGE = "admissions.discharge >= admissions.admit"
BILLED = "admissions.billed >= admissions.paid"


def stays(n_patients: int = 150, seed: int = 0) -> dict[str, pd.DataFrame]:
    """patients -> admissions; each admission discharged on or after its admission (the time column) and paid at
    most what was billed. The keys keep an order too (admission_id >= patient_id), which is not a rule of the data."""
    rng = np.random.default_rng(seed)
    patients = pd.DataFrame(
        {
            "patient_id": np.arange(1, n_patients + 1),
            "sex": rng.choice(["f", "m"], n_patients),
            "age": rng.integers(20, 90, n_patients),
        }
    )
    n_stays = rng.integers(1, 5, n_patients)
    owner = np.repeat(patients["patient_id"], n_stays).to_numpy()
    days = pd.Series(rng.integers(0, 300, len(owner))).groupby(owner).cumsum().to_numpy()
    admit = pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 2000, n_patients), unit="D")
    admitted = np.repeat(admit, n_stays) + pd.to_timedelta(days, unit="D")
    paid = rng.gamma(2.0, 1500.0, len(owner)).round(2)
    admissions = pd.DataFrame(
        {
            "admission_id": np.arange(1, len(owner) + 1),
            "patient_id": owner,
            "admit": admitted.strftime("%Y-%m-%d"),
            "discharge": (admitted + pd.to_timedelta(rng.integers(0, 30, len(owner)), unit="D")).strftime("%Y-%m-%d"),
            "ward": rng.choice(["A", "B", "C"], len(owner)),
            "paid": paid,
            "billed": (paid + rng.gamma(1.0, 800.0, len(owner))).round(2),
        }
    )
    return {"patients": patients, "admissions": admissions}


@pytest.fixture(scope="module")
def two_levels():
    tables = stays()
    return tables, infer_dataset_with_rules(tables)


def texts(schema: DatasetSchema) -> dict[str, RuleStatus]:
    return {rule.text: rule.status for rule in listed_rules(schema)}


def rules_off(schema: DatasetSchema) -> DatasetSchema:
    edited = schema.model_copy(deep=True)
    for entry in edited.tables:
        entry.table.rules = [rule.model_copy(update={"status": RuleStatus.OFF}) for rule in entry.table.rules]
    return edited


# -- detected, stored, edited -------------------------------------------------------------------------
def test_each_tables_own_rules_are_detected_on_its_non_key_columns(two_levels):
    tables, schema = two_levels
    admissions = schema.entry("admissions")
    assert admissions.sequence == "admit"
    assert {rule.text: rule.support for rule in admissions.table.rules} == {
        "discharge >= admit": len(tables["admissions"]),
        "billed >= paid": len(tables["admissions"]),
    }
    assert schema.entry("patients").table.rules == []
    assert (tables["admissions"]["admission_id"] >= tables["admissions"]["patient_id"]).all()  # keys: not a rule
    assert set(texts(schema)) == {DISCHARGE, BILLED}  # as the dataset lists them and a user writes them
    assert [rule.text for rule in schema.rules] == []  # no cross-table rule in this data


def test_table_rules_round_trip_through_json(two_levels):
    _, schema = two_levels
    again = DatasetSchema.from_json(schema.to_json())
    assert again == schema
    assert [rule.text for rule in again.entry("admissions").table.rules] == ["discharge >= admit", "billed >= paid"]


def test_a_column_made_a_key_leaves_its_tables_rules(two_levels):
    _, schema = two_levels
    edited = schema.with_edits(primary_keys={"admissions": "billed"})
    assert set(texts(edited)) == {DISCHARGE}


def test_a_rule_is_edited_by_its_table_qualified_text_through_the_one_dataset_path(two_levels):
    tables, schema = two_levels
    overrides = SchemaOverrides(rules_off=[DISCHARGE], rules=["admissions.ward > admissions.paid"])
    with pytest.raises(RuleError, match="needs columns of numbers or dates"):
        with_user_dataset_rules(schema, tables, overrides)
    edited = with_user_dataset_rules(schema, tables, SchemaOverrides(rules_off=[DISCHARGE]))
    assert texts(edited)[DISCHARGE] == RuleStatus.OFF and texts(edited)[BILLED] == RuleStatus.ENFORCED
    again = with_user_dataset_rules(edited, tables, SchemaOverrides(rules=[DISCHARGE]))
    assert texts(again)[DISCHARGE] == RuleStatus.ENFORCED
    added = next(rule for rule in again.entry("admissions").table.rules if rule.text == "discharge >= admit")
    assert added.added_by_user and added.support == len(tables["admissions"])


def test_every_problem_with_table_and_cross_table_rules_comes_in_one_error(two_levels):
    tables, schema = two_levels
    with pytest.raises(RuleError) as caught:
        with_dataset_rule_edits(
            schema,
            tables,
            add=["admissions.paid >= admissions.billed", "admissions.admission_id >= admissions.patient_id"],
            off=["admissions.ward -> admissions.paid", "patients.age >= admissions.paid"],
        )
    problems = caught.value.problems
    assert len(problems) == 4
    assert "The rule 'admissions.paid >= admissions.billed' is broken in 387 of 387 rows" in problems[1]
    assert "'admissions.admission_id >= admissions.patient_id' needs columns of numbers" in problems[2]  # a key
    assert problems[0].startswith("There is no rule 'admissions.ward -> admissions.paid' to turn off; the rules within")
    assert f"'admissions' are: {DISCHARGE}; {BILLED}." in problems[0]
    assert "There is no rule 'patients.age >= admissions.paid' to turn off" in problems[3]


def test_detected_again_at_another_minimum_support_keeps_the_users_edits(two_levels):
    tables, schema = two_levels
    off = with_user_dataset_rules(schema, tables, SchemaOverrides(rules_off=[BILLED]))
    again = with_user_dataset_rules(off, tables, SchemaOverrides(min_rule_support=60))
    assert texts(again) == {DISCHARGE: RuleStatus.ENFORCED, BILLED: RuleStatus.OFF}
    assert again.entry("admissions").table.min_rule_support == again.min_rule_support == 60
    added = with_user_dataset_rules(off, tables, SchemaOverrides(rules=[DISCHARGE]))
    rare = with_user_dataset_rules(added, tables, SchemaOverrides(min_rule_support=100_000))
    assert texts(rare) == {DISCHARGE: RuleStatus.ENFORCED}  # found in too few rows: only the user's rule is left


# -- kept by relational, measured for every backend, gated ---------------------------------------------
def test_relational_keeps_every_table_rule_even_on_the_rebuilt_time_column_and_not_when_off(two_levels):
    tables, schema = two_levels
    measured = relational_rule_adherence(tables, {"enforced": schema, "off": rules_off(schema)})
    for text in (DISCHARGE, BILLED):
        assert measured["enforced"][text].real_adherence == 1.0
        assert measured["enforced"][text].applicable > 150
        assert measured["enforced"][text].adherence == 1.0
        assert measured["off"][text].adherence < 0.9  # marginals alone break them
    assert measured["enforced"]["admissions.admit in order within patients"].adherence == 1.0


def test_relational_dp_keeps_them_through_tvae_dp(two_levels):
    tables, schema = two_levels
    generator = create_dataset_generator("relational.dp", epochs=3, epsilon=10)
    generator.fit(tables, schema, seed=0)
    synthetic = next(generator.sample(150, seed=1, batch_subjects=150))
    measured = {r.text: r for r in evaluate_dataset_rules(tables, synthetic, schema).rules}
    assert all(measured[text].applicable > 100 and measured[text].adherence == 1.0 for text in (DISCHARGE, BILLED))


def test_on_pbc_the_rules_within_each_table_are_detected_and_relational_keeps_them():
    """pbcseq's futime is constant within each patient and its day is the rebuilt time column: the rule between them
    still holds in every synthetic visit."""
    tables = pbc_tables()
    schema = infer_dataset_with_rules(tables)
    assert [rule.text for rule in schema.entry("pbcseq").table.rules] == ["futime >= day"]
    assert [rule.text for rule in schema.entry("pbc").table.rules] == [
        f"trt missing <=> {column} missing" for column in ("ascites", "hepato", "spiders", "alk.phos", "ast")
    ]
    generator = create_dataset_generator("relational", **FAST)
    generator.fit(tables, schema, seed=0)
    synthetic = next(generator.sample(200, seed=2, batch_subjects=200))
    measured = evaluate_dataset_rules(tables, synthetic, schema).rules
    assert len(measured) == 8 and all(rule.adherence == 1.0 for rule in measured)
    futime = synthetic["pbcseq"].groupby("id")["futime"].nunique()
    assert (futime == 1).all()  # still constant within each synthetic patient


def test_an_enforced_table_rule_broken_blocks_release_and_is_a_dome_measure(two_levels):
    tables, schema = two_levels
    train, holdout = split_by_subject(tables, schema, 0.25, seed=0)
    synthetic = {name: frame.copy() for name, frame in train.items()}
    for name, key in (("patients", "patient_id"), ("admissions", "admission_id")):
        synthetic[name][key] += 1_000_000
    synthetic["admissions"]["patient_id"] += 1_000_000
    admissions = synthetic["admissions"]
    swapped = admissions.index[: len(admissions) // 10]
    admissions.loc[swapped, ["paid", "billed"]] = admissions.loc[swapped, ["billed", "paid"]].to_numpy()
    result = evaluate_dataset(train, holdout, synthetic, schema)
    broken = next(r for r in result.rules.rules if r.text == BILLED)
    assert broken.real_adherence == 1.0 and broken.kept == broken.applicable - len(swapped)
    assert result.rules.worst_enforced == broken.adherence
    assert any(f"The enforced rule '{BILLED}'" in reason for reason in result.gate.reasons)
    assert result.gate.decision == "block"
    measures = {m["name"]: m["value"] for m in dataset_measures(result.model_dump(mode="json"))}
    assert measures[f"rule_adherence.{BILLED}"] == broken.adherence


@pytest.mark.slow
def test_hma_table_rule_adherence_is_measured_beside_the_real_rows(two_levels):
    tables, schema = two_levels
    generator = create_dataset_generator("sdv.hma")
    generator.fit(tables, schema, seed=0)
    synthetic = next(generator.sample(150, seed=1, batch_subjects=150))
    measured = {r.text: r for r in evaluate_dataset_rules(tables, synthetic, schema).rules}
    for text in (DISCHARGE, BILLED):
        rule = measured[text]
        assert rule.real_adherence == 1.0 and rule.applicable == len(synthetic["admissions"])
        assert 0 <= rule.adherence <= 1 and rule.kept == round(rule.adherence * rule.applicable)


# -- the command line ----------------------------------------------------------------------------
def test_cli_prints_the_table_rules_and_turns_one_off_by_its_text(tmp_path):
    for name, frame in stays().items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    files = [str(tmp_path / f"{name}.csv") for name in ("patients", "admissions")]
    args = ["generate", *files, "--set", "relational.table_backend=marginals", "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(app, [*args, "--no-rule", BILLED])
    assert result.exit_code == 0, result.output
    assert DISCHARGE in result.output and BILLED in result.output
    schema = DatasetSchema.from_json((tmp_path / "run" / "dataset.json").read_text())
    assert texts(schema) == {DISCHARGE: RuleStatus.ENFORCED, BILLED: RuleStatus.OFF}
    assert html.escape(DISCHARGE) in (tmp_path / "run" / "relational" / "report.html").read_text()
