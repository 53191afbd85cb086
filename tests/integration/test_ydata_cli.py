"""`fairsynth generate` on SUPPORT2 with ydata backends: valid tables thanks to the shared codec."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import fairsynth.backends.ydata as ydata
from fairsynth.backends.registry import list_backends
from fairsynth.metadata.schema import ColumnKind, TableSchema
from fairsynth.services.run.tables import read_table

from helpers import allowed_levels

BACKENDS = ("ydata.fast", "ydata.ctgan")
FAIRSYNTH = str(Path(sys.executable).with_name("fairsynth"))
AVAILABLE, REASON = ydata.FastGenerator.availability()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not AVAILABLE, reason=f"ydata venv not built: {REASON}"),
]


def declared_environment(tmp_path: Path) -> dict[str, str]:
    """The CLI's environment; declares the ydata entry points if the installed metadata lacks them."""
    env = dict(os.environ)
    if {b.name for b in list_backends()} >= set(BACKENDS):
        return env
    dist = tmp_path / "entry-points" / "fairsynth_ydata_entry_points-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fairsynth-ydata-entry-points\nVersion: 0\n")
    (dist / "entry_points.txt").write_text(
        "[fairsynth.backends]\n"
        + "".join(
            f"{name} = fairsynth.backends.ydata:{cls}\n"
            for name, cls in (("ydata.fast", "FastGenerator"), ("ydata.ctgan", "CTGANGenerator"))
        )
    )
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(dist.parent)) if p)
    return env


def test_generate_on_support2_with_ydata_backends(tmp_path, support2):
    source_path = tmp_path / "support2.csv"
    sample = support2.sample(n=2000, random_state=3).reset_index(drop=True)
    # SUPPORT2 has no dates: add an admission date (dd/mm/YYYY, 6% missing) built from its numbers
    admitted = pd.Timestamp("1989-06-01") + pd.to_timedelta((sample["num_age"] * 17).round() % 1800, unit="D")
    sample["admission_date"] = admitted.dt.strftime("%d/%m/%Y").where(sample.index % 16 != 0, None)
    sample.to_csv(source_path, index=False)
    args = [
        FAIRSYNTH,
        "generate",
        str(source_path),
        "--out",
        str(tmp_path / "run"),
        "--seed",
        "7",
        "--rows",
        "1500",
        "--epochs",
        "2",
        "--format",
        "csv",
    ]
    for backend in BACKENDS:
        args += ["--backend", backend]
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, env=declared_environment(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    source = read_table(source_path)
    schema = TableSchema.infer(source)
    assert schema.column("admission_date").kind == ColumnKind.DATE
    for backend in BACKENDS:
        synthetic = read_table(tmp_path / "run" / backend / "data" / "synthetic.csv")
        assert list(synthetic.columns) == list(source.columns) and len(synthetic) == 1500, backend
        for spec in schema.columns:
            column, where = synthetic[spec.name], f"{backend}: {spec.name}"
            assert abs(column.isna().mean() - spec.missing_share) <= 0.03, f"{where} missing share"
            if spec.kind in (ColumnKind.INTEGER, ColumnKind.FLOAT):
                assert pd.to_numeric(column.dropna()).between(spec.minimum, spec.maximum).all(), where
            elif spec.kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
                assert set(column.dropna().astype(str)) <= allowed_levels(source[spec.name]), where
            elif spec.kind in (ColumnKind.DATE, ColumnKind.DATETIME):
                parsed = pd.to_datetime(column.dropna(), format=spec.datetime_format)  # raises on another format
                assert parsed.between(pd.Timestamp(spec.minimum), pd.Timestamp(spec.maximum)).all(), where
            elif spec.kind == ColumnKind.IDENTIFIER:
                assert column.dropna().is_unique, where
        metrics = json.loads((tmp_path / "run" / backend / "evaluation" / "metrics.json").read_text())
        assert 0.0 < metrics["quality"]["quality"] <= 1.0
        assert (tmp_path / "run" / backend / "model" / "ydata-model.pkl").is_file()
    ctgan_config = json.loads((tmp_path / "run" / "ydata.ctgan" / "config" / "generation.json").read_text())
    assert '"epochs": 2' in json.dumps(ctgan_config)
    comparison = pd.read_csv(tmp_path / "run" / "comparison.csv").set_index("backend")
    assert (comparison.loc[list(BACKENDS), "status"] == "ok").all()
