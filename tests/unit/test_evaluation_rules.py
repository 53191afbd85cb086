"""Rule adherence (#15): every schema rule measured on the synthetic rows, in metrics.json, the gate and the reports."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from fairsynth.metadata.rule_checks import infer_with_rules
from fairsynth.metadata.rules import RuleStatus
from fairsynth.services.run.demo import load_demo_table
from fairsynth.services.run.evaluation import evaluate
from fairsynth.services.run.evaluation.gate import gate
from fairsynth.services.run.evaluation.metrics import ENFORCED_RULE_ADHERENCE, RULE_ADHERENCE
from fairsynth.services.run.evaluation.results import EvaluationResult, Measurements
from fairsynth.services.run.evaluation.rules import adherence_table, evaluate_rules
from fairsynth.services.run.report import render_comparison, render_report

ORDER = "discharge_date >= admission_date"
BROKEN_ROWS = 12


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    return load_demo_table()


@pytest.fixture(scope="module")
def schema(real):
    return infer_with_rules(real)


def leave_before_arrival(table: pd.DataFrame, rows: int = BROKEN_ROWS) -> pd.DataFrame:
    """A copy where the first `rows` stays with a discharge after admission get the two dates swapped."""
    broken = table.copy()
    dates = broken[["admission_date", "discharge_date"]].apply(pd.to_datetime, format="%d/%m/%Y")
    chosen = dates.index[(dates["discharge_date"] > dates["admission_date"]).to_numpy()][:rows]
    broken.loc[chosen, ["admission_date", "discharge_date"]] = broken.loc[
        chosen, ["discharge_date", "admission_date"]
    ].to_numpy()
    return broken


def with_status(schema, text: str, status: RuleStatus):
    """The schema with one rule's status changed."""
    rules = [rule.model_copy(update={"status": status}) if rule.text == text else rule for rule in schema.rules]
    return schema.model_copy(update={"rules": rules})


DISTANCES = {"quantiles": {}, "zero_share": 0.0, "histogram": []}


def measured(rules) -> Measurements:
    """A result with nothing for the gate to find but the given rule measurements."""
    dcr = {
        "share_closer_to_train": 0.5,
        "histogram_edges": [],
        **dict.fromkeys(("synthetic_to_train", "synthetic_to_holdout", "holdout_to_train"), DISTANCES),
    }
    return Measurements.model_validate(
        {
            "rows": {"train": 100, "holdout": 100, "synthetic": 100},
            "quality": {"quality": 0.9},
            "privacy": {
                "exact_copies": {"count": 0, "rate": 0.0},
                "dcr": dcr,
                "membership_inference": {"auc": 0.5, "members": 100, "non_members": 100},
            },
            "rules": rules.model_dump(),
        }
    )


def rule_reasons(result: Measurements) -> list[str]:
    return [reason for reason in gate(result).reasons if "rule" in reason]


def test_rows_breaking_an_enforced_rule_are_counted_and_block_release(real, schema):
    rules = evaluate_rules(real, leave_before_arrival(real), schema)
    order = next(rule for rule in rules.rules if rule.text == ORDER)
    both_dates = int((real["admission_date"].notna() & real["discharge_date"].notna()).sum())
    assert (order.status, order.applicable, order.kept) == ("enforced", both_dates, both_dates - BROKEN_ROWS)
    assert order.adherence == pytest.approx(1 - BROKEN_ROWS / both_dates) and rules.rows == len(real)
    assert rules.worst_enforced == rules.worst < 1.0
    decision = gate(measured(rules))
    assert decision.decision == "block"
    assert any(f"'{ORDER}'" in reason and f"{order.adherence:.2%}" in reason for reason in decision.reasons)


def test_rules_the_synthetic_rows_keep_score_one_and_leave_the_gate_alone(real, schema):
    rules = evaluate_rules(real, real.sample(frac=1.0, random_state=1), schema)
    assert len(rules.rules) == len(schema.rules) >= 5
    assert {rule.adherence for rule in rules.rules} == {1.0} and rules.worst_enforced == rules.worst == 1.0
    assert rule_reasons(measured(rules)) == [] and gate(measured(rules)).decision == "pass"


