"""Page 2 — Generate: pick backends side by side, set them, see the estimate, follow live progress, cancel; for a
dataset of several tables, the dataset backends that fit its shape."""

from __future__ import annotations

import streamlit as st

from fairsynth.services.entry import workspace as ws_api
from fairsynth.services.entry.catalog import ParameterField, parameter_fields
from fairsynth.services.jobs.store import JobState
from fairsynth.services.run.config import DEFAULT_BACKENDS, GenerationRequest
from fairsynth.services.run.datasets import DEFAULT_DATASET_BACKEND
from fairsynth.ui.common import (
    choose_job,
    current_dataset,
    current_job,
    duration,
    friendly_errors,
    header,
    workspace,
)

ws = workspace()
dataset = current_dataset()
several = ws_api.is_table_set(dataset)
job = current_job()
running = job is not None and not ws_api.is_ended(job)
last = job.request if job is not None and job.dataset_id == dataset.id else {}  # a reload shows the run's choices
if several:
    header("2 · Generate", f"Synthesise **{dataset.name}** (several tables) as whole subjects, backends side by side.")
else:
    header("2 · Generate", f"Synthesise **{dataset.name}** ({dataset.rows:,} rows) with several backends side by side.")


def badges(backend: dict) -> str:
    """DP / GPU / family badges of a backend card (a dataset backend's card has none)."""
    caps = backend.get("capabilities")
    if not caps:
        return ""
    marks = [f":blue-badge[{caps.get('family', '?')}]"]
    if caps.get("dp"):
        marks.append(":green-badge[differential privacy]")
    if caps.get("gpu"):
        marks.append(":violet-badge[GPU]")
    return " ".join(marks)


def backend_card(backend: dict, defaults=DEFAULT_BACKENDS) -> bool:
    """One card: name, badges, description, license and a tick box (greyed with the reason when unavailable, or
    when a dataset backend cannot take the dataset's shape)."""
    with st.container(border=True):
        name = backend["name"]
        why_not = (
            f"Unavailable here: {backend['reason']}"
            if not backend["available"]
            else f"Does not fit this dataset: {backend['why_not']}"
            if not backend.get("fits", True)
            else None
        )
        if why_not:
            st.markdown(f"**:gray[{name}]**")
            st.caption(why_not)
            st.checkbox(f"Use {name}", key=f"use-{name}", disabled=True, value=False)
            return False
        caps = backend.get("capabilities", {})
        st.markdown(f"**{name}** {badges(backend)}")
        st.caption(backend.get("description") or caps.get("description", ""))
        if caps:
            st.caption(f"License: {caps.get('license', 'unknown')}")
        ticked = {b["name"] for b in last["backends"]} if last else defaults
        return st.checkbox(f"Use {name}", key=f"use-{name}", value=name in ticked)


def backend_cards(catalog: list[dict], defaults) -> list[dict]:
    """The backends' cards three to a row; returns the ticked ones."""
    chosen = []
    for start in range(0, len(catalog), 3):
        for column, backend in zip(st.columns(3), catalog[start : start + 3]):
            with column:
                if backend_card(backend, defaults):
                    chosen.append(backend)
    return chosen


def tuned_parameters(chosen: list[dict]) -> dict[str, dict]:
    """Each ticked backend's parameters, in a tab of its own under an expander."""
    params = {}
    tuned = [backend for backend in chosen if backend["parameters"].get("properties")]
    if tuned:
        with st.expander("Advanced settings of each backend (the defaults suit most tables)"):
            for tab, backend in zip(st.tabs([b["name"] for b in tuned]), tuned):
                with tab:
                    params[backend["name"]] = parameter_inputs(backend)
    return params


def parameter_inputs(backend: dict) -> dict:
    """Inputs for a backend's parameters, built from the JSON schema of its Params model, each with its one-line
    help (the field's description) under it."""
    values = {}
    fields = parameter_fields(backend["parameters"])
    for column, field in zip(st.columns(3) * len(fields), fields):
        with column:
            values[field.name] = parameter_input(backend["name"], field)
            st.caption(field.description)
    return values


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
    """The run's elapsed and remaining time and share done, then each backend's stage, epoch, loss and rows."""
    times = ws_api.job_times(ws, job)
    st.markdown(f"**Run {job.id[:8]}** — {job.state}" + (f": {job.error}" if job.error else ""))
    if times and not ws_api.is_ended(job):
        st.progress(
            times["share"],
            text=f"{duration(times['elapsed'])} elapsed · about {duration(times['remaining'])} left (estimate)",
        )
    elif times:
        st.caption(f"Took {duration(times['elapsed'])}.")
    st.dataframe(
        ws_api.progress_frame(job, times),
        hide_index=True,
        width="stretch",
        key="progress-table",
        column_config={
            "progress": st.column_config.ProgressColumn("progress", min_value=0, max_value=1),
            "loss": st.column_config.NumberColumn("loss", format="%.4f"),
        },
    )


def progress_section() -> None:
    """The followed run's progress, refreshed every two seconds while it runs; a notice and a link when it ends."""
    st.subheader("Progress")

    @st.fragment(run_every=2.0 if running else None)
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
                st.toast(f"Run {fresh.id[:8]} {fresh.state}.", icon=":material/notifications:")
                st.rerun()  # the whole page: the Generate button comes back
            if fresh.state == JobState.SUCCEEDED:
                st.success("Run finished.")
            st.page_link("pages/compare.py", label="Compare the backends →", icon=":material/bar_chart:")

    live_progress()


