"""The UI pages (Streamlit AppTest): demo data, backend cards and estimates, a two-backend run followed from the
job store, the comparison and recommendation, crates on the Export page, and earlier runs.

Replaces test_ui_first_page.py (the single first page became the Data/Generate/Compare/Export/Past runs app).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from fairsynth.services.entry import workspace as ws_api

from helpers import wait_for

APP = str(Path(__file__).resolve().parents[2] / "ui" / "app.py")


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A fresh data directory; the UI's workspace (executor and store) is closed afterwards."""
    monkeypatch.setenv("FAIRSYNTH_DATA_DIR", str(tmp_path / "data"))
    yield tmp_path / "data"
    from fairsynth.ui.common import _open, workspace

    workspace().close()
    _open.clear()


def open_app(page: str | None = None) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=120).run()
    if page:
        app.switch_page(page).run()
    assert not app.exception, app.exception
    return app


def wait_for_run(timeout: float = 240.0):
    """The UI's latest job once it has ended."""
    from fairsynth.ui.common import workspace

    def ended():
        job = ws_api.list_jobs(workspace(), limit=1)[0]
        return job if ws_api.is_ended(job) else None

    return wait_for(ended, timeout, interval=0.5, message="the run did not end")


def table_box(app: AppTest):
    """The Data page's table selector (no key: it follows the chosen table)."""
    return next(box for box in app.selectbox if box.label == "Table")


def test_data_page_opens_on_the_demo_table_with_its_schema(data_dir):
    app = open_app()
    assert app.title[0].value == "1 · Data"
    assert "up to 200 MiB" in app.get("file_uploader")[0].proto.label
    preview = app.dataframe[0].value
    assert len(preview) == 50 and "episode_id" in preview.columns
    assert table_box(app).value is not None and "demo" in table_box(app).format_func(table_box(app).value)


def test_generate_page_shows_cards_and_an_estimate_per_ticked_backend(data_dir):
    app = open_app("pages/generate.py")
    names = [c.key.removeprefix("use-") for c in app.checkbox if c.key and c.key.startswith("use-")]
    assert {"marginals", "sdv.gaussian_copula"} <= set(names)
    unavailable = [b for b in ws_api.backends() if not b["available"]]
    for backend in unavailable:
        assert app.checkbox(key=f"use-{backend['name']}").disabled
        assert any(backend["reason"] in c.value for c in app.caption)
    assert app.checkbox(key="use-tvae").value and not app.checkbox(key="use-marginals").value  # the default
    app.checkbox(key="use-tvae").uncheck()
    app.checkbox(key="use-marginals").check()
    app.checkbox(key="use-sdv.gaussian_copula").check().run()
    estimates = app.dataframe[0].value.set_index("backend")
    assert list(estimates.index) == ["marginals", "sdv.gaussian_copula"]
    assert estimates.loc["sdv.gaussian_copula", "fit"] > estimates.loc["marginals", "fit"]  # a fitted copula is slower
    assert any(m.value.startswith("**Estimated time of the whole run: about ") for m in app.markdown)
    app.checkbox(key="use-sdv.ctgan").check().run()
    app.number_input(key="param-sdv.ctgan-epochs").set_value(3).run()
    few = app.dataframe[0].value.set_index("backend").loc["sdv.ctgan", "fit"]
    app.number_input(key="param-sdv.ctgan-epochs").set_value(300).run()
    assert app.dataframe[0].value.set_index("backend").loc["sdv.ctgan", "fit"] > few


def test_generate_page_builds_each_backends_form_from_its_parameter_schema(data_dir):
    from fairsynth.ui.common import workspace

    app = open_app("pages/generate.py")  # tvae is ticked by default
    epochs = app.number_input(key="param-tvae-epochs")
    assert (epochs.value, epochs.min, epochs.max, epochs.step) == (300, 1, None, 1)
    assert epochs.help == "Passes over the training rows. Allowed: >= 1."
    assert app.number_input(key="param-tvae-batch_size").value is None  # empty: the backend chooses
    share = app.number_input(key="param-tvae-validation_share")
    assert (share.value, share.min) == (0.1, 0) and share.help.endswith("Allowed: >= 0 and < 0.5.")
    precision = app.selectbox(key="param-tvae-sample_precision")
    assert list(precision.options) == ["auto", "float32", "bfloat16"] and precision.value == "auto"
    app.checkbox(key="use-sdv.ctgan").check().run()
    assert app.number_input(key="param-sdv.ctgan-batch_size").step == 10  # CTGAN packs 10 rows
    app.number_input(key="param-tvae-learning_rate").set_value(0.0)
    app.button(key="generate").click().run()
    assert "Backend 'tvae': learning_rate must be > 0 (got 0.0)." in app.error[0].value
    assert ws_api.list_jobs(workspace()) == []  # refused before anything was stored


