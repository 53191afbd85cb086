"""Cross-table rules of a dataset (metadata/rules.py CrossTableRule): rows that keep one, detection, the user's edits.

Every function works on the joined frame of a relationship: each child row beside its parent row's values, the
columns qualified `table.column`, with a TableSchema of those columns. On it a cross-table rule is an order rule
like any other, so counting the rows that keep it, screening then verifying candidates, the support, the status
(implied where the ranges already say so) and checking a rule the user wrote are metadata.rule_checks' functions.
A child table's time order within its parent (the schema's time column) is the other cross-table rule: it is
declared by `TableEntry.sequence` and counted here row by row (`in_order_counts`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from fairsynth.metadata.dataset import DatasetSchema, Relationship
from fairsynth.metadata.rule_checks import (
    SCREEN_ROWS,
    bulks_overlap,
    checked_rule,
    column_numbers,
    detect_rules,
    edited_rules,
    on_common_scale,
    order_between,
    rule_counts,
)
from fairsynth.metadata.rules import (
    MIN_RULE_SUPPORT,
    CrossTableRule,
    Rule,
    RuleError,
    RuleKind,
    parse_rule,
    qualified,
)
from fairsynth.metadata.schema import NUMERIC_KINDS, TEMPORAL_KINDS, ColumnSpec, TableSchema, column_values

Tables = Mapping[str, pd.DataFrame]
SEQUENCE = "sequence"  # the kind of a child table's time order where it is listed with the cross-table rules
CROSS_RULE_GRAMMAR = (
    "write a cross-table rule as 'child.column >= parent.column' (or <=, <, >), with one column of a child table "
    "and one of its parent, both numbers or both dates"
)


# -- the joined frame -------------------------------------------------------------------------------
def comparable_columns(schema: DatasetSchema, table: str) -> list[ColumnSpec]:
    """A table's learned columns of numbers or dates, keys left out: what a cross-table rule may compare."""
    keys = set(schema.key_columns(table))
    return [
        spec
        for spec in schema.entry(table).table.learned_columns()
        if spec.name not in keys and (spec.kind in NUMERIC_KINDS or spec.kind in TEMPORAL_KINDS)
    ]


def joined(
    tables: Tables,
    schema: DatasetSchema,
    link: Relationship,
    child_columns: Iterable[str] | None = None,
    parent_columns: Iterable[str] | None = None,
) -> tuple[pd.DataFrame, TableSchema]:
    """Each child row that has its parent, beside the parent row's values (columns `table.column`), and the schema
    of those columns; by default every comparable column of both tables."""
    child, parent = tables[link.child], tables[link.parent].drop_duplicates(link.parent_key)
    specs = []
    for table, wanted in ((link.child, child_columns), (link.parent, parent_columns)):
        chosen = comparable_columns(schema, table)
        if wanted is not None:
            names = set(wanted)
            chosen = [spec for spec in chosen if spec.name in names]
        specs += [(table, spec) for spec in chosen]
    rows = pd.Index(parent[link.parent_key]).get_indexer(child[link.child_key])
    has = rows >= 0
    source = {link.child: (child, np.flatnonzero(has)), link.parent: (parent, rows[has])}
    frame = pd.DataFrame(
        {
            qualified(table, spec.name): source[table][0][spec.name].iloc[source[table][1]].to_numpy()
            for table, spec in specs
            if spec.name in source[table][0]
        }
    )
    columns = [spec.model_copy(update={"name": qualified(table, spec.name)}) for table, spec in specs]
    return frame, TableSchema(columns=[c for c in columns if c.name in frame], n_rows=len(frame))


def cross_rule_counts(rule: CrossTableRule, tables: Tables, schema: DatasetSchema) -> tuple[int, int]:
    """(child rows the rule applies to, child rows that keep it) in tables."""
    link = _link(schema, rule)
    frame, table = joined(tables, schema, link, [rule.column_of(rule.child)], [rule.column_of(rule.parent)])
    return rule_counts(rule, frame, table)


def missing_columns(rule: CrossTableRule, tables: Tables) -> list[str]:
    """The rule's columns (qualified) that the tables lack."""
    return [
        qualified(table, rule.column_of(table))
        for table in (rule.child, rule.parent)
        if rule.column_of(table) not in tables[table]
    ]


def in_order_counts(child: pd.DataFrame, key: str, spec: ColumnSpec) -> tuple[int, int]:
    """A child table's time order, row by row: (rows with an earlier row of the same parent, both timed; those not
    before the row stored just above them)."""
    if child.empty:
        return 0, 0
    times = pd.Series(column_values(child[spec.name], spec).to_numpy(dtype=float))
    previous = times.groupby(child[key].to_numpy(), sort=False).shift().to_numpy()
    applicable = ~np.isnan(times.to_numpy()) & ~np.isnan(previous)
    return int(applicable.sum()), int((times.to_numpy()[applicable] >= previous[applicable]).sum())


def sequence_text(schema: DatasetSchema, link: Relationship) -> str:
    """A child table's time order as a rule's text, e.g. 'pbcseq.day in order within pbc'."""
    return f"{qualified(link.child, schema.entry(link.child).sequence or '')} in order within {link.parent}"