def table_set_section() -> None:
    """A dataset of several tables: the dataset backends that fit its shape, subjects and seed, Generate."""
    schema = ws_api.table_set_schema(dataset)
    root = schema.roots()[0]
    st.subheader("Dataset backends")
    st.caption(
        "Each generates whole synthetic subjects: a row of every root table with its children in every table, "
        "keys regenerated. A backend that cannot take this dataset's shape is greyed with the reason."
    )
    chosen = backend_cards(ws_api.dataset_backend_choices(schema), {DEFAULT_DATASET_BACKEND})
    st.subheader("Settings")
    left, right = st.columns(2)
    subjects = left.number_input(
        f"Subjects to generate per backend (rows of {root})",
        min_value=1,
        max_value=10_000_000,
        value=last.get("subjects") or schema.entry(root).table.n_rows,
        step=10,
        key="subjects",
    )
    seed = right.number_input(
        "Seed (the same seed repeats the same subjects)", min_value=0, value=last.get("seed", 0), step=1, key="seed"
    )
    params = tuned_parameters(chosen)
    if not chosen:
        st.info("Tick at least one backend.")
    if st.button("Generate", type="primary", disabled=not chosen or running, key="generate"):
        with friendly_errors("Starting the run"):
            specs = [{"name": b["name"], "params": params.get(b["name"], {})} for b in chosen]
            choose_job(ws_api.submit_job(ws, dataset, specs, rows=int(subjects), seed=int(seed)).id)
            st.rerun()  # progress moves to the top
    if running:
        st.caption("A run is going: Generate comes back when it ends (or cancel it above).")
    elif job is not None:
        progress_section()


if running:
    progress_section()  # at the top while a run is going
if several:
    table_set_section()
    st.stop()

schema = ws_api.dataset_schema(dataset)
if schema.target is None:
    suggestion = ws_api.suggest_target(schema)
    st.warning(
        "No target column is set, so no backend gets a utility score (how well models trained on it predict). "
        + (f"'{suggestion}' looks like an outcome: " if suggestion else "")
        + "tick a target on the Data page."
    )

st.subheader("Backends")
chosen = backend_cards(ws_api.backends(), DEFAULT_BACKENDS)

st.subheader("Settings")
left, right = st.columns(2)
rows = left.number_input(
    "Rows to generate per backend",
    min_value=10,
    max_value=10_000_000,
    value=max(10, last.get("rows") or dataset.rows),
    step=100,
    key="rows",
)
seed = right.number_input(
    "Seed (the same seed repeats the same rows)", min_value=0, value=last.get("seed", 0), step=1, key="seed"
)
rare = next(f for f in parameter_fields(GenerationRequest.model_json_schema()) if f.name == "min_level_rows")
with left:
    min_level_rows = number_input("Rare-level threshold (training rows)", rare, "min_level_rows", rare.description)
enforced = sum(1 for rule in schema.rules if rule.enforced)
st.caption(f"Rules: {enforced} enforced, {len(schema.rules) - enforced} measured only — edit them on the Data page.")
anonymeter = st.toggle(
    "Run anonymeter's re-identification attacks (slowest privacy measure)",
    value=last.get("anonymeter", True),
    key="anonymeter",
)
with st.expander("Advanced settings of the run"):
    qa_ready, qa_reason = ws_api.second_evaluator_availability()
    second_evaluator = st.checkbox(
        "Also score with mostlyai-qa (second evaluator)",
        value=qa_ready and bool(last.get("second_evaluator")),
        disabled=not qa_ready,
        key="second_evaluator",
        help="mostlyai-qa's accuracy (1 − total variation distance over binned univariate and bivariate "
        "distributions), shown beside sdmetrics quality in each report and on the Compare page: a second, "
        "independent opinion that never picks a backend alone.",
    )
    if not qa_ready:
        st.caption(f"Unavailable here: {qa_reason}")
params = tuned_parameters(chosen)

if chosen:
    estimates, total = ws_api.run_estimate(ws, dataset, chosen, params, int(rows), anonymeter)
    st.markdown(f"**Estimated time of the whole run: about {duration(total)}**")
    st.caption(
        "Each stage's seconds on this machine now: learned from recorded runs on the benchmark tables and scaled "
        "by training rows, encoded columns, epochs and this machine's measured speed — an estimate, not a promise."
    )
    st.dataframe(
        estimates.rename(columns={"memory_mb": "≈ peak memory MB"}),
        hide_index=True,
        key="estimates",
        column_config={
            stage: st.column_config.NumberColumn(f"≈ {stage} s", format="%.0f")
            for stage in ("start", "fit", "sample", "evaluate")
        },
    )
else:
    st.info("Tick at least one backend.")

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
            second_evaluator=second_evaluator,
            min_level_rows=int(min_level_rows),
        )
        choose_job(job.id)
        st.rerun()  # progress moves to the top
if running:
    st.caption("A run is going: Generate comes back when it ends (or cancel it above).")
elif job is not None:
    progress_section()
