"""tvae on a high-cardinality text column: the network learns at most max_levels levels one-hot, the rest are drawn
from the rare pool by their training frequencies, and a level seen in fewer than min_level_rows rows never returns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairsynth.backends import registry
from fairsynth.metadata.schema import MIN_LEVEL_ROWS, RARE_LEVEL, TableSchema

ROWS, LEVELS, SAMPLED = 8_000, 600, 20_000
CAP = 64  # the max_levels asked for: far fewer than the column has
TOO_RARE = {f"Lab {i:04d}": MIN_LEVEL_ROWS - 1 for i in range(9000, 9006)}  # each in fewer rows than allowed


def high_cardinality_table() -> pd.DataFrame:
    """A 600-level lab name with Zipf-like frequencies (every level in at least MIN_LEVEL_ROWS rows), six levels
    too rare to show, a site and a number that follow nothing in particular."""
    rng = np.random.default_rng(5)
    weights = 1.0 / np.arange(1, LEVELS + 1)
    counts = MIN_LEVEL_ROWS + np.floor(weights / weights.sum() * (ROWS - LEVELS * MIN_LEVEL_ROWS)).astype(int)
    names = [f"Lab {i:04d}" for i in range(LEVELS)] + list(TOO_RARE)
    lab = np.repeat(np.array(names, dtype=object), np.append(counts, list(TOO_RARE.values())))
    rng.shuffle(lab)
    return pd.DataFrame(
        {"lab": lab, "site": rng.choice(["A", "B", "C"], len(lab)), "value": rng.normal(5, 1, len(lab)).round(2)}
    )


@pytest.fixture(scope="module")
def fitted():
    real = high_cardinality_table()
    schema = TableSchema.infer(real)
    generator = registry.create("tvae", epochs=15, patience=0, max_levels=CAP)
    generator.fit(real, schema, seed=0)
    synthetic = pd.concat(generator.sample(SAMPLED, seed=1), ignore_index=True)
    return real, generator, synthetic


def test_the_encoded_width_of_a_high_cardinality_column_is_bounded_by_the_cap(fitted):
    real, generator, _ = fitted
    assert real["lab"].nunique() > 2 * CAP  # the column has far more levels than the cap
    position = generator.encoding.categorical.index("lab")
    assert generator.encoding.category_sizes[position] <= CAP + 1  # + the rare token
    assert generator.model.input_width <= 1 + CAP + 1 + 3  # value, lab, site


def test_sampled_levels_follow_the_real_frequencies(fitted):
    real, _, synthetic = fitted
    real_share = real["lab"].value_counts(normalize=True)
    synthetic_share = synthetic["lab"].value_counts(normalize=True).reindex(real_share.index, fill_value=0.0)
    top = real_share.index[:5]
    assert np.abs(synthetic_share[top] - real_share[top]).max() < 0.02  # the most frequent levels, learned
    tail = real_share.index[CAP:]  # drawn from the pool, not learned
    assert abs(synthetic_share[tail].sum() - real_share[tail].sum()) < 0.05
    assert synthetic["lab"].nunique() > 3 * CAP  # the pool's levels come back, not only the cap's


def test_a_level_under_the_rare_threshold_never_comes_back(fitted):
    _, _, synthetic = fitted
    sampled = set(synthetic["lab"])
    assert not sampled & set(TOO_RARE)
    assert RARE_LEVEL in sampled  # the rows of the too-rare levels come back as the one non-level


def test_the_cap_is_the_backend_parameter_the_codec_reads():
    real = high_cardinality_table()
    generator = registry.create("tvae", epochs=1, patience=0, max_levels=10)
    generator.fit(real, TableSchema.infer(real), seed=0)
    lab = next(codec for codec in generator.codec.columns if codec.name == "lab")
    assert list(lab.levels) == real["lab"].value_counts().index[:10].tolist()  # the ten most frequent
