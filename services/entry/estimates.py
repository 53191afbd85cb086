"""How long a whole run takes (start, fit, sample, evaluate, package), learned from recorded runs.

Each recorded run (run_times.json, written by scripts/record_run_times.py on the benchmark tables) holds every
backend's stage seconds, the work of each stage and this module's speed probe on the machine that ran it. A
stage's rate is the median of seconds per unit of work over the records of the same backend (or family, or any
backend); an estimate is work x rate, scaled by how much slower this machine's probe runs now.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import numpy as np

from fairsynth.metadata.schema import DISCRETE_KINDS, TableSchema
from fairsynth.services.jobs.store import TERMINAL

RECORDS = Path(__file__).with_name("run_times.json")
STAGES = ("start", "fit", "sample", "evaluate", "crate")  # each task's stages, in order; then the job packages
STAGE_NAMES = {"start": "start", "fit": "fit", "sample": "sample", "evaluate": "evaluate", "crate": "package"}
FIT_ROW_OVERHEAD = 1000  # training rows a column's fixed fitting cost is worth (copulas, marginals, epochs' setup)
LEVEL_WIDTH_CAP = 50  # a categorical column counts at most this many levels in the encoded width
PROBE_SECONDS_TTL = 600.0  # the speed probe is measured again after this long
PROBE_REPEATS = 5
MIN_PACED_SECONDS = 2.0  # estimated seconds a task must have done before its pace counts
PACE_RANGE = (0.5, 5.0)  # the slowest and fastest pace believed
MIN_LEFT_SECONDS = 1.0  # a run that outlives its estimate shows this much left, never zero or a full bar

# Fit benchmarks (for a backend no run was recorded for) in benchmarks/results (tvae.md, tvae_pairs.md, ydata.md)
# on SUPPORT2: 7,284 training rows x 38 columns, a shared 2-core CPU. Fit seconds per (training row x column x
# epoch) and peak memory there; epoch-free backends count one.
BENCH_CELLS = 7_284 * 38
FIT_SECONDS_PER_CELL_EPOCH = {
    "marginals": 3.6e-7,
    "sdv.gaussian_copula": 1.7e-5,
    "sdv.tvae": 1.7e-6,
    "sdv.ctgan": 6.6e-5,
    "sdv.copulagan": 6.6e-5,
    "tvae": 3.1e-7,
    "tvae.dp": 4.4e-6,
    "ydata.fast": 2.0e-4,
    "ydata.ctgan": 2.9e-5,
}
PEAK_MB_ON_BENCH = {
    "marginals": 418,
    "sdv.gaussian_copula": 460,
    "sdv.tvae": 585,
    "sdv.ctgan": 643,
    "sdv.copulagan": 643,
    "tvae": 444,
    "tvae.dp": 505,
    "ydata.fast": 864,
    "ydata.ctgan": 5502,
}
FAMILY_FALLBACK = {"basic": "marginals", "torch": "tvae", "sdv": "sdv.ctgan", "ydata": "ydata.ctgan"}
BASE_MB = 400  # a worker process with its imports, before any data


@dataclass(frozen=True)
class Work:
    """What a backend's task has to do: training rows, rows to generate, encoded width, epochs, attacks."""

    backend: str
    family: str
    train_rows: int
    rows: int
    width: int
    epochs: int
    anonymeter: bool
    fit_cost: float = 1.0  # the backend's fit CPU per unit against the records' (a larger network than theirs)

    def units(self, stage: str) -> float:
        """The stage's amount of work (seconds per unit are learned per stage)."""
        if stage == "fit":  # a small table still pays each column's own fitting: FIT_ROW_OVERHEAD rows' worth
            return (self.train_rows + FIT_ROW_OVERHEAD) * self.width * self.epochs * self.fit_cost
        if stage == "sample":
            return self.rows * self.width
        if stage == "evaluate":  # per-column measures dominate; rows count less than linearly (sampled, binned)
            return self.width * math.sqrt(self.train_rows + self.rows)
        return 1.0  # start (process, imports) and crate are about constant


