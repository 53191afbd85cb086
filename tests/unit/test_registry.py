"""Backend discovery through entry points, including a plugin added by a test-only distribution."""

from __future__ import annotations

import sys
import textwrap

import pytest

from fairsynth.backends import registry
from fairsynth.backends.base import BackendError, BackendUnavailable
from fairsynth.backends.registry import UnknownBackendError


def test_lists_marginals_and_the_four_sdv_backends_as_available():
    listed = {b.name: b for b in registry.list_backends()}
    for name in ("marginals", "sdv.gaussian_copula", "sdv.tvae", "sdv.ctgan", "sdv.copulagan"):
        assert listed[name].available, listed[name].reason
        assert listed[name].capabilities.license
    assert listed["sdv.tvae"].parameters == {"epochs": 300, "batch_size": 500}
    assert listed["sdv.tvae"].capabilities.license == "BUSL-1.1"


def test_unknown_backend_names_the_known_ones():
    with pytest.raises(UnknownBackendError, match=r"Unknown backend 'nope'; choose one of: .*marginals"):
        registry.create("nope")


def test_unknown_parameter_is_refused_with_the_known_ones():
    with pytest.raises(BackendError, match=r"has no parameter 'epochs'; it takes: quantiles"):
        registry.create("marginals", epochs=3)


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
    """)
    )
    dist = tmp_path / "acme_synth-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-synth\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[fairsynth.backends]\nacme.shuffle = acme_synth:Shuffler\nacme.broken = acme_missing_module:Thing\n"
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
    generator = registry.create("acme.shuffle")
    generator.fit(demo, TableSchema.infer(demo), seed=0)
    batch = next(generator.sample(50, seed=0))
    assert list(batch.columns) == list(demo.columns) and len(batch) == 50
    with pytest.raises(BackendUnavailable, match="acme.broken"):
        registry.create("acme.broken")
