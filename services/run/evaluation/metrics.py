"""Every headline measure declared once: what it means, its range and which way is better.

As sdmetrics declares `goal`, `min_value` and `max_value` on each metric class, a `Metric` here says
whether a value is better high (maximize), low (minimize) or near a target (DCR share and
membership-inference AUC: 0.5). The result models (evaluation.results) attach each declaration to
the field that holds it; the gate, the report, the comparison, the recommendation, the UI and the
crate read the declaration instead of deciding the direction again.
"""

from __future__ import annotations

import math
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, model_validator


class Goal(StrEnum):
    """Which way a measure is better."""

    MAXIMIZE = "maximize"
    MINIMIZE = "minimize"
    TARGET = "target"


class Family(StrEnum):
    """What a measure is about."""

    QUALITY = "quality"
    PRIVACY = "privacy"
    UTILITY = "utility"
    SPEED = "speed"


class Metric(BaseModel):
    """One headline measure: its name (the comparison column), label, goal, range and meaning."""

    model_config = ConfigDict(frozen=True)

    name: str
    label: str
    family: Family
    goal: Goal
    meaning: str
    target: float | None = None
    min_value: float = 0.0
    max_value: float = 1.0
    format: str = "%.3f"  # printf style: read by Python (`%`) and by Streamlit's column config

    @model_validator(mode="after")
    def _target_within_range(self) -> Metric:
        if (self.goal is Goal.TARGET) != (self.target is not None):
            raise ValueError(f"{self.name}: a target value is given exactly when the goal is 'target'.")
        if self.target is not None and not self.min_value <= self.target <= self.max_value:
            raise ValueError(
                f"{self.name}: the target {self.target} lies outside [{self.min_value}, {self.max_value}]."
            )
        return self

    @property
    def goal_text(self) -> str:
        """The goal in words, e.g. 'higher is better' or 'closest to 0.5 is best'."""
        if self.goal is Goal.TARGET:
            return f"closest to {self.target:g} is best"
        return "higher is better" if self.goal is Goal.MAXIMIZE else "lower is better"

    def score(self, value: float) -> float:
        """The value on a scale where higher is always better (for ranking results)."""
        if self.target is not None:  # given exactly when the goal is 'target' (validated above)
            return -abs(value - self.target)
        return value if self.goal is Goal.MAXIMIZE else -value

    def better(self, value: float, other: float) -> bool:
        """True when `value` is strictly better than `other`."""
        return self.score(value) > self.score(other)

    def score_range(self, low: float, high: float) -> tuple[float, float]:
        """The worst and best score (see `score`) of the values in [low, high]."""
        worst, best = sorted((self.score(low), self.score(high)))
        if self.target is not None and low <= self.target <= high:
            best = 0.0  # the target itself lies inside
        return worst, best

    def tied(self, interval: list | tuple | None, other: list | tuple | None) -> bool:
        """True when both intervals are known and neither is surely better: their score ranges overlap (two
        DCR shares 0.45 and 0.55 are equally far from 0.5, so tied however narrow their intervals)."""
        if not interval or not other or None in interval or None in other:
            return False
        (worst, best), (other_worst, other_best) = self.score_range(*interval), self.score_range(*other)
        return worst <= other_best and other_worst <= best

    def worse_side(self, limit: float) -> int:
        """+1 when values above `limit` are the worse ones, -1 when values below it are."""
        if self.target is not None:
            return 1 if limit >= self.target else -1
        return -1 if self.goal is Goal.MAXIMIZE else 1

    def beyond(self, value: float, limit: float) -> bool:
        """True when `value` lies past `limit` on the side away from the best value."""
        return (value - limit) * self.worse_side(limit) > 0

    def surely_beyond(self, interval: list | tuple | None, limit: float) -> bool | None:
        """Whether the whole interval lies past `limit` (None when the interval is unknown)."""
        if not interval or None in interval:
            return None
        return all(self.beyond(end, limit) for end in interval)

    def text(self, value: float | None, missing: str = "–") -> str:
        """The value formatted for people; `missing` when it was not measured."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return missing
        return self.format % value


INF = math.inf
CONFIDENCE = 0.95  # two-sided level of every interval next to a headline figure (bootstrap, anonymeter)

# -- quality --------------------------------------------------------------------------------------
QUALITY = Metric(
    name="quality",
    label="Quality",
    family=Family.QUALITY,
    goal=Goal.MAXIMIZE,
    meaning="sdmetrics QualityReport overall score: the mean of column shapes and column pair trends",
)
COLUMN_SHAPES = Metric(
    name="column_shapes",
    label="Column shapes",
    family=Family.QUALITY,
    goal=Goal.MAXIMIZE,
    meaning="how closely each synthetic column's distribution follows the real one (sdmetrics)",
)
COLUMN_PAIR_TRENDS = Metric(
    name="column_pair_trends",
    label="Column pair trends",
    family=Family.QUALITY,
    goal=Goal.MAXIMIZE,
    meaning="how closely the associations between pairs of columns are kept (sdmetrics)",
)
QA_ACCURACY = Metric(
    name="qa_accuracy",
    label="Accuracy (mostlyai-qa)",
    family=Family.QUALITY,
    goal=Goal.MAXIMIZE,
    meaning="mostlyai-qa accuracy, a second evaluator independent of sdmetrics: 1 − total variation distance over "
    "binned univariate and bivariate distributions (measured only when asked for; never picks a backend alone)",
)
DIAGNOSTIC = Metric(
    name="diagnostic",
    label="Diagnostic",
    family=Family.QUALITY,
    goal=Goal.MAXIMIZE,
    meaning="sdmetrics DiagnosticReport score: values within the real ranges and categories, same structure",
)
ASSOCIATION_DIFFERENCE = Metric(
    name="association_difference",
    label="Association difference",
    family=Family.QUALITY,
    goal=Goal.MINIMIZE,
    meaning="mean |real − synthetic| association over column pairs (|Spearman|, Cramér's V, η)",
)
ENFORCED_RULE_ADHERENCE = Metric(
    name="enforced_rule_adherence",
    label="Enforced rules kept (worst)",
    family=Family.QUALITY,
    goal=Goal.MAXIMIZE,
    format="%.4f",
    meaning="lowest share, over the enforced cross-column rules of the real table, of the synthetic rows a rule "
    "applies to that keep it (e.g. discharge_date >= admission_date; for several tables each table's own rules, "
    "e.g. pbcseq.futime >= pbcseq.day, and the cross-table rules, e.g. visits.date >= patients.admission_date, on "
    "the child rows); every enforced rule should be kept in 100%",
)
RULE_ADHERENCE = Metric(
    name="rule_adherence",
    label="Rules kept (worst)",
    family=Family.QUALITY,
    goal=Goal.MAXIMIZE,
    format="%.4f",
    meaning="lowest share, over every cross-column rule detected or added (enforced, implied by the ranges, or "
    "turned off; for several tables each table's own rules, every cross-table rule and each child table's time "
    "order), of the synthetic "
    "rows a rule applies to that keep it",
)
# -- privacy --------------------------------------------------------------------------------------
EXACT_COPIES = Metric(
    name="exact_copies",
    label="Exact copies of training rows",
    family=Family.PRIVACY,
    goal=Goal.MINIMIZE,
    max_value=INF,
    format="%d",
    meaning="synthetic rows identical to a training row, counted over every synthetic row",
)
EXACT_COPY_RATE = Metric(
    name="exact_copy_rate",
    label="Exact copy rate",
    family=Family.PRIVACY,
    goal=Goal.MINIMIZE,
    format="%.4f",
    meaning="share of synthetic rows identical to a training row",
)
DCR_SHARE = Metric(
    name="dcr_share",
    label="DCR share",
    family=Family.PRIVACY,
    goal=Goal.TARGET,
    target=0.5,
    meaning="share of synthetic rows closer to a training row than to a holdout row (ties count half)",
)
MIA_AUC = Metric(
    name="mia_auc",
    label="Membership-inference AUC",
    family=Family.PRIVACY,
    goal=Goal.TARGET,
    target=0.5,
    meaning="AUC of a distance attack telling training rows from holdout rows; 0.5 = no signal",
)
NNDR = Metric(
    name="nndr",
    label="NNDR (median)",
    family=Family.PRIVACY,
    goal=Goal.MAXIMIZE,
    meaning="median ratio of each synthetic row's nearest to second-nearest training distance; near 1 = no "
    "training row stands out",
)
SINGLING_OUT_RISK = Metric(
    name="singling_out_risk",
    label="Singling-out risk",
    family=Family.PRIVACY,
    goal=Goal.MINIMIZE,
    meaning="anonymeter: success of singling out a training row beyond the success on holdout rows",
)
LINKABILITY_RISK = Metric(
    name="linkability_risk",
    label="Linkability risk",
    family=Family.PRIVACY,
    goal=Goal.MINIMIZE,
    meaning="anonymeter: success of linking two halves of a training row's columns beyond the holdout baseline",
)
ATTRIBUTE_INFERENCE_RISK = Metric(
    name="attribute_inference_risk",
    label="Attribute-inference risk",
    family=Family.PRIVACY,
    goal=Goal.MINIMIZE,
    meaning="anonymeter: highest success of inferring a secret column of a training row, over the secrets tried",
)
EPSILON = Metric(
    name="epsilon",
    label="DP ε",
    family=Family.PRIVACY,
    goal=Goal.MINIMIZE,
    max_value=INF,
    format="%.2f",
    meaning="differential-privacy budget the fit spent (empty: not differentially private)",
)
# -- utility --------------------------------------------------------------------------------------
TSTR = Metric(
    name="tstr",
    label="TSTR",
    family=Family.UTILITY,
    goal=Goal.MAXIMIZE,
    min_value=-INF,
    meaning="score on real holdout rows of the best model trained on synthetic rows (balanced accuracy or R²)",
)
TRTR = Metric(
    name="trtr",
    label="TRTR",
    family=Family.UTILITY,
    goal=Goal.MAXIMIZE,
    min_value=-INF,
    meaning="the same model trained on real training rows: the reference TSTR is measured against",
)
UTILITY_RATIO = Metric(
    name="utility_ratio",
    label="Utility TSTR/TRTR",
    family=Family.UTILITY,
    goal=Goal.MAXIMIZE,
    min_value=-INF,
    max_value=INF,
    meaning="TSTR / TRTR of the best model: 1 = as useful as the real rows for predicting the target",
)
# -- speed ----------------------------------------------------------------------------------------
FIT_SECONDS = Metric(
    name="fit_seconds",
    label="Fit seconds",
    family=Family.SPEED,
    goal=Goal.MINIMIZE,
    max_value=INF,
    format="%.1f",
    meaning="wall time the backend took to fit the training rows",
)
ROWS_PER_SECOND = Metric(
    name="rows_per_second",
    label="Rows per second",
    family=Family.SPEED,
    goal=Goal.MAXIMIZE,
    max_value=INF,
    format="%.0f",
    meaning="synthetic rows sampled and written per second",
)

# -- datasets (several tables; evaluation.relational, evaluation.subjects) -----------------------------
DATASET_QUALITY = Metric(
    name="dataset_quality",
    label="Dataset quality",
    family=Family.QUALITY,
    goal=Goal.MAXIMIZE,
    meaning="sdmetrics multi-table QualityReport overall score: the mean of column shapes, column pair trends, "
    "cardinality and intertable trends over every table and relationship",
)
CARDINALITY = Metric(
    name="cardinality",
    label="Cardinality",
    family=Family.QUALITY,
    goal=Goal.MAXIMIZE,
    meaning="how closely the number of children per parent follows the real one, over the relationships (sdmetrics)",
)
INTERTABLE_TRENDS = Metric(
    name="intertable_trends",
    label="Intertable trends",
    family=Family.QUALITY,
    goal=Goal.MAXIMIZE,
    meaning="how closely the associations between a parent's columns and its children's columns are kept (sdmetrics)",
)
REFERENTIAL_INTEGRITY = Metric(
    name="referential_integrity",
    label="Referential integrity (worst)",
    family=Family.QUALITY,
    goal=Goal.MAXIMIZE,
    format="%.4f",
    meaning="lowest share, over the relationships, of synthetic child rows whose parent exists",
)
TIME_ORDER = Metric(
    name="time_order",
    label="Within-subject order (worst)",
    family=Family.QUALITY,
    goal=Goal.MAXIMIZE,
    format="%.4f",
    meaning="lowest share, over the child tables with a time column, of synthetic parents whose children are "
    "stored in time order",
)
TRAJECTORY_KS = Metric(
    name="trajectory_ks",
    label="Trajectory KS (mean)",
    family=Family.QUALITY,
    goal=Goal.MINIMIZE,
    meaning="mean Kolmogorov-Smirnov statistic, over the numeric columns of child tables with a time column, "
    "between the real and synthetic changes of a value from one row to the next within a parent (0: the same)",
)
SUBJECT_COPIES = Metric(
    name="subject_copies",
    label="Exact copies of training subjects",
    family=Family.PRIVACY,
    goal=Goal.MINIMIZE,
    max_value=INF,
    format="%d",
    meaning="synthetic subjects whose whole history (the root row and every descendant row, keys ignored) equals "
    "a training subject's",
)
SUBJECT_COPY_RATE = Metric(
    name="subject_copy_rate",
    label="Subject copy rate",
    family=Family.PRIVACY,
    goal=Goal.MINIMIZE,
    format="%.4f",
    meaning="share of synthetic subjects whose whole history equals a training subject's",
)
SUBJECT_DCR_SHARE = Metric(
    name="subject_dcr_share",
    label="Subject DCR share",
    family=Family.PRIVACY,
    goal=Goal.TARGET,
    target=0.5,
    meaning="share of synthetic subjects whose summary (root columns; per child table the row count and each "
    "number's mean and last value) is closer to a training subject's than to a holdout subject's (ties count half)",
)
SUBJECT_NNDR = Metric(
    name="subject_nndr",
    label="Subject NNDR (median)",
    family=Family.PRIVACY,
    goal=Goal.MAXIMIZE,
    meaning="median ratio of each synthetic subject summary's nearest to second-nearest training distance",
)
SUBJECT_MIA_AUC = Metric(
    name="subject_mia_auc",
    label="Subject membership-inference AUC",
    family=Family.PRIVACY,
    goal=Goal.TARGET,
    target=0.5,
    meaning="AUC of a distance attack on subject summaries telling training subjects from subjects held out whole; "
    "0.5 = no signal",
)

METRICS: tuple[Metric, ...] = (
    QUALITY,
    QA_ACCURACY,
    COLUMN_SHAPES,
    COLUMN_PAIR_TRENDS,
    DIAGNOSTIC,
    ASSOCIATION_DIFFERENCE,
    ENFORCED_RULE_ADHERENCE,
    RULE_ADHERENCE,
    EXACT_COPIES,
    EXACT_COPY_RATE,
    DCR_SHARE,
    MIA_AUC,
    NNDR,
    SINGLING_OUT_RISK,
    LINKABILITY_RISK,
    ATTRIBUTE_INFERENCE_RISK,
    EPSILON,
    TSTR,
    TRTR,
    UTILITY_RATIO,
    FIT_SECONDS,
    ROWS_PER_SECOND,
)
BY_NAME: dict[str, Metric] = {metric.name: metric for metric in METRICS}
#: the headline measures of a dataset run (evaluation.relational_results), apart from the single-table METRICS
DATASET_METRICS: tuple[Metric, ...] = (
    DATASET_QUALITY,
    COLUMN_SHAPES,
    COLUMN_PAIR_TRENDS,
    CARDINALITY,
    INTERTABLE_TRENDS,
    REFERENTIAL_INTEGRITY,
    TIME_ORDER,
    TRAJECTORY_KS,
    ENFORCED_RULE_ADHERENCE,
    RULE_ADHERENCE,
    SUBJECT_COPIES,
    SUBJECT_COPY_RATE,
    SUBJECT_DCR_SHARE,
    SUBJECT_NNDR,
    SUBJECT_MIA_AUC,
)
