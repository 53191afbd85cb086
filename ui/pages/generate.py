"""Page 2 — Generate: pick backends side by side, set them, see the estimate, follow live progress, cancel."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from fairsynth.services.entry import workspace as ws_api
from fairsynth.services.entry.catalog import ParameterField, parameter_fields
from fairsynth.services.jobs.store import JobState
from fairsynth.services.run.config import DEFAULT_BACKENDS, GenerationRequest
from fairsynth.ui.common import choose_job, current_dataset, current_job, friendly_errors, header, workspace

ws = workspace()
dataset = current_dataset()
schema = ws_api.dataset_schema(dataset)
header("2 · Generate", f"Synthesise **{dataset.name}** ({dataset.rows:,} rows) with several backends side by side.")


def badges(backend: dict) -> str:
    """DP / GPU / family badges of a backend card."""
    caps = backend["capabilities"]
    marks = [f":blue-badge[{caps.get('family', '?')}]"]
    if caps.get("dp"):
        marks.append(":green-badge[differential privacy]")
    if caps.get("gpu"):
        marks.append(":violet-badge[GPU]")
    return " ".join(marks)


def backend_card(backend: dict) -> bool:
    """One card: name, badges, description, license and a tick box (greyed with the reason when unavailable)."""
    with st.container(border=True):
        name = backend["name"]
        if not backend["available"]:
            st.markdown(f"**:gray[{name}]**")
            st.caption(f"Unavailable here: {backend['reason']}")
            st.checkbox(f"Use {name}", key=f"use-{name}", disabled=True, value=False)
            return False
        st.markdown(f"**{name}** {badges(backend)}")
        st.caption(backend["capabilities"].get("description", ""))
        st.caption(f"License: {backend['capabilities'].get('license', 'unknown')}")
        return st.checkbox(f"Use {name}", key=f"use-{name}", value=name in DEFAULT_BACKENDS)


def parameter_inputs(backend: dict) -> dict:
    """Inputs for a backend's parameters, built from the JSON schema of its Params model."""
    return {field.name: parameter_input(backend["name"], field) for field in parameter_fields(backend["parameters"])}


def parameter_input(backend: str, field: ParameterField) -> object:
    """One parameter's widget: a checkbox, a choice, a bounded number or text; its help is the description."""
    key, label = f"param-{backend}-{field.name}", field.name.replace("_", " ")
    allowed = field.allowed()
    help_text = f"{field.description} Allowed: {allowed}." if allowed else field.description
    if field.kind == "boolean":
        return st.checkbox(label, value=bool(field.default), key=key, help=help_text)
    if field.choices:
        return st.selectbox(label, field.choices, index=field.choices.index(field.default), key=key, help=help_text)
    if field.kind in ("integer", "number"):
        return number_input(label, field, key, help_text)
    return st.text_input(label, value=field.default or "", key=key, help=help_text)


def number_input(label: str, field: ParameterField, key: str, help_text: str) -> int | float | None:
    """A number input with the parameter's bounds (an exclusive bound of a whole number becomes the next one;
    of a real number it stays in the help text: the widget has no exclusive bounds)."""
    whole = field.kind == "integer"
    cast = int if whole else float
    low, high = field.minimum, field.maximum
    if whole and field.exclusive_minimum is not None:
        low = field.exclusive_minimum + 1
    if whole and field.exclusive_maximum is not None:
        high = field.exclusive_maximum - 1
    return st.number_input(
        label,
        min_value=None if low is None else cast(low),
        max_value=None if high is None else cast(high),
        value=None if field.default is None else cast(field.default),
        step=cast(field.multiple_of or 1) if whole else None,
        format=None if whole else "%.4g",
        placeholder="empty: the backend chooses" if field.optional else None,
        key=key,
        help=help_text,
    )


def show_progress(job) -> None:
    """Each backend's stage, step, epoch, loss and rows written, from the job store."""
    st.markdown(f"**Run {job.id[:8]}** — {job.state}" + (f": {job.error}" if job.error else ""))
    table = ws_api.progress_frame(job)
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        key="progress-table",
        column_config={
            "progress": st.column_config.ProgressColumn("progress", min_value=0, max_value=1),
            "loss": st.column_config.NumberColumn("loss", format="%.4f"),
        },
    )


catalog = ws_api.backends()
st.subheader("Backends")
chosen = []
for start in range(0, len(catalog), 3):
    for column, backend in zip(st.columns(3), catalog[start : start + 3]):
        with column:
            if backend_card(backend):
                chosen.append(backend)

st.subheader("Settings")
left, right = st.columns(2)
rows = left.number_input(
    "Rows to generate per backend", min_value=10, max_value=10_000_000, value=dataset.rows, step=100, key="rows"
)
seed = right.number_input("Seed (the same seed repeats the same rows)", min_value=0, value=0, step=1, key="seed")
rare = next(f for f in parameter_fields(GenerationRequest.model_json_schema()) if f.name == "min_level_rows")
with left:
    min_level_rows = number_input("Rare-level threshold (training rows)", rare, "min_level_rows", rare.description)
enforced = sum(1 for rule in schema.rules if rule.enforced)
st.caption(f"Rules: {enforced} enforced, {len(schema.rules) - enforced} measured only — edit them on the Data page.")
anonymeter = st.toggle(
    "Run anonymeter's re-identification attacks (slowest privacy measure)", value=True, key="anonymeter"
)
params = {}
for backend in chosen:
    if backend["parameters"].get("properties"):
        with st.expander(f"{backend['name']} settings"):
            params[backend["name"]] = parameter_inputs(backend)

if chosen:
    columns = max(1, len([c for c in schema.columns if c.learned]))
    estimates = pd.DataFrame([ws_api.estimate(b, dataset.rows, columns, params.get(b["name"], {})) for b in chosen])
    st.caption(
        "Estimated fit time and peak memory: the backend's benchmark on SUPPORT2 (shared 2-core CPU) scaled by "
        "training rows × columns × epochs — an estimate, not a promise."
    )
    st.dataframe(
        estimates.rename(
            columns={"fit_seconds": "≈ fit seconds", "memory_mb": "≈ peak memory MB", "based_on": "scaled from"}
        ),
        hide_index=True,
        key="estimates",
    )
else:
    st.info("Tick at least one backend.")

job = current_job()
running = job is not None and not ws_api.is_ended(job)
if st.button("Generate", type="primary", disabled=not chosen or running, key="generate"):
    with friendly_errors("Starting the run"):
        specs = [{"name": b["name"], "params": params.get(b["name"], {})} for b in chosen]
        job = ws_api.submit_job(
            ws,
            dataset,
            specs,
            rows=int(rows),
            seed=int(seed),
            anonymeter=anonymeter,
            min_level_rows=int(min_level_rows),
        )
        choose_job(job.id)
        running = True

if job is not None:
    st.subheader("Progress")

    @st.fragment(run_every=1.0 if running else None)
    def live_progress() -> None:
        fresh = ws_api.get_job(ws, job.id)
        show_progress(fresh)
        if not ws_api.is_ended(fresh):
            if st.button("Cancel run", key="cancel"):
                with friendly_errors("Cancelling"):
                    ws_api.cancel_job(ws, fresh.id)
                    st.rerun()
        else:
            if running:
                st.rerun()  # the whole page: the Generate button comes back
            if fresh.state == JobState.SUCCEEDED:
                st.success("Run finished.")
            st.page_link("pages/compare.py", label="Compare the backends →", icon=":material/bar_chart:")

    live_progress()
