"""Saving and loading a fitted relational generator (and relational.dp): JSON, plus each table's own save().

The folder holds

    backend.json         the dataset backend's name and parameters
    dataset.json         the DatasetSchema it was fitted on
    state.json           per table: its learned columns, constant columns, context columns, the matcher's means,
                         spreads and levels, children limits, key plan, whether its time column holds dates;
                         the root tables' row counts; each table's own fit (epochs, losses, privacy spent)
    tables/<i>-<name>/   each table's single-table generator, written by that backend's own save()

Nothing is pickled here; a table backend that pickles signs its file itself (backends/signing.py). A loaded
generator samples exactly what the saved one would for the same seed.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from fairsynth.backends import registry
from fairsynth.backends.base import FitResult, ModelFileError, ParameterError
from fairsynth.backends.relational import _Matcher, _TableModel
from fairsynth.metadata.dataset import DatasetSchema

if TYPE_CHECKING:
    from fairsynth.backends.relational import RelationalGenerator

STATE_FORMAT = 1  # bumped when state.json changes shape; a folder of another format is refused
TABLES_DIR = "tables"
FOLDER = re.compile(r"\d+-[\w.-]+")  # the only table folder names load() follows
UNSAFE = re.compile(r"[^\w.-]")  # characters a table's name loses in its folder's name
G = TypeVar("G", bound="RelationalGenerator")


def save(generator: RelationalGenerator, directory: Path) -> None:
    """Write the fitted generator's files into directory (see the module's docstring)."""
    schema = generator._fitted_schema()
    directory.mkdir(parents=True, exist_ok=True)
    tables = {}
    for index, name in enumerate(schema.top_down()):
        model = generator.models[name]
        folder = f"{index}-{UNSAFE.sub('_', name)}"
        model.generator.save(directory / TABLES_DIR / folder)
        tables[name] = {"folder": folder, **_table_state(model)}
    backend = {"backend": generator.name, "params": generator.params.model_dump(mode="json")}
    (directory / "backend.json").write_text(json.dumps(backend, indent=2))
    (directory / "dataset.json").write_text(schema.to_json())
    state = {
        "format": STATE_FORMAT,
        "root_rows": generator.root_rows,
        "table_fits": {name: fit.to_dict() for name, fit in generator.table_fits.items()},
        "tables": tables,
    }
    (directory / "state.json").write_text(json.dumps(state, indent=2))


def load(cls: type[G], directory: Path) -> G:
    """Rebuild a fitted generator of class cls from save()'s folder; ModelFileError when it cannot."""
    try:
        backend = json.loads((directory / "backend.json").read_text())
        schema = DatasetSchema.from_json((directory / "dataset.json").read_text())
        state = json.loads((directory / "state.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"The dataset model in {directory} cannot be read ({exc}); fit it again.") from exc
    if backend.get("backend") != cls.name or state.get("format") != STATE_FORMAT:
        raise ModelFileError(
            f"The model in {directory} was saved by '{backend.get('backend')}' (state format {state.get('format')}), "
            f"not by '{cls.name}' (format {STATE_FORMAT}); fit it again."
        )
    try:
        generator = cls(**backend.get("params", {}))
    except ParameterError as exc:
        raise ModelFileError(f"The model in {directory} has parameters this version refuses ({exc}).") from exc
    table_class = registry.backend_class(generator.params.table_backend)
    try:
        generator.models = {
            name: _table_model(state["tables"][name], directory, table_class) for name in schema.top_down()
        }
        generator.root_rows = {str(k): int(v) for k, v in state["root_rows"].items()}
        generator.table_fits = {name: FitResult(**fit) for name, fit in state.get("table_fits", {}).items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"The dataset model in {directory} is incomplete ({exc!r}); fit it again.") from exc
    generator.schema = schema
    return generator


def _table_state(model: _TableModel) -> dict[str, Any]:
    """A table's fitted state as JSON-ready data (its generator apart)."""
    state = {f.name: getattr(model, f.name) for f in fields(model) if f.name not in ("generator", "matcher")}
    matcher = model.matcher
    state["matcher"] = None if matcher is None else {"numeric": matcher.numeric, "levels": matcher.levels}
    return state


def _table_model(state: dict[str, Any], directory: Path, table_class: type) -> _TableModel:
    """One table's model from its state and its generator's folder (a plain folder name, never a path)."""
    folder = state.pop("folder")
    if not isinstance(folder, str) or not FOLDER.fullmatch(folder):
        raise ValueError(f"table folder {folder!r} is not a name save() writes")
    matcher = state.pop("matcher")
    if matcher is not None:
        numeric = {str(c): (float(mean), float(std)) for c, (mean, std) in matcher["numeric"].items()}
        matcher = _Matcher(numeric=numeric, levels={str(c): list(v) for c, v in matcher["levels"].items()})
    return _TableModel(generator=table_class.load(directory / TABLES_DIR / folder), matcher=matcher, **state)
