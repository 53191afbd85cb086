"""The layers hold: ui -> services -> {backends, metadata}; inside services, entry -> jobs -> run; no back-edges.

Each module's imports (function bodies included) are read with ast, so a late import cannot hide an edge.
"""

from __future__ import annotations

from helpers import imported_modules, package_modules

# what each layer may import besides itself; fairsynth and fairsynth.errors are below every layer
ALLOWED = {
    "fairsynth.ui": {"fairsynth.services"},
    "fairsynth.services.entry": {"fairsynth.services", "fairsynth.backends", "fairsynth.metadata"},
    "fairsynth.services.jobs": {
        "fairsynth.services.jobs",
        "fairsynth.services.run",
        "fairsynth.services.settings",
        "fairsynth.backends",
        "fairsynth.metadata",
    },
    "fairsynth.services.run": {"fairsynth.services.run", "fairsynth.backends", "fairsynth.metadata"},
    "fairsynth.services.settings": set(),
    # a backend learns from a TableSchema (with its rules) or a DatasetSchema and hashes its model files;
    # nothing else of metadata
    "fairsynth.backends": {
        "fairsynth.backends",
        "fairsynth.metadata.schema",
        "fairsynth.metadata.dataset",
        "fairsynth.metadata.rules",
        "fairsynth.metadata.checksums",
    },
    "fairsynth.metadata": {"fairsynth.metadata"},
}
SHARED = {"fairsynth", "fairsynth.errors"}


def layer_of(module: str) -> str:
    """The most specific layer a module belongs to."""
    return max((layer for layer in ALLOWED if module == layer or module.startswith(layer + ".")), key=len)


def allowed(target: str, layer: str) -> bool:
    """Whether a module of `layer` may import `target`."""
    return target in SHARED or any(target == ok or target.startswith(ok + ".") for ok in ALLOWED[layer] | {layer})


def back_edges() -> list[str]:
    """Every import that goes against the layers, as 'module -> imported module'."""
    modules = package_modules("fairsynth.ui") | package_modules("fairsynth.services")
    modules |= package_modules("fairsynth.backends") | package_modules("fairsynth.metadata")
    known = set(modules) | SHARED
    return sorted(
        f"{name} -> {target}"
        for name, path in modules.items()
        for target in imported_modules(path, known)
        if not allowed(target, layer_of(name))
    )


def test_no_module_imports_against_the_layers():
    assert back_edges() == []


def test_every_module_belongs_to_a_declared_layer():
    for package in ("fairsynth.ui", "fairsynth.services", "fairsynth.backends", "fairsynth.metadata"):
        for module in package_modules(package):
            if module != "fairsynth.services":  # the namespace's own __init__ holds no code
                assert layer_of(module)


def test_a_back_edge_is_found():
    assert not allowed("fairsynth.services.run.pipeline", layer_of("fairsynth.backends.tvae.generator"))
    assert not allowed("fairsynth.services.entry.api", layer_of("fairsynth.services.run.pipeline"))
    assert allowed("fairsynth.metadata.schema", layer_of("fairsynth.backends.base"))
    assert not allowed("fairsynth.metadata.crate", layer_of("fairsynth.backends.base"))
