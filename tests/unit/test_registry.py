"""Backend discovery through entry points, including a plugin added by a test-only distribution."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from fairsynth.backends import registry
from fairsynth.backends.base import BackendUnavailable, ParameterError
from fairsynth.backends.registry import UnknownBackendError


def test_lists_marginals_and_the_four_sdv_backends_as_available():
    listed = {b.name: b for b in registry.list_backends()}
    for name in ("marginals", "sdv.gaussian_copula", "sdv.tvae", "sdv.ctgan", "sdv.copulagan"):
        assert listed[name].available, listed[name].reason
        assert listed[name].capabilities.license
    assert listed["sdv.tvae"].params().model_dump() == {"epochs": 300, "batch_size": 500}
    assert listed["sdv.tvae"].capabilities.license == "BUSL-1.1"


def test_unknown_backend_names_the_known_ones():
    with pytest.raises(UnknownBackendError, match=r"Unknown backend 'nope'; choose one of: .*marginals"):
        registry.create("nope")


def test_unknown_parameter_is_refused_with_the_known_ones():
    with pytest.raises(
        ParameterError, match=r"^Backend 'marginals': unknown parameter 'epochs' \(it takes: quantiles\)\.$"
    ):
        registry.create("marginals", epochs=3)


def test_every_backend_declares_its_parameters_as_a_json_schema():
    for info in registry.list_backends():
        assert info.params is not None, info.reason
        schema = info.parameter_schema()
        assert schema["type"] == "object" and schema["additionalProperties"] is False  # unknown names refused
        for name, prop in schema["properties"].items():
            assert "default" in prop and prop.get("description"), f"{info.name}.{name} lacks a default or description"
            json.dumps(prop)  # plain JSON, as the API serves it
        assert info.params().model_dump() == {name: p["default"] for name, p in schema["properties"].items()}


def test_bounds_are_enforced_and_every_problem_is_named_at_once():
    with pytest.raises(ParameterError) as caught:
        registry.create("tvae", epochs=0, bogus=1, sample_precision="half", batch_size="many")
    message = str(caught.value)
    assert message.startswith("Backend 'tvae': epochs must be >= 1 (got 0); ")
    assert "batch_size must be a whole number (got 'many')" in message
    assert "sample_precision must be one of 'auto', 'float32' or 'bfloat16' (got 'half')" in message
    assert message.endswith(
        "unknown parameter 'bogus' (it takes: epochs, batch_size, learning_rate, weight_decay, "
        "latent_dim, hidden_size, hidden_layers, loss_factor, n_quantiles, max_levels, calibration_rows, device, "
        "sample_precision, "
        "validation_share, patience, row_budget)."
    )
    with pytest.raises(ParameterError, match=r"batch_size must be a multiple of 10 \(got 55\)"):
        registry.create("sdv.ctgan", batch_size=55)
    with pytest.raises(ParameterError, match=r"default_distribution must be one of 'norm', 'beta'"):
        registry.check_params("sdv.gaussian_copula", {"default_distribution": "cauchy"})


def test_strings_are_converted_to_the_declared_types():
    checked = registry.check_params("tvae.dp", {"epochs": "7", "delta": "1e-6", "learning_rate": "0.01"})
    assert (checked.epochs, checked.delta, checked.learning_rate) == (7, 1e-6, 0.01)
    assert registry.create("tvae", epochs="3").params.epochs == 3


@pytest.fixture
def plugin_dist(tmp_path, monkeypatch):
    """A third-party package declaring two backends by entry point: one that works, one that cannot import."""
    package = tmp_path / "acme_synth"
    package.mkdir()
    (package / "__init__.py").write_text(
        textwrap.dedent("""
        from fairsynth.backends.marginals import MarginalsGenerator
        from fairsynth.backends.base import Capabilities

        class Shuffler(MarginalsGenerator):
            name = "acme.shuffle"
            capabilities = Capabilities(description="test plugin", license="MIT")

        class Bare:
            name = "acme.bare"
    """)
    )
    dist = tmp_path / "acme_synth-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-synth\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[fairsynth.backends]\nacme.shuffle = acme_synth:Shuffler\nacme.broken = acme_missing_module:Thing\n"
        "acme.bare = acme_synth:Bare\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("acme_synth", None)


def test_plugin_added_by_entry_point_is_discovered_and_runs(plugin_dist, demo):
    from fairsynth.metadata.schema import TableSchema

    listed = {b.name: b for b in registry.list_backends()}
    assert listed["acme.shuffle"].available and listed["acme.shuffle"].capabilities.license == "MIT"
    assert not listed["acme.broken"].available
    assert "acme_missing_module" in listed["acme.broken"].reason
    assert not listed["acme.bare"].available and "declares no Params model" in listed["acme.bare"].reason
    generator = registry.create("acme.shuffle")
    generator.fit(demo, TableSchema.infer(demo), seed=0)
    batch = next(generator.sample(50, seed=0))
    assert list(batch.columns) == list(demo.columns) and len(batch) == 50
    with pytest.raises(BackendUnavailable, match="acme.broken"):
        registry.create("acme.broken")


def test_availability_is_asked_afresh_so_an_environment_built_later_is_seen(monkeypatch):
    cls = registry.backend_class("marginals")
    monkeypatch.setattr(cls, "availability", classmethod(lambda cls: (False, "its environment is missing")))
    assert registry.backend_info("marginals").available is False
    with pytest.raises(BackendUnavailable, match="its environment is missing"):
        registry.create("marginals")
    monkeypatch.undo()  # the environment is built while the service runs
    assert registry.backend_info("marginals").available is True
    assert registry.create("marginals") is not None
