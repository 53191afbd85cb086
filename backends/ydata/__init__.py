"""ydata-synthetic 1.4 models as backends, run in their own venv (`.venv-ydata`) through a worker.

ydata-synthetic 1.4 needs TensorFlow 2.15, numpy<2 and requests<2.31, which cannot share fairsynth's
environment, so the models run in worker.py inside the isolated venv (backends.isolated). The
shared codec wraps every model: ydata 1.4 handles neither missing values nor dates.

The fitted ydata model is a joblib pickle. It is written and read only by the worker inside the
isolated venv; this process copies its bytes but never unpickles it. A saved pickle is signed with
the installation's key (backends.signing, FAIRSYNTH_MODEL_KEY_FILE); load() refuses one that is
unsigned or signed with another key before any worker sees it.

Configuration (environment variables):
- FAIRSYNTH_YDATA_VENV: the venv (default: `.venv-ydata` at the repository root, else in the cwd).
- FAIRSYNTH_YDATA_RUNNER: `subprocess` (default) or `docker` (the same worker in a container).
- FAIRSYNTH_YDATA_IMAGE / FAIRSYNTH_YDATA_IMAGE_PYTHON: the image (default `fairsynth`) and its ydata
  venv's Python (default /opt/fairsynth-ydata/bin/python, as the Dockerfile builds it).
- FAIRSYNTH_YDATA_IMAGE_WORKER: the worker's path inside the image, when the engine cannot mount this
  machine's copy (default: mount backends/ydata/ from here).
- FAIRSYNTH_YDATA_TIMEOUT: seconds one worker call may take (default 21600).
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
from typing import Annotated, ClassVar

import pandas as pd
from pydantic import Field

from fairsynth.backends.base import (
    BackendError,
    BackendParams,
    BatchSize,
    Capabilities,
    CodecGenerator,
    Epochs,
    FitResult,
    LearningRate,
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
from fairsynth.backends.signing import ALGORITHM, check_signature, installation_key, signature

YDATA_URL = "https://github.com/ydataai/ydata-synthetic"
YDATA_LICENSE = "MIT"  # the LICENSE file shipped in ydata-synthetic 1.4.0 is MIT
WORKER = Path(__file__).with_name("worker.py")
REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_FILE = "ydata-model.pkl"
MODEL_INFO = "ydata-model.json"
MODEL_NOTE = "ydata-model.README.txt"
DEFAULT_TIMEOUT = 6 * 3600
IMAGE_PYTHON = "/opt/fairsynth-ydata/bin/python"  # where the Dockerfile builds the ydata venv
WORKER_ENV = {"YDATA_SYNTHETIC_NO_ANALYTICS": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "-1"}
CTGAN_PAC = 10  # ydata's CTGAN packs 10 rows per critic input


class FastParams(BackendParams):
    """ydata 'fast' (Gaussian mixture)."""

    max_fit_rows: int = Field(
        5000,
        ge=1,
        description="Rows of a seeded subsample the mixture is fitted on (its component search is quadratic in rows).",
    )


class GANParams(BackendParams):
    """What every ydata GAN takes."""

    epochs: Epochs = 100
    batch_size: BatchSize = 128
    learning_rate: LearningRate = 1e-4


class CTGANParams(GANParams):
    """ydata's CTGAN: larger batches, a multiple of its pac."""

    batch_size: Annotated[BatchSize, Field(multiple_of=CTGAN_PAC)] = 500
    learning_rate: LearningRate = 2e-4


class WGANGPParams(GANParams):
    """WGAN-GP: GAN parameters and the critic's extra steps."""

    n_critic: int = Field(2, ge=1, description="Critic updates per generator update.")


class DRAGANParams(GANParams):
    """DRAGAN: GAN parameters and the discriminator's extra steps."""

    n_discriminator: int = Field(3, ge=1, description="Discriminator updates per generator update.")


