"""The typed result of a dataset evaluation (several tables), written as <run>/<backend>/metrics.json.

As in evaluation.results, a field that holds a headline measure is declared with `measure(METRIC)` (the
dataset metrics of evaluation.metrics.DATASET_METRICS) and `DatasetMeasurements.value(METRIC)` finds it; the
dataset gate (gate.dataset_gate) reads the values that way.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from pydantic import Field

from fairsynth.services.run.evaluation.gate import GateResult
from fairsynth.services.run.evaluation.metrics import (
    CARDINALITY,
    COLUMN_PAIR_TRENDS,
    COLUMN_SHAPES,
    DATASET_METRICS,
    DATASET_QUALITY,
    ENFORCED_RULE_ADHERENCE,
    INTERTABLE_TRENDS,
    REFERENTIAL_INTEGRITY,
    RULE_ADHERENCE,
    SUBJECT_COPIES,
    SUBJECT_COPY_RATE,
    SUBJECT_DCR_SHARE,
    SUBJECT_MIA_AUC,
    SUBJECT_NNDR,
    TIME_ORDER,
    TRAJECTORY_KS,
    Metric,
)
from fairsynth.services.run.evaluation.results import (
    Block,
    DistanceToClosestRecord,
    MembershipInference,
    NearestNeighbourRatio,
    Number,
    PrivacySampleSizes,
    RatioSummary,
    RuleAdherence,
    Skipped,
    interval,
    measure,
    optional,
    walk_metric_fields,
)


# -- structure and quality ----------------------------------------------------------------------
class DatasetStructure(Block):
    """Whether the synthetic tables hold together: every child's parent exists, children in time order."""

    referential_integrity: Number = measure(REFERENTIAL_INTEGRITY)
    time_order: Number = measure(TIME_ORDER)


class SampledRows(Block):
    """Rows per table the multi-table report compared (whole subjects sampled to a bounded size)."""

    real: dict[str, int]
    synthetic: dict[str, int]


class DatasetQuality(Block):
    """sdmetrics' multi-table QualityReport on the training tables vs the synthetic ones."""

    score: Number = measure(DATASET_QUALITY)
    column_shapes: Number = measure(COLUMN_SHAPES)
    column_pair_trends: Number = measure(COLUMN_PAIR_TRENDS)
    cardinality: Number = measure(CARDINALITY)
    intertable_trends: Number = measure(INTERTABLE_TRENDS)
    holdout_reference: Number = Field(
        None,
        description="the held-out subjects' overall score against the training ones: what a perfect generator reaches",
    )
    sampled_rows: SampledRows


class TrajectoryColumn(Block):
    """One number's change between consecutive rows of a parent, real vs synthetic."""

    table: str
    column: str
    ks_statistic: Number = None
    real_changes: int = Field(0, description="consecutive-row changes in the training table")
    synthetic_changes: int = 0
    real_mean_change: Number = None
    synthetic_mean_change: Number = None


class Trajectories(Block):
    """Within-subject trajectories of the child tables with a time column."""

    columns: list[TrajectoryColumn] = Field(default_factory=list)
    mean_ks: Number = measure(TRAJECTORY_KS)


class CrossRuleAdherence(RuleAdherence):
    """One rule of a dataset (within one table, across a child table and its parent, or a child table's time order)
    on the synthetic rows of its (child) table, beside the real ones."""

    real_applicable: int = Field(0, description="training rows the rule applies to")
    real_kept: int = Field(0, description="training rows, of those, that keep the rule")
    real_adherence: Number = Field(None, description="real_kept / real_applicable")


class DatasetRules(Block):
    """The dataset's rules, every status: each table's own (TableSchema.rules, qualified `table.column`), the
    cross-table ones (schema.rules) and each child table's time order, measured on the synthetic rows; the time order
    is judged by the dataset gate's time-order limit, every other rule as one table's rules."""

    rules: list[CrossRuleAdherence] = Field(default_factory=list)
    worst_enforced: Number = measure(ENFORCED_RULE_ADHERENCE)
    worst: Number = measure(RULE_ADHERENCE)


# -- privacy --------------------------------------------------------------------------------------
class SubjectCopies(Block):
    """Synthetic subjects whose whole history equals a real subject's (keys ignored)."""

    count: int | None = measure(SUBJECT_COPIES)
    rate: Number = measure(SUBJECT_COPY_RATE)
    holdout_count: int = Field(0, description="synthetic subjects equal to a holdout subject (the baseline)")
    holdout_rate: Number = 0.0
    synthetic_subjects_checked: int = 0


