"""Release gate: a ReleasePolicy of thresholds and the pass / flag / block decision on metrics.json.

Privacy thresholds block (a blocked result is never packaged as releasable); quality, utility,
anonymeter and missing measurements flag (released only after a person has read the reasons).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

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
    flag_margin: float = Field(
        0.05, ge=0, le=1, description="flag when DCR share or MIA AUC is this close below its block threshold"
    )


def gate(metrics: dict, policy: ReleasePolicy | None = None) -> dict:
    """Decide pass / flag / block for one result's metrics; every reason is one sentence."""
    policy = policy or ReleasePolicy()
    findings: list[tuple[Decision, str]] = []
    privacy = metrics.get("privacy") or {}
    findings += _exact_copy_findings(privacy.get("exact_copies"), policy, metrics.get("holdout_known", True))
    findings += _distance_findings(privacy, policy)
    findings += _anonymeter_findings(privacy.get("anonymeter"), policy)
    findings += _dp_findings(privacy.get("dp"), policy)
    findings += _quality_findings(metrics.get("quality"), policy)
    findings += _utility_findings(metrics.get("utility"), policy)
    if metrics.get("holdout_known") is False:
        findings.append(
            (
                "flag",
                "No holdout was given: the real table was split for the baselines, so if the "
                "generator saw all of it the privacy comparisons understate the risk.",
            )
        )
    decision = max((d for d, _ in findings), key=SEVERITY.__getitem__, default="pass")
    reasons = [text for d, text in sorted(findings, key=lambda f: -SEVERITY[f[0]])]
    return {
        "decision": decision,
        "reasons": reasons or ["Every check in the release policy is met."],
        "policy": policy.model_dump(),
    }


def _exact_copy_findings(copies: dict | None, policy: ReleasePolicy, holdout_known: bool) -> list:
    if not copies:
        return [("flag", "Exact copies were not measured.")]
    if not holdout_known:  # the generator may have seen the "holdout" half too: a copy of any real row counts
        copies = copies | {
            "count": copies["count"] + copies["holdout_count"],
            "rate": copies["rate"] + copies["holdout_rate"],
            "real_repeat_rate": 0.0,
        }
    if copies["count"] <= policy.max_exact_copies:
        return []
    text = (
        f"{copies['count']:,} synthetic rows ({copies['rate']:.2%}) are exact copies of "
        f"{'training' if holdout_known else 'real'} rows "
        f"(policy allows {policy.max_exact_copies})"
    )
    if copies.get("real_repeat_rate", 0) > 0 and copies["rate"] <= copies["holdout_rate"] + policy.exact_copy_tolerance:
        return [
            (
                "flag",
                text + f", but the real table repeats its own rows ({copies['real_repeat_rate']:.2%} of "
                f"holdout rows occur in train) and synthetic rows match unseen holdout rows as often "
                f"({copies['holdout_rate']:.2%}); check these rows are not identifying.",
            )
        ]
    return [("block", text + ".")]


def _distance_findings(privacy: dict, policy: ReleasePolicy) -> list:
    findings = []
    checks = [
        (
            "DCR share (synthetic rows closer to train than to holdout)",
            (privacy.get("dcr") or {}).get("share_closer_to_train"),
            policy.max_dcr_share,
        ),
        ("Membership-inference AUC", (privacy.get("membership_inference") or {}).get("auc"), policy.max_mia_auc),
    ]
    for label, value, limit in checks:
        if value is None:
            findings.append(("flag", f"{label} was not measured."))
        elif value > limit:
            findings.append(("block", f"{label} is {value:.3f}, above the policy's {limit:.2f} (ideal 0.5)."))
        elif value > limit - policy.flag_margin:
            findings.append(("flag", f"{label} is {value:.3f}, close to the policy's {limit:.2f} (ideal 0.5)."))
    return findings


def _anonymeter_findings(anonymeter: dict | None, policy: ReleasePolicy) -> list:
    if not anonymeter or "skipped" in anonymeter:
        return [("flag", "anonymeter risks were not measured.")] if anonymeter else []
    risks = {
        "singling-out": anonymeter.get("singling_out", {}).get("risk"),
        "linkability": anonymeter.get("linkability", {}).get("risk"),
        "attribute-inference": anonymeter.get("attribute_inference", {}).get("max_risk"),
    }
    return [
        ("flag", f"anonymeter {name} risk is {value:.3f}, above the policy's {policy.max_anonymeter_risk:.2f}.")
        for name, value in risks.items()
        if value is not None and value > policy.max_anonymeter_risk
    ]


def _dp_findings(dp: dict | None, policy: ReleasePolicy) -> list:
    epsilon = (dp or {}).get("epsilon")
    if policy.max_epsilon is None or epsilon is None or epsilon <= policy.max_epsilon:
        return []
    return [("flag", f"The DP budget ε = {epsilon:.2f} is above the policy's {policy.max_epsilon:.2f}.")]


def _quality_findings(quality: dict | None, policy: ReleasePolicy) -> list:
    quality = quality or {}
    score = quality.get("quality")
    if score is None:
        return [("flag", "The quality score was not measured.")]
    findings = []
    if score < policy.min_quality:
        findings.append(("flag", f"Quality is {score:.3f}, below the policy's {policy.min_quality:.2f}."))
    if quality.get("missing_columns"):
        findings.append(
            (
                "flag",
                f"The synthetic table lacks these columns of the real one: {', '.join(quality['missing_columns'])}.",
            )
        )
    gaps = {name: c.get("missing_share_difference") for name, c in (quality.get("columns") or {}).items()}
    off = [
        f"{name} ({gap:.0%})"
        for name, gap in gaps.items()
        if gap is not None and gap > policy.max_missing_share_difference
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


def _utility_findings(utility: dict | None, policy: ReleasePolicy) -> list:
    if policy.min_utility_ratio is None or not utility or "skipped" in utility:
        return []
    ratios = [m["ratio"] for m in utility.get("models", {}).values() if m.get("ratio") is not None]
    if ratios and max(ratios) < policy.min_utility_ratio:
        return [
            (
                "flag",
                f"Utility: the best TSTR/TRTR ratio is {max(ratios):.2f}, below the policy's "
                f"{policy.min_utility_ratio:.2f}.",
            )
        ]
    return []
