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


# What a value must be, by the pydantic error type it broke; {names} are filled from the error's context.
REQUIREMENTS = {
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "multiple_of": "must be a multiple of {multiple_of}",
    "literal_error": "must be one of {expected}",
    "string_pattern_mismatch": "must match {pattern}",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
}


def requirement(error: Mapping[str, Any]) -> str:
    """What the value must be, for one pydantic error ("must be >= 1"); pydantic's own words for other checks."""
    words = REQUIREMENTS.get(str(error.get("type")))
    if words is None:
        return str(error.get("msg", "")).removeprefix("Value error, ").rstrip(".")
    context = {k: f"{v:g}" if isinstance(v, int | float) else v for k, v in error.get("ctx", {}).items()}  # 0.0 -> 0
    return words.format(**context)


def field_problems(errors: Iterable[Mapping[str, Any]], context: str = "", prefix: str = "") -> list[str]:
    """pydantic's validation errors as sentences, one per field: "In the request, 'rows' is invalid: ...".

    `context` names what was validated ("the request"), `prefix` goes before each field's path ("crate").
    """
    lead = f"In {context}, " if context else ""
    problems = []
    for error in errors:
        where = ".".join([p for p in (prefix, *map(str, error.get("loc", ()))) if p]) or "request"
        problems.append(f"{lead}'{where}' is invalid: {requirement(error)}.")
    return problems


@contextmanager
def os_errors_as(error: type[FairsynthError], doing: str) -> Iterator[None]:
    """Turn a file system failure in the block (or the decorated function) into `error`, naming the file and cause."""
    try:
        yield
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise error(f"Cannot {doing} ({where}{exc.strerror or exc}); check the path and its permissions.") from exc
