"""The shared codec: encode/decode round trips keep dates, gaps, categories, IDs and PII right."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairsynth.backends.preprocessing import MISSING_TOKEN, RARE_TOKEN, TableCodec, clipped
from fairsynth.metadata.schema import MIN_LEVEL_ROWS, RARE_LEVEL, ColumnKind, TableSchema


def round_trip(table: pd.DataFrame, **fit_options) -> tuple[TableSchema, TableCodec, pd.DataFrame, pd.DataFrame]:
    schema = TableSchema.infer(table)
    codec = TableCodec.fit(table, schema, **fit_options)
    encoded = codec.encode(table)
    return schema, codec, encoded, codec.decode(encoded, seed=4)


def test_encoded_table_is_model_ready(demo):
    schema, codec, encoded, _ = round_trip(demo)
    assert "episode_id" not in encoded and "nhs_number" not in encoded  # never learned
    assert list(encoded.columns) == list(codec.model_columns())
    for name, kind in codec.model_columns().items():
        if kind == "numeric":
            assert encoded[name].dtype == float and encoded[name].notna().all()
        else:
            assert encoded[name].map(type).eq(str).all()
    assert set(encoded["discharge_date__missing"]) == {"0", "1"}
    assert MISSING_TOKEN in set(encoded["sex"]) and RARE_TOKEN in set(encoded["primary_diagnosis"])


def test_round_trip_restores_values_formats_and_gaps(demo):
    schema, _, _, decoded = round_trip(demo)
    assert list(decoded.columns) == list(demo.columns)
    for column in ("length_of_stay", "creatinine_umol_l"):  # ints stay ints even where pandas read floats
        np.testing.assert_allclose(decoded[column].astype(float), demo[column].astype(float))
    for column in (
        "age",
        "ward",
        "admission_date",
        "discharge_date",
        "first_observation",
        "systolic_bp",
        "readmitted_30d",
    ):
        pd.testing.assert_series_equal(
            decoded[column].astype(object).fillna("").astype(str),
            demo[column].astype(object).fillna("").astype(str),
            check_names=False,
        )
    assert decoded.isna().mean().round(6).equals(demo.isna().mean().round(6))


def test_identifiers_and_pii_are_fresh_unique_and_shaped(demo):
    _, codec, encoded, decoded = round_trip(demo)
    assert decoded["episode_id"].is_unique
    assert decoded["episode_id"].str.fullmatch(r"EP\d{7}").all()
    assert decoded["nhs_number"].str.fullmatch(r"999 \d{3} \d{4}").all()  # the NHS test range: nobody's
    digits = decoded["nhs_number"].str.replace(" ", "").map(lambda s: list(map(int, s)))
    checks = [(11 - sum(d * w for d, w in zip(ds[:9], range(10, 1, -1))) % 11) % 11 for ds in digits]
    assert all(c == ds[9] for c, ds in zip(checks, digits))
    # identifiers stay unique across streamed batches
    batches = [codec.decode(encoded.iloc[i : i + 500], start_row=i, seed=i) for i in range(0, len(encoded), 500)]
    assert pd.concat(batches)["episode_id"].is_unique


def test_real_looking_nhs_numbers_are_replaced_never_copied():
    from fairsynth.metadata.schema import nhs_check_digit

    rng = np.random.default_rng(8)
    stems = np.hstack([rng.integers(4, 5, (400, 1)), rng.integers(0, 10, (400, 8))])
    stems = stems[nhs_check_digit(stems) != 10]
    numbers = ["".join(map(str, s)) + str(c) for s, c in zip(stems, nhs_check_digit(stems))]
    table = pd.DataFrame(
        {"nhs": numbers, "x": rng.normal(size=len(numbers)), "g": rng.choice(["a", "b"], len(numbers))}
    )
    schema, _, _, decoded = round_trip(table)
    assert schema.column("nhs").pii_type == "nhs_number"
    assert not set(decoded["nhs"]) & set(table["nhs"])
    assert decoded["nhs"].str.fullmatch(r"999\d{7}").all()


def test_rare_categories_are_grouped_and_never_reproduced(demo):
    counts = demo["primary_diagnosis"].value_counts()
    rare = set(counts[counts < MIN_LEVEL_ROWS].index)
    assert rare  # the demo table has codes seen once or twice
    _, codec, encoded, decoded = round_trip(demo)
    assert rare.isdisjoint(codec.to_json().split('"'))
    assert rare.isdisjoint(set(decoded["primary_diagnosis"]))
    assert set(decoded["primary_diagnosis"]) <= set(counts.index) - rare | {RARE_LEVEL}


def test_dates_of_all_formats_round_trip(dated):
    schema, _, _, decoded = round_trip(dated)
    for column in ("entry_date", "visit_iso", "visit_us", "scan_time"):
        fmt = schema.column(column).datetime_format
        assert pd.to_datetime(decoded[column].dropna(), format=fmt).notna().all()
        assert decoded[column].isna().mean() == pytest.approx(dated[column].isna().mean())
    pd.testing.assert_series_equal(decoded["visit_dt64"], dated["visit_dt64"], check_names=False)


def test_decoding_clips_rounds_and_parses_model_noise(demo):
    schema, codec, encoded, _ = round_trip(demo)
    noisy = encoded.copy()
    noisy["age"] = noisy["age"] * 3.7 - 100.3
    noisy["admission_date"] = noisy["admission_date"] + 0.4
    noisy["ward"] = "something unseen"
    decoded = codec.decode(noisy, seed=1)
    assert decoded["age"].between(demo["age"].min(), demo["age"].max()).all()
    assert decoded["age"].dtype == np.int64
    assert pd.to_datetime(decoded["admission_date"], format="%d/%m/%Y").notna().all()
    assert decoded["ward"].isin(demo["ward"].unique()).all()


def test_whole_numbers_written_as_text_decode_as_text_with_gaps():
    site = np.random.default_rng(0).choice(["101", "102", "105", None], 400)
    table = pd.DataFrame({"site": site, "count": np.arange(400) % 7})
    schema, _, _, decoded = round_trip(table)
    assert schema.column("site").kind == ColumnKind.INTEGER  # learned as a number
    assert set(decoded["site"].dropna()) <= {"101", "102", "105"}  # given back as the source wrote it
    assert decoded["site"].isna().any()
    assert decoded["count"].dtype == np.int64  # numbers that were numbers stay numbers


def test_codec_json_round_trip_and_no_pickle(demo):
    _, codec, encoded, decoded = round_trip(demo)
    again = TableCodec.from_json(codec.to_json())
    assert again == codec
    pd.testing.assert_frame_equal(again.decode(encoded, seed=4), decoded)
    with pytest.raises(ValueError):
        TableCodec.from_json('{"columns": [{"type": "pickle", "name": "x"}]}')


def test_text_and_empty_columns_are_withheld_but_present():
    rng = np.random.default_rng(2)
    n = 100
    table = pd.DataFrame(
        {
            "note": [f"patient reports pain in the {w} since yesterday" for w in rng.choice(["arm", "leg"], n)],
            "empty": [None] * n,
            "x": rng.normal(size=n),
            "g": rng.choice(["a", "b"], n),
        }
    )
    schema, codec, encoded, decoded = round_trip(table)
    assert schema.column("note").kind == ColumnKind.TEXT
    assert list(decoded.columns) == list(table.columns)
    assert decoded["note"].isna().all() and decoded["empty"].isna().all()
    assert "note" not in encoded and "empty" not in encoded


def test_more_rows_than_the_source_id_space_widens_ids_and_keeps_them_unique(support2):
    """SUPPORT2's pid has 4 digits; a training split is not sequential, so 20,000 rows need a fifth."""
    train = support2.sample(frac=0.8, random_state=0)
    schema = TableSchema.infer(train)
    codec = TableCodec.fit(train, schema)
    encoded = codec.encode(train)
    many = pd.concat([encoded] * 3, ignore_index=True)  # 21,852 rows
    batches = [
        codec.decode(many.iloc[i : i + 5000], start_row=i, seed=i, total_rows=len(many))
        for i in range(0, len(many), 5000)
    ]
    ids = pd.concat(batches)["pid"]
    assert ids.is_unique and len(ids) == len(many)
    assert ids.astype(str).str.len().eq(5).all()


