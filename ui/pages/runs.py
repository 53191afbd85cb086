"""Past runs: every earlier job from the store, reopenable in Compare and Export."""

from __future__ import annotations

import streamlit as st

from fairsynth.services.entry import workspace as ws_api
from fairsynth.ui.common import choose_job, friendly_errors, header, workspace

ws = workspace()
header("Past runs", "Earlier runs from the job store; open one to compare or export it.")

with friendly_errors("Listing runs"):
    jobs = ws_api.list_jobs(ws, limit=200)
    if not jobs:
        st.info("No run yet: generate one on the Generate page.")
        st.stop()
    st.dataframe(ws_api.jobs_frame(jobs), hide_index=True, width="stretch", key="runs")
    labels = {
        j.id: f"{j.created_at:%Y-%m-%d %H:%M} · {', '.join(t.backend for t in j.tasks)} · {j.state}" for j in jobs
    }
    chosen = st.selectbox("Run", list(labels), format_func=labels.get, key="runs-choice")
    left, right = st.columns(2)
    if left.button("Open in Compare", type="primary", key="open-compare"):
        choose_job(chosen)
        st.switch_page("pages/compare.py")
    if right.button("Open in Export", key="open-export"):
        choose_job(chosen)
        st.switch_page("pages/export.py")
