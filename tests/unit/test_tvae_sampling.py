"""The tvae's fast sampling path: column-major draws, level codes without strings, Arrow batches."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fairsynth.backends.base import BackendError, sample_tables
from fairsynth.backends.tvae import TVAEGenerator
from fairsynth.backends.tvae.encoding import TableEncoding
from fairsynth.backends.tvae.model import FusedAdam, TabularVAE, size_groups
from fairsynth.metadata.schema import TableSchema
from fairsynth.services.run.demo import load_demo_table

FAST = {"epochs": 2, "batch_size": 256, "hidden_size": 32, "latent_dim": 16}


def _fitted(table: pd.DataFrame) -> TVAEGenerator:
    generator = TVAEGenerator(**FAST)
    generator.fit(table, TableSchema.infer(table), seed=3)
    return generator


@pytest.fixture(scope="module")
def fitted_tables() -> dict[str, TVAEGenerator]:
    """tvae fitted briefly on the demo table and on 1,500 rows of SUPPORT2."""
    from SurvSet.data import SurvLoader

    support2 = SurvLoader().load_dataset("support2")["df"].sample(1500, random_state=2).reset_index(drop=True)
    return {"demo": _fitted(load_demo_table()), "support2": _fitted(support2)}


@pytest.mark.parametrize("table", ["demo", "support2"])
def test_code_path_decodes_exactly_like_the_token_path(fitted_tables, table):
    generator = fitted_tables[table]
    codec = generator._fitted_codec()
    fast = codec.to_pandas(codec.decode_arrow(generator._sample_encoded_batch(3000, seed=9), seed=4, start_row=10))
    via_tokens = codec.decode(generator._sample_encoded(3000, seed=9), seed=4, start_row=10)
    pd.testing.assert_frame_equal(fast, via_tokens)
    assert list(fast.columns) == codec.output_columns()


@pytest.mark.parametrize("table", ["demo", "support2"])
def test_arrow_batches_are_the_sample_batches(fitted_tables, table):
    generator = fitted_tables[table]
    frames = list(generator.sample(1200, seed=8, batch_rows=500))
    tables = list(sample_tables(generator, 1200, seed=8, batch_rows=500))
    assert [t.num_rows for t in tables] == [500, 500, 200]
    for frame, arrow in zip(frames, tables):
        pd.testing.assert_frame_equal(generator._fitted_codec().to_pandas(arrow), frame)
        assert b"pandas" in arrow.schema.metadata  # Parquet read back by pandas gets sample()'s dtypes


@pytest.mark.parametrize("precision", [torch.float32, torch.bfloat16])
def test_categories_are_drawn_with_softmax_frequencies(precision):
    sizes = [2, 3, 5, 2, 1, 6]  # level-count groups: two levels (with a one-level column), four, eight
    model = TabularVAE(1, sizes, latent_dim=4, hidden_size=8, hidden_layers=1).eval()
    logits = torch.tensor(
        [0.0, 1.0, 2.0, 0.0, -1.0, 0.5, 0.0, 1.5, -2.0, 0.3, -3.0, 3.0, 7.0, 0.0, 0.0, -1.0, 1.0, 2.0, -0.5]
    )
    with torch.no_grad():
        model.to_output.weight.zero_()
        model.to_output.bias.copy_(torch.cat([torch.zeros(1), logits]))
    _, codes = model.sample(200_000, torch.Generator().manual_seed(1), precision=precision)
    assert [len(g) for g in size_groups(sizes)] == [3, 1, 2]
    for j, (start, size) in enumerate(zip(np.cumsum([0] + sizes[:-1]), sizes)):
        expected = torch.softmax(logits[start : start + size], 0).numpy()
        observed = np.bincount(codes[j].numpy(), minlength=size) / codes.shape[1]
        np.testing.assert_allclose(observed, expected, atol=0.005)


def test_bfloat16_sampling_keeps_the_float32_distribution(fitted_tables):
    """The fast decoder precision moves no column's marginal: same means, spreads and level shares."""
    generator = fitted_tables["support2"]
    model, encoding = generator.model, generator.encoding
    draws = {}
    for precision in (torch.float32, torch.bfloat16):
        scores, codes = model.sample(100_000, torch.Generator().manual_seed(4), precision=precision)
        draws[precision] = (encoding.inverse_scores(scores), codes.numpy())
    (values32, codes32), (values16, codes16) = draws[torch.float32], draws[torch.bfloat16]
    spread = values32.std(axis=1) + 1e-9
    assert np.abs(values16.mean(axis=1) - values32.mean(axis=1)).max() / spread.max() < 0.05
    np.testing.assert_allclose(values16.std(axis=1) / spread, 1, atol=0.05)
    for j in range(codes32.shape[0]):
        shares = [np.bincount(c[j], minlength=int(c[j].max()) + 2) / c.shape[1] for c in (codes32, codes16)]
        width = max(len(s) for s in shares)
        np.testing.assert_allclose(*(np.pad(s, (0, width - len(s))) for s in shares), atol=0.01)


