"""Adapters for SDV 2.0 single-table synthesizers (optional extra `fairsynth[sdv]`, BUSL-1.1).

SDV learns the shared codec's encoded table, so dates, missing values, rare categories,
identifiers and PII are handled the same way as for every other backend.

Fitted SDV models are not saved: SDV can only persist them as pickles, and fairsynth never
writes or reads a pickle that could later come from outside. save() keeps the codec and the
parameters; load() says plainly that the model must be fitted again.
"""

from __future__ import annotations

import contextlib
import importlib.util
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from fairsynth.backends.base import (
    BackendParams,
    BatchSize,
    Capabilities,
    CodecGenerator,
    Epochs,
    FitResult,
    ModelFileError,
    Progress,
    ProgressCallback,
)

SDV_URL = "https://github.com/sdv-dev/SDV"
SDV_LICENSE = "BUSL-1.1"


def write_model_not_saved(backend: str, directory: Path) -> None:
    """MODEL_NOT_SAVED.txt in place of a fitted SDV model: why it is not there and how to get the rows again."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "MODEL_NOT_SAVED.txt").write_text(
        f"{backend}: SDV models persist only as pickles, which fairsynth never writes; "
        "refit from config/generation.json to reproduce the rows.\n"
    )


def model_not_kept(backend: str) -> ModelFileError:
    """The error load() raises for an SDV backend: its fitted models are not kept."""
    return ModelFileError(
        f"Backend '{backend}' does not keep fitted models (SDV saves only pickles); "
        "fit it again with the same seed to get the same rows."
    )


class GaussianCopulaParams(BackendParams):
    """SDV GaussianCopula's setting."""

    default_distribution: Literal["norm", "beta", "truncnorm", "uniform", "gamma", "gaussian_kde"] = Field(
        "beta", description="Distribution fitted to each numeric column's marginal."
    )


class DeepSDVParams(BackendParams):
    """What SDV's neural synthesizers (TVAE, CTGAN, CopulaGAN) take."""

    epochs: Epochs = 300
    batch_size: BatchSize = 500


class CTGANParams(DeepSDVParams):
    """CTGAN packs 10 rows per discriminator sample, so its batch is a multiple of 10."""

    batch_size: Annotated[BatchSize, Field(multiple_of=10)] = 500


def sdv_availability() -> tuple[bool, str]:
    """Whether SDV (an optional extra) is installed, and the fix when not; every SDV backend asks this."""
    if importlib.util.find_spec("sdv") is None:
        return False, "SDV is not installed; install the extra with: pip install 'fairsynth[sdv]'"
    return True, ""


class SDVGenerator(CodecGenerator):
    """Common adapter: builds SDV metadata from the codec, fits and samples in batches."""

    synthesizer_name: ClassVar[str]

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """SDV is an optional extra."""
        return sdv_availability()

    def _synthesizer_class(self):
        from sdv import single_table

        return getattr(single_table, self.synthesizer_name)

    def _synthesizer_kwargs(self) -> dict:
        return {}

    def _epochs(self) -> int | None:
        """Epochs the synthesizer trains for; None for one that does not train in epochs."""
        return None

    def _fit_encoded(self, encoded: pd.DataFrame, *, seed: int, progress: ProgressCallback) -> FitResult:
        import torch
        from sdv.metadata import Metadata

        kinds = self._fitted_codec().model_columns()
        metadata = Metadata.load_from_dict(
            {
                "tables": {
                    "table": {
                        "columns": {
                            name: {"sdtype": "numerical" if kind == "numeric" else "categorical"}
                            for name, kind in kinds.items()
                        }
                    }
                }
            }
        )
        np.random.seed(seed)
        torch.manual_seed(seed)
        self._synthesizer = self._synthesizer_class()(metadata, **self._synthesizer_kwargs())
        start = time.perf_counter()
        epochs = self._epochs()
        with warnings.catch_warnings(), _epoch_progress(self.name, epochs, progress, start):
            warnings.simplefilter("ignore")
            self._synthesizer.fit({"table": encoded[list(kinds)]})
        return FitResult(seconds=0.0, epochs=epochs, losses=self._losses())

    def _losses(self) -> list[float]:
        getter = getattr(self._synthesizer, "get_loss_values", None)
        if getter is None:
            return []
        try:
            losses = getter()
        except Exception:  # loss tracking is optional in SDV
            return []
        column = next((c for c in ("Loss", "Generator Loss") if c in losses), None)
        if column is None:
            return []
        return [float(v) for v in losses.groupby("Epoch")[column].mean()]

    def _sample_encoded(self, n_rows: int, *, seed: int) -> pd.DataFrame:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._synthesizer._set_random_state(seed)
            sampled = self._synthesizer.sample(n_rows)
        return sampled["table"] if isinstance(sampled, dict) else sampled

    def _save_model(self, directory: Path) -> None:
        write_model_not_saved(self.name, directory)

    def _load_model(self, directory: Path) -> None:
        raise model_not_kept(self.name)


