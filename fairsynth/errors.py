"""The one root of every error fairsynth reports to a person: API, CLI and UI each catch FairsynthError once.

Each layer defines its own subclasses next to the code that raises them; all derive from FairsynthError,
so a message is always meant for the user (one sentence saying what is wrong and what to do). A check that
finds several problems at once raises one error carrying all of them, so the user fixes them in one go.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any


class FairsynthError(Exception):
    """Something the user can fix: one or more problems, each one sentence saying what is wrong and what to do."""

    def __init__(self, problem: str, *problems: str):
        super().__init__(problem, *problems)
        self.problems: tuple[str, ...] = (problem, *problems)

    def __str__(self) -> str:
        return " ".join(self.problems)


class ControlFlow(Exception):
    """Not an error for a person: unwinds a task or a request on purpose, so no user-error handler may catch it."""


def field_problems(errors: Iterable[Mapping[str, Any]], context: str = "", prefix: str = "") -> list[str]:
    """pydantic's validation errors as sentences, one per field: "In the request, 'rows' is invalid: ...".

    `context` names what was validated ("the request"), `prefix` goes before each field's path ("crate").
    """
    lead = f"In {context}, " if context else ""
    problems = []
    for error in errors:
        where = ".".join([p for p in (prefix, *map(str, error.get("loc", ()))) if p]) or "request"
        reason = str(error.get("msg", "")).removeprefix("Value error, ").rstrip(".")
        problems.append(f"{lead}'{where}' is invalid: {reason}.")
    return problems


@contextmanager
def os_errors_as(error: type[FairsynthError], doing: str) -> Iterator[None]:
    """Turn a file system failure in the block (or the decorated function) into `error`, naming the file and cause."""
    try:
        yield
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise error(f"Cannot {doing} ({where}{exc.strerror or exc}); check the path and its permissions.") from exc
