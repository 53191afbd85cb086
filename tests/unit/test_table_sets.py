"""Table sets (several related tables) in the workspace: upload, split, schema edits, backends, jobs and results."""

from __future__ import annotations

import json
import time
import zipfile

import pandas as pd
import pytest
from test_datasets import FAST, three_levels

from fairsynth.services.entry import workspace as ws_api
from fairsynth.services.run.datasets import (
    DatasetRequest,
    finish_dataset_run,
    load_dataset_plan,
    prepare_dataset_run,
    run_planned_dataset_backend,
)
from fairsynth.services.run.tables import InputError
from fairsynth.services.settings import Settings

from helpers import alive, pbc_tables, wait_for


@pytest.fixture
def ws(tmp_path):
    workspace = ws_api.open_workspace(Settings.from_env({"FAIRSYNTH_DATA_DIR": str(tmp_path / "data")}))
    yield workspace
    workspace.close()


def csv_files(tables: dict[str, pd.DataFrame]) -> list[tuple[str, bytes]]:
    return [(f"{name}.csv", frame.to_csv(index=False).encode()) for name, frame in tables.items()]


def nothing_stored(ws) -> bool:
    folder = ws.settings.data_dir / "datasets"
    return ws.store.list_datasets() == [] and (not folder.exists() or list(folder.iterdir()) == [])


# -- the split run --------------------------------------------------------------------------------
def test_a_prepared_dataset_run_runs_one_backend_in_another_process_and_finishes_with_a_comparison(tmp_path):
    folder = tmp_path / "cohort"
    folder.mkdir()
    for name, frame in pbc_tables().items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    request = DatasetRequest(input_paths=[str(folder)], backends=[{"name": "relational", "params": FAST}], seed=3)
    prepared = prepare_dataset_run(request, tmp_path / "run")
    assert {"plan.json", "dataset.json", "request.json"} <= {p.name for p in (tmp_path / "run").iterdir()}
    plan = load_dataset_plan(tmp_path / "run")  # what a worker process does: the same split, rebuilt
    assert plan.train["pbc"]["id"].tolist() == prepared.train["pbc"]["id"].tolist()
    events = []
    outcome = run_planned_dataset_backend(plan, "relational", events.append)
    assert [e.stage for e in events][:1] == ["fit"] and events[-1].stage == "evaluate"
    sampled = [e for e in events if e.stage == "sample"]
    assert sampled[-1].step == sampled[-1].total == len(plan.train["pbc"])
    assert outcome.files["pbcseq"] == tmp_path / "run" / "relational" / "pbcseq.csv"
    assert not list((tmp_path / "run").glob(".*.partial"))
    finish_dataset_run(plan, [outcome], failed={"sdv.hma": "RuntimeError: it broke"})
    table = pd.read_csv(tmp_path / "run" / "comparison.csv")
    assert table["backend"].tolist() == ["relational", "sdv.hma"]
    assert table["status"].tolist() == ["ok", "failed"]
    ok = table.iloc[0]
    assert ok["referential_integrity"] == 1.0 and ok["subject_copies"] == 0
    assert 0 < ok["dataset_quality"] <= 1 and ok["decision"] in {"pass", "flag", "block"}
    assert table.iloc[1]["error"] == "RuntimeError: it broke"


def test_a_dataset_run_refuses_a_changed_table_in_the_worker(tmp_path):
    for name, frame in three_levels(40).items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    request = DatasetRequest(input_paths=[str(tmp_path / f"{n}.csv") for n in ("patients", "admissions", "labs")])
    prepare_dataset_run(request, tmp_path / "run")
    (tmp_path / "labs.csv").write_text((tmp_path / "labs.csv").read_text() + "L99999,5000,1,1.0\n")
    with pytest.raises(Exception, match="labs.csv changed after the run was prepared"):
        load_dataset_plan(tmp_path / "run")


PEOPLE = ("pid,x\n" + "".join(f"{i},{i % 3}\n" for i in range(1, 21))).encode()
VISITS = ("vid,owner\n" + "".join(f"{i},{i % 20 + 1}\n" for i in range(1, 41))).encode()


