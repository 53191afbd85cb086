"""Release gate: a ReleasePolicy of thresholds and the pass / flag / block decision on a result.

Privacy thresholds and an enforced cross-column rule that a synthetic row breaks block (a blocked result is
never packaged as releasable); quality, utility, anonymeter, rules measured but not enforced, and missing
measurements flag (released only after a person has read the reasons).
Each threshold is a `Limit` on a declared metric: which side of it is worse comes from the metric's
goal (evaluation.metrics), not from the threshold's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from fairsynth.metadata.dataset_rules import SEQUENCE
from fairsynth.services.run.evaluation.metrics import (
    ATTRIBUTE_INFERENCE_RISK,
    CONFIDENCE,
    DATASET_QUALITY,
    DCR_SHARE,
    ENFORCED_RULE_ADHERENCE,
    EPSILON,
    EXACT_COPIES,
    LINKABILITY_RISK,
    MIA_AUC,
    QUALITY,
    REFERENTIAL_INTEGRITY,
    RULE_ADHERENCE,
    SINGLING_OUT_RISK,
    SUBJECT_COPIES,
    SUBJECT_DCR_SHARE,
    SUBJECT_MIA_AUC,
    TIME_ORDER,
    UTILITY_RATIO,
    Goal,
    Metric,
)

if TYPE_CHECKING:
    from fairsynth.services.run.evaluation.relational_results import DatasetMeasurements
    from fairsynth.services.run.evaluation.results import ExactCopies, Measurements, RuleAdherence

Decision = Literal["pass", "flag", "block"]
SEVERITY = {"pass": 0, "flag": 1, "block": 2}


class ReleasePolicy(BaseModel):
    """Thresholds a synthetic table must meet before it is released."""

    max_exact_copies: int = Field(0, ge=0, description="synthetic rows identical to a training row allowed")
    exact_copy_tolerance: float = Field(
        0.01,
        ge=0,
        le=1,
        description="when the real table repeats its own rows, copies are blocked only if the synthetic rows "
        "match training rows at a rate this much above the rate they match holdout rows",
    )
    max_dcr_share: float = Field(0.6, ge=0, le=1, description="share of synthetic rows closer to train than holdout")
    max_mia_auc: float = Field(0.6, ge=0, le=1, description="distance-based membership-inference AUC")
    min_quality: float = Field(0.7, ge=0, le=1, description="sdmetrics overall quality score")
    min_utility_ratio: float | None = Field(0.8, ge=0, description="TSTR / TRTR of the best model; None: not checked")
    max_anonymeter_risk: float = Field(0.2, ge=0, le=1, description="any anonymeter risk (flag above)")
    max_epsilon: float | None = Field(None, gt=0, description="DP budget above which a DP run is flagged")
    max_missing_share_difference: float = Field(
        0.1,
        ge=0,
        le=1,
        description="flag a column whose share of missing values differs more than this from the real one",
    )
    min_enforced_rule_adherence: float = Field(
        1.0, ge=0, le=1, description="share of synthetic rows that must keep each enforced cross-column rule (block)"
    )
    min_rule_adherence: float = Field(
        0.95,
        ge=0,
        le=1,
        description="share of synthetic rows below which a rule measured but not enforced (implied or off) is flagged",
    )
    min_referential_integrity: float = Field(
        1.0, ge=0, le=1, description="datasets: share of synthetic child rows whose parent exists (block below)"
    )
    min_time_order: float = Field(
        1.0,
        ge=0,
        le=1,
        description="datasets: share of synthetic parents whose children are stored in time order (block below)",
    )
    flag_margin: float = Field(
        0.05, ge=0, le=1, description="flag when DCR share or MIA AUC is this close below its block threshold"
    )


class GateResult(BaseModel):
    """The release decision on one result, its reasons and the policy it was taken under."""

    decision: Decision = Field(description="pass: may be released; flag: only after review; block: never")
    reasons: list[str] = Field(description="one sentence per finding, blocking findings first")
    policy: ReleasePolicy = Field(description="the thresholds used")


@dataclass(frozen=True)
class Limit:
    """A policy threshold on a declared metric and what crossing it means."""

    metric: Metric
    policy_field: str  # the ReleasePolicy field holding the threshold
    severity: Decision  # the decision when the value is past the threshold
    required: bool = False  # flag a result that lacks the measure
    margin: bool = False  # flag a value within policy.flag_margin of the threshold

    def threshold(self, policy: ReleasePolicy) -> float | None:
        """The policy's threshold (None: not checked)."""
        return getattr(policy, self.policy_field)

    def judge(self, value: float | None, policy: ReleasePolicy) -> Decision:
        """The decision this limit alone takes on a value."""
        threshold = self.threshold(policy)
        if value is None or threshold is None:
            return "pass"
        if self.metric.beyond(value, threshold):
            return self.severity
        warning = threshold - self.metric.worse_side(threshold) * policy.flag_margin
        return "flag" if self.margin and self.metric.beyond(value, warning) else "pass"

    def policy_text(self, policy: ReleasePolicy) -> str:
        """The threshold in words, e.g. 'policy ≤ 0.60' (empty when not checked)."""
        threshold = self.threshold(policy)
        if threshold is None:
            return ""
        return f"policy {'≤' if self.metric.worse_side(threshold) > 0 else '≥'} {threshold:g}"


