"""Backend discovery through the `fairsynth.backends` entry-point group."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import EntryPoint, entry_points

from fairsynth.backends.base import BackendError, BackendUnavailable, Capabilities, Generator

GROUP = "fairsynth.backends"


class UnknownBackendError(BackendError):
    """No backend of that name is declared."""


@dataclass(frozen=True)
class BackendInfo:
    """A declared backend as users see it: available or not, and why."""

    name: str
    available: bool
    reason: str = ""
    capabilities: Capabilities | None = None
    parameters: dict[str, object] = field(default_factory=dict)  # name -> default
    target: str = ""  # module:attribute of the entry point


def _declared() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


@cache
def _describe(entry_point: EntryPoint) -> BackendInfo:
    try:
        cls = entry_point.load()
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        return BackendInfo(
            entry_point.name, False, f"cannot be imported: {missing} is not installed", target=entry_point.value
        )
    except Exception as exc:  # a broken third-party plugin must not break the listing
        return BackendInfo(entry_point.name, False, f"failed to load: {exc}", target=entry_point.value)
    available, reason = cls.availability() if hasattr(cls, "availability") else (True, "")
    return BackendInfo(
        entry_point.name,
        bool(available),
        reason,
        getattr(cls, "capabilities", None),
        parameters_of(cls),
        entry_point.value,
    )


def parameters_of(cls: type) -> dict[str, object]:
    """The keyword parameters a backend's constructor takes, with their defaults."""
    params = {}
    for name, p in inspect.signature(cls).parameters.items():
        if p.kind == p.KEYWORD_ONLY:
            params[name] = None if p.default is inspect.Parameter.empty else p.default
    return params


def list_backends() -> list[BackendInfo]:
    """Every declared backend, sorted by name, each with availability and a reason when not."""
    return [_describe(ep) for _, ep in sorted(_declared().items())]


def backend_info(name: str) -> BackendInfo:
    """One backend's info, or UnknownBackendError naming the ones that exist."""
    declared = _declared()
    if name not in declared:
        raise UnknownBackendError(f"Unknown backend '{name}'; choose one of: {', '.join(sorted(declared))}.")
    return _describe(declared[name])


def backend_class(name: str) -> type:
    """The class behind a backend name; BackendUnavailable with the reason if it cannot run here."""
    info = backend_info(name)
    if not info.available:
        raise BackendUnavailable(f"Backend '{name}' is not available here: {info.reason}.")
    return _declared()[name].load()


def create(name: str, **params) -> Generator:
    """A new, unfitted generator; unknown parameters are refused with the list of known ones."""
    cls = backend_class(name)
    known = parameters_of(cls)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise BackendError(
            f"Backend '{name}' has no parameter {', '.join(map(repr, unknown))}; "
            f"it takes: {', '.join(known) or 'none'}."
        )
    return cls(**params)
