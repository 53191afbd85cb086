"""Rule detection on small fabricated tables: each kind found with its support, and not found when one row breaks
it or too few rows have it; the text form read back; the user's edits checked against the data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairsynth.metadata.rule_checks import infer_with_rules, rule_counts, with_rule_edits
from fairsynth.metadata.rules import RULE_GRAMMAR, Rule, RuleError, RuleKind, RuleStatus, parse_rule
from fairsynth.metadata.schema import TableSchema
from fairsynth.services.run.lab import make_lab_table

ROWS = 200
SUPPORT = 50  # min_support of the small tables


def found(table: pd.DataFrame, min_support: int = SUPPORT) -> dict[str, Rule]:
    """The rules detection lists, by their text."""
    return {rule.text: rule for rule in infer_with_rules(table, min_support=min_support).rules}


def days(start: str, offsets) -> pd.Series:
    """Dates as a CSV writes them, start plus offsets (days)."""
    return (
        (pd.Timestamp(start) + pd.to_timedelta(np.asarray(offsets), unit="D"))
        .strftime("%Y-%m-%d")
        .to_series(index=range(len(offsets)))
    )


@pytest.fixture
def stays() -> pd.DataFrame:
    """Episodes: admission, discharge (some still in), length of stay, a death date missing when alive."""
    rng = np.random.default_rng(0)
    admitted = rng.integers(0, 400, ROWS)
    stay = rng.integers(0, 20, ROWS)  # below every age: 'age >= length_of_stay' holds
    still_in = np.arange(ROWS) % 10 == 0
    alive = rng.random(ROWS) < 0.7
    return pd.DataFrame(
        {
            "admitted": days("2024-01-01", admitted),
            "discharged": days("2024-01-01", admitted + stay).where(~still_in, None),
            "length_of_stay": pd.Series(stay).where(~still_in, None).astype("Int64"),
            "age": rng.integers(20, 90, ROWS),
            "status": np.where(alive, "alive", "dead"),
            "death_date": days("2025-06-01", rng.integers(0, 300, ROWS)).where(~alive, None),
        }
    )


def broken(table: pd.DataFrame, column: str, value) -> pd.DataFrame:
    """The table with one row's value changed (row 3)."""
    table = table.copy()
    table.loc[3, column] = value
    return table


