"""Page 4 — Export: describe the dataset, package each result as a validated RO-Crate, download, deposit."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from fairsynth.services.entry import workspace as ws_api
from fairsynth.services.jobs.store import JobState, TaskState
from fairsynth.ui.common import friendly_errors, header, job_picker, workspace

LICENSES = ["CC-BY-4.0", "CC0-1.0", "CC-BY-SA-4.0", "CC-BY-NC-4.0", "ODbL-1.0"]
AUTHOR_FORMAT = "Name; ORCID iD (may be empty); affiliation; ROR id or web address of the affiliation"

ws = workspace()
header("4 · Export", "Describe the synthetic dataset once; every backend's result becomes a FAIR RO-Crate.")


def metadata_form() -> dict | None:
    """The metadata form; returns the crate metadata when submitted and valid."""
    with st.form("metadata"):
        title = st.text_input("Title", key="meta-title", placeholder="What the synthetic table is, in a few words")
        description = st.text_area(
            "Description",
            key="meta-description",
            placeholder="Where the real table came from, how it was synthesised, what it is for.",
        )
        authors = st.text_area(
            "Authors — one per line: Name; ORCID; Affiliation; ROR id or web address",
            key="meta-authors",
            placeholder=AUTHOR_FORMAT,
        )
        left, right = st.columns(2)
        license_id = left.selectbox("License", LICENSES, key="meta-license")
        keywords = right.text_input("Keywords (comma-separated)", "synthetic data, health data", key="meta-keywords")
        funder = left.text_input("Funder (optional)", key="meta-funder")
        funder_address = right.text_input("Funder's ROR id or web address", key="meta-funder-ror")
        submitted = st.form_submit_button("Build and validate crates", type="primary")
    if not submitted:
        return None
    with friendly_errors("Checking the metadata"):
        return ws_api.metadata_form(
            title=title,
            description=description,
            authors=authors,
            license_id=license_id,
            keywords=keywords,
            funder=funder,
            funder_address=funder_address,
        )
    return None


@st.cache_data(show_spinner="Validating the crate…", max_entries=64)
def validation_of(crate: str, modified: float) -> dict:
    """The validation of a crate zip, remembered while the file is unchanged."""
    return ws_api.validate(ws, Path(crate))


def download(label: str, path, mime: str, key: str, name: str) -> None:
    """A download button for a file (saved as `<table>-<backend>-<date>`), or a greyed one when it does not exist."""
    if path is None:
        st.button(label, disabled=True, key=key)
    else:
        file_name = ws_api.download_name(ws, job, name, path)
        st.download_button(label, path.read_bytes(), file_name=file_name, mime=mime, key=key)


def table_downloads(backend: str) -> None:
    """A dataset backend's synthetic tables, a download each (saved as `<table>-<backend>-<date>`)."""
    for table in ws_api.table_set_schema(ws.store.get_dataset(job.dataset_id)).names:
        path = ws_api.artefact(ws, job, backend, ws_api.table_artefact(table))
        if path is None:
            st.button(f"{table} table", disabled=True, key=f"table-{backend}-{table}")
        else:
            file_name = f"{table}-{backend}-{job.created_at:%Y-%m-%d}{path.suffix}"
            st.download_button(
                f"{table} table",
                path.read_bytes(),
                file_name=file_name,
                mime="text/csv",
                key=f"table-{backend}-{table}",
            )


job = job_picker()
if job is not None:
    if job.state != JobState.SUCCEEDED:
        st.info(f"This run is {job.state}; crates are built from a finished run.")
        st.stop()
    form = metadata_form()
    if form is not None:
        with friendly_errors("Building the crates"), st.spinner("Packaging and validating…"):
            st.session_state[f"crates-{job.id}"] = ws_api.package_crates(ws, job, form)
            job = ws_api.get_job(ws, job.id)
    results = st.session_state.get(f"crates-{job.id}", {})
    for task in job.tasks:
        if task.state != TaskState.SUCCEEDED:
            continue
        name = task.backend
        with st.container(border=True):
            result = results.get(name) or {}
            crate = ws_api.artefact(ws, job, name, "crate")
            validation = result.get("validation") or (
                validation_of(str(crate), crate.stat().st_mtime) if crate else None
            )
            status = (
                ":green[:material/verified: valid crate]"
                if validation and validation["ok"]
                else ":red[:material/error: crate has issues]"
                if validation
                else f":red[:material/block: {result['error']}]"
                if result.get("error")
                else "no crate built yet"
            )
            st.markdown(f"**{name}** — {status}")
            if validation:
                with st.expander("Validation details"):
                    st.code(validation["summary"], language="text")
            columns = st.columns(5)
            with columns[0]:
                download("Crate zip", ws_api.artefact(ws, job, name, "crate"), "application/zip", f"crate-{name}", name)
            with columns[1]:
                if ws_api.is_dataset_job(job):
                    table_downloads(name)
                else:
                    synthetic = ws_api.artefact(ws, job, name, "synthetic")
                    download(
                        f"Synthetic {synthetic.suffix[1:].upper() if synthetic else 'table'}",
                        synthetic,
                        "text/csv",
                        f"synthetic-{name}",
                        name,
                    )
            with columns[2]:
                download("Report", ws_api.artefact(ws, job, name, "report"), "text/html", f"report-{name}", name)
            with columns[3]:
                download("PageTab JSON", ws_api.pagetab(ws, job, name), "application/json", f"pagetab-{name}", name)
            with columns[4]:
                has_crate = ws_api.artefact(ws, job, name, "crate") is not None
                if st.button("Deposit to BioStudies", key=f"deposit-{name}", disabled=not has_crate):
                    with friendly_errors("Depositing"):
                        outcome = ws_api.deposit_crate(ws, job, name)
                        if outcome["dry_run"]:
                            st.info(
                                f"Dry run (no BioStudies server and login configured): {len(outcome['files'])} "
                                "files planned; the submission they make is the PageTab JSON above."
                            )
                        else:
                            st.success(f"Deposited as {outcome['accno']}.")
