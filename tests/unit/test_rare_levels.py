"""Rare category levels: a level seen in fewer training rows than the run's min_level_rows never appears in a
synthetic table (it comes back as one value that is no real level), nor in the data dictionary or the crate."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pandas as pd
import pytest

from fairsynth.backends import registry
from fairsynth.metadata.schema import DICTIONARY_LEVELS, MIN_LEVEL_ROWS, RARE_LEVEL
from fairsynth.services.run.config import ConfigError, GenerationRequest, parse_request
from fairsynth.services.run.pipeline import RunPlan, prepare_run, run, split

TRAINING_ROWS = {"rare3": 3, "rare5": 5, "rare9": 9, "ten10": 10, "fifty": 50}  # rows in the training split
ROWS, SEED, HOLDOUT = 12_000, 3, 0.2
CLINICS = 60  # more levels than the dictionary lists
CRATE = {
    "authors": [{"name": "Ada Lovelace", "affiliation": {"name": "University College London", "ror": "02jx3x895"}}]
}


def fabricated_table() -> pd.DataFrame:
    """Two common levels, and levels with exactly TRAINING_ROWS rows among the rows the run trains on."""
    rng = np.random.default_rng(7)
    level = rng.choice(np.array(["alpha", "beta"], dtype=object), ROWS)
    train, _ = split(pd.DataFrame(index=range(ROWS)), HOLDOUT, SEED)
    rare = [name for name, rows in TRAINING_ROWS.items() for _ in range(rows)]
    level[train.index[: len(rare)]] = rare
    return pd.DataFrame(
        {
            "record_id": [f"R{i:06d}" for i in range(ROWS)],
            "level": level,
            "clinic": [f"clinic {i % CLINICS:02d}" for i in range(ROWS)],
            "age": rng.integers(18, 90, ROWS),
            "weight_kg": rng.normal(75, 12, ROWS).round(4),  # so that no synthetic row copies a real one
        }
    )


@pytest.fixture(scope="module")
def table_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("rare") / "table.csv"
    fabricated_table().to_csv(path, index=False)
    return path


def prepared(table_path, out, **fields) -> RunPlan:
    request = GenerationRequest(
        input_path=str(table_path), output_dir=str(out), seed=SEED, holdout_share=HOLDOUT, **fields
    )
    return prepare_run(request)


def too_rare(plan: RunPlan) -> set[str]:
    counts = plan.train["level"].value_counts()
    assert counts[list(TRAINING_ROWS)].to_dict() == TRAINING_ROWS  # the fabricated counts reach the training split
    return set(counts[counts < plan.schema.min_level_rows].index)


@pytest.mark.parametrize("backend, params", [("marginals", {}), ("tvae", {"epochs": 3, "patience": 0})])
@pytest.mark.parametrize("threshold", [None, 5])
def test_no_level_under_the_threshold_is_sampled(table_path, tmp_path, backend, params, threshold):
    plan = prepared(table_path, tmp_path / "run", **({} if threshold is None else {"min_level_rows": threshold}))
    assert plan.schema.min_level_rows == (threshold or MIN_LEVEL_ROWS)
    generator = registry.create(backend, **params)
    generator.fit(plan.train, plan.schema, seed=1)
    synthetic = pd.concat(generator.sample(20_000, seed=2), ignore_index=True)
    assert len(synthetic) == 20_000
    hidden = too_rare(plan)
    allowed = set(plan.train["level"]) - hidden | {RARE_LEVEL}
    sampled = set(synthetic["level"].dropna())
    assert hidden and not hidden & sampled
    assert sampled <= allowed
    assert synthetic["record_id"].is_unique and synthetic["record_id"].str.fullmatch(r"R\d{6}").all()  # unaffected
    if backend == "marginals":  # the rare share is drawn, as the real levels it may hold and as the replacement
        assert RARE_LEVEL in sampled and "ten10" in sampled
        assert ("rare5" in sampled) == (threshold == 5)


@pytest.mark.parametrize("threshold", [MIN_LEVEL_ROWS, 5])
def test_the_dictionary_lists_no_level_under_the_threshold(table_path, tmp_path, threshold):
    plan = prepared(table_path, tmp_path / "run", min_level_rows=threshold)
    dictionary = plan.schema.data_dictionary().set_index("column")
    listed = dictionary.loc["level", "allowed_values"]
    for level, rows in TRAINING_ROWS.items():
        assert (level in listed) == (rows >= threshold), level
    assert f"fewer than {threshold} rows" in listed and RARE_LEVEL in listed
    clinic = dictionary.loc["clinic"]
    assert clinic["distinct_values"] == CLINICS > DICTIONARY_LEVELS
    assert clinic["allowed_values"].startswith("not listed") and "clinic 0" not in clinic["allowed_values"]
    assert dictionary.loc["record_id", "allowed_values"] == ""


def test_the_crate_records_the_threshold_and_leaks_no_rare_level(table_path, tmp_path):
    request = GenerationRequest(
        input_path=str(table_path),
        output_dir=str(tmp_path / "run"),
        seed=SEED,
        holdout_share=HOLDOUT,
        min_level_rows=5,
        backends=[{"name": "marginals"}],
        rows=2_000,
        evaluation_rows=2_000,
        anonymeter=False,
        package_crates=True,
        crate=CRATE,
    )
    [outcome] = run(request).outcomes
    assert outcome.crate, outcome.error
    with zipfile.ZipFile(outcome.crate) as crate:
        generation = json.loads(crate.read("config/generation.json"))
        texts = {
            name: crate.read(name).decode() for name in crate.namelist() if name.endswith((".json", ".csv", ".html"))
        }
    assert generation["request"]["min_level_rows"] == 5
    for name, text in texts.items():
        assert "rare3" not in text, name
    metadata = texts["ro-crate-metadata.json"]
    assert "clinic 0" not in metadata and "rare5" in metadata  # the high-cardinality column lists no level
    assert "fewer than 5 training rows" in texts["metadata/dome.json"]


@pytest.mark.parametrize("value", [1, 0, "ten"])
def test_the_threshold_must_be_a_count_of_two_or_more(value):
    with pytest.raises(ConfigError, match="min_level_rows"):
        parse_request({"min_level_rows": value})


def test_a_yes_no_column_keeps_both_values_however_rare_one_is(tmp_path):
    """A flag's two values identify no one: a rare 'yes' is reproduced and listed, never replaced by RARE_LEVEL."""
    rng = np.random.default_rng(3)
    table = pd.DataFrame({"on_steroids": [True] * 4 + [False] * 2996, "age": rng.integers(18, 90, 3000)})
    path = tmp_path / "flags.csv"
    table.to_csv(path, index=False)
    plan = prepared(path, tmp_path / "run")
    assert plan.schema.column("on_steroids").allowed_values is not None
    assert len(plan.schema.column("on_steroids").allowed_values) == 2
    generator = registry.create("marginals")
    generator.fit(plan.train, plan.schema, seed=SEED)
    values = pd.concat(generator.sample(20_000, seed=SEED))["on_steroids"].astype(str).str.lower()
    assert set(values.dropna()) == {"true", "false"}
