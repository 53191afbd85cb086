"""The low-fidelity baseline keeps each column and breaks relationships; it saves as JSON."""

from __future__ import annotations

import pandas as pd
import pytest

from fairsynth.backends import registry
from fairsynth.backends.base import ModelFileError, NotFittedError
from fairsynth.backends.marginals import MarginalsGenerator
from fairsynth.metadata.schema import TableSchema


@pytest.fixture
def fitted(support2):
    sample = support2.sample(3000, random_state=0)
    generator = registry.create("marginals")
    generator.fit(sample, TableSchema.infer(sample), seed=1)
    return generator, sample


def test_marginals_kept_relationships_broken(fitted):
    generator, real = fitted
    synthetic = pd.concat(generator.sample(6000, seed=2, batch_rows=1000), ignore_index=True)
    assert len(synthetic) == 6000 and list(synthetic.columns) == list(real.columns)
    assert synthetic["num_age"].median() == pytest.approx(real["num_age"].median(), rel=0.05)
    assert synthetic["num_glucose"].isna().mean() == pytest.approx(real["num_glucose"].isna().mean(), abs=0.03)
    real_corr = real["num_surv2m"].corr(real["num_surv6m"])
    assert real_corr > 0.8 and abs(synthetic["num_surv2m"].corr(synthetic["num_surv6m"])) < 0.1


def test_same_seed_same_rows_and_batches_do_not_change_rows(fitted):
    generator, _ = fitted
    one = pd.concat(generator.sample(2000, seed=5, batch_rows=2000), ignore_index=True)
    two = pd.concat(generator.sample(2000, seed=5, batch_rows=2000), ignore_index=True)
    pd.testing.assert_frame_equal(one, two)


def test_save_load_round_trip(fitted, tmp_path):
    generator, _ = fitted
    generator.save(tmp_path / "model")
    loaded = MarginalsGenerator.load(tmp_path / "model")
    pd.testing.assert_frame_equal(next(loaded.sample(300, seed=3)), next(generator.sample(300, seed=3)))


def test_tampered_or_foreign_model_files_give_clear_errors(fitted, tmp_path):
    generator, _ = fitted
    generator.save(tmp_path / "model")
    (tmp_path / "model" / "marginals.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="cannot be read"):
        MarginalsGenerator.load(tmp_path / "model")
    (tmp_path / "model" / "backend.json").write_text('{"backend": "tvae", "params": {}}')
    with pytest.raises(ModelFileError, match="saved by backend 'tvae'"):
        MarginalsGenerator.load(tmp_path / "model")
    (tmp_path / "model" / "backend.json").write_text('{"backend": "marginals", "params": {"quantiles": 1}}')
    with pytest.raises(ModelFileError, match=r"has parameters this version refuses \(.*quantiles must be >= 2"):
        MarginalsGenerator.load(tmp_path / "model")
    with pytest.raises(NotFittedError):
        next(MarginalsGenerator().sample(5, seed=0))
