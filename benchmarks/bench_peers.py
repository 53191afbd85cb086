"""Benchmark tvae against the strongest peers: mostly.argn (MOSTLY AI TabularARGN), sdv.tvae, ydata.fast.

Every (table, backend) runs in its own child process on the same seeded 80/20 split; each backend
samples the same number of rows (the holdout's, at most --rows). Columns: fit seconds, sampled rows/s,
peak RSS (the child or the isolated worker it started, whichever is larger), sdmetrics quality with its
bootstrap interval, mostlyai-qa accuracy (the second evaluator, in .venv-mostly) and the DCR share
(0.5 = synthetic rows no closer to training rows than to unseen ones). Tables: SUPPORT2, NAFLD1, the demo
table and lab_wide (fabricated: 30k rows x 24 columns, three text columns with 500-2,000 levels).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_peers.py --epochs 20 --minutes 1

Results go to benchmarks/results/peers.md and peers.csv (the command is printed at the top).

--defaults gives every backend its own defaults (mostly.argn capped at --minutes): peers_defaults.md.

--lab-rows races on the wide lab table at several sizes instead (fit time against rows and encoded width):
tvae and sdv.gaussian_copula with their defaults, mostly.argn with its defaults but at most --minutes of
training, every schema with the rules detected as `fairsynth generate` detects them. Results go to
benchmarks/results/peers_lab_wide.md and .csv.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_peers.py --lab-rows 5000 15000 30000 --minutes 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import sys
import time
from pathlib import Path

import pandas as pd

from benchmarks.bench_ydata import markdown_table
from benchmarks.harness import add_fit_ratios, in_child, load_table, peak_rss_mb, split

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ["tvae", "mostly.argn", "sdv.tvae", "ydata.fast"]
LAB_BACKENDS = ["tvae", "sdv.gaussian_copula", "mostly.argn"]
TABLES = ["support2", "nafld1", "demo", "lab_wide"]
COLUMNS = [
    "table",
    "backend",
    "fit_s",
    "fit_cpu_s",
    "encoded_width",
    "sample_rows_per_s",
    "peak_rss_mb",
    "quality",
    "quality_low",
    "quality_high",
    "qa_accuracy",
    "dcr_share",
    "fit_s_vs_tvae",
    "train_rows",
    "synthetic_rows",
    "error",
]


def params_for(backend: str, epochs: int | None, minutes: float) -> dict:
    """The same epoch budget for the epoch-trained networks (None: each backend's defaults); TabularARGN also
    gets a wall-clock cap."""
    if epochs is None:
        return {"max_training_time": minutes} if backend == "mostly.argn" else {}
    if backend in ("tvae", "sdv.tvae"):
        return {"epochs": epochs}
    if backend == "mostly.argn":
        return {"max_epochs": epochs, "max_training_time": minutes}
    return {}


def run_fit(job: dict) -> dict:
    """Fit one backend on the train split, sample, and score the sample with both evaluators."""
    from fairsynth.backends.registry import create
    from fairsynth.metadata.rule_checks import with_detected_rules
    from fairsynth.metadata.schema import TableSchema
    from fairsynth.services.run.evaluation.privacy import evaluate_privacy
    from fairsynth.services.run.evaluation.quality import evaluate_quality
    from fairsynth.services.run.evaluation.second import evaluate_second

    train, holdout = split(load_table(job["table"]), job["seed"])
    schema = TableSchema.infer(train)
    if job.get("rules"):
        schema = with_detected_rules(schema, train)
    generator = create(job["backend"], **job["params"])
    start, cpu = time.perf_counter(), cpu_seconds()
    generator.fit(train, schema, seed=job["seed"])
    fit_seconds, fit_cpu = time.perf_counter() - start, cpu_seconds() - cpu
    width = encoded_width(generator, train)
    rows = min(len(holdout), job["rows"])
    start = time.perf_counter()
    synthetic = pd.concat(generator.sample(rows, seed=job["seed"] + 1), ignore_index=True)
    sample_seconds = time.perf_counter() - start
    rss = peak_rss_mb()  # before the evaluators' own worker
    if job.get("keep_samples"):  # for a per-column look afterwards (mostlyai-qa's report on the same files)
        keep = Path(job["keep_samples"]) / job["table"]
        keep.mkdir(parents=True, exist_ok=True)
        synthetic.to_parquet(keep / f"{job['backend']}.parquet", index=False)
    quality = evaluate_quality(train, holdout, synthetic, schema, seed=job["seed"])
    privacy = evaluate_privacy(train, holdout, synthetic, schema, seed=job["seed"], anonymeter=False)
    second = evaluate_second(train, holdout, synthetic, schema)
    low, high = quality.quality_interval or (None, None)
    return {
        "fit_s": fit_seconds,
        "fit_cpu_s": fit_cpu,
        "encoded_width": width,
        "sample_rows_per_s": rows / sample_seconds,
        "peak_rss_mb": rss,
        "quality": quality.quality,
        "quality_low": low,
        "quality_high": high,
        "qa_accuracy": getattr(second, "accuracy", None),
        "dcr_share": privacy.dcr.share_closer_to_train if privacy.dcr else None,
        "train_rows": len(train),
        "synthetic_rows": rows,
    }


def cpu_seconds() -> float:
    """CPU seconds this process and the workers it waited for have used: a fit's time on idle cores."""
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def encoded_width(generator, train: pd.DataFrame) -> int | None:
    """Values a training row encodes to with one-hot categories (numeric columns plus every category token the
    codec keeps, missing and rare tokens included): what makes a wide table slow to learn."""
    codec = getattr(generator, "codec", None)
    if codec is None:
        return None
    encoded = codec.encode(train)
    return sum(1 if kind == "numeric" else encoded[name].nunique() for name, kind in codec.model_columns().items())


def render(rows: list[dict], command: str, seconds: float, args: argparse.Namespace) -> str:
    """The Markdown results page."""
    frame = pd.DataFrame(rows).reindex(columns=COLUMNS)
    if args.lab_rows:
        budgets = (
            f"Budgets: tvae and sdv.gaussian_copula their defaults (tvae: early stopping within its row budget); "
            "mostly.argn its defaults "
            f"but at most {args.minutes:g} min of training. Rules detected on the training rows as `fairsynth "
            "generate` does (a test code fixes its name, unit and range, ...), for every backend."
        )
    elif args.defaults:
        budgets = (
            "Budgets: every backend its own defaults (tvae: early stopping within its row budget; sdv.tvae 300 "
            f"epochs; ydata.fast its defaults), mostly.argn its defaults but at most {args.minutes:g} min of training."
            + (
                " Rules detected on the training rows as `fairsynth generate` does by default, for every backend."
                if args.rules
                else ""
            )
        )
    else:
        budgets = (
            f"Budgets: tvae and sdv.tvae {args.epochs} epochs; mostly.argn at most {args.epochs} epochs and "
            f"{args.minutes:g} min of training (the engine keeps its best checkpoint); ydata.fast its defaults."
        )
    title = "the wide lab table by rows" if args.lab_rows else "MOSTLY AI TabularARGN, SDV TVAE, ydata fast"
    return "\n".join(
        [
            f"# tvae vs the peers: {title}",
            "",
            f"Command: `{command}`",
            "",
            f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (shared), Python {platform.python_version()}; "
            f"whole run {seconds:.0f} s.",
            "",
            f"{budgets} mostly.argn and ydata.fast run in their isolated venvs: their fit and sample times include "
            "starting the worker (importing the engine takes seconds). Quality: sdmetrics QualityReport of the "
            "sample against the training rows, with its 95% bootstrap interval; qa_accuracy: mostlyai-qa (1 − TVD "
            "over binned univariate and bivariate distributions), a second, independent evaluator; dcr_share: 0.5 "
            "is best; fit_cpu_s: CPU seconds of the fit (its process and the worker it started; on a busy "
            "machine the closer measure of the fit on idle cores); encoded_width: values a training row encodes to "
            "with one-hot categories (tvae learns at most its max_levels most frequent levels of a column one-hot, "
            "the rest drawn from the rare pool). The "
            "machine was shared with other work while this ran: absolute times are inflated and noisy, compare "
            "within a table."
            + (
                ""
                if args.defaults
                else " The budgets are small so that the run fits on 2 cores; they are not each backend's best."
            ),
            "",
            markdown_table(frame),
            "",
        ]
    )


def main() -> None:
    """Run every (table, backend) job and write the results table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=1.0, help="mostly.argn's training-time cap")
    parser.add_argument("--rows", type=int, default=5000, help="synthetic rows per backend (at most the holdout's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tables", nargs="+", default=TABLES)
    parser.add_argument("--backends", nargs="+", default=BACKENDS)
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--defaults", action="store_true", help="every backend at its defaults (mostly.argn capped at --minutes)"
    )
    parser.add_argument("--lab-rows", type=int, nargs="+", help="race on lab_wide_<rows> tables instead (see above)")
    parser.add_argument(
        "--rules", action="store_true", help="every schema with the rules `fairsynth generate` detects (its default)"
    )
    parser.add_argument(
        "--keep-samples", type=Path, help="save each synthetic sample as <dir>/<table>/<backend>.parquet"
    )
    args = parser.parse_args()
    if args.job:
        print(json.dumps(run_fit(json.loads(args.job))))
        return
    command = "PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_peers.py " + shlex.join(sys.argv[1:])
    name, epochs = "peers", args.epochs
    if args.lab_rows:
        args.tables = [f"lab_wide_{rows}" for rows in args.lab_rows]
        args.backends = args.backends if args.backends != BACKENDS else LAB_BACKENDS
        name, epochs = "peers_lab_wide", None
    elif args.defaults:
        name, epochs = "peers_defaults", None
    started = time.perf_counter()
    rows = []
    for table in args.tables:
        for backend in args.backends:
            params = params_for(backend, epochs, args.minutes)
            job = {"table": table, "backend": backend, "params": params, "seed": args.seed, "rows": args.rows}
            job["rules"] = bool(args.lab_rows or args.rules)
            if args.keep_samples:
                job["keep_samples"] = str(args.keep_samples.resolve())
            print(f"{table} {backend} {params} ...", flush=True)
            result = in_child(__file__, job, args.timeout)
            rows.append({"table": table, "backend": backend, **result})
            print(f"  {result}", flush=True)
            add_fit_ratios(rows, "table", "tvae", "fit_s_vs_tvae")
            args.out.mkdir(parents=True, exist_ok=True)  # written after every job: a cut run keeps what it measured
            pd.DataFrame(rows).reindex(columns=COLUMNS).to_csv(args.out / f"{name}.csv", index=False)
            (args.out / f"{name}.md").write_text(render(rows, command, time.perf_counter() - started, args))
    print(f"wrote {args.out / f'{name}.md'}")


if __name__ == "__main__":
    main()
