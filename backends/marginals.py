"""Low-fidelity baseline: every column drawn independently from its own marginal (UCLH style).

It keeps each column's distribution and missing share and deliberately breaks every relationship
between columns, so it is fast, always available and an honest floor for the other backends.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field

from fairsynth.backends.base import (
    BackendParams,
    Capabilities,
    CodecGenerator,
    FitResult,
    ModelFileError,
    Progress,
    ProgressCallback,
)


class MarginalsParams(BackendParams):
    """The marginals baseline's one setting."""

    quantiles: int = Field(201, ge=2, description="Points of each numeric column's distribution kept (its resolution).")


class MarginalsGenerator(CodecGenerator):
    """Independent columns from empirical quantiles (numbers) and frequencies (categories)."""

    name = "marginals"
    capabilities = Capabilities(
        description="Independent columns from each column's own distribution: fast, low fidelity, "
        "no relationships between columns.",
        license="Apache-2.0",
        family="basic",
        model_family="independent empirical marginals",
    )

    Params = MarginalsParams
    params: MarginalsParams

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.marginals: dict[str, dict] = {}

    def _fit_encoded(self, encoded: pd.DataFrame, *, seed: int, progress: ProgressCallback) -> FitResult:
        probabilities = np.linspace(0, 1, self.params.quantiles)
        for name, kind in self._fitted_codec().model_columns().items():
            column = encoded[name]
            if kind == "numeric":
                self.marginals[name] = {"kind": kind, "values": np.quantile(column, probabilities).tolist()}
            else:
                counts = column.value_counts()
                self.marginals[name] = {
                    "kind": kind,
                    "levels": counts.index.tolist(),
                    "counts": counts.astype(int).tolist(),
                }
        progress(Progress(self.name, "fit", 1, 1, message="marginals measured"))
        return FitResult(seconds=0.0, epochs=None)

    def _sample_encoded(self, n_rows: int, *, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        columns = {}
        for name, marginal in self.marginals.items():
            if marginal["kind"] == "numeric":
                grid = np.asarray(marginal["values"])
                columns[name] = np.interp(rng.random(n_rows), np.linspace(0, 1, grid.size), grid)
            else:
                counts = np.asarray(marginal["counts"], dtype=float)
                levels = np.asarray(marginal["levels"], dtype=object)
                columns[name] = rng.choice(levels, size=n_rows, p=counts / counts.sum())
        return pd.DataFrame(columns)

    def _save_model(self, directory: Path) -> None:
        (directory / "marginals.json").write_text(json.dumps(self.marginals))

    def _load_model(self, directory: Path) -> None:
        try:
            self.marginals = json.loads((directory / "marginals.json").read_text())
        except (OSError, ValueError) as exc:
            raise ModelFileError(f"The marginals in {directory} cannot be read ({exc}); fit again.") from exc
        if set(self.marginals) != set(self._fitted_codec().model_columns()):
            raise ModelFileError(f"The marginals in {directory} do not match its codec; fit again.")
