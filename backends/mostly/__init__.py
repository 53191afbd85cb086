"""MOSTLY AI's TabularARGN (mostlyai-engine) as backends, run in their own venv (`.venv-mostly`) through a worker.

mostlyai-engine brings its own torch stack (and transformers, datasets, ...), so it runs in worker.py
inside the isolated venv (backends.isolated), like the ydata models. The shared codec wraps it as
every backend: dates, gaps, rare levels, identifiers, PII and the enforced cross-column rules are
the codec's; the engine learns the encoded table (numbers and category tokens).

The fitted model is kept as the engine's own files (MODEL_FILES: model-weights.pt, which the engine
reads with torch's weights_only loader, and two JSON files). This process copies their bytes and
never loads them; only the worker does.

The same worker also runs mostlyai-qa, the second evaluator (`qa_metrics`).

Configuration (environment variables):
- FAIRSYNTH_MOSTLY_VENV: the venv (default: `.venv-mostly` at the repository root, else in the cwd).
- FAIRSYNTH_MOSTLY_RUNNER: `subprocess` (default) or `docker` (the same worker in a container).
- FAIRSYNTH_MOSTLY_IMAGE / FAIRSYNTH_MOSTLY_IMAGE_PYTHON: the image (default `fairsynth`) and its venv's
  Python (default /opt/fairsynth-mostly/bin/python).
- FAIRSYNTH_MOSTLY_IMAGE_WORKER: the worker's path inside the image, when the engine cannot mount
  this machine's copy (default: mount backends/mostly/ from here).
- FAIRSYNTH_MOSTLY_TIMEOUT: seconds one worker call may take (default 21600).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import Field

from fairsynth.backends.base import (
    BackendError,
    BackendParams,
    Capabilities,
    CodecGenerator,
    FitResult,
    ModelFileError,
    Progress,
    ProgressCallback,
)
from fairsynth.backends.isolated import (
    IsolatedEnvironment,
    Job,
    Runner,
    WorkerDrawnSamples,
    configured_runner,
    configured_timeout,
    venv_fix_command,
)

MOSTLY_URL = "https://github.com/mostly-ai/mostlyai-engine"
MOSTLY_LICENSE = "Apache-2.0"
WORKER = Path(__file__).with_name("worker.py")
REPO_ROOT = Path(__file__).resolve().parents[2]
# the engine's files generate needs, as the worker names them (relative to its job directory)
MODEL_FILES = (
    "ModelStore/model-data/model-weights.pt",
    "ModelStore/model-data/model-configs.json",
    "ModelStore/tgt-stats/stats.json",
)
MODEL_INFO = "mostly-model.json"
MODEL_DIR = "mostly"  # the engine's files inside a saved model folder
DEFAULT_TIMEOUT = 6 * 3600
IMAGE_PYTHON = "/opt/fairsynth-mostly/bin/python"
# one thread pool per process is enough on a shared machine; nothing is fetched from Hugging Face
WORKER_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
NOT_COVERED_BY_EPSILON = (
    "Not covered by epsilon: the codec's statistics (per-column ranges, decimals, kept category levels and "
    "their counts, the rare-level pool) and the cross-column rules the real table keeps are computed from the "
    "training data without differential privacy; the engine's value-protection statistics spend their own "
    "budget (value_protection_epsilon) and its network is trained with DP-SGD to epsilon."
)
ModelSize = Literal["MOSTLY_AI/Small", "MOSTLY_AI/Medium", "MOSTLY_AI/Large"]


class ARGNParams(BackendParams):
    """TabularARGN: how long it trains, its size and batch, and value protection."""

    max_epochs: int = Field(
        100, ge=1, description="Most passes over the training rows (early stopping may stop sooner)."
    )
    max_training_time: float = Field(
        60.0, gt=0, description="Most minutes training may take; the best checkpoint so far is kept."
    )
    batch_size: int | None = Field(None, ge=1, description="Training rows per step; empty: the engine's choice.")
    model_size: ModelSize = Field("MOSTLY_AI/Medium", description="The engine's network size.")
    value_protection: bool = Field(
        True,
        description="The engine's protection of rare values: rare categories are replaced and numeric extremes "
        "clipped to privacy-safe bounds.",
    )
    device: Literal["auto", "cpu"] = Field("auto", description="'auto' (a CUDA GPU when there is one) or 'cpu'.")


class DPARGNParams(ARGNParams):
    """TabularARGN trained with DP-SGD: the budget the engine stops at."""

    epsilon: float = Field(3.0, gt=0, description="Privacy budget training may spend (DP-SGD); training stops at it.")
    delta: float = Field(1e-5, gt=0, lt=1, description="Chance the epsilon guarantee fails.")
    noise_multiplier: float = Field(1.5, gt=0, description="Noise of DP-SGD against the clipped gradient norm.")
    max_grad_norm: float = Field(1.0, gt=0, description="Bound each row's gradient is clipped to.")
    value_protection_epsilon: float = Field(
        1.0, gt=0, description="Budget of the value-protection statistics (ranges, kept categories), on top of epsilon."
    )


def venv_path() -> Path:
    """Where the MOSTLY AI venv is: FAIRSYNTH_MOSTLY_VENV, else the repository's, else the cwd's."""
    configured = os.environ.get("FAIRSYNTH_MOSTLY_VENV")
    if configured:
        return Path(configured)
    candidates = [REPO_ROOT / ".venv-mostly", Path.cwd() / ".venv-mostly"]
    return next((c for c in candidates if c.exists()), candidates[0])


def environment() -> IsolatedEnvironment:
    """The isolated MOSTLY AI environment as configured now."""
    return IsolatedEnvironment(
        label="MOSTLY AI engine 2.7",
        venv=venv_path(),
        worker=WORKER,
        modules=("mostlyai.engine", "mostlyai.qa", "torch", "pyarrow", "pandas"),
        fix_command=venv_fix_command("mostly", "WITH_MOSTLY"),
        environment=dict(WORKER_ENV),
    )


def runner() -> Runner:
    """The configured runner: the venv subprocess by default, a container when asked for."""
    return configured_runner("MOSTLY", environment, IMAGE_PYTHON)


def timeout() -> float:
    """Seconds one worker call may take (FAIRSYNTH_MOSTLY_TIMEOUT)."""
    return configured_timeout("MOSTLY", DEFAULT_TIMEOUT)


def run_worker(job: Job, name: str, progress: ProgressCallback | None, cancel: threading.Event | None) -> dict:
    """One worker call, its progress lines relayed as Progress reports of backend `name`."""
    start = time.perf_counter()

    def relay(message: dict) -> None:
        if progress is not None:
            progress(
                Progress(
                    name,
                    str(message.get("stage") or "fit"),
                    int(message.get("step") or 0),
                    message.get("total"),
                    message.get("loss"),
                    time.perf_counter() - start,
                    str(message.get("message") or ""),
                )
            )

    return runner().run(job, progress=relay, cancel=cancel)


class ARGNGenerator(WorkerDrawnSamples, CodecGenerator):
    """mostly.argn: the codec's encoded table goes to the worker as Parquet, samples come back the same way."""

    name = "mostly.argn"
    capabilities = Capabilities(
        description="MOSTLY AI TabularARGN (mostlyai-engine 2.7): autoregressive network over the encoded columns, "
        "with value protection. Runs in the isolated MOSTLY AI venv.",
        license=MOSTLY_LICENSE,
        family="mostly",
        handles_missing=True,
        handles_datetime=True,  # through the shared codec
        model_family="autoregressive neural network (TabularARGN)",
        package="mostlyai-engine",
        url=MOSTLY_URL,
    )
    Params = ARGNParams
    params: ARGNParams

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self._cancel = threading.Event()
        self._state = Path(tempfile.mkdtemp(prefix="fairsynth-mostly-"))
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self._state), True)

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """Available when the configured runner (venv or container) can run the worker."""
        try:
            return runner().availability()
        except BackendError as exc:
            return False, str(exc)

    def cancel(self) -> None:
        """Stop the running fit or sample from another thread (its worker is killed); later calls fail too."""
        self._cancel.set()

    def _engine_request(self) -> dict:
        params = self.params
        return {
            "engine": {
                "model": params.model_size,
                "max_epochs": params.max_epochs,
                "max_training_time": params.max_training_time,
                "batch_size": params.batch_size,
                "value_protection": params.value_protection,
                "device": params.device,
            }
        }

    # -- the CodecGenerator hooks -------------------------------------------------------------------
    def _fit_encoded(self, encoded: pd.DataFrame, *, seed: int, progress: ProgressCallback) -> FitResult:
        kinds = self._fitted_codec().model_columns()
        train_path = self._state / "train.parquet"
        model_frame(encoded, kinds).to_parquet(train_path, index=False)
        request = {
            "action": "fit",
            "data": "train.parquet",
            "seed": int(seed),
            "kinds": kinds,
            **self._engine_request(),
        }
        outputs = {name: self._state / name for name in MODEL_FILES}
        job = Job(request, inputs={"train.parquet": train_path}, outputs=outputs, timeout=timeout())
        try:
            result = run_worker(job, self.name, progress, self._cancel)
        finally:
            train_path.unlink(missing_ok=True)
        return FitResult(
            seconds=0.0,
            epochs=round(result["epochs"]) if result.get("epochs") is not None else None,
            losses=list(result.get("losses") or []),
            epsilon=result.get("epsilon"),
            delta=result.get("delta"),
            details={
                "engine_model": self.params.model_size,
                "epochs_trained": result.get("epochs"),
                "rows_fitted": result.get("rows"),
                "worker_fit_seconds": result.get("seconds"),
                "packages": dict(result.get("packages") or {}),  # versions in the MOSTLY AI venv
            },
        )

    def _draw(self, plan: list[tuple[int, int]]) -> list[Path]:
        """Ask the worker for each (rows, seed) batch; returns the Parquet files, in order."""
        if not all((self._state / name).is_file() for name in MODEL_FILES):
            raise ModelFileError(f"Backend '{self.name}' has no fitted model; fit it or load a saved one.")
        names = [f"sample-{i}.parquet" for i in range(len(plan))]
        outputs = {name: self._state / name for name in names}
        request = {
            "action": "sample",
            "batches": [{"rows": int(rows), "seed": int(seed), "out": name} for (rows, seed), name in zip(plan, names)],
        }
        inputs = {name: self._state / name for name in MODEL_FILES}
        run_worker(Job(request, inputs=inputs, outputs=outputs, timeout=timeout()), self.name, None, self._cancel)
        return [outputs[name] for name in names]

    def _save_model(self, directory: Path) -> None:
        """Copy the engine's own model files (weights read by the engine with weights_only, JSON) and their hashes."""
        from fairsynth.metadata.checksums import sha256_file

        if not all((self._state / name).is_file() for name in MODEL_FILES):
            raise ModelFileError(f"Backend '{self.name}' has no fitted model to save; fit it first.")
        for name in MODEL_FILES:
            target = directory / MODEL_DIR / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self._state / name, target)
        info = {
            "files": {name: sha256_file(directory / MODEL_DIR / name) for name in MODEL_FILES},
            "format": "mostlyai-engine 2.7 ModelStore (torch state dict read with weights_only=True, JSON)",
            "loaded_by": "backends/mostly/worker.py inside the isolated MOSTLY AI venv only",
        }
        (directory / MODEL_INFO).write_text(json.dumps(info, indent=2))

    def _load_model(self, directory: Path) -> None:
        """Take a private copy of the engine's files, each matching the hash recorded when it was saved."""
        from fairsynth.metadata.checksums import sha256_file

        try:
            recorded = json.loads((directory / MODEL_INFO).read_text())["files"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelFileError(
                f"The MOSTLY AI model in {directory} has no readable {MODEL_INFO} ({exc}); fit the backend again."
            ) from exc
        for name in MODEL_FILES:
            source, copy = directory / MODEL_DIR / name, self._state / name
            if not source.is_file():
                raise ModelFileError(
                    f"The MOSTLY AI model file {name} in {directory} is missing; fit the backend again."
                )
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, copy)
            if sha256_file(copy) != recorded.get(name):
                copy.unlink()
                raise ModelFileError(f"The MOSTLY AI model file {name} in {directory} was changed after it was saved.")