def test_a_rule_turned_off_is_measured_and_only_flags(real, schema):
    off = with_status(schema, ORDER, RuleStatus.OFF)
    rules = evaluate_rules(real, leave_before_arrival(real, rows=200), off)
    order = next(rule for rule in rules.rules if rule.text == ORDER)
    assert order.status == "off" and order.adherence < 0.95
    assert rules.worst < order.adherence or rules.worst == order.adherence
    reasons = rule_reasons(measured(rules))
    assert any(f"'{ORDER}'" in r and "not enforced" in r for r in reasons)
    only_order = rules.model_copy(update={"rules": [order], "worst_enforced": None, "worst": order.adherence})
    assert gate(measured(only_order)).decision == "flag"


def test_a_rule_whose_column_the_synthetic_table_lacks_is_noted_not_scored(real, schema):
    rules = evaluate_rules(real, real.drop(columns=["length_of_stay"]), schema)
    lacking = [rule for rule in rules.rules if "length_of_stay" in rule.columns]
    assert lacking and all(r.adherence is None and "length_of_stay" in (r.note or "") for r in lacking)


@pytest.fixture(scope="module")
def evaluated(real, schema) -> EvaluationResult:
    """The whole suite on a small sample of demo rows, with rows leaving before they arrive."""
    table = real.sample(n=600, random_state=0).reset_index(drop=True)
    train, holdout = table.iloc[:300], table.iloc[300:].reset_index(drop=True)
    return evaluate(train, holdout, leave_before_arrival(holdout, rows=5), schema, anonymeter=False)


def test_the_suite_measures_rules_and_metrics_json_round_trips(evaluated):
    assert evaluated.rules.rows == 300 and len(evaluated.rules.rules) >= 5
    assert evaluated.value(ENFORCED_RULE_ADHERENCE) < 1.0 and evaluated.value(RULE_ADHERENCE) < 1.0
    assert evaluated.gate.decision == "block"
    again = EvaluationResult.model_validate_json(evaluated.to_json())
    assert again == evaluated and again.rules.rules[0].text == evaluated.rules.rules[0].text


def test_the_report_lists_each_rule_and_the_worst_adherence(real, schema, evaluated):
    train = real.sample(n=600, random_state=0).reset_index(drop=True).iloc[:300]
    html = render_report(train, train, schema, evaluated)
    section = html.split('id="rules"')[1].split("</table>")[0]
    for rule in evaluated.rules.rules:
        assert rule.text.replace(">", "&gt;").replace("<", "&lt;") in section
    assert re.search(r'<tr class="bad"><td>discharge_date &gt;= admission_date</td>', section)
    assert (
        ENFORCED_RULE_ADHERENCE.label in html and ENFORCED_RULE_ADHERENCE.text(evaluated.rules.worst_enforced) in html
    )
    columns = html.split('id="columns"')[1].split("</table>")[0]
    assert "discharge_date &gt;= admission_date (" in columns  # the column table notes a column's rules


def test_the_comparison_has_worst_adherence_and_a_rule_by_backend_table(evaluated):
    kept = evaluated.model_copy(
        update={"rules": evaluated.rules.model_copy(update={"worst_enforced": 1.0, "worst": 1.0})}
    )
    html = render_comparison({"broken": evaluated, "kept": kept})
    header = html.split('id="comparison"')[1].split("</tr>")[0]
    assert ENFORCED_RULE_ADHERENCE.label in header and RULE_ADHERENCE.label in header
    table = adherence_table({"broken": evaluated, "kept": kept})
    assert list(table.columns) == ["rule", "status", "support", "broken", "kept"]
    assert table.set_index("rule").loc[ORDER, "broken"] < 1.0
    assert 'id="rules"' in html.split("<h2>Rules</h2>")[1]
