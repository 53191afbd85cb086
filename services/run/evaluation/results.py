"""The typed result of an evaluation: one model per metric family, written as evaluation/metrics.json.

The field descriptions are the documentation of metrics.json. A field that holds a headline measure
is declared with `measure(METRIC)`: its description, goal and range come from the Metric declared
in evaluation.metrics, and `EvaluationResult.value(METRIC)` finds it. Keys that only some results
have (a skipped block, the holdout-based privacy measures) are left out of the JSON when absent;
every other key is always written, null when it could not be measured.

Read a metrics.json file with `EvaluationResult.model_validate_json(text)`.
"""

from __future__ import annotations

import math
import numbers
import types
import typing
from functools import cache
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, computed_field
from pydantic.json_schema import JsonDict

from fairsynth.metadata.rules import RuleStatus
from fairsynth.services.run.evaluation.gate import GateResult
from fairsynth.services.run.evaluation.metrics import (
    ASSOCIATION_DIFFERENCE,
    ATTRIBUTE_INFERENCE_RISK,
    COLUMN_PAIR_TRENDS,
    COLUMN_SHAPES,
    CONFIDENCE,
    DCR_SHARE,
    DIAGNOSTIC,
    ENFORCED_RULE_ADHERENCE,
    EPSILON,
    EXACT_COPIES,
    EXACT_COPY_RATE,
    FIT_SECONDS,
    LINKABILITY_RISK,
    METRICS,
    MIA_AUC,
    NNDR,
    QA_ACCURACY,
    QUALITY,
    ROWS_PER_SECOND,
    RULE_ADHERENCE,
    SINGLING_OUT_RISK,
    TRTR,
    TSTR,
    UTILITY_RATIO,
    Metric,
)

METRICS_VERSION = 1


def _finite(value: Any) -> Any:
    """Floats (numpy's too) as plain floats; NaN and infinities become None (a missing measure is null)."""
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


Number = Annotated[float | None, BeforeValidator(_finite)]


def measure(metric: Metric) -> Any:
    """The field of a headline measure: described by its declaration, null when not measured."""
    bounds = {"minimum": metric.min_value, "maximum": metric.max_value}
    extra: JsonDict = {"metric": metric.name, "goal": metric.goal.value, "target": metric.target}
    return Field(
        None,
        description=f"{metric.meaning} ({metric.goal_text})",
        json_schema_extra=extra | {key: bound for key, bound in bounds.items() if math.isfinite(bound)},
    )


def interval(metric: Metric) -> Any:
    """The field of a headline measure's bootstrap interval [low, high] (evaluation.bootstrap), null when unknown."""
    return Field(
        None,
        description=f"{CONFIDENCE:.0%} bootstrap interval [low, high] of {metric.name} (evaluation.bootstrap)",
        json_schema_extra={"interval_of": metric.name},
    )


def optional(description: str) -> Any:
    """A field left out of the JSON when absent."""
    return Field(None, description=description, exclude_if=lambda value: value is None)


class Block(BaseModel):
    """A part of metrics.json."""

    model_config = ConfigDict(extra="ignore")


class Skipped(Block):
    """A block or attack that could not be measured, and why."""

    skipped: str = Field(description="one sentence: why it was not measured and what to do")


# -- quality --------------------------------------------------------------------------------------
class ReferenceScores(Block):
    """The holdout's quality against the training rows: what a perfect generator reaches."""

    quality: Number = None
    column_shapes: Number = None
    column_pair_trends: Number = None


class DiagnosticScores(Block):
    """sdmetrics DiagnosticReport on the learned columns."""

    score: Number = measure(DIAGNOSTIC)
    validity: Number = Field(None, description="values inside the real ranges and categories")
    structure: Number = Field(None, description="the same columns as the real table")


class RangeFidelity(Block):
    """Numbers and dates (as days since 1970): real and synthetic range, share of values outside."""

    real_min: Number = None
    real_max: Number = None
    synthetic_min: Number = None
    synthetic_max: Number = None
    outside_share: Number = Field(None, description="synthetic values outside the real range")
    coverage: Number = Field(None, description="share of the real range the synthetic range overlaps")
    real_min_date: str | None = optional("dates: real_min as an ISO date")
    real_max_date: str | None = optional("dates: real_max as an ISO date")
    synthetic_min_date: str | None = optional("dates: synthetic_min as an ISO date")
    synthetic_max_date: str | None = optional("dates: synthetic_max as an ISO date")


