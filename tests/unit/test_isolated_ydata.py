"""ydata adapters without the ydata venv: availability reasons, configuration, parameter checks."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import fairsynth.backends.ydata as ydata
from fairsynth.backends.base import BackendError, BackendUnavailable, Capabilities
from fairsynth.backends.isolated import DockerRunner, SubprocessRunner

ALL = (
    ydata.FastGenerator,
    ydata.GaussianMixtureGenerator,
    ydata.CTGANGenerator,
    ydata.WGANGPGenerator,
    ydata.DRAGANGenerator,
    ydata.CramerGANGenerator,
)


def test_missing_venv_reports_the_reason_and_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("FAIRSYNTH_YDATA_VENV", str(tmp_path / "absent"))
    for cls in ALL:
        available, reason = cls.availability()
        assert not available
        assert str(tmp_path / "absent") in reason and "make install-ydata" in reason
        assert "scripts/install-ydata.sh" in reason


def test_broken_venv_names_the_missing_packages(monkeypatch, tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)  # a Python without ydata or tensorflow
    monkeypatch.setenv("FAIRSYNTH_YDATA_VENV", str(venv))
    available, reason = ydata.CTGANGenerator.availability()
    assert not available
    assert "broken" in reason and "ydata_synthetic" in reason and "make install-ydata" in reason


def test_fit_without_the_venv_fails_with_the_fix(monkeypatch, tmp_path, demo):
    from fairsynth.metadata.schema import TableSchema

    monkeypatch.setenv("FAIRSYNTH_YDATA_VENV", str(tmp_path / "absent"))
    small = demo.head(50)
    with pytest.raises(BackendUnavailable, match="make install-ydata"):
        ydata.FastGenerator().fit(small, TableSchema.infer(small), seed=1)


def test_runner_is_chosen_by_configuration(monkeypatch):
    monkeypatch.delenv("FAIRSYNTH_YDATA_RUNNER", raising=False)
    assert isinstance(ydata.runner(), SubprocessRunner)
    monkeypatch.setenv("FAIRSYNTH_YDATA_RUNNER", "docker")
    monkeypatch.setenv("FAIRSYNTH_YDATA_IMAGE", "registry.local/fairsynth:1")
    chosen = ydata.runner()
    assert isinstance(chosen, DockerRunner) and chosen.image == "registry.local/fairsynth:1"
    assert chosen.environment["YDATA_SYNTHETIC_NO_ANALYTICS"] == "1"
    assert chosen.python == "/opt/fairsynth-ydata/bin/python"  # where the Dockerfile builds it
    monkeypatch.setenv("FAIRSYNTH_YDATA_RUNNER", "kubernetes")
    with pytest.raises(BackendError, match="'subprocess' or 'docker'"):
        ydata.runner()
    available, reason = ydata.FastGenerator.availability()
    assert not available and "FAIRSYNTH_YDATA_RUNNER" in reason


def test_worker_environment_turns_off_analytics_and_tf_logs():
    env = ydata.environment().environment
    assert env["YDATA_SYNTHETIC_NO_ANALYTICS"] and env["TF_CPP_MIN_LOG_LEVEL"] == "3"


def defaults(cls: type) -> dict:
    return cls.Params().model_dump()


def test_parameters_are_keyword_only_with_defaults():
    assert defaults(ydata.FastGenerator) == {"max_fit_rows": 5000}
    assert defaults(ydata.CTGANGenerator) == {"epochs": 100, "batch_size": 500, "learning_rate": 2e-4}
    assert defaults(ydata.WGANGPGenerator) == {
        "epochs": 100,
        "batch_size": 128,
        "learning_rate": 1e-4,
        "n_critic": 2,
    }
    assert defaults(ydata.DRAGANGenerator)["n_discriminator"] == 3
    assert set(defaults(ydata.CramerGANGenerator)) == {"epochs", "batch_size", "learning_rate"}
    with pytest.raises(TypeError):
        ydata.CTGANGenerator(10)  # positional use is refused


def test_parameters_reach_the_worker_request():
    request = ydata.WGANGPGenerator(epochs=7, batch_size=64, learning_rate=3e-4, n_critic=4)._model_request()
    assert request == {
        "model_params": {"batch_size": 64, "lr": 3e-4, "betas": [0.5, 0.9]},
        "init_args": {"n_critic": 4},
        "train_params": {"epochs": 7},
    }
    assert ydata.CTGANGenerator(batch_size=200)._model_request()["model_params"]["pac"] == 10
    assert ydata.FastGenerator(max_fit_rows=900)._model_request() == {"max_rows": 900}


@pytest.mark.parametrize("bad", [{"batch_size": 505}, {"epochs": 0}, {"learning_rate": -1.0}])
def test_bad_parameters_are_refused_in_one_sentence(bad):
    with pytest.raises(BackendError) as caught:
        ydata.CTGANGenerator(**bad)
    message = str(caught.value)
    assert ". " not in message and message.endswith(".") and f"{next(iter(bad))} must be" in message


def test_capabilities_describe_the_ydata_family():
    for cls in ALL:
        caps: Capabilities = cls.capabilities
        assert cls.name.startswith("ydata.") and caps.family == "ydata" and caps.license == "MIT"
        assert caps.package == "ydata-synthetic" and caps.url == "https://github.com/ydataai/ydata-synthetic"
        assert caps.model_family
    assert "Alias of ydata.fast" in ydata.GaussianMixtureGenerator.capabilities.description


def test_worker_imports_nothing_from_fairsynth():
    tree = ast.parse(Path(ydata.WORKER).read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
    }
    assert not any(isinstance(node, ast.ImportFrom) and node.level for node in ast.walk(tree))
    allowed = set(sys.stdlib_module_names) | {"pandas", "pyarrow", "numpy", "tensorflow", "ydata_synthetic"}
    assert imported <= allowed, imported - allowed


def test_cancel_before_a_call_stops_it_without_starting_a_worker(monkeypatch, demo):
    from fairsynth.backends.isolated import WorkerCancelled
    from fairsynth.metadata.schema import TableSchema

    started = []
    monkeypatch.setattr("fairsynth.backends.isolated.subprocess.Popen", lambda *a, **k: started.append(a))
    monkeypatch.setattr(ydata.IsolatedEnvironment, "availability", lambda self: (True, ""))
    generator = ydata.FastGenerator()
    generator.cancel()
    small = demo.head(50)
    with pytest.raises(WorkerCancelled):
        generator.fit(small, TableSchema.infer(small), seed=1)
    assert started == []


@pytest.mark.parametrize(
    ("backend", "prefix", "build_arg", "make_target"),
    [
        ("ydata.fast", "YDATA", "WITH_YDATA", "make install-ydata"),
        ("mostly.argn", "MOSTLY", "WITH_MOSTLY", "make install-mostly"),
    ],
)
def test_inside_the_image_a_missing_venv_asks_for_a_rebuild_with_its_build_argument(
    monkeypatch, tmp_path, backend, prefix, build_arg, make_target
):
    from fairsynth.backends import registry

    monkeypatch.setenv(f"FAIRSYNTH_{prefix}_VENV", str(tmp_path / "absent"))
    monkeypatch.delenv("FAIRSYNTH_IN_CONTAINER", raising=False)
    on_a_checkout = registry.backend_info(backend).reason  # what `fairsynth backends` and the UI show
    monkeypatch.setenv("FAIRSYNTH_IN_CONTAINER", "1")
    in_the_image = registry.backend_info(backend).reason

    assert make_target in on_a_checkout and "--build-arg" not in on_a_checkout
    assert f"--build-arg {build_arg}=1" in in_the_image and make_target not in in_the_image
