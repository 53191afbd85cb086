"""mostly.argn and mostly.argn.dp: availability without the venv, parameters, and the real worker in .venv-mostly.

The tests that run the worker need the MOSTLY AI venv (`make install-mostly`) and are skipped without it.
"""

from __future__ import annotations

import ast
import sys
import threading
import time
from pathlib import Path

import pytest

import fairsynth.backends.mostly as mostly
from fairsynth.backends import registry
from fairsynth.backends.base import BackendError, BackendUnavailable, ModelFileError
from fairsynth.backends.isolated import DockerRunner, SubprocessRunner, WorkerCancelled, WorkerTimeout
from fairsynth.metadata.schema import TableSchema

ALL = (mostly.ARGNGenerator, mostly.DPARGNGenerator)
needs_venv = pytest.mark.skipif(
    not mostly.environment().availability()[0], reason="the MOSTLY AI venv is not built (make install-mostly)"
)
QUICK = {"max_epochs": 1, "max_training_time": 0.2}


def test_missing_venv_reports_the_reason_and_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("FAIRSYNTH_MOSTLY_VENV", str(tmp_path / "absent"))
    for cls in ALL:
        available, reason = cls.availability()
        assert not available
        assert str(tmp_path / "absent") in reason and "make install-mostly" in reason
    names = {info.name: info for info in registry.list_backends()}
    assert names["mostly.argn"].available is False and "make install-mostly" in names["mostly.argn"].reason


def test_broken_venv_names_the_missing_packages(monkeypatch, tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)  # a Python without the engine
    monkeypatch.setenv("FAIRSYNTH_MOSTLY_VENV", str(venv))
    available, reason = mostly.ARGNGenerator.availability()
    assert not available and "broken" in reason and "mostlyai.engine" in reason


def test_fit_without_the_venv_fails_with_the_fix(monkeypatch, tmp_path, demo):
    monkeypatch.setenv("FAIRSYNTH_MOSTLY_VENV", str(tmp_path / "absent"))
    small = demo.head(50)
    with pytest.raises(BackendUnavailable, match="make install-mostly"):
        mostly.ARGNGenerator().fit(small, TableSchema.infer(small), seed=1)


def test_runner_is_chosen_by_configuration(monkeypatch):
    monkeypatch.delenv("FAIRSYNTH_MOSTLY_RUNNER", raising=False)
    assert isinstance(mostly.runner(), SubprocessRunner)
    monkeypatch.setenv("FAIRSYNTH_MOSTLY_RUNNER", "docker")
    chosen = mostly.runner()
    assert isinstance(chosen, DockerRunner) and chosen.python == "/opt/fairsynth-mostly/bin/python"
    assert chosen.environment["HF_HUB_OFFLINE"] == "1"  # nothing is fetched at run time
    monkeypatch.setenv("FAIRSYNTH_MOSTLY_RUNNER", "kubernetes")
    with pytest.raises(BackendError, match="'subprocess' or 'docker'"):
        mostly.runner()


def test_parameters_reach_the_worker_request():
    request = mostly.ARGNGenerator(max_epochs=7, max_training_time=2.5, batch_size=64, value_protection=False)
    assert request._engine_request() == {
        "engine": {
            "model": "MOSTLY_AI/Medium",
            "max_epochs": 7,
            "max_training_time": 2.5,
            "batch_size": 64,
            "value_protection": False,
            "device": "auto",
        }
    }
    dp = mostly.DPARGNGenerator(epsilon=2.0)._engine_request()
    assert dp["differential_privacy"]["max_epsilon"] == 2.0 and dp["differential_privacy"]["delta"] == 1e-5
    assert "differential_privacy" not in mostly.ARGNGenerator()._engine_request()


@pytest.mark.parametrize("bad", [{"max_epochs": 0}, {"max_training_time": 0}, {"epsilon": -1.0}, {"model_size": "XL"}])
def test_bad_parameters_are_refused_in_one_sentence(bad):
    with pytest.raises(BackendError) as caught:
        mostly.DPARGNGenerator(**bad)
    message = str(caught.value)
    assert ". " not in message and message.endswith(".") and next(iter(bad)) in message


def test_capabilities_describe_the_engine():
    for cls in ALL:
        assert cls.capabilities.family == "mostly" and cls.capabilities.license == "Apache-2.0"
        assert cls.capabilities.package == "mostlyai-engine"
    assert mostly.DPARGNGenerator.capabilities.dp and not mostly.ARGNGenerator.capabilities.dp


