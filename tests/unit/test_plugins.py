"""A third-party backend from a real distribution: README's plugin example, built with pip into a temporary
target directory (never the project's venv), is discovered by entry point and fits and samples.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "### Adding a backend from your own package"
FAIRSYNTH = str(Path(sys.executable).with_name("fairsynth"))
pytestmark = pytest.mark.slow  # pip builds the package (setuptools) and three fresh interpreters start

PROBE = textwrap.dedent("""
    import json
    from fairsynth.backends import registry
    from fairsynth.backends.base import ParameterError
    from fairsynth.metadata.schema import TableSchema
    from fairsynth.services.run.demo import load_demo_table

    info = registry.backend_info("acme.gaussian")
    table = load_demo_table()
    generator = registry.create("acme.gaussian", shrinkage="0.5")  # a string, as --set gives it
    generator.fit(table, TableSchema.infer(table), seed=1)
    rows = next(generator.sample(200, seed=2))
    try:
        registry.create("acme.gaussian", shrinkage=2, epochs=3)
        refused = ""
    except ParameterError as exc:
        refused = str(exc)
    print(json.dumps({
        "available": info.available,
        "module": type(generator).__module__,
        "shrinkage": generator.params.shrinkage,
        "schema": info.parameter_schema(),
        "columns": list(rows.columns) == list(table.columns),
        "rows": len(rows),
        "ids_unique": bool(rows["episode_id"].is_unique),
        "refused": refused,
    }))
""")


def readme_example() -> dict[str, str]:
    """pyproject.toml and acme_synth/__init__.py exactly as README's plugin section shows them."""
    text = README.read_text()
    section = text[text.index(SECTION) :]
    section = section[: section.index("\n## ")]
    toml = re.search(r"`pyproject.toml`\n\n```toml\n(.*?)```", section, re.S)
    module = re.search(r"`acme_synth/__init__.py`\n\n```python\n(.*?)```", section, re.S)
    assert toml and module, "README's plugin section lost its pyproject.toml or acme_synth/__init__.py block"
    return {"pyproject.toml": toml.group(1), "acme_synth/__init__.py": module.group(1)}


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """README's example package installed with pip into a target directory of its own."""
    root = tmp_path_factory.mktemp("plugin")
    source = root / "acme-synth"
    for name, content in readme_example().items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(content)
    site = root / "site"
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--no-cache-dir"]
    built = subprocess.run(
        [*pip, "--quiet", "--target", str(site), str(source)], capture_output=True, text=True, timeout=300
    )
    assert built.returncode == 0, built.stderr
    assert list(site.glob("acme_synth-0.1.0.dist-info/entry_points.txt"))
    return site


def with_plugin(site: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}


def test_the_readme_plugin_installs_from_its_own_distribution_and_fits_and_samples(plugin_site):
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300, env=with_plugin(plugin_site)
    )
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout.splitlines()[-1])
    assert found["available"] and found["module"] == "acme_synth" and found["shrinkage"] == 0.5
    shrinkage = found["schema"]["properties"]["shrinkage"]
    assert (shrinkage["minimum"], shrinkage["maximum"], shrinkage["default"]) == (0, 1, 0.1)
    assert found["columns"] and found["rows"] == 200 and found["ids_unique"]  # the shared codec around the model
    assert found["refused"] == (
        "Backend 'acme.gaussian': shrinkage must be <= 1 (got 2); unknown parameter 'epochs' (it takes: shrinkage)."
    )


def test_the_command_line_lists_the_plugin_and_its_parameters(plugin_site):
    listing = subprocess.run(
        [FAIRSYNTH, "backends"], capture_output=True, text=True, timeout=120, env=with_plugin(plugin_site)
    )
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if "acme.gaussian" in line)
    assert "yes" in row and "MIT" in row and "shrinkage=0.1" in row


def test_the_project_environment_is_left_without_the_plugin(plugin_site):
    assert "acme.gaussian" not in {ep.name for ep in entry_points(group="fairsynth.backends")}
    assert not any(Path(p).joinpath("acme_synth").exists() for p in sys.path if p)
