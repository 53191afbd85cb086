"""The codec's part for cross-column rules: every backend keeps every enforced rule of the schema.

Before fitting, rules re-parametrise the encoded table; after sampling, they are inverted on the decoded
arrays (backends/preprocessing.py `Decoded`), before values take the source's types:

- order `high >= low`: the model learns `high` as an offset from one lower bound (its anchor: the one most rows
  have); decoding adds the offset back, kept non-negative, and raises any value still under a lower bound
  (another one, or after rounding) to it, column by column in the order's sequence;
- difference / sum: the result is not modelled; it is computed from the decoded operands;
- determines: the dependent is not modelled; it is looked up from its determinant's decoded value (a table
  of the kept levels only, the dependent's most common value for a level that is not kept);
- missing together / missing when: the second column's gaps are set from the first, or from the category;
- text form: the text is not modelled; it is the decoded number printed in the source's format.

No rejection loop: every step is one pass over arrays. The rule structure (which rules hold, the lookup
tables) comes from the real table; like the codec's other statistics it is not covered by a DP budget.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, Field

from fairsynth.metadata.rules import WRITTEN, Rule, RuleKind, print_numbers, written_decimals
from fairsynth.metadata.schema import ColumnKind, ColumnSpec, TableSchema, column_values, level_labels

DECIMALS_SUFFIX = "__decimals"  # a learned column: the decimals a text form writes in each row
MISSING_KEY = "\0missing"  # a determinant's gap, as a key of a lookup (missing fixes the dependent too)


class Lookup(BaseModel):
    """determines: the dependent's value for each kept level of its determinant, by label."""

    determinant: str
    values: dict[str, str | float | None]  # determinant label -> dependent label (category) or number; None: missing
    fallback: str | float | None = None  # for a determinant value without an entry (a level not kept)


