"""The UI's services facade: uploads with clear messages, schema edits, estimates, recommendations, metadata."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from fairsynth.metadata.schema import SchemaError
from fairsynth.services.entry import workspace as ws_api
from fairsynth.services.run.config import ConfigError
from fairsynth.services.run.tables import InputError
from fairsynth.services.settings import Settings


@pytest.fixture
def ws(tmp_path):
    workspace = ws_api.open_workspace(
        Settings.from_env({"FAIRSYNTH_DATA_DIR": str(tmp_path), "FAIRSYNTH_MAX_UPLOAD_MB": "1"})
    )
    yield workspace
    workspace.close()


def test_a_real_upload_is_stored_with_its_inferred_schema(ws, support2):
    sample = support2.sample(500, random_state=0)
    dataset = ws_api.upload_dataset(ws, "../../support2.csv", sample.to_csv(index=False).encode())
    assert (dataset.name, dataset.rows, dataset.columns) == ("support2.csv", 500, sample.shape[1])
    assert ws_api.dataset_table(ws, dataset).shape == sample.shape
    frame = ws_api.schema_frame(ws_api.dataset_schema(dataset))
    assert list(frame["column"]) == list(sample.columns)
    gappy = sample.columns[sample.isna().any()][0]
    assert frame.loc[frame["column"] == gappy, "missing %"].item() == pytest.approx(
        100 * sample[gappy].isna().mean(), abs=0.1
    )


def test_a_parquet_upload_is_recognised_by_its_bytes(ws, demo):
    buffer = io.BytesIO()
    demo.head(200).to_parquet(buffer, index=False)
    dataset = ws_api.upload_dataset(ws, "episodes.parquet", buffer.getvalue())
    assert dataset.format == "parquet" and dataset.rows == 200


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "The uploaded file is empty"),
        (bytes(range(256)) * 40, "bad.csv is not valid utf-8 text"),
        (b"a,b\n" + b"1,2\n" * 400_000, "larger than this server accepts (1 MiB)"),
    ],
)
def test_bad_uploads_get_one_clear_sentence_and_leave_nothing_behind(ws, content, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ws_api.upload_dataset(ws, "bad.csv", content)
    assert ws.store.list_datasets() == []
    assert list((ws.settings.data_dir / "datasets").iterdir()) == []


def test_schema_edits_drop_a_column_set_the_target_and_can_be_undone(ws):
    dataset = ws_api.demo_dataset(ws)
    assert ws_api.demo_dataset(ws).id == dataset.id  # registered once
    frame = ws_api.schema_frame(ws_api.dataset_schema(dataset))
    numeric = frame.loc[frame["kind"].isin(["integer", "float"]), "column"].iloc[0]
    category = frame.loc[frame["kind"] == "categorical", "column"].iloc[0]
    frame.loc[frame["column"] == numeric, "drop"] = True
    frame.loc[frame["column"] == category, "target"] = True
    schema = ws_api.edit_schema(ws, dataset, frame)
    assert schema.column(numeric).drop and schema.target == category
    stored = ws_api.dataset_schema(ws.store.get_dataset(dataset.id))
    assert stored.column(numeric).drop and stored.target == category
    frame.loc[:, ["drop", "target"]] = False
    undone = ws_api.edit_schema(ws, ws.store.get_dataset(dataset.id), frame)
    assert not undone.column(numeric).drop and undone.target is None


def test_two_targets_or_renamed_columns_are_refused(ws):
    dataset = ws_api.demo_dataset(ws)
    frame = ws_api.schema_frame(ws_api.dataset_schema(dataset))
    learned = frame.loc[frame["kind"].isin(["integer", "float", "categorical"]), "column"].iloc[:2]
    both = frame.assign(target=frame["column"].isin(learned))
    with pytest.raises(SchemaError, match="at most one target"):
        ws_api.edit_schema(ws, dataset, both)
    with pytest.raises(SchemaError, match="cannot be renamed"):
        ws_api.edit_schema(ws, dataset, frame.assign(column=frame["column"] + "_x"))


def test_the_estimate_grows_with_rows_and_epochs_and_keeps_the_fit_benchmark_of_unrecorded_backends(ws, demo):
    dataset = ws_api.demo_dataset(ws)
    ctgan = next(b for b in ws_api.backends() if b["name"] == "sdv.ctgan")
    few, total = ws_api.run_estimate(ws, dataset, [ctgan], {"sdv.ctgan": {"epochs": 10}}, 1000, False)
    many, more = ws_api.run_estimate(ws, dataset, [ctgan], {"sdv.ctgan": {"epochs": 100}}, 1000, False)
    assert many.loc[0, "fit"] == pytest.approx(10 * few.loc[0, "fit"], rel=0.05) and more > total
    bigger, _ = ws_api.run_estimate(ws, dataset, [ctgan], {"sdv.ctgan": {"epochs": 10}}, 100_000, False)
    assert bigger.loc[0, "sample"] > few.loc[0, "sample"] and bigger.loc[0, "evaluate"] > few.loc[0, "evaluate"]
    assert list(few.columns) == ["backend", "start", "fit", "sample", "evaluate", "memory_mb"]


def test_a_missing_utility_measure_says_why_and_a_blocked_one_says_blocked():
    table = pd.DataFrame(
        {"backend": ["a", "b"], "status": ["ok", "ok"], "decision": ["pass", "pass"], "utility_ratio": [None, None]}
    )
    best, why = ws_api.recommend(table, "utility")
    assert best is None and why == (
        "No backend has a Utility TSTR/TRTR measure — no target column was set for this run: tick one on the Data page."
    )
    blocked = table.assign(decision="block", utility_ratio=[0.9, 0.8])
    assert ws_api.recommend(blocked, "utility") == (
        None,
        "The release gate blocked every backend with a Utility TSTR/TRTR measure.",
    )


def test_overlapping_intervals_are_a_tie_not_a_winner():
    from types import SimpleNamespace

    table = pd.DataFrame(
        {"backend": ["a", "b"], "status": ["ok", "ok"], "decision": ["pass", "pass"], "dcr_share": [0.500, 0.502]}
    )
    close = {
        "a": SimpleNamespace(interval=lambda m: [0.47, 0.53]),
        "b": SimpleNamespace(interval=lambda m: [0.48, 0.52]),
    }
    best, why = ws_api.recommend(table, "privacy", close)
    assert best is None and why.startswith("A tie on DCR share between a, b: their 95% intervals overlap")
    apart = close | {"b": SimpleNamespace(interval=lambda m: [0.85, 0.95])}
    assert ws_api.recommend(table.assign(dcr_share=[0.5, 0.9]), "privacy", apart)[0] == "a"


def test_a_likely_outcome_is_suggested_as_the_target(ws):
    rows = "".join(f"{i},{i % 7},{'yes' if i % 3 else 'no'},{i % 2}\n" for i in range(200))
    dataset = ws_api.upload_dataset(ws, "t.csv", ("id,grade,hospdead,sex\n" + rows).encode())
    assert ws_api.suggest_target(ws_api.dataset_schema(dataset)) == "hospdead"


def test_uploads_read_with_the_chosen_encoding_and_separator_and_name_the_pages_choices(ws):
    latin = "name;città\n" + "".join(f"a{i};Forlì\n" for i in range(50))
    with pytest.raises(InputError, match="the encoding choice latin-1 above the upload box"):
        ws_api.upload_dataset(ws, "l.csv", latin.encode("latin-1"))
    dataset = ws_api.upload_dataset(ws, "l.csv", latin.encode("latin-1"), encoding="latin-1", separator=";")
    assert (dataset.rows, dataset.columns) == (50, 2)
    assert ws_api.dataset_table(ws, dataset).columns[1] == "città"


def test_the_recommendation_follows_the_priority_and_skips_blocked_results():
    table = pd.DataFrame(
        {
            "backend": ["a", "b", "c"],
            "status": ["ok", "ok", "ok"],
            "decision": ["pass", "flag", "block"],
            "quality": [0.8, 0.9, 0.99],
            "dcr_share": [0.5, 0.6, 0.4],
            "utility_ratio": [0.7, 0.95, 1.0],
            "fit_seconds": [9.0, 1.0, 0.1],
        }
    )
    assert ws_api.recommend(table, "quality")[0] == "b"
    assert ws_api.recommend(table, "privacy")[0] == "a"
    assert ws_api.recommend(table, "speed")[0] == "b"
    assert ws_api.recommend(table.assign(decision="block"), "quality")[0] is None


def test_the_metadata_form_becomes_crate_metadata_or_one_sentence_naming_the_bad_field():
    line = "Ada Lovelace; {orcid}; University of Cambridge; https://ror.org/013meh722"
    fields = {"title": "T", "description": "D", "license_id": "CC-BY-4.0", "keywords": "sepsis, icu ,"}
    with pytest.raises(
        ConfigError,
        match=r"^In the crate metadata, 'crate\.authors\.0\.orcid' is invalid: '12' is not "
        r"an ORCID iD; give it as https://orcid\.org/0000-0000-0000-0000\.$",
    ):
        ws_api.metadata_form(authors=line.format(orcid="12"), **fields)
    with pytest.raises(ConfigError, match="Each author line takes 'Name;ORCID;Affiliation;ROR-or-URL'"):
        ws_api.metadata_form(authors="Ada Lovelace", **fields)
    with pytest.raises(ConfigError, match="funder's ROR id or web address"):
        ws_api.metadata_form(authors=line.format(orcid=""), funder="Wellcome", **fields)
    form = ws_api.metadata_form(
        authors=line.format(orcid="0000-0002-1825-0097") + "\n\nGrace Hopper; ; Navy; https://www.navy.mil",
        funder="Wellcome Trust",
        funder_address="https://ror.org/029chgv08",
        **fields,
    )
    assert [a["name"] for a in form["authors"]] == ["Ada Lovelace", "Grace Hopper"]
    assert form["authors"][1]["affiliation"] == {"name": "Navy", "url": "https://www.navy.mil"}
    assert form["keywords"] == ["sepsis", "icu"] and form["funder"]["ror"] == "https://ror.org/029chgv08"


def test_an_empty_metadata_form_is_one_sentence_naming_what_is_missing():
    fields = {"license_id": "CC-BY-4.0", "keywords": ""}
    with pytest.raises(ConfigError) as caught:
        ws_api.metadata_form(title=" ", description="", authors="", **fields)
    assert caught.value.problems == (
        "Give the crate a title and a description and an author: every FAIR crate names what it is and who made it.",
    )


def test_a_finished_run_is_deleted_with_its_folder_and_downloads_are_named_after_table_backend_and_date(ws):
    from fairsynth.services.jobs.executors import create_job
    from fairsynth.services.run.config import parse_request

    dataset = ws_api.upload_dataset(ws, "my cohort.csv", b"a,b\n" + b"1,2\n" * 50)
    request = parse_request({"input_path": str(ws.settings.data_dir / dataset.path), "backends": ["marginals"]})
    job = create_job(ws.store, ws.settings, request, executor="elsewhere", dataset_id=dataset.id)
    name = ws_api.download_name(ws, job, "marginals", ws_api.run_dir(ws, job) / "marginals.crate.zip")
    assert name == f"my_cohort-marginals-{job.created_at:%Y-%m-%d}.crate.zip"
    with pytest.raises(InputError, match="still going; cancel it first"):
        ws_api.delete_job(ws, job.id)
    ws.store.cancel_job(job.id)
    ws.store.complete_job(job.id)
    ws_api.delete_job(ws, job.id)
    assert ws_api.list_jobs(ws) == [] and not ws_api.run_dir(ws, job).exists()