# -- upload, split, schema ------------------------------------------------------------------------
def test_pbc_and_pbcseq_upload_as_one_table_set_in_a_server_chosen_folder(ws):
    files = [("../../etc/pbc.csv", pbc_tables()["pbc"].to_csv(index=False).encode())]
    files.append(("C:\\x\\pbcseq.csv", pbc_tables()["pbcseq"].to_csv(index=False).encode()))
    dataset = ws_api.upload_table_set(ws, files, name="PBC cohort")
    assert ws_api.is_table_set(dataset) and dataset.format == "tables" and dataset.name == "PBC cohort"
    assert (dataset.rows, dataset.columns) == (418, 20 + 19 + 2)
    folder = (ws.settings.data_dir / dataset.path).resolve()
    assert folder.is_relative_to((ws.settings.data_dir / "datasets").resolve())
    assert sorted(p.name for p in folder.iterdir()) == ["pbc.csv", "pbcseq.csv"]
    schema = ws_api.table_set_schema(dataset)
    assert [(r.parent, r.parent_key, r.child, r.child_key) for r in schema.relationships] == [
        ("pbc", "id", "pbcseq", "id")
    ]
    tables = ws_api.table_set_tables(ws, dataset, rows=5)
    assert set(tables) == {"pbc", "pbcseq"} and len(tables["pbcseq"]) == 5


@pytest.mark.parametrize(
    "files, messages",
    [
        ([("a.csv", b"id,x\n1,2\n")], ["at least two table files"]),
        ([("a.csv", b"id,x\n1,2\n"), ("sub/a.csv", b"id,y\n1,2\n")], ["Two files give the table name 'a'"]),
        ([("a.csv", b""), ("b.csv", b"id,y\n1,2\n")], ["a.csv is empty"]),
        (
            [("people.csv", PEOPLE), ("visits.csv", VISITS)],
            ["No relationship was found", "patient_id for patients.id"],
        ),
    ],
)
def test_bad_table_set_uploads_get_one_sentence_each_and_leave_nothing_behind(ws, files, messages):
    with pytest.raises(InputError) as caught:
        ws_api.upload_table_set(ws, files)
    for message in messages:
        assert message in str(caught.value)
    assert nothing_stored(ws)


def test_a_long_table_splits_into_subjects_and_events(ws):
    long = pbc_tables()["pbcseq"]
    dataset = ws_api.upload_dataset(ws, "pbcseq.csv", long.to_csv(index=False).encode())
    tables = ws_api.split_into_table_set(ws, dataset, "id")
    schema = ws_api.table_set_schema(tables)
    assert schema.top_down() == ["subjects", "events"] and tables.rows == long["id"].nunique()
    assert {"sex", "trt"} <= set(schema.entry("subjects").table.names) and "bili" in schema.entry("events").table.names


def test_schema_edits_are_checked_against_the_tables_and_every_problem_named(ws):
    dataset = ws_api.upload_table_set(ws, csv_files(pbc_tables()))
    schema = ws_api.table_set_schema(dataset)
    edited = schema.model_copy(deep=True)
    edited.entry("pbcseq").sequence = None
    assert ws_api.save_table_set_schema(ws, dataset, edited).entry("pbcseq").sequence is None
    assert ws_api.table_set_schema(ws.store.get_dataset(dataset.id)).entry("pbcseq").sequence is None
    broken = schema.model_copy(deep=True)
    broken.entry("pbc").primary_key = "sex"
    broken.relationships[0].child_key = "status"
    broken.entry("pbcseq").sequence = "nope"
    with pytest.raises(InputError) as caught:
        ws_api.save_table_set_schema(ws, dataset, broken)
    assert "no column 'nope'" in str(caught.value)
    broken.entry("pbcseq").sequence = "day"
    with pytest.raises(InputError) as caught:
        ws_api.save_table_set_schema(ws, dataset, broken)
    assert len(caught.value.problems) == 2  # the key that repeats and the link whose values are not keys
    assert "'sex' cannot be the primary key of 'pbc'" in str(caught.value)
    assert ws_api.table_set_schema(ws.store.get_dataset(dataset.id)).entry("pbc").primary_key == "id"


