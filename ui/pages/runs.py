"""Past runs: every earlier job from the store, reopenable in Compare and Export."""

from __future__ import annotations

import streamlit as st

from fairsynth.services.entry import workspace as ws_api
from fairsynth.ui.common import choose_job, forget_job, friendly_errors, header, workspace

ws = workspace()
header("Past runs", "Earlier runs from the job store; open one to compare or export it, or delete it.")

with friendly_errors("Listing runs"):
    jobs = ws_api.list_jobs(ws, limit=200)
    if not jobs:
        st.info("No run yet: generate one on the Generate page.")
        st.stop()
    st.dataframe(
        ws_api.runs_frame(ws, jobs),
        hide_index=True,
        width="stretch",
        key="runs",
        column_config={"took s": st.column_config.NumberColumn("took s", format="%.0f")},
    )
    labels = {
        j.id: f"{j.created_at:%Y-%m-%d %H:%M} · {', '.join(t.backend for t in j.tasks)} · {j.state}" for j in jobs
    }
    chosen = st.selectbox("Run", list(labels), format_func=labels.get, key="runs-choice")
    left, middle, right = st.columns(3)
    if left.button("Open in Compare", type="primary", key="open-compare"):
        choose_job(chosen)
        st.switch_page("pages/compare.py")
    if middle.button("Open in Export", key="open-export"):
        choose_job(chosen)
        st.switch_page("pages/export.py")
    with right.popover("Delete this run", icon=":material/delete:"):
        st.write("Its results, reports and crates are removed for good.")
        if st.button("Delete", type="primary", key="delete-run"):
            ws_api.delete_job(ws, chosen)
            forget_job(chosen)
            st.rerun()
