"""SDV's dataset synthesizers behind the DatasetGenerator contract: sdv.hma (several tables) and sdv.par (sequences)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fairsynth.backends.base import BackendError, ModelFileError
from fairsynth.backends.dataset import create_dataset_generator, dataset_backends
from fairsynth.backends.sdv_dataset import HMAGenerator, PARGenerator, sdv_metadata
from fairsynth.metadata.dataset import DatasetSchema
from fairsynth.services.entry.cli import app
from fairsynth.services.run.datasets import run_dataset
from fairsynth.services.run.evaluation.relational import in_order_share, referential_integrity
from fairsynth.services.run.tables import InputError

pytest.importorskip("sdv")


def two_levels(n_patients: int = 60, seed: int = 0) -> dict[str, pd.DataFrame]:
    """patients -> visits (a day in time order, a lab value, a site constant within each patient), real keys."""
    rng = np.random.default_rng(seed)
    patients = pd.DataFrame(
        {
            "patient_id": np.arange(1, n_patients + 1),
            "sex": rng.choice(["f", "m"], n_patients),
            "age": rng.integers(20, 90, n_patients),
            "enrolled": pd.date_range("2020-01-01", periods=n_patients, freq="7D").strftime("%Y-%m-%d"),
        }
    )
    n_visits = rng.integers(1, 6, n_patients)
    owner = np.repeat(patients["patient_id"], n_visits).to_numpy()
    visits = pd.DataFrame(
        {
            "visit_id": np.arange(7000, 7000 + len(owner)),
            "patient_id": owner,
            "day": pd.Series(rng.integers(10, 200, len(owner))).groupby(owner).cumsum().to_numpy(),
            "site": pd.Series(rng.choice(["north", "south"], n_patients), index=patients["patient_id"])[
                owner
            ].to_numpy(),
            "albumin": rng.normal(3.5, 0.4, len(owner)).round(2),
        }
    )
    return {"patients": patients, "visits": visits}


def three_levels() -> dict[str, pd.DataFrame]:
    """two_levels with a lab table under each visit: deeper than SDV's HMA or PAR take."""
    tables = two_levels(30)
    visits = np.repeat(tables["visits"]["visit_id"].to_numpy(), 2)
    tables["labs"] = pd.DataFrame({"lab_id": np.arange(len(visits)), "visit_id": visits, "value": 1.0})
    return tables


def synthetic(generator, n_subjects: int, batch_subjects: int) -> dict[str, pd.DataFrame]:
    """Every batch of a fitted generator, concatenated per table."""
    batches = list(generator.sample(n_subjects, seed=3, batch_subjects=batch_subjects))
    return {name: pd.concat([b[name] for b in batches], ignore_index=True) for name in batches[0]}


def test_sdv_dataset_backends_are_listed_with_the_dataset_backends():
    assert {"sdv.hma", "sdv.par"} <= {b.name for b in dataset_backends() if b.available}


def test_sdv_metadata_reads_keys_relationships_and_column_kinds_from_the_schema():
    metadata = sdv_metadata(DatasetSchema.infer(two_levels())).to_dict()
    patients, visits = metadata["tables"]["patients"], metadata["tables"]["visits"]
    assert patients["primary_key"] == "patient_id" and visits["primary_key"] == "visit_id"
    assert metadata["relationships"] == [
        {
            "parent_table_name": "patients",
            "child_table_name": "visits",
            "parent_primary_key": "patient_id",
            "child_foreign_key": "patient_id",
        }
    ]
    assert {c: v["sdtype"] for c, v in patients["columns"].items()} == {
        "patient_id": "id",
        "sex": "categorical",
        "age": "numerical",
        "enrolled": "datetime",
    }
    assert visits["columns"]["patient_id"]["sdtype"] == "id" and visits["columns"]["day"]["sdtype"] == "numerical"


