"""What every page shares: the workspace (one per process), the current dataset and job, friendly errors."""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from fairsynth.errors import FairsynthError
from fairsynth.services.entry import workspace as ws_api
from fairsynth.services.jobs.store import JobStoreError
from fairsynth.services.settings import Settings

JOB_KEY, DATASET_KEY = "job", "dataset"
SELECTION = (DATASET_KEY, JOB_KEY)  # what the URL carries on every page, so a reload or a shared link keeps it


@st.cache_resource(show_spinner=False)
def _open(data_dir: str) -> ws_api.Workspace:
    return ws_api.open_workspace(Settings.from_env())


def workspace() -> ws_api.Workspace:
    """The data directory's workspace, opened once per process (its executor keeps running across reruns)."""
    return _open(str(Settings.from_env().data_dir))


@contextmanager
def friendly_errors(action: str) -> Iterator[None]:
    """Show a failure as one short message, the technical details folded away; never a raw traceback."""
    try:
        yield
    except FairsynthError as exc:
        st.error(problem_text(exc))
    except Exception as exc:  # anything else: short message first, the traceback only on request
        st.error(f"{action} failed unexpectedly ({type(exc).__name__}: {exc}).")
        with st.expander("Details"):
            st.code(traceback.format_exc(), language="text")


def problem_text(error: FairsynthError) -> str:
    """A user error for st.error: each problem its own paragraph."""
    return "\n\n".join(error.problems)


def keep_selection() -> None:
    """Keep the chosen dataset and job in both the session and the URL on every page.

    Sidebar navigation clears the URL's query and a reload starts a fresh session: each restores the other.
    """
    for key in SELECTION:
        if st.session_state.get(key):
            st.query_params[key] = st.session_state[key]
        elif st.query_params.get(key):
            st.session_state[key] = st.query_params[key]


def current_dataset():
    """The dataset chosen on the Data page (kept in the URL), else the demo table."""
    ws = workspace()
    chosen = st.session_state.get(DATASET_KEY) or st.query_params.get(DATASET_KEY)
    if chosen:
        try:
            return ws.store.get_dataset(chosen)
        except JobStoreError:  # gone since it was chosen: fall back
            pass
    return ws_api.demo_dataset(ws)


def choose_dataset(dataset_id: str) -> None:
    """Make a dataset the current one (in the session and the URL)."""
    st.session_state[DATASET_KEY] = dataset_id
    st.query_params[DATASET_KEY] = dataset_id


def current_job():
    """The job being followed: the one in the session or URL, else the newest one in the store (survives reloads)."""
    ws = workspace()
    chosen = st.session_state.get(JOB_KEY) or st.query_params.get(JOB_KEY)
    if chosen:
        try:
            return ws_api.get_job(ws, chosen)
        except JobStoreError:  # gone since it was chosen: fall back
            pass
    jobs = ws_api.list_jobs(ws, limit=1)
    return jobs[0] if jobs else None


def choose_job(job_id: str) -> None:
    """Make a job the current one (in the session and the URL)."""
    st.session_state[JOB_KEY] = job_id
    st.query_params[JOB_KEY] = job_id


def forget_job(job_id: str) -> None:
    """Stop following a job that was deleted (the newest one is followed again)."""
    if st.session_state.get(JOB_KEY) == job_id:
        del st.session_state[JOB_KEY]
    if st.query_params.get(JOB_KEY) == job_id:
        del st.query_params[JOB_KEY]


def header(title: str, caption: str) -> None:
    """The page's title and a one-line explanation."""
    st.title(title)
    st.caption(caption)


def job_picker(label: str = "Run"):
    """A selector over earlier runs, defaulting to the current one; returns the chosen job or None."""
    ws = workspace()
    jobs = ws_api.list_jobs(ws)
    if not jobs:
        st.info("No run yet: generate one on the Generate page.")
        return None
    current = current_job()
    ids = [j.id for j in jobs]
    index = ids.index(current.id) if current and current.id in ids else 0
    labels = {
        j.id: f"{j.created_at:%Y-%m-%d %H:%M} · {', '.join(t.backend for t in j.tasks)} · {j.state}" for j in jobs
    }
    chosen = st.selectbox(label, ids, index=index, format_func=labels.get)
    if chosen != (current.id if current else None):
        choose_job(chosen)
    return next(j for j in jobs if j.id == chosen)


def duration(seconds: float) -> str:
    """Seconds as a short duration: 45 s, 3 min 20 s, 1 h 5 min."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
