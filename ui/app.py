"""fairsynth UI: Data -> Generate -> Compare -> Export, plus earlier runs; every page calls services only."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).resolve().parent / "pages"

st.set_page_config(page_title="fairsynth", page_icon=":material/biotech:", layout="wide")
navigation = st.navigation(
    [
        st.Page(PAGES / "data.py", title="Data", icon=":material/table_view:", url_path="data", default=True),
        st.Page(PAGES / "generate.py", title="Generate", icon=":material/tune:", url_path="generate"),
        st.Page(PAGES / "compare.py", title="Compare", icon=":material/bar_chart:", url_path="compare"),
        st.Page(PAGES / "export.py", title="Export", icon=":material/inventory_2:", url_path="export"),
        st.Page(PAGES / "runs.py", title="Past runs", icon=":material/history:", url_path="runs"),
    ]
)
with st.sidebar:
    st.markdown("### :material/biotech: fairsynth")
    st.caption("Synthetic health tables from several backends side by side — measured, and packaged FAIR.")

from fairsynth.ui.common import friendly_errors  # noqa: E402  (after the page is configured)

with friendly_errors("This page"):  # whatever a page raises is a short message, never a raw traceback
    navigation.run()