def venv_path() -> Path:
    """Where the ydata venv is: FAIRSYNTH_YDATA_VENV, else the repository's, else the cwd's."""
    configured = os.environ.get("FAIRSYNTH_YDATA_VENV")
    if configured:
        return Path(configured)
    candidates = [REPO_ROOT / ".venv-ydata", Path.cwd() / ".venv-ydata"]
    return next((c for c in candidates if c.exists()), candidates[0])


def environment() -> IsolatedEnvironment:
    """The isolated ydata environment as configured now."""
    return IsolatedEnvironment(
        label="ydata-synthetic 1.4",
        venv=venv_path(),
        worker=WORKER,
        modules=("ydata_synthetic", "tensorflow", "pyarrow", "pandas"),
        fix_command=venv_fix_command("ydata", "WITH_YDATA"),
        environment=dict(WORKER_ENV),
    )


def runner() -> Runner:
    """The configured runner: the venv subprocess by default, a container when asked for."""
    return configured_runner("YDATA", environment, IMAGE_PYTHON)


def _timeout() -> float:
    """Seconds one worker call may take (FAIRSYNTH_YDATA_TIMEOUT)."""
    return configured_timeout("YDATA", DEFAULT_TIMEOUT)


class YdataGenerator(WorkerDrawnSamples, CodecGenerator):
    """Common adapter: the codec's encoded table goes to the worker as Parquet, samples come back."""

    model_name: ClassVar[str]  # ydata's modelname

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self._cancel = threading.Event()
        self._state = Path(tempfile.mkdtemp(prefix="fairsynth-ydata-"))
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

    # -- what each model sends ----------------------------------------------------------------------
    def _model_request(self) -> dict:
        """model_params / init_args / train_params for the worker."""
        return {}

    # -- the CodecGenerator hooks -------------------------------------------------------------------
    def _fit_encoded(self, encoded: pd.DataFrame, *, seed: int, progress: ProgressCallback) -> FitResult:
        kinds = self._fitted_codec().model_columns()
        train_path = self._state / "train.parquet"
        _model_frame(encoded, kinds).to_parquet(train_path, index=False)
        request = {
            "action": "fit",
            "model": self.model_name,
            "data": "train.parquet",
            "seed": int(seed),
            "num_cols": [c for c, k in kinds.items() if k == "numeric"],
            "cat_cols": [c for c, k in kinds.items() if k == "categorical"],
            "model_file": MODEL_FILE,
            **self._model_request(),
        }
        job = Job(
            request, inputs={"train.parquet": train_path}, outputs={MODEL_FILE: self._model_path}, timeout=_timeout()
        )
        try:
            result = self._run(job, progress)
        finally:
            train_path.unlink(missing_ok=True)
        return FitResult(
            seconds=0.0,
            epochs=result.get("epochs"),
            losses=list(result.get("losses") or []),
            details={
                "ydata_model": self.model_name,
                "rows_fitted": result.get("rows"),
                "worker_fit_seconds": result.get("seconds"),
                "packages": dict(result.get("packages") or {}),
            },
        )  # versions in the ydata venv

    def _draw(self, plan: list[tuple[int, int]]) -> list[Path]:
        """Ask the worker for each (rows, seed) batch; returns the Parquet files, in order."""
        if not self._model_path.is_file():
            raise ModelFileError(f"Backend '{self.name}' has no fitted ydata model; fit it or load a saved one.")
        names = [f"sample-{i}.parquet" for i in range(len(plan))]
        outputs = {name: self._state / name for name in names}
        request = {
            "action": "sample",
            "model_file": MODEL_FILE,
            "batches": [{"rows": int(rows), "seed": int(seed), "out": name} for (rows, seed), name in zip(plan, names)],
        }
        self._run(Job(request, inputs={MODEL_FILE: self._model_path}, outputs=outputs, timeout=_timeout()), None)
        return [outputs[name] for name in names]

    def save(self, directory: Path) -> None:
        """Write codec.json, backend.json and the ydata model (a joblib pickle, signed with the installation key).

        The pickle is only ever loaded by the worker inside the isolated ydata venv; the main process
        copies its bytes and never unpickles it (ydata-model.README.txt in the directory says so).
        """
        super().save(directory)

    def _save_model(self, directory: Path) -> None:
        """Copy the worker's pickle, its signature and a note on who may load it."""
        if not self._model_path.is_file():
            raise ModelFileError(f"Backend '{self.name}' has no fitted ydata model to save; fit it first.")
        key = installation_key(create=True)
        shutil.copyfile(self._model_path, directory / MODEL_FILE)
        info = {
            "ydata_model": self.model_name,
            "file": MODEL_FILE,
            "signature": {"algorithm": ALGORITHM, "value": signature(directory / MODEL_FILE, key)},
            "format": "joblib pickle written by ydata-synthetic 1.4.0",
            "loaded_by": "backends/ydata/worker.py inside the isolated ydata venv only",
        }
        (directory / MODEL_INFO).write_text(json.dumps(info, indent=2))
        (directory / MODEL_NOTE).write_text(
            f"{MODEL_FILE} is a ydata-synthetic 1.4.0 model ({self.model_name}) saved by ydata as a joblib pickle.\n"
            "fairsynth never unpickles it in its own process: only the ydata worker, inside the isolated\n"
            "ydata venv, loads it. Loading a pickle runs code, so it is signed (HMAC-SHA256) with this\n"
            "installation's key, kept outside the model folder; load() refuses a file that is unsigned or was\n"
            "signed with another key before the worker sees it.\n"
        )

    def _load_model(self, directory: Path) -> None:
        """Take a private copy of the pickle for the worker, kept only when this installation's key signed it.

        The copy is checked rather than the source, so the bytes checked are the bytes the worker unpickles.
        """
        source, info_path = directory / MODEL_FILE, directory / MODEL_INFO
        try:
            info = json.loads(info_path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelFileError(
                f"The ydata model in {directory} has no readable {MODEL_INFO} ({exc}); fit the backend again."
            ) from exc
        if not source.is_file():
            raise ModelFileError(f"The ydata model file in {directory} is missing; fit the backend again.")
        key = installation_key(create=False)
        entry = info.get("signature") if isinstance(info, dict) else None
        signed = entry.get("value") if isinstance(entry, dict) else None
        shutil.copyfile(source, self._model_path)
        try:
            check_signature(self._model_path, signed, key)
        except ModelFileError:
            self._model_path.unlink()
            raise

    # -- plumbing -----------------------------------------------------------------------------------------
    @property
    def _model_path(self) -> Path:
        return self._state / MODEL_FILE

    def _run(self, job: Job, progress: ProgressCallback | None) -> dict:
        start = time.perf_counter()

        def relay(message: dict) -> None:
            if progress is not None:
                progress(
                    Progress(
                        self.name,
                        str(message.get("stage") or "fit"),
                        int(message.get("step") or 0),
                        message.get("total"),
                        message.get("loss"),
                        time.perf_counter() - start,
                        str(message.get("message") or ""),
                    )
                )

        return runner().run(job, progress=relay, cancel=self._cancel)


def _model_frame(encoded: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """The columns the model learns: numbers as float64, categories as strings."""
    return pd.DataFrame(
        {
            name: encoded[name].astype("float64") if kind == "numeric" else encoded[name].astype(str)
            for name, kind in kinds.items()
        }
    )


def _capabilities(description: str, model_family: str) -> Capabilities:
    return Capabilities(
        description=description,
        license=YDATA_LICENSE,
        family="ydata",
        handles_missing=True,
        handles_datetime=True,  # through the shared codec
        model_family=model_family,
        package="ydata-synthetic",
        url=YDATA_URL,
    )


class _GANGenerator(YdataGenerator):
    """GAN models: epochs, batch size, learning rate; betas (0.5, 0.9) because ydata's default crashes."""

    Params = GANParams
    params: GANParams

    def _model_params(self) -> dict:
        return {"batch_size": self.params.batch_size, "lr": self.params.learning_rate, "betas": [0.5, 0.9]}

    def _init_args(self) -> dict:
        return {}

    def _model_request(self) -> dict:
        return {
            "model_params": self._model_params(),
            "init_args": self._init_args(),
            "train_params": {"epochs": self.params.epochs},
        }


class FastGenerator(YdataGenerator):
    """ydata 'fast': a Gaussian mixture (scikit-learn) with its number of components tuned by silhouette."""

    name = "ydata.fast"
    model_name = "fast"
    capabilities = _capabilities(
        "ydata-synthetic 1.4 'fast': Gaussian mixture over the encoded table; "
        "quick and good on marginals. Runs in the isolated ydata venv.",
        "Gaussian mixture model",
    )

    Params = FastParams
    params: FastParams

    def _model_request(self) -> dict:
        # the component search scores silhouettes, quadratic in rows: fit on a seeded subsample
        return {"max_rows": self.params.max_fit_rows}


class GaussianMixtureGenerator(FastGenerator):
    """Alias of ydata.fast: in ydata-synthetic 1.4 'fast' is the Gaussian-mixture model."""

    name = "ydata.gaussian_mixture"
    capabilities = _capabilities(
        "Alias of ydata.fast (ydata-synthetic 1.4's Gaussian-mixture model). Runs in the isolated ydata venv.",
        "Gaussian mixture model",
    )


class CTGANGenerator(_GANGenerator):
    """ydata's CTGAN (conditional tabular GAN, mode-specific normalisation)."""

    name = "ydata.ctgan"
    model_name = "ctgan"
    capabilities = _capabilities(
        "ydata-synthetic 1.4 CTGAN: conditional GAN with mode-specific normalisation. Runs in the isolated ydata venv.",
        "generative adversarial network (CTGAN)",
    )
    Params = CTGANParams

    def _model_params(self) -> dict:
        return {**super()._model_params(), "pac": CTGAN_PAC}


class WGANGPGenerator(_GANGenerator):
    """ydata's Wasserstein GAN with gradient penalty (random batches instead of ydata's fixed one)."""

    name = "ydata.wgangp"
    model_name = "wgangp"
    capabilities = _capabilities(
        "ydata-synthetic 1.4 WGAN-GP: Wasserstein GAN with gradient penalty; "
        "prone to mode collapse on categories. Runs in the isolated ydata venv.",
        "generative adversarial network (WGAN-GP)",
    )

    Params = WGANGPParams
    params: WGANGPParams

    def _init_args(self) -> dict:
        return {"n_critic": self.params.n_critic}


class DRAGANGenerator(_GANGenerator):
    """ydata's DRAGAN (gradient penalty around the data)."""

    name = "ydata.dragan"
    model_name = "dragan"
    capabilities = _capabilities(
        "ydata-synthetic 1.4 DRAGAN: GAN with a gradient penalty around real data. Runs in the isolated ydata venv.",
        "generative adversarial network (DRAGAN)",
    )

    Params = DRAGANParams
    params: DRAGANParams

    def _init_args(self) -> dict:
        return {"n_discriminator": self.params.n_discriminator}


class CramerGANGenerator(_GANGenerator):
    """ydata's Cramér GAN (random batches instead of ydata's fixed one)."""

    name = "ydata.cramer"
    model_name = "cramer"
    capabilities = _capabilities(
        "ydata-synthetic 1.4 Cramér GAN: energy-distance critic. Runs in the isolated ydata venv.",
        "generative adversarial network (Cramér GAN)",
    )


__all__ = [
    "FastGenerator",
    "GaussianMixtureGenerator",
    "CTGANGenerator",
    "WGANGPGenerator",
    "DRAGANGenerator",
    "CramerGANGenerator",
    "environment",
    "runner",
    "venv_path",
]