def test_generate_page_offers_the_requests_rare_level_threshold(data_dir):
    threshold = open_app("pages/generate.py").number_input(key="min_level_rows")
    assert (threshold.value, threshold.min, threshold.step) == (10, 2, 1)
    assert "never reproduced" in threshold.help


@pytest.mark.slow
def test_two_backends_run_compare_export_and_reopen(data_dir):
    app = open_app("pages/generate.py")
    app.checkbox(key="use-tvae").uncheck()
    app.checkbox(key="use-marginals").check()
    app.checkbox(key="use-sdv.gaussian_copula").check()
    app.number_input(key="rows").set_value(300)
    app.toggle(key="anonymeter").set_value(False)
    app.button(key="generate").click().run()
    assert not app.exception and not app.error
    job = wait_for_run()
    assert job.state == "succeeded", [(t.backend, t.error) for t in job.tasks]

    reloaded = open_app("pages/generate.py")  # a new session, as after a page reload: progress from the store
    progress = reloaded.dataframe[-1].value
    assert list(progress["backend"]) == ["marginals", "sdv.gaussian_copula"]
    assert set(progress["state"]) == {"succeeded"} and (progress["rows written"] == 300).all()

    compare = open_app("pages/compare.py")
    table = compare.dataframe[0].value
    assert sorted(table["backend"]) == ["marginals", "sdv.gaussian_copula"]
    assert table["quality"].between(0, 1).all()
    verdict = [*compare.success, *compare.info][0].value  # overlapping quality intervals are a tie, named as such
    assert verdict.startswith("Recommended: **") or (
        verdict.startswith("A tie on Quality between ") and "marginals" in verdict and "sdv.gaussian_copula" in verdict
    )
    compare.radio(key="priority").set_value("speed").run()
    fastest = table.sort_values("fit_seconds").iloc[0]["backend"]
    assert f"**{fastest}**" in compare.success[0].value
    assert len(compare.expander) >= 2  # one gate per backend

    export = open_app("pages/export.py")
    export.text_input(key="meta-title").input("Synthetic demo episodes")
    export.text_area(key="meta-description").input("A test run of two backends on the demo table.")
    export.text_area(key="meta-authors").input("Ada Lovelace; 0000-0002-1825-0097; Uni; https://ror.org/013meh722")
    next(b for b in export.button if b.label == "Build and validate crates").click().run()
    assert not export.exception and not export.error, [e.value for e in export.error]
    assert sum("valid crate" in m.value for m in export.markdown) == 2
    shown = [c.value for c in export.code]  # "valid crate" is roc-validator on the zip as shipped, and unpacked
    assert sum("PASS  roc-validator process-run-crate-0.5 on the zip as shipped" in v for v in shown) == 2
    assert [b.label for b in export.get("download_button")][:4] == [
        "Crate zip",
        "Synthetic CSV",
        "Report",
        "PageTab JSON",
    ]
    reopened = open_app("pages/export.py")  # a new session validates the stored crates again
    assert sum("valid crate" in m.value for m in reopened.markdown) == 2
    reopened.text_input(key="meta-title").input("Synthetic demo episodes, second edition")
    reopened.text_area(key="meta-description").input("Rebuilt with a new title.")
    reopened.text_area(key="meta-authors").input("Ada Lovelace; ; Uni; https://ror.org/013meh722")
    next(b for b in reopened.button if b.label == "Build and validate crates").click().run()
    assert sum("valid crate" in m.value for m in reopened.markdown) == 2  # rebuilding over a crate works
    from fairsynth.ui.common import workspace

    crate = ws_api.artefact(workspace(), ws_api.get_job(workspace(), job.id), "marginals", "crate")
    with zipfile.ZipFile(crate) as archive:
        assert "second edition" in archive.read("ro-crate-metadata.json").decode()
    from fairsynth.ui.common import workspace

    deposit = ws_api.deposit_crate(workspace(), ws_api.get_job(workspace(), job.id), "marginals")
    assert deposit["dry_run"] and Path(deposit["plan_dir"], "pagetab.json").is_file()

    runs = open_app("pages/runs.py")
    assert runs.dataframe[0].value.loc[0, "job"] == job.id
    runs.button(key="open-compare").click().run()
    assert not runs.exception and runs.title[0].value == "3 · Compare"


