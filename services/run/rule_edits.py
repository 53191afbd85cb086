"""The user's rule edits on a schema: rules turned off, rules added (the data must keep them), detection again.

Every way in (CLI flags, a YAML or JSON request, the API, the UI's Data page) ends here, so a rule the data
breaks is refused with the same sentence everywhere (a RuleError naming the rule and its rows).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import pandas as pd

from fairsynth.metadata.dataset import DatasetSchema
from fairsynth.metadata.dataset_rules import (
    with_dataset_rule_edits,
    with_detected_cross_rules,
    with_detected_table_rules,
)
from fairsynth.metadata.rule_checks import with_detected_rules, with_rule_edits
from fairsynth.metadata.rules import RULE_GRAMMAR, Rule, RuleError, RuleStatus
from fairsynth.metadata.schema import TableSchema
from fairsynth.services.run.config import SchemaOverrides

R = TypeVar("R", bound=Rule)


def with_user_rules(schema: TableSchema, data: pd.DataFrame, overrides: SchemaOverrides) -> TableSchema:
    """schema with the overrides' rule edits: detected again at a new minimum support, then rules off, rules added."""
    if overrides.min_rule_support is not None and overrides.min_rule_support != schema.min_rule_support:
        schema = detected_again(schema, data, overrides.min_rule_support)
    return with_rule_edits(schema, data, add=overrides.rules, off=overrides.rules_off)


def with_user_dataset_rules(
    schema: DatasetSchema, tables: Mapping[str, pd.DataFrame], overrides: SchemaOverrides
) -> DatasetSchema:
    """A dataset's schema with the overrides' rule edits (each table's own rules and the cross-table ones), as
    with_user_rules does for one table."""
    if overrides.min_rule_support is not None and overrides.min_rule_support != schema.min_rule_support:
        schema = dataset_detected_again(schema, tables, overrides.min_rule_support)
    return with_dataset_rule_edits(schema, tables, add=overrides.rules, off=overrides.rules_off)


def dataset_detected_again(
    schema: DatasetSchema, tables: Mapping[str, pd.DataFrame], min_support: int
) -> DatasetSchema:
    """Each table's rules and the cross-table rules detected again at another minimum support, keeping the rules
    the user added or turned off."""
    found = with_detected_table_rules(schema, tables, min_support=min_support)
    found = with_detected_cross_rules(found, tables, min_support=min_support)
    for entry in found.tables:
        entry.table.rules = _kept_edits(entry.table.rules, schema.entry(entry.name).table.rules)
    return found.model_copy(update={"rules": _kept_edits(found.rules, schema.rules)})


def detected_again(schema: TableSchema, data: pd.DataFrame, min_support: int) -> TableSchema:
    """Rules detected again at another minimum support, keeping the rules the user added or turned off."""
    found = with_detected_rules(schema, data, min_support=min_support)
    return found.model_copy(update={"rules": _kept_edits(found.rules, schema.rules)})


def _kept_edits(found: list[R], before: list[R]) -> list[R]:
    """Rules found again, with the ones the user turned off still off and the ones the user added kept."""
    added = [rule for rule in before if rule.added_by_user]
    off = [rule for rule in before if rule.status == RuleStatus.OFF]
    rules = [
        rule.model_copy(update={"status": RuleStatus.OFF}) if _listed(rule, off) else rule
        for rule in found
        if not _listed(rule, added)
    ]
    return rules + added


def with_posted_rules(current: TableSchema, posted: TableSchema, data: pd.DataFrame) -> TableSchema:
    """The schema a user posted back (rules toggled, added), its rules checked against the stored one and data.

    A rule already listed keeps its measured support and takes the posted status; a new rule must hold in data;
    a rule on a column now dropped or of another kind is left out. Every problem comes in one RuleError.
    """
    if posted.min_rule_support != current.min_rule_support:
        current = detected_again(current, data, posted.min_rule_support)
    known = [
        _stored(rule, current)
        for rule in posted.rules
        if _listed(rule, current.rules) and posted.still_fits(rule, current)
    ]
    new = [rule for rule in posted.rules if not _listed(rule, current.rules)]
    texts = [_text(rule) for rule in new]
    checked = with_rule_edits(posted.model_copy(update={"rules": known}), data, add=texts)
    statuses = dict(zip(texts, (rule.status for rule in new)))
    rules = [rule.model_copy(update={"status": statuses.get(rule.text, rule.status)}) for rule in checked.rules]
    return checked.model_copy(update={"rules": rules})


def _text(rule: Rule) -> str:
    """A posted rule's text, or RuleError when its columns do not fit its kind."""
    try:
        return rule.text
    except (ValueError, IndexError):
        raise RuleError(
            f"A {rule.kind.value} rule on {', '.join(rule.columns) or 'no columns'} lacks columns; "
            f"write it as text instead ({RULE_GRAMMAR})."
        ) from None


def _stored(posted: Rule, current: TableSchema) -> Rule:
    """The stored rule the posted one names, with the posted status."""
    stored = next(rule for rule in current.rules if rule.same_rule(posted))
    return stored.model_copy(update={"status": posted.status})


def _listed(rule: Rule, rules: list[Rule]) -> bool:
    return any(rule.same_rule(other) for other in rules)
