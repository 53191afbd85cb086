"""Page 1 — Data: the demo table or an upload, a preview, and the inferred schema to correct."""

from __future__ import annotations

import streamlit as st

from fairsynth.errors import FairsynthError
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

encoding_column, separator_column, _ = st.columns([1, 1, 2])
encoding = encoding_column.selectbox("encoding", list(ENCODINGS), key="encoding", help="A CSV's text encoding.")
separator = separator_column.selectbox(
    "separator", list(SEPARATORS), key="separator", help="A CSV's separator; detect reads the first lines."
)
upload = st.file_uploader(
    f"Upload a table (CSV, also gzip/bz2/xz/zip compressed, or Parquet; up to {ws_api.upload_limit_mb(ws)} MiB)",
    type=["csv", "tsv", "txt", "parquet", "gz", "bz2", "xz", "zip"],
    key=f"upload-{st.session_state.get('upload_round', 0)}",  # a new key empties the box after a rejected file
)
if upload is not None:
    st.session_state.pop("upload_error", None)
    try:
        dataset = ws_api.upload_dataset(
            ws, upload.name, upload.getvalue(), encoding=ENCODINGS[encoding], separator=SEPARATORS[separator]
        )
        choose_dataset(dataset.id)
    except FairsynthError as exc:
        st.session_state["upload_error"] = problem_text(exc)
    st.session_state["upload_round"] = st.session_state.get("upload_round", 0) + 1  # each file is read once
    st.rerun()
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


dataset = current_dataset()  # first: it registers the demo table on a fresh data directory
datasets = ws.store.list_datasets()
ids = [d.id for d in datasets] or [dataset.id]
names = {d.id: f"{d.name} · {d.rows:,} rows × {d.columns} columns" for d in datasets}
chosen = st.selectbox("Table", ids, index=ids.index(dataset.id) if dataset.id in ids else 0, format_func=names.get)
if chosen != dataset.id:
    choose_dataset(chosen)
    dataset = ws.store.get_dataset(chosen)

with friendly_errors("Reading the table"):
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
    learned = sum(1 for c in schema.columns if c.learned)
    st.page_link("pages/generate.py", label=f"Next: generate from {learned} learned columns →", icon=":material/tune:")
