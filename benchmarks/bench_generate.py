"""Benchmark `fairsynth generate` end to end: rows/s of its sampling stage to Parquet and to CSV.

Each run is the real command in a fresh process (fit, then the sampling stage: model, codec decode, the
exact-copy check over every row, the writer), on a table saved from benchmarks.harness.load_table. The
figure is the run's own sampling rows/s (metrics.json: first batch to file closed), with the 1-minute
load average before and after each run: the machine is shared, so a busy moment shows.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_generate.py --rows 1000000 --repeats 3

Results go to benchmarks/results/generate.md and generate.csv (the command is at the top).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import ROOT, load_table

GOAL_ROWS_PER_S = {"parquet": 1_000_000}  # issue 22: SUPPORT2 to Parquet on 2 cores


def generate_command(source: Path, out: Path, fmt: str, args: argparse.Namespace) -> list[str]:
    """The `fairsynth generate` command line of one run."""
    return [
        str(Path(sys.executable).with_name("fairsynth")),
        "generate",
        str(source),
        "-b",
        "tvae",
        "--rows",
        str(args.rows),
        "--format",
        fmt,
        "--epochs",
        str(args.epochs),
        "--seed",
        str(args.seed),
        "--out",
        str(out),
    ]


def run_once(source: Path, fmt: str, args: argparse.Namespace, tmp: Path, index: int) -> dict:
    """One generate run; its sampling rows/s, copy count and file size, and the load around it."""
    out = tmp / f"{fmt}-{index}"
    load_before = os.getloadavg()[0]
    done = subprocess.run(generate_command(source, out, fmt, args), capture_output=True, text=True, check=False)
    load_after = os.getloadavg()[0]
    if done.returncode != 0:
        raise SystemExit(f"generate failed ({done.returncode}): {done.stderr[-2000:]}")
    metrics = json.loads((out / "tvae" / "evaluation" / "metrics.json").read_text())
    data = next((out / "tvae" / "data").glob("synthetic.*"))
    return {
        "format": fmt,
        "rows": metrics["sampling"]["rows"],
        "sample_s": metrics["sampling"]["seconds"],
        "rows_per_s": metrics["sampling"]["rows_per_second"],
        "exact_copies_checked": metrics["privacy"]["exact_copies"]["synthetic_rows_checked"],
        "file_mb": data.stat().st_size / 1e6,
        "load_before": load_before,
        "load_after": load_after,
    }


def main(argv: list[str] | None = None) -> None:
    """Save the table, run generate per format and repeat, write the results."""
    args = parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        source = tmp / f"{args.table}.parquet"
        load_table(args.table).to_parquet(source, index=False)
        for index in range(args.repeats):  # formats interleaved: a busy spell hits both alike
            for fmt in args.formats:
                rows.append(run_once(source, fmt, args, tmp, index))
                print(f"[{time.strftime('%H:%M:%S')}] {rows[-1]}", file=sys.stderr, flush=True)
    write_results(args, rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="support2")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=10, help="the fit is not timed; few epochs keep runs short")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--formats", type=lambda s: s.split(","), default=["parquet", "csv"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    args.command = "PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_generate.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    return args


def write_results(args: argparse.Namespace, rows: list[dict]) -> None:
    """generate.csv (every run) and generate.md (median and range per format, the goal)."""
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "generate.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "# `fairsynth generate`: sampling stage rows/s (tvae, exact-copy check over every row)",
        "",
        "Command (from the repository root):",
        "",
        f"    {args.command}",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs shared with other work. Table {args.table}, "
        f"{args.rows:,} rows per run, tvae with {args.epochs} epochs, seed {args.seed}. Each run is "
        f"`{shlex.join(generate_command(Path(args.table + '.parquet'), Path('OUT'), 'FORMAT', args)[1:])}` "
        "in a fresh process; rows/s is its metrics.json sampling figure (first batch to file closed, the "
        "exact-copy check and the writes included). Load is the 1-minute load average before / after the run.",
        "",
        "| format | runs | rows/s (median) | range | file MB | load before / after (each run) | goal |",
        "|---|---|---|---|---|---|---|",
    ]
    for fmt in args.formats:
        runs = [r for r in rows if r["format"] == fmt]
        rates = [r["rows_per_s"] for r in runs]
        median = statistics.median(rates)
        loads = "; ".join(f"{r['load_before']:.1f} / {r['load_after']:.1f}" for r in runs)
        goal = GOAL_ROWS_PER_S.get(fmt)
        verdict = f">= {goal:,}: {'met' if median >= goal else 'not met'}" if goal else "-"
        lines.append(
            f"| {fmt} | {len(runs)} | {median:,.0f} | {min(rates):,.0f}-{max(rates):,.0f} | "
            f"{runs[0]['file_mb']:.0f} | {loads} | {verdict} |"
        )
    (args.out / "generate.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
