"""A bootstrap interval for the quality score, on the rows already drawn for the quality report.

sdmetrics takes seconds per report on a wide table (one call per column pair), so each draw is
scored by a vectorised stand-in for the same measures: 1 - KS statistic for numbers, 1 - total
variation distance for categories, 1 - |Δ Pearson| / 2 for two numbers and 1 - total variation
distance of the joint histogram (numbers in ten bins) for every other pair. The spread of the
stand-in over BOOTSTRAP_DRAWS resamples gives a normal interval around sdmetrics' own score.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats

BOOTSTRAP_DRAWS = 30  # resamples of the drawn real and synthetic rows: bounds the interval's cost
CONFIDENCE = 0.95  # two-sided level of every interval next to a headline figure
BINS = 10  # numbers are cut into this many bins where they meet a category (as sdmetrics does)


def quality_interval(
    real: pd.DataFrame, synthetic: pd.DataFrame, numeric: dict[str, bool], score: float | None, seed: int
) -> tuple[float, float] | None:
    """(low, high) around `score`: its bootstrap spread over resampled rows of both tables, clipped to [0, 1]."""
    if score is None or len(real) < 2 or len(synthetic) < 2 or not numeric:
        return None
    codes_real, codes_synth = _encode(real, synthetic, numeric)
    rng = np.random.default_rng(seed)
    draws = [
        _score(
            {n: c[rows_real] for n, c in codes_real.items()},
            {n: c[rows_synth] for n, c in codes_synth.items()},
            numeric,
        )
        for rows_real, rows_synth in (
            (rng.integers(0, len(real), len(real)), rng.integers(0, len(synthetic), len(synthetic)))
            for _ in range(BOOTSTRAP_DRAWS)
        )
    ]
    half_width = float(stats.norm.ppf(0.5 + CONFIDENCE / 2) * np.nanstd(draws, ddof=1))
    return max(0.0, score - half_width), min(1.0, score + half_width)


def _encode(real: pd.DataFrame, synthetic: pd.DataFrame, numeric: dict[str, bool]):
    """Numbers as floats; categories as shared integer codes (missing is a category of its own)."""
    codes_real, codes_synth = {}, {}
    for name, is_number in numeric.items():
        if is_number:
            codes_real[name] = pd.to_numeric(real[name], errors="coerce").to_numpy(dtype=float)
            codes_synth[name] = pd.to_numeric(synthetic[name], errors="coerce").to_numpy(dtype=float)
        else:
            both = pd.concat([real[name], synthetic[name]], ignore_index=True).astype(str)
            codes = pd.factorize(both)[0]
            codes_real[name], codes_synth[name] = codes[: len(real)], codes[len(real) :]
    return codes_real, codes_synth


def _score(real: dict, synth: dict, numeric: dict[str, bool]) -> float:
    """The stand-in quality: the mean of the column-shape mean and the pair mean."""
    shapes = [_shape(real[n], synth[n], numeric[n]) for n in numeric]
    binned_real = {n: _bins(real[n], real[n]) if numeric[n] else real[n] for n in numeric}
    binned_synth = {n: _bins(synth[n], real[n]) if numeric[n] else synth[n] for n in numeric}
    pairs = [
        _correlation_similarity(real[a], real[b], synth[a], synth[b])
        if numeric[a] and numeric[b]
        else _joint_similarity(binned_real[a], binned_real[b], binned_synth[a], binned_synth[b])
        for a, b in itertools.combinations(numeric, 2)
    ]
    parts = [np.nanmean(shapes)] + ([np.nanmean(pairs)] if pairs else [])
    return float(np.nanmean(parts))


def _shape(real: np.ndarray, synth: np.ndarray, is_number: bool) -> float:
    if is_number:
        real, synth = real[~np.isnan(real)], synth[~np.isnan(synth)]
        if not len(real) or not len(synth):
            return np.nan
        return 1.0 - float(stats.ks_2samp(real, synth, method="asymp").statistic)
    size = int(max(real.max(), synth.max())) + 1
    return _histogram_similarity(real, synth, size)


def _bins(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Bin codes of numbers on the reference's edges (missing gets a bin of its own)."""
    present = reference[~np.isnan(reference)]
    edges = np.histogram_bin_edges(present, bins=BINS) if len(present) else np.array([0.0])
    return np.where(np.isnan(values), BINS + 2, np.digitize(values, edges))


def _correlation_similarity(real_a, real_b, synth_a, synth_b) -> float:
    return 1.0 - abs(_pearson(real_a, real_b) - _pearson(synth_a, synth_b)) / 2


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    present = ~(np.isnan(a) | np.isnan(b))
    a, b = a[present], b[present]
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return np.nan
    return float(np.corrcoef(a, b)[0, 1])


def _joint_similarity(real_a, real_b, synth_a, synth_b) -> float:
    width = int(max(real_b.max(), synth_b.max())) + 1
    size = (int(max(real_a.max(), synth_a.max())) + 1) * width
    return _histogram_similarity(real_a * width + real_b, synth_a * width + synth_b, size)


def _histogram_similarity(real: np.ndarray, synth: np.ndarray, size: int) -> float:
    """1 - total variation distance between the two tables' shares of each code."""
    real_share = np.bincount(real.astype(np.int64), minlength=size) / len(real)
    synth_share = np.bincount(synth.astype(np.int64), minlength=size) / len(synth)
    return 1.0 - 0.5 * float(np.abs(real_share - synth_share).sum())
