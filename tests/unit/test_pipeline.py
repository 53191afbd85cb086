"""One run through the pipeline: evaluation on the holdout, reports, the gate and crates."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fairsynth.backends.marginals import MarginalsGenerator
from fairsynth.metadata.validate import validate_crate
from fairsynth.services.run.config import BackendSpec, GenerationRequest
from fairsynth.services.run.pipeline import run
from fairsynth.services.settings import Settings

CRATE = {
    "authors": [{"name": "Ada Lovelace", "affiliation": {"name": "University College London", "ror": "02jx3x895"}}]
}
FAIRSYNTH = str(Path(sys.executable).with_name("fairsynth"))


@pytest.fixture
def copier(monkeypatch):
    """Make `marginals` return its training rows (as encoded), the worst possible privacy."""
    original_fit = MarginalsGenerator._fit_encoded

    def fit(self, encoded, *, seed, progress):
        self._copied = encoded.reset_index(drop=True)
        return original_fit(self, encoded, seed=seed, progress=progress)

    def sample(self, n_rows, *, seed):
        return self._copied.sample(n=n_rows, replace=n_rows > len(self._copied), random_state=seed)

    monkeypatch.setattr(MarginalsGenerator, "_fit_encoded", fit)
    monkeypatch.setattr(MarginalsGenerator, "_sample_encoded", sample)


@pytest.mark.slow
def test_a_copying_backend_is_blocked_and_never_packaged(tmp_path, copier):
    request = GenerationRequest(
        backends=[BackendSpec(name="marginals"), BackendSpec(name="sdv.gaussian_copula")],
        rows=1000,
        output_dir=str(tmp_path / "run"),
        package_crates=True,
        crate=CRATE,
        anonymeter=False,
        seed=2,
    )
    result = run(request)
    copied, honest = result.outcomes
    assert copied.gate["decision"] == "block"
    assert any("cop" in reason for reason in copied.gate["reasons"])
    assert copied.crate is None and "release gate blocked" in copied.error
    assert not (tmp_path / "run" / "marginals.crate.zip").exists()
    assert honest.gate["decision"] != "block" and honest.crate
    assert validate_crate(honest.crate, limits=Settings()).ok  # roc-validator on the zip as shipped, and unpacked
    metrics = json.loads((tmp_path / "run" / "marginals" / "evaluation" / "metrics.json").read_text())
    assert metrics["privacy"]["exact_copies"]["synthetic_rows_checked"] == 1000
    assert metrics["privacy"]["exact_copies"]["count"] > 900  # rows with rare codes are re-drawn by the codec
    report = (tmp_path / "run" / "marginals" / "evaluation" / "report.html").read_text()
    assert "block" in report.lower()
    assert not re.search(r"<(script|link)[^>]+(src|href)=[\"']https?://", report)  # nothing fetched from a CDN
    assert (tmp_path / "run" / "comparison.html").is_file()


@pytest.mark.slow
def test_cli_evaluate_any_synthetic_file(tmp_path, demo):
    half = len(demo) // 2
    demo.iloc[:half].to_csv(tmp_path / "train.csv", index=False)
    demo.iloc[half:].to_csv(tmp_path / "holdout.csv", index=False)
    done = subprocess.run(
        [
            FAIRSYNTH,
            "evaluate",
            str(tmp_path / "train.csv"),
            str(tmp_path / "train.csv"),
            "--holdout",
            str(tmp_path / "holdout.csv"),
            "--out",
            str(tmp_path / "eval"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "gate: block" in done.stdout
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["privacy"]["exact_copies"]["count"] == half
    report = (tmp_path / "eval" / "report.html").read_text()
    assert len(report) > 100_000  # plotly inlined, no CDN
    # the same column-pair figures as the Compare page: real next to synthetic, then the difference
    assert "Association between columns" in report and "Association difference" in report


def test_sampling_progress_counts_the_rows_written_not_the_evaluation_sample(tmp_path):
    events = []
    request = GenerationRequest(
        backends=[BackendSpec(name="marginals")],
        rows=700,
        batch_rows=200,
        evaluation_rows=100,
        anonymeter=False,
        output_dir=str(tmp_path / "run"),
    )
    run(request, progress=events.append)
    sampled = [(e.step, e.total) for e in events if e.stage == "sample"]
    assert sampled == [(200, 700), (400, 700), (600, 700), (700, 700)]


def test_an_interrupted_backend_leaves_no_partial_folder(tmp_path, monkeypatch):
    def interrupted(self, encoded, *, seed, progress):
        raise KeyboardInterrupt  # Ctrl-C in the middle of a fit

    monkeypatch.setattr(MarginalsGenerator, "_fit_encoded", interrupted)
    request = GenerationRequest(backends=[BackendSpec(name="marginals")], output_dir=str(tmp_path / "run"))
    with pytest.raises(KeyboardInterrupt):
        run(request)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["request.json", "schema.json"]