@pytest.mark.slow
def test_bad_metadata_shows_one_sentence_on_the_export_page(data_dir):
    from fairsynth.ui.common import workspace

    ws = workspace()
    job = ws_api.submit_job(ws, ws_api.demo_dataset(ws), [{"name": "marginals"}], rows=100, anonymeter=False)
    assert wait_for_run().id == job.id
    export = open_app("pages/export.py")
    export.text_input(key="meta-title").input("T")
    export.text_area(key="meta-description").input("D")
    export.text_area(key="meta-authors").input("Ada Lovelace; 12; Uni; https://ror.org/013meh722")
    next(b for b in export.button if b.label == "Build and validate crates").click().run()
    assert [e.value for e in export.error] == [
        "In the crate metadata, 'crate.authors.0.orcid' is invalid: '12' is not "
        "an ORCID iD; give it as https://orcid.org/0000-0000-0000-0000."
    ]
    assert not export.expander or all(e.label != "Details" for e in export.expander)


@pytest.mark.slow
def test_cancel_stops_a_long_fit_and_the_page_says_so(data_dir):
    app = open_app("pages/generate.py")
    app.checkbox(key="use-tvae").uncheck()
    app.checkbox(key="use-sdv.ctgan").check().run()
    app.number_input(key="param-sdv.ctgan-epochs").set_value(5000)
    app.button(key="generate").click().run()
    from fairsynth.ui.common import workspace

    job = ws_api.list_jobs(workspace(), limit=1)[0]
    wait_for(
        lambda: ws_api.get_job(workspace(), job.id).tasks[0].state == "running",
        60,
        interval=0.3,
        message="the fit did not start",
    )
    app.run()
    app.button(key="cancel").click().run()
    assert not app.exception
    ended = wait_for_run(timeout=30)
    assert ended.state == "cancelled" and ended.tasks[0].state == "cancelled"
    assert open_app("pages/generate.py").dataframe[-1].value.loc[0, "state"] == "cancelled"


def test_data_page_lists_the_rules_and_refuses_a_broken_one_in_one_sentence(data_dir):
    app = open_app()
    rules = app.dataframe[-1].value
    assert "discharge_date >= admission_date" in list(rules["rule"]) and rules["enforced"].all()
    app.text_input(key="new-rule").input("admission_date > discharge_date")
    app.button[[b.label for b in app.button].index("Add rule")].click().run()
    assert not app.exception, app.exception
    assert [e.value for e in app.error] == [
        "The rule 'admission_date > discharge_date' is broken in 1,933 of 1,933 rows that have its columns; "
        "fix the data or leave the rule out."
    ]


def uploaded(name: str = "cohort.csv"):
    """A small uploaded table (not the demo), as the Data page stores it."""
    from fairsynth.ui.common import workspace

    rows = "".join(f"{i},{20 + i % 50},{'yes' if i % 3 else 'no'},{i % 4}\n" for i in range(300))
    return ws_api.upload_dataset(workspace(), name, ("id,age,died,stage\n" + rows).encode())


def test_the_chosen_table_is_in_the_url_and_a_reload_keeps_it(data_dir):
    app = open_app()
    dataset = uploaded()
    app.run()
    table_box(app).select(dataset.id).run()
    assert app.query_params["dataset"] == dataset.id  # sidebar navigation: tests/e2e/test_ui_browser.py

    reloaded = AppTest.from_file(APP, default_timeout=120)  # a reload: a fresh session with the page's URL
    reloaded.query_params["dataset"] = dataset.id
    reloaded.switch_page("pages/generate.py").run()
    assert not reloaded.exception and "cohort.csv" in reloaded.caption[0].value


