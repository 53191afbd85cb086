"""Page 3 — Compare: one table across backends, plots, the release gate's reasons and a recommendation; a dataset of
several tables per relationship and per table."""

from __future__ import annotations

import streamlit as st

from fairsynth.services.entry import dataset_views
from fairsynth.services.entry import workspace as ws_api
from fairsynth.services.run import figures
from fairsynth.services.run.evaluation.metrics import (
    COLUMN_PAIR_TRENDS,
    COLUMN_SHAPES,
    DATASET_METRICS,
    DCR_SHARE,
    ENFORCED_RULE_ADHERENCE,
    EPSILON,
    EXACT_COPIES,
    FIT_SECONDS,
    MIA_AUC,
    QA_ACCURACY,
    QUALITY,
    RULE_ADHERENCE,
    SINGLING_OUT_RISK,
    UTILITY_RATIO,
)
from fairsynth.services.run.evaluation.rules import adherence_table
from fairsynth.services.run.report import ASKED_FOR
from fairsynth.ui.common import friendly_errors, header, job_picker, workspace

SHOWN = (
    FIT_SECONDS,
    QUALITY,
    QA_ACCURACY,  # the second evaluator, when the run asked for it
    COLUMN_SHAPES,
    COLUMN_PAIR_TRENDS,
    ENFORCED_RULE_ADHERENCE,
    RULE_ADHERENCE,
    DCR_SHARE,
    MIA_AUC,
    EXACT_COPIES,
    SINGLING_OUT_RISK,
    UTILITY_RATIO,
    EPSILON,
)  # the declared metrics in the table; labels, formats and goals come from their declarations
DECISION_ICON = {
    "pass": ":green[:material/check_circle: pass]",
    "flag": ":orange[:material/warning: flag]",
    "block": ":red[:material/block: block]",
}  # Material icons ship with Streamlit; emoji need a font
CELL_COLOUR = {
    "pass": "background-color: #e6f4ea",
    "flag": "background-color: #fff4e0",
    "block": "background-color: #fde7e7",
}

ws = workspace()
header("3 · Compare", "Every backend of a run side by side: how faithful, how private, how useful, how fast.")


def dataset_comparison_section(job) -> None:
    """A run on several tables: the dataset measures and gate per backend, then per relationship and per table."""
    table = ws_api.comparison(ws, job)
    if table.empty:
        st.info(f"This run is {job.state}; the comparison appears when every backend has ended.")
        return
    shown_metrics = [m for m in (*DATASET_METRICS, FIT_SECONDS) if m.name in table]
    columns = ["backend", "decision", *(m.name for m in shown_metrics), "status", "error"]
    st.dataframe(
        table[[c for c in columns if c in table]],
        hide_index=True,
        width="stretch",
        key="comparison",
        column_config={
            "backend": st.column_config.TextColumn("Backend", pinned=True),
            "decision": st.column_config.TextColumn("Release gate", pinned=True, help="pass, flag or block"),
        }
        | {
            m.name: st.column_config.NumberColumn(m.label, help=f"{m.meaning}; {m.goal_text}.", format=m.format)
            for m in shown_metrics
        },
    )
    st.caption("Whole subjects compared: the multi-table quality, integrity, order and subject-level privacy.")
    results = {name: ws_api.dataset_metrics(ws, job, name) for name in table["backend"]}
    measured = [name for name, result in results.items() if result]
    st.subheader("Release gate")
    for name in measured:
        gate = results[name]["gate"]
        with st.expander(f"{name}: {DECISION_ICON[gate['decision']]}"):
            for reason in gate["reasons"]:
                st.write("• " + reason)
    st.subheader("Relationships")
    st.caption(
        "Per parent -> child link: the share of child rows whose parent exists, children per parent real vs "
        "synthetic (KS: 0 is the same distribution), and the share of parents whose children are in time order."
    )
    st.dataframe(dataset_views.relationship_frame(results), hide_index=True, width="stretch", key="relationships")
    st.subheader("Tables")
    st.caption("Per table: the single-table quality of its non-key columns beside the held-out rows' own score.")
    st.dataframe(dataset_views.table_quality_frame(results), hide_index=True, width="stretch", key="tables")
    if measured:
        dataset_plots(job, measured)
        st.subheader("Full reports")
        for tab, name in zip(st.tabs(measured), measured):
            with tab:
                report = ws_api.artefact(ws, job, name, "report")
                if report:
                    st.iframe(report, height=900)