def test_regenerated_identifiers_are_never_real_ones():
    """Unique IDs are drawn above every real one: a synthetic row never carries a real record's identifier."""
    rng = np.random.default_rng(4)
    n = 3000
    real = pd.DataFrame(
        {
            "record": [f"LB-{i:06d}" for i in rng.permutation(n) + 1],
            "row": np.arange(1, n + 1),  # sequential 1..n
            "code": rng.choice(np.arange(10_000, 99_999), n, replace=False),  # scattered 5-digit numbers
            "value": rng.normal(size=n),
        }
    )
    schema = TableSchema.infer(real).with_overrides(
        kinds={"record": "identifier", "row": "identifier", "code": "identifier"}
    )
    codec = TableCodec.fit(real, schema)
    encoded = codec.encode(real)
    decoded = codec.decode(pd.concat([encoded] * 2, ignore_index=True), start_row=0, seed=1, total_rows=2 * n)
    for column in ("record", "row", "code"):
        assert decoded[column].is_unique, column
        assert not decoded[column].isin(real[column]).any(), column
    assert decoded["record"].str.fullmatch(r"LB-\d{6}").all()  # the source's shape is kept
    assert decoded["row"].diff().dropna().eq(1).all()  # sequential stays sequential


@pytest.mark.parametrize("low, high", [(0.0, 5.0), (-0.0, 5.0), (-5.0, 0.0), (-5.0, -0.0), (-2.5, 2.5), (1.0, 1.0)])
def test_clipped_gives_numpy_clips_bits(low, high):
    """The decoder's fast clip returns np.clip's exact bits: values in range, out of it, on a bound, NaN, and
    zeros of either sign against a zero bound (np.clip returns the bound's sign on a tie)."""
    rng = np.random.default_rng(0)
    edges = np.array([low, high, -0.0, 0.0, np.nan, -np.inf, np.inf, np.nextafter(high, np.inf)])
    for values in (
        rng.uniform(low, high, 1000),
        rng.normal(0, 4, 1000),
        np.concatenate([rng.uniform(low, high, 50), edges]),
    ):
        for part in (values, values[np.isfinite(values) & (values >= low) & (values <= high)]):
            assert np.array_equal(
                clipped(part.copy(), low, high).view(np.int64), np.clip(part, low, high).view(np.int64)
            )
