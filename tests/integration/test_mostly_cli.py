"""`fairsynth generate --backend tvae --backend mostly.argn --second-evaluator` on SUPPORT2, end to end: both backends'
tables, both evaluators' scores in metrics.json, the comparison and the report, and crates that validate.

Needs the MOSTLY AI venv (`make install-mostly`); skipped without it, like tests/unit/test_mostly.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import fairsynth.backends.mostly as mostly

BACKENDS = ("tvae", "mostly.argn")
FAIRSYNTH = str(Path(sys.executable).with_name("fairsynth"))
AVAILABLE, REASON = mostly.ARGNGenerator.availability()
AUTHOR = "Ada Lovelace;0000-0002-1825-0097;University College London;02jx3x895"
pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not AVAILABLE, reason=f"the MOSTLY AI venv is not built: {REASON}"),
]


def test_tvae_and_mostly_argn_scored_by_both_evaluators_and_packaged(tmp_path, support2):
    source = tmp_path / "support2.csv"
    support2.sample(n=1000, random_state=5).to_csv(source, index=False)
    config = tmp_path / "request.json"
    config.write_text(json.dumps({"anonymeter": False}))  # the slowest privacy measure is not what this checks
    run = tmp_path / "run"
    args = [FAIRSYNTH, "generate", str(source), "--config", str(config), "--out", str(run), "--rows", "600"]
    args += ["--seed", "3", "--second-evaluator", "--set", "tvae.epochs=3"]
    args += ["--set", "mostly.argn.max_epochs=2", "--set", "mostly.argn.max_training_time=0.3"]
    args += ["--crate", "--title", "Synthetic SUPPORT2 sample", "--description", "Two generators, two evaluators"]
    args += ["--author", AUTHOR]
    for backend in BACKENDS:
        args += ["--backend", backend]
    done = subprocess.run(args, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Accuracy (mostlyai-qa)" in done.stdout  # the run table shows it beside quality

    columns = list(pd.read_csv(source, nrows=1).columns)
    comparison = pd.read_csv(run / "comparison.csv").set_index("backend")
    for backend in BACKENDS:
        synthetic = pd.read_csv(run / backend / "data" / "synthetic.csv")
        assert list(synthetic.columns) == columns and len(synthetic) == 600, backend
        quality = json.loads((run / backend / "evaluation" / "metrics.json").read_text())["quality"]
        assert 0 < quality["quality"] <= 1 and 0 < quality["qa_accuracy"] <= 1, (backend, quality)
        assert quality["second_evaluator"]["packages"]["mostlyai-qa"] == "1.10.11", backend
        assert comparison.loc[backend, "qa_accuracy"] == pytest.approx(quality["qa_accuracy"])
        assert comparison.loc[backend, "quality"] == pytest.approx(quality["quality"])
        assert "Accuracy (mostlyai-qa)" in (run / backend / "evaluation" / "report.html").read_text()
        validated = subprocess.run(
            [FAIRSYNTH, "validate", str(run / f"{backend}.crate.zip")], capture_output=True, text=True, timeout=600
        )
        assert validated.returncode == 0, backend + ": " + validated.stdout[-3000:] + validated.stderr[-2000:]
