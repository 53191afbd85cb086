"""Rule adherence: the share of synthetic rows keeping each cross-column rule of the real table.

Every rule of the schema is measured whatever its status (enforced, implied, off), on every synthetic row the
evaluation holds; what a rule says and which rows it applies to is metadata.rule_checks' one definition.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from fairsynth.metadata.rule_checks import rule_counts
from fairsynth.metadata.rules import Rule
from fairsynth.metadata.schema import TableSchema
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