def dataset_plots(job, measured: list[str]) -> None:
    """One table's column, real next to each backend's synthetic rows."""
    st.subheader("Plots")
    dataset = ws.store.get_dataset(job.dataset_id)
    schema = ws_api.table_set_schema(dataset)
    name = st.selectbox("Table", schema.names, key="plot-table")
    real = ws_api.table_set_tables(ws, dataset, rows=2000, names=[name])[name]
    synthetic = {backend: ws_api.synthetic_tables(ws, job, backend).get(name) for backend in measured}
    keys = set(schema.key_columns(name))
    specs = {s.name: s for s in schema.entry(name).table.columns if s.learned and s.name not in keys}
    if not specs:
        st.info(f"Table '{name}' has no learned column to plot.")
        return
    spec = specs[st.selectbox("Column", list(specs), key="plot-column")]
    having = {b: frame[spec.name] for b, frame in synthetic.items() if frame is not None and spec.name in frame}
    st.plotly_chart(figures.distribution_figure(spec, real[spec.name], having), width="stretch")


job = job_picker()
if job is not None and ws_api.is_dataset_job(job):
    with friendly_errors("Loading the comparison"):
        dataset_comparison_section(job)
elif job is not None:
    with friendly_errors("Loading the comparison"):
        table = ws_api.comparison(ws, job)
        if table.empty:
            st.info(f"This run is {job.state}; the comparison appears when every backend has ended.")
            st.stop()
        gates = ws_api.gate_reasons(ws, job)
        measured_here = [m for m in SHOWN if m.name in table and (m not in ASKED_FOR or table[m.name].notna().any())]
        columns = ["backend", "decision", *(m.name for m in measured_here), "status", "error"]
        shown = table[[c for c in columns if c in table]]
        decisions = ws_api.threshold_decisions(shown, gates)
        st.dataframe(
            shown.style.apply(lambda _: decisions.map(lambda d: CELL_COLOUR.get(d, "")), axis=None),
            hide_index=True,
            width="stretch",
            key="comparison",
            column_config={
                "backend": st.column_config.TextColumn("Backend", pinned=True),
                "decision": st.column_config.TextColumn(
                    "Release gate", pinned=True, help="pass, flag (look before sharing) or block (do not share)"
                ),
            }
            | {
                m.name: st.column_config.NumberColumn(m.label, help=f"{m.meaning}; {m.goal_text}.", format=m.format)
                for m in SHOWN
            },
        )
        st.caption(
            "Green: within the release policy's threshold; orange: close to it or flagged; red: past a blocking "
            "threshold. Hover a column's name for what it measures."
        )

        priority = st.radio(
            "What matters most?",
            list(ws_api.PRIORITIES),
            horizontal=True,
            key="priority",
            format_func=lambda p: f"{p} ({ws_api.PRIORITIES[p].label})",
        )
        measured = list(gates)
        results = {name: ws_api.metrics(ws, job, name) for name in measured}
        best, why = ws_api.recommend(table, priority, results)
        (st.success if best else st.info)(f"Recommended: **{best}** — {why}." if best else why)

        st.subheader("Release gate")
        for name, gate in gates.items():
            with st.expander(f"{name}: {DECISION_ICON[gate.decision]}"):
                for reason in gate.reasons:
                    st.write("• " + reason)

        rules = adherence_table(results)
        if not rules.empty:
            st.subheader("Rules")
            st.caption("Share of each backend's synthetic rows that keep each cross-column rule of the real table.")
            st.dataframe(
                rules,
                hide_index=True,
                width="stretch",
                key="rules",
                column_config={name: st.column_config.NumberColumn(name, format="percent") for name in measured},
            )
        if measured:
            st.subheader("Plots")
            real = ws_api.training_sample(ws, job)
            synthetic = {name: ws_api.synthetic_sample(ws, job, name) for name in measured}
            specs = {
                s.name: s
                for s in ws_api.learned_columns(ws, job)
                if s.name in real and any(s.name in frame for frame in synthetic.values())
            }
            spec = specs[st.selectbox("Column", list(specs), key="plot-column")]
            having = {name: frame[spec.name] for name, frame in synthetic.items() if spec.name in frame}
            st.plotly_chart(figures.distribution_figure(spec, real[spec.name], having), width="stretch")
            st.markdown("**Association between columns**: real next to synthetic")
            shown_backend = st.selectbox("Backend", measured, key="corr-backend")
            association = results[shown_backend].quality.association
            for figure in figures.association_figures(association):
                st.plotly_chart(figure, width="stretch")
            st.markdown("**Distance to closest record (DCR)**")
            dcrs = {name: result.privacy.dcr for name, result in results.items() if result.privacy.dcr}
            st.plotly_chart(figures.dcr_figure(dcrs), width="stretch")
            st.subheader("Full reports")
            for tab, name in zip(st.tabs(measured), measured):
                with tab:
                    report = ws_api.artefact(ws, job, name, "report")
                    if report:
                        st.iframe(report, height=900)  # our own report.html; its plots carry plotly inline
