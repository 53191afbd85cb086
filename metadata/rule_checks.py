"""Rules and data: detect the rules a real table keeps, count the rows that keep a rule, apply the user's edits.

Detection lists a rule only where it holds in every real row that has its columns, and only with at least
`min_support` such rows. Candidates are screened on a sample first and verified on the whole table, so a
million rows cost little more than the sample (benchmarks/bench_rules.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import combinations, permutations
from typing import TypeVar

import numpy as np
import pandas as pd

from fairsynth.metadata.dataset import DatasetSchema
from fairsynth.metadata.rules import (
    MIN_RULE_SUPPORT,
    TEXT_FORMATS,
    WRITTEN,
    Rule,
    RuleError,
    RuleKind,
    RuleStatus,
    parse_rule,
    print_numbers,
)
from fairsynth.metadata.schema import (
    DISCRETE_KINDS,
    NUMERIC_KINDS,
    TEMPORAL_KINDS,
    TEXT_DTYPES,
    ColumnKind,
    ColumnSpec,
    TableSchema,
    column_values,
    level_labels,
)

SCREEN_ROWS = 2_000  # rows every candidate is screened on before the whole table is checked
MIN_MISSING_ROWS = 10  # missing values a column needs before a rule about its gaps is listed
MAX_WHEN_LEVELS = 50  # a category with more levels is not searched for missing_when rules
MIN_ROWS_PER_DETERMINANT_LEVEL = 5  # a determinant needs this many rows per level on average (not a key)
MISSING_LABEL = "\0missing"  # missing as a value, where a rule counts it as one (determines)
NUMBER_TEXT = r"-?\d+(\.\d+)?"  # how a printed number looks (text_form screening)


# -- rows that keep a rule ----------------------------------------------------------------------------
def rule_rows(
    rule: Rule, frame: pd.DataFrame, schema: TableSchema, reference: pd.DataFrame | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Which rows of frame the rule applies to, and which of them keep it.

    `reference` (the real table) gives what a determinant fixes; without it, the frame's own most common pairing.
    """
    first, second, *rest = rule.columns
    match rule.kind:
        case RuleKind.ORDER:
            low, high = on_common_scale(
                schema, rule.columns, column_numbers(frame, schema, first), column_numbers(frame, schema, second)
            )
            applicable = ~np.isnan(low) & ~np.isnan(high)
            kept = high > low if rule.strict else high >= low
            return applicable, applicable & kept
        case RuleKind.DIFFERENCE | RuleKind.SUM:
            result, a, b = (column_numbers(frame, schema, name) for name in rule.columns)
            expected = a - b if rule.kind == RuleKind.DIFFERENCE else a + b
            applicable = ~np.isnan(result) & ~np.isnan(expected)
            return applicable, applicable & (np.abs(result - expected) <= tolerance(schema.column(first)))
        case RuleKind.DETERMINES:
            fixed = dependent_lookup(rule, reference if reference is not None else frame, schema)
            determinant, dependent = _labels(frame, schema, first), _labels(frame, schema, second)
            expected = determinant.map(fixed)
            applicable = expected.notna().to_numpy()
            return applicable, applicable & (expected == dependent).to_numpy()
        case RuleKind.MISSING_TOGETHER:
            kept = frame[first].isna().to_numpy() == frame[second].isna().to_numpy()
            return np.ones(len(frame), dtype=bool), kept
        case RuleKind.MISSING_WHEN:
            chosen = _labels(frame, schema, second).isin(level_labels(schema.column(second), rule.levels)).to_numpy()
            return np.ones(len(frame), dtype=bool), frame[first].isna().to_numpy() == chosen
        case RuleKind.TEXT_FORM:
            number = column_numbers(frame, schema, second)
            applicable = ~np.isnan(number)
            kept = np.zeros(len(frame), dtype=bool)
            kept[applicable] = _prints(frame[first].to_numpy()[applicable], number[applicable], rule.text_format)
            return applicable, kept
    raise AssertionError(rule.kind)


