"""The CLI ends bad requests with one sentence before anything touches disk, prints plain progress lines when its
output is not a terminal, and shows a failed backend with its own reason (exit status 1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fairsynth.backends.base import Progress
from fairsynth.services.entry import cli
from fairsynth.services.entry.cli import ProgressLines, app
from fairsynth.services.jobs.executors import death_sentence

runner = CliRunner()


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch) -> Path:
    """Each test's own job store."""
    monkeypatch.setenv("FAIRSYNTH_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--config", "{list_yaml}"], "its top level is a list"),
        (["--seed", "-1"], "'seed' is invalid: must be >= 0"),
        (["--encoding", "bogus-enc"], "'bogus-enc' is not a text encoding"),
        (["--separator", ";;"], "The separator must be one character"),
        (["--epochs", "0"], "epochs must be >= 1"),
        (["--backend", "marginals", "--set", "marginals.bogus=1"], "unknown parameter 'bogus'"),
    ],
)
def test_bad_requests_end_in_one_sentence_before_a_run_folder_exists(tmp_path, args, expected):
    list_yaml = tmp_path / "list.yaml"
    list_yaml.write_text("- marginals\n- tvae\n")
    out = tmp_path / "run"
    given = [a.format(list_yaml=list_yaml) for a in args]
    result = runner.invoke(app, ["generate", *given, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not out.exists()


def test_inspect_refuses_an_unknown_encoding_in_one_sentence(tmp_path):
    result = runner.invoke(app, ["inspect", "--encoding", "bogus-enc"])
    assert result.exit_code == 2 and "'bogus-enc' is not a text encoding" in result.output


def test_progress_lines_one_per_stage_then_per_step_or_interval():
    clock = iter([0.0, 1, 2, 3, 4, 5, 70, 71])
    shown = []
    lines = ProgressLines(percent=25, seconds=60, clock=lambda: next(clock))
    original = cli.console.print
    cli.console.print = lambda text, **_: shown.append(text)
    try:
        for step in (0, 10, 20, 30, 40, 60):  # 0% new stage; 10, 20 same step; 30 new step; 40 same; 60 new step
            lines(Progress("tvae", "fit", step, total=100))
        lines(Progress("tvae", "fit", 61, total=100))  # a minute after the last line: shown again
        lines(Progress("tvae", "sample", 1, total=1000))  # a new stage
    finally:
        cli.console.print = original
    assert [line.split(" ", 1)[1] for line in shown] == [
        "tvae fit 0% (0/100)",
        "tvae fit 30% (30/100)",
        "tvae fit 60% (60/100)",
        "tvae fit 61% (61/100)",
        "tvae sample 0% (1/1,000)",
    ]


def test_generate_prints_progress_lines_when_output_is_not_a_terminal(monkeypatch):
    def fake_run_job(request, progress):
        progress(Progress("marginals", "fit", 1, total=1))
        raise SystemExit(0)

    monkeypatch.setattr("fairsynth.services.jobs.executors.run_job", fake_run_job)
    result = runner.invoke(app, ["generate", "--backend", "marginals"])  # CliRunner's output is no terminal
    assert "marginals fit 100% (1/1)" in result.output


@pytest.mark.slow
def test_a_piped_run_prints_progress_lines_as_it_goes(tmp_path, data_dir):
    config = tmp_path / "fast.yaml"
    config.write_text("anonymeter: false\nevaluation_rows: 100\n")
    command = [str(Path(sys.executable).parent / "fairsynth")]  # the installed command, as a scheduler runs it
    done = subprocess.run(
        [
            *command,
            "generate",
            "-b",
            "marginals",
            "--rows",
            "200",
            "--config",
            str(config),
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,  # stdout a pipe, as under CI, nohup or a scheduler
        text=True,
        env={**os.environ, "FAIRSYNTH_DATA_DIR": str(data_dir)},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    progress = [line for line in done.stdout.splitlines() if " marginals " in f" {line} " and "%" in line]
    assert progress and done.stdout.index(progress[0]) < done.stdout.index("run:")
    assert (tmp_path / "r" / "logs" / "marginals.log").exists()  # the task's log is kept in the run folder


def test_a_failed_backend_shows_its_reason_in_the_table_and_exits_1(tmp_path, monkeypatch):
    from fairsynth.backends.marginals import MarginalsGenerator

    def explode(*_args, **_kwargs):
        raise RuntimeError("simulated fit failure")

    monkeypatch.setattr(MarginalsGenerator, "fit", explode)
    monkeypatch.setenv("FAIRSYNTH_WORKERS", "1")
    from fairsynth.services.jobs import executors

    monkeypatch.setattr(executors.LocalExecutor, "_spawn", _in_process_spawn)
    config = tmp_path / "fast.yaml"
    config.write_text("anonymeter: false\nevaluation_rows: 100\n")
    result = runner.invoke(
        app,
        ["generate", "-b", "marginals", "-b", "tvae", "--epochs", "1", "--rows", "100", "--config", str(config)]
        + ["--out", str(tmp_path / "r")],
    )
    assert result.exit_code == 1, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("│ marginals"))
    assert "simulated fit failure" in row
    assert next(line for line in result.output.splitlines() if line.startswith("│ tvae")).split("│")[2].strip() == "ok"


def _in_process_spawn(self, task):
    """Run the task in a thread of this process (so a monkeypatched backend fails), looking like a finished Popen."""
    from fairsynth.services.jobs.tasks import execute_task

    execute_task(task.id, self.settings, claimed=True)
    return subprocess.Popen([sys.executable, "-c", "pass"])


def test_a_dead_task_is_told_by_its_exception_not_library_log_lines(tmp_path):
    log = tmp_path / "sdv.ctgan.log"
    log.write_text(
        "2024-01-01 INFO rdt.transformers: Fitting FloatFormatter\n"
        "Traceback (most recent call last):\n  File 'x.py', line 1\n"
        "torch.OutOfMemoryError: CUDA out of memory; tried to allocate 2 GiB\n"
        "2024-01-01 INFO rdt.transformers: Fitting LabelEncoder\n"
        "2024-01-01 INFO sdv.single_table: Fitting CTGAN\n"
    )
    sentence = death_sentence("the task's process exited with code 1 before finishing", log)
    assert "torch.OutOfMemoryError: CUDA out of memory" in sentence
    assert "INFO" not in sentence and "rdt" not in sentence
    assert sentence.endswith("its log is logs/sdv.ctgan.log in the run folder.")