class RuleCodec(BaseModel):
    """The enforced rules of one table, fitted: what the model learns in their place and how to invert it."""

    rules: list[Rule] = Field(default_factory=list)
    anchors: dict[str, str] = Field(default_factory=dict)  # order: column learned as an offset -> its anchor
    sequence: list[str] = Field(default_factory=list)  # order columns, each after its lower bounds
    lookups: dict[str, Lookup] = Field(default_factory=dict)  # determines: dependent -> how to look it up
    hidden: list[str] = Field(default_factory=list)  # encoded columns the model never sees (derived by a rule)
    decimals: dict[str, str] = Field(default_factory=dict)  # text form WRITTEN: text column -> its decimals' column

    @property
    def active(self) -> bool:
        """True when there is a rule to keep."""
        return bool(self.rules)

    # -- fitting ----------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, data: pd.DataFrame, schema: TableSchema, codecs: dict) -> RuleCodec:
        """The enforced rules the codecs can keep, with anchors, lookups and the columns they derive."""
        rules = [rule for rule in schema.rules if rule.enforced and _fits(rule, codecs)]
        fitted = cls(rules=_without_cycles(rules))
        fitted.sequence = _order_sequence(fitted.rules_of(RuleKind.ORDER))
        derived: set[str] = set()
        for rule in fitted.rules_of(RuleKind.DETERMINES):
            determinant, dependent = rule.columns
            if dependent not in derived and determinant not in derived:
                fitted.lookups[dependent] = _lookup(data, schema, codecs, determinant, dependent)
                derived.add(dependent)
        for kind in (RuleKind.DIFFERENCE, RuleKind.SUM, RuleKind.TEXT_FORM):
            for rule in fitted.rules_of(kind):
                if rule.columns[0] in derived:  # one rule computes a column (the first); the others are dropped
                    fitted.rules.remove(rule)
                derived.add(rule.columns[0])
        fitted.rules = [rule for rule in fitted.rules if not _gap_cycle(rule, fitted.lookups)]
        fitted.anchors = _anchors(fitted.rules_of(RuleKind.ORDER), fitted.sequence, derived)
        fitted.hidden = _hidden_columns(fitted, codecs, derived)
        written = [r for r in fitted.rules_of(RuleKind.TEXT_FORM) if r.text_format == WRITTEN]
        fitted.decimals = {rule.columns[0]: f"{rule.columns[0]}{DECIMALS_SUFFIX}" for rule in written}
        return fitted

    def rules_of(self, kind: RuleKind) -> list[Rule]:
        """The enforced rules of one kind."""
        return [rule for rule in self.rules if rule.kind == kind]

    # -- the encoded table --------------------------------------------------------------------------------
    def model_columns(self) -> dict[str, str]:
        """The encoded columns rules add for the model (the decimals a text form writes), with their kind."""
        return dict.fromkeys(self.decimals.values(), "categorical")

    def encode(self, data: pd.DataFrame, encoded: pd.DataFrame, codecs: dict, rng: np.random.Generator) -> pd.DataFrame:
        """The model's table: offsets in place of anchored columns, derived columns left out, the decimals
        of each text form added.

        Where either column of an offset had a gap (filled with a draw of its own), the offset is a draw from
        the real offsets instead: a gap must not teach the model offsets of hundreds of days.
        """
        offsets = {}
        for high, low in self.anchors.items():
            offset = (encoded[high] - encoded[low]).to_numpy(copy=True)
            gaps = _gaps(encoded, codecs[high]) | _gaps(encoded, codecs[low])
            if gaps.any() and not gaps.all():
                offset[gaps] = rng.choice(offset[~gaps], size=int(gaps.sum()))
            offsets[high] = offset
        for text, column in self.decimals.items():
            written = data[text].to_numpy(dtype=object)
            present = pd.notna(written)
            places = np.zeros(len(written), dtype=np.int64)
            places[present] = written_decimals(written[present])
            offsets[column] = places.astype(str)
        return encoded.assign(**offsets).drop(columns=[c for c in self.hidden if c in encoded.columns])

    def restore_encoded(self, batch, codecs: dict) -> None:
        """Undo encode() on a sampled batch: absolute values from offsets (never below the anchor), and
        placeholders for the derived columns that after_decode fills."""
        for high in self.sequence:
            if high in self.anchors:
                batch.numbers[high] = batch.numbers[self.anchors[high]] + np.maximum(batch.numbers[high], 0.0)
        for name in self.hidden:
            if name in batch.numbers or name in batch.codes:
                continue
            codec = codecs.get(name)
            if codec is not None and codec.type == "numeric":
                batch.numbers[name] = np.full(batch.rows, codec.minimum, dtype=float)
            else:  # a categorical column or a numeric column's indicator: its first token, replaced later
                token = next(iter(codec.levels)) if codec is not None and codec.levels else "0"
                batch.codes[name], batch.tokens[name] = np.zeros(batch.rows, dtype=np.int64), [token]

    # -- the decoded arrays ---------------------------------------------------------------------------------
    def after_decode(self, decoded: dict, codecs: dict, batch) -> dict[str, pa.Array]:
        """Keep every rule on the decoded arrays (in place); returns the text columns printed from numbers."""
        self._set_gaps(decoded, codecs, looked_up=False)
        for dependent, lookup in self.lookups.items():
            determinant = lookup.determinant
            _look_up(lookup, decoded[determinant], codecs[determinant], decoded[dependent], codecs[dependent])
        self._set_gaps(decoded, codecs, looked_up=True)  # gaps that follow a column the lookups just set
        self._keep_order(decoded, codecs)
        for rule in [*self.rules_of(RuleKind.DIFFERENCE), *self.rules_of(RuleKind.SUM)]:
            _compute(rule, decoded, codecs)
        return {
            rule.columns[0]: _printed(rule, decoded[rule.columns[1]], self._decimals(rule.columns[0], batch))
            for rule in self.rules_of(RuleKind.TEXT_FORM)
        }

    def _decimals(self, text: str, batch) -> np.ndarray | None:
        """The decimals the model chose for each row of a WRITTEN text form (None for a fixed format)."""
        if text not in self.decimals:
            return None
        column = self.decimals[text]
        tokens = np.array([int(t) if t.isdigit() else 0 for t in batch.tokens[column]] + [0], dtype=np.int64)
        return tokens[batch.codes[column]]

    def _set_gaps(self, decoded: dict, codecs: dict, *, looked_up: bool) -> None:
        """Gaps that go together, and gaps where a category has given levels: those that follow a column the
        lookups set (looked_up), or the others."""
        for rule in self.rules_of(RuleKind.MISSING_TOGETHER):
            if (rule.columns[0] in self.lookups) == looked_up:
                decoded[rule.columns[1]].missing = decoded[rule.columns[0]].missing.copy()
        for rule in self.rules_of(RuleKind.MISSING_WHEN):
            name, category = rule.columns
            if (category in self.lookups) == looked_up:
                decoded[name].missing = _has_levels(decoded[category], codecs[category], rule.levels)

    def _keep_order(self, decoded: dict, codecs: dict) -> None:
        """Raise each order column to its lower bounds where both have a value, in the order's sequence."""
        lows: dict[str, list[Rule]] = {}
        for rule in self.rules_of(RuleKind.ORDER):
            lows.setdefault(rule.columns[1], []).append(rule)
        for high in self.sequence:
            column, codec = decoded[high], codecs[high]
            for rule in lows.get(high, []):
                low = decoded[rule.columns[0]]
                bound = np.floor(low.values) if _by_day(codecs[rule.columns[0]], codec) else low.values
                if rule.strict:
                    bound = bound + codec.step
                under = ~low.missing & (column.values < bound)
                column.values[under] = codec.up_to_grid(bound[under])


