"""Page 1 — Data: the demo table or an upload (one table or several), a preview, and the inferred schema or keys to
correct."""

from __future__ import annotations

import streamlit as st

from fairsynth.errors import FairsynthError
from fairsynth.services.entry import dataset_views
from fairsynth.services.entry import workspace as ws_api
from fairsynth.ui.common import choose_dataset, current_dataset, friendly_errors, header, problem_text, workspace

STEPS = (
    ("1 Data", "choose or upload a table, check its columns"),
    ("2 Generate", "pick backends, see the time it takes, run"),
    ("3 Compare", "how faithful, private and useful each result is"),
    ("4 Export", "describe it once, download validated crates"),
)

ws = workspace()
header("1 · Data", "Start from the demo table (fabricated hospital episodes) or upload your own CSV or Parquet table.")
for column, (step, what) in zip(st.columns(len(STEPS)), STEPS):  # how this works, on the first screen
    column.markdown(f"**{step}**  \n{what}")

ENCODINGS = {"utf-8": "utf-8", "detect": None, "latin-1": "latin-1", "cp1252": "cp1252", "utf-16": "utf-16"}
SEPARATORS = {"detect": None, "comma ,": ",", "semicolon ;": ";", "tab": "\t", "bar |": "|"}

ONE_TABLE, SEVERAL_TABLES = "One table", "Several tables (one dataset)"
mode = st.radio(
    "Upload",
    [ONE_TABLE, SEVERAL_TABLES],
    horizontal=True,
    key="upload-mode",
    help="Several related tables (patients, their visits, ...) are generated together as whole synthetic subjects.",
)
TYPES = ["csv", "tsv", "txt", "parquet", "gz", "bz2", "xz", "zip"]
LIMIT = f"CSV, also gzip/bz2/xz/zip compressed, or Parquet; up to {ws_api.upload_limit_mb(ws)} MiB"


def uploaded_once(read) -> None:
    """Run an upload's reader once, keep its error for the next run, and empty the box (a new key)."""
    st.session_state.pop("upload_error", None)
    try:
        choose_dataset(read().id)
    except FairsynthError as exc:
        st.session_state["upload_error"] = problem_text(exc)
    st.session_state["upload_round"] = st.session_state.get("upload_round", 0) + 1  # each file is read once
    st.rerun()


if mode == ONE_TABLE:
    encoding_column, separator_column, _ = st.columns([1, 1, 2])
    encoding = encoding_column.selectbox("encoding", list(ENCODINGS), key="encoding", help="A CSV's text encoding.")
    separator = separator_column.selectbox(
        "separator", list(SEPARATORS), key="separator", help="A CSV's separator; detect reads the first lines."
    )
    upload = st.file_uploader(
        f"Upload a table ({LIMIT})",
        type=TYPES,
        key=f"upload-{st.session_state.get('upload_round', 0)}",  # a new key empties the box after a rejected file
    )
    if upload is not None:
        uploaded_once(
            lambda: ws_api.upload_dataset(
                ws, upload.name, upload.getvalue(), encoding=ENCODINGS[encoding], separator=SEPARATORS[separator]
            )
        )
else:
    uploads = st.file_uploader(
        f"Upload the dataset's tables, one file each ({LIMIT} in all); a file's name is its table's name, and each "
        "CSV's encoding and separator are detected",
        type=TYPES,
        accept_multiple_files=True,
        key=f"uploads-{st.session_state.get('upload_round', 0)}",
    )
    if st.button("Read as one dataset", type="primary", disabled=not uploads, key="read-tables"):
        uploaded_once(lambda: ws_api.upload_table_set(ws, [(f.name, f.getvalue()) for f in uploads]))
if st.session_state.get("upload_error"):
    st.error(st.session_state["upload_error"])