EXACT_COPY_LIMIT = Limit(EXACT_COPIES, "max_exact_copies", "block", required=True)
# judged rule by rule: an enforced rule against the first, a rule that is only measured against the second
ENFORCED_RULE_LIMIT = Limit(ENFORCED_RULE_ADHERENCE, "min_enforced_rule_adherence", "block")
RULE_LIMIT = Limit(RULE_ADHERENCE, "min_rule_adherence", "flag")
RULE_LIMITS = (ENFORCED_RULE_LIMIT, RULE_LIMIT)
LIMITS: tuple[Limit, ...] = (
    EXACT_COPY_LIMIT,
    ENFORCED_RULE_LIMIT,
    RULE_LIMIT,
    Limit(DCR_SHARE, "max_dcr_share", "block", required=True, margin=True),
    Limit(MIA_AUC, "max_mia_auc", "block", required=True, margin=True),
    Limit(SINGLING_OUT_RISK, "max_anonymeter_risk", "flag"),
    Limit(LINKABILITY_RISK, "max_anonymeter_risk", "flag"),
    Limit(ATTRIBUTE_INFERENCE_RISK, "max_anonymeter_risk", "flag"),
    Limit(EPSILON, "max_epsilon", "flag"),
    Limit(QUALITY, "min_quality", "flag", required=True),
    Limit(UTILITY_RATIO, "min_utility_ratio", "flag"),
)
BY_METRIC: dict[str, Limit] = {limit.metric.name: limit for limit in LIMITS}
#: a dataset run: the single-table thresholds where they apply (copies, DCR, MIA, quality) on whole subjects,
#: the cross-table rules judged rule by rule as one table's rules, plus referential integrity and within-subject order
DATASET_LIMITS: tuple[Limit, ...] = (
    Limit(SUBJECT_COPIES, "max_exact_copies", "block", required=True),
    ENFORCED_RULE_LIMIT,
    RULE_LIMIT,
    Limit(REFERENTIAL_INTEGRITY, "min_referential_integrity", "block", required=True),
    Limit(TIME_ORDER, "min_time_order", "block"),
    Limit(SUBJECT_DCR_SHARE, "max_dcr_share", "block", required=True, margin=True),
    Limit(SUBJECT_MIA_AUC, "max_mia_auc", "block", required=True, margin=True),
    Limit(DATASET_QUALITY, "min_quality", "flag", required=True),
)
BY_DATASET_METRIC: dict[str, Limit] = {limit.metric.name: limit for limit in DATASET_LIMITS}


def gate(result: Measurements, policy: ReleasePolicy | None = None) -> GateResult:
    """Decide pass / flag / block for one result's measurements; every reason is one sentence."""
    policy = policy or ReleasePolicy()
    findings: list[tuple[Decision, str]] = []
    for limit in LIMITS:
        if limit is EXACT_COPY_LIMIT:
            findings += _exact_copy_findings(result.privacy.exact_copies, policy, result.holdout_known)
        elif limit not in RULE_LIMITS:
            findings += _limit_findings(limit, result.value(limit.metric), policy, result.interval(limit.metric))
    findings += _rule_findings(result.rules.rules, policy)
    if _skipped(result.privacy.anonymeter):
        findings.append(("flag", "anonymeter risks were not measured."))
    findings += _missing_findings(result, policy)
    if not result.holdout_known:
        findings.append(
            (
                "flag",
                "No holdout was given: the real table was split for the baselines, so if the "
                "generator saw all of it the privacy comparisons understate the risk.",
            )
        )
    return _decided(findings, policy)


def dataset_gate(result: DatasetMeasurements, policy: ReleasePolicy | None = None) -> GateResult:
    """Decide pass / flag / block for a dataset run's measurements (DATASET_LIMITS)."""
    policy = policy or ReleasePolicy()
    findings = [
        finding
        for limit in DATASET_LIMITS
        if limit not in RULE_LIMITS
        for finding in _limit_findings(limit, result.value(limit.metric), policy, result.interval(limit.metric))
    ]
    # a child table's time order is listed with the rules but judged once, by the time-order limit
    findings += _rule_findings([rule for rule in result.rules.rules if rule.kind != SEQUENCE], policy)
    return _decided(findings, policy)