class DPARGNGenerator(ARGNGenerator):
    """mostly.argn.dp: TabularARGN trained with DP-SGD; the epsilon spent is recorded like tvae.dp's."""

    name = "mostly.argn.dp"
    capabilities = Capabilities(
        description="MOSTLY AI TabularARGN trained with DP-SGD (the engine's Opacus) to a privacy budget; "
        "the codec's statistics are not covered by epsilon. Runs in the isolated MOSTLY AI venv.",
        license=MOSTLY_LICENSE,
        family="mostly",
        dp=True,
        handles_missing=True,
        handles_datetime=True,
        model_family="autoregressive neural network (TabularARGN, DP-SGD)",
        package="mostlyai-engine",
        url=MOSTLY_URL,
    )
    Params = DPARGNParams
    params: DPARGNParams

    def _engine_request(self) -> dict:
        params = self.params
        return {
            **super()._engine_request(),
            "differential_privacy": {
                "max_epsilon": params.epsilon,
                "delta": params.delta,
                "noise_multiplier": params.noise_multiplier,
                "max_grad_norm": params.max_grad_norm,
                "value_protection_epsilon": params.value_protection_epsilon,
            },
        }

    def _fit_encoded(self, encoded: pd.DataFrame, *, seed: int, progress: ProgressCallback) -> FitResult:
        result = super()._fit_encoded(encoded, seed=seed, progress=progress)
        result.details |= {
            "target_epsilon": self.params.epsilon,
            "value_protection_epsilon": self.params.value_protection_epsilon if self.params.value_protection else None,
            "not_covered_by_epsilon": NOT_COVERED_BY_EPSILON,
        }
        return result


def model_frame(encoded: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """The columns the engine learns: numbers as float64, categories as strings."""
    return pd.DataFrame(
        {
            name: encoded[name].astype("float64") if kind == "numeric" else encoded[name].astype(str)
            for name, kind in kinds.items()
        }
    )


__all__ = ["ARGNGenerator", "DPARGNGenerator", "Job", "environment", "runner", "venv_path", "run_worker", "timeout"]
