"""Create every package folder pyproject.toml lists, empty, with an __init__.py.

The image's dependency layer installs fairsynth editable before the code is copied (so a code change
rebuilds only the code layers); setuptools needs each listed package's folder to exist for that.
Run from the repository root: `python3 scripts/package_folders.py`.
"""

import tomllib
from pathlib import Path

config = tomllib.loads(Path("pyproject.toml").read_text())["tool"]["setuptools"]
mapped = config["package-dir"]
for package in config["packages"]:
    prefix = max((name for name in mapped if package == name or package.startswith(name + ".")), key=len)
    folder = Path(mapped[prefix], *package[len(prefix) :].split(".")[1:])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").touch()