def encoded_width(schema: TableSchema) -> int:
    """The learned columns as a model sees them: a discrete column counts its levels (capped), others one."""
    return max(
        1,
        sum(
            min(column.cardinality or 2, LEVEL_WIDTH_CAP) if column.kind in DISCRETE_KINDS else 1
            for column in schema.columns
            if column.learned
        ),
    )


def speed_probe(repeats: int = PROBE_REPEATS) -> float:
    """CPU seconds this machine's processor takes for a fixed single-threaded workload (the fastest of a few tries).

    CPU time, not wall time: it measures the processor, not how busy the machine is at that instant (other work
    on a shared machine comes and goes within seconds; a running job's own pace corrects for it, see job_times).
    """

    def once() -> float:
        rng = np.random.default_rng(0)
        start = time.process_time()
        values = rng.standard_normal(300_000)
        for _ in range(8):
            values = np.sort(np.tanh(values) * 3.0 + values[::-1])
        return time.process_time() - start

    return min(once() for _ in range(repeats))


_probe: dict[str, float] = {}


def current_probe(clock=time.monotonic) -> float:
    """The speed probe, measured at most once every PROBE_SECONDS_TTL."""
    if not _probe or clock() - _probe["at"] > PROBE_SECONDS_TTL:
        _probe.update(seconds=speed_probe(), at=clock())
    return _probe["seconds"]


@cache
def records() -> tuple[dict, ...]:
    """The recorded runs: one entry per backend task."""
    return tuple(json.loads(RECORDS.read_text())["tasks"])


def stage_rate(stage: str, work: Work, recorded: tuple[dict, ...] | None = None) -> float:
    """Seconds per unit of the stage's work at the recording machine's speed, from the closest recorded tasks."""
    recorded = records() if recorded is None else recorded
    same_attacks = [r for r in recorded if stage != "evaluate" or r["anonymeter"] == work.anonymeter] or recorded
    if stage == "fit" and not any(r["backend"] == work.backend for r in recorded):
        return benchmark_fit_rate(work, recorded)
    for match in (lambda r: r["backend"] == work.backend, lambda r: r["family"] == work.family, lambda r: True):
        rates = [r["seconds"][stage] / r["probe"] / Work(**r["work"]).units(stage) for r in same_attacks if match(r)]
        if rates:
            return statistics.median(rates)
    return 0.0


def benchmark_fit_rate(work: Work, recorded: tuple[dict, ...]) -> float:
    """The fit rate of the backend's benchmark (or its family's), at the recording machine's speed."""
    known = (
        work.backend if work.backend in FIT_SECONDS_PER_CELL_EPOCH else FAMILY_FALLBACK.get(work.family, "sdv.ctgan")
    )
    probes = [r["probe"] for r in recorded]
    return FIT_SECONDS_PER_CELL_EPOCH[known] / (statistics.median(probes) if probes else 1.0)


def peak_memory_mb(work: Work) -> int:
    """Peak memory of the fit, scaled from the benchmark of the backend (or its family) by training cells."""
    known = work.backend if work.backend in PEAK_MB_ON_BENCH else FAMILY_FALLBACK.get(work.family, "sdv.ctgan")
    return round(BASE_MB + (PEAK_MB_ON_BENCH[known] - BASE_MB) * work.train_rows * work.width / BENCH_CELLS)


def task_estimate(work: Work, probe: float, recorded: tuple[dict, ...] | None = None) -> dict[str, float]:
    """Seconds of each stage of one backend's task on this machine now."""
    return {stage: stage_rate(stage, work, recorded) * work.units(stage) * probe for stage in STAGES}


def schedule(durations: list[float], workers: int) -> float:
    """Seconds until the last of these tasks ends when `workers` run at once, each taking the next in order."""
    slots = [0.0] * max(1, workers)
    for seconds in durations:
        slots[slots.index(min(slots))] += seconds
    return max(slots)


