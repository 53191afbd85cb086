"""The shared codec keeps every enforced rule, for every backend family, on a table that has every rule kind."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairsynth.backends.preprocessing import TableCodec
from fairsynth.backends.registry import backend_info, create
from fairsynth.metadata.rule_checks import infer_with_rules, rule_counts
from fairsynth.metadata.rules import RuleKind, RuleStatus

TESTS = {"GLU": ("Glucose", "mmol/L", 3.9, 7.8, "%.1f"), "ALT": ("Alanine aminotransferase", "U/L", 7.0, 56.0, "%.0f")}
TESTS |= {"HGB": ("Haemoglobin", "g/L", 120.0, 170.0, "%.0f"), "NA": ("Sodium", "mmol/L", 135.0, 145.0, "%.0f")}


def clinical_table(n_rows: int = 1_200, seed: int = 0) -> pd.DataFrame:
    """Rows with every rule kind planted: order, difference, determines (label, unit, numbers), gaps together,
    gaps when a category has a level, and a text form."""
    rng = np.random.default_rng(seed)
    codes = rng.choice(list(TESTS), size=n_rows)
    admitted = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n_rows), unit="D")
    stay = rng.gamma(2.0, 3.0, n_rows).round().astype(int)
    discharged = admitted + pd.to_timedelta(stay, unit="D")
    value = np.array([rng.normal((TESTS[c][2] + TESTS[c][3]) / 2, (TESTS[c][3] - TESTS[c][2]) / 3) for c in codes])
    value = np.array([round(v, 1) if TESTS[c][4] == "%.1f" else round(v) for v, c in zip(value, codes)])
    alive = rng.random(n_rows) < 0.8
    no_result = rng.random(n_rows) < 0.1
    result = pd.Series(value).where(~no_result)
    return pd.DataFrame(
        {
            "test_code": codes,
            "test_name": [TESTS[c][0] for c in codes],
            "unit": [TESTS[c][1] for c in codes],
            "range_low": [TESTS[c][2] for c in codes],
            "range_high": [TESTS[c][3] for c in codes],
            "result": result,
            "result_text": [None if np.isnan(v) else TESTS[c][4] % v for v, c in zip(result, codes)],
            "admission_date": admitted.strftime("%Y-%m-%d"),
            "discharge_date": discharged.strftime("%Y-%m-%d"),
            "length_of_stay": stay,
            "status": np.where(alive, "alive", "dead"),
            "death_flag": np.where(alive, "N", "Y"),  # a yes/no column: its levels are compared case-blind
            "death_date": np.where(alive, None, (discharged + pd.Timedelta(days=30)).strftime("%Y-%m-%d")),
        }
    )


@pytest.fixture(scope="module")
def table_and_schema():
    table = clinical_table()
    return table, infer_with_rules(table)


def test_the_planted_rules_are_found(table_and_schema):
    _, schema = table_and_schema
    texts = {rule.text for rule in schema.rules if rule.enforced}
    assert {
        "discharge_date >= admission_date",
        "length_of_stay == discharge_date - admission_date",
        "test_code -> test_name",
        "test_code -> unit",
        "test_code -> range_low",
        "range_high >= range_low",
        "death_date missing <=> status in {alive}",
        "death_date missing <=> death_flag in {N}",
        "death_date >= discharge_date",
    } <= texts, texts
    assert any(r.kind == RuleKind.TEXT_FORM and r.columns == ["result_text", "result"] for r in schema.rules)


YDATA = backend_info("ydata.fast")
FEW_EPOCHS = {"tvae": {"epochs": 3}, "tvae.dp": {"epochs": 2}, "sdv.tvae": {"epochs": 2}}


@pytest.mark.parametrize(
    "backend",
    [
        "marginals",
        "tvae",
        "tvae.dp",
        "sdv.gaussian_copula",
        pytest.param("sdv.tvae", marks=pytest.mark.slow),
        pytest.param(
            "ydata.fast",
            marks=[pytest.mark.slow, pytest.mark.skipif(not YDATA.available, reason=YDATA.reason)],
        ),
    ],
)
def test_every_backend_family_keeps_every_enforced_rule(table_and_schema, backend):
    table, schema = table_and_schema
    generator = create(backend, **FEW_EPOCHS.get(backend, {}))
    generator.fit(table, schema, seed=1)
    synthetic = pd.concat(list(generator.sample(2_000, seed=2)), ignore_index=True)
    broken = {}
    for rule in schema.rules:
        applicable, kept = rule_counts(rule, synthetic, schema, reference=table)
        if rule.enforced and kept < applicable:
            broken[rule.text] = f"{kept} of {applicable}"
        if rule.enforced:
            assert applicable > 0, rule.text
    assert broken == {}


def test_without_enforcement_the_same_backend_breaks_the_rules(table_and_schema):
    table, schema = table_and_schema
    off = schema.model_copy(update={"rules": [r.model_copy(update={"status": RuleStatus.OFF}) for r in schema.rules]})
    generator = create("marginals")
    generator.fit(table, off, seed=1)
    synthetic = pd.concat(list(generator.sample(2_000, seed=2)), ignore_index=True)
    order = next(r for r in schema.rules if r.text == "discharge_date >= admission_date")
    applicable, kept = rule_counts(order, synthetic, schema, reference=table)
    assert kept < 0.8 * applicable


def test_derived_columns_are_not_modelled_and_the_codec_round_trips(table_and_schema):
    table, schema = table_and_schema
    codec = TableCodec.fit(table, schema)
    modelled = set(codec.model_columns())
    assert {"test_name", "unit", "range_low", "length_of_stay"}.isdisjoint(modelled)
    assert "discharge_date" in modelled  # learned as an offset from admission_date
    encoded = codec.encode(table)
    assert (encoded["discharge_date"] >= 0).all()
    assert TableCodec.from_json(codec.to_json()) == codec


def test_a_lookup_keeps_no_level_under_the_rare_threshold():
    table = clinical_table()
    table.loc[:3, "test_code"] = "RARE1"  # 4 rows: under the 10-row threshold
    table.loc[:3, "test_name"] = "Rare assay"
    schema = infer_with_rules(table)
    codec = TableCodec.fit(table, schema)
    assert "RARE1" not in codec.to_json() and "Rare assay" not in codec.to_json()


def follow_up_table(n_rows: int = 1_500, seed: int = 3) -> pd.DataFrame:
    """A cohort where the cause of death is given only for the dead (with some causes too rare to keep), the
    death date is the last contact for the dead, and follow-up time is last contact minus sample date."""
    rng = np.random.default_rng(seed)
    sampled = pd.Timestamp("1995-01-01") + pd.to_timedelta(rng.integers(0, 3000, n_rows), unit="D")
    follow_up = rng.integers(30, 4000, n_rows)
    last = sampled + pd.to_timedelta(follow_up, unit="D")
    dead = rng.random(n_rows) < 0.3
    causes = rng.choice(
        ["Circulatory", "Neoplasms", "Respiratory", "Rare A", "Rare B"], n_rows, p=[0.5, 0.4, 0.094, 0.003, 0.003]
    )
    return pd.DataFrame(
        {
            "sample_date": sampled.strftime("%d/%m/%Y"),
            "last_contact": last.strftime("%d/%m/%Y"),
            "death_date": pd.Series(last.strftime("%d/%m/%Y")).where(dead),
            "futime": follow_up,
            "death": dead.astype(int),
            "chapter": pd.Series(causes).where(dead),
        }
    )


def test_a_cause_given_only_for_the_dead_and_a_follow_up_computed_one_way_are_kept():
    table = follow_up_table()
    schema = infer_with_rules(table)
    texts = {rule.text for rule in schema.rules if rule.enforced}
    assert "futime == last_contact - sample_date" in texts
    assert "futime == death_date - sample_date" not in texts  # one arithmetic rule per computed column
    assert {"chapter -> death", "chapter missing <=> death in {0}"} <= texts
    generator = create("marginals")
    generator.fit(table, schema, seed=1)
    synthetic = pd.concat(list(generator.sample(3_000, seed=2)), ignore_index=True)
    assert (synthetic["chapter"] == "other").any()  # the rare causes come back as one non-real level ...
    for rule in schema.rules:  # ... which still fixes death = 1, like the rare causes it stands for
        applicable, kept = rule_counts(rule, synthetic, schema, reference=table)
        assert kept == applicable > 0, rule.text
    assert synthetic["chapter"].isna().mean() == pytest.approx(table["chapter"].isna().mean(), abs=0.05)


def test_a_raised_value_stays_on_the_column_grid_and_in_its_range():
    from fairsynth.backends.preprocessing import NumericCodec
    from fairsynth.metadata.schema import ColumnKind

    codec = NumericCodec(name="surv2m", kind=ColumnKind.FLOAT, minimum=0.0, maximum=0.9, decimals=6)
    raised = codec.up_to_grid(np.array([0.8999999999, 0.9, 0.12345649]))
    assert raised.tolist() == [0.9, 0.9, 0.123457]  # 1e-6 * 900000 would be 0.9000000000000001, above the maximum


def test_a_maximum_with_more_decimals_than_kept_is_never_exceeded():
    from fairsynth.backends.preprocessing import NumericCodec
    from fairsynth.metadata.schema import ColumnKind

    codec = NumericCodec(name="surv2m", kind=ColumnKind.FLOAT, minimum=0.0, maximum=0.969970703, decimals=6)
    near_top = np.array([0.969970703, 0.9699706, 0.9699705])
    assert (codec.on_grid(near_top) <= codec.maximum).all()  # rounding to 6 decimals would give 0.969971
    assert (codec.up_to_grid(near_top) <= codec.maximum).all()
    assert (codec.up_to_grid(near_top) >= near_top).all()
