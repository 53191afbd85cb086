"""Page 1 — Data: the demo table or an upload, a preview, and the inferred schema to correct."""

from __future__ import annotations

import streamlit as st

from fairsynth.errors import FairsynthError
from fairsynth.services.entry import workspace as ws_api
from fairsynth.ui.common import choose_dataset, current_dataset, friendly_errors, header, problem_text, workspace

ws = workspace()
header("1 · Data", "Start from the demo table (fabricated hospital episodes) or upload your own CSV or Parquet table.")

upload = st.file_uploader(
    f"Upload a table (CSV, also gzip/bz2/xz/zip compressed, or Parquet; up to {ws_api.upload_limit_mb(ws)} MiB)",
    type=["csv", "tsv", "txt", "parquet", "gz", "bz2", "xz", "zip"],
    key="upload",
)
if upload is not None and st.session_state.get("uploaded_file_id") != upload.file_id:
    st.session_state["uploaded_file_id"] = upload.file_id
    st.session_state.pop("upload_error", None)
    try:
        dataset = ws_api.upload_dataset(ws, upload.name, upload.getvalue())
        choose_dataset(dataset.id)
    except FairsynthError as exc:
        st.session_state["upload_error"] = problem_text(exc)
if st.session_state.get("upload_error"):
    st.error(st.session_state["upload_error"])

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
        key=f"schema-{dataset.id}",
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
            st.success("Schema saved; the next run uses it.")
    learned = sum(1 for c in schema.columns if c.learned)
    st.page_link("pages/generate.py", label=f"Next: generate from {learned} learned columns →", icon=":material/tune:")
