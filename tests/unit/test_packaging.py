"""The wheel: pyproject lists every package folder, the wheel holds every source and data file under fairsynth/
and nothing at the top level, and installed alone it imports, lists its backends and reads its data files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
FOLDERS = SETUPTOOLS["package-dir"]  # import name -> folder in the repository


def installed_name(folder_path: Path) -> str:
    """The path a repository file (relative to ROOT) installs at: its mapped folder replaced by the package."""
    package, folder = max(
        ((package, folder) for package, folder in FOLDERS.items() if folder_path.is_relative_to(folder)),
        key=lambda item: len(item[1]),
    )
    return "/".join([*package.split("."), *folder_path.relative_to(folder).parts])


def source_files() -> list[Path]:
    """The project's files under the mapped folders (tracked or new, not ignored), relative to ROOT."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the git checkout to tell source files from build output")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", *FOLDERS.values()],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [Path(name) for name in listed.split("\0") if name and (ROOT / name).is_file()]


def test_pyproject_lists_exactly_the_folders_that_hold_an_init():
    packages = SETUPTOOLS["packages"]
    found = {
        installed_name(init.parent.relative_to(ROOT)).replace("/", ".")
        for folder in FOLDERS.values()
        for init in (ROOT / folder).rglob("__init__.py")
    }
    assert len(packages) == len(set(packages)), "a package is listed twice"
    assert set(packages) == found


# -- the built wheel ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built (as the image's build does, without isolation) from a copy of the package sources."""
    source = tmp_path_factory.mktemp("source")
    for folder in FOLDERS.values():
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    [found] = out.glob("fairsynth-*.whl")
    return found


@pytest.mark.slow
def test_the_wheel_holds_every_source_file_under_fairsynth_and_nothing_else(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {name.split("/")[0] for name in names} == {"fairsynth", wheel.name.split("-py")[0] + ".dist-info"}
    missing = sorted(str(path) for path in source_files() if installed_name(path) not in names)
    assert not missing, f"not in the wheel (list their package, or their pattern in package-data): {missing}"
    for name in (
        "fairsynth/backends/base.py",
        "fairsynth/ui/app.py",
        "fairsynth/ui/pages/generate.py",
        "fairsynth/services/run/data/demo_episodes.csv",
        "fairsynth/metadata/shapes/bioschemas_dataset.ttl",
        "fairsynth/services/jobs/migrations/versions/0001_initial.py",
    ):
        assert name in names


# Runs in a fresh interpreter with only the installed wheel (plus the venv's third-party packages):
# the editable install's finder is taken off sys.meta_path, so nothing can come from the repository.
INSTALLED_CHECK = """
import importlib.metadata, importlib.resources, importlib.util, json, sys, tempfile
target = sys.argv[1]
sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]

import fairsynth.services.entry.cli
from fairsynth.services.jobs.store import JobStore
from fairsynth.services.run.demo import load_demo_table

modules = ["fairsynth.services.entry.cli", "fairsynth.backends.base", "fairsynth.ui.app", "fairsynth.metadata.crate"]
[dist] = importlib.metadata.distributions(path=[target])
backends = dist.entry_points.select(group="fairsynth.backends")
contexts = importlib.resources.files("fairsynth.metadata.contexts")
with tempfile.TemporaryDirectory() as scratch:
    store = JobStore(f"sqlite:///{scratch}/jobs.db")  # runs the installed migrations
    store.close()
print(json.dumps({
    "origins": {name: importlib.util.find_spec(name).origin for name in modules},
    "backends": {ep.name: ep.value for ep in backends},
    "marginals": importlib.util.find_spec(backends["marginals"].load().__module__).origin,
    "demo_rows": len(load_demo_table()),
    "contexts": sorted(p.name for p in contexts.iterdir() if p.name.endswith(".jsonld")),
    "context_keys": sorted(json.loads(contexts.joinpath("ro-crate-1.1-context.jsonld").read_bytes())),
}))
"""


@pytest.mark.slow
def test_the_installed_wheel_alone_imports_lists_its_backends_and_reads_its_data(wheel, tmp_path):
    target = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    done = subprocess.run(
        [sys.executable, "-P", "-c", INSTALLED_CHECK, str(target)],
        cwd=tmp_path,  # not the repository, whose fairsynth/ folder would shadow the installed one
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.splitlines()[-1])
    for name, origin in found["origins"].items():
        assert Path(origin).is_relative_to(target), f"{name} came from {origin}"
    assert found["backends"] == PYPROJECT["project"]["entry-points"]["fairsynth.backends"]
    assert Path(found["marginals"]).is_relative_to(target)
    assert found["demo_rows"] > 0
    assert found["contexts"] == sorted(p.name for p in (ROOT / "metadata" / "contexts").glob("*.jsonld"))
    assert "@context" in found["context_keys"]
