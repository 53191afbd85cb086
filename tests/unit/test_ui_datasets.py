"""The UI pages for a dataset of several tables (Streamlit AppTest): several files as one dataset, a long table split by
its subject key, the relationship diagram, the keys editor, dataset backends by shape, a run compared and exported."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest
from test_datasets import three_levels
from test_ui_pages import APP, data_dir, open_app, wait_for_run  # noqa: F401  (data_dir: the fixture)

from fairsynth.services.entry import workspace as ws_api

from helpers import pbc_tables

SEVERAL = "Several tables (one dataset)"
pytestmark = pytest.mark.usefixtures("data_dir")  # a fresh data directory per test, the UI's workspace closed


def table_set(tables: dict) -> object:
    """The tables uploaded as one dataset, as the Data page stores them (one CSV file each)."""
    from fairsynth.ui.common import workspace

    files = [(f"{name}.csv", frame.to_csv(index=False).encode()) for name, frame in tables.items()]
    return ws_api.upload_table_set(workspace(), files)


def opened(dataset, page: str | None = None) -> AppTest:
    """The app opened on a dataset (as its URL carries it), on the Data page or another."""
    app = AppTest.from_file(APP, default_timeout=120)
    app.query_params["dataset"] = dataset.id
    if page:
        app.switch_page(page)
    app.run()
    assert not app.exception, app.exception
    return app


def diagram(app: AppTest) -> str:
    """The DOT text of the Data page's relationship diagram."""
    return app.get("graphviz_chart")[0].proto.spec


def keys(app: AppTest):
    """The Data page's keys editor."""
    return next(editor for editor in app.data_editor if editor.key.startswith("keys-"))


def test_the_several_tables_mode_takes_several_files_at_once():
    app = open_app()
    assert not app.get("file_uploader")[0].proto.multiple_files  # one table, as before
    app.radio(key="upload-mode").set_value(SEVERAL).run()
    uploader = app.get("file_uploader")[0]
    assert uploader.proto.multiple_files and "one file each" in uploader.proto.label
    assert app.button(key="read-tables").disabled  # nothing dropped yet


def test_pbc_and_pbcseq_show_as_one_dataset_with_their_diagram_and_keys():
    open_app()
    dataset = table_set(pbc_tables())
    app = opened(dataset)
    assert next(b for b in app.selectbox if b.label == "Table").format_func(dataset.id) == "pbc, pbcseq · 2 tables"
    assert [tab.label for tab in app.tabs] == ["pbc", "pbcseq"]
    assert len(app.dataframe[0].value) == 50 and "bili" in app.dataframe[0].value.columns
    dot = diagram(app)
    assert '"pbc" [label="pbc\\nkey: id\\n418 rows"];' in dot
    assert '"pbc" -> "pbcseq" [label="id → id\\nordered by day"];' in dot
    shown = keys(app).value.set_index("table")
    assert shown.loc["pbcseq", ["parent", "foreign key", "time column"]].tolist() == ["pbc", "id", "day"]
    assert not app.data_editor or all(not e.key.startswith("schema-") for e in app.data_editor)  # no one-table schema


def save_keys(app: AppTest, table: str, cells: dict) -> None:
    """Edit one table's row of the keys editor as a person does, then press Save keys."""
    editor = keys(app)
    row = list(editor.value["table"]).index(table)
    app.session_state[editor.key] = {"edited_rows": {row: cells}, "added_rows": [], "deleted_rows": []}
    app.run()
    app.button(key="save-keys").click().run()


def test_editing_a_time_column_saves_and_redraws_at_once_and_a_bad_edit_is_refused():
    open_app()
    dataset = table_set(three_levels(40))
    app = opened(dataset)
    save_keys(app, "labs", {"time column": ""})
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert any("Keys saved" in message.value for message in app.success)
    assert "ordered by hour" not in diagram(app) and "ordered by admission_date" in diagram(app)
    assert ws_api.table_set_schema(ws_api_dataset(dataset.id)).entry("labs").sequence is None

    save_keys(app, "labs", {"foreign key": ""})
    assert [e.value for e in app.error] == [
        "Table 'labs' has the parent 'admissions' but no foreign key; name the column."
    ]
    assert '-> "labs"' in diagram(app)  # nothing saved
    save_keys(app, "labs", {"foreign key": "hour"})  # a column whose values are not admissions' keys
    assert [e.value for e in app.error] == [
        "Some labs.hour values are not admissions.admission_id values; link another column."
    ]
    assert '"admissions" -> "labs" [label="admission_id → admission_id' in diagram(app)


def ws_api_dataset(dataset_id: str):
    """The dataset as stored now."""
    from fairsynth.ui.common import workspace

    return workspace().store.get_dataset(dataset_id)


