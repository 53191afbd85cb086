"""Benchmark: how far the quality score moves when one synthetic table is re-evaluated with other seeds.

Per table and backend, in its own child process: fit on the seeded 80/20 train split, sample as many
rows as the training split (a run's default), then evaluate the quality of that one synthetic table
with --seeds evaluation seeds (each draws other real and synthetic rows). The goal (issue 23) is a
spread (max - min) under 0.01. Beside the spread: the width of seed 0's bootstrap interval, whether every
seed's score lies inside it (spread_inside), and held: the share of (seed, other seed) pairs whose interval
holds the other's score (a calibrated 95% interval holds about 0.83: two draws differ by sqrt(2) sigma).
The benchmark tables are smaller than QUALITY_ROWS, so every row is used and the seeds change nothing;
--quality-rows 5000 draws smaller samples to show the noise the sample size leaves.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_scores.py --epochs 5
    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_scores.py --tables demo --backends marginals --seeds 3

Results go to benchmarks/results/scores.md and scores.csv (scores_<N>rows.* with --quality-rows N).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import pandas as pd

from benchmarks.harness import TABLES, in_child, load_table, split

RESULTS = Path(__file__).parent / "results"
BACKENDS = ["marginals", "tvae"]
GOAL_SPREAD = 0.01
COLUMNS = [
    "table",
    "backend",
    "seeds",
    "quality_min",
    "quality_max",
    "spread",
    "interval_width",
    "spread_inside",
    "held",
    "pairs",
    "eval_s",
]


def run_job(job: dict) -> dict:
    """Fit one backend, sample train-many rows, and score that one table with every evaluation seed."""
    from fairsynth.backends.registry import create
    from fairsynth.metadata.schema import TableSchema
    from fairsynth.services.run.evaluation import quality
    from fairsynth.services.run.evaluation.quality import evaluate_quality

    if job["quality_rows"]:  # a smaller sample than the product's, to see the sampling noise on small tables
        quality.QUALITY_ROWS = job["quality_rows"]

    train, holdout = split(load_table(job["table"]), job["seed"])
    schema = TableSchema.infer(train)
    generator = create(job["backend"], **job["params"])
    generator.fit(train, schema, seed=job["seed"])
    synthetic = pd.concat(generator.sample(len(train), seed=job["seed"] + 1), ignore_index=True)
    tick = time.perf_counter()
    results = [evaluate_quality(train, holdout, synthetic, schema, seed=s) for s in range(job["seeds"])]
    scores = [r.quality for r in results]
    low, high = results[0].quality_interval or (None, None)
    return {
        "seeds": len(scores),
        "quality_min": min(scores),
        "quality_max": max(scores),
        "spread": max(scores) - min(scores),
        "interval_width": None if low is None else high - low,
        "spread_inside": None if low is None else low <= min(scores) and max(scores) <= high,
        "held": _held(results),
        "pairs": f"{results[0].pairs_scored} of {results[0].pairs_total}",
        "eval_s": (time.perf_counter() - tick) / len(scores),
    }


def _held(results: list) -> float | None:
    """Share of (seed, other seed) pairs whose quality interval holds the other seed's score."""
    held = [
        one.quality_interval[0] <= other.quality <= one.quality_interval[1]
        for one in results
        for other in results
        if other is not one and one.quality_interval
    ]
    return sum(held) / len(held) if held else None


def main() -> None:
    """Run every (table, backend) in a child process and write the results table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--tables", nargs="+", default=list(TABLES))
    parser.add_argument("--backends", nargs="+", default=BACKENDS)
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the epoch-based backends (tvae)")
    parser.add_argument("--seeds", type=int, default=5, help="evaluation seeds per synthetic table")
    parser.add_argument("--quality-rows", type=int, help="rows per sample instead of QUALITY_ROWS (20,000)")
    parser.add_argument("--timeout", type=int, default=1800)
    args = parser.parse_args()
    if args.job:
        print(json.dumps(run_job(json.loads(args.job))))
        return
    rows = []
    for table in args.tables:
        for backend in args.backends:
            params = {"epochs": args.epochs, "patience": 0} if backend == "tvae" else {}
            job = {"table": table, "backend": backend, "params": params, "seed": 0, "seeds": args.seeds}
            job["quality_rows"] = args.quality_rows
            row = {"table": table, "backend": backend, **in_child(__file__, job, args.timeout)}
            print(row, flush=True)
            rows.append(row)
    _write(rows, args)


def _write(rows: list[dict], args: argparse.Namespace) -> None:
    RESULTS.mkdir(exist_ok=True)
    columns = COLUMNS + ["error"]
    stem = f"scores_{args.quality_rows}rows" if args.quality_rows else "scores"
    with (RESULTS / f"{stem}.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "# Quality stability: one synthetic table re-evaluated with several evaluation seeds",
        "",
        f"Command: `PYTHONPATH=$PWD {shlex.join([Path(sys.executable).name, *sys.argv])}`",
        f"Machine: {platform.machine()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}. "
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Goal: spread < {GOAL_SPREAD}.",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(column)) for column in columns) + " |")
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


if __name__ == "__main__":
    main()