class CategoryCoverage(Block):
    """Categories of the real column missing from the synthetic one (lost) and the reverse (invented)."""

    real_levels: int
    synthetic_levels: int
    lost: int
    invented: int
    lost_examples: list[str] = Field(
        default_factory=list, description="up to 20 lost categories that the data dictionary lists"
    )
    invented_examples: list[str] = Field(default_factory=list, description="up to 20 invented categories")
    invented_share: Number = Field(None, description="synthetic rows holding an invented category")


class ColumnFidelity(Block):
    """One column: shape score, validity, missing shares, and its range or its categories."""

    kind: str
    shape_score: Number = None
    validity: Number = None
    missing_share_real: Number = None
    missing_share_synthetic: Number = None
    missing_share_difference: Number = None
    range: RangeFidelity | None = optional("numbers and dates")
    categories: CategoryCoverage | None = optional("categories and booleans")


class Association(Block):
    """Pairwise association matrices (|Spearman|, Cramér's V, η) of the real and synthetic columns."""

    columns: list[str] = Field(default_factory=list)
    real: list[list[float]] = Field(default_factory=list)
    synthetic: list[list[float]] = Field(default_factory=list)
    mean_abs_difference: Number = measure(ASSOCIATION_DIFFERENCE)


class QualitySampleSizes(Block):
    """Rows used by sdmetrics and by the association matrices."""

    real: int
    synthetic: int
    association_rows: int


class SkippedPair(Block):
    """A column pair the quality score could not count, and why."""

    columns: list[str]
    reason: str


class SecondEvaluator(Block):
    """mostlyai-qa's scores of the same training, holdout and synthetic rows (run in the MOSTLY AI venv)."""

    accuracy: Number = Field(None, description="overall accuracy: mean of the univariate and bivariate accuracies")
    univariate: Number = Field(None, description="1 − TVD of each column's binned distribution, averaged")
    bivariate: Number = Field(None, description="1 − TVD of each column pair's binned distribution, averaged")
    dcr_share: Number = Field(None, description="mostlyai-qa's share of synthetic rows closer to training than holdout")
    packages: dict[str, str] = Field(default_factory=dict, description="versions in the MOSTLY AI venv")


class QualityResult(Block):
    """How closely the synthetic columns and column pairs follow the training table."""

    quality: Number = measure(QUALITY)
    quality_interval: list[Number] | None = interval(QUALITY)
    column_shapes: Number = measure(COLUMN_SHAPES)
    column_pair_trends: Number = measure(COLUMN_PAIR_TRENDS)
    qa_accuracy: Number = measure(QA_ACCURACY)
    second_evaluator: SecondEvaluator | Skipped | None = optional("mostlyai-qa's scores, when asked for")
    pairs_scored: int = Field(0, description="column pairs sdmetrics scored (every pair counts)")
    pairs_total: int = 0
    pairs_skipped: list[SkippedPair] = Field(default_factory=list, description="pairs left without a score, and why")
    missing_columns: list[str] = Field(
        default_factory=list, description="learned columns of the real table absent from the synthetic one"
    )
    columns_left_out: dict[str, str] = Field(
        default_factory=dict, description="columns of the real table the score leaves out, each with why"
    )
    diagnostic: DiagnosticScores | None = None
    holdout_reference: ReferenceScores | None = None
    columns: dict[str, ColumnFidelity] = Field(default_factory=dict, description="per compared column")
    association: Association | None = None
    sample_sizes: QualitySampleSizes | None = None


