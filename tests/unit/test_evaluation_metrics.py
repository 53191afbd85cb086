"""Metric declarations: consistent goals and ranges, one per measured field, read the same way by every consumer."""

from __future__ import annotations

import json
import math
import re

import pytest
from pydantic import ValidationError

from fairsynth.backends.registry import backend_info
from fairsynth.metadata.rule_checks import infer_with_rules
from fairsynth.metadata.schema import TableSchema
from fairsynth.services.entry import workspace as ws_api
from fairsynth.services.run.demo import load_demo_table
from fairsynth.services.run.evaluation import compare, evaluate
from fairsynth.services.run.evaluation.gate import LIMITS, ReleasePolicy, gate
from fairsynth.services.run.evaluation.metrics import (
    DCR_SHARE,
    METRICS,
    MIA_AUC,
    QUALITY,
    UTILITY_RATIO,
    Family,
    Goal,
    Metric,
)
from fairsynth.services.run.evaluation.results import EvaluationResult, SamplingResult, walk_metric_fields
from fairsynth.services.run.report import level, render_comparison, render_report


def _ends(metric: Metric) -> tuple[float, float]:
    """A value at the good end of the metric's range and one at the bad end (finite stand-ins for ±∞)."""
    lo = metric.min_value if math.isfinite(metric.min_value) else -1e6
    hi = metric.max_value if math.isfinite(metric.max_value) else 1e6
    if metric.goal is Goal.TARGET:
        return metric.target, hi if hi - metric.target >= metric.target - lo else lo
    return (hi, lo) if metric.goal is Goal.MAXIMIZE else (lo, hi)


@pytest.mark.parametrize("metric", METRICS, ids=lambda m: m.name)
def test_the_good_end_of_each_range_scores_better_than_the_bad_end(metric):
    good, bad = _ends(metric)
    assert metric.min_value <= good <= metric.max_value
    assert metric.better(good, bad) and not metric.better(bad, good)
    halfway = (good + bad) / 2
    assert metric.beyond(bad, halfway) and not metric.beyond(good, halfway)
    assert metric.meaning and metric.label and metric.goal_text
    assert metric.text(None) == "–" and metric.text(good)


def test_a_target_goal_needs_a_target_inside_the_range():
    with pytest.raises(ValidationError, match="target value is given exactly when"):
        Metric(name="x", label="x", family=Family.PRIVACY, goal=Goal.TARGET, meaning="x")
    with pytest.raises(ValidationError, match="outside"):
        Metric(name="x", label="x", family=Family.PRIVACY, goal=Goal.TARGET, target=2.0, meaning="x")


def test_a_target_is_worse_on_either_side():
    assert DCR_SHARE.better(0.52, 0.3) and DCR_SHARE.better(0.48, 0.7)
    assert DCR_SHARE.beyond(0.7, 0.6) and not DCR_SHARE.beyond(0.3, 0.6)  # a limit above the target caps the top
    assert DCR_SHARE.beyond(0.3, 0.4) and not DCR_SHARE.beyond(0.7, 0.4)  # one below it caps the bottom


def test_every_measured_field_has_one_declaration_and_every_declaration_one_field():
    found = walk_metric_fields(EvaluationResult)
    names = [name for name, _ in found]
    assert sorted(names) == sorted(m.name for m in METRICS)
    assert len(set(names)) == len(names)
    schema = json.dumps(EvaluationResult.model_json_schema(mode="serialization"), ensure_ascii=False)
    assert all(m.meaning in schema for m in METRICS)  # the field descriptions are the declarations


def test_every_policy_threshold_reads_its_direction_from_the_metric():
    policy = ReleasePolicy(max_epsilon=1.0)
    for limit in LIMITS:
        threshold = limit.threshold(policy)
        prefix = limit.policy_field.split("_")[0]
        assert prefix in ("max", "min") and threshold is not None
        assert limit.metric.worse_side(threshold) == (1 if prefix == "max" else -1), limit.policy_field


def _result(quality: float, dcr: float, auc: float, ratio: float, fit_seconds: float) -> EvaluationResult:
    """A small, fake but complete result with the given headline values."""
    distances = {"quantiles": {}, "zero_share": 0.0, "histogram": []}
    measured = {
        "rows": {"train": 100, "holdout": 100, "synthetic": 100},
        "quality": {"quality": quality, "column_shapes": quality, "column_pair_trends": quality},
        "privacy": {
            "exact_copies": {"count": 0, "rate": 0.0, "synthetic_rows_checked": 100},
            "dcr": {
                "share_closer_to_train": dcr,
                "synthetic_to_train": distances,
                "synthetic_to_holdout": distances,
                "holdout_to_train": distances,
                "histogram_edges": [],
            },
            "membership_inference": {"auc": auc, "members": 100, "non_members": 100},
        },
        "utility": {
            "target": "y",
            "task": "classification",
            "metric": "balanced_accuracy",
            "chance": 0.5,
            "models": {"linear": {"trtr": 0.8, "tstr": 0.8 * ratio, "ratio": ratio}},
        },
        "fit": {"seconds": fit_seconds},
    }
    placeholder = {"decision": "pass", "reasons": [], "policy": {}}
    result = EvaluationResult.model_validate(measured | {"gate": placeholder})
    return result.model_copy(update={"gate": gate(result)})