def show_rules(dataset, schema) -> None:
    """The detected rules with their support and a toggle each, a box to add one, the minimum support."""
    st.subheader("Rules")
    st.caption(
        "Cross-column rules every real row keeps (support: the rows that have the rule's columns). "
        "Ticked rules are enforced: every synthetic row keeps them. Unticked rules are measured only. "
        "A rule the columns' ranges already imply is listed as implied."
    )
    rules = ws_api.rules_frame(schema)
    if rules.empty:
        st.info(f"No rule holds in every row with at least {schema.min_rule_support:,} rows.")
    else:
        toggled = st.data_editor(
            rules,
            key=f"rules-{dataset.id}-{len(rules)}",
            hide_index=True,
            width="stretch",
            disabled=["rule", "kind", "support", "note"],
            column_config={"enforced": st.column_config.CheckboxColumn("enforced")},
        )
        if st.button("Save rules", key="save-rules"):
            with friendly_errors("Saving the rules"):
                ws_api.edit_rules(ws, dataset, toggled)
                st.success("Rules saved; the next run uses them.")
    left, right = st.columns([3, 1])
    with left.form("add-rule", clear_on_submit=False, border=False):
        text = st.text_input("Add a rule", placeholder="discharge_date >= admission_date", key="new-rule")
        if st.form_submit_button("Add rule") and text.strip():
            with friendly_errors("Adding the rule"):
                ws_api.add_rule(ws, dataset, text)
                st.rerun()
    with right.form("min-support", border=False):
        support = st.number_input("Minimum support (rows)", min_value=1, value=schema.min_rule_support, key="support")
        if st.form_submit_button("Detect again") and support != schema.min_rule_support:
            with friendly_errors("Detecting the rules"):
                ws_api.detect_rules_again(ws, dataset, int(support))
                st.rerun()


def one_table_view(dataset) -> None:
    """A single table: preview, column profiles, the schema to correct, its rules, and the split by subject key."""
    st.subheader(f"Preview — {dataset.name}")
    st.dataframe(ws_api.dataset_table(ws, dataset, rows=50), width="stretch", height=260)

    schema = ws_api.dataset_schema(dataset)
    with st.expander("Column profiles"):
        st.dataframe(
            ws_api.column_profiles(ws, dataset),
            hide_index=True,
            width="stretch",
            key=f"profiles-{dataset.id}",
            column_config={"shape": st.column_config.BarChartColumn("shape", help="histogram, or top levels' counts")},
        )
    st.subheader("Schema")
    st.caption(
        "Correct a column's kind, drop columns, or tick the target (the outcome models are scored on). "
        "Identifiers, subject keys (a key repeated over a subject's rows) and PII are regenerated, never learned; "
        "free text is withheld."
    )
    for warning in schema.warnings:
        st.warning(warning)
    edited = st.data_editor(
        ws_api.schema_frame(schema),
        key=f"schema-{dataset.id}-{st.session_state.get('schema_round', 0)}",  # a new key shows the saved schema
        hide_index=True,
        width="stretch",
        disabled=["column", "missing %", "distinct", "handling"],
        column_config={
            "kind": st.column_config.SelectboxColumn("kind", options=ws_api.SCHEMA_KINDS, required=True),
            "drop": st.column_config.CheckboxColumn("drop"),
            "target": st.column_config.CheckboxColumn("target"),
            "missing %": st.column_config.NumberColumn("missing %", format="%.1f"),
            "handling": st.column_config.TextColumn("handling", width="large"),
        },
    )
    if st.button("Save schema", type="primary"):
        with friendly_errors("Saving the schema"):
            ws_api.edit_schema(ws, dataset, edited)
            st.session_state["schema_round"] = st.session_state.get("schema_round", 0) + 1
            st.session_state["schema_saved"] = True
            st.rerun()  # the handling column and the learned count follow the saved schema at once
    if st.session_state.pop("schema_saved", False):
        st.success("Schema saved; the next run uses it.")
    show_rules(dataset, schema)
    split_by_subject(dataset, schema)
    learned = sum(1 for c in schema.columns if c.learned)
    st.page_link("pages/generate.py", label=f"Next: generate from {learned} learned columns →", icon=":material/tune:")


