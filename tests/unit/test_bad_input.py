"""Bad input: one clear sentence saying what is wrong and what to do, and nothing half-written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fairsynth.backends.marginals import MarginalsGenerator
from fairsynth.metadata.schema import ColumnKind, TableSchema
from fairsynth.services.entry.cli import app
from fairsynth.services.run.config import BackendSpec, GenerationRequest
from fairsynth.services.run.pipeline import run
from fairsynth.services.run.tables import InputError, read_table

from helpers import allowed_levels

runner = CliRunner()


def write(tmp_path, name: str, content: bytes | str) -> str:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


def one_sentence(message: str) -> bool:
    return message.count(". ") == 0 and message.endswith(".") and "\n" not in message


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("empty.csv", "", "is empty"),
        ("header.csv", "a,b,c\n", "has a header but no rows"),
        ("one.csv", "a\n" + "1\n" * 20, "has only one column"),
        ("dupes.csv", "a,b,a\n" + "1,2,3\n" * 20, r"repeated column names \(a\); rename them"),
        ("few.csv", "a,b\n" + "1,2\n" * 5, "has 5 rows; at least 10"),
    ],
)
def test_bad_tables_are_refused_with_one_sentence(tmp_path, name, content, expected):
    path = write(tmp_path, name, content)
    with pytest.raises(InputError, match=expected) as info:
        read_table(path)
    assert one_sentence(str(info.value)), str(info.value)


def test_non_utf8_bytes_are_named_with_the_fix(tmp_path):
    path = write(tmp_path, "latin.csv", b"name,score\n" + "Jos\xe9,1\n".encode("latin-1") * 20)
    with pytest.raises(InputError, match=r"not valid utf-8 text \(byte 0xe9.*--encoding latin-1"):
        read_table(path)
    assert read_table(path, encoding="latin-1")["name"].iloc[0] == "Jos\xe9"


def test_semicolon_files_are_read_not_refused(tmp_path):
    path = write(tmp_path, "semi.csv", "a;b\n" + "1;x\n" * 20)
    assert list(read_table(path).columns) == ["a", "b"]


def test_all_null_column_is_kept_empty_with_a_note(tmp_path, demo):
    table = demo.assign(unused=None)
    schema = TableSchema.infer(table)
    assert any("'unused' is empty in every row" in w for w in schema.warnings)
    generator = MarginalsGenerator()
    generator.fit(table, schema, seed=0)
    out = next(generator.sample(100, seed=0))
    assert "unused" in out and out["unused"].isna().all()


def test_mixed_numbers_and_text_is_categorical_with_a_note():
    rng = np.random.default_rng(0)
    values = rng.integers(1, 50, 300).astype(str).astype(object)
    values[:12] = "<5"
    table = pd.DataFrame({"result": values, "g": rng.choice(["a", "b"], 300)})
    schema = TableSchema.infer(table)
    assert schema.column("result").kind == ColumnKind.CATEGORICAL
    note = next(w for w in schema.warnings if "'result'" in w)
    assert "mixes numbers with text (e.g. '<5')" in note and "set its kind to float" in note
    forced = schema.with_overrides(kinds={"result": "float"})
    generator = MarginalsGenerator()
    generator.fit(table, forced, seed=0)
    out = next(generator.sample(500, seed=0))
    assert pd.to_numeric(out["result"].dropna()).between(1, 49).all()


@pytest.mark.slow
def test_a_hundred_thousand_level_categorical_is_capped_not_blown_up():
    rng = np.random.default_rng(1)
    n = 150_000
    codes = np.concatenate([rng.choice([f"C{i}" for i in range(20)], n - 100_000), [f"R{i}" for i in range(100_000)]])
    table = pd.DataFrame({"code": codes, "x": rng.normal(size=n)})
    schema = TableSchema.infer(table)
    assert schema.column("code").kind == ColumnKind.CATEGORICAL
    assert any("has 100,020 distinct values" in w for w in schema.warnings)
    generator = MarginalsGenerator()
    generator.fit(table, schema, seed=0)
    kept = next(c for c in generator.codec.columns if c.name == "code")
    assert len(kept.levels) <= 500 and not any(v.startswith("R") for v in kept.levels)
    out = next(generator.sample(5_000, seed=0))
    assert out["code"].isin(allowed_levels(pd.Series(codes))).all()  # the 100,000 one-row levels never return


def test_unknown_backend_fails_before_any_work(tmp_path):
    result = runner.invoke(app, ["generate", "--backend", "nope", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "Unknown backend 'nope'; choose one of:" in result.output
    assert not (tmp_path / "run").exists()


def test_bad_backend_parameters_fail_in_one_sentence_before_any_work(tmp_path):
    args = ["generate", "--out", str(tmp_path / "run"), "--set", "tvae.epochs=0", "--set", "tvae.patience=soon"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    message = " ".join(result.output.split()).removeprefix("error: ")
    assert message == "Backend 'tvae': epochs must be >= 1 (got '0'); patience must be a whole number (got 'soon')."
    assert one_sentence(message) and not (tmp_path / "run").exists()


def test_backends_lists_one_backends_parameters_from_its_schema():
    result = runner.invoke(app, ["backends", "sdv.ctgan"])
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 4}
    assert set(rows) == {"epochs", "batch_size"}
    assert "500" in rows["batch_size"] and ">= 1 and multiple of 10" in rows["batch_size"]


def test_cli_reports_bad_files_in_one_line(tmp_path):
    path = write(tmp_path, "few.csv", "a,b\n" + "1,2\n" * 3)
    result = runner.invoke(app, ["generate", path, "--backend", "marginals", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "few.csv has 3 rows; at least 10 are needed" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_failed_backend_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    def explode(self, n_rows, *, seed):
        raise RuntimeError("simulated crash while sampling")

    monkeypatch.setattr(MarginalsGenerator, "_sample_encoded", explode)
    request = GenerationRequest(
        backends=[BackendSpec(name="marginals"), BackendSpec(name="sdv.gaussian_copula")],
        rows=500,
        output_dir=str(tmp_path / "run"),
    )
    result = run(request)
    failed, ok = result.outcomes
    assert not failed.ok and "simulated crash" in failed.error and ok.ok
    entries = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert "marginals" not in entries and not any(e.endswith(".partial") for e in entries)
    assert (tmp_path / "run" / "sdv.gaussian_copula" / "data" / "synthetic.csv").exists()
    assert result.comparison().set_index("backend").loc["marginals", "status"] == "failed"


def test_output_directory_that_holds_files_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("mine")
    result = runner.invoke(app, ["generate", "--backend", "marginals", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "already holds files" in result.output
    assert (tmp_path / "run" / "keep.txt").read_text() == "mine"