# -- each kind: detected with its support, not when one row breaks it, not below min_support -----------------
def test_order_between_dates_is_detected_with_the_rows_having_both(stays):
    rule = found(stays)["discharged >= admitted"]
    assert (rule.kind, rule.status, rule.support) == (RuleKind.ORDER, RuleStatus.ENFORCED, ROWS - ROWS // 10)


def test_order_broken_in_one_row_is_not_detected(stays):
    assert "discharged >= admitted" not in found(broken(stays, "discharged", "2023-06-01"))


def test_no_rule_below_min_support(stays):
    assert found(stays, min_support=ROWS + 1) == {}
    assert "discharged >= admitted" not in found(stays, min_support=ROWS - ROWS // 10 + 1)
    assert "discharged >= admitted" in found(stays, min_support=ROWS - ROWS // 10)


def test_order_the_ranges_imply_is_listed_as_implied_not_enforced():
    table = pd.DataFrame(
        {"enrolled": days("2020-01-01", np.arange(ROWS) % 90), "followed_up": days("2022-01-01", np.arange(ROWS) % 60)}
    )
    rule = found(table)["followed_up >= enrolled"]
    assert rule.status == RuleStatus.IMPLIED and not rule.enforced


def test_date_and_datetime_are_compared_by_day():
    """A date is the whole day: a lab drawn at 09:40 on the day the visit is dated keeps 'visit_date >= drawn_at'."""
    rng = np.random.default_rng(1)
    day = rng.integers(0, 300, ROWS)
    drawn = (
        pd.Timestamp("2024-01-01")
        + pd.to_timedelta(day, unit="D")
        + pd.to_timedelta(rng.integers(60, 1400, ROWS), unit="min")
    )
    table = pd.DataFrame({"visit_date": days("2024-01-01", day), "drawn_at": drawn.strftime("%Y-%m-%d %H:%M")})
    schema = infer_with_rules(table, min_support=SUPPORT)
    orders = [rule for rule in schema.rules if rule.kind == RuleKind.ORDER]
    assert len(orders) == 1  # equal by day in every row: one rule, not a cycle
    for text in ("visit_date >= drawn_at", "drawn_at >= visit_date"):
        assert rule_counts(parse_rule(text, table.columns), table, schema) == (ROWS, ROWS)
    assert rule_counts(parse_rule("visit_date > drawn_at", table.columns), table, schema) == (ROWS, 0)


def test_difference_of_two_dates_in_days(stays):
    rule = found(stays)["length_of_stay == discharged - admitted"]
    assert (rule.kind, rule.support) == (RuleKind.DIFFERENCE, ROWS - ROWS // 10)
    assert "length_of_stay == discharged - admitted" not in found(broken(stays, "length_of_stay", 99))


def test_sum_of_two_numbers():
    rng = np.random.default_rng(2)
    first, second = rng.integers(0, 50, ROWS), rng.integers(0, 50, ROWS)
    table = pd.DataFrame({"doses_morning": first, "doses_evening": second, "doses_total": first + second})
    rule = found(table)["doses_total == doses_morning + doses_evening"]
    assert (rule.kind, rule.support) == (RuleKind.SUM, ROWS)
    assert not any(r.kind == RuleKind.SUM for r in found(broken(table, "doses_total", 500)).values())


@pytest.fixture
def tests_and_units() -> pd.DataFrame:
    """Lab rows: a test code and its name (one to one), its unit (two tests share one), a result."""
    rng = np.random.default_rng(3)
    code = rng.choice(["HGB", "GLUC", "K", "NA"], ROWS)
    names = {"HGB": "Hemoglobin", "GLUC": "Glucose", "K": "Potassium", "NA": "Sodium"}
    units = {"HGB": "g/dL", "GLUC": "mmol/L", "K": "mmol/L", "NA": "mmol/L"}
    return pd.DataFrame(
        {
            "code": code,
            "name": [names[c] for c in code],
            "unit": [units[c] for c in code],
            "result": rng.normal(5, 1, ROWS).round(1),
        }
    )


def test_determines_code_to_label_both_ways_and_test_to_unit(tests_and_units):
    rules = found(tests_and_units)
    assert {"code -> name", "name -> code", "code -> unit", "name -> unit"} <= rules.keys()
    assert "unit -> code" not in rules  # mmol/L is three tests
    assert rules["code -> unit"].support == ROWS


def test_determines_broken_in_one_row_is_not_detected(tests_and_units):
    table = broken(tests_and_units, "unit", "mg/dL" if tests_and_units.loc[3, "unit"] != "mg/dL" else "g/dL")
    rules = found(table)
    assert "code -> unit" not in rules and "code -> name" in rules


def test_missing_together(stays):
    rule = found(stays)["discharged missing <=> length_of_stay missing"]
    assert (rule.kind, rule.support) == (RuleKind.MISSING_TOGETHER, ROWS)
    assert "discharged missing <=> length_of_stay missing" not in found(broken(stays, "length_of_stay", pd.NA))


def test_missing_when_a_category_has_given_levels(stays):
    rule = found(stays)["death_date missing <=> status in {alive}"]
    assert (rule.kind, rule.levels, rule.support) == (RuleKind.MISSING_WHEN, ["alive"], ROWS)
    alive_row = int(np.flatnonzero(stays["status"] == "alive")[0])
    table = stays.copy()
    table.loc[alive_row, "death_date"] = "2025-07-01"
    assert not any(r.kind == RuleKind.MISSING_WHEN for r in found(table).values())


def test_missing_when_a_yes_no_flag_is_no(stays):
    """A Y/N column is boolean; its levels keep the table's spelling and the rule holds on the real rows."""
    table = stays.assign(died=np.where(stays["status"] == "dead", "Y", "N")).drop(columns="status")
    schema = infer_with_rules(table, min_support=SUPPORT)
    rule = next(r for r in schema.rules if r.kind == RuleKind.MISSING_WHEN)
    assert rule.text == "death_date missing <=> died in {N}"
    assert rule_counts(rule, table, schema) == (ROWS, ROWS)


@pytest.fixture
def printed() -> pd.DataFrame:
    """A result and its text form with one decimal; below 1.0 the text says '<1.0' and there is no number."""
    rng = np.random.default_rng(4)
    value = rng.gamma(3, 2, ROWS).round(1)
    censored = value < 1.0
    return pd.DataFrame(
        {
            "result_text": np.where(censored, "<1.0", [f"{v:.1f}" for v in value]),
            "result": np.where(censored, np.nan, value),
        }
    )


def test_text_form_of_a_number(printed):
    rules = found(printed)
    rule = rules["result_text == text(result)"]
    assert (rule.kind, rule.text_format, rule.support) == (
        RuleKind.TEXT_FORM,
        "%.1f",
        int(printed["result"].notna().sum()),
    )
    assert "result_text -> result" not in rules  # said once, as the text form


def test_text_form_broken_in_one_row_is_not_detected(printed):
    row = int(np.flatnonzero(printed["result"].notna())[0])
    table = printed.copy()
    table.loc[row, "result_text"] = "12.3" if table.loc[row, "result_text"] != "12.3" else "12.4"
    assert "result_text == text(result)" not in found(table)


# -- the text form read back; the schema's JSON ---------------------------------------------------------
EVERY_KIND = [
    Rule(kind=RuleKind.ORDER, columns=["a", "b"]),
    Rule(kind=RuleKind.ORDER, columns=["a", "b"], strict=True),
    Rule(kind=RuleKind.DIFFERENCE, columns=["c", "b", "a"]),
    Rule(kind=RuleKind.SUM, columns=["c", "a", "b"]),
    Rule(kind=RuleKind.DETERMINES, columns=["code", "label"]),
    Rule(kind=RuleKind.MISSING_TOGETHER, columns=["a", "b"]),
    Rule(kind=RuleKind.MISSING_WHEN, columns=["a", "label"], levels=["alive", "lost to follow-up"]),
    Rule(kind=RuleKind.TEXT_FORM, columns=["label", "c"], text_format="%.2f"),
]


@pytest.mark.parametrize("rule", EVERY_KIND, ids=lambda rule: rule.text)
def test_parse_rule_reads_back_every_kind(rule):
    read = parse_rule(rule.text, ["a", "b", "c", "code", "label"])
    assert read.same_rule(rule) and read.text == rule.text and read.added_by_user


def test_schema_json_round_trip_keeps_the_rules(stays):
    schema = infer_with_rules(stays, min_support=SUPPORT)
    schema = with_rule_edits(schema, stays, off=["discharged >= admitted"])
    assert schema.rules and TableSchema.from_json(schema.to_json()) == schema


# -- the user's edits -----------------------------------------------------------------------------------
def test_a_user_rule_the_data_breaks_is_refused_by_name_with_its_rows(stays):
    schema = infer_with_rules(stays, min_support=SUPPORT)
    with pytest.raises(RuleError) as error:
        with_rule_edits(schema, stays, add=["age >= length_of_stay", "discharged > admitted"])
    zero_stays = int(((stays["length_of_stay"] == 0) & stays["discharged"].notna()).sum())
    assert error.value.problems == (
        f"The rule 'discharged > admitted' is broken in {zero_stays:,} of {ROWS - ROWS // 10:,} rows that have its "
        "columns; fix the data or leave the rule out.",
    )


def test_a_user_rule_the_data_keeps_is_added_and_enforced(stays):
    schema = with_rule_edits(infer_with_rules(stays, min_support=SUPPORT), stays, add=["age >= length_of_stay"])
    rule = next(r for r in schema.rules if r.text == "age >= length_of_stay")
    assert rule.added_by_user and rule.enforced and rule.support == ROWS - ROWS // 10


def test_unknown_column_unreadable_rule_and_off_problems_are_reported_at_once(stays):
    schema = infer_with_rules(stays, min_support=SUPPORT)
    with pytest.raises(RuleError) as error:
        with_rule_edits(
            schema, stays, add=["weight >= age", "age is about length_of_stay"], off=["discharged >= length_of_stay"]
        )
    first, second, third = error.value.problems
    assert first.startswith("There is no rule 'discharged >= length_of_stay' to turn off; the table's rules are: ")
    assert "'weight'" in second and "which the table does not have" in second
    assert third == f"The rule 'age is about length_of_stay' cannot be read; {RULE_GRAMMAR}."


def test_off_turns_a_detected_rule_off(stays):
    schema = with_rule_edits(infer_with_rules(stays, min_support=SUPPORT), stays, off=["discharged >= admitted"])
    statuses = {rule.text: rule.status for rule in schema.rules}
    assert statuses["discharged >= admitted"] == RuleStatus.OFF
    assert statuses["length_of_stay == discharged - admitted"] == RuleStatus.ENFORCED


def test_a_rule_of_the_wrong_kinds_is_refused(stays):
    with pytest.raises(RuleError, match="needs columns of numbers or dates; 'age' is integer, 'status' is categorical"):
        with_rule_edits(infer_with_rules(stays, min_support=SUPPORT), stays, add=["status >= age"])


# -- real and fabricated tables -------------------------------------------------------------------------
LAB_RULES = {
    "LBTESTCD -> LBTEST",
    "LBTEST -> LBTESTCD",
    "LBTESTCD -> LBCAT",
    "LBTESTCD -> LBORRESU",
    "LBTESTCD -> LBSTNRLO",
    "LBTESTCD -> LBSTNRHI",
    "LBTEST -> LBCAT",
    "LBTEST -> LBORRESU",
    "LBTEST -> LBSTNRLO",
    "LBTEST -> LBSTNRHI",
    "LBORRESU -> LBCAT",  # true of this table: each unit belongs to one category
    "VISIT -> VISITNUM",
    "VISIT -> VISITDY",
    "LBSTNRHI >= LBSTNRLO",
    "LBORRES == text(LBSTRESN)",
    "DTHDT missing <=> DTHFL in {N}",
    "LBDTC >= LBDT",
    "DTHDT >= LBDT",  # nobody has a lab after death
    "DTHDT >= LBDTC",
}


def test_lab_table_rules_are_the_planted_ones_and_nothing_else():
    table = make_lab_table(n_subjects=120)
    rules = found(table)
    assert set(rules) == LAB_RULES
    assert rules["LBORRES == text(LBSTRESN)"].text_format == "plain"
    assert rules["LBTESTCD -> LBTEST"].support == len(table)


def test_demo_table_rules(demo):
    assert set(found(demo)) == {
        "discharge_date >= admission_date",
        "first_observation >= admission_date",
        "discharge_date >= first_observation",
        "length_of_stay == discharge_date - admission_date",
        "discharge_date missing <=> length_of_stay missing",
    }


def test_support2_rules_are_real_ones(support2):
    """Disease group fixes class and 2-month survival is at least 6-month; the comorbidity factor equals its count
    in every row, which makes no order rule (an order between equal columns says nothing)."""
    assert set(found(support2)) == {
        "fac_dzgroup -> fac_dzclass",
        "num_surv2m >= num_surv6m",
    }


def test_nafld1_has_no_rules(nafld1):
    """bmi is missing where weight or height is, not exactly with either: no rule."""
    assert found(nafld1) == {}