def test_dataset_backend_choices_say_which_fit(ws):
    dataset = ws_api.upload_table_set(ws, csv_files(three_levels(30)))
    choices = {c["name"]: c for c in ws_api.dataset_backend_choices(ws_api.table_set_schema(dataset))}
    assert {"relational", "sdv.hma", "sdv.par"} <= set(choices)
    assert choices["relational"]["fits"] and choices["relational"]["why_not"] == ""
    assert not choices["sdv.par"]["fits"] and choices["sdv.par"]["why_not"]  # three levels: PAR takes two


def test_a_table_set_job_refuses_single_table_backends_in_one_sentence(ws):
    dataset = ws_api.upload_table_set(ws, csv_files(three_levels(30)))
    with pytest.raises(InputError, match="tvae cannot run on this table set; choose among .*relational"):
        ws_api.submit_job(ws, dataset, [{"name": "tvae"}], rows=None)
    assert ws.store.list_jobs() == [] and not list((ws.settings.data_dir / "runs").iterdir())


@pytest.mark.slow
def test_a_table_set_job_runs_each_backend_as_a_task_and_packages_crates(ws):
    dataset = ws_api.upload_table_set(ws, csv_files(pbc_tables()))
    job = ws_api.submit_job(ws, dataset, [{"name": "relational", "params": FAST}], rows=100, seed=1)
    assert [t.backend for t in job.tasks] == ["relational"]
    for _ in range(600):
        job = ws_api.get_job(ws, job.id)
        if ws_api.is_ended(job):
            break
        time.sleep(0.5)
    assert job.state == "succeeded", (job.error, [t.error for t in job.tasks])
    table = ws_api.comparison(ws, job)
    assert table["backend"].tolist() == ["relational"] and table["status"].tolist() == ["ok"]
    assert ws_api.dataset_metrics(ws, job, "relational")["structure"]["referential_integrity"] == 1.0
    tables = ws_api.synthetic_tables(ws, job, "relational", rows=50)
    assert (
        len(tables["pbc"]) == 50
        and tables["pbcseq"]["id"].isin(ws_api.synthetic_tables(ws, job, "relational", rows=1000)["pbc"]["id"]).all()
    )
    assert ws_api.artefact(ws, job, "relational", "report").name == "report.html"
    assert ws_api.runs_frame(ws, [job])["release gate"].item().startswith("relational: ")
    form = ws_api.metadata_form(
        title="PBC", description="pbc", authors="A B;;Uni;https://example.org", license_id="CC-BY-4.0", keywords="pbc"
    )
    results = ws_api.package_crates(ws, ws_api.get_job(ws, job.id), form)
    crate = ws_api.artefact(ws, ws_api.get_job(ws, job.id), "relational", "crate")
    if results["relational"]["crate"] is None:  # the gate may block marginals' copies; then it says why
        assert "release gate blocked" in results["relational"]["error"] and crate is None
    else:
        assert results["relational"]["validation"]["ok"]
        assert {"data/pbc.csv", "data/pbcseq.csv"} <= set(zipfile.ZipFile(crate).namelist())
    assert json.loads(ws_api.progress_frame(ws_api.get_job(ws, job.id)).to_json())["state"]["0"] == "succeeded"
    ws_api.delete_job(ws, job.id)
    assert not ws_api.run_dir(ws, job).exists()


@pytest.mark.slow
def test_cancelling_a_table_set_job_kills_its_task_and_leaves_no_half_written_tables(ws):
    dataset = ws_api.upload_table_set(ws, csv_files(pbc_tables()))
    job = ws_api.submit_job(ws, dataset, [{"name": "relational", "params": {"epochs": 5000}}], rows=None)
    running = wait_for(
        lambda: (t := ws.store.get_job(job.id).tasks[0]).stage == "fit" and t.pid and t,
        120,
        message="the dataset task never started fitting",
    )
    ended = ws_api.cancel_job(ws, job.id)
    assert ended.state == "cancelled" and ended.tasks[0].state == "cancelled"
    wait_for(lambda: not alive(running.pid), 15, message="the task process lives on")
    assert (
        not list(ws_api.run_dir(ws, job).glob(".*.partial")) and not (ws_api.run_dir(ws, job) / "relational").exists()
    )
    assert ws_api.artefact(ws, ws_api.get_job(ws, job.id), "relational", "crate") is None
