"""A dataset described in a file (YAML or JSON `tables:` list with keys) for `fairsynth generate`: the keys given
override the inferred ones, every mistake is named at once, paths are relative to the file, options override it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from fairsynth.metadata.dataset import DatasetSchema, TableKeys
from fairsynth.metadata.schema import SchemaError
from fairsynth.services.entry.cli import app
from fairsynth.services.run.config import ConfigError
from fairsynth.services.run.datasets import (
    DatasetRequest,
    dataset_schema,
    load_dataset_plan,
    load_dataset_request,
    read_sources,
    request_sources,
)

FAST = ["--backend", "relational", "--set", "relational.table_backend=marginals"]


def unmatched_names(n_people: int = 60, seed: int = 0) -> dict[str, pd.DataFrame]:
    """people -> stays -> tests, linked through columns whose names match neither the parent's name nor its key
    (person, stay_ref): inference finds no relationship at all."""
    rng = np.random.default_rng(seed)
    people = pd.DataFrame({"pid": np.arange(1, n_people + 1), "age": rng.integers(20, 90, n_people)})
    person = np.repeat(people["pid"], rng.integers(1, 4, n_people)).to_numpy()
    stays = pd.DataFrame(
        {
            "stay_no": np.arange(100, 100 + len(person)),
            "person": person,
            "ward": rng.choice(["A", "B"], len(person)),
        }
    )
    stay_ref = np.repeat(stays["stay_no"], rng.integers(1, 4, len(stays))).to_numpy()
    tests = pd.DataFrame(
        {
            "stay_ref": stay_ref,
            "hour": pd.Series(rng.integers(1, 12, len(stay_ref))).groupby(stay_ref).cumsum().to_numpy(),
            "value": rng.normal(5, 1, len(stay_ref)).round(2),
        }
    )
    return {"people": people, "stays": stays, "tests": tests}


def written(folder: Path) -> None:
    """The three tables as CSV files under folder/data."""
    (folder / "data").mkdir(parents=True)
    for name, frame in unmatched_names().items():
        frame.to_csv(folder / "data" / f"{name}.csv", index=False)


DATASET = {
    "tables": [
        {"path": "data/people.csv", "primary_key": "pid"},
        {"path": "data/stays.csv", "name": "admissions", "parent": "people", "foreign_key": "person"},
        {"path": "data/tests.csv", "parent": "admissions", "foreign_key": "stay_ref", "time": "hour"},
    ],
    "subjects": 999,
    "seed": 3,
}


def test_the_files_keys_are_used_with_paths_relative_to_it_and_options_over_it(tmp_path, monkeypatch):
    spec = tmp_path / "spec"
    written(spec)
    (spec / "dataset.yaml").write_text(yaml.safe_dump(DATASET))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # data/... resolves against the YAML's folder, not the working one
    without = CliRunner().invoke(app, ["generate", str(spec / "data"), *FAST, "--out", str(tmp_path / "inferred")])
    assert without.exit_code == 2 and "No relationship was found" in without.output  # what inference alone gets

    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["generate", str(spec / "dataset.yaml"), *FAST, "--rows", "40", "--out", str(out)])
    assert result.exit_code == 0, result.output
    schema = DatasetSchema.from_json((out / "dataset.json").read_text())
    links = [(r.parent, r.parent_key, r.child, r.child_key) for r in schema.relationships]
    assert links == [("people", "pid", "admissions", "person"), ("admissions", "stay_no", "tests", "stay_ref")]
    assert schema.entry("tests").sequence == "hour"
    assert schema.entry("admissions").primary_key == "stay_no"  # not given: inferred
    plan = json.loads((out / "plan.json").read_text())
    assert (plan["subjects"], plan["seed"]) == (40, 3)  # --rows over the file's subjects, the file's seed kept
    assert [(t["name"], t["primary_key"], t["parent"], t["foreign_key"], t["time"]) for t in plan["tables"]] == [
        ("people", "pid", None, None, None),
        ("admissions", "stay_no", "people", "person", None),
        ("tests", None, "admissions", "stay_ref", "hour"),
    ]  # every key as used, the inferred ones too
    assert plan["tables"][1]["path"] == str(spec / "data" / "stays.csv")
    assert load_dataset_plan(out).schema == schema  # a worker rebuilds the same run from the plan
    metrics = json.loads((out / "relational" / "metrics.json").read_text())
    assert [r["referential_integrity"] for r in metrics["relationships"]] == [1.0, 1.0]
    assert len(pd.read_csv(out / "relational" / "people.csv")) == 40
    synthetic = {name: pd.read_csv(out / "relational" / f"{name}.csv") for name in ("admissions", "tests")}
    assert synthetic["tests"]["stay_ref"].isin(synthetic["admissions"]["stay_no"]).all()


def test_config_option_takes_a_json_dataset_file_and_options_override_it(tmp_path):
    written(tmp_path)
    dataset = DATASET | {"output_format": "parquet", "backends": [{"name": "relational", "params": {"epochs": 3}}]}
    (tmp_path / "dataset.json").write_text(json.dumps(dataset))
    out = tmp_path / "run"
    args = ["generate", "--config", str(tmp_path / "dataset.json"), "--set", "relational.table_backend=marginals"]
    result = CliRunner().invoke(app, [*args, "--rows", "20", "--seed", "5", "--format", "csv", "--out", str(out)])
    assert result.exit_code == 0, result.output
    plan = json.loads((out / "plan.json").read_text())
    assert (plan["subjects"], plan["seed"], plan["output_format"]) == (20, 5, "csv")
    (backend,) = plan["backends"]
    assert backend["params"] == {"epochs": 3, "table_backend": "marginals"}  # the file's parameter and --set's
    assert (out / "relational" / "tests.csv").is_file()


def test_mistakes_in_the_file_are_named_at_once(tmp_path):
    written(tmp_path)
    mistakes = {
        "tables": [
            {"path": "data/people.csv", "primary_kye": "pid"},
            {"path": "data/missing.csv"},
            {"path": "data/stays.csv"},
        ],
        "subjects": 0,
    }
    (tmp_path / "dataset.yaml").write_text(yaml.safe_dump(mistakes))
    result = CliRunner().invoke(app, ["generate", str(tmp_path / "dataset.yaml"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 3, result.output
    assert f"There is no file {tmp_path / 'data' / 'missing.csv'}" in lines[0]
    assert "primary_kye" in result.output and "subjects" in result.output
    assert not (tmp_path / "run").exists()


def test_keys_the_tables_contradict_are_named_at_once(tmp_path):
    written(tmp_path)
    wrong = {
        "tables": [
            {"path": "data/people.csv", "primary_key": "age"},  # repeats
            {"path": "data/stays.csv", "parent": "persons", "foreign_key": "person"},  # no such table
            {"path": "data/tests.csv", "parent": "stays", "foreign_key": "stay", "time": "minute"},  # no such columns
        ]
    }
    (tmp_path / "dataset.yaml").write_text(yaml.safe_dump(wrong))
    result = CliRunner().invoke(app, ["generate", str(tmp_path / "dataset.yaml"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    problems = [line.removeprefix("error: ") for line in result.output.splitlines() if line.startswith("error:")]
    assert problems == [
        "Table 'stays' names a parent 'persons' the dataset lacks.",
        "Table 'tests' has no column 'minute' for its time column.",
        "The relationship stays.stay_no -> tests.stay names a column 'stay' that 'tests' lacks.",
    ]
    wrong["tables"][1]["parent"] = "people"
    wrong["tables"][2] |= {"foreign_key": "stay_ref", "time": "hour"}
    (tmp_path / "dataset.yaml").write_text(yaml.safe_dump(wrong))
    request = load_dataset_request(tmp_path / "dataset.yaml")
    with pytest.raises(SchemaError) as error:
        dataset_schema(read_sources(request_sources(request)), request.tables)
    assert list(error.value.problems) == [
        "'age' cannot be the primary key of 'people': it repeats or is missing; choose another column.",
        "people.age repeats, so it cannot be the key stays rows point to.",
    ]


def test_a_key_left_out_stays_inferred_and_a_null_one_clears_it():
    schema = DatasetSchema.infer(
        {
            "patients": pd.DataFrame({"patient_id": [1, 2, 3], "age": [30, 40, 50]}),
            "visits": pd.DataFrame({"patient_id": [1, 1, 2, 3], "day": [1, 5, 1, 3], "x": [0.1, 0.2, 0.3, 0.4]}),
        }
    )
    assert schema.entry("visits").sequence == "day"
    kept = schema.with_table_keys([TableKeys(name="visits")])
    assert kept == schema
    cleared = schema.with_table_keys([TableKeys(name="visits", time=None)])
    assert cleared.entry("visits").sequence is None and cleared.relationships == schema.relationships
    with pytest.raises(SchemaError, match="has the parent 'patients' but no foreign key"):
        schema.with_table_keys([TableKeys(name="visits", foreign_key=None)])


def test_a_request_names_its_tables_once(tmp_path):
    with pytest.raises(ValueError, match="name the tables"):
        DatasetRequest()
    request = DatasetRequest(tables=[{"path": "a/patients.csv.gz"}, {"path": "b.csv", "name": "visits"}])
    assert request.input_paths == ["a/patients.csv.gz", "b.csv"]
    assert [t.name for t in request.tables] == ["patients", "visits"]
    (tmp_path / "run.yaml").write_text("input_paths: [a.csv, b.csv]\n")
    with pytest.raises(ConfigError, match="has no `tables:` list"):
        load_dataset_request(tmp_path / "run.yaml")
