"""Issue #23: person names found by content (not by a `_name` suffix) and fabricated in the source's shape;
ISO datetimes of mixed precision stay datetimes and are written back in the source's format."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairsynth.backends.marginals import MarginalsGenerator
from fairsynth.metadata.schema import ColumnKind, TableSchema

FIRST = [
    "Oliver",
    "Amelia",
    "George",
    "Isla",
    "Harry",
    "Ava",
    "Noah",
    "Mia",
    "Jack",
    "Ivy",
    "Leo",
    "Grace",
    "Oscar",
    "Freya",
    "Arthur",
    "Lily",
    "Henry",
    "Emily",
]
LAST = [
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Patel",
    "Robinson",
    "Wright",
    "Evans",
    "Walker",
    "Khan",
]
NICKNAMES = [
    "jhezane",
    "penny",
    "kalin",
    "maris",
    "tova",
    "bren",
    "quill",
    "arlo",
    "senna",
    "juno",
    "fenn",
    "lark",
    "odile",
    "pim",
    "rue",
]
CLINICS = [
    "Riverside Clinic",
    "North Ward",
    "Main Lab",
    "Mobile Van",
    "Drive Thru Centre",
    "Oncology Day Hosp",
    "Emergency Dept",
    "Picu",
    "Nicu",
    "Care Center",
    "Inpatient Ward A",
    "Inpatient Ward B",
]
ISO_MINUTES = r"\d{4}-\d\d-\d\dT\d\d:\d\d"


def synthesise(table: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
    """A synthetic table as a run makes one (marginals baseline: fast, and it learns every column alone)."""
    generator = MarginalsGenerator()
    generator.fit(table, schema, seed=1)
    return pd.concat(generator.sample(len(table), seed=2), ignore_index=True)


@pytest.fixture
def covid_testing() -> pd.DataFrame:
    """A COVID-testing-like table: 12 clinics over 3,000 rows, full names, lowercase one-token names, UPPER names."""
    rng = np.random.default_rng(0)
    n = 3000
    return pd.DataFrame(
        {
            "clinic_name": rng.choice(CLINICS, n),
            "patient_name": [f"{a} {b}" for a, b in zip(rng.choice(FIRST, n), rng.choice(LAST, n))],
            "fake_first_name": rng.choice([w.lower() for w in FIRST] + NICKNAMES, n),
            "next_of_kin": [
                f"{a} {i}. {b}".upper()
                for a, i, b in zip(rng.choice(FIRST, n), rng.choice(list("ABCDEFGHJKLMNPRSTW"), n), rng.choice(LAST, n))
            ],
            "test_name": rng.choice(["SARS-CoV-2 PCR", "SARS-CoV-2 antigen"], n),
            "result": rng.choice(["positive", "negative", "invalid"], n),
            "age": rng.integers(1, 90, n),
        }
    )


def test_person_names_are_found_by_content_and_clinics_stay_categories(covid_testing):
    schema = TableSchema.infer(covid_testing)
    assert schema.column("clinic_name").kind == ColumnKind.CATEGORICAL  # a `_name` column of 12 clinics
    assert schema.column("test_name").kind == ColumnKind.CATEGORICAL
    assert schema.column("result").kind == ColumnKind.CATEGORICAL  # one-word levels: no name hint, no names
    assert {c.name: c.pii_type for c in schema.columns if c.kind == ColumnKind.PII} == {
        "patient_name": "name",
        "fake_first_name": "name",
        "next_of_kin": "name",  # no hint in its name: many, mostly distinct, recombining names say it
    }


def test_fabricated_names_keep_the_source_shape_and_diversity_and_no_real_name(covid_testing):
    synthetic = synthesise(covid_testing, TableSchema.infer(covid_testing))
    shapes = {
        "patient_name": r"[A-Z][a-z]+ [A-Z][a-z]+",
        "fake_first_name": r"[a-z]+",
        "next_of_kin": r"[A-Z]+ [A-Z]+ [A-Z]+",
    }
    for column, shape in shapes.items():
        real, fake = covid_testing[column], synthetic[column]
        assert fake.str.fullmatch(shape).all(), column
        assert real.nunique() / 2 <= fake.nunique() <= real.nunique() * 2, column
        assert not set(fake.str.casefold()) & set(real.str.casefold()), column
    assert set(synthetic["clinic_name"]) == set(CLINICS)  # a category, learned, not replaced


def test_few_names_over_many_rows_stay_few():
    rng = np.random.default_rng(5)
    names = rng.choice([w.lower() for w in FIRST] + NICKNAMES + ["ada", "bo", "cy", "di", "ed", "flo", "gus"], 15_000)
    table = pd.DataFrame({"first_name": names, "value": rng.normal(size=15_000)})
    synthetic = synthesise(table, TableSchema.infer(table))
    assert table["first_name"].nunique() == 40
    assert 20 <= synthetic["first_name"].nunique() <= 40  # not 400 combinations of a fixed list


@pytest.fixture
def lab_results() -> pd.DataFrame:
    """An SDTM-like LB table: LBDTC in ISO minutes, 0.4% of values date-only."""
    rng = np.random.default_rng(1)
    n = 3000
    stamps = pd.Timestamp("2013-01-01") + pd.to_timedelta(rng.integers(0, 600 * 1440, n), unit="min")
    dtc = pd.Series(stamps.strftime("%Y-%m-%dT%H:%M"))
    date_only = np.zeros(n, dtype=bool)
    date_only[rng.choice(n, 12, replace=False)] = True
    dtc[date_only] = stamps[date_only].strftime("%Y-%m-%d")
    return pd.DataFrame(
        {"LBTESTCD": rng.choice(["ALT", "AST", "HGB"], n), "LBDTC": dtc, "LBSTRESN": rng.normal(5, 1, n).round(2)}
    )


def assert_iso_minutes_and_fresh(synthetic: pd.Series, real: pd.Series) -> None:
    """Every value in the source's full format, and real values reproduced no more than chance would."""
    values = synthetic.dropna()
    assert values.str.fullmatch(ISO_MINUTES).all(), values[~values.str.fullmatch(ISO_MINUTES)].head().tolist()
    minutes_spanned = (pd.to_datetime(real, format="mixed").max() - pd.to_datetime(real, format="mixed").min()) / (
        pd.Timedelta(minutes=1)
    )
    chance = real.nunique() / minutes_spanned
    assert values.isin(set(real)).mean() <= 5 * chance  # a categorical would give 1.0