@contextlib.contextmanager
def _epoch_progress(backend: str, epochs: int | None, progress: ProgressCallback, start: float):
    """Report each epoch: SDV has no epoch callback, so wrap the tqdm its trainers iterate with."""
    modules = []
    with contextlib.suppress(ImportError):
        from ctgan.synthesizers import ctgan as ctgan_module
        from ctgan.synthesizers import tvae as tvae_module

        modules = [ctgan_module, tvae_module]
    originals = [m.tqdm for m in modules]

    def reporting_tqdm(iterable, *args, **kwargs) -> Callable:
        for step, item in enumerate(iterable, start=1):
            yield item
            progress(Progress(backend, "fit", step, epochs, seconds=time.perf_counter() - start))

    for module in modules:
        module.tqdm = reporting_tqdm
    try:
        yield
    finally:
        for module, original in zip(modules, originals):
            module.tqdm = original


class GaussianCopulaGenerator(SDVGenerator):
    """SDV GaussianCopula."""

    name = "sdv.gaussian_copula"
    synthesizer_name = "GaussianCopulaSynthesizer"
    capabilities = Capabilities(
        description="SDV Gaussian copula: fast statistical model of marginals and correlations.",
        license=SDV_LICENSE,
        family="sdv",
        url=SDV_URL,
        package="sdv",
        model_family="Gaussian copula",
    )

    Params = GaussianCopulaParams
    params: GaussianCopulaParams

    def _synthesizer_kwargs(self) -> dict:
        return {"default_distribution": self.params.default_distribution}


class _DeepSDVGenerator(SDVGenerator):
    Params = DeepSDVParams
    params: DeepSDVParams

    def _epochs(self) -> int | None:
        return self.params.epochs

    def _synthesizer_kwargs(self) -> dict:
        return {
            "epochs": self.params.epochs,
            "batch_size": self.params.batch_size,
            "enable_gpu": True,
            "verbose": False,
        }


class TVAEGenerator(_DeepSDVGenerator):
    """SDV TVAE."""

    name = "sdv.tvae"
    synthesizer_name = "TVAESynthesizer"
    capabilities = Capabilities(
        description="SDV's variational autoencoder for tables (TVAE).",
        license=SDV_LICENSE,
        family="sdv",
        url=SDV_URL,
        package="sdv",
        model_family="variational autoencoder",
    )


class CTGANGenerator(_DeepSDVGenerator):
    """SDV CTGAN."""

    name = "sdv.ctgan"
    synthesizer_name = "CTGANSynthesizer"
    capabilities = Capabilities(
        description="SDV's conditional GAN for tables (CTGAN).",
        license=SDV_LICENSE,
        family="sdv",
        url=SDV_URL,
        conditional=True,
        package="sdv",
        model_family="generative adversarial network",
    )

    Params = CTGANParams


class CopulaGANGenerator(CTGANGenerator):
    """SDV CopulaGAN."""

    name = "sdv.copulagan"
    synthesizer_name = "CopulaGANSynthesizer"
    capabilities = Capabilities(
        description="SDV CopulaGAN: CTGAN on Gaussian-copula transformed columns.",
        license=SDV_LICENSE,
        family="sdv",
        url=SDV_URL,
        conditional=True,
        package="sdv",
        model_family="generative adversarial network with copula transforms",
    )
