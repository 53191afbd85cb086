"""ydata models through the real isolated venv: missing values and dates round-trip, models stay in the worker."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import fairsynth.backends.ydata as ydata
from fairsynth.backends.base import ModelFileError
from fairsynth.backends.isolated import Job
from fairsynth.backends.signing import MODEL_KEY_ENV
from fairsynth.metadata.schema import ColumnKind, TableSchema

from helpers import alive, live_processes, wait_for

AVAILABLE, REASON = ydata.FastGenerator.availability()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not AVAILABLE, reason=f"ydata venv not built: {REASON}"),
]


def test_worker_runs_the_pinned_versions():
    result = ydata.runner().run(Job({"action": "versions"}, timeout=300))
    assert result["ydata-synthetic"] == "1.4.0" and result["tensorflow"].startswith("2.15.")
    assert result["numpy"].startswith("1.") and result["python"].startswith("3.11")


def test_missing_values_and_dates_round_trip(dated, tmp_path, monkeypatch):
    schema = TableSchema.infer(dated)
    generator = ydata.FastGenerator(max_fit_rows=400)  # the mixture's component search is quadratic in rows
    steps = []
    fitted = generator.fit(dated, schema, seed=4, progress=steps.append)
    assert steps and steps[0].backend == "ydata.fast"
    assert fitted.details["packages"]["ydata-synthetic"] == "1.4.0" and fitted.details["rows_fitted"] == 400
    synthetic = pd.concat(generator.sample(1500, seed=9, batch_rows=600), ignore_index=True)
    assert list(synthetic.columns) == list(dated.columns) and len(synthetic) == 1500
    for spec in schema.columns:
        column = synthetic[spec.name]
        assert abs(column.isna().mean() - spec.missing_share) <= 0.03, spec.name
        if spec.kind in (ColumnKind.DATE, ColumnKind.DATETIME) and spec.datetime_format:
            parsed = pd.to_datetime(column.dropna(), format=spec.datetime_format)
            assert parsed.between(pd.Timestamp(spec.minimum), pd.Timestamp(spec.maximum)).all(), spec.name
            assert parsed.nunique() > 50, f"{spec.name} collapsed"
        if spec.kind == ColumnKind.IDENTIFIER:
            assert column.is_unique, spec.name
    assert synthetic["visit_iso"].isna().any()  # the 8% gap came back, not filled in
    assert synthetic["visit_dt64"].notna().all()

    # saved and loaded, the model gives the same rows; this process never unpickles it
    monkeypatch.setenv(MODEL_KEY_ENV, str(tmp_path / "model-signing.key"))  # outside the model folder
    generator.save(tmp_path / "model")
    for name in ("ydata-model.pkl", "ydata-model.json", "ydata-model.README.txt", "codec.json"):
        assert (tmp_path / "model" / name).is_file(), name
    assert "never unpickles" in (tmp_path / "model" / "ydata-model.README.txt").read_text()

    def refuse(*_, **__):
        raise AssertionError("the main process must not unpickle the ydata model")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    again = pd.concat(
        ydata.FastGenerator.load(tmp_path / "model").sample(1500, seed=9, batch_rows=600), ignore_index=True
    )
    pd.testing.assert_frame_equal(again, synthetic)

    with open(tmp_path / "model" / "ydata-model.pkl", "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(ModelFileError, match="was not signed by this installation's key"):
        ydata.FastGenerator.load(tmp_path / "model")


def test_worker_error_comes_back_as_one_sentence(tmp_path):
    bad = pd.DataFrame({"x": [1.0, None, 3.0]})
    bad.to_parquet(tmp_path / "bad.parquet")
    request = {
        "action": "fit",
        "model": "fast",
        "data": "bad.parquet",
        "num_cols": ["x"],
        "cat_cols": [],
        "seed": 1,
        "model_file": "m.pkl",
    }
    with pytest.raises(Exception) as caught:
        ydata.runner().run(Job(request, inputs={"bad.parquet": tmp_path / "bad.parquet"}, timeout=300))
    assert getattr(caught.value, "kind", "") == "bad_request"
    assert "numeric columns hold missing values (x)" in str(caught.value)
    assert json.dumps(str(caught.value)).count("\\n") == 0


PARENT = """
import sys, numpy as np, pandas as pd
import fairsynth.backends.ydata as ydata
from fairsynth.backends.isolated import Job
rng = np.random.default_rng(0)
pd.DataFrame(rng.normal(size=(4000, 6)), columns=list("abcdef")).to_parquet(sys.argv[1])
request = {"action": "fit", "model": "fast", "data": "t.parquet", "num_cols": list("abcdef"), "cat_cols": [],
           "seed": 1, "model_file": "m.pkl"}
def started(message):
    print("started", flush=True)
ydata.runner().run(Job(request, inputs={"t.parquet": sys.argv[1]}, timeout=600), progress=started)
"""


def test_worker_exits_when_the_main_process_is_killed(tmp_path):
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path / "t.parquet")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout.readline().strip() == "started"  # the worker is fitting
        [worker] = live_processes(parent=parent.pid)
        job_dir = Path(os.readlink(f"/proc/{worker}/cwd"))
        parent.kill()  # SIGKILL: no finally block runs in the parent
        parent.wait()
        wait_for(lambda: not alive(worker), 30, message="the ydata worker outlived the killed main process")
        assert not job_dir.exists(), "the job directory was left behind"
    finally:
        if parent.poll() is None:
            parent.kill()