def test_a_long_table_is_split_by_its_subject_key_into_a_new_dataset():
    from fairsynth.ui.common import workspace

    open_app()
    real = pbc_tables()
    long = real["pbcseq"].merge(real["pbc"][["id", "sex", "age"]], on="id")  # a visit table repeating the subject
    dataset = ws_api.upload_dataset(workspace(), "visits.csv", long.to_csv(index=False).encode())
    app = opened(dataset)
    assert app.selectbox(key=f"split-key-{dataset.id}").value == "id"  # the subject key, offered first
    app.button(key="split").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert app.query_params["dataset"] != dataset.id
    split = ws_api_dataset(app.query_params["dataset"])
    assert ws_api.is_table_set(split)
    assert '"subjects" -> "events"' in diagram(app)
    subjects = keys(app).value.set_index("table").loc["subjects"]
    assert subjects["rows"] == long["id"].nunique() and subjects["primary key"] == "id"


def test_generate_offers_only_the_dataset_backends_that_fit_the_shape():
    open_app()
    dataset = table_set(three_levels(40))
    app = opened(dataset, "pages/generate.py")
    assert app.checkbox(key="use-relational").value  # the default
    names = {c.key.removeprefix("use-") for c in app.checkbox if c.key and c.key.startswith("use-")}
    assert "tvae" not in names and "relational" in names  # single-table backends are not offered
    choices = {c["name"]: c for c in ws_api.dataset_backend_choices(ws_api.table_set_schema(dataset))}
    for name, choice in choices.items():
        if not (choice["available"] and choice["fits"]):
            assert app.checkbox(key=f"use-{name}").disabled
            reason = choice["reason"] if not choice["available"] else choice["why_not"]
            assert any(reason in caption.value for caption in app.caption)
    if choices.get("sdv.par", {}).get("available"):
        assert app.checkbox(key="use-sdv.par").disabled  # three tables: PAR takes one subject and one child table
    assert app.number_input(key="subjects").value == 40
    assert app.text_input(key="param-relational-table_backend").value == "tvae"


@pytest.mark.slow
def test_a_pbc_dataset_generated_with_marginals_is_compared_and_exported():
    open_app()
    dataset = table_set(pbc_tables())
    app = opened(dataset, "pages/generate.py")
    app.text_input(key="param-relational-table_backend").input("marginals")
    app.number_input(key="subjects").set_value(200)
    app.button(key="generate").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    job = wait_for_run()
    assert job.state == "succeeded", [(t.backend, t.error) for t in job.tasks]
    assert job.request["backends"][0]["params"]["table_backend"] == "marginals"
    progress = opened(dataset, "pages/generate.py").dataframe[-1].value  # followed from the store, as after a reload
    assert list(progress["backend"]) == ["relational"] and list(progress["state"]) == ["succeeded"]

    compare = opened(dataset, "pages/compare.py")
    table = compare.dataframe[0].value
    assert list(table["backend"]) == ["relational"] and table.loc[0, "referential_integrity"] == 1.0
    links = next(frame.value for frame in compare.dataframe if "relationship" in frame.value)
    assert links.loc[0, "relationship"] == "pbc → pbcseq" and links.loc[0, "in time order"] == 1.0
    tables = next(frame.value for frame in compare.dataframe if "holdout reference" in frame.value)
    assert list(tables["table"]) == ["pbc", "pbcseq"] and tables["quality"].between(0, 1).all()
    assert any(e.label.startswith("relational:") for e in compare.expander)  # the gate's reasons
    compare.selectbox(key="plot-table").set_value("pbcseq").run()
    assert not compare.exception and compare.get("plotly_chart")

    export = opened(dataset, "pages/export.py")
    export.text_input(key="meta-title").input("Synthetic PBC patients and visits")
    export.text_area(key="meta-description").input("200 synthetic patients with their visits, for testing the UI.")
    export.text_area(key="meta-authors").input("Ada Lovelace; 0000-0002-1825-0097; Uni; https://ror.org/013meh722")
    next(b for b in export.button if b.label == "Build and validate crates").click().run()
    assert not export.exception and not export.error, [e.value for e in export.error]
    assert sum("valid crate" in m.value for m in export.markdown) == 1
    assert [b.label for b in export.get("download_button")][:5] == [
        "Crate zip",
        "pbc table",
        "pbcseq table",
        "Report",
        "PageTab JSON",
    ]

    runs = opened(dataset, "pages/runs.py")
    assert runs.dataframe[0].value.loc[0, "job"] == job.id
    runs.button(key="open-compare").click().run()
    assert not runs.exception and runs.title[0].value == "3 · Compare" and not runs.error
