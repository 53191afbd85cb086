"""Formula injection: no CSV fairsynth writes has a text cell or header a spreadsheet would run as a formula.

A source table carrying `=HYPERLINK(...)`, `@SUM(A1)`, `-cmd` and a header `=cmd|'/C calc'!A0` goes through a
real run; every CSV of the run (synthetic table, data dictionary, rules, comparison, the crate's copies) is
read back cell by cell. Numbers, negative ones included, stay as they are; with the setting off the values
are raw; Parquet is always raw.
"""

from __future__ import annotations

import csv
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fairsynth.metadata.spreadsheet import DICTIONARY_FLAG, neutralised, neutralised_frame
from fairsynth.services.jobs.executors import create_job
from fairsynth.services.jobs.store import JobStore
from fairsynth.services.run import pipeline
from fairsynth.services.run.config import BackendSpec, GenerationRequest
from fairsynth.services.run.writers import BatchWriter
from fairsynth.services.settings import Settings

HEADER = "=cmd|'/C calc'!A0"
HOSTILE = ['=HYPERLINK("http://x","y")', "@SUM(A1)", "-cmd", "+1+2", "\tTAB"]
FORMULA = re.compile(r"^[=+\-@\t\r]")
PLAIN_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
CRATE = {"authors": [{"name": "Ada Lovelace", "affiliation": {"name": "UCL", "ror": "02jx3x895"}}]}


def hostile_table(rows: int = 400) -> pd.DataFrame:
    """Hostile text levels (each frequent enough to be kept), a hostile header, negative numbers, floats."""
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            HEADER: rng.choice([*HOSTILE, "plain"], rows),
            "ward": rng.choice(["-cmd", "=1+1", "north"], rows),
            "delta": rng.integers(-50, 50, rows),
            "weight": rng.normal(-3.0, 10.0, rows).round(3),
        }
    )


def formula_cells(path: Path) -> list[str]:
    """Every header or cell of a CSV that a spreadsheet would run as a formula."""
    with open(path, newline="", encoding="utf-8") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    return [cell for cell in cells if FORMULA.match(cell) and not PLAIN_NUMBER.match(cell)]


def run_hostile(tmp_path: Path, *, neutralise: bool, output_format: str = "csv") -> Path:
    """A real job (prepared through the jobs layer with the setting, one backend run in this process)."""
    source = tmp_path / "hostile.csv"
    hostile_table().to_csv(source, index=False)
    settings = Settings.from_env(
        {"FAIRSYNTH_DATA_DIR": str(tmp_path / "data"), "FAIRSYNTH_NEUTRALISE_CSV_FORMULAS": str(neutralise).lower()}
    )
    settings.ensure_dirs()
    request = GenerationRequest(
        input_path=str(source),
        backends=[BackendSpec(name="marginals")],
        rows=300,
        output_format=output_format,
        package_crates=True,
        crate=CRATE,
        anonymeter=False,
        seed=1,
    )
    store = JobStore(settings.database_url)
    try:
        job = create_job(store, settings, request, executor="cli")
    finally:
        store.close()
    plan = pipeline.load_plan(settings.data_dir / job.run_dir)
    outcome = pipeline.run_planned_backend(plan, "marginals")
    pipeline.finish_run(plan.request, plan.run_dir, plan.schema, plan.context, [outcome])
    assert outcome.ok and outcome.crate, outcome.error
    return plan.run_dir


def test_the_neutraliser_prefixes_formulas_and_leaves_numbers():
    values = pa.array(['=HYPERLINK("http://x","y")', "@SUM(A1)", "-cmd", "-5", "+1.5e3", "\tx", "\rx", "ok", "", None])
    assert neutralised(values).to_pylist() == [
        '\'=HYPERLINK("http://x","y")',
        "'@SUM(A1)",
        "'-cmd",
        "-5",
        "+1.5e3",
        "'\tx",
        "'\rx",
        "ok",
        "",
        None,
    ]
    levels = pa.array(["-cmd", "a", "-cmd"]).dictionary_encode()
    assert neutralised(levels).to_pylist() == ["'-cmd", "a", "'-cmd"]
    frame = pd.DataFrame({HEADER: ["@x", -5.0], "n": [-5, 3]})
    fixed = neutralised_frame(frame)
    assert list(fixed.columns) == ["'" + HEADER, "n"]
    assert fixed.iloc[:, 0].tolist() == ["'@x", -5.0] and fixed["n"].tolist() == [-5, 3]