def test_gate_report_and_recommendation_agree_on_which_result_is_better():
    good = _result(quality=0.9, dcr=0.5, auc=0.52, ratio=1.0, fit_seconds=1.0)
    bad = _result(quality=0.5, dcr=0.8, auc=0.75, ratio=0.5, fit_seconds=100.0)
    assert good.gate.decision == "pass" and bad.gate.decision == "block"
    for metric in (QUALITY, DCR_SHARE, MIA_AUC, UTILITY_RATIO):
        assert metric.better(good.value(metric), bad.value(metric))
        assert any(reason.startswith(metric.label) for reason in bad.gate.reasons), metric.name
        assert level(metric, good) == "" and level(metric, bad) in ("warn", "bad")
    table = compare({"good": good, "bad": bad}).assign(status="ok", decision="pass")  # let both be recommended
    for priority, metric in ws_api.PRIORITIES.items():
        assert metric.better(good.value(metric), bad.value(metric))
        assert ws_api.recommend(table, priority)[0] == "good", priority


def test_a_result_round_trips_through_metrics_json():
    result = _result(quality=0.9, dcr=0.5, auc=0.52, ratio=1.0, fit_seconds=1.0)
    written = json.loads(result.to_json())
    assert written["privacy"]["dcr"]["share_closer_to_train"] == 0.5  # the documented layout
    assert "anonymeter" not in written["privacy"] and "sampling" not in written  # absent, not null
    assert written["utility"]["best"] == {"trtr": 0.8, "tstr": 0.8, "ratio": 1.0, "model": "linear"}
    again = EvaluationResult.model_validate_json(result.to_json())
    assert again == result and again.headline() == result.headline()


def test_comparison_marks_the_best_value_by_the_metric_goal():
    good = _result(quality=0.9, dcr=0.5, auc=0.52, ratio=1.0, fit_seconds=1.0)
    bad = _result(quality=0.5, dcr=0.8, auc=0.75, ratio=0.5, fit_seconds=100.0)
    summary = render_comparison({"bad": bad, "good": good}).split('id="comparison"')[1].split("</table>")[0]
    header, *rows = re.findall(r"<tr>(.*?)</tr>", summary)
    column = re.findall(r"<th[^>]*>(.*?)</th>", header).index(DCR_SHARE.label)
    cells = {re.match(r"<td>(.*?)</td>", row).group(1): re.findall(r"<td[^>]*>.*?</td>", row) for row in rows}
    assert cells["good"][column] == '<td class="best">0.500</td>'  # at the target, though 0.800 is larger
    assert cells["bad"][column] == "<td>0.800</td>"


SECOND_EVALUATOR = backend_info("mostly.argn")  # mostlyai-qa runs in the same venv


@pytest.fixture(scope="module")
def measured():
    """A real evaluation of every family, with a fit and sampling speed as the pipeline adds them."""
    table = load_demo_table().sample(n=600, random_state=0).reset_index(drop=True)
    schema = infer_with_rules(table).with_overrides(target="discharge_date")  # rules: adherence is measured
    train, holdout = table.iloc[:300], table.iloc[300:]
    synthetic = holdout.sample(frac=1.0, random_state=1)
    fit = {"seconds": 2.0, "epsilon": 1.0, "delta": 1e-5}
    result = evaluate(train, holdout, synthetic, schema, fit=fit, second_evaluator=SECOND_EVALUATOR.available)
    return result.model_copy(update={"sampling": SamplingResult(rows=300, seconds=0.5, rows_per_second=600.0)})


@pytest.mark.slow
def test_the_suite_produces_every_declared_metric(measured):
    # the second evaluator (mostlyai-qa) is measured only where its venv is built (make install builds it)
    optional = set() if SECOND_EVALUATOR.available else {"qa_accuracy"}
    assert {n: v for n, v in measured.headline().items() if v is None and n not in optional} == {}
    assert EvaluationResult.model_validate_json(measured.to_json()) == measured


def test_report_escapes_what_comes_from_the_data():
    table = load_demo_table().sample(n=400, random_state=0)[["age", "sex", "ward"]].reset_index(drop=True)
    table = table.rename(columns={"ward": "<script>alert(1)</script>"})
    schema = TableSchema.infer(table)
    result = evaluate(table.iloc[:200], table.iloc[200:], table.iloc[200:], schema, anonymeter=False)
    html = render_report(table.iloc[:200], table.iloc[200:], schema, result, backend="<b>mine</b>")
    assert "<script>alert(1)</script>" not in html and "<b>mine</b>" not in html
    assert "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>" in html and "Backend: &lt;b&gt;mine&lt;/b&gt;" in html
    assert "<script src=" not in html
