"""The user sees and edits the rules wherever they meet the schema: CLI flags and YAML, the API, the UI's facade."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fairsynth.metadata.rule_checks import infer_with_rules
from fairsynth.metadata.rules import Rule, RuleError, RuleStatus
from fairsynth.metadata.schema import TableSchema
from fairsynth.services.entry import workspace as ws_api
from fairsynth.services.entry.api import create_app
from fairsynth.services.entry.cli import app
from fairsynth.services.run.config import SchemaOverrides
from fairsynth.services.run.rule_edits import with_user_rules
from fairsynth.services.settings import Settings

runner = CliRunner()
DEMO_RULES = (
    "discharge_date >= admission_date",
    "first_observation >= admission_date",
    "discharge_date >= first_observation",
    "length_of_stay == discharge_date - admission_date",
    "discharge_date missing <=> length_of_stay missing",
)
BROKEN = "admission_date > discharge_date"
BROKEN_SENTENCE = (
    f"The rule '{BROKEN}' is broken in 1,933 of 1,933 rows that have its columns; fix the data or leave the rule out."
)
HOLDS = "age >= length_of_stay"  # true in every demo row, not detected (the two ranges barely meet)


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def by_text(rules: list) -> dict[str, Rule]:
    """Rules (or their JSON) by their text."""
    return {rule.text: rule for rule in (Rule.model_validate(rule) for rule in rules)}


def statuses(schema: TableSchema) -> dict[str, RuleStatus]:
    return {rule.text: rule.status for rule in schema.rules}


# -- the CLI ------------------------------------------------------------------------------------------
def test_inspect_prints_the_demo_tables_rules_with_status_and_support():
    result = runner.invoke(app, ["inspect"])
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[2].strip(): line for line in result.output.splitlines() if line.count("│") == 4}
    assert set(DEMO_RULES) <= set(rows)
    assert (
        "enforced" in rows["discharge_date >= admission_date"] and "1,933" in rows["discharge_date >= admission_date"]
    )
    assert result.output.index("episode_id") < result.output.index("discharge_date >= admission_date")


def test_inspect_previews_the_edits():
    args = ["inspect", "--no-rule", DEMO_RULES[0], "--rule", HOLDS]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = {
        line.split("│")[2].strip(): line.split("│")[1].strip()
        for line in result.output.splitlines()
        if line.count("│") == 4
    }
    assert rows[DEMO_RULES[0]] == "off" and rows[HOLDS] == "enforced, added"
    fewer = runner.invoke(app, ["inspect", "--min-rule-support", "1950"])
    assert fewer.exit_code == 0 and DEMO_RULES[0] not in fewer.output and DEMO_RULES[1] in fewer.output


def test_a_rule_the_data_breaks_exits_2_naming_the_rule_and_its_rows(tmp_path):
    for command in (["inspect"], ["generate", "--backend", "marginals", "--out", str(tmp_path / "run")]):
        result = runner.invoke(app, [*command, "--rule", BROKEN])
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert flat(result.output) == f"error: {BROKEN_SENTENCE}"
    assert not (tmp_path / "run").exists()


def test_generate_records_rules_turned_off_by_flag_and_config_in_the_runs_schema(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(
        "anonymeter: false\nrows: 200\nevaluation_rows: 200\n"
        f"schema_overrides:\n  rules_off: ['{DEMO_RULES[1]}']\n  rules: ['{HOLDS}']\n"
    )
    out = tmp_path / "run"
    args = [
        "generate",
        "--config",
        str(config),
        "--backend",
        "marginals",
        "--no-rule",
        DEMO_RULES[0],
        "--out",
        str(out),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    schema = TableSchema.from_json((out / "schema.json").read_text())
    assert statuses(schema)[DEMO_RULES[0]] == statuses(schema)[DEMO_RULES[1]] == RuleStatus.OFF
    assert statuses(schema)[HOLDS] == RuleStatus.ENFORCED and by_text(schema.rules)[HOLDS].added_by_user
    overrides = json.loads((out / "request.json").read_text())["request"]["schema_overrides"]
    assert overrides["rules_off"] == [DEMO_RULES[1], DEMO_RULES[0]] and overrides["rules"] == [HOLDS]


# -- the shared edits ---------------------------------------------------------------------------------
def test_detecting_again_keeps_the_rules_the_user_added_or_turned_off(demo):
    edited = with_user_rules(infer_with_rules(demo), demo, SchemaOverrides(rules=[HOLDS], rules_off=[DEMO_RULES[1]]))
    again = with_user_rules(edited, demo, SchemaOverrides(min_rule_support=10))
    assert again.min_rule_support == 10
    assert statuses(again)[HOLDS] == RuleStatus.ENFORCED and statuses(again)[DEMO_RULES[1]] == RuleStatus.OFF
    assert len(again.rules) == len({rule.text for rule in again.rules})


# -- the API ------------------------------------------------------------------------------------------
@pytest.fixture
def client(tmp_path):
    settings = Settings.from_env({"FAIRSYNTH_DATA_DIR": str(tmp_path / "data"), "FAIRSYNTH_WORKERS": "1"})
    with TestClient(create_app(settings)) as client:
        yield client


def test_the_schema_endpoints_return_the_rules_and_take_them_back_toggled(client, demo):
    upload = client.post("/datasets", files={"file": ("episodes.csv", demo.to_csv(index=False).encode(), "text/csv")})
    url = f"/datasets/{upload.json()['id']}/schema"
    schema = client.get(url).json()
    rules = by_text(schema["rules"])
    assert rules[DEMO_RULES[0]].support == 1933
    for rule in schema["rules"]:
        if by_text([rule]).keys() == {DEMO_RULES[0]}:
            rule.update(status="off", support=5)  # the client's count is not trusted
    schema["rules"].append({"kind": "order", "columns": ["length_of_stay", "age"]})
    saved = client.put(url, json=schema)
    assert saved.status_code == 200, saved.text
    stored = by_text(client.get(url).json()["rules"])
    assert (stored[DEMO_RULES[0]].status, stored[DEMO_RULES[0]].support) == (RuleStatus.OFF, 1933)
    assert (stored[HOLDS].status, stored[HOLDS].support) == (RuleStatus.ENFORCED, 1933)


def test_a_broken_rule_is_refused_with_422_and_the_sentence(client, demo):
    upload = client.post("/datasets", files={"file": ("episodes.csv", demo.to_csv(index=False).encode(), "text/csv")})
    dataset_id = upload.json()["id"]
    schema = client.get(f"/datasets/{dataset_id}/schema").json()
    schema["rules"].append({"kind": "order", "columns": ["discharge_date", "admission_date"], "strict": True})
    refused = client.put(f"/datasets/{dataset_id}/schema", json=schema)
    assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["errors"] == [BROKEN_SENTENCE]
    job = client.post(
        "/jobs",
        json={"dataset_id": dataset_id, "backends": ["marginals"], "schema_overrides": {"rules": [BROKEN]}},
    )
    assert job.status_code == 422 and job.json()["errors"] == [BROKEN_SENTENCE]
    assert client.get("/jobs").json() == []


# -- the UI's facade -----------------------------------------------------------------------------------
@pytest.fixture
def ws(tmp_path):
    workspace = ws_api.open_workspace(Settings.from_env({"FAIRSYNTH_DATA_DIR": str(tmp_path)}))
    yield workspace
    workspace.close()


def test_the_data_page_lists_toggles_and_adds_rules(ws):
    dataset = ws_api.demo_dataset(ws)
    frame = ws_api.rules_frame(ws_api.dataset_schema(dataset))
    assert list(frame["rule"]) == list(DEMO_RULES) and frame["enforced"].all()
    assert frame.set_index("rule").loc[DEMO_RULES[0], "support"] == 1933
    frame.loc[frame["rule"] == DEMO_RULES[0], "enforced"] = False
    ws_api.edit_rules(ws, dataset, frame)
    ws_api.add_rule(ws, ws.store.get_dataset(dataset.id), HOLDS)
    with pytest.raises(RuleError) as refused:
        ws_api.add_rule(ws, ws.store.get_dataset(dataset.id), BROKEN)
    assert list(refused.value.problems) == [BROKEN_SENTENCE]
    schema = ws_api.dataset_schema(ws.store.get_dataset(dataset.id))
    assert statuses(schema)[DEMO_RULES[0]] == RuleStatus.OFF and statuses(schema)[HOLDS] == RuleStatus.ENFORCED
    shown = ws_api.rules_frame(schema).set_index("rule")
    assert not shown.loc[DEMO_RULES[0], "enforced"] and "added by you" in shown.loc[HOLDS, "note"]
    assert ws_api.rule_overrides(schema) == {"rules": [HOLDS], "rules_off": [DEMO_RULES[0]]}


def test_an_implied_rule_stays_implied_when_left_unticked_and_is_enforced_when_ticked(ws, tmp_path):
    import pandas as pd

    table = pd.DataFrame({"start": pd.date_range("2020-01-01", periods=60).astype(str)})
    table["end"] = pd.date_range("2021-01-01", periods=60).astype(str)
    dataset = ws_api.upload_dataset(ws, "stays.csv", table.to_csv(index=False).encode())
    frame = ws_api.rules_frame(ws_api.dataset_schema(dataset))
    assert list(frame["rule"]) == ["end >= start"] and not frame["enforced"].any()
    assert frame["note"].item().startswith("implied")
    assert statuses(ws_api.edit_rules(ws, dataset, frame))["end >= start"] == RuleStatus.IMPLIED
    frame["enforced"] = True
    assert statuses(ws_api.edit_rules(ws, dataset, frame))["end >= start"] == RuleStatus.ENFORCED