# -- detection ------------------------------------------------------------------------------------
def infer_dataset_with_rules(frames: Tables, *, min_support: int = MIN_RULE_SUPPORT) -> DatasetSchema:
    """DatasetSchema.infer, then every rule within each table and every cross-table rule the tables keep (what a
    user sees first for a dataset)."""
    return with_detected_dataset_rules(DatasetSchema.infer(frames), frames, min_support=min_support)


def with_detected_dataset_rules(
    schema: DatasetSchema, frames: Tables, *, min_support: int = MIN_RULE_SUPPORT
) -> DatasetSchema:
    """A copy of schema with every rule within each table and every cross-table rule the tables keep on its keys."""
    found = with_detected_table_rules(schema, frames, min_support=min_support)
    return with_detected_cross_rules(found, frames, min_support=min_support)


def with_detected_table_rules(
    schema: DatasetSchema, tables: Tables, *, min_support: int = MIN_RULE_SUPPORT
) -> DatasetSchema:
    """A copy of schema whose every table lists the rules its rows keep on its non-key columns, found exactly as
    for one table (metadata.rule_checks.detect_rules); keys never take part."""
    edited = schema.model_copy(deep=True)
    for entry in edited.tables:
        found = detect_rules(tables[entry.name], schema.value_table(entry.name), min_support=min_support)
        entry.table = entry.table.model_copy(update={"rules": found, "min_rule_support": min_support})
    return edited


def with_detected_cross_rules(
    schema: DatasetSchema, tables: Tables, *, min_support: int = MIN_RULE_SUPPORT
) -> DatasetSchema:
    """A copy of schema listing every cross-table rule the tables keep in all child rows, each with min_support."""
    found = detect_cross_rules(tables, schema, min_support=min_support)
    return schema.model_copy(update={"rules": found, "min_rule_support": min_support})


def detect_cross_rules(
    tables: Tables, schema: DatasetSchema, *, min_support: int = MIN_RULE_SUPPORT, seed: int = 0
) -> list[CrossTableRule]:
    """Per relationship, every order between a child's column and its parent's (both numbers or both dates) that
    holds on every child row having both, screened on a sample then verified on all rows, as for one table:
    dates in any case (implied where the ranges say so), numbers only where their ranges overlap."""
    found = []
    for link in schema.relationships:
        frame, table = joined(tables, schema, link)
        if len(frame) < min_support:
            continue
        rng = np.random.default_rng(seed)
        screen = np.sort(rng.choice(len(frame), size=min(SCREEN_ROWS, len(frame)), replace=False))
        numbers = {spec.name: column_numbers(frame, table, spec.name) for spec in table.columns}
        child = [s for s in table.columns if s.name.startswith(f"{link.child}.")]
        parent = [s for s in table.columns if s.name.startswith(f"{link.parent}.")]
        for a in child:
            for b in parent:
                temporal = a.kind in TEMPORAL_KINDS
                if temporal != (b.kind in TEMPORAL_KINDS):
                    continue
                x, y = on_common_scale(table, [a.name, b.name], numbers[a.name], numbers[b.name])
                rule = order_between(x, y, a.name, b.name, screen, min_support, by_day=x is not numbers[a.name])
                if rule is None or not (temporal or bulks_overlap(*((x, y) if rule.columns[0] == a.name else (y, x)))):
                    continue
                found.append(CrossTableRule(**rule.model_dump(), child=link.child, parent=link.parent))
    return found


# -- the user's rules -------------------------------------------------------------------------------
def parse_cross_rule(text: str, schema: DatasetSchema) -> CrossTableRule:
    """The cross-table rule a person wrote (CrossTableRule.text's form), checked against the dataset; RuleError
    saying what is wrong otherwise."""
    rule = parse_rule(text, _qualified_names(schema))
    if rule.kind != RuleKind.ORDER:
        raise RuleError(f"The rule '{text.strip()}' is not an order between two columns; {CROSS_RULE_GRAMMAR}.")
    first, second = (_table_of(name, schema) for name in rule.columns)
    link = next((r for r in schema.relationships if {r.parent, r.child} == {first, second} and first != second), None)
    if link is None:
        raise RuleError(
            f"The rule '{text.strip()}' ties '{first}' and '{second}', which are not a child table and its parent; "
            f"{CROSS_RULE_GRAMMAR}."
        )
    specs = [schema.entry(t).table.column(n.removeprefix(f"{t}.")) for t, n in zip((first, second), rule.columns)]
    comparable = {qualified(t, s.name) for t in (first, second) for s in comparable_columns(schema, t)}
    if not set(rule.columns) <= comparable or (specs[0].kind in TEMPORAL_KINDS) != (specs[1].kind in TEMPORAL_KINDS):
        kinds = ", ".join(f"'{n}' is {s.kind.value}" for n, s in zip(rule.columns, specs))
        raise RuleError(
            f"The rule '{text.strip()}' compares columns that are not both numbers or both dates ({kinds})."
        )
    return CrossTableRule(**rule.model_dump(), child=link.child, parent=link.parent)


