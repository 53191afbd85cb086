"""Page 3 — Compare: one table across backends, plots, the release gate's reasons and a recommendation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from fairsynth.services.entry import workspace as ws_api
from fairsynth.ui.common import friendly_errors, header, job_picker, workspace

HEADLINE = [
    "backend",
    "status",
    "decision",
    "fit_seconds",
    "quality",
    "column_shapes",
    "column_pair_trends",
    "dcr_share",
    "mia_auc",
    "exact_copies",
    "singling_out_risk",
    "utility_ratio",
    "epsilon",
    "error",
]
DECISION_ICON = {
    "pass": ":green[:material/check_circle: pass]",
    "flag": ":orange[:material/warning: flag]",
    "block": ":red[:material/block: block]",
}  # Material icons ship with Streamlit; emoji need a font

ws = workspace()
header("3 · Compare", "Every backend of a run side by side: how faithful, how private, how useful, how fast.")


def distribution_figure(column: str, real: pd.DataFrame, synthetic: dict[str, pd.DataFrame]) -> go.Figure:
    """Real vs each backend for one column: overlaid histograms (numbers) or category shares (the rest)."""
    figure = go.Figure()
    numeric = pd.api.types.is_numeric_dtype(real[column])
    for name, frame in {"real": real, **synthetic}.items():
        values = frame[column].dropna() if column in frame else pd.Series(dtype=float)
        if numeric:
            figure.add_histogram(
                x=pd.to_numeric(values, errors="coerce"), name=name, histnorm="probability", opacity=0.55, nbinsx=30
            )
        else:
            shares = values.astype(str).value_counts(normalize=True).head(20)
            figure.add_bar(x=shares.index, y=shares.values, name=name)
    figure.update_layout(
        barmode="overlay" if numeric else "group",
        height=360,
        template="plotly_white",
        title=f"{column}: real vs synthetic",
        margin={"t": 50, "b": 40},
    )
    return figure


def correlation_difference(real: pd.DataFrame, synthetic: pd.DataFrame, columns: list[str]) -> go.Figure:
    """|corr(real) − corr(synthetic)| over the numeric columns both tables share."""
    shared = [c for c in real.select_dtypes("number").columns if c in synthetic and c in columns]
    numbers = lambda frame: frame[shared].apply(pd.to_numeric, errors="coerce")  # noqa: E731
    difference = (numbers(real).corr() - numbers(synthetic).corr()).abs()
    figure = go.Figure(go.Heatmap(z=difference.values, x=shared, y=shared, zmin=0, zmax=1, colorscale="Reds"))
    figure.update_layout(height=420, template="plotly_white", margin={"t": 30})
    return figure


def dcr_figure(measures: dict[str, dict]) -> go.Figure:
    """Distance to the closest training row, per backend, against the real holdout's baseline."""
    figure = go.Figure()
    for name, metrics in measures.items():
        dcr = (metrics.get("privacy") or {}).get("dcr")
        if not dcr:
            continue
        edges = np.array(dcr["histogram_edges"])
        centres = (edges[:-1] + edges[1:]) / 2
        counts = np.array(dcr["synthetic_to_train"]["histogram"], dtype=float)
        figure.add_scatter(x=centres, y=counts / max(counts.sum(), 1), name=f"{name} → train", mode="lines")
        baseline = np.array(dcr["holdout_to_train"]["histogram"], dtype=float)
    if figure.data:
        figure.add_scatter(
            x=centres,
            y=baseline / max(baseline.sum(), 1),
            name="real holdout → train (baseline)",
            mode="lines",
            line={"dash": "dash", "color": "black"},
        )
    figure.update_layout(
        height=360,
        template="plotly_white",
        xaxis_title="distance to closest training row",
        yaxis_title="share of rows",
        margin={"t": 30},
    )
    return figure


job = job_picker()
if job is not None:
    with friendly_errors("Loading the comparison"):
        table = ws_api.comparison(ws, job)
        if table.empty:
            st.info(f"This run is {job.state}; the comparison appears when every backend has ended.")
            st.stop()
        shown = table[[c for c in HEADLINE if c in table]].copy()
        st.dataframe(
            shown,
            hide_index=True,
            width="stretch",
            key="comparison",
            column_config={
                c: st.column_config.NumberColumn(c, format="%.3f")
                for c in (
                    "quality",
                    "column_shapes",
                    "column_pair_trends",
                    "dcr_share",
                    "mia_auc",
                    "utility_ratio",
                    "singling_out_risk",
                )
            },
        )
        st.caption(
            "quality: sdmetrics score (higher is better) · dcr_share: share of synthetic rows closer to "
            "training than to holdout rows (≈0.5 is ideal) · mia_auc: membership inference (≈0.5 is safe) · "
            "utility_ratio: model trained on synthetic vs real (1 is as good as real)."
        )

        priority = st.radio("What matters most?", list(ws_api.PRIORITIES), horizontal=True, key="priority")
        best, why = ws_api.recommend(table, priority)
        (st.success if best else st.warning)(f"Recommended: **{best}** — {why}." if best else why)

        gates = ws_api.gate_reasons(ws, job)
        st.subheader("Release gate")
        for name, gate in gates.items():
            with st.expander(f"{name}: {DECISION_ICON.get(gate.get('decision'), gate.get('decision'))}"):
                for reason in gate.get("reasons") or ["No finding: every check passed."]:
                    st.write("• " + reason)

        measured = list(gates)
        if measured:
            st.subheader("Plots")
            real = ws_api.training_sample(ws, job)
            synthetic = {name: ws_api.synthetic_sample(ws, job, name) for name in measured}
            learned = ws_api.learned_columns(ws, job)
            columns = [c for c in learned if c in real and any(c in s for s in synthetic.values())]
            column = st.selectbox("Column", columns, key="plot-column")
            st.plotly_chart(distribution_figure(column, real, synthetic), width="stretch")
            left, right = st.columns(2)
            with left:
                st.markdown("**Correlation difference** |real − synthetic|")
                corr_backend = st.selectbox("Backend", measured, key="corr-backend")
                st.plotly_chart(correlation_difference(real, synthetic[corr_backend], columns), width="stretch")
            with right:
                st.markdown("**Distance to closest record (DCR)**")
                st.plotly_chart(dcr_figure({n: ws_api.metrics(ws, job, n) for n in measured}), width="stretch")
            st.subheader("Full reports")
            for tab, name in zip(st.tabs(measured), measured):
                with tab:
                    report = ws_api.artefact(ws, job, name, "report")
                    if report:
                        st.iframe(report, height=900)  # our own report.html; its plots carry plotly inline
