"""What the UI and API may know about backends, without importing backends themselves."""

from __future__ import annotations

from dataclasses import asdict

from fairsynth.backends import registry


def backend_catalog() -> list[dict]:
    """Every declared backend as a plain dict: name, available, reason, capabilities, parameters."""
    rows = []
    for info in registry.list_backends():
        row = asdict(info)
        row["capabilities"] = asdict(info.capabilities) if info.capabilities else {}
        rows.append(row)
    return rows