def with_cross_rule_edits(
    schema: DatasetSchema, tables: Tables, *, add: Iterable[str] = (), off: Iterable[str] = ()
) -> DatasetSchema:
    """A copy of schema with the user's cross-table rules added (the tables must keep them) and the named rules
    turned off; every problem at once, in one RuleError (as rule_checks.with_rule_edits for one table)."""

    def checked(rule: CrossTableRule) -> CrossTableRule:
        child, parent = [rule.column_of(rule.child)], [rule.column_of(rule.parent)]
        frame, table = joined(tables, schema, _link(schema, rule), child, parent)
        return checked_rule(rule, table, frame)

    return edited_rules(
        schema,
        add,
        off,
        lambda text: parse_cross_rule(text, schema),
        checked,
        "the dataset's cross-table rules",
    )


def with_dataset_rule_edits(
    schema: DatasetSchema, tables: Tables, *, add: Iterable[str] = (), off: Iterable[str] = ()
) -> DatasetSchema:
    """The user's rule edits on a dataset: a text naming one table's columns only (`pbc.bili >= pbc.albumin`) edits
    that table's rules, any other is a cross-table rule; every problem at once, in one RuleError."""
    routed: dict[str | None, tuple[list[str], list[str]]] = {}  # table (None: cross-table) -> (add, off)
    for texts, place in ((add, 0), (off, 1)):
        for text in texts:
            routed.setdefault(_rule_table(text, schema), ([], []))[place].append(text)
    edited, problems = schema, []
    for table, (added, turned_off) in routed.items():
        try:
            if table is None:
                edited = with_cross_rule_edits(edited, tables, add=added, off=turned_off)
            else:
                edited = with_table_rule_edits(edited, tables, table, add=added, off=turned_off)
        except RuleError as error:
            problems += error.problems
    if problems:
        raise RuleError(*problems)
    return edited


def with_table_rule_edits(
    schema: DatasetSchema, tables: Tables, name: str, *, add: Iterable[str] = (), off: Iterable[str] = ()
) -> DatasetSchema:
    """A copy of schema with the user's edits of one table's rules, checked on the table's rows as for one table,
    every column named `table.column` (in the texts and the sentences); a key column is refused (regenerated)."""
    values = schema.value_table(name)
    named = values.model_copy(
        update={
            "columns": [spec.model_copy(update={"name": qualified(name, spec.name)}) for spec in values.columns],
            "rules": [qualified_rule(name, rule) for rule in values.rules],
        }
    )
    data = tables[name].rename(columns=lambda column: qualified(name, column))
    edited = edited_rules(
        named,
        add,
        off,
        lambda text: parse_rule(text, named.names),
        lambda rule: checked_rule(rule, named, data),
        f"the rules within '{name}'",
    )
    result = schema.model_copy(deep=True)
    result.entry(name).table.rules = [
        rule.model_copy(update={"columns": [column.removeprefix(f"{name}.") for column in rule.columns]})
        for rule in edited.rules
    ]
    return result


def table_rules(schema: DatasetSchema) -> list[tuple[str, Rule]]:
    """Every rule within one table of the dataset, with its table (tables in the dataset's order)."""
    return [(entry.name, rule) for entry in schema.tables for rule in entry.table.rules]


def qualified_rule(table: str, rule: Rule) -> Rule:
    """A rule within one table with its columns named `table.column`: how the dataset lists it and a user writes it."""
    return rule.model_copy(update={"columns": [qualified(table, column) for column in rule.columns]})


def listed_rules(schema: DatasetSchema) -> list[Rule]:
    """Every rule of a dataset as its text names it: each table's own (qualified columns), then the cross-table ones."""
    return [*(qualified_rule(table, rule) for table, rule in table_rules(schema)), *schema.rules]


def _rule_table(text: str, schema: DatasetSchema) -> str | None:
    """The table a rule's text names every column of (None: a cross-table rule, or a text that the cross-table
    parser refuses with its reason)."""
    try:
        rule = parse_rule(text, _qualified_names(schema))
    except RuleError:
        return None
    owners = {_table_of(name, schema) for name in rule.columns}
    return owners.pop() if len(owners) == 1 else None


def _qualified_names(schema: DatasetSchema) -> list[str]:
    """Every column of the dataset as `table.column`."""
    return [qualified(entry.name, column) for entry in schema.tables for column in entry.table.names]


def _table_of(name: str, schema: DatasetSchema) -> str:
    """The table a qualified column belongs to (the longest table name that fits, for names with dots)."""
    fits = [t.name for t in schema.tables if name.startswith(f"{t.name}.") and name[len(t.name) + 1 :] in t.table.names]
    return max(fits, key=len)


def _link(schema: DatasetSchema, rule: CrossTableRule) -> Relationship:
    link = schema.parent_of(rule.child)
    if link is None or link.parent != rule.parent:
        raise RuleError(f"The rule '{rule.text}' ties '{rule.child}' to '{rule.parent}', which is not its parent.")
    return link