def test_the_streamed_writer_neutralises_cells_and_headers_and_keeps_numbers(tmp_path):
    table = pa.table({HEADER: pa.array(HOSTILE), "n": pa.array([-5, -1, 0, 2, 3]), "x": [-0.5, 1.0, 2.0, 3.0, 4.0]})
    with BatchWriter(tmp_path / "safe.csv", "csv") as writer:
        writer.write(table)
    assert formula_cells(tmp_path / "safe.csv") == []
    read = pd.read_csv(tmp_path / "safe.csv")
    assert read.columns[0] == "'" + HEADER
    assert read.iloc[:, 0].tolist() == ["'" + value for value in HOSTILE]
    assert read["n"].tolist() == [-5, -1, 0, 2, 3] and read["x"].tolist() == [-0.5, 1.0, 2.0, 3.0, 4.0]

    with BatchWriter(tmp_path / "raw.csv", "csv", neutralise=False) as writer:
        writer.write(table)
    assert pd.read_csv(tmp_path / "raw.csv").iloc[:, 0].tolist() == HOSTILE

    with BatchWriter(tmp_path / "raw.parquet", "parquet") as writer:
        writer.write(table)
    assert pq.read_table(tmp_path / "raw.parquet").column(HEADER).to_pylist() == HOSTILE


def test_no_csv_of_a_run_holds_a_formula(tmp_path):
    run_dir = run_hostile(tmp_path, neutralise=True)
    crate = tmp_path / "crate"
    with zipfile.ZipFile(run_dir / "marginals.crate.zip") as archive:
        archive.extractall(crate)
    written = sorted([*run_dir.rglob("*.csv"), *crate.rglob("*.csv")])
    names = {path.name for path in written}
    assert {"synthetic.csv", "data-dictionary.csv", "comparison.csv"} <= names
    assert {path: formula_cells(path) for path in written} == {path: [] for path in written}

    synthetic = pd.read_csv(run_dir / "marginals" / "data" / "synthetic.csv")
    assert synthetic.columns[0] == "'" + HEADER
    assert set(synthetic.iloc[:, 0]) & {"'" + value for value in HOSTILE}  # the attack reached the output, defused
    assert (synthetic["delta"] < 0).any() and synthetic["delta"].dtype.kind == "i"  # negatives stay numbers
    assert (synthetic["weight"] < 0).any() and synthetic["weight"].dtype.kind == "f"

    dictionary = pd.read_csv(run_dir / "marginals" / "data" / "data-dictionary.csv")
    assert dictionary[DICTIONARY_FLAG].all()
    assert "'" + HEADER in set(dictionary["column"])
    metadata = json.loads((crate / "ro-crate-metadata.json").read_text())
    entities = {entity["@id"]: entity for entity in metadata["@graph"]}
    assert "leading single quote" in entities["data/synthetic.csv"]["description"]
    assert "leading single quote" in entities["data/data-dictionary.csv"]["description"]


def test_the_setting_off_writes_raw_values_and_says_so(tmp_path):
    run_dir = run_hostile(tmp_path, neutralise=False)
    synthetic = pd.read_csv(run_dir / "marginals" / "data" / "synthetic.csv")
    assert synthetic.columns[0] == HEADER
    assert set(synthetic.iloc[:, 0]) & set(HOSTILE)
    dictionary = pd.read_csv(run_dir / "marginals" / "data" / "data-dictionary.csv")
    assert not dictionary[DICTIONARY_FLAG].any()
    with zipfile.ZipFile(run_dir / "marginals.crate.zip") as archive:
        metadata = json.loads(archive.read("ro-crate-metadata.json"))
    entities = {entity["@id"]: entity for entity in metadata["@graph"]}
    assert "written raw" in entities["data/synthetic.csv"]["description"]


def test_parquet_output_stays_raw_while_the_dictionary_is_neutralised(tmp_path):
    run_dir = run_hostile(tmp_path, neutralise=True, output_format="parquet")
    synthetic = pd.read_parquet(run_dir / "marginals" / "data" / "synthetic.parquet")
    assert HEADER in synthetic.columns and set(synthetic[HEADER]) & set(HOSTILE)
    assert formula_cells(run_dir / "marginals" / "data" / "data-dictionary.csv") == []


@pytest.mark.parametrize("value", ["true", "false"])
def test_the_setting_is_read_and_handed_to_workers(value):
    settings = Settings.from_env({"FAIRSYNTH_NEUTRALISE_CSV_FORMULAS": value})
    assert settings.neutralise_csv_formulas is (value == "true")
    assert Settings.from_env(settings.environment()).neutralise_csv_formulas is (value == "true")
