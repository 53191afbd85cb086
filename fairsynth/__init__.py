"""fairsynth: synthetic health tables from several generator backends, measured and packaged as FAIR RO-Crates.

One import namespace over the four top-level folders of the repository (pyproject.toml maps them):
`fairsynth.backends`, `fairsynth.metadata`, `fairsynth.services`, `fairsynth.ui`. This folder holds only
what every layer shares: the version and the error hierarchy (`fairsynth.errors`).
Layers: ui -> services -> {backends, metadata}; backends -> metadata.schema.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fairsynth")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
