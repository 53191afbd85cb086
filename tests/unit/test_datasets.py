"""Several related tables: DatasetSchema inference and edits, the relational backend, the dataset run and CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fairsynth.backends.dataset import create_dataset_generator, dataset_backends
from fairsynth.backends.registry import list_backends
from fairsynth.metadata.dataset import DatasetSchema, Relationship, split_long_table
from fairsynth.metadata.schema import SchemaError
from fairsynth.services.entry.cli import app
from fairsynth.services.run.datasets import run_dataset, split_by_subject
from fairsynth.services.run.evaluation.relational import children_per_parent, in_order_share, referential_integrity

from helpers import pbc_tables

FAST = {"table_backend": "marginals"}


def three_levels(n_patients: int = 120, seed: int = 0) -> dict[str, pd.DataFrame]:
    """patients -> admissions (dated, in time order) -> labs (hours into the admission), with real-looking keys."""
    rng = np.random.default_rng(seed)
    patients = pd.DataFrame(
        {
            "patient_id": np.arange(1, n_patients + 1),
            "sex": rng.choice(["f", "m"], n_patients),
            "age": rng.integers(20, 90, n_patients),
        }
    )
    n_adm = rng.integers(1, 5, n_patients)
    owner = np.repeat(patients["patient_id"], n_adm).to_numpy()
    gaps = rng.integers(10, 400, len(owner))
    start = pd.Timestamp("2020-01-01")
    days = pd.Series(gaps).groupby(owner).cumsum().to_numpy()
    admissions = pd.DataFrame(
        {
            "admission_id": np.arange(5000, 5000 + len(owner)),
            "patient_id": owner,
            "admission_date": (start + pd.to_timedelta(days, unit="D")).strftime("%Y-%m-%d"),
            "ward": rng.choice(["A", "B", "C"], len(owner)),
        }
    )
    n_labs = rng.integers(0, 4, len(admissions))
    lab_owner = np.repeat(admissions["admission_id"], n_labs).to_numpy()
    labs = pd.DataFrame(
        {
            "lab_id": [f"L{i:05d}" for i in range(len(lab_owner))],
            "admission_id": lab_owner,
            "hour": pd.Series(rng.integers(1, 24, len(lab_owner))).groupby(lab_owner).cumsum().to_numpy(),
            "value": rng.normal(5, 1, len(lab_owner)).round(2),
        }
    )
    return {"patients": patients, "admissions": admissions, "labs": labs}


# -- schema -----------------------------------------------------------------------------------
def test_infers_a_three_level_tree_with_keys_and_time_columns():
    schema = DatasetSchema.infer(three_levels())
    assert {(r.parent, r.parent_key, r.child, r.child_key) for r in schema.relationships} == {
        ("patients", "patient_id", "admissions", "patient_id"),
        ("admissions", "admission_id", "labs", "admission_id"),
    }
    assert [schema.entry(n).primary_key for n in schema.top_down()] == ["patient_id", "admission_id", "lab_id"]
    assert schema.entry("admissions").sequence == "admission_date"
    assert schema.entry("labs").sequence == "hour"
    assert schema.top_down() == ["patients", "admissions", "labs"]


def test_infers_pbc_and_pbcseq_linked_by_id_and_ordered_by_day():
    schema = DatasetSchema.infer(pbc_tables())
    assert [(r.parent, r.parent_key, r.child, r.child_key) for r in schema.relationships] == [
        ("pbc", "id", "pbcseq", "id")
    ]
    assert schema.entry("pbc").primary_key == "id"
    assert schema.entry("pbcseq").sequence == "day"


def test_schema_round_trips_through_json_and_edits_are_checked():
    schema = DatasetSchema.infer(three_levels(40))
    assert DatasetSchema.from_json(schema.to_json()) == schema
    edited = schema.with_edits(sequences={"labs": None})
    assert edited.entry("labs").sequence is None and schema.entry("labs").sequence == "hour"
    with pytest.raises(SchemaError) as caught:
        schema.with_edits(
            relationships=[
                Relationship(parent="patients", parent_key="nope", child="labs", child_key="admission_id"),
                Relationship(parent="admissions", parent_key="admission_id", child="labs", child_key="admission_id"),
            ]
        )
    assert len(caught.value.problems) == 2  # the unknown column and the second parent, together


def test_data_dictionary_names_each_columns_role():
    schema = DatasetSchema.infer(three_levels(40))
    roles = schema.data_dictionary("admissions").set_index("column")["role"]
    assert roles["admission_id"] == "primary key"
    assert roles["patient_id"] == "foreign key -> patients.patient_id"
    assert roles["admission_date"].startswith("time column")


def test_split_long_table_keeps_subject_constant_columns_in_the_subject_table():
    parts = split_long_table(pbc_tables()["pbcseq"], "id")
    assert set(parts["subjects"].columns) == {"id", "futime", "status", "trt", "age", "sex"}
    assert len(parts["subjects"]) == 312 and len(parts["events"]) == 1945
    assert {"id", "day", "bili"} <= set(parts["events"].columns)
    assert DatasetSchema.infer(parts).relationships[0].child == "events"


# -- backend ----------------------------------------------------------------------------------
def test_dataset_backends_are_listed_apart_from_single_table_backends():
    assert "relational" in {b.name for b in dataset_backends()}
    assert "relational" not in {b.name for b in list_backends()}


def test_relational_generates_whole_subjects_with_integrity_order_and_fresh_keys():
    real = three_levels()
    schema = DatasetSchema.infer(real)
    generator = create_dataset_generator("relational", **FAST)
    generator.fit(real, schema, seed=0)
    batches = list(generator.sample(100, seed=1, batch_subjects=30))
    assert len(batches) == 4  # streamed: 30 + 30 + 30 + 10 subjects
    synthetic = {name: pd.concat([b[name] for b in batches], ignore_index=True) for name in schema.names}
    assert len(synthetic["patients"]) == 100
    for link in schema.relationships:
        assert referential_integrity(synthetic, link) == 1.0
        parent_keys = synthetic[link.parent][link.parent_key]
        assert parent_keys.is_unique and not parent_keys.isin(real[link.parent][link.parent_key]).any()
    assert not synthetic["labs"]["lab_id"].isin(real["labs"]["lab_id"]).any()
    assert in_order_share(synthetic["admissions"], "patient_id", "admission_date") == 1.0
    assert in_order_share(synthetic["labs"], "admission_id", "hour") == 1.0
    assert list(synthetic["admissions"].columns) == list(real["admissions"].columns)
    counts = children_per_parent(synthetic, schema.relationships[0])
    assert 1 <= counts.mean() <= 4 and counts.max() <= 4  # never more children than any real patient had


def test_relational_trains_each_tvae_table_within_its_budget_and_the_dp_variant_keeps_tvae_dps(monkeypatch):
    from fairsynth.backends import registry

    created: list[tuple[str, dict]] = []
    create = registry.create
    monkeypatch.setattr(
        registry, "create", lambda name, **params: created.append((name, params)) or create(name, **params)
    )
    real = three_levels(n_patients=40)
    schema = DatasetSchema.infer(real)
    generator = create_dataset_generator("relational", epochs=2)
    generator.fit(real, schema, seed=0)
    assert created == [("tvae", {"epochs": 2, "batch_size": 500})] * 3  # one model per table, the same budget
    created.clear()
    dp = create_dataset_generator("relational.dp", epsilon=50)
    assert dp.params.epochs is None and dp.params.batch_size is None
    dp.fit(real, schema, seed=0)
    assert [name for name, _ in created] == ["tvae.dp"] * 3
    assert all("epochs" not in params and "batch_size" not in params for _, params in created)


def test_first_times_and_gaps_are_learned_apart_so_event_days_keep_their_place():
    # nafld3-like: a subject's first event lies years before the index date (negative days), later ones follow
    rng = np.random.default_rng(4)
    subjects = pd.DataFrame({"id": np.arange(1, 301), "age": rng.integers(30, 80, 300)})
    rows = []
    for subject in subjects["id"]:
        day = rng.normal(-2000, 300)
        for _ in range(rng.integers(1, 5)):
            rows.append({"id": subject, "days": round(day), "event": rng.choice(["htn", "diabetes"])})
            day += rng.exponential(150)
    real = {"subjects": subjects, "events": pd.DataFrame(rows)}
    real["events"].insert(0, "event_id", np.arange(len(rows)))
    schema = DatasetSchema.infer(real)
    generator = create_dataset_generator("relational", **FAST)
    generator.fit(real, schema, seed=0)
    events = next(generator.sample(300, seed=1, batch_subjects=300))["events"]
    first = events.groupby("id")["days"].min()
    assert abs(first.median() - (-2000)) < 300, first.describe()  # one column for both meanings: median near -300
    assert abs(events["days"].mean() - real["events"]["days"].mean()) < 300


def test_relational_keeps_subject_level_columns_constant_within_a_patient():
    real = pbc_tables()
    schema = DatasetSchema.infer(real)
    generator = create_dataset_generator("relational", **FAST)
    generator.fit(real, schema, seed=0)
    visits = next(generator.sample(200, seed=3, batch_subjects=200))["pbcseq"]
    per_patient = visits.groupby("id")[["sex", "age", "futime"]].nunique(dropna=False)
    assert (per_patient <= 1).all().all()
    assert in_order_share(visits, "id", "day") == 1.0


# -- run and CLI ------------------------------------------------------------------------------
def test_holdout_is_split_by_subject():
    real = three_levels()
    schema = DatasetSchema.infer(real)
    train, holdout = split_by_subject(real, schema, 0.25, seed=0)
    assert len(holdout["patients"]) == 30
    assert not set(train["patients"]["patient_id"]) & set(holdout["patients"]["patient_id"])
    assert holdout["admissions"]["patient_id"].isin(holdout["patients"]["patient_id"]).all()
    assert holdout["labs"]["admission_id"].isin(holdout["admissions"]["admission_id"]).all()
    assert len(train["labs"]) + len(holdout["labs"]) == len(real["labs"])


def test_cli_generates_a_folder_of_related_tables(tmp_path):
    folder = tmp_path / "cohort"
    folder.mkdir()
    for name, frame in three_levels(60).items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["generate", str(folder), "--out", str(out), "--set", "relational.table_backend=marginals"]
    )
    assert result.exit_code == 0, result.output
    assert "patients -> admissions" in result.output
    metrics = json.loads((out / "relational" / "metrics.json").read_text())
    assert {r["referential_integrity"] for r in metrics["relationships"]} == {1.0}
    assert all(r["within_parent_order"]["synthetic"] == 1.0 for r in metrics["relationships"])
    assert all(sum(t["real_keys_copied"].values()) == 0 for t in metrics["tables"].values())
    assert (
        pd.read_csv(out / "relational" / "labs.csv")["admission_id"]
        .isin(pd.read_csv(out / "relational" / "admissions.csv")["admission_id"])
        .all()
    )
    assert DatasetSchema.from_json((out / "dataset.json").read_text()).top_down() == ["patients", "admissions", "labs"]


def test_cli_refuses_a_single_table_backend_for_a_dataset_before_writing_anything(tmp_path):
    for name, frame in three_levels(30).items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["generate", str(tmp_path), "--backend", "marginals", "--out", str(out)])
    assert result.exit_code == 2 and "Unknown backend 'marginals'" in result.output
    assert not out.exists()


@pytest.mark.slow
def test_pbc_with_tvae_keeps_integrity_order_and_children_per_parent(tmp_path):
    for name, frame in pbc_tables().items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    result = run_dataset(
        [tmp_path / "pbc.csv", tmp_path / "pbcseq.csv"],
        tmp_path / "run",
        params={"relational": {"epochs": 30}},
    )
    metrics = result.metrics["relational"]
    (link,) = metrics["relationships"]
    assert link["referential_integrity"] == 1.0 and link["within_parent_order"]["synthetic"] == 1.0
    assert link["children_per_parent"]["ks_statistic"] < 0.2
    assert metrics["tables"]["pbcseq"]["quality"] > 0.75