def package_seconds(probe: float, recorded: tuple[dict, ...] | None = None) -> float:
    """Seconds the job takes after its last task (crates and the comparison)."""
    recorded = records() if recorded is None else recorded
    return statistics.median(r["package_seconds"] / r["probe"] for r in recorded) * probe if recorded else 0.0


def run_estimate(works: list[Work], workers: int, probe: float, recorded: tuple[dict, ...] | None = None) -> float:
    """Seconds of a whole run: every task (at most `workers` at once), then the packaging."""
    tasks = [sum(task_estimate(work, probe, recorded).values()) for work in works]
    return schedule(tasks, workers) + package_seconds(probe, recorded)


def remaining_seconds(stages: dict[str, float], stage: str | None, done: float) -> float:
    """Seconds left of a task in `stage`, `done` (0-1) of it finished; None stage: not started."""
    if stage not in STAGES:
        return sum(stages.values())
    later = STAGES[STAGES.index(stage) + 1 :]
    return stages[stage] * (1 - min(max(done, 0.0), 1.0)) + sum(stages[s] for s in later)


def task_left(task, stages: dict[str, float], now: datetime) -> float:
    """Seconds left of one task of a job from its state, stage and step in the job store."""
    if task.state in TERMINAL:
        return 0.0
    if task.state != "running" or task.started_at is None:
        return sum(stages.values())
    if task.stage in STAGES:
        return remaining_seconds(stages, task.stage, (task.step or 0) / task.total if task.total else 0.0)
    started = (now - _aware(task.started_at)).total_seconds()  # running, no stage yet: starting up
    return remaining_seconds(stages, "start", started / stages["start"] if stages["start"] else 1.0)


def pace(task, stages: dict[str, float], left: float, now: datetime) -> float:
    """How much slower (>1) or faster than estimated the rest of a running task will go (1 until it has gone a while).

    The pace kept so far counts by the share of the task done: its first stages (a worker's start, its imports)
    are slowed by other things than its later ones, so an early pace is mostly the estimate's own."""
    total = sum(stages.values())
    done = total - left
    if task.state != "running" or task.started_at is None or done < MIN_PACED_SECONDS:
        return 1.0
    elapsed = (now - _aware(task.started_at)).total_seconds()
    kept = min(max(elapsed / done, PACE_RANGE[0]), PACE_RANGE[1])
    return 1.0 + (kept - 1.0) * min(done / total, 1.0)


def job_times(job, works: dict[str, Work], workers: int, probe: float, now: datetime) -> dict:
    """A job's elapsed and remaining seconds, each task's seconds left and share done (never going back).

    The time left follows the pace the running tasks have kept so far: a machine busier than when the run was
    estimated stretches what is left of it."""
    estimated = {name: task_estimate(work, probe) for name, work in works.items()}
    tasks = [t for t in job.tasks if t.backend in estimated]
    left = {t.backend: task_left(t, estimated[t.backend], now) for t in tasks}
    paces = {t.backend: pace(t, estimated[t.backend], left[t.backend], now) for t in tasks}
    running = [t.backend for t in tasks if t.state == "running"]
    speed = statistics.mean(paces[name] for name in running) if running else 1.0
    waiting = [left[t.backend] * speed for t in tasks if t.state not in TERMINAL and t.state != "running"]
    ended = job.state in TERMINAL
    remaining = schedule([left[name] * paces[name] for name in running] + waiting, workers)
    remaining = 0.0 if ended else max(remaining + package_seconds(probe) * speed, MIN_LEFT_SECONDS)
    elapsed = ((_aware(job.finished_at) if ended and job.finished_at else now) - _aware(job.created_at)).total_seconds()
    done = {
        name: 1.0 - left.get(name, 0.0) / max(sum(estimated[name].values()), MIN_LEFT_SECONDS) if name in left else 1.0
        for name in (t.backend for t in job.tasks)
    }
    share = elapsed / (elapsed + remaining) if elapsed + remaining else 1.0
    seconds_left = {name: left[name] * paces[name] for name in left}
    return {"elapsed": elapsed, "remaining": remaining, "share": share, "left": seconds_left, "done": done}


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; the store writes UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