def split_by_subject(dataset, schema) -> None:
    """Split a long table by its subject key into a subject table and an event table (a new dataset)."""
    keys = [c.name for c in schema.columns if c.kind == "subject_key"]
    with st.expander("Several rows per subject? Split into subjects and events", expanded=bool(keys)):
        st.caption(
            "Pick the column that names the subject (a patient id repeated over their rows): the columns constant "
            "within every subject become a subject table, the rest an event table, and both are generated "
            "together as whole synthetic subjects."
        )
        names = keys + [c for c in schema.names if c not in keys]
        key = st.selectbox("Subject key", names, key=f"split-key-{dataset.id}")
        if st.button("Split into subjects + events", key="split"):
            with friendly_errors("Splitting the table"):
                choose_dataset(ws_api.split_into_table_set(ws, dataset, key).id)
                st.rerun()


def table_set_view(dataset) -> None:
    """Several tables: each one's preview, the relationship diagram, and the keys to correct."""
    schema = ws_api.table_set_schema(dataset)
    tables = ws_api.table_set_tables(ws, dataset, rows=50)
    st.subheader(f"Tables — {dataset.name}")
    for tab, (name, frame) in zip(st.tabs(list(tables)), tables.items()):
        with tab:
            st.dataframe(frame, width="stretch", height=260, key=f"preview-{dataset.id}-{name}")
    st.subheader("Relationships")
    st.caption(
        "Each box is a table with its primary key and rows; each arrow goes from a parent to its child, labelled "
        "with the parent's key and the child's foreign key, and the column that orders a parent's children in time."
    )
    st.graphviz_chart(dataset_views.relationship_graph(schema))
    for warning in schema.warnings:
        st.warning(warning)
    st.subheader("Keys")
    st.caption(
        "Correct a table's primary key, its parent and the foreign key that points to the parent's primary key, "
        "or the time column; an empty cell means none. Keys are regenerated, never learned."
    )
    choices = dataset_views.column_choices(schema)
    edited = st.data_editor(
        dataset_views.keys_frame(schema),
        key=f"keys-{dataset.id}-{st.session_state.get('keys_round', 0)}",  # a new key shows the saved keys
        hide_index=True,
        width="stretch",
        disabled=["table", "rows"],
        column_config={
            "rows": st.column_config.NumberColumn("rows", format="%d"),
            "parent": st.column_config.SelectboxColumn("parent", options=["", *schema.names]),
        }
        | {name: st.column_config.SelectboxColumn(name, options=choices) for name in KEY_CELLS},
    )
    if st.button("Save keys", type="primary", key="save-keys"):
        with friendly_errors("Saving the keys"):
            ws_api.save_table_set_schema(ws, dataset, dataset_views.edited_schema(schema, edited))
            st.session_state["keys_round"] = st.session_state.get("keys_round", 0) + 1
            st.session_state["keys_saved"] = True
            st.rerun()  # the diagram follows the saved keys at once
    if st.session_state.pop("keys_saved", False):
        st.success("Keys saved; the next run uses them.")
    st.page_link("pages/generate.py", label=f"Next: generate {len(schema.tables)} tables →", icon=":material/tune:")


KEY_CELLS = ("primary key", "foreign key", "time column")

dataset = current_dataset()  # first: it registers the demo table on a fresh data directory
datasets = ws.store.list_datasets()
ids = [d.id for d in datasets] or [dataset.id]
names = {
    d.id: f"{d.name} · {len(ws_api.table_set_schema(d).tables)} tables"
    if ws_api.is_table_set(d)
    else f"{d.name} · {d.rows:,} rows × {d.columns} columns"
    for d in datasets
}
chosen = st.selectbox("Table", ids, index=ids.index(dataset.id) if dataset.id in ids else 0, format_func=names.get)
if chosen != dataset.id:
    choose_dataset(chosen)
    dataset = ws.store.get_dataset(chosen)

with friendly_errors("Reading the table"):
    if ws_api.is_table_set(dataset):
        table_set_view(dataset)
    else:
        one_table_view(dataset)