# -- rules ----------------------------------------------------------------------------------------
class RuleAdherence(Block):
    """One cross-column rule of the schema and the synthetic rows that keep it."""

    text: str = Field(description="the rule as a person writes it, e.g. 'discharge_date >= admission_date'")
    kind: str = Field(description="order, difference, sum, determines, missing_together, missing_when, text_form")
    columns: list[str] = Field(description="the columns the rule ties, in the kind's order")
    status: str = Field(description="enforced (kept by the codec; below 100% blocks release), implied or off")
    support: int = Field(0, description="real rows that have the rule's columns (what detection counted)")
    applicable: int = Field(0, description="synthetic rows the rule applies to")
    kept: int = Field(0, description="synthetic rows, of those, that keep the rule")
    adherence: Number = Field(None, description="kept / applicable; null when the rule applies to no synthetic row")
    note: str | None = optional("why the rule could not be measured")

    @property
    def enforced(self) -> bool:
        """True when the codec keeps this rule, so that a synthetic row breaking it blocks release."""
        return self.status == RuleStatus.ENFORCED


class RulesResult(Block):
    """The real table's cross-column rules (schema.rules, every status) measured on the synthetic rows."""

    rows: int = Field(0, description="synthetic rows checked (every row the evaluation holds)")
    rules: list[RuleAdherence] = Field(default_factory=list)
    worst_enforced: Number = measure(ENFORCED_RULE_ADHERENCE)
    worst: Number = measure(RULE_ADHERENCE)

    def of_column(self, name: str) -> list[RuleAdherence]:
        """The rules a column takes part in."""
        return [rule for rule in self.rules if name in rule.columns]


# -- privacy --------------------------------------------------------------------------------------
class ExactCopies(Block):
    """Synthetic rows equal to a real row, over every synthetic row."""

    count: int | None = measure(EXACT_COPIES)
    rate: Number = measure(EXACT_COPY_RATE)
    holdout_count: int = Field(0, description="synthetic rows equal to a holdout row")
    holdout_rate: Number = 0.0
    real_repeat_rate: Number = Field(0.0, description="holdout rows equal to a training row")
    synthetic_rows_checked: int = 0

    def of_any_real_row(self) -> ExactCopies:
        """Copies of a training or holdout row as the count: where the holdout is no known unseen half, the
        generator may have seen those rows too (evaluate_files without a holdout)."""
        if self.count is None:
            return self
        return self.model_copy(
            update={
                "count": self.count + self.holdout_count,
                "rate": (self.rate or 0.0) + (self.holdout_rate or 0.0),
                "real_repeat_rate": 0.0,
            }
        )


class Distribution(Block):
    """A distance distribution: quantiles, share of zero distances, histogram over the shared edges."""

    quantiles: dict[str, float]
    zero_share: float
    histogram: list[int]


class DistanceToClosestRecord(Block):
    """Distances to the closest training and holdout rows."""

    share_closer_to_train: Number = measure(DCR_SHARE)
    share_interval: list[Number] | None = interval(DCR_SHARE)
    synthetic_to_train: Distribution
    synthetic_to_holdout: Distribution
    holdout_to_train: Distribution = Field(description="the real baseline: holdout rows to training rows")
    histogram_edges: list[float]


class RatioSummary(Block):
    """Nearest / second-nearest training distance ratios."""

    median: Number = None
    quantiles: dict[str, float] = Field(default_factory=dict)


class SyntheticRatios(RatioSummary):
    """The synthetic rows' ratios."""

    median: Number = measure(NNDR)


class NearestNeighbourRatio(Block):
    """NNDR of the synthetic rows beside the holdout's own."""

    synthetic: SyntheticRatios
    holdout: RatioSummary


class MembershipInference(Block):
    """A distance attack: training rows (members) vs holdout rows (non-members)."""

    auc: Number = measure(MIA_AUC)
    auc_interval: list[Number] | None = interval(MIA_AUC)
    members: int
    non_members: int
    median_distance_members: Number = None
    median_distance_non_members: Number = None


class AttackRisk(Block):
    """One anonymeter attack: risk with its interval, and the attack, baseline and control rates."""

    risk: Number = None
    ci_low: Number = None
    ci_high: Number = None
    attack_rate: Number = None
    baseline_rate: Number = None
    control_rate: Number = None


class SinglingOut(AttackRisk):
    """anonymeter singling-out attack."""

    mode: str
    risk: Number = measure(SINGLING_OUT_RISK)


