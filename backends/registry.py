"""Backend discovery through the `fairsynth.backends` entry-point group."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from fairsynth.backends.base import BackendError, BackendParams, BackendUnavailable, Capabilities, Generator

GROUP = "fairsynth.backends"  # backends that take one table
DATASET_GROUP = "fairsynth.dataset_backends"  # backends that take a dataset of related tables (backends/dataset.py)


class UnknownBackendError(BackendError):
    """No backend of that name is declared."""


@dataclass(frozen=True)
class BackendInfo:
    """A declared backend as users see it: available or not, and why."""

    name: str
    available: bool
    reason: str = ""
    capabilities: Capabilities | None = None
    params: type[BackendParams] | None = None  # the parameters it takes; None when it cannot be loaded
    target: str = ""  # module:attribute of the entry point

    def parameter_schema(self) -> dict[str, Any]:
        """The JSON schema of its parameters: each one's type, default, bounds and description."""
        return self.params.model_json_schema() if self.params else {}


def _declared(group: str = GROUP) -> dict[str, EntryPoint]:
    return dict(_scanned(group, _installed_state()))


def _installed_state() -> tuple[tuple[str, int], ...]:
    """The import path and each folder's modification time: installing or removing a distribution changes it."""
    state = []
    for folder in sys.path:
        try:
            state.append((folder, os.stat(folder or ".").st_mtime_ns))
        except OSError:
            continue
    return tuple(state)


@lru_cache(maxsize=8)
def _scanned(group: str, installed: tuple[tuple[str, int], ...]) -> tuple[tuple[str, EntryPoint], ...]:
    """The group's entry points, scanned once per state of the installed packages (a scan reads every
    distribution's metadata: ~10-20 ms, several times per run and per table of a dataset)."""
    return tuple((ep.name, ep) for ep in entry_points(group=group))


@cache
def _load(entry_point: EntryPoint) -> BackendInfo:
    """The backend's class and Params, loaded once; availability is asked afresh by _describe."""
    try:
        cls = entry_point.load()
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        return BackendInfo(
            entry_point.name, False, f"cannot be imported: {missing} is not installed", target=entry_point.value
        )
    except Exception as exc:  # a broken third-party plugin must not break the listing
        return BackendInfo(entry_point.name, False, f"failed to load: {exc}", target=entry_point.value)
    params = getattr(cls, "Params", None)
    if not (isinstance(params, type) and issubclass(params, BackendParams)):
        reason = "it declares no Params model (a subclass of fairsynth.backends.base.BackendParams)"
        return BackendInfo(entry_point.name, False, reason, target=entry_point.value)
    return BackendInfo(entry_point.name, True, "", getattr(cls, "capabilities", None), params, entry_point.value)


def _describe(entry_point: EntryPoint) -> BackendInfo:
    # Not cached: an environment built (or removed) while the service runs changes the answer;
    # the isolated environments remember their own positive probes.
    loaded = _load(entry_point)
    if loaded.params is None:
        return loaded
    cls = entry_point.load()
    available, reason = cls.availability() if hasattr(cls, "availability") else (True, "")
    return replace(loaded, available=bool(available), reason=reason)


def list_backends(group: str = GROUP) -> list[BackendInfo]:
    """Every declared backend of the group (one table, or DATASET_GROUP), sorted, each available or why not."""
    return [_describe(ep) for _, ep in sorted(_declared(group).items())]


def _entry_point(name: str, group: str) -> EntryPoint:
    """The declared entry point of a backend name (one scan of the installed packages), or UnknownBackendError."""
    declared = _declared(group)
    if name not in declared:
        raise UnknownBackendError(f"Unknown backend '{name}'; choose one of: {', '.join(sorted(declared))}.")
    return declared[name]


def backend_info(name: str, group: str = GROUP) -> BackendInfo:
    """One backend's info, or UnknownBackendError naming the ones that exist."""
    return _describe(_entry_point(name, group))


def backend_class(name: str, group: str = GROUP) -> type[Generator]:
    """The class behind a backend name; BackendUnavailable with the reason if it cannot run here."""
    entry_point = _entry_point(name, group)
    info = _describe(entry_point)
    if not info.available:
        raise BackendUnavailable(f"Backend '{name}' is not available here: {info.reason}.")
    cls: type[Generator] = entry_point.load()
    return cls


def params_model(name: str) -> type[BackendParams]:
    """The Params model of a backend that can be loaded (it may still be unavailable here, e.g. no GPU)."""
    info = backend_info(name)
    if info.params is None:
        raise BackendUnavailable(f"Backend '{name}' is not available here: {info.reason}.")
    return info.params


def check_params(name: str, values: Mapping[str, object]) -> BackendParams:
    """A backend's parameters validated by its Params model; ParameterError names every bad one at once."""
    return params_model(name).checked(name, values)


def create(name: str, **params: object) -> Generator:
    """A new, unfitted generator; its parameters are checked here, so a plugin's own constructor need not."""
    cls = backend_class(name)
    cls.Params.checked(name, params)  # the loaded class's own Params: no second scan of the installed packages
    return cls(**params)
