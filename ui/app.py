"""fairsynth UI: Data -> Generate -> Compare -> Export, plus earlier runs; every page calls services only."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).resolve().parent / "pages"
FAVICON = Path(__file__).resolve().parent / "favicon.svg"  # inlined as a data URL: a :material/…: favicon is
# fetched from Google's font CDN, and an air-gapped hospital machine must make no outside request

st.set_page_config(page_title="fairsynth", page_icon=FAVICON, layout="wide")
from fairsynth.ui.common import friendly_errors, keep_selection  # noqa: E402  (after the page is configured)

keep_selection()  # on every page: the URL keeps the chosen table and run over navigation and reloads
DATA = st.Page(PAGES / "data.py", title="Data", icon=":material/table_view:", url_path="data")
navigation = st.navigation(
    [
        # the root URL opens the Data page at /data, so /data is a link that works after a reload too
        st.Page(lambda: st.switch_page(DATA), title="Start", url_path="start", default=True, visibility="hidden"),
        DATA,
        st.Page(PAGES / "generate.py", title="Generate", icon=":material/tune:", url_path="generate"),
        st.Page(PAGES / "compare.py", title="Compare", icon=":material/bar_chart:", url_path="compare"),
        st.Page(PAGES / "export.py", title="Export", icon=":material/inventory_2:", url_path="export"),
        st.Page(PAGES / "runs.py", title="Past runs", icon=":material/history:", url_path="runs"),
    ]
)
with st.sidebar:
    st.markdown("### :material/biotech: fairsynth")
    st.caption("Synthetic health tables from several backends side by side — measured, and packaged FAIR.")

with friendly_errors("This page"):  # whatever a page raises is a short message, never a raw traceback
    navigation.run()
