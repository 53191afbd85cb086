"""Bootstrap intervals next to the headline figures: quality, the DCR share and the membership-inference AUC.

Every interval is normal: the point estimate ± z × the spread of the statistic over BOOTSTRAP_DRAWS
resamples, clipped to the metric's range. Privacy figures resample what was already measured (cheap: no
neighbour search is repeated): the DCR share resamples the real reference rows each with the synthetic rows it is
nearest to (a cluster bootstrap), because one real row can decide many synthetic rows — off the real data's
manifold a few outlying references decide them all, and resampling only the synthetic rows then gave intervals
far too narrow (on pbc's subjects, the share of real unseen subjects with columns shuffled ranged 0.46-0.70 over
four splits); the AUC resamples members and non-members. Quality resamples the evaluation sample's draw itself:
each draw takes as many rows as the scored sample, with replacement, from the whole real and synthetic
tables, so the interval covers what another evaluation seed would draw as well as the rows' own noise.
sdmetrics takes seconds per report on a wide table (one call per column pair), so each draw is scored
by a vectorised stand-in for the same measures, computed as sdmetrics computes them: 1 - KS statistic
for numbers, 1 - total variation distance for categories, 1 - |Δ Pearson| / 2 for two numbers and
1 - total variation distance of the joint histogram for every other pair (numbers cut into ten bins on
each table's own range, as sdmetrics' ColumnPairTrends cuts them — an outlier drawn or not moves it).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import roc_auc_score

from fairsynth.services.run.evaluation.metrics import CONFIDENCE

BOOTSTRAP_DRAWS = 30  # resamples per interval: bounds the interval's cost
BINS = 10  # numbers are cut into this many bins where they meet a category (as sdmetrics does)

Interval = tuple[float, float]


def normal_interval(point: float, draws: list[float], bounds: Interval = (0.0, 1.0)) -> Interval | None:
    """(low, high): `point` ± z × the draws' standard deviation, clipped to `bounds`; None without a spread."""
    spread = np.nanstd(draws, ddof=1) if np.isfinite(draws).sum() > 1 else np.nan
    if not np.isfinite(point) or not np.isfinite(spread):
        return None
    half_width = float(stats.norm.ppf(0.5 + CONFIDENCE / 2) * spread)
    return max(bounds[0], point - half_width), min(bounds[1], point + half_width)


def resampled(statistic: Callable[..., float], arrays: list[np.ndarray], seed: int, sizes=None) -> list[float]:
    """The statistic over BOOTSTRAP_DRAWS draws, each array resampled on its own with replacement (to `sizes`)."""
    rng = np.random.default_rng(seed)
    sizes = sizes or [len(a) for a in arrays]
    return [
        statistic(*(a[rng.integers(0, len(a), n)] for a, n in zip(arrays, sizes, strict=True)))
        for _ in range(BOOTSTRAP_DRAWS)
    ]


def share_interval(per_row: np.ndarray, seed: int) -> Interval | None:
    """Interval of a share (the mean of per-row scores in [0, 1]), resampling the rows."""
    if len(per_row) < 2:
        return None
    return normal_interval(float(np.mean(per_row)), resampled(np.mean, [per_row], seed))


def clustered_share_interval(per_row: np.ndarray, clusters: np.ndarray, seed: int) -> Interval | None:
    """Interval of a share whose rows come in clusters, resampling whole clusters: (0, 1) when one cluster holds
    every row, since then a single draw of the clustering decides the share."""
    if len(per_row) < 2:
        return None
    _, members = np.unique(clusters, return_inverse=True)
    sums, sizes = np.bincount(members, weights=per_row), np.bincount(members)
    if len(sizes) < 2:
        return 0.0, 1.0
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(BOOTSTRAP_DRAWS):
        chosen = rng.integers(0, len(sizes), len(sizes))
        draws.append(float(sums[chosen].sum() / sizes[chosen].sum()))
    return normal_interval(float(np.mean(per_row)), draws)


def auc_interval(members: np.ndarray, non_members: np.ndarray, seed: int) -> Interval | None:
    """Interval of the attack's AUC (closer to a synthetic row = member), resampling members and non-members."""
    if len(members) < 2 or len(non_members) < 2:
        return None
    return normal_interval(distance_auc(members, non_members), resampled(distance_auc, [members, non_members], seed))


def distance_auc(members: np.ndarray, non_members: np.ndarray) -> float:
    """AUC of calling a row a member the smaller its distance to the nearest synthetic row."""
    labels = np.r_[np.ones(len(members)), np.zeros(len(non_members))]
    return float(roc_auc_score(labels, -np.r_[members, non_members]))


def quality_interval(
    real: pd.DataFrame, synthetic: pd.DataFrame, numeric: dict[str, bool], score: float | None, rows: int, seed: int
) -> Interval | None:
    """(low, high) around `score`: the stand-in's spread over draws of `rows` rows (with replacement) from the
    whole real and synthetic tables, clipped to [0, 1]."""
    if score is None or len(real) < 2 or len(synthetic) < 2 or rows < 2 or not numeric:
        return None
    codes_real, codes_synth = _encode(real, synthetic, numeric)
    names = list(numeric)

    def stand_in(real_rows: np.ndarray, synth_rows: np.ndarray) -> float:
        return _score(
            {n: codes_real[n][real_rows] for n in names}, {n: codes_synth[n][synth_rows] for n in names}, numeric
        )

    draws = resampled(stand_in, [np.arange(len(real)), np.arange(len(synthetic))], seed, sizes=[rows, rows])
    return normal_interval(score, draws)


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
    binned_real = {n: _bins(real[n]) if numeric[n] else real[n] for n in numeric}
    binned_synth = {n: _bins(synth[n]) if numeric[n] else synth[n] for n in numeric}
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


def _bins(values: np.ndarray) -> np.ndarray:
    """Bin codes of numbers cut into BINS on their own range, as sdmetrics' ColumnPairTrends cuts each table
    (missing gets a bin of its own)."""
    present = values[~np.isnan(values)]
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
