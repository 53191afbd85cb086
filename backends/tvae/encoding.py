"""Model-side encoding: the codec's encoded table <-> tensors the VAE learns.

Numeric columns go through a quantile transform to a standard normal, fitted in one vectorised
pass on a subsample (at most `max_fit_rows` rows). It replaces SDV's Bayesian Gaussian mixture per
column (mode-specific normalisation): any marginal, multi-modal or spiky, becomes one Gaussian
coordinate the decoder models with a Gaussian likelihood, and the inverse (interpolation in the
quantile grid) gives back point masses such as many exact zeros. Ties are spread uniformly over
their probability interval (seeded), so a spike is not one point in the latent space.

Categorical columns (levels already grouped by the codec: rare levels share one token, missing has
its own) become integer codes; the one-hot input is built per mini-batch, so a wide column never
costs a dense n x levels matrix.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy.special import ndtri

from fairsynth.backends.preprocessing import EncodedBatch

PROBABILITY_FLOOR = 1e-6  # keeps the normal scores finite (|z| <= 4.75)
SQRT_HALF = 0.5**0.5


@dataclass
class TableEncoding:
    """Quantile grids for numeric columns and level lists for categorical ones."""

    numeric: list[str]
    categorical: list[str]
    levels: list[list[str]]
    quantiles: np.ndarray  # (grid points, numeric columns)

    @classmethod
    def fit(
        cls,
        encoded: pd.DataFrame,
        kinds: dict[str, str],
        *,
        n_quantiles: int = 1000,
        max_fit_rows: int = 200_000,
        seed: int = 0,
    ) -> TableEncoding:
        """Learn quantile grids (on a seeded subsample) and category levels."""
        numeric = [c for c, k in kinds.items() if k == "numeric"]
        categorical = [c for c, k in kinds.items() if k == "categorical"]
        rows = encoded
        if len(encoded) > max_fit_rows:
            rows = encoded.sample(max_fit_rows, random_state=seed)
        grid_size = max(2, min(n_quantiles, len(rows)))
        values = rows[numeric].to_numpy(dtype=np.float64) if numeric else np.zeros((len(rows), 0))
        levels = [sorted(encoded[c].astype(str).unique().tolist()) for c in categorical]
        return cls(numeric, categorical, levels, _quantile_grid(values, grid_size))

    @property
    def category_sizes(self) -> list[int]:
        """Number of levels of each categorical column."""
        return [len(levels) for levels in self.levels]

    # -- table -> tensors ---------------------------------------------------------------------------
    def to_tensors(self, encoded: pd.DataFrame, *, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Normal scores (float32, rows x numeric) and level codes (int64, rows x categorical)."""
        rng = np.random.default_rng(seed)
        scores = np.empty((len(encoded), len(self.numeric)), dtype=np.float32)
        for j, name in enumerate(self.numeric):
            scores[:, j] = self._normal_scores(encoded[name].to_numpy(dtype=np.float64), self.quantiles[:, j], rng)
        codes = np.empty((len(encoded), len(self.categorical)), dtype=np.int64)
        for j, name in enumerate(self.categorical):
            codes[:, j] = pd.Categorical(encoded[name].astype(str), categories=self.levels[j]).codes
        if (codes < 0).any():
            raise ValueError("The table has category levels the encoding was not fitted on.")
        return torch.from_numpy(scores), torch.from_numpy(codes)

    @staticmethod
    def _normal_scores(x: np.ndarray, grid: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        probabilities = np.linspace(0, 1, grid.size)
        upper = np.interp(x, grid, probabilities)
        lower = -np.interp(-x, -grid[::-1], -probabilities[::-1])
        low, high = np.minimum(lower, upper), np.maximum(lower, upper)
        u = low + rng.random(x.size) * (high - low)  # spread ties over their probability interval
        return ndtri(np.clip(u, PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR))

    # -- tensors -> table ---------------------------------------------------------------------------
    def to_frame(self, scores: np.ndarray, codes: np.ndarray) -> pd.DataFrame:
        """The codec's encoded form from normal scores and level codes."""
        batch = self.to_batch(torch.as_tensor(scores).T, torch.as_tensor(codes).T)
        return batch.to_frame(
            {**dict.fromkeys(self.numeric, "numeric"), **dict.fromkeys(self.categorical, "categorical")}
        )

    def to_batch(self, scores: torch.Tensor, codes: torch.Tensor) -> EncodedBatch:
        """The codec's encoded form as arrays from column-major scores and codes (one row per column):
        values by the quantile inverse, level codes kept as codes."""
        return self.batch_at(self.grid_positions(scores), codes)

    def batch_at(self, positions: np.ndarray, codes: torch.Tensor) -> EncodedBatch:
        """to_batch from grid_positions' output (numpy only: it may run in another thread)."""
        codes = codes.contiguous().cpu().numpy()
        return EncodedBatch(
            rows=max(positions.shape[1], codes.shape[1]),
            numbers=dict(zip(self.numeric, self.values_at(positions))),
            codes=dict(zip(self.categorical, codes)),
            tokens=dict(zip(self.categorical, self.levels)),
        )

    def inverse_scores(self, scores: torch.Tensor) -> np.ndarray:
        """Values (float64, numeric columns x rows) from scores (columns x rows) by the quantile inverse."""
        return np.array(self.values_at(self.grid_positions(scores))).reshape(len(self.numeric), scores.shape[1])

    def grid_positions(self, scores: torch.Tensor) -> np.ndarray:
        """Where each score falls in its column's quantile grid, in cells: Phi(z) x cells, in the scores'
        precision (float32 from the sampler: 1e-4 of a cell, far below the model's noise).

        torch's erf runs under the calling thread's torch thread setting; called from a thread that
        never set one, its math library would spin up (and spin-wait) a thread per CPU."""
        cells = max(self.quantiles.shape[0] - 1, 0)
        scaled = scores.cpu() * SQRT_HALF
        position = torch.special.erf(scaled, out=scaled).numpy()  # Phi(z) = (1 + erf(z / sqrt 2)) / 2
        position += 1
        position *= cells / 2
        return position

    def values_at(self, position: np.ndarray) -> list[np.ndarray]:
        """Each numeric column's values (float64) at its grid positions: linear interpolation in the
        quantile grid, whose probabilities are evenly spaced, so the cell is found by arithmetic. The
        grid and the interpolation are float64, so point masses such as exact zeros come back exact.
        Column by column, in place in numpy: the temporaries stay small enough for the allocator to
        reuse (whole-batch ones took fresh pages every batch). Overwrites position."""
        cells = self.quantiles.shape[0] - 1
        if cells < 1 or self.quantiles.size == 0:
            return [np.full(position.shape[1], value) for value in self.quantiles[:1].ravel()]
        starts, slopes = self._cells
        values = []
        for j, fraction in enumerate(position):
            cell = fraction.astype(np.int64)  # truncation is floor: position >= 0; NaN casts to a negative cell
            np.subtract(fraction, cell, out=fraction, casting="unsafe")  # the fraction within the cell
            # take's clip mode bounds the cell (NaN -> the first, whose value stays NaN); the table's extra
            # last cell holds the grid's end, so position == cells gives what the last cell gives at 1
            column = slopes[j].take(cell, mode="clip")
            column *= fraction
            column += starts[j].take(cell, mode="clip")
            values.append(column)
        return values

    @functools.cached_property
    def _cells(self) -> tuple[np.ndarray, np.ndarray]:
        """Each grid cell's start value and slope (columns x cells), and one more cell after the last:
        the last cell's value at its end (start + slope x 1, computed as values_at does), slope 0."""
        grid = self.quantiles.T
        slopes = np.diff(grid, axis=1)
        end = slopes[:, -1:] * 1.0 + grid[:, -2:-1]
        return np.hstack([grid[:, :-1], end]), np.hstack([slopes, np.zeros_like(end)])

    def calibrated(self, generated: np.ndarray) -> TableEncoding:
        """This encoding with each numeric column's grid composed with the model's own score distribution.

        Sampling maps a score z to the real quantile at Phi(z); a VAE's scores drawn from the prior are not exactly
        standard normal (its aggregate posterior is not the prior), so marginals come out too wide or shifted. With
        F the empirical CDF of `generated` (columns x rows, scores the trained model drew), the grid point at
        probability u becomes the real quantile at F(Phi^-1(u)): a monotone map per column, so every sampled
        marginal matches the real one while the joint ranks, the dependence, stay the model's."""
        if not self.numeric or generated.shape[1] == 0:
            return self
        probabilities = np.linspace(0, 1, self.quantiles.shape[0])
        with np.errstate(divide="ignore"):
            normal = ndtri(probabilities)  # -inf and inf at the ends: F gives 0 and 1 there
        ordered = np.sort(np.asarray(generated, dtype=np.float64), axis=1)
        grid = np.empty_like(self.quantiles)
        for j, scores in enumerate(ordered):
            below = np.searchsorted(scores, normal, side="left")
            at_or_below = np.searchsorted(scores, normal, side="right")
            share = (below + at_or_below) / (2 * scores.size)  # ties counted half: the CDF's midpoint
            grid[:, j] = np.interp(share, probabilities, self.quantiles[:, j])
        return TableEncoding(self.numeric, self.categorical, self.levels, grid)

    # -- persistence --------------------------------------------------------------------------------
    def to_json_dict(self) -> dict:
        """Column names and levels (the quantile grid travels with the tensors)."""
        return {"numeric": self.numeric, "categorical": self.categorical, "levels": self.levels}

    @classmethod
    def from_parts(cls, info: dict, quantiles: np.ndarray) -> TableEncoding:
        """Rebuild from to_json_dict's output and the stored quantile grid."""
        numeric, categorical, levels = list(info["numeric"]), list(info["categorical"]), info["levels"]
        if len(levels) != len(categorical) or quantiles.ndim != 2 or quantiles.shape[1] != len(numeric):
            raise ValueError("the encoding's columns do not match its quantile grid")
        return cls(numeric, categorical, [[str(v) for v in lv] for lv in levels], quantiles.astype(np.float64))


def _quantile_grid(values: np.ndarray, grid_size: int) -> np.ndarray:
    """Linear-interpolated quantiles of every column at grid_size even probabilities (one sort)."""
    if len(values) == 0:
        return np.zeros((grid_size, values.shape[1]))
    ordered = np.sort(values, axis=0)
    positions = np.linspace(0, len(values) - 1, grid_size)
    below = np.floor(positions).astype(np.int64)
    above = np.minimum(below + 1, len(values) - 1)
    weight = (positions - below)[:, None]
    return ordered[below] * (1 - weight) + ordered[above] * weight