def _gaps(encoded: pd.DataFrame, codec) -> np.ndarray:
    """Rows where a numeric column had no value (its indicator says so)."""
    if not codec.indicator:
        return np.zeros(len(encoded), dtype=bool)
    return (encoded[codec.indicator] == "1").to_numpy()


def _fits(rule: Rule, codecs: dict) -> bool:
    """True when the rule's columns have the codecs it needs (numbers for order and arithmetic, ...)."""
    kinds = [getattr(codecs.get(name), "type", None) for name in rule.columns]
    if rule.kind in (RuleKind.ORDER, RuleKind.DIFFERENCE, RuleKind.SUM):
        return all(kind == "numeric" for kind in kinds)
    if rule.kind == RuleKind.DETERMINES:
        return kinds[0] == "categorical" and kinds[1] in ("categorical", "numeric")
    if rule.kind == RuleKind.MISSING_WHEN:
        return kinds[0] in ("categorical", "numeric") and kinds[1] == "categorical"
    if rule.kind == RuleKind.TEXT_FORM:
        return kinds[1] == "numeric" and kinds[0] is not None
    return all(kind in ("categorical", "numeric") for kind in kinds)


def _gap_cycle(rule: Rule, lookups: dict[str, Lookup]) -> bool:
    """True for a gap rule whose source is looked up from the column it would set: the lookup, which counts a
    gap as a value, already keeps it (chapter missing <=> death in {0}, with chapter -> death)."""
    if rule.kind not in (RuleKind.MISSING_TOGETHER, RuleKind.MISSING_WHEN):
        return False
    target, source = (rule.columns[1], rule.columns[0]) if rule.kind == RuleKind.MISSING_TOGETHER else rule.columns
    return source in lookups and lookups[source].determinant == target


def _without_cycles(rules: list[Rule]) -> list[Rule]:
    """The rules less any order rule that would close a cycle of orders (kept in the order given)."""
    kept: list[Rule] = []
    above: dict[str, set[str]] = {}
    for rule in rules:
        if rule.kind == RuleKind.ORDER:
            low, high = rule.columns
            if low in _reachable(above, high):
                continue
            above.setdefault(low, set()).add(high)
        kept.append(rule)
    return kept


