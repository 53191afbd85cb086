"""Release gate decisions and the top-level evaluate / compare / evaluate_files API."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from fairsynth.metadata.schema import TableSchema
from fairsynth.services.run.demo import load_demo_table
from fairsynth.services.run.evaluation import compare, evaluate, evaluate_files
from fairsynth.services.run.evaluation.gate import ReleasePolicy, gate
from fairsynth.services.run.evaluation.results import EvaluationResult, Measurements
from fairsynth.services.run.tables import InputError

DISTANCES = {"quantiles": {}, "zero_share": 0.0, "histogram": []}


def _metrics(**changes) -> Measurements:
    """Measurements of a well-behaved result, with the given values replaced."""
    metrics = {
        "rows": {"train": 100, "holdout": 100, "synthetic": 100},
        "quality": {"quality": 0.85},
        "privacy": {
            "exact_copies": {"count": 0, "rate": 0.0, "holdout_count": 0, "holdout_rate": 0.0, "real_repeat_rate": 0.0},
            "dcr": {
                "share_closer_to_train": 0.5,
                "synthetic_to_train": DISTANCES,
                "synthetic_to_holdout": DISTANCES,
                "holdout_to_train": DISTANCES,
                "histogram_edges": [],
            },
            "membership_inference": {"auc": 0.5, "members": 100, "non_members": 100},
        },
        "utility": {
            "target": "y",
            "task": "classification",
            "metric": "balanced_accuracy",
            "chance": 0.5,
            "models": {"linear": {"trtr": 0.8, "tstr": 0.78, "ratio": 0.975}},
        },
    }
    for path, value in changes.items():
        node = metrics
        *parents, leaf = path.split("__")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return Measurements.model_validate(metrics)


def test_policy_defaults_match_the_issue():
    policy = ReleasePolicy()
    assert (policy.max_exact_copies, policy.max_dcr_share, policy.max_mia_auc, policy.min_quality) == (0, 0.6, 0.6, 0.7)


def test_good_result_passes():
    assert gate(_metrics()).decision == "pass"


@pytest.mark.parametrize(
    "change, decision, words",
    [
        ({"privacy__dcr__share_closer_to_train": 0.7}, "block", "DCR share"),
        ({"privacy__dcr__share_closer_to_train": 0.58}, "flag", "close to"),
        ({"privacy__membership_inference__auc": 0.65}, "block", "Membership-inference AUC"),
        ({"privacy__exact_copies__count": 3}, "block", "exact copies"),
        ({"quality__quality": 0.6}, "flag", "Quality is 0.600"),
        ({"utility__models__linear__ratio": 0.5}, "flag", "TSTR/TRTR"),
        ({"quality__missing_columns": ["ward"]}, "flag", "lacks these columns of the real one: ward"),
        ({"quality__columns": {"bp": {"kind": "float", "missing_share_difference": 0.4}}}, "flag", "bp (40%)"),
    ],
)
def test_each_threshold_decides_with_a_reason(change, decision, words):
    result = gate(_metrics(**change))
    assert result.decision == decision
    assert any(words in reason for reason in result.reasons)


def test_block_outranks_flag_and_policy_is_recorded():
    result = gate(
        _metrics(quality__quality=0.1, privacy__membership_inference__auc=0.9), ReleasePolicy(min_quality=0.5)
    )
    assert result.decision == "block"
    assert result.reasons[0].startswith("Membership")
    assert result.policy.min_quality == 0.5


def test_policy_rejects_nonsense_thresholds():
    with pytest.raises(ValueError):
        ReleasePolicy(max_dcr_share=1.5)


@pytest.fixture(scope="module")
def demo():
    table = load_demo_table().sample(n=1200, random_state=5).reset_index(drop=True)
    return table, TableSchema.infer(table).with_overrides(target="ward")


@pytest.mark.slow
def test_evaluate_returns_json_ready_documented_blocks(demo):
    table, schema = demo
    metrics = evaluate(
        table.iloc[:600], table.iloc[600:], table.iloc[600:].sample(frac=1.0, random_state=0), schema, anonymeter=False
    )
    written = json.loads(metrics.to_json())
    assert {"version", "rows", "quality", "privacy", "utility", "gate", "seconds"} <= set(written)
    assert written["rows"] == {"train": 600, "holdout": 600, "synthetic": 600}
    json.dumps(written, allow_nan=False)
    assert metrics.utility.target == "ward" and metrics.utility.task == "classification"
    assert EvaluationResult.model_validate(written).model_dump(mode="json") == written  # metrics.json round trip


@pytest.mark.slow
def test_compare_puts_backends_side_by_side(demo):
    table, schema = demo
    train, holdout = table.iloc[:600], table.iloc[600:]
    results = {
        "copier": evaluate(train, holdout, train, schema, anonymeter=False),
        "holdout": evaluate(train, holdout, holdout, schema, anonymeter=False),
    }
    frame = compare(results)
    assert list(frame["backend"]) == ["copier", "holdout"]  # copier's quality is perfect, sorted first
    assert frame.set_index("backend").loc["copier", "decision"] == "block"
    assert frame.set_index("backend").loc["holdout", "exact_copies"] == 0


@pytest.mark.slow
def test_evaluate_files_splits_the_real_file_and_says_so(demo, tmp_path):
    table, _ = demo
    real, synthetic = tmp_path / "real.csv", tmp_path / "synthetic.parquet"
    table.to_csv(real, index=False)
    table.sample(n=300, random_state=1).to_parquet(synthetic)
    metrics = evaluate_files(real, synthetic, target="readmitted_30d")
    assert metrics.holdout_known is False
    copies = metrics.privacy.exact_copies
    # one count everywhere: without a known holdout, copies of any real row (the holdout half's among them)
    assert copies.count == 300 and 0 < copies.holdout_count < 300
    assert any(f"{copies.count} synthetic rows" in r and "real rows" in r for r in metrics.gate.reasons)
    assert metrics.gate.decision == "block"
    assert any("No holdout was given" in r for r in metrics.gate.reasons)


def test_bad_input_says_what_to_do(tmp_path):
    with pytest.raises(InputError, match="CSV or Parquet"):
        evaluate_files(tmp_path / "absent.csv", tmp_path / "synthetic.csv")
    real, other = tmp_path / "real.csv", tmp_path / "other.csv"
    pd.DataFrame({"a": range(20), "b": list("xyz" * 6 + "xy")}).to_csv(real, index=False)
    pd.DataFrame({"c": range(20), "d": list("xyz" * 6 + "xy")}).to_csv(other, index=False)
    with pytest.raises(InputError, match="shares no column"):
        evaluate_files(real, other)
    with pytest.raises(InputError, match="empty"):
        evaluate(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), TableSchema(columns=[], n_rows=0))


def test_a_privacy_estimate_whose_interval_reaches_the_safe_side_is_flagged_not_blocked():
    # 12 held-out rows: an AUC of 0.64 could as well be 0.45, so a person judges it
    unsure = gate(
        _metrics(privacy__membership_inference__auc=0.64, privacy__membership_inference__auc_interval=[0.43, 0.85])
    )
    assert unsure.decision == "flag"
    assert any("interval 0.430–0.850" in reason and "too few held-out rows" in reason for reason in unsure.reasons)
    # the whole interval past the policy: blocked, as without an interval
    sure = gate(
        _metrics(privacy__membership_inference__auc=0.86, privacy__membership_inference__auc_interval=[0.69, 1.0])
    )
    assert sure.decision == "block"
    assert gate(_metrics(privacy__membership_inference__auc=0.64)).decision == "block"  # no interval: the value decides
