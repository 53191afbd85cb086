"""Repeated, paired fit times: `tvae` and `sdv.tvae` fitted in turn, each in a fresh process; medians and spread.

bench_tvae.py measures each (table, backend) once. On a shared machine one run can be lucky or slow, so
this script alternates the two backends (A B A B ...) on the same split and epochs, takes the fit-time
ratio pair by pair (pairing cancels the machine's drift) and reports the median ratio with its range.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_fit_pairs.py --runs 5

Results go to benchmarks/results/tvae_pairs.md and tvae_pairs.csv.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import pandas as pd

from benchmarks.harness import TABLES, in_child, load_table, split

ROOT = Path(__file__).resolve().parents[1]
PAIR = ("tvae", "sdv.tvae")


def fit_once(job: dict) -> dict:
    """Fit one backend on the train split (fit only: no sampling or scoring) and time it."""
    from fairsynth.backends.registry import create
    from fairsynth.metadata.schema import TableSchema

    train, _ = split(load_table(job["table"]), job["seed"])
    schema = TableSchema.infer(train)
    params = {"epochs": job["epochs"], **({"patience": 0} if job["backend"] == "tvae" else {})}
    generator = create(job["backend"], **params)
    start, cpu = time.perf_counter(), time.process_time()
    generator.fit(train, schema, seed=job["seed"])
    return {"fit_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu}


def measure(table: str, runs: int, epochs: int, seed: int, timeout: int) -> list[dict]:
    """`runs` alternating pairs on one table: one row per fit."""
    rows = []
    for run in range(1, runs + 1):
        for backend in PAIR:
            job = {"table": table, "backend": backend, "epochs": epochs, "seed": seed}
            result = in_child(__file__, job, timeout)
            rows.append({"table": table, "run": run, "backend": backend, **result})
            print(f"[{time.strftime('%H:%M:%S')}] {table} run {run} {backend}: {result}", flush=True)
    return rows


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per table: median fit seconds of each backend and the median, min and max of the pairwise speed-up."""
    out = []
    for table, group in rows.groupby("table", sort=False):
        wide = group.pivot(index="run", columns="backend", values="fit_s").dropna()
        speedups = wide[PAIR[1]] / wide[PAIR[0]]
        out.append(
            {
                "table": table,
                "pairs": len(wide),
                "tvae median fit s": statistics.median(wide[PAIR[0]]),
                "sdv.tvae median fit s": statistics.median(wide[PAIR[1]]),
                "speed-up median": statistics.median(speedups),
                "speed-up min": speedups.min(),
                "speed-up max": speedups.max(),
            }
        )
    return pd.DataFrame(out)


def markdown(table: pd.DataFrame, rows: pd.DataFrame, command: str) -> str:
    """The results page."""
    load = os.getloadavg()
    lines = [
        "# tvae vs sdv.tvae: repeated paired fit times",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs (shared; load average at write time "
        f"{load[0]:.1f}). Same seeded 80/20 split and epochs for both; tvae with early stopping off. Each fit "
        "runs in a fresh process (imports not timed); the two backends alternate and the speed-up "
        "(sdv.tvae fit s / tvae fit s) is taken pair by pair. Quality for these settings is in tvae.md.",
        "",
        "| table | pairs | tvae median fit s | sdv.tvae median fit s | speed-up median | speed-up min | speed-up max |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table.to_dict("records"):
        lines.append(
            f"| {row['table']} | {row['pairs']} | {row['tvae median fit s']:.2f} | "
            f"{row['sdv.tvae median fit s']:.2f} | {row['speed-up median']:.1f}x | {row['speed-up min']:.1f}x "
            f"| {row['speed-up max']:.1f}x |"
        )
    cpu = rows.groupby("backend")[["fit_s", "cpu_s"]].sum()
    lines += [
        "",
        "CPU seconds per wall second while fitting (threads in use): "
        + ", ".join(f"{b} {cpu.loc[b, 'cpu_s'] / cpu.loc[b, 'fit_s']:.2f}" for b in PAIR if b in cpu.index),
        "",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    """Parse arguments; run a child job or the whole benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--tables", type=lambda s: [v for v in s.split(",") if v], default=list(TABLES))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per fit")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    if args.job:
        print(json.dumps(fit_once(json.loads(args.job))))
        return
    rows = pd.DataFrame(
        [row for table in args.tables for row in measure(table, args.runs, args.epochs, args.seed, args.timeout)]
    )
    if "error" in rows:
        failed = rows[rows["error"].notna()]
        raise SystemExit(f"{len(failed)} fits failed: {failed.to_dict('records')}")
    table = summary(rows)
    command = "PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_fit_pairs.py " + shlex.join(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows.to_csv(args.out / "tvae_pairs.csv", index=False)
    (args.out / "tvae_pairs.md").write_text(markdown(table, rows, command.strip()))
    print(table.to_string(index=False))


if __name__ == "__main__":
    main(sys.argv[1:])