@pytest.mark.parametrize("precision", [torch.float32, torch.bfloat16])
def test_drawn_rows_do_not_depend_on_the_thread_count(fitted_tables, precision):
    model, before = fitted_tables["support2"].model, torch.get_num_threads()
    draws = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            draws.append(model.sample(50_000, torch.Generator().manual_seed(6), precision=precision))
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(a, b) for a, b in zip(*draws))


def test_the_first_batch_draws_on_the_stream_helpers_cpus(fitted_tables, monkeypatch):
    """Before the first batch the decoder and writer threads are idle: its draw may use their CPUs; later draws
    leave them free (the rows are the same either way: see the thread-count test above)."""
    from fairsynth.backends.base import SAMPLING_HELPER_THREADS
    from fairsynth.backends.tvae import generator as tvae_generator

    kept_free: list[int] = []

    def recorded(work_per_step, *, idle_only=True, keep_free=0):
        kept_free.append(keep_free)
        return 1

    monkeypatch.setattr(tvae_generator, "threads_for", recorded)
    for _ in sample_tables(fitted_tables["support2"], 3000, seed=1, batch_rows=1000):
        pass
    assert kept_free == [0, SAMPLING_HELPER_THREADS, SAMPLING_HELPER_THREADS]


def test_sample_precision_is_checked_and_recorded(fitted_tables):
    with pytest.raises(
        BackendError, match="sample_precision must be one of 'auto', 'float32' or 'bfloat16' \\(got 'half'\\)"
    ):
        TVAEGenerator(sample_precision="half")
    table = load_demo_table().head(300)
    result = TVAEGenerator(epochs=1, sample_precision="float32").fit(table, TableSchema.infer(table), seed=0)
    assert result.details["sample_precision"] == "float32"


def _skewed_and_spiky(seed: int) -> tuple[TableEncoding, torch.Tensor]:
    """A quantile encoding of an exponential column and one with 40% exact zeros, and float64 scores."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {"skewed": rng.exponential(3.0, 5000), "spiky": np.where(rng.random(5000) < 0.4, 0.0, rng.normal(50, 5, 5000))}
    )
    encoding = TableEncoding.fit(frame, {"skewed": "numeric", "spiky": "numeric"}, n_quantiles=200)
    return encoding, torch.from_numpy(rng.normal(size=(2, 10_000)))


def test_vectorised_quantile_inverse_matches_interpolation():
    encoding, scores = _skewed_and_spiky(0)
    fast = encoding.inverse_scores(scores)
    probabilities = np.linspace(0, 1, encoding.quantiles.shape[0])
    from scipy.special import ndtr

    for j in range(2):
        np.testing.assert_allclose(
            fast[j], np.interp(ndtr(scores[j].numpy()), probabilities, encoding.quantiles[:, j]), rtol=1e-12, atol=1e-12
        )


def test_float32_scores_invert_within_a_thousandth_of_a_cell():
    encoding, scores = _skewed_and_spiky(1)
    exact, fast = encoding.inverse_scores(scores), encoding.inverse_scores(scores.float())
    widest_cell = np.diff(encoding.quantiles, axis=0).max(axis=0)[:, None]
    assert (np.abs(fast - exact) <= 1e-3 * widest_cell).all()
    assert fast.dtype == np.float64 and (fast[1] == 0).mean() > 0.35  # the spike at zero stays exact


def test_fused_adam_steps_like_torch_adam():
    torch.manual_seed(0)
    ours, theirs = torch.nn.Linear(6, 3), torch.nn.Linear(6, 3)
    theirs.load_state_dict(ours.state_dict())
    mine = FusedAdam(ours.parameters(), lr=1e-2, weight_decay=1e-3)
    reference = torch.optim.Adam(theirs.parameters(), lr=1e-2, weight_decay=1e-3)
    x = torch.randn(32, 6)
    for _ in range(5):
        for model, optimizer in ((ours, mine), (theirs, reference)):
            optimizer.zero_grad()
            model(x).square().mean().backward()
            optimizer.step()
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b)


def test_default_batch_gives_small_tables_more_steps():
    small, large = TVAEGenerator(epochs=1), TVAEGenerator(epochs=1)
    assert small._batch_rows(6_000) == 128 and large._batch_rows(12_000) == 240
    assert large._batch_rows(100_000) == 500 and TVAEGenerator(batch_size=64)._batch_rows(6_000) == 64