def test_iso_datetimes_with_some_date_only_values_are_datetimes_in_the_source_format(lab_results):
    schema = TableSchema.infer(lab_results)
    spec = schema.column("LBDTC")
    assert (spec.kind, spec.datetime_format, spec.missing_share) == (ColumnKind.DATETIME, "%Y-%m-%dT%H:%M", 0.0)
    assert not schema.warnings
    synthetic = synthesise(lab_results, schema)
    assert synthetic["LBDTC"].notna().all()
    assert_iso_minutes_and_fresh(synthetic["LBDTC"], lab_results["LBDTC"])


def test_a_forced_datetime_kind_is_written_in_the_format_of_the_values(lab_results):
    lab_results.loc[:59, "LBDTC"] = "NOT DONE"  # 2% that no format reads: inference keeps it categorical
    schema = TableSchema.infer(lab_results)
    assert schema.column("LBDTC").kind == ColumnKind.CATEGORICAL
    forced = schema.with_overrides(kinds={"LBDTC": "datetime"})  # as `--kind LBDTC=datetime` does
    assert forced.column("LBDTC").datetime_format is None
    synthetic = synthesise(lab_results, forced)
    assert_iso_minutes_and_fresh(synthetic["LBDTC"], lab_results.loc[60:, "LBDTC"])
    assert synthetic["LBDTC"].isna().mean() == pytest.approx(0.02, abs=0.01)  # unreadable values became gaps
