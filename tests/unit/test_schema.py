"""Schema inference on real tables, user overrides, JSON round trip and the data dictionary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairsynth.metadata.schema import ColumnKind, SchemaError, TableSchema

K = ColumnKind


def kinds(schema: TableSchema) -> dict[str, ColumnKind]:
    return {c.name: c.kind for c in schema.columns}


def test_demo_table_kinds(demo):
    schema = TableSchema.infer(demo)
    assert kinds(schema) == {
        "episode_id": K.IDENTIFIER,
        "nhs_number": K.PII,
        "age": K.INTEGER,
        "sex": K.CATEGORICAL,
        "ward": K.CATEGORICAL,
        "admission_method": K.CATEGORICAL,
        "primary_diagnosis": K.CATEGORICAL,
        "admission_date": K.DATE,
        "discharge_date": K.DATE,
        "first_observation": K.DATETIME,
        "length_of_stay": K.INTEGER,
        "systolic_bp": K.INTEGER,
        "creatinine_umol_l": K.FLOAT,
        "readmitted_30d": K.BOOLEAN,
    }
    assert schema.column("admission_date").datetime_format == "%d/%m/%Y"
    assert schema.column("first_observation").datetime_format == "%Y-%m-%d %H:%M"
    assert schema.column("nhs_number").pii_type == "nhs_number"
    assert schema.column("creatinine_umol_l").missing_share == pytest.approx(demo["creatinine_umol_l"].isna().mean())
    assert schema.column("creatinine_umol_l").decimals == 1


def test_support2_kinds(support2):
    schema = TableSchema.infer(support2)
    found = kinds(schema)
    assert found["pid"] == K.IDENTIFIER
    assert found["num_age"] == K.FLOAT and found["num_hday"] == K.INTEGER
    assert found["fac_dzgroup"] == K.CATEGORICAL and schema.column("fac_dzgroup").cardinality == 8
    assert found["event"] == K.BOOLEAN
    assert schema.column("num_glucose").missing_share == pytest.approx(support2["num_glucose"].isna().mean())


def test_nafld_rownames_and_ids_are_identifiers(nafld1):
    schema = TableSchema.infer(nafld1)
    assert schema.column("rownames").kind == K.IDENTIFIER
    assert schema.column("id").kind == K.IDENTIFIER
    assert schema.column("age").kind == K.INTEGER and schema.column("bmi").kind == K.FLOAT


def test_dates_in_many_formats(dated):
    schema = TableSchema.infer(dated)
    assert (schema.column("entry_date").kind, schema.column("entry_date").datetime_format) == (K.DATE, "%d/%m/%Y")
    assert (schema.column("visit_iso").kind, schema.column("visit_iso").datetime_format) == (K.DATE, "%Y-%m-%d")
    assert schema.column("visit_iso").missing_share > 0.05
    assert schema.column("visit_us").datetime_format == "%m/%d/%Y"
    assert (schema.column("scan_time").kind, schema.column("scan_time").datetime_format) == (
        K.DATETIME,
        "%Y-%m-%d %H:%M:%S",
    )
    assert schema.column("visit_dt64").kind == K.DATE and schema.column("visit_dt64").datetime_format is None


def test_pii_patterns_are_recognised():
    rng = np.random.default_rng(0)
    n = 200
    table = pd.DataFrame(
        {
            "email": [f"patient{i}@nhs.example.net" for i in range(n)],
            "phone": [f"07{rng.integers(100, 999)} {rng.integers(100000, 999999)}" for _ in range(n)],
            "patient_name": [
                f"{a} {b}" for a, b in zip(rng.choice(["Ann", "Bo", "Cy"], n), rng.choice(["Lee", "Ng"], n))
            ],
            "postcode": rng.choice(["SW1A 1AA", "M1 1AE", "B33 8TH", "CR2 6XH"], n),
            "score": rng.normal(size=n),
        }
    )
    schema = TableSchema.infer(table)
    assert {c.name: c.pii_type for c in schema.columns if c.kind == K.PII} == {
        "email": "email",
        "phone": "phone",
        "patient_name": "name",
        "postcode": "postcode",
    }


def test_ten_digit_numbers_without_nhs_checksum_are_not_nhs_numbers():
    rng = np.random.default_rng(3)
    table = pd.DataFrame(
        {"code": [f"{x:010d}" for x in rng.integers(10**9, 10**10 - 1, 300)], "y": rng.normal(size=300)}
    )
    assert TableSchema.infer(table).column("code").kind != K.PII


def test_overrides_and_json_round_trip(demo):
    schema = TableSchema.infer(demo).with_overrides(
        kinds={"systolic_bp": "float"}, drop=["ward"], target="readmitted_30d"
    )
    assert schema.column("systolic_bp").kind == K.FLOAT
    assert schema.column("ward").drop and "ward" not in [c.name for c in schema.output_columns()]
    assert schema.target == "readmitted_30d"
    assert TableSchema.from_json(schema.to_json()) == schema


@pytest.mark.parametrize(
    "change, message",
    [
        ({"kinds": {"age": "number"}}, "is not a column kind"),
        ({"drop": ["nope"]}, "There is no column 'nope'"),
        ({"target": "episode_id"}, "not learned"),
    ],
)
def test_bad_overrides_say_what_to_do(demo, change, message):
    with pytest.raises(SchemaError, match=message):
        TableSchema.infer(demo).with_overrides(**change)


def test_data_dictionary_lists_every_column(demo):
    schema = TableSchema.infer(demo)
    dictionary = schema.data_dictionary()
    assert list(dictionary["column"]) == list(demo.columns)
    ward = dictionary.set_index("column").loc["ward"]
    assert "Cardiology" in ward["allowed_values"] and ward["synthetic_handling"] == "modelled"
    assert dictionary.set_index("column").loc["nhs_number", "synthetic_handling"].startswith("replaced")
    # diagnosis codes seen fewer than 5 times are never listed
    rare = demo["primary_diagnosis"].value_counts()
    for code in rare[rare < 5].index:
        assert code not in dictionary.set_index("column").loc["primary_diagnosis", "allowed_values"]


def test_inference_is_deterministic_and_uses_whole_table_for_facts(support2):
    big = pd.concat([support2] * 3, ignore_index=True)
    first, second = TableSchema.infer(big, sample_rows=2000), TableSchema.infer(big, sample_rows=2000)
    assert first == second
    assert first.n_rows == len(big)
    assert first.column("num_age").maximum == pytest.approx(big["num_age"].max())


@pytest.mark.slow
def test_million_rows_infer_on_a_sample_and_verify_on_the_whole():
    rng = np.random.default_rng(1)
    n = 1_000_000
    dates = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1500, n), unit="D")
    table = pd.DataFrame(
        {
            "admitted": dates.strftime("%d/%m/%Y"),
            "age": rng.integers(18, 100, n),
            "ward": rng.choice(list("ABCDEFG"), n),
            "lab": rng.normal(5, 1, n).round(2),
        }
    )
    table.loc[n - 5 :, "admitted"] = "not a date"  # only in rows the sample is unlikely to see
    schema = TableSchema.infer(table)
    assert schema.column("admitted").kind == K.DATE
    assert any("do not parse" in w for w in schema.warnings)
    assert schema.column("ward").cardinality == 7
