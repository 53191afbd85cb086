"""Benchmark ydata.fast and ydata.ctgan (isolated venv) against their SDV peers; writes Markdown + CSV.

Same columns as bench_tvae.py: fit seconds, sampled rows/s, peak RSS, quality. Every (table,
backend) runs in its own child process on the same seeded 80/20 split and the same epochs; peak
RSS is the larger of that process and the ydata worker it started (the model lives in the worker).
Ratios compare each ydata backend with its peer measured in the same run: ydata.fast with
sdv.gaussian_copula (both statistical), ydata.ctgan with sdv.ctgan (same epochs and batch size).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_ydata.py --epochs 20

Results go to benchmarks/results/ydata.md and ydata.csv (the command is printed at the top).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.harness import in_child, load_table, peak_rss_mb, split

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ["ydata.fast", "sdv.gaussian_copula", "ydata.ctgan", "sdv.ctgan"]
PEERS = {"ydata.fast": "sdv.gaussian_copula", "ydata.ctgan": "sdv.ctgan"}
EPOCH_BACKENDS = {"ydata.ctgan", "sdv.ctgan"}
TABLES = ["support2", "demo"]
BATCH_SIZE = 500
COLUMNS = [
    "table",
    "backend",
    "epochs",
    "fit_s",
    "sample_rows_per_s",
    "peak_rss_mb",
    "quality",
    "column_shapes",
    "column_pair_trends",
    "fit_s_vs_peer",
    "quality_vs_peer",
    "train_rows",
    "holdout_rows",
    "error",
]


def make_generator(backend: str, params: dict):
    """ydata backends straight from their module (entry points may not be declared yet), others by registry."""
    if backend.startswith("ydata."):
        import fairsynth.backends.ydata as ydata

        classes = {cls.name: cls for cls in (ydata.FastGenerator, ydata.CTGANGenerator)}
        return classes[backend](**params)
    from fairsynth.backends.registry import create

    return create(backend, **params)


def run_fit(job: dict) -> dict:
    """Fit one backend on the train split, sample holdout-many rows, score them against the holdout."""
    from fairsynth.metadata.schema import TableSchema
    from fairsynth.services.run.evaluation.quality import quality_score

    train, holdout = split(load_table(job["table"]), job["seed"])
    schema = TableSchema.infer(train)
    generator = make_generator(job["backend"], job["params"])
    start = time.perf_counter()
    generator.fit(train, schema, seed=job["seed"])
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    synthetic = pd.concat(generator.sample(len(holdout), seed=job["seed"] + 1), ignore_index=True)
    sample_seconds = time.perf_counter() - start
    quality = quality_score(holdout, synthetic, schema)
    return {
        "fit_s": fit_seconds,
        "sample_rows_per_s": len(holdout) / sample_seconds,
        "peak_rss_mb": peak_rss_mb(),
        **quality,
        "train_rows": len(train),
        "holdout_rows": len(holdout),
    }


def params_for(backend: str, epochs: int) -> dict:
    """Equal epochs and batch size for the two CTGANs; fast tunes itself on a 5,000-row subsample."""
    return {"epochs": epochs, "batch_size": BATCH_SIZE} if backend in EPOCH_BACKENDS else {}


def add_ratios(rows: list[dict]) -> None:
    """fit_s and quality of each ydata backend relative to its peer on the same table."""
    by_key = {(r["table"], r["backend"]): r for r in rows}
    for row in rows:
        peer = by_key.get((row["table"], PEERS.get(row["backend"], "")))
        if peer and "error" not in row and "error" not in peer:
            row["fit_s_vs_peer"] = row["fit_s"] / peer["fit_s"]
            row["quality_vs_peer"] = row["quality"] / peer["quality"]


def render(rows: list[dict], command: str, seconds: float) -> str:
    """The Markdown results page."""
    frame = pd.DataFrame(rows).reindex(columns=COLUMNS)
    lines = [
        "# ydata-synthetic 1.4 backends vs their SDV peers",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (shared), Python {platform.python_version()}; "
        f"whole run {seconds:.0f} s.",
        "",
        "ydata backends run in the isolated `.venv-ydata` through the worker; their fit and sample times "
        "include starting the worker (~4-8 s to import TensorFlow + ydata, per call). Peers: ydata.fast vs "
        "sdv.gaussian_copula, ydata.ctgan vs sdv.ctgan (same epochs and batch size). Quality is sdmetrics' "
        "QualityReport of the sample against the holdout. The machine was shared with other benchmarks "
        "while this ran (load ~8 on 2 CPUs): absolute times are inflated and noisy, compare ratios within "
        "the run. ydata sample rates on small samples are mostly the worker's start-up.",
        "",
        markdown_table(frame),
        "",
    ]
    return "\n".join(lines)


def markdown_table(frame: pd.DataFrame) -> str:
    """A plain Markdown table (numbers to 3 significant digits, empty cells for missing)."""

    def cell(value) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return ""
        if isinstance(value, float):
            return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3g}"
        return str(value)

    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def main() -> None:
    """Run every (table, backend) job and write the results table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tables", nargs="+", default=TABLES)
    parser.add_argument("--backends", nargs="+", default=BACKENDS)
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    if args.job:
        print(json.dumps(run_fit(json.loads(args.job))))
        return
    command = "PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_ydata.py " + shlex.join(sys.argv[1:])
    started = time.perf_counter()
    rows = []
    for table in args.tables:
        for backend in args.backends:
            params = params_for(backend, args.epochs)
            print(f"{table} {backend} {params} ...", flush=True)
            result = in_child({"table": table, "backend": backend, "params": params, "seed": args.seed}, args.timeout)
            rows.append({"table": table, "backend": backend, "epochs": params.get("epochs"), **result})
            print(f"  {result}", flush=True)
    add_ratios(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).reindex(columns=COLUMNS).to_csv(args.out / "ydata.csv", index=False)
    (args.out / "ydata.md").write_text(render(rows, command, time.perf_counter() - started))
    print(f"wrote {args.out / 'ydata.md'}")


if __name__ == "__main__":
    main()