def test_a_dataset_deeper_than_hma_or_par_take_is_refused_in_one_sentence_before_anything_is_written(tmp_path):
    schema = DatasetSchema.infer(three_levels())
    assert "sdv.hma takes at most 5 tables and one level of children" in HMAGenerator.shape_problem(schema)
    assert "sdv.par takes one subject table with one child table" in PARGenerator.shape_problem(schema)
    with pytest.raises(BackendError) as caught:
        create_dataset_generator("sdv.par").fit(three_levels(), schema, seed=0)
    assert len(caught.value.problems) == 1
    for name, frame in three_levels().items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    out = tmp_path / "run"
    with pytest.raises(InputError) as refused:
        run_dataset([tmp_path], out, backends=("sdv.hma", "sdv.par"))
    assert len(refused.value.problems) == 2 and not out.exists()


def test_hma_generates_whole_subjects_with_fresh_keys_full_integrity_and_visits_in_order():
    real = two_levels()
    schema = DatasetSchema.infer(real)
    generator = create_dataset_generator("sdv.hma")
    generator.fit(real, schema, seed=0)
    tables = synthetic(generator, 25, batch_subjects=10)  # three batches: keys numbered on across them
    patients, visits = tables["patients"], tables["visits"]
    assert len(patients) == 25 and patients["patient_id"].is_unique and visits["visit_id"].is_unique
    assert len(visits) >= len(patients)  # every real patient has visits: none lost on the way to fresh keys
    assert referential_integrity(tables, schema.relationships[0]) == 1.0
    assert not patients["patient_id"].isin(real["patients"]["patient_id"]).any()
    assert not visits["visit_id"].isin(real["visits"]["visit_id"]).any()
    assert in_order_share(visits, "patient_id", "day") == 1.0
    assert list(visits.columns) == list(real["visits"].columns)
    assert set(patients["sex"]) <= {"f", "m"}


def test_sdv_dataset_models_are_not_kept_and_the_model_folder_says_why(tmp_path):
    real = two_levels(30)
    generator = create_dataset_generator("sdv.hma")
    generator.fit(real, DatasetSchema.infer(real), seed=0)
    generator.save(tmp_path / "model")
    assert "pickles" in (tmp_path / "model" / "MODEL_NOT_SAVED.txt").read_text()
    assert json.loads((tmp_path / "model" / "backend.json").read_text())["backend"] == "sdv.hma"
    assert not any(p.suffix in (".pkl", ".pickle") for p in (tmp_path / "model").iterdir())
    with pytest.raises(ModelFileError, match="does not keep fitted models"):
        HMAGenerator.load(tmp_path / "model")


@pytest.mark.slow
def test_par_draws_each_subjects_visits_in_time_order_with_subject_columns_constant():
    real = two_levels()
    schema = DatasetSchema.infer(real)
    generator = create_dataset_generator("sdv.par", epochs=3)
    generator.fit(real, schema, seed=0)
    tables = synthetic(generator, 20, batch_subjects=8)
    patients, visits = tables["patients"], tables["visits"]
    assert len(patients) == 20 and referential_integrity(tables, schema.relationships[0]) == 1.0
    assert not patients["patient_id"].isin(real["patients"]["patient_id"]).any()
    assert not visits["visit_id"].isin(real["visits"]["visit_id"]).any()
    # PAR's rows are written as drawn (never sorted afterwards), so this is the model's own order
    assert PARGenerator.draws_in_order and in_order_share(visits, "patient_id", "day") == 1.0
    assert (visits.groupby("patient_id")["site"].nunique() == 1).all()  # constant within a subject: PAR context


@pytest.mark.slow
def test_cli_generates_a_dataset_with_sdv_hma(tmp_path):
    for name, frame in two_levels(40).items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    out = tmp_path / "run"
    files = [str(tmp_path / "patients.csv"), str(tmp_path / "visits.csv")]
    result = CliRunner().invoke(app, ["generate", *files, "--backend", "sdv.hma", "--epochs", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "sdv.hma" / "metrics.json").read_text())
    (link,) = metrics["relationships"]
    assert link["referential_integrity"] == 1.0 and link["within_parent_order"]["synthetic"] == 1.0
    assert all(sum(t["real_keys_copied"].values()) == 0 for t in metrics["tables"].values())
