"""Every registered ydata model fits and samples valid tables in 1.4.0 (tiny data, one epoch)."""

from __future__ import annotations

import gc
import tempfile

import pandas as pd
import pytest

import fairsynth.backends.ydata as ydata
from fairsynth.metadata.schema import ColumnKind, TableSchema

AVAILABLE, REASON = ydata.FastGenerator.availability()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not AVAILABLE, reason=f"ydata venv not built: {REASON}"),
]


@pytest.mark.parametrize(
    "cls, params",
    [
        (ydata.GaussianMixtureGenerator, {"max_fit_rows": 200}),
        (ydata.WGANGPGenerator, {"epochs": 1, "batch_size": 64}),
        (ydata.DRAGANGenerator, {"epochs": 1, "batch_size": 64}),
        (ydata.CramerGANGenerator, {"epochs": 1, "batch_size": 64}),
    ],
    ids=lambda value: getattr(value, "name", ""),
)
def test_model_fits_and_samples_the_demo_table(cls, params, demo, tmp_path, monkeypatch):
    private_temp = tmp_path / "temp"  # the runner's job directories and, through TMPDIR, the worker's
    private_temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(private_temp))
    monkeypatch.setattr(tempfile, "tempdir", str(private_temp))
    source = demo.head(300)
    schema = TableSchema.infer(source)
    generator = cls(**params)
    steps = []
    fitted = generator.fit(source, schema, seed=2, progress=steps.append)
    if "epochs" in params:
        assert fitted.epochs == 1 and len(fitted.losses) == 1 and steps[-1].step == 1
    synthetic = pd.concat(generator.sample(150, seed=5, batch_rows=100), ignore_index=True)
    assert list(synthetic.columns) == list(source.columns) and len(synthetic) == 150
    for spec in schema.columns:
        values = synthetic[spec.name].dropna()
        if spec.kind in (ColumnKind.DATE, ColumnKind.DATETIME):
            pd.to_datetime(values, format=spec.datetime_format)  # raises on any other format
        elif spec.kind == ColumnKind.IDENTIFIER:
            assert values.is_unique, spec.name
        elif spec.kind in (ColumnKind.INTEGER, ColumnKind.FLOAT):
            assert pd.to_numeric(values).between(spec.minimum, spec.maximum).all(), spec.name
    del generator
    gc.collect()  # the generator's own state directory goes with it
    left_behind = [p.name for p in private_temp.iterdir()]  # e.g. TensorFlow's __autograph_generated_file*.py
    assert not left_behind, f"the worker left temporary files: {left_behind}"