def queued_job(dataset, backends: list[str], rows: int):
    """A job stored as submitted but left queued (no executor takes it): a run that is going."""
    from fairsynth.services.jobs.executors import create_job
    from fairsynth.services.run.config import parse_request
    from fairsynth.ui.common import workspace

    ws = workspace()
    raw = {"input_path": str(ws.settings.data_dir / dataset.path), "backends": backends, "rows": rows}
    request = parse_request(raw | {"anonymeter": False})
    schema = ws_api.dataset_schema(dataset)
    return create_job(ws.store, ws.settings, request, executor="elsewhere", schema=schema, dataset_id=dataset.id)


def test_reloading_generate_during_a_run_keeps_its_table_and_choices_and_shows_progress_first(data_dir):
    open_app()
    dataset = uploaded()
    job = queued_job(dataset, ["marginals", "sdv.gaussian_copula"], rows=123)
    app = AppTest.from_file(APP, default_timeout=120)
    app.query_params.update(dataset=dataset.id, job=job.id)
    app.switch_page("pages/generate.py").run()
    assert not app.exception, app.exception
    assert "cohort.csv" in app.caption[0].value
    assert app.subheader[0].value == "Progress"  # at the top while the run is going
    assert "elapsed" in app.get("progress")[0].proto.text and "left" in app.get("progress")[0].proto.text
    assert app.checkbox(key="use-marginals").value and app.checkbox(key="use-sdv.gaussian_copula").value
    assert not app.checkbox(key="use-tvae").value and app.number_input(key="rows").value == 123
    assert app.button(key="generate").disabled


def test_generate_suggests_a_target_when_none_is_set(data_dir):
    open_app()
    dataset = uploaded()
    app = AppTest.from_file(APP, default_timeout=120)
    app.query_params["dataset"] = dataset.id
    app.switch_page("pages/generate.py").run()
    assert any("No target column is set" in w.value and "'died' looks like an outcome" in w.value for w in app.warning)


def learned_count(app: AppTest) -> int:
    """The learned columns the Data page's "Next: generate from N learned columns" link counts."""
    label = next(link for link in app.get("page_link") if "learned columns" in link.proto.label).proto.label
    return int(label.split("generate from ")[1].split()[0])


def test_saving_the_schema_shows_the_dropped_column_and_the_new_count_at_once(data_dir):
    app = open_app()
    editor = app.data_editor[0]
    columns = list(editor.value["column"])
    learned_before = learned_count(app)
    modelled = next(i for i, name in enumerate(columns) if "modelled" in editor.value["handling"][i])
    app.session_state[editor.key] = {"edited_rows": {modelled: {"drop": True}}, "added_rows": [], "deleted_rows": []}
    app.run()
    next(button for button in app.button if button.label == "Save schema").click().run()
    assert not app.exception, app.exception
    assert any("Schema saved" in message.value for message in app.success)
    shown = app.data_editor[0].value  # the editor shows the saved schema, without a reload
    assert bool(shown["drop"][modelled]) and "modelled" not in shown["handling"][modelled]
    assert learned_count(app) == learned_before - 1


def test_generate_page_offers_the_second_evaluator_only_where_it_can_run(data_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("FAIRSYNTH_MOSTLY_VENV", str(tmp_path / "absent"))
    app = open_app("pages/generate.py")
    box = app.checkbox(key="second_evaluator")
    assert box.label == "Also score with mostlyai-qa (second evaluator)" and box.disabled and not box.value
    reason = ws_api.second_evaluator_availability()[1]
    assert "make install-mostly" in reason and any(reason in c.value for c in app.caption)


@pytest.mark.slow
@pytest.mark.skipif(
    not ws_api.second_evaluator_availability()[0], reason="the MOSTLY AI venv is not built (make install-mostly)"
)
def test_a_run_scored_by_the_second_evaluator_shows_it_beside_quality(data_dir):
    app = open_app("pages/generate.py")
    assert not app.checkbox(key="second_evaluator").disabled
    app.checkbox(key="use-tvae").uncheck()
    app.checkbox(key="use-marginals").check()
    app.checkbox(key="second_evaluator").check()
    app.number_input(key="rows").set_value(300)
    app.toggle(key="anonymeter").set_value(False)
    app.button(key="generate").click().run()
    assert not app.exception and not app.error
    job = wait_for_run()
    assert job.state == "succeeded", [(t.backend, t.error) for t in job.tasks]
    assert job.request["second_evaluator"] is True
    columns = list(open_app("pages/compare.py").dataframe[0].value.columns)
    assert columns[columns.index("quality") + 1] == "qa_accuracy"
