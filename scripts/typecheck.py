"""Run mypy on the modules pyproject's [tool.mypy] lists, as the fairsynth.* names they install under.

mypy cannot see the editable install (setuptools maps fairsynth.backends -> backends/ with an import hook),
so this builds the installed layout from symlinks in .mypy_cache/tree, points MYPYPATH at it and writes
mypy's report with the repository's own paths. Run from anywhere: `.venv/bin/python scripts/typecheck.py`;
extra arguments go to mypy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TREE = ROOT / ".mypy_cache" / "tree"  # a stable path, so mypy's incremental cache stays valid between runs


def build_tree(package_dirs: dict[str, str]) -> dict[str, str]:
    """Symlink each mapped package folder where the wheel installs it; returns tree path -> repository path."""
    shutil.rmtree(TREE, ignore_errors=True)
    shown = {}
    for package, folder in sorted(package_dirs.items()):  # parents first: fairsynth before fairsynth.backends
        source, target = ROOT / folder, TREE.joinpath(*package.split("."))
        if target.parent != TREE:
            target.symlink_to(source, target_is_directory=True)
        else:  # the root package: its own files linked one by one, so mapped subpackages can sit beside them
            target.mkdir(parents=True)
            for entry in source.iterdir():
                if entry.name != "__pycache__":
                    (target / entry.name).symlink_to(entry)
        shown[f"{target.relative_to(ROOT)}/"] = f"{folder}/"
    return shown


def main() -> int:
    """Type-check and return mypy's exit status."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    shown = build_tree(setuptools["package-dir"])
    done = subprocess.run(
        [sys.executable, "-m", "mypy", *sys.argv[1:]],
        cwd=ROOT,
        env={**os.environ, "MYPYPATH": str(TREE)},
        capture_output=True,
        text=True,
    )
    report = done.stdout + done.stderr
    for tree_path, repo_path in sorted(shown.items(), key=lambda item: -len(item[0])):  # longest prefix first
        report = report.replace(tree_path, repo_path)
    print(report, end="")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