def rule_counts(rule: Rule, frame: pd.DataFrame, schema: TableSchema, reference: pd.DataFrame | None = None):
    """(rows the rule applies to, rows that keep it) in frame."""
    applicable, kept = rule_rows(rule, frame, schema, reference)
    return int(applicable.sum()), int(kept.sum())


def dependent_lookup(rule: Rule, reference: pd.DataFrame, schema: TableSchema) -> dict[str, str]:
    """determines: the dependent's label for each determinant label in reference (its most common one)."""
    determinant, dependent = rule.columns
    pairs = pd.DataFrame({"a": _labels(reference, schema, determinant), "b": _labels(reference, schema, dependent)})
    counts = pairs.value_counts(sort=True)
    return dict(counts.index[~counts.index.get_level_values(0).duplicated()])


def on_common_scale(schema: TableSchema, names: list[str], *values: np.ndarray) -> tuple[np.ndarray, ...]:
    """Values of an order rule's columns, compared by day where a date meets a datetime (a date is the whole day)."""
    kinds = {schema.column(name).kind for name in names}
    return tuple(np.floor(v) for v in values) if kinds == {ColumnKind.DATE, ColumnKind.DATETIME} else values


def tolerance(spec: ColumnSpec) -> float:
    """How far an arithmetic rule's result may be from the exact value: half its last written digit."""
    decimals = 0 if spec.kind in TEMPORAL_KINDS or spec.kind == ColumnKind.INTEGER else spec.decimals
    return 0.5 * 10.0 ** -(decimals if decimals is not None else 6) + 1e-9


def column_numbers(frame: pd.DataFrame, schema: TableSchema, name: str) -> np.ndarray:
    """A column as floats (dates as days), each distinct value read once: dates and coded numbers repeat."""
    codes, uniques = pd.factorize(frame[name])
    values = column_values(pd.Series(uniques, dtype=frame[name].dtype), schema.column(name)).to_numpy(dtype=float)
    return np.append(values, np.nan)[codes]  # code -1 (missing) takes the NaN at the end


def _labels(frame: pd.DataFrame, schema: TableSchema, name: str) -> pd.Series:
    """A column's values as text labels (numbers too), with missing as MISSING_LABEL."""
    spec = schema.column(name)
    values = column_values(frame[name], spec)
    if spec.kind in NUMERIC_KINDS or spec.kind in TEMPORAL_KINDS:
        values = values.map(repr, na_action="ignore")
    return values.astype(object).where(values.notna(), MISSING_LABEL).reset_index(drop=True)


# -- detection ------------------------------------------------------------------------------------
def infer_with_rules(data: pd.DataFrame, *, seed: int = 0, min_support: int = MIN_RULE_SUPPORT) -> TableSchema:
    """TableSchema.infer, then every rule the table keeps (what a user sees first for a new table)."""
    return with_detected_rules(TableSchema.infer(data, seed=seed), data, min_support=min_support)


def with_detected_rules(schema: TableSchema, data: pd.DataFrame, *, min_support: int = MIN_RULE_SUPPORT) -> TableSchema:
    """A copy of schema listing every rule data keeps in all rows, each with at least min_support rows."""
    found = detect_rules(data, schema, min_support=min_support)
    return schema.model_copy(update={"rules": found, "min_rule_support": min_support})


def detect_rules(
    data: pd.DataFrame, schema: TableSchema, *, min_support: int = MIN_RULE_SUPPORT, seed: int = 0
) -> list[Rule]:
    """Every rule of the kinds in metadata/rules.py that holds in every row of data having its columns."""
    if len(data) < min_support:
        return []
    if not data.index.equals(pd.RangeIndex(len(data))):  # a copy only when needed (a million rows: seconds)
        data = data.reset_index(drop=True)
    table = _Table(data, schema, seed)
    text_forms = _text_form_rules(table, min_support)
    printed = [rule.columns for rule in text_forms]  # a text fixes its number: said once, as text_form
    determines = [rule for rule in _determines_rules(table) if rule.columns not in printed]
    return [
        *_order_rules(table, min_support),
        *_arithmetic_rules(table, min_support),
        *determines,
        *_missing_rules(table),
        *text_forms,
    ]


