"""The in-house TVAE backend on real tables: determinism, save/load, minority levels, DP, bad files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from fairsynth.backends.base import BackendError, ModelFileError, Progress
from fairsynth.backends.registry import backend_info, create
from fairsynth.backends.tvae import DPTVAEGenerator, TVAEGenerator
from fairsynth.backends.tvae.params import VAEParams
from fairsynth.metadata.schema import ColumnKind, TableSchema
from fairsynth.services.run.demo import load_demo_table

FAST = {"epochs": 2, "batch_size": 256, "hidden_size": 32, "latent_dim": 16}


@pytest.fixture(scope="module")
def support2() -> pd.DataFrame:
    """2,000 rows of SUPPORT2 (mixed types, missing values, skewed numbers)."""
    from SurvSet.data import SurvLoader

    return SurvLoader().load_dataset("support2")["df"].sample(2000, random_state=3).reset_index(drop=True)


@pytest.fixture(scope="module")
def demo() -> tuple[pd.DataFrame, TableSchema]:
    """The demo hospital-episodes table and its inferred schema."""
    table = load_demo_table()
    return table, TableSchema.infer(table)


@pytest.fixture(scope="module")
def fitted_demo(demo) -> TVAEGenerator:
    """A small tvae fitted on the demo table for a few epochs."""
    table, schema = demo
    generator = TVAEGenerator(**FAST)
    generator.fit(table, schema, seed=11)
    return generator


def _rows(generator, n: int = 500, seed: int = 5) -> pd.DataFrame:
    return pd.concat(generator.sample(n, seed=seed, batch_rows=200), ignore_index=True)


def test_registry_exposes_both_backends_with_their_params_defaults():
    tvae, dp = backend_info("tvae"), backend_info("tvae.dp")
    assert tvae.available and dp.available
    defaults, dp_defaults = tvae.params().model_dump(), dp.params().model_dump()
    assert defaults["epochs"] == 300 and defaults["batch_size"] is None  # auto: rows / 50 in [128, 500]
    assert dp_defaults["epsilon"] == 3.0 and dp_defaults["delta"] is None and dp_defaults["epochs"] == 50
    assert dp.capabilities.dp and not tvae.capabilities.dp and tvae.capabilities.family == "torch"
    assert isinstance(create("tvae", epochs=3), TVAEGenerator)


def test_same_seed_gives_the_same_rows_and_another_seed_does_not(support2):
    schema = TableSchema.infer(support2)
    first, second = TVAEGenerator(**FAST), TVAEGenerator(**FAST)
    first.fit(support2, schema, seed=7)
    second.fit(support2, schema, seed=7)
    pd.testing.assert_frame_equal(_rows(first), _rows(second))
    assert not _rows(first).equals(_rows(first, seed=6))


def test_output_has_source_columns_and_valid_dates(demo, fitted_demo):
    table, _ = demo
    rows = _rows(fitted_demo, 1000)
    assert list(rows.columns) == list(table.columns) and len(rows) == 1000
    for column in ("admission_date", "discharge_date"):
        parsed = pd.to_datetime(rows[column].dropna(), format="%d/%m/%Y", errors="coerce")
        assert parsed.notna().all() and len(parsed) > 500
    assert rows["episode_id"].is_unique
    assert rows["age"].dropna().between(table["age"].min(), table["age"].max()).all()


def test_progress_reports_every_epoch_with_loss_and_seconds(demo):
    table, schema = demo
    reports: list[Progress] = []
    result = TVAEGenerator(**{**FAST, "epochs": 3}).fit(table, schema, seed=1, progress=reports.append)
    assert [r.step for r in reports] == [1, 2, 3] == list(range(1, result.epochs + 1))
    assert all(r.loss is not None and np.isfinite(r.loss) and r.seconds > 0 for r in reports)
    assert len(result.details["validation_losses"]) == 3


def test_early_stopping_ends_training_before_the_epoch_limit(demo):
    table, schema = demo
    result = TVAEGenerator(**{**FAST, "epochs": 200, "patience": 1, "learning_rate": 0.05}).fit(table, schema, seed=2)
    assert result.details["stopped_early"] and result.epochs < 200


def test_a_large_table_trains_fewer_epochs_within_the_row_budget(demo):
    table, schema = demo
    train_rows = len(table) - round(0.1 * len(table))  # the validation share is held back
    generator = TVAEGenerator(**{**FAST, "epochs": 50, "patience": 0, "row_budget": 3 * train_rows + 1})
    result = generator.fit(table, schema, seed=3)
    assert result.epochs == result.details["epochs_planned"] == 3  # not 50: 3 passes fill the budget
    unlimited = TVAEGenerator(**{**FAST, "epochs": 4, "patience": 0, "row_budget": None}).fit(table, schema, seed=3)
    assert unlimited.epochs == 4


def test_save_and_load_give_the_same_rows(fitted_demo, tmp_path):
    fitted_demo.save(tmp_path)
    loaded = TVAEGenerator.load(tmp_path)
    pd.testing.assert_frame_equal(_rows(loaded), _rows(fitted_demo))
    assert not any(p.suffix in (".pkl", ".pt", ".pickle") for p in tmp_path.iterdir())


def test_default_network_follows_the_encoded_row_and_rows_and_survives_save_and_load(demo, nafld1, tmp_path):
    """A narrow row with many rows gets the larger network (256 units, latent 64: NAFLD1 at mostly.argn's level,
    benchmarks/results/width.md); with few rows it keeps 64 x 32 (flchain lost with 256 x 64), a wider row 128 x 32."""
    table, schema = demo  # 43 encoded values a row
    few = nafld1.head(600)  # 18 encoded values a row
    tables = {"demo": (table, schema), "nafld1": (nafld1, TableSchema.infer(nafld1)), "few": (few, None)}
    sizes = {}
    for name, (data, data_schema) in tables.items():
        generator = TVAEGenerator(epochs=1, row_budget=1)  # one pass of the network is enough to build it
        fitted = generator.fit(data, data_schema or TableSchema.infer(data), seed=1)
        sizes[name] = (fitted.details["hidden_size"], fitted.details["latent_dim"])
        generator.save(tmp_path / name)
        loaded = TVAEGenerator.load(tmp_path / name)
        assert (loaded.model.hidden_size, loaded.model.latent_dim) == sizes[name]
        pd.testing.assert_frame_equal(pd.concat(loaded.sample(50, seed=3)), pd.concat(generator.sample(50, seed=3)))
    assert sizes == {"demo": (128, 32), "nafld1": (256, 64), "few": (64, 32)}
    asked = TVAEGenerator(epochs=1, hidden_size=96, latent_dim=8).fit(few, TableSchema.infer(few), seed=1)
    assert (asked.details["hidden_size"], asked.details["latent_dim"]) == (96, 8)
    assert DPTVAEGenerator(epochs=1).params.latent_dim == 32  # its own defaults, tuned for DP-SGD


def test_the_same_seed_trains_the_same_weights_whatever_the_machine_load(support2, monkeypatch):
    """Thread count changes floating-point sums: training must not pick it from the load average."""
    schema = TableSchema.infer(support2)
    fits, weights, rows = [], [], []
    for load in (0.0, 100.0):  # an idle machine, then a saturated one
        monkeypatch.setattr("os.getloadavg", lambda load=load: (load, load, load))
        generator = TVAEGenerator(epochs=2, batch_size=1024, hidden_size=512, latent_dim=16)  # work for 2 threads
        fits.append(generator.fit(support2, schema, seed=4))
        weights.append(generator.model.state_dict())
        rows.append(pd.concat(generator.sample(20_000, seed=5), ignore_index=True))
    assert fits[0].details["threads"] == fits[1].details["threads"]
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])
    pd.testing.assert_frame_equal(rows[0], rows[1])  # sampling may follow the load: its rows do not change


def test_tampered_tensor_file_is_refused(fitted_demo, tmp_path):
    fitted_demo.save(tmp_path)
    tensors = tmp_path / "tvae.safetensors"
    data = bytearray(tensors.read_bytes())
    data[-5] ^= 0xFF
    tensors.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="unreadable or was changed"):
        TVAEGenerator.load(tmp_path)


@pytest.mark.parametrize("damage", ["delete_tensors", "garble_info", "wrong_backend"])
def test_missing_or_garbled_model_files_give_a_clear_error(fitted_demo, tmp_path, damage):
    fitted_demo.save(tmp_path)
    if damage == "delete_tensors":
        (tmp_path / "tvae.safetensors").unlink()
    elif damage == "garble_info":
        (tmp_path / "tvae.json").write_text("{not json")
    else:
        info = json.loads((tmp_path / "backend.json").read_text())
        (tmp_path / "backend.json").write_text(json.dumps({**info, "backend": "marginals"}))
    with pytest.raises(ModelFileError):
        TVAEGenerator.load(tmp_path)


def test_bad_parameters_are_refused_in_one_sentence():
    with pytest.raises(BackendError, match=r"^Backend 'tvae': epochs must be >= 1 \(got 0\)\.$"):
        TVAEGenerator(epochs=0)
    with pytest.raises(BackendError, match=r"epsilon must be > 0 \(got 0\); max_grad_norm must be > 0 \(got -1\)\.$"):
        DPTVAEGenerator(epsilon=0, max_grad_norm=-1)
    with pytest.raises(BackendError, match=r"validation_share must be < 0.5 \(got 0.5\)"):
        TVAEGenerator(validation_share=0.5)
    with pytest.raises(BackendError, match=r"device must match"):
        TVAEGenerator(device="gpu")


def test_dp_params_extend_the_shared_network_params_without_early_stopping():
    shared = set(VAEParams.model_fields)
    assert issubclass(DPTVAEGenerator.Params, VAEParams) and issubclass(TVAEGenerator.Params, VAEParams)
    assert set(DPTVAEGenerator.Params.model_fields) == shared | {"epsilon", "delta", "max_grad_norm"}
    assert DPTVAEGenerator.Params.model_fields["calibration_rows"].default == 0  # not measured under DP-SGD
    assert set(TVAEGenerator.Params.model_fields) == shared | {"validation_share", "patience", "row_budget"}
    # DP-SGD trains exactly `epochs` epochs: early stopping would read private rows outside the mechanism
    with pytest.raises(BackendError, match="unknown parameter 'patience'"):
        DPTVAEGenerator(patience=5)
    with pytest.raises(BackendError, match="unknown parameter 'row_budget'"):
        DPTVAEGenerator(row_budget=1000)
    # the DP defaults differ, the bounds and descriptions are the shared ones
    dp_epochs, epochs = DPTVAEGenerator.Params.model_fields["epochs"], TVAEGenerator.Params.model_fields["epochs"]
    assert (dp_epochs.default, epochs.default) == (50, 300)
    assert dp_epochs.metadata == epochs.metadata and dp_epochs.description == epochs.description


def test_calibration_brings_a_barely_trained_models_columns_onto_the_real_marginals(support2):
    """Two epochs leave the sampled numbers and levels off their real distribution; calibration puts them back."""
    schema = TableSchema.infer(support2)
    learned = schema.learned_columns()
    numeric = [c.name for c in learned if c.kind in (ColumnKind.INTEGER, ColumnKind.FLOAT)]
    categorical = [c.name for c in learned if c.kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN)]

    def distances(calibration_rows: int) -> tuple[float, float]:
        generator = TVAEGenerator(**FAST, calibration_rows=calibration_rows)
        generator.fit(support2, schema, seed=2)
        rows = _rows(generator, 4000)
        return np.mean([_ks(support2[c], rows[c]) for c in numeric]), np.mean(
            [_tvd(support2[c], rows[c]) for c in categorical]
        )

    (ks_before, tvd_before), (ks_after, tvd_after) = distances(0), distances(20_000)
    assert ks_before > 0.05 and ks_after < 0.6 * ks_before  # numbers: the quantile grids composed
    assert tvd_before > 0.03 and tvd_after < 0.7 * tvd_before  # levels: the output biases shifted


def _tvd(real: pd.Series, synthetic: pd.Series) -> float:
    """Total variation distance between the two columns' level shares (missing as a level)."""
    shares = [s.astype(object).fillna("<missing>").astype(str).value_counts(normalize=True) for s in (real, synthetic)]
    return float(shares[0].sub(shares[1], fill_value=0).abs().sum() / 2)


