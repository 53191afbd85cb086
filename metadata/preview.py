"""ro-crate-preview.html: a self-contained, human-readable page of a crate's metadata (no scripts, no CDN).

The page is the Jinja2 template templates/ro-crate-preview.html.j2 with autoescape on, so every value from
the metadata (titles, names, column descriptions a user typed) reaches the page as text, never as markup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from fairsynth.metadata.model import METADATA_NAME, PREVIEW_NAME

TEMPLATES = Environment(
    loader=PackageLoader("fairsynth.metadata", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


def render_preview(metadata: dict[str, Any]) -> str:
    """The preview page of an RO-Crate metadata document (the JSON-LD dict)."""
    return TEMPLATES.get_template("ro-crate-preview.html.j2").render(preview_context(metadata))


def write_preview(root: Path, metadata: dict[str, Any]) -> Path:
    """Write ro-crate-preview.html into the crate directory."""
    path = Path(root) / PREVIEW_NAME
    path.write_text(render_preview(metadata), encoding="utf-8")
    return path


def preview_context(metadata: dict[str, Any]) -> dict[str, Any]:
    """What the page shows, with every reference resolved to its entity's name."""
    graph = {entity["@id"]: entity for entity in metadata["@graph"]}
    root = graph["./"]

    def names(ref: Any) -> str:
        ids = [r["@id"] if isinstance(r, dict) else str(r) for r in _listed(ref)]
        return ", ".join(str(graph.get(i, {}).get("name", i)) for i in ids)

    return {
        "root": root,
        "authors": names(root["creator"]),
        "publisher": names(root["publisher"]),
        "license_url": root["license"]["@id"],
        "license_name": names(root["license"]),
        "based_on": graph[root["isBasedOn"]["@id"]]["description"],
        "profiles": names(root["conformsTo"]),
        "actions": [graph[ref["@id"]] for ref in _listed(root.get("mentions"))],
        "files": [entity for entity in graph.values() if entity.get("@type") == "File"],
        "columns": [graph[ref["@id"]] for ref in _listed(root.get("variableMeasured"))],
        "metadata_name": METADATA_NAME,
    }


def _listed(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