def _decided(findings: list[tuple[Decision, str]], policy: ReleasePolicy) -> GateResult:
    """The most severe finding's decision, with every reason, blocking ones first."""
    decision = max((d for d, _ in findings), key=SEVERITY.__getitem__, default="pass")
    reasons = [text for d, text in sorted(findings, key=lambda f: -SEVERITY[f[0]])]
    return GateResult(
        decision=decision, reasons=reasons or ["Every check in the release policy is met."], policy=policy
    )


def _limit_findings(
    limit: Limit, value: float | None, policy: ReleasePolicy, interval: list | None = None
) -> list[tuple[Decision, str]]:
    metric = limit.metric
    if value is None:
        return [("flag", f"{metric.label} was not measured.")] if limit.required else []
    decision, threshold = limit.judge(value, policy), limit.threshold(policy)
    if decision == "pass" or threshold is None:
        return []
    ideal = f" (ideal {metric.target:g})" if metric.goal is Goal.TARGET else ""
    if not metric.beyond(value, threshold):
        where = "close to"
    else:
        where = "above" if metric.worse_side(threshold) > 0 else "below"
    text = f"{metric.label} is {metric.text(value)}, {where} the policy's {threshold:.2f}{ideal}"
    if decision == "block" and metric.surely_beyond(interval, threshold) is False:
        # a small holdout: the estimate could lie on either side, so a person decides (more rows narrow it)
        low, high = interval or (None, None)
        return [
            (
                "flag",
                f"{text}, but its {CONFIDENCE:.0%} interval {metric.text(low)}–{metric.text(high)} reaches the "
                "policy's side: too few held-out rows to tell, so it is flagged for a person to judge, not blocked.",
            )
        ]
    return [(decision, f"{text}.")]


def _exact_copy_findings(copies: ExactCopies, policy: ReleasePolicy, holdout_known: bool) -> list:
    if copies.count is None:
        return [("flag", "Exact copies were not measured.")]
    holdout_rate = copies.holdout_rate or 0.0  # without a known holdout, count holds copies of any real row
    decision = EXACT_COPY_LIMIT.judge(copies.count, policy)
    if decision == "pass":
        return []
    text = (
        f"{copies.count:,} synthetic rows ({copies.rate:.2%}) are exact copies of "
        f"{'training' if holdout_known else 'real'} rows "
        f"(policy allows {policy.max_exact_copies})"
    )
    if (copies.real_repeat_rate or 0.0) > 0 and (copies.rate or 0.0) <= holdout_rate + policy.exact_copy_tolerance:
        return [
            (
                "flag",
                text + f", but the real table repeats its own rows ({copies.real_repeat_rate:.2%} of "
                f"holdout rows occur in train) and synthetic rows match unseen holdout rows as often "
                f"({copies.holdout_rate:.2%}); check these rows are not identifying.",
            )
        ]
    return [(decision, text + ".")]


def rule_limit(rule: RuleAdherence) -> Limit:
    """The limit one rule is judged by: an enforced rule blocks below its threshold, a measured-only rule flags."""
    return ENFORCED_RULE_LIMIT if rule.enforced else RULE_LIMIT


def _rule_findings(rules: list[RuleAdherence], policy: ReleasePolicy) -> list[tuple[Decision, str]]:
    """One finding per rule kept in too few synthetic rows: an enforced rule blocks, a measured-only rule flags."""
    findings: list[tuple[Decision, str]] = []
    for rule in rules:
        limit = rule_limit(rule)
        decision = limit.judge(rule.adherence, policy)
        if decision != "pass":
            broken = rule.applicable - rule.kept
            what = "The enforced rule" if limit is ENFORCED_RULE_LIMIT else f"The rule ({rule.status}, not enforced)"
            findings.append(
                (
                    decision,
                    f"{what} '{rule.text}' is kept in {rule.adherence:.2%} of the synthetic rows it applies to "
                    f"({broken:,} of {rule.applicable:,} break it), below the policy's {limit.threshold(policy):.0%}.",
                )
            )
    return findings


def _skipped(block) -> bool:
    return block is not None and hasattr(block, "skipped")


def _missing_findings(result: Measurements, policy: ReleasePolicy) -> list:
    """Columns absent from the synthetic table, and columns whose share of missing values is off."""
    quality = result.quality
    findings = []
    if quality.missing_columns:
        findings.append(
            ("flag", f"The synthetic table lacks these columns of the real one: {', '.join(quality.missing_columns)}.")
        )
    off = [
        f"{name} ({column.missing_share_difference:.0%})"
        for name, column in quality.columns.items()
        if column.missing_share_difference is not None
        and column.missing_share_difference > policy.max_missing_share_difference
    ]
    if off:
        findings.append(
            (
                "flag",
                "The share of missing values differs from the real table by more than "
                f"{policy.max_missing_share_difference:.0%} in: {', '.join(off)}.",
            )
        )
    return findings