class Linkability(AttackRisk):
    """anonymeter linkability attack between two halves of the columns."""

    aux_columns: list[list[str]]
    risk: Number = measure(LINKABILITY_RISK)


class AttributeInference(Block):
    """anonymeter attribute-inference attacks, one per secret column."""

    secrets: dict[str, AttackRisk | Skipped]
    max_risk: Number = measure(ATTRIBUTE_INFERENCE_RISK)


class AnonymeterRows(Block):
    """Rows given to anonymeter."""

    train: int
    holdout: int
    synthetic: int


class Anonymeter(Block):
    """anonymeter risks with confidence intervals (train = original, holdout = control)."""

    n_attacks: int
    rows: AnonymeterRows
    confidence_level: float
    singling_out: SinglingOut | Skipped
    linkability: Linkability | Skipped
    attribute_inference: AttributeInference


class DifferentialPrivacy(Block):
    """The privacy budget the backend's fit spent."""

    epsilon: Number = measure(EPSILON)
    delta: Number = None
    differentially_private: bool = False


class PrivacySampleSizes(Block):
    """Rows used by the distance measures."""

    train_reference: int
    holdout_reference: int
    synthetic_queries: int
    synthetic_for_mia: int
    dimensions: int


class PrivacyResult(Block):
    """How much the synthetic table gives away about the training rows, with the holdout as baseline."""

    exact_copies: ExactCopies = Field(default_factory=ExactCopies)
    note: str | None = optional("why the holdout-based measures are absent")
    dcr: DistanceToClosestRecord | None = optional("distance to closest record (needs a holdout)")
    nndr: NearestNeighbourRatio | None = optional("nearest-neighbour distance ratio (needs a holdout)")
    membership_inference: MembershipInference | None = optional("membership inference (needs a holdout)")
    sample_sizes: PrivacySampleSizes | None = optional("rows used by the distance measures")
    anonymeter: Anonymeter | Skipped | None = optional("anonymeter attacks (when asked for)")
    dp: DifferentialPrivacy = Field(default_factory=DifferentialPrivacy)


# -- utility --------------------------------------------------------------------------------------
class ModelScores(Block):
    """One model trained on real (TRTR) and on synthetic (TSTR) rows, scored on holdout rows."""

    trtr: Number = None
    tstr: Number = None
    ratio: Number = Field(None, description="TSTR / TRTR; null when TRTR is no better than chance")


class BestModel(ModelScores):
    """The model with the highest TSTR/TRTR ratio."""

    model: str
    trtr: Number = measure(TRTR)
    tstr: Number = measure(TSTR)
    ratio: Number = measure(UTILITY_RATIO)


class UtilitySampleSizes(Block):
    """Rows each side trained and was tested on."""

    train: int
    synthetic: int
    test: int


class UtilityResult(Block):
    """Train on synthetic, test on real (TSTR) beside train on real, test on real (TRTR)."""

    target: str
    task: Literal["classification", "regression"]
    metric: Literal["balanced_accuracy", "r2"]
    chance: float = Field(description="the score of guessing: 1 / classes, or 0 for R²")
    models: dict[str, ModelScores]
    note: str | None = optional("why a ratio is not defined")
    sample_sizes: UtilitySampleSizes | None = None

    @computed_field(description="the model with the highest TSTR/TRTR ratio (derived from models)")  # type: ignore[prop-decorator]  # pydantic's documented form
    @property
    def best(self) -> BestModel | None:
        """The model with the highest TSTR/TRTR ratio, if any ratio is defined."""
        scored = {name: m for name, m in self.models.items() if m.ratio is not None}
        if not scored:
            return None
        name = max(scored, key=lambda n: scored[n].ratio or 0.0)  # every ratio here is set
        return BestModel(model=name, **scored[name].model_dump())


# -- the whole result -----------------------------------------------------------------------------
class RowCounts(Block):
    """Rows of the full tables."""

    train: int
    holdout: int
    synthetic: int


class Timings(Block):
    """Seconds each family of measures took."""

    quality: float = 0.0
    privacy: float = 0.0
    utility: float = 0.0
    rules: float = 0.0


