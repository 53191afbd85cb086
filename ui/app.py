"""fairsynth UI (first page): the demo table, the backends, one generation run side by side."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from services.catalog import backend_catalog
from services.config import BackendSpec, GenerationRequest
from services.demo import load_demo_table
from services.pipeline import run

st.set_page_config(page_title="fairsynth", page_icon="🧬", layout="wide")
st.title("fairsynth")
st.caption("Synthetic health tables from several backends side by side — measured, and packaged FAIR.")

st.subheader("Demo table")
st.write("Fabricated hospital episodes (no real person): IDs, NHS test-range numbers, dates, rare codes, gaps.")
st.dataframe(load_demo_table().head(20), use_container_width=True)

st.subheader("Backends")
catalog = pd.DataFrame([{"backend": b["name"], "available": b["available"],
                         "family": b["capabilities"].get("family", ""),
                         "license": b["capabilities"].get("license", ""),
                         "about": b["capabilities"].get("description", "") or b["reason"]}
                        for b in backend_catalog()])
st.dataframe(catalog, use_container_width=True, hide_index=True)

available = catalog.loc[catalog["available"], "backend"].tolist()
chosen = st.multiselect("Backends to run", available, default=[n for n in ("marginals",) if n in available])
epochs = st.number_input("Epochs (for backends that train in epochs)", 1, 1000, 20)
rows = st.number_input("Rows to generate", 100, 1_000_000, 2_000, step=100)

if st.button("Generate", type="primary", disabled=not chosen):
    out = Path(tempfile.mkdtemp(prefix="fairsynth-ui-")) / "run"
    params = {b["name"]: b["parameters"] for b in backend_catalog()}
    specs = [BackendSpec(name=n, params={"epochs": int(epochs)} if "epochs" in params[n] else {}) for n in chosen]
    with st.spinner("Fitting and sampling…"):
        result = run(GenerationRequest(backends=specs, rows=int(rows), output_dir=str(out)))
    st.success(f"Run written to {result.directory}")
    st.dataframe(result.comparison(), use_container_width=True, hide_index=True)
    for outcome in result.outcomes:
        if outcome.ok:
            with st.expander(f"{outcome.backend}: first rows"):
                st.dataframe(pd.read_csv(Path(outcome.directory) / "data" / "synthetic.csv", nrows=20))