def _ks(real: pd.Series, synthetic: pd.Series) -> float:
    """Largest gap between the two empirical CDFs of the observed values."""
    a, b = np.sort(real.dropna().to_numpy(float)), np.sort(synthetic.dropna().to_numpy(float))
    points = np.concatenate([a, b])
    return float(
        np.abs(np.searchsorted(a, points, "right") / a.size - np.searchsorted(b, points, "right") / b.size).max()
    )


@pytest.mark.slow
def test_minority_categories_neither_vanish_nor_double(demo):
    table, schema = demo
    generator = TVAEGenerator(epochs=60, batch_size=250, patience=0)
    generator.fit(table, schema, seed=3)
    rows = _rows(generator, 20_000)
    categorical = [c.name for c in schema.learned_columns() if c.kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN)]
    checked = 0
    for column in categorical:
        real = table[column].astype(object).fillna("<missing>").astype(str).value_counts(normalize=True)
        synthetic = rows[column].astype(object).fillna("<missing>").astype(str).value_counts(normalize=True)
        for level, share in real[real >= 0.01].items():
            got = synthetic.get(level, 0.0)
            assert 0 < got < 2 * share, f"{column}={level}: real share {share:.3f}, synthetic {got:.3f}"
            checked += 1
    assert checked > 20


@pytest.mark.slow
def test_dp_reports_epsilon_within_target_and_what_it_does_not_cover(support2, tmp_path):
    schema = TableSchema.infer(support2)
    generator = DPTVAEGenerator(epsilon=3.0, epochs=2, batch_size=256, hidden_size=32, latent_dim=16)
    result = generator.fit(support2, schema, seed=4)
    assert 0 < result.epsilon <= 3.0
    assert result.delta == pytest.approx(1 / len(support2) ** 2)
    assert "not covered by epsilon" in result.details["not_covered_by_epsilon"].lower()
    assert result.details["noise_multiplier"] > 0
    generator.save(tmp_path)
    pd.testing.assert_frame_equal(_rows(DPTVAEGenerator.load(tmp_path)), _rows(generator))