class _Table:
    """The columns detection looks at, as numbers or labels, with a screening sample's row numbers."""

    def __init__(self, data: pd.DataFrame, schema: TableSchema, seed: int):
        self.data, self.schema = data, schema
        used = [spec for spec in schema.columns if spec.learned]
        self.temporal = {s.name: column_numbers(data, schema, s.name) for s in used if s.kind in TEMPORAL_KINDS}
        self.numeric = {s.name: column_numbers(data, schema, s.name) for s in used if s.kind in NUMERIC_KINDS}
        self.discrete = [s.name for s in used if s.kind in DISCRETE_KINDS]
        self.texts = [s.name for s in schema.columns if not s.drop and _text_in_source(s)]
        self.learned = [s.name for s in used]
        rng = np.random.default_rng(seed)
        self.screen = np.sort(rng.choice(len(data), size=min(SCREEN_ROWS, len(data)), replace=False))
        self._codes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._missing: dict[str, np.ndarray] = {}

    def numbers(self, name: str) -> np.ndarray:
        """A column of numbers or dates (days) as floats with NaN for missing."""
        return self.temporal[name] if name in self.temporal else self.numeric[name]

    def codes(self, name: str) -> np.ndarray:
        """A column's values as integer codes, missing being one value."""
        return self._factorized(name)[0]

    def code_labels(self, name: str) -> np.ndarray:
        """The value each code of codes(name) stands for (a label, or a number)."""
        return self._factorized(name)[1]

    def _factorized(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in self._codes:
            if name in self.numeric:
                codes, uniques = pd.factorize(self.numbers(name), use_na_sentinel=False)
            else:  # label each distinct raw value once, then merge raw values with one label (1, '1', 1.0)
                raw_codes, raw = pd.factorize(self.data[name], use_na_sentinel=False)
                distinct = pd.DataFrame({name: pd.Series(raw, dtype=self.data[name].dtype)})
                label_codes, uniques = pd.factorize(_labels(distinct, self.schema, name), use_na_sentinel=False)
                codes = label_codes[raw_codes]
            self._codes[name] = codes, np.asarray(uniques)
        return self._codes[name]

    def missing(self, name: str) -> np.ndarray:
        """Where a column has no value (isna on a million strings is slow: once per column)."""
        if name not in self._missing:
            self._missing[name] = self.data[name].isna().to_numpy()
        return self._missing[name]


def _text_in_source(spec: ColumnSpec) -> bool:
    """True when the source writes a column as text: categories, free text, numbers read from strings."""
    read_from_text = spec.kind in NUMERIC_KINDS and spec.source_dtype in TEXT_DTYPES
    return spec.kind in (ColumnKind.CATEGORICAL, ColumnKind.TEXT) or read_from_text


def _order_rules(table: _Table, min_support: int) -> list[Rule]:
    """a <= b between dates (listed as implied where the ranges already say so) and between numbers (only where
    the ranges overlap: disjoint ranges of unrelated measurements say nothing)."""
    found = []
    for family, temporal in ((table.temporal, True), (table.numeric, False)):
        for first, second in combinations(family, 2):
            x, y = on_common_scale(table.schema, [first, second], family[first], family[second])
            by_day = x is not family[first]  # a date and a datetime: the same day is an order worth keeping
            rule = order_between(x, y, first, second, table.screen, min_support, by_day)
            if rule is not None and (temporal or bulks_overlap(*((x, y) if rule.columns[0] == first else (y, x)))):
                found.append(rule)
    return found


def bulks_overlap(low: np.ndarray, high: np.ndarray) -> bool:
    """True when the lower column's top decile reaches past the higher one's bottom decile: the order is then a
    fact about the rows, not about two measurements on different scales (age >= length of stay)."""
    return bool(np.nanquantile(low, 0.9) > np.nanquantile(high, 0.1))


def order_between(
    x: np.ndarray, y: np.ndarray, x_name: str, y_name: str, screen: np.ndarray, min_support: int, by_day: bool
) -> Rule | None:
    """The order rule between two columns of numbers, or None (also for two columns equal in every row,
    unless they are compared by day)."""
    sx, sy = x[screen], y[screen]
    both = ~np.isnan(sx) & ~np.isnan(sy)
    if not ((sx[both] <= sy[both]).all() or (sy[both] <= sx[both]).all()):
        return None
    both = ~np.isnan(x) & ~np.isnan(y)
    if both.sum() < min_support:
        return None
    x, y = x[both], y[both]
    if not by_day and (x == y).all():
        return None
    if (x <= y).all():  # equal in every row: one rule (two would be a cycle), the earlier column low
        low, high, names = x, y, [x_name, y_name]
    elif (y <= x).all():
        low, high, names = y, x, [y_name, x_name]
    else:
        return None
    implied = low.max() <= high.min()
    status = RuleStatus.IMPLIED if implied else RuleStatus.ENFORCED
    return Rule(kind=RuleKind.ORDER, columns=names, support=int(both.sum()), status=status)


def _arithmetic_rules(table: _Table, min_support: int) -> list[Rule]:
    """result == b - a for two dates and a number (days), and total == a + b among numbers."""
    found = []
    for minuend, subtrahend in permutations(table.temporal, 2):
        for result in table.numeric:
            found += _arithmetic(table, RuleKind.DIFFERENCE, [result, minuend, subtrahend], min_support)
    for a, b in combinations(table.numeric, 2):
        for result in table.numeric:
            if result not in (a, b):
                found += _arithmetic(table, RuleKind.SUM, [result, a, b], min_support)
    return _one_per_result(found)


def _one_per_result(rules: list[Rule]) -> list[Rule]:
    """For a column that is the result of several arithmetic rules, the one most rows have: a column is computed
    one way (futime == last_contact - sample_date, not also == death_date - sample_date on the dead)."""
    best: dict[str, Rule] = {}
    for rule in rules:
        if rule.columns[0] not in best or rule.support > best[rule.columns[0]].support:
            best[rule.columns[0]] = rule
    return [rule for rule in rules if best[rule.columns[0]] is rule]


def _arithmetic(table: _Table, kind: RuleKind, names: list[str], min_support: int) -> list[Rule]:
    """The one arithmetic rule on these columns, when it holds (screened first, then on every row)."""
    spec = table.schema.column(names[0])
    for rows in (table.screen, slice(None)):
        result, a, b = (table.numbers(name)[rows] for name in names)
        if kind == RuleKind.SUM and (not a.any() or not b.any()):  # adding zero is no rule
            return []
        expected = a - b if kind == RuleKind.DIFFERENCE else a + b
        applicable = ~np.isnan(result) & ~np.isnan(expected)
        if applicable.sum() < 2 or (np.abs(result - expected)[applicable] > tolerance(spec)).any():
            return []
    if applicable.sum() < min_support:
        return []
    return [Rule(kind=kind, columns=names, support=int(applicable.sum()))]


def _determines_rules(table: _Table) -> list[Rule]:
    """a -> b: a category whose every value always comes with the same value of b (a category or a number)."""
    n_rows = len(table.data)
    determinants = [
        name for name in table.discrete if 2 <= table.codes(name).max() + 1 <= n_rows / MIN_ROWS_PER_DETERMINANT_LEVEL
    ]
    dependents = [name for name in [*table.discrete, *table.numeric] if table.codes(name).max() >= 1]
    found = []
    for a in determinants:
        for b in dependents:
            if a != b and all(
                _functional(table.codes(a)[rows], table.codes(b)[rows]) for rows in (table.screen, slice(None))
            ):
                found.append(Rule(kind=RuleKind.DETERMINES, columns=[a, b], support=n_rows))
    return found


def _functional(a: np.ndarray, b: np.ndarray) -> bool:
    """True when each code of a comes with one code of b."""
    pairs = np.unique(a.astype(np.int64) * (int(b.max()) + 1) + b)
    return len(pairs) == len(np.unique(a))


def _missing_rules(table: _Table) -> list[Rule]:
    """Columns whose gaps fall in the same rows, and gaps that fall exactly where a category has given levels."""
    n_rows = len(table.data)
    gappy = [name for name in table.learned if MIN_MISSING_ROWS <= table.missing(name).sum() < n_rows]
    found, grouped = [], {}
    for name in gappy:
        grouped.setdefault(table.missing(name).tobytes(), []).append(name)
    for group in grouped.values():
        found += [
            Rule(kind=RuleKind.MISSING_TOGETHER, columns=[group[0], other], support=n_rows) for other in group[1:]
        ]
    for name in gappy:
        for category in table.discrete:
            rule = _missing_when(table, name, category)
            if rule is not None:
                found.append(rule)
    return found


def _missing_when(table: _Table, name: str, category: str) -> Rule | None:
    """`name missing <=> category in {levels}`, when the levels are listed ones and not just the gaps."""
    spec = table.schema.column(category)
    if category == name or (spec.cardinality or 0) > MAX_WHEN_LEVELS:
        return None
    codes, missing = table.codes(category), table.missing(name)
    for rows in (table.screen, slice(None)):  # a level both with and without gaps: no rule
        if not _codes_apart(codes[rows][missing[rows]], codes[rows][~missing[rows]]):
            return None
    when = set(table.code_labels(category)[np.unique(codes[missing])])
    listed = dict(zip(level_labels(spec, spec.allowed_values or []), spec.allowed_values or [], strict=True))
    if MISSING_LABEL in when or not when <= listed.keys():
        return None
    levels = sorted(listed[label] for label in when)  # as the table writes them
    return Rule(kind=RuleKind.MISSING_WHEN, columns=[name, category], levels=levels, support=len(codes))


def _codes_apart(first: np.ndarray, second: np.ndarray) -> bool:
    """True when no code is in both arrays."""
    return not np.intersect1d(first, second, assume_unique=False).size


def _text_form_rules(table: _Table, min_support: int) -> list[Rule]:
    """t == text(n): a text column that is, wherever n has a value, n printed in one format."""
    found = []
    for text in table.texts:
        sample = table.data[text].iloc[table.screen]
        present = sample.dropna().astype(str)
        if present.empty or present.str.fullmatch(NUMBER_TEXT).mean() < 0.5:
            continue
        for number in (name for name in table.numeric if name != text):
            text_format = text_format_of(table.data[text], table.numbers(number), table.screen)
            if text_format is not None:
                support = int((~np.isnan(table.numbers(number))).sum())
                if support >= min_support:
                    found.append(
                        Rule(kind=RuleKind.TEXT_FORM, columns=[text, number], text_format=text_format, support=support)
                    )
    return found


def text_format_of(text: pd.Series, number: np.ndarray, screen: np.ndarray | None = None) -> str | None:
    """The first of TEXT_FORMATS in which text prints number in every row where number has a value, or None."""
    formats = list(TEXT_FORMATS)
    for rows in ([screen] if screen is not None else []) + [np.arange(len(number))]:
        values, printed = number[rows], text.to_numpy()[rows]
        has = ~np.isnan(values)
        if not has.any():
            return None
        formats = [f for f in formats if _prints(printed[has], values[has], f).all()]
        if not formats:
            return None
    return formats[0]


def _prints(text: np.ndarray, number: np.ndarray, text_format: str | None) -> np.ndarray:
    """Rows whose text is the number printed in text_format (WRITTEN: a number equal to it, any decimals)."""
    written = np.array([str(v) if v is not None and v == v else "" for v in text], dtype=object)
    if text_format != WRITTEN:
        return print_numbers(number, text_format or "plain") == written
    shaped = pd.Series(written, dtype=object).str.fullmatch(NUMBER_TEXT).to_numpy(dtype=bool)
    read = pd.to_numeric(pd.Series(written).where(shaped), errors="coerce").to_numpy(dtype=float)
    return shaped & (np.abs(read - number) <= 1e-9 * np.maximum(1.0, np.abs(number)))


# -- the user's edits ------------------------------------------------------------------------------
SchemaT = TypeVar("SchemaT", TableSchema, DatasetSchema)


def edited_rules(
    schema: SchemaT,
    add: Iterable[str],
    off: Iterable[str],
    parse: Callable[[str], Rule],
    check: Callable[[Rule], Rule],
    listed_as: str,
) -> SchemaT:
    """A copy of schema (one table's or a dataset's) whose rules gain each checked `add` text (replacing the same
    rule) and turn off each `off` one; every problem at once, in one RuleError."""
    rules, problems = [rule.model_copy() for rule in schema.rules], []
    for text in off:
        try:
            wanted = parse(text)
        except RuleError as error:
            problems += error.problems
            continue
        matches = [rule for rule in rules if rule.same_rule(wanted)]
        if not matches:
            listed = "; ".join(rule.text for rule in rules) or "none"
            problems.append(f"There is no rule '{text}' to turn off; {listed_as} are: {listed}.")
        for rule in matches:
            rule.status = RuleStatus.OFF
    for text in add:
        try:
            rule = check(parse(text))
        except RuleError as error:
            problems += error.problems
            continue
        rules = [existing for existing in rules if not existing.same_rule(rule)] + [rule]
    if problems:
        raise RuleError(*problems)
    return schema.model_copy(update={"rules": rules})


def with_rule_edits(
    schema: TableSchema, data: pd.DataFrame, *, add: Iterable[str] = (), off: Iterable[str] = ()
) -> TableSchema:
    """A copy of schema with the user's rules added (checked against data) and the named rules turned off.

    Every problem is reported at once, in one RuleError: a rule that cannot be read, names no column, does not
    fit its columns' kinds, or that the data breaks (with the number of rows).
    """
    return edited_rules(
        schema,
        add,
        off,
        lambda text: parse_rule(text, schema.names),
        lambda rule: checked_rule(rule, schema, data),
        "the table's rules",
    )


def checked_rule(rule: Rule, schema: TableSchema, data: pd.DataFrame) -> Rule:
    """The user's rule with its support (and printed format), or RuleError saying why the data refuses it."""
    wrong = _kind_problem(rule, schema)
    if wrong:
        raise RuleError(wrong)
    if rule.kind == RuleKind.TEXT_FORM:
        first, second = rule.columns
        text_format = text_format_of(data[first].reset_index(drop=True), column_numbers(data, schema, second))
        if text_format is None:
            raise RuleError(
                f"The rule '{rule.text}' does not hold: '{first}' is not '{second}' printed in one format "
                "in every row; fix the data or leave the rule out."
            )
        rule = rule.model_copy(update={"text_format": text_format})
    applicable, kept = rule_counts(rule, data, schema)
    if applicable == 0:
        raise RuleError(f"The rule '{rule.text}' applies to no row of the table (its columns are never all filled).")
    if kept < applicable:
        raise RuleError(
            f"The rule '{rule.text}' is broken in {applicable - kept:,} of {applicable:,} rows that have its columns; "
            "fix the data or leave the rule out."
        )
    return rule.model_copy(update={"support": applicable, "status": RuleStatus.ENFORCED})


def _kind_problem(rule: Rule, schema: TableSchema) -> str | None:
    """Why the rule's columns cannot hold it (a date in a sum, a number as determinant), or None."""
    kinds = [schema.column(name) for name in rule.columns]
    measured = [spec.kind in NUMERIC_KINDS or spec.kind in TEMPORAL_KINDS for spec in kinds]
    if rule.kind in (RuleKind.ORDER, RuleKind.DIFFERENCE, RuleKind.SUM) and not all(measured):
        return f"The rule '{rule.text}' needs columns of numbers or dates; " + _kinds_named(kinds) + "."
    if rule.kind == RuleKind.DETERMINES and kinds[0].kind not in DISCRETE_KINDS:
        return f"The rule '{rule.text}' needs a category on the left; " + _kinds_named(kinds) + "."
    if rule.kind == RuleKind.TEXT_FORM and not measured[1]:
        return f"The rule '{rule.text}' needs a column of numbers inside text(); " + _kinds_named(kinds) + "."
    if not all(spec.learned or spec.kind == ColumnKind.TEXT for spec in kinds):
        return f"The rule '{rule.text}' names a column that is not generated (dropped or regenerated)."
    return None


def _kinds_named(specs: list[ColumnSpec]) -> str:
    return ", ".join(f"'{spec.name}' is {spec.kind.value}" for spec in specs)