class SubjectDistances(DistanceToClosestRecord):
    """Distances of synthetic subject summaries to the closest training and holdout ones."""

    share_closer_to_train: Number = measure(SUBJECT_DCR_SHARE)
    share_interval: list[Number] | None = interval(SUBJECT_DCR_SHARE)


class SubjectRatios(RatioSummary):
    """The synthetic subjects' nearest / second-nearest ratios."""

    median: Number = measure(SUBJECT_NNDR)


class SubjectNearestNeighbourRatio(NearestNeighbourRatio):
    """NNDR of the synthetic subject summaries beside the holdout's own."""

    synthetic: SubjectRatios


class SubjectMembershipInference(MembershipInference):
    """A distance attack on subject summaries: training subjects vs subjects held out whole."""

    auc: Number = measure(SUBJECT_MIA_AUC)
    auc_interval: list[Number] | None = interval(SUBJECT_MIA_AUC)


class SubjectPrivacy(Block):
    """Privacy at the subject level: whole-history copies, distances between subject summaries."""

    root: str = Field(description="the table whose rows are the subjects")
    exact_copies: SubjectCopies = Field(default_factory=SubjectCopies)
    summary_columns: list[str] = Field(default_factory=list, description="the columns of a subject summary")
    note: str | None = optional("why the holdout-based measures are absent")
    dcr: SubjectDistances | None = optional("distance to closest subject (needs held-out subjects)")
    nndr: SubjectNearestNeighbourRatio | None = optional("nearest-neighbour distance ratio of subjects")
    membership_inference: SubjectMembershipInference | None = optional("membership inference on whole subjects")
    sample_sizes: PrivacySampleSizes | None = optional("subjects used by the distance measures")


# -- the whole result -----------------------------------------------------------------------------
class DatasetMeasurements(Block):
    """Everything measured about one backend's synthetic dataset: what the dataset gate judges."""

    tables: dict[str, dict[str, Any]] = Field(
        description="per table: rows, single-table quality of its non-key columns, holdout reference, real keys copied"
    )
    relationships: list[dict[str, Any]] = Field(
        description="per relationship: integrity, children per parent (KS), within-parent time order"
    )
    structure: DatasetStructure = Field(default_factory=DatasetStructure)
    quality: DatasetQuality | Skipped = Field(description="sdmetrics' multi-table QualityReport")
    privacy: SubjectPrivacy
    trajectories: Trajectories = Field(default_factory=Trajectories)
    rules: DatasetRules = Field(default_factory=DatasetRules)

    def value(self, metric: Metric) -> float | None:
        """The measured value of a declared dataset metric (None when it was not measured)."""
        node: Any = self
        for name in dataset_metric_paths()[metric.name]:
            node = getattr(node, name, None)
        return node

    def interval(self, metric: Metric) -> list[float | None] | None:
        """The bootstrap interval [low, high] of a dataset metric (None when it has none or it was not measured)."""
        node: Any = self
        for name in dataset_interval_paths().get(metric.name, ("",)):
            node = getattr(node, name, None)
        return node

    def headline(self) -> dict[str, float | None]:
        """Every dataset metric's value by name, in declaration order."""
        return {metric.name: self.value(metric) for metric in DATASET_METRICS}


class DatasetEvaluation(DatasetMeasurements):
    """The measurements with the release decision (metrics.json of a dataset run)."""

    gate: GateResult
    seconds: float = Field(0.0, description="wall time of the evaluation")

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, Any]) -> DatasetEvaluation:
        """Read back a dataset run's metrics.json (the evaluation beside the run's own fields: backend, fit time)."""
        return cls.model_validate({k: v for k, v in metrics.items() if k in cls.model_fields})


@cache
def dataset_metric_paths() -> dict[str, tuple[str, ...]]:
    """Where each dataset metric lives in DatasetEvaluation."""
    return dict(walk_metric_fields(DatasetEvaluation))


@cache
def dataset_interval_paths() -> dict[str, tuple[str, ...]]:
    """Where each dataset metric's bootstrap interval lives in DatasetEvaluation."""
    return dict(walk_metric_fields(DatasetEvaluation, key="interval_of"))
