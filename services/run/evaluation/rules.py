"""Rule adherence: the share of synthetic rows keeping each cross-column rule of the real table, and for a dataset
the same for each table's own rules and the share of synthetic child rows keeping each cross-table rule and their
table's time order.

Every rule of the schema is measured whatever its status (enforced, implied, off), on every synthetic row the
evaluation holds; what a rule says and which rows it applies to is metadata.rule_checks' one definition (for
several tables metadata.dataset_rules, which reads it on each child row beside its parent's values).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from fairsynth.metadata.dataset import DatasetSchema, Relationship
from fairsynth.metadata.dataset_rules import (
    SEQUENCE,
    cross_rule_counts,
    in_order_counts,
    missing_columns,
    qualified_rule,
    sequence_text,
    table_rules,
)
from fairsynth.metadata.rule_checks import rule_counts
from fairsynth.metadata.rules import CrossTableRule, Rule, RuleStatus, qualified
from fairsynth.metadata.schema import TableSchema
from fairsynth.services.run.evaluation.relational_results import CrossRuleAdherence, DatasetRules
from fairsynth.services.run.evaluation.results import EvaluationResult, RuleAdherence, RulesResult


def evaluate_rules(train: pd.DataFrame, synthetic: pd.DataFrame, schema: TableSchema) -> RulesResult:
    """Each rule's applicable and kept synthetic rows, with the worst adherence of the enforced rules and of all."""
    measured = [rule_adherence(rule, train, synthetic, schema) for rule in schema.rules]
    return RulesResult(
        rows=len(synthetic),
        rules=measured,
        worst_enforced=_worst(m for m in measured if m.enforced),
        worst=_worst(measured),
    )


def rule_adherence(rule: Rule, train: pd.DataFrame, synthetic: pd.DataFrame, schema: TableSchema) -> RuleAdherence:
    """One rule on the synthetic rows; `train` fixes what a determinant's levels map to."""
    described = {
        "text": rule.text,
        "kind": rule.kind.value,
        "columns": rule.columns,
        "status": rule.status.value,
        "support": rule.support,
    }
    absent = [name for name in rule.columns if name not in synthetic.columns]
    if absent:
        return RuleAdherence(**described, note=f"the synthetic table lacks {', '.join(absent)}")
    applicable, kept = rule_counts(rule, synthetic, schema, reference=train)
    return RuleAdherence(
        **described, applicable=applicable, kept=kept, adherence=kept / applicable if applicable else None
    )


def evaluate_dataset_rules(
    train: Mapping[str, pd.DataFrame], synthetic: Mapping[str, pd.DataFrame], schema: DatasetSchema
) -> DatasetRules:
    """Each table's own rules on its synthetic rows, each cross-table rule and each child table's time order on the
    synthetic child rows, beside the real rows."""
    measured = [table_rule_adherence(table, rule, train, synthetic, schema) for table, rule in table_rules(schema)]
    measured += [cross_rule_adherence(rule, train, synthetic, schema) for rule in schema.rules]
    measured += [time_order_adherence(link, train, synthetic, schema) for link in schema.relationships]
    measured = [m for m in measured if m is not None]
    return DatasetRules(
        rules=measured, worst_enforced=_worst(m for m in measured if m.enforced), worst=_worst(measured)
    )


def table_rule_adherence(
    table: str,
    rule: Rule,
    train: Mapping[str, pd.DataFrame],
    synthetic: Mapping[str, pd.DataFrame],
    schema: DatasetSchema,
) -> CrossRuleAdherence:
    """One rule within one table on its synthetic rows and on the training ones, as for one table (its text and
    columns qualified `table.column`)."""
    named = qualified_rule(table, rule)
    described = {"text": named.text, "kind": rule.kind.value, "columns": named.columns, "status": rule.status.value}
    described["support"] = rule.support
    absent = [qualified(table, name) for name in rule.columns if name not in synthetic[table].columns]
    if absent:
        return CrossRuleAdherence(**described, note=f"the synthetic tables lack {', '.join(absent)}")
    values, real = schema.value_table(table), train[table]
    return _adherence(
        described, rule_counts(rule, real, values), rule_counts(rule, synthetic[table], values, reference=real)
    )


def cross_rule_adherence(
    rule: CrossTableRule,
    train: Mapping[str, pd.DataFrame],
    synthetic: Mapping[str, pd.DataFrame],
    schema: DatasetSchema,
) -> CrossRuleAdherence:
    """One cross-table rule on the synthetic child rows and on the training ones."""
    described = {"text": rule.text, "kind": rule.kind.value, "columns": rule.columns, "status": rule.status.value}
    described["support"] = rule.support
    absent = missing_columns(rule, synthetic)
    if absent:
        return CrossRuleAdherence(**described, note=f"the synthetic tables lack {', '.join(absent)}")
    return _adherence(described, cross_rule_counts(rule, train, schema), cross_rule_counts(rule, synthetic, schema))


def time_order_adherence(
    link: Relationship, train: Mapping[str, pd.DataFrame], synthetic: Mapping[str, pd.DataFrame], schema: DatasetSchema
) -> CrossRuleAdherence | None:
    """A child table's time order as a rule: each row not before the row stored above it within its parent (None
    for a child table without a time column)."""
    sequence = schema.entry(link.child).sequence
    if not sequence:
        return None
    spec = schema.entry(link.child).table.column(sequence)
    real = in_order_counts(train[link.child], link.child_key, spec)
    described = {"text": sequence_text(schema, link), "kind": SEQUENCE, "columns": [f"{link.child}.{sequence}"]}
    described |= {"status": RuleStatus.ENFORCED.value, "support": real[0]}
    return _adherence(described, real, in_order_counts(synthetic[link.child], link.child_key, spec))


def _adherence(described: dict, real: tuple[int, int], synthetic: tuple[int, int]) -> CrossRuleAdherence:
    return CrossRuleAdherence(
        **described,
        applicable=synthetic[0],
        kept=synthetic[1],
        adherence=synthetic[1] / synthetic[0] if synthetic[0] else None,
        real_applicable=real[0],
        real_kept=real[1],
        real_adherence=real[1] / real[0] if real[0] else None,
    )


def adherence_table(results: dict[str, EvaluationResult]) -> pd.DataFrame:
    """One row per rule (text, status, support) and one adherence column per backend, in the rules' order."""
    rows: dict[str, dict] = {}
    for backend, result in results.items():
        for rule in result.rules.rules:
            rows.setdefault(rule.text, {"rule": rule.text, "status": rule.status, "support": rule.support})
            rows[rule.text][backend] = rule.adherence
    return pd.DataFrame(list(rows.values()), columns=["rule", "status", "support", *results])


def _worst(measured: Iterable[RuleAdherence]) -> float | None:
    """The lowest adherence measured (None when no rule applied to any row)."""
    return min((m.adherence for m in measured if m.adherence is not None), default=None)