def _reachable(edges: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(edges.get(node, ()))
    return seen


def _order_sequence(rules: list[Rule]) -> list[str]:
    """The order rules' columns, each after all of its lower bounds (a topological order)."""
    lows: dict[str, set[str]] = {}
    for rule in rules:
        lows.setdefault(rule.columns[1], set()).add(rule.columns[0])
        lows.setdefault(rule.columns[0], set())
    sequence: list[str] = []
    while len(sequence) < len(lows):
        ready = [name for name, below in lows.items() if name not in sequence and below <= set(sequence)]
        sequence.extend(ready)
    return sequence


def _anchors(rules: list[Rule], sequence: list[str], derived: set[str]) -> dict[str, str]:
    """For each column above others, the lower bound it is learned from: the one with the most rows."""
    anchors: dict[str, str] = {}
    for high in sequence:
        candidates = [r for r in rules if r.columns[1] == high and r.columns[0] not in derived]
        if candidates and high not in derived:
            anchors[high] = max(candidates, key=lambda r: r.support).columns[0]
    return anchors


def _hidden_columns(fitted: RuleCodec, codecs: dict, derived: set[str]) -> list[str]:
    """The encoded columns of derived columns: all of a looked-up or printed column; the value of a computed one
    (its indicator stays: gaps of a result are learned like any gaps)."""
    hidden = []
    computed = {r.columns[0] for r in [*fitted.rules_of(RuleKind.DIFFERENCE), *fitted.rules_of(RuleKind.SUM)]}
    for name in sorted(derived):
        codec = codecs[name]
        hidden.append(name) if codec.type in ("numeric", "categorical") else None
        if codec.type == "numeric" and codec.indicator and name not in computed:
            hidden.append(codec.indicator)
    return hidden


def _lookup(data: pd.DataFrame, schema: TableSchema, codecs: dict, determinant: str, dependent: str) -> Lookup:
    """The dependent's value for each level its determinant's codec keeps (no level under the rare threshold)."""
    keys = _labels(data[determinant], schema.column(determinant))
    dependent_spec = schema.column(dependent)
    numeric = codecs[dependent].type == "numeric"
    values = column_values(data[dependent], dependent_spec) if numeric else _labels(data[dependent], dependent_spec)
    pairs = pd.DataFrame({"key": keys.to_numpy(), "value": values.to_numpy()})
    kept = set(_labels(pd.Series(codecs[determinant].dictionary_values(), dtype=object), schema.column(determinant)))
    kept.add(MISSING_KEY)
    table = pairs.groupby("key", dropna=False)["value"].agg(lambda v: v.mode(dropna=False).iloc[0])
    fixed = {str(k): _plain(v) for k, v in table.items() if k in kept}
    # a determinant value without an entry is a level too rare to keep: it gets what those levels had most often,
    # if a kept level has that value too (a rare level's own label or unit is never kept)
    rare = pairs.loc[~pairs["key"].isin(kept), "value"]
    rare = rare[rare.map(_plain).isin(list(fixed.values()))]
    common = (rare if len(rare) else pairs["value"]).mode(dropna=False)
    return Lookup(determinant=determinant, values=fixed, fallback=_plain(common.iloc[0]) if len(common) else None)


def _labels(values: pd.Series, spec: ColumnSpec) -> pd.Series:
    """Labels of a category's values (one label for 1, 1.0 and '1'), MISSING_KEY for gaps."""
    labels = column_values(values.reset_index(drop=True), spec)
    return labels.astype(object).where(labels.notna(), MISSING_KEY)


def _plain(value):
    """A lookup value as JSON holds it: None for a gap, float for a number, text for a label."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value == MISSING_KEY:
        return None
    return float(value) if isinstance(value, (int, float, np.number)) else str(value)


def _dictionary_labels(codec) -> np.ndarray:
    """The labels of a categorical codec's dictionary values, by index."""
    spec = ColumnSpec(name=codec.name, kind=codec.kind)
    return _labels(pd.Series(codec.dictionary_values(), dtype=object), spec).to_numpy(dtype=object)


def _has_levels(category, codec, levels: list[str]) -> np.ndarray:
    """Rows whose category value is one of the given levels (a gap is none of them)."""
    chosen = np.isin(_dictionary_labels(codec), level_labels(ColumnSpec(name=codec.name, kind=codec.kind), levels))
    return chosen[category.values] & ~category.missing


def _look_up(lookup: Lookup, determinant, determinant_codec, dependent, dependent_codec) -> None:
    """Set the dependent from its determinant's decoded values, through the lookup table: looked up once
    per determinant level (and once for a gap), then spread to the rows by index."""
    keys = np.append(_dictionary_labels(determinant_codec), np.array([MISSING_KEY], dtype=object))
    rows = np.where(determinant.missing, len(keys) - 1, determinant.values)
    found = pd.Series(keys).map(lookup.values)
    unknown = ~pd.Series(keys).isin(lookup.values.keys()).to_numpy()
    found[unknown] = lookup.fallback
    missing = found.isna().to_numpy()
    if dependent_codec.type == "numeric":
        values = np.where(missing, dependent_codec.minimum, found.to_numpy(dtype=float, na_value=np.nan))
    else:
        place = {label: i for i, label in enumerate(_dictionary_labels(dependent_codec))}
        values = found.map(place).fillna(0).to_numpy(dtype=np.int64)
    dependent.values, dependent.missing = values[rows], missing[rows]


def _by_day(low_codec, high_codec) -> bool:
    """True when a date meets a datetime: the date stands for its whole day."""
    return {low_codec.kind, high_codec.kind} == {ColumnKind.DATE, ColumnKind.DATETIME}


def _compute(rule: Rule, decoded: dict, codecs: dict) -> None:
    """Set an arithmetic rule's result from its decoded operands; it is missing where either is."""
    result, a, b = (decoded[name] for name in rule.columns)
    exact = a.values - b.values if rule.kind == RuleKind.DIFFERENCE else a.values + b.values
    result.values = codecs[rule.columns[0]].on_grid(exact)
    result.missing = result.missing | a.missing | b.missing


def _printed(rule: Rule, number, decimals: np.ndarray | None) -> pa.Array:
    """A text form column: the decoded number printed in the source's format, missing where the number is."""
    printed = print_numbers(number.values, rule.text_format or "plain", decimals)
    return pa.array(np.where(number.missing, None, printed), type=pa.string())