class FitSummary(Block):
    """The backend's FitResult."""

    seconds: Number = measure(FIT_SECONDS)
    epochs: int | None = None
    losses: list[Number] = Field(default_factory=list)
    epsilon: Number = None
    delta: Number = None
    details: dict[str, Any] = Field(default_factory=dict)


class SamplingResult(Block):
    """How fast the backend sampled (written by the pipeline)."""

    rows: int
    seconds: float
    rows_per_second: Number = measure(ROWS_PER_SECOND)


class Measurements(Block):
    """Everything measured about one synthetic table: what the release gate judges."""

    version: int = Field(METRICS_VERSION, description="layout version of metrics.json")
    rows: RowCounts
    quality: QualityResult = Field(default_factory=QualityResult)
    privacy: PrivacyResult = Field(default_factory=PrivacyResult)
    rules: RulesResult = Field(default_factory=RulesResult, description="cross-column rules kept by the synthetic rows")
    utility: UtilityResult | Skipped = Field(default_factory=lambda: Skipped(skipped="Utility was not measured."))
    timings: Timings = Field(default_factory=Timings)
    fit: FitSummary | None = optional("the backend's fit, when the result comes from a run")
    holdout_known: bool = Field(
        True, description="false when no holdout was given and the real table was split in two for the baselines"
    )

    def value(self, metric: Metric) -> float | None:
        """The measured value of a declared metric (None when it was not measured)."""
        node: Any = self
        for name in metric_paths()[metric.name]:
            node = getattr(node, name, None)
        return node

    def interval(self, metric: Metric) -> list[float | None] | None:
        """The bootstrap interval [low, high] of a declared metric (None when it has none or it was not measured)."""
        node: Any = self
        for name in interval_paths().get(metric.name, ("",)):
            node = getattr(node, name, None)
        return node

    def headline(self) -> dict[str, float | None]:
        """Every declared metric's value by name, in declaration order."""
        return {metric.name: self.value(metric) for metric in METRICS}


class EvaluationResult(Measurements):
    """Quality, privacy and utility of one synthetic table, with the release decision (metrics.json)."""

    gate: GateResult
    seconds: float = Field(0.0, description="wall time of the evaluation")
    missing_columns: list[str] | None = optional("evaluate_files: the same as quality.missing_columns")
    backend: str | None = optional("the backend that made the synthetic table")
    sampling: SamplingResult | None = optional("sampling speed, when the result comes from a run")

    def to_json(self) -> str:
        """metrics.json text."""
        return self.model_dump_json(indent=2)


@cache
def metric_paths() -> dict[str, tuple[str, ...]]:
    """Where each declared metric lives in EvaluationResult, found by walking the models' fields."""
    return dict(walk_metric_fields(EvaluationResult))


@cache
def interval_paths() -> dict[str, tuple[str, ...]]:
    """Where each metric's bootstrap interval lives in EvaluationResult (the fields declared with `interval`)."""
    return dict(walk_metric_fields(EvaluationResult, key="interval_of"))


def interval_metrics() -> tuple[Metric, ...]:
    """The declared metrics with a bootstrap interval, in declaration order."""
    return tuple(metric for metric in METRICS if metric.name in interval_paths())


def walk_metric_fields(
    model: type[BaseModel], prefix: tuple[str, ...] = (), key: str = "metric"
) -> list[tuple[str, tuple[str, ...]]]:
    """(metric name, attribute path) of every field declared with `measure` (with `interval`: key "interval_of"),
    below `model`."""
    found = []
    fields = {name: (f.json_schema_extra, f.annotation) for name, f in model.model_fields.items()}
    fields |= {name: (f.json_schema_extra, f.return_type) for name, f in model.model_computed_fields.items()}
    for name, (extra, annotation) in fields.items():
        if isinstance(extra, dict) and key in extra:
            found.append((str(extra[key]), (*prefix, name)))
        for inner in _models_in(annotation):
            found.extend(walk_metric_fields(inner, (*prefix, name), key))
    return found


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models an attribute annotation holds directly (through Optional and unions, not containers)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return []
