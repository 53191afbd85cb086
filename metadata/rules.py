"""Cross-column rules of a table (clinical logic): what each rule kind says, its text form, and its grammar.

A rule is data: its kind, the columns it ties (in the kind's order), and what detection measured (support).
Every consumer reads this one declaration: detection and adherence (rule_checks.py), the codec that enforces
rules for every backend (backends/rule_codec.py), the evaluation, the report, the crate and the UI.

| kind | columns | text |
|---|---|---|
| order | low, high | `high >= low` (`high > low` when strict) |
| difference | result, minuend, subtrahend | `result == minuend - subtrahend` (days for two dates) |
| sum | result, first, second | `result == first + second` |
| determines | determinant, dependent | `determinant -> dependent` (missing counts as a value) |
| missing_together | first, second | `first missing <=> second missing` |
| missing_when | column, category | `column missing <=> category in {level, ...}` |
| text_form | text, number | `text == text(number)` (the number printed in `text_format`) |
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum

import numpy as np
from pydantic import BaseModel, Field

from fairsynth.errors import FairsynthError

#: rows that must have a rule's columns before detection lists it (the default of MinRuleSupport)
MIN_RULE_SUPPORT = 50


class RuleError(FairsynthError):
    """A rule the user wrote that cannot be read, names no column, or that the data breaks."""


class RuleKind(StrEnum):
    """What a rule says about its columns (see the module's table)."""

    ORDER = "order"
    DIFFERENCE = "difference"
    SUM = "sum"
    DETERMINES = "determines"
    MISSING_TOGETHER = "missing_together"
    MISSING_WHEN = "missing_when"
    TEXT_FORM = "text_form"


class RuleStatus(StrEnum):
    """What generation does with a rule; every rule is measured whatever its status."""

    ENFORCED = "enforced"  # kept by the codec for every backend; a synthetic row breaking it blocks release
    IMPLIED = "implied"  # the columns' ranges already imply it (every low below every high): measured only
    OFF = "off"  # turned off by the user: measured only


class Rule(BaseModel):
    """One cross-column rule: its kind, its columns in the kind's order, and where it came from."""

    kind: RuleKind
    columns: list[str]
    strict: bool = False
    levels: list[str] = Field(default_factory=list, description="missing_when: the category's levels")
    text_format: str | None = Field(None, description="text_form: how the number is printed ('%.1f', 'plain')")
    support: int = Field(0, description="real rows that have the rule's columns (and keep it)")
    status: RuleStatus = RuleStatus.ENFORCED
    added_by_user: bool = False

    @property
    def text(self) -> str:
        """The rule as a person writes it (parse_rule reads it back)."""
        first, second, *rest = self.columns
        match self.kind:
            case RuleKind.ORDER:
                return f"{second} {'>' if self.strict else '>='} {first}"
            case RuleKind.DIFFERENCE:
                return f"{first} == {second} - {rest[0]}"
            case RuleKind.SUM:
                return f"{first} == {second} + {rest[0]}"
            case RuleKind.DETERMINES:
                return f"{first} -> {second}"
            case RuleKind.MISSING_TOGETHER:
                return f"{first} missing <=> {second} missing"
            case RuleKind.MISSING_WHEN:
                return f"{first} missing <=> {second} in {{{', '.join(self.levels)}}}"
            case RuleKind.TEXT_FORM:
                return f"{first} == text({second})"

    @property
    def enforced(self) -> bool:
        """True when the codec keeps this rule in every synthetic row."""
        return self.status == RuleStatus.ENFORCED

    def same_rule(self, other: Rule) -> bool:
        """True when both say the same about the same columns (whatever their status or support)."""
        return (self.kind, self.columns, self.strict, self.levels) == (
            other.kind,
            other.columns,
            other.strict,
            other.levels,
        )


class CrossTableRule(Rule):
    """An order rule across two tables of a dataset: a child table's column against its parent row's column.

    Its columns are qualified `table.column` (one of the child, one of the parent), in the order rule's order
    (low, high), so every order rule's machinery reads it on the joined frame (each child row beside its parent's
    values, see metadata/dataset_rules.py); it holds on a child row when the row and its parent row keep the order.
    """

    child: str = Field(description="the child table")
    parent: str = Field(description="the child's parent table")

    @property
    def text(self) -> str:
        """The rule with the child's column first (`pbcseq.day <= pbc.time`); parse_cross_rule reads it back."""
        low, high = self.columns
        if low.startswith(f"{self.child}."):
            return f"{low} {'<' if self.strict else '<='} {high}"
        return f"{high} {'>' if self.strict else '>='} {low}"

    def column_of(self, table: str) -> str:
        """The rule's column in one of its two tables, unqualified."""
        prefix = f"{table}."
        return next((name.removeprefix(prefix) for name in self.columns if name.startswith(prefix)), "")

    @property
    def child_is_low(self) -> bool:
        """True when the child's column must stay at or below the parent's (a bound from above)."""
        return self.columns[0].startswith(f"{self.child}.")


def qualified(table: str, column: str) -> str:
    """A dataset column's name in a cross-table rule: `table.column`."""
    return f"{table}.{column}"


# -- grammar ----------------------------------------------------------------------------------------
_ORDER = re.compile(r"^(?P<a>.+?)\s*(?P<op><=|>=|<|>)\s*(?P<b>.+)$")
_ARITHMETIC = re.compile(r"^(?P<c>.+?)\s*==\s*(?P<a>.+?)\s+(?P<op>[-+])\s+(?P<b>.+)$")
_DETERMINES = re.compile(r"^(?P<a>.+?)\s*(?:->|\s+determines\s+)\s*(?P<b>.+)$")
_MISSING_TOGETHER = re.compile(r"^(?P<a>.+?)\s+missing\s*<=>\s*(?P<b>.+?)\s+missing$")
_MISSING_WHEN = re.compile(r"^(?P<a>.+?)\s+missing\s*<=>\s*(?P<b>.+?)\s+in\s*\{(?P<levels>.*)\}$")
_TEXT_FORM = re.compile(r"^(?P<t>.+?)\s*==\s*text\((?P<n>.+)\)$")

RULE_GRAMMAR = (
    "write a rule as 'b >= a' (or <=, <, >), 'c == b - a', 'c == a + b', 'a -> b' (a determines b), "
    "'a missing <=> b missing', 'a missing <=> c in {level, ...}' or 't == text(n)'"
)


def parse_rule(text: str, columns: Iterable[str]) -> Rule:
    """The rule a person wrote (Rule.text's forms), checked against the table's columns; RuleError otherwise."""
    text = text.strip()
    rule = _read(text)
    if rule is None:
        raise RuleError(f"The rule '{text}' cannot be read; {RULE_GRAMMAR}.")
    unknown = [name for name in rule.columns if name not in set(columns)]
    if unknown:
        raise RuleError(
            f"The rule '{text}' names {', '.join(repr(n) for n in unknown)}, which the table does not have; "
            f"the columns are: {', '.join(columns)}."
        )
    return rule.model_copy(update={"added_by_user": True})


def _read(text: str) -> Rule | None:
    """The rule of one text, or None when no form matches."""
    if match := _MISSING_WHEN.match(text):
        levels = [level.strip().strip("'\"") for level in match["levels"].split(",") if level.strip()]
        return Rule(kind=RuleKind.MISSING_WHEN, columns=[match["a"], match["b"]], levels=levels)
    if match := _MISSING_TOGETHER.match(text):
        return Rule(kind=RuleKind.MISSING_TOGETHER, columns=[match["a"], match["b"]])
    if match := _TEXT_FORM.match(text):
        return Rule(kind=RuleKind.TEXT_FORM, columns=[match["t"], match["n"].strip()])
    if match := _ARITHMETIC.match(text):
        kind = RuleKind.DIFFERENCE if match["op"] == "-" else RuleKind.SUM
        return Rule(kind=kind, columns=[match["c"], match["a"], match["b"]])
    if match := _DETERMINES.match(text):
        return Rule(kind=RuleKind.DETERMINES, columns=[match["a"], match["b"]])
    if match := _ORDER.match(text):
        low, high = (match["a"], match["b"]) if match["op"] in ("<=", "<") else (match["b"], match["a"])
        return Rule(kind=RuleKind.ORDER, columns=[low, high], strict=match["op"] in ("<", ">"))
    return None


# -- the printed form of numbers (text_form) ---------------------------------------------------------
WRITTEN = "written"  # the number with the decimals each row writes (lab results: '5.2' mmol/L, '140' mmol/L)
#: how a text column may print its number: 'plain' (integers without a point, others as short as exact), a fixed
#: number of decimals, or WRITTEN (the decimals vary by row; the codec learns them like any category)
TEXT_FORMATS = ("plain", *(f"%.{decimals}f" for decimals in range(7)), WRITTEN)
MAX_DECIMALS = 6


def print_numbers(values: np.ndarray, text_format: str, decimals: np.ndarray | None = None) -> np.ndarray:
    """Numbers as a text_form column prints them (an object array of str); WRITTEN uses each row's decimals
    (at least as many as the number needs)."""
    values = np.asarray(values, dtype=float)
    if text_format == "plain":
        return np.array([str(int(v)) if float(v).is_integer() else repr(float(v)) for v in values], dtype=object)
    if text_format != WRITTEN:
        return np.char.mod(text_format, values).astype(object)
    places = needed_decimals(values) if decimals is None else np.maximum(decimals, needed_decimals(values))
    printed = np.empty(len(values), dtype=object)
    for count in np.unique(places):
        rows = places == count
        printed[rows] = np.char.mod(f"%.{count}f", values[rows]).astype(object)
    return printed


def needed_decimals(values: np.ndarray) -> np.ndarray:
    """The fewest decimals that write each number exactly (at most MAX_DECIMALS)."""
    places = np.full(len(values), MAX_DECIMALS, dtype=np.int64)
    for count in range(MAX_DECIMALS - 1, -1, -1):
        places[np.isclose(np.round(values, count), values, rtol=0, atol=1e-9)] = count
    return places


def written_decimals(text: np.ndarray) -> np.ndarray:
    """The decimals each printed number writes ('5.20' -> 2, '140' -> 0)."""
    return np.array([len(t) - t.index(".") - 1 if "." in t else 0 for t in text.astype(str)], dtype=np.int64)