def test_worker_imports_nothing_from_fairsynth():
    tree = ast.parse(Path(mostly.WORKER).read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not any(isinstance(node, ast.ImportFrom) and node.level for node in ast.walk(tree))
    assert imported <= set(sys.stdlib_module_names) | {"pandas", "mostlyai"}, imported


def test_a_model_folder_changed_after_saving_is_refused(tmp_path, demo):
    generator = mostly.ARGNGenerator()
    small = demo.head(40)
    from fairsynth.backends.preprocessing import TableCodec

    generator.codec = TableCodec.fit(small, TableSchema.infer(small))
    for name in mostly.MODEL_FILES:
        (generator._state / name).parent.mkdir(parents=True, exist_ok=True)
        (generator._state / name).write_text(name)
    generator.save(tmp_path)
    assert mostly.ARGNGenerator.load(tmp_path).codec is not None
    (tmp_path / mostly.MODEL_DIR / mostly.MODEL_FILES[0]).write_text("swapped")
    with pytest.raises(ModelFileError, match="changed after it was saved"):
        mostly.ARGNGenerator.load(tmp_path)


# -- the real worker in .venv-mostly --------------------------------------------------------------
@pytest.mark.slow
@needs_venv
def test_fit_sample_save_load_through_the_registry(tmp_path, demo):
    small = demo.head(300)
    generator = registry.create("mostly.argn", **QUICK)
    seen = []
    result = generator.fit(small, TableSchema.infer(small), seed=3, progress=seen.append)
    assert result.details["packages"]["mostlyai-engine"] == "2.7.3" and result.epsilon is None
    assert any(p.stage == "fit" and p.loss is not None for p in seen)
    batches = list(generator.sample(250, seed=1, batch_rows=100))
    assert [len(b) for b in batches] == [100, 100, 50]
    assert list(batches[0].columns) == list(small.columns)
    generator.save(tmp_path)
    assert (tmp_path / mostly.MODEL_DIR / "ModelStore/model-data/model-weights.pt").is_file()
    assert not list(tmp_path.rglob("*.pkl"))
    reloaded = mostly.ARGNGenerator.load(tmp_path)
    assert len(next(reloaded.sample(30, seed=2))) == 30


@pytest.mark.slow
@needs_venv
def test_dp_fit_records_the_epsilon_spent(demo):
    small = demo.head(300)
    generator = registry.create("mostly.argn.dp", epsilon=5.0, **QUICK)
    result = generator.fit(small, TableSchema.infer(small), seed=3)
    assert result.epsilon is not None and 0 < result.epsilon <= 5.0
    assert result.delta and result.details["target_epsilon"] == 5.0


@pytest.mark.slow
@needs_venv
def test_timeout_stops_the_worker(monkeypatch, demo):
    monkeypatch.setenv("FAIRSYNTH_MOSTLY_TIMEOUT", "2")
    small = demo.head(100)
    start = time.monotonic()
    with pytest.raises(WorkerTimeout, match="2 s limit"):
        mostly.ARGNGenerator(**QUICK).fit(small, TableSchema.infer(small), seed=1)
    assert time.monotonic() - start < 15


@pytest.mark.slow
@needs_venv
def test_cancel_during_fit_stops_the_worker(demo):
    small = demo.head(100)
    generator = mostly.ARGNGenerator(max_epochs=50, max_training_time=5)
    started = threading.Event()
    threading.Timer(60, started.set).start()  # the engine's first progress line may be slow on a busy machine
    caught: list[BaseException] = []

    def fit() -> None:
        try:
            generator.fit(small, TableSchema.infer(small), seed=1, progress=lambda _: started.set())
        except BaseException as exc:  # handed to the test thread
            caught.append(exc)

    worker = threading.Thread(target=fit)
    worker.start()
    started.wait(90)
    generator.cancel()
    worker.join(30)
    assert not worker.is_alive() and caught and isinstance(caught[0], WorkerCancelled)


# -- the second evaluator (mostlyai-qa) ---------------------------------------------------------------
def test_second_evaluator_without_the_venv_says_why_and_leaves_accuracy_empty(monkeypatch, tmp_path, demo):
    from fairsynth.services.run.evaluation.results import Skipped
    from fairsynth.services.run.evaluation.suite import _quality

    monkeypatch.setenv("FAIRSYNTH_MOSTLY_VENV", str(tmp_path / "absent"))
    train, holdout = demo.iloc[:300], demo.iloc[300:400]
    quality = _quality(train, holdout, demo.iloc[400:700], TableSchema.infer(demo), seed=0, second_evaluator=True)
    assert quality.qa_accuracy is None and quality.quality is not None
    assert isinstance(quality.second_evaluator, Skipped) and "make install-mostly" in quality.second_evaluator.skipped


def test_second_evaluator_is_shown_only_when_asked_for():
    from fairsynth.services.run.evaluation.metrics import BY_NAME, QA_ACCURACY
    from fairsynth.services.run.report import ASKED_FOR, SCORECARD

    assert BY_NAME["qa_accuracy"] is QA_ACCURACY and QA_ACCURACY in SCORECARD and QA_ACCURACY in ASKED_FOR


def paired(rows: int, seed: int, *, broken: bool = False):
    """A category that decides a number's range; `broken` shuffles the number, keeping both columns' distributions."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    group = rng.choice(list("ABCDE"), rows)
    value = pd.Series(group).map(dict(zip("ABCDE", range(0, 50, 10)))).to_numpy() + rng.uniform(0, 10, rows)
    if broken:
        value = rng.permutation(value)
    return pd.DataFrame({"group": group, "value": value})


@pytest.mark.slow
@needs_venv
def test_second_evaluator_scores_kept_pairs_higher_than_broken_ones():
    from fairsynth.services.run.evaluation.second import evaluate_second

    train, holdout = paired(1000, 0), paired(300, 1)
    schema = TableSchema.infer(train)
    like = evaluate_second(train, holdout, paired(1000, 2), schema)
    broken = evaluate_second(train, holdout, paired(1000, 2, broken=True), schema)
    assert 0.8 < like.accuracy <= 1.0 and like.univariate > 0.9 and broken.univariate > 0.9
    assert broken.bivariate < like.bivariate - 0.2 and broken.accuracy < like.accuracy
    assert like.packages["mostlyai-qa"] == "1.10.11" and like.dcr_share is not None


def with_second(result, second):
    """An evaluation result as if the run had asked for the second evaluator and got `second`."""
    quality = result.quality.model_copy(
        update={"qa_accuracy": getattr(second, "accuracy", None), "second_evaluator": second}
    )
    return result.model_copy(update={"quality": quality})


def test_the_report_and_the_comparison_show_the_second_evaluator_beside_quality(demo):
    from fairsynth.services.run.evaluation.results import SecondEvaluator, Skipped
    from fairsynth.services.run.evaluation.suite import evaluate
    from fairsynth.services.run.report import render_comparison, scorecard

    small = demo.head(600)
    plain = evaluate(
        small.iloc[:300], small.iloc[300:400], small.iloc[400:], TableSchema.infer(small), anonymeter=False
    )
    scored = with_second(plain, SecondEvaluator(accuracy=0.873))
    why = "mostlyai-qa was not run: the MOSTLY AI environment is missing; build it with: make install-mostly."
    skipped = with_second(plain, Skipped(skipped=why))

    assert "Accuracy (mostlyai-qa)" not in [card.label for card in scorecard(plain)]  # not asked for: no card
    cards = scorecard(scored)
    labels = [card.label for card in cards]
    assert labels[labels.index("Quality") + 1] == "Accuracy (mostlyai-qa)"
    assert cards[labels.index("Accuracy (mostlyai-qa)")].value == "0.873"
    # asked for but not measured: the card says why instead of vanishing
    card = next(card for card in scorecard(skipped) if card.label == "Accuracy (mostlyai-qa)")
    assert card.value == "–" and "make install-mostly" in card.hint

    header = render_comparison({"a": scored, "b": plain}).split('id="comparison"')[1].split("</tr>")[0]
    assert header.index(">Quality<") < header.index(">Accuracy (mostlyai-qa)<")
    assert ">Accuracy (mostlyai-qa)<" not in render_comparison({"b": plain}).split('id="comparison"')[1]


class Captured(Exception):
    """Raised in place of the run: carries the request the command line built."""


def test_cli_second_evaluator_flag_asks_for_it_and_puts_its_column_beside_quality(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from fairsynth.services.entry import cli
    from fairsynth.services.run.evaluation import second

    def capture(request):
        raise Captured(request)

    monkeypatch.setattr(second, "availability", lambda: (True, ""))
    monkeypatch.setattr(cli, "_run_with_bars", capture)
    for flags, asked in (([], False), (["--second-evaluator"], True)):
        outcome = CliRunner().invoke(cli.app, ["generate", "-b", "marginals", "--out", str(tmp_path / "r"), *flags])
        assert isinstance(outcome.exception, Captured), outcome.output
        request = outcome.exception.args[0]
        assert request.second_evaluator is asked
        labels = [metric.label for metric in cli._generate_columns(request)]
        assert ("Accuracy (mostlyai-qa)" in labels) is asked
        if asked:
            assert labels[labels.index("Quality") + 1] == "Accuracy (mostlyai-qa)"


def test_cli_second_evaluator_without_the_venv_is_refused_before_running(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from fairsynth.services.entry.cli import app

    monkeypatch.setenv("FAIRSYNTH_MOSTLY_VENV", str(tmp_path / "absent"))
    run = tmp_path / "run"
    outcome = CliRunner().invoke(app, ["generate", "-b", "marginals", "--out", str(run), "--second-evaluator"])
    assert outcome.exit_code == 2
    said = " ".join(outcome.output.split())
    assert "The second evaluator (mostlyai-qa) cannot run here:" in said and "make install-mostly" in said
    assert not run.exists() or not any(run.iterdir())
    tables = [str(tmp_path / "subjects.csv"), str(tmp_path / "events.csv")]
    dataset = CliRunner().invoke(app, ["generate", *tables, "--out", str(run), "--second-evaluator"])
    assert dataset.exit_code == 2 and "leave out --second-evaluator for a dataset" in " ".join(dataset.output.split())
