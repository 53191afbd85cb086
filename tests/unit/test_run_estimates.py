"""The whole-run estimate (start, fit, sample, evaluate, package) against runs recorded on the benchmark tables,
and progress that never goes back when a stage ends."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from fairsynth.services.entry import estimates
from fairsynth.services.entry.estimates import Work


def recorded_jobs() -> dict[str, list[dict]]:
    """The recorded tasks by job."""
    jobs = defaultdict(list)
    for task in estimates.records():
        jobs[task["job"]].append(task)
    return dict(jobs)


def test_runs_were_recorded_on_more_than_one_table_with_every_stage():
    tables = {task["table"] for task in estimates.records()}
    assert len(tables) >= 2 and all(task["state"] == "succeeded" for task in estimates.records())
    assert all(task["seconds"]["evaluate"] > 0 for task in estimates.records())  # the stage the old estimate left out


@pytest.mark.parametrize("job", sorted(recorded_jobs()))
def test_the_whole_run_estimate_is_within_2x_of_each_recorded_run(job):
    tasks = recorded_jobs()[job]
    works = [Work(**task["work"]) for task in tasks]
    estimated = estimates.run_estimate(works, workers=2, probe=tasks[0]["probe"])  # the recording's settings
    assert 0.5 <= estimated / tasks[0]["job_seconds"] <= 2.0, (estimated, tasks[0]["job_seconds"])


@pytest.mark.parametrize("job", sorted(recorded_jobs()))
def test_a_run_is_estimated_within_2x_from_the_runs_of_the_other_tables_only(job):
    tasks = recorded_jobs()[job]
    others = tuple(task for task in estimates.records() if task["table"] != tasks[0]["table"])
    works = [Work(**task["work"]) for task in tasks]
    estimated = estimates.run_estimate(works, workers=2, probe=tasks[0]["probe"], recorded=others)
    assert 0.5 <= estimated / tasks[0]["job_seconds"] <= 2.0, (estimated, tasks[0]["job_seconds"])


def test_a_slower_machine_now_gets_a_longer_estimate():
    work = Work("tvae", "torch", 1600, 1600, 47, 300, True)
    assert estimates.run_estimate([work], 2, probe=0.2) == pytest.approx(2 * estimates.run_estimate([work], 2, 0.1))


def job_at(state, stage=None, step=None, total=None, started=0.0):
    """A one-task tvae job as the store holds it, its task started `started` seconds after the job."""
    created = datetime(2026, 1, 1, tzinfo=UTC)
    task = SimpleNamespace(
        backend="tvae",
        state=state,
        stage=stage,
        step=step,
        total=total,
        started_at=created + timedelta(seconds=started),
    )
    return SimpleNamespace(tasks=[task], state="running", created_at=created, finished_at=None)


TVAE = Work("tvae", "torch", 1600, 1600, 47, 300, True)


def times_at(job, seconds: float) -> dict:
    """job_times `seconds` after the job was created, on a machine probing 0.1 s."""
    return estimates.job_times(job, {"tvae": TVAE}, 2, 0.1, job.created_at + timedelta(seconds=seconds))


def test_progress_only_grows_through_the_stages():
    walk = [
        job_at("queued"),
        job_at("running", started=1),
        job_at("running", "fit", 10, 300, started=1),
        job_at("running", "fit", 300, 300, started=1),
        job_at("running", "sample", 1600, 1600, started=1),
        job_at("running", "evaluate", 0, 1, started=1),  # where the old bar fell from 77% to 0%
    ]
    done = [times_at(job, 5)["done"]["tvae"] for job in walk]
    assert done == sorted(done) and done[-1] > 0.3


def test_the_time_left_follows_the_pace_of_the_run_and_never_reaches_zero_while_it_runs():
    stages = estimates.task_estimate(TVAE, probe=0.1)
    before_evaluation = stages["start"] + stages["fit"] + stages["sample"]
    job = job_at("running", "evaluate", 0, 1)
    on_time = times_at(job, before_evaluation)
    assert on_time["remaining"] == pytest.approx(stages["evaluate"] + estimates.package_seconds(0.1))
    slow = times_at(job, 3 * before_evaluation)  # a busier machine than estimated: three times slower so far
    share_done = before_evaluation / sum(stages.values())  # the pace so far counts by the share of the task done
    assert slow["remaining"] == pytest.approx((1 + 2 * share_done) * on_time["remaining"])
    assert on_time["remaining"] < slow["remaining"] < 3 * on_time["remaining"]
    late = times_at(job_at("running", "evaluate", 1, 1), 3600)
    assert late["remaining"] >= estimates.MIN_LEFT_SECONDS and late["share"] < 1


def catalog_entry(name: str) -> dict:
    """A backend as the UI's catalog lists it."""
    from fairsynth.services.entry.catalog import backend_catalog

    return next(b for b in backend_catalog() if b["name"] == name)


def test_a_narrow_table_with_many_rows_is_estimated_with_tvaes_larger_network():
    from fairsynth.backends.tvae.generator import WIDE_FIT_COST
    from fairsynth.services.entry.workspace import task_work

    tvae, dp = catalog_entry("tvae"), catalog_entry("tvae.dp")
    few, many = (task_work(tvae, {}, rows, 2000, 9, True) for rows in (9_000, 14_000))
    assert (few.fit_cost, many.fit_cost) == (1.0, WIDE_FIT_COST)  # 64 x 32 below 10,000 rows, 256 x 64 above
    per_row = [
        estimates.task_estimate(w, 0.1)["fit"] / (w.train_rows + estimates.FIT_ROW_OVERHEAD) for w in (few, many)
    ]
    assert per_row[1] == pytest.approx(WIDE_FIT_COST * per_row[0])
    assert task_work(tvae, {"hidden_size": 64}, 14_000, 2000, 9, True).fit_cost == 1.0  # the user's own network
    assert task_work(tvae, {}, 14_000, 2000, 112, True).fit_cost == 1.0  # a wide row keeps 128 x 32
    assert task_work(dp, {}, 14_000, 2000, 9, True).fit_cost == 1.0  # tvae.dp's default stays 64 x 32


def test_the_estimates_network_is_the_one_tvae_fits():
    import numpy as np
    import pandas as pd

    from fairsynth.backends.registry import create
    from fairsynth.backends.tvae.generator import WIDE_FIT_COST
    from fairsynth.metadata.schema import TableSchema

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"age": rng.normal(50, 10, 12_000), "weight": rng.normal(80, 12, 12_000)})
    generator = create("tvae", epochs=1)
    generator.fit(table, TableSchema.infer(table), seed=0)
    width = len(generator.encoding.numeric) + sum(generator.encoding.category_sizes)
    assert generator._hidden_units() == 256
    assert type(generator).relative_fit_cost({}, width, len(table)) == WIDE_FIT_COST
    assert type(generator).relative_fit_cost({}, width, 9_000) == 1.0
