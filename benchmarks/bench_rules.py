"""Benchmark: cross-column rules (issue 15) — detection time on a wide table, and per backend the rules kept.

(a) Detection: the fabricated lab table tiled to --detect-rows rows and widened to 40 columns with jittered
    copies, a second date pair, a sum and a coded category; TableSchema.infer and detection timed apart (goal:
    detection < 15 s on 1M rows x 40 columns).
(b) Generation: per table (demo, SUPPORT2, NAFLD1, lab) and backend, in a child process on the seeded 80/20
    split (train capped at --fit-rows): detect the rules on train, then fit and sample --rows rows twice —
    "before" with every rule turned off (the codec enforces nothing) and "after" with the detected rules
    enforced. Per run: fit seconds, quality, and each rule's adherence (share of the synthetic rows it applies
    to that keep it). Goals: 100% for every enforced rule, quality not lower by more than 0.01, fit overhead
    < 10%.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_rules.py                      # everything (minutes)
    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_rules.py --tables lab --backends marginals
    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_rules.py --skip-generation    # detection only

Results go to benchmarks/results/rules.md and rules.csv (one row per table, backend and mode) and
rules_adherence.csv (one row per rule).
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

import numpy as np
import pandas as pd

from benchmarks.harness import in_child, load_table, split

RESULTS = Path(__file__).parent / "results"
TABLES = ["demo", "support2", "nafld1", "lab"]
BACKENDS = ["marginals", "tvae", "sdv.gaussian_copula", "sdv.tvae", "ydata.fast"]
EPOCH_BACKENDS = {"tvae", "sdv.tvae"}
DETECT_COLUMNS = 40
GOALS = {"detect_s": 15.0, "adherence": 1.0, "quality_drop": 0.01, "fit_overhead": 0.10}
COLUMNS = [
    "table",
    "backend",
    "mode",
    "rules",
    "enforced",
    "worst_enforced_adherence",
    "worst_adherence",
    "quality",
    "fit_s",
    "sample_s",
]
RULE_COLUMNS = ["table", "backend", "mode", "rule", "status", "applicable", "adherence"]


# -- (a) detection on a wide table ----------------------------------------------------------------------
def wide_table(n_rows: int, seed: int = 0) -> pd.DataFrame:
    """The lab table tiled to n_rows and widened to DETECT_COLUMNS columns with columns of every kind."""
    from fairsynth.services.run.lab import make_lab_table

    lab = make_lab_table()
    table = lab.iloc[np.arange(n_rows) % len(lab)].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 700, n_rows), unit="D")
    extra = {
        "ADMDT": start.strftime("%Y-%m-%d"),
        "DISCHDT": (start + pd.to_timedelta(rng.integers(0, 40, n_rows), unit="D")).strftime("%Y-%m-%d"),
        "DOSE_AM": rng.integers(0, 20, n_rows),
        "DOSE_PM": rng.integers(0, 20, n_rows),
        "ARM": rng.choice(["PLACEBO", "LOW", "HIGH"], n_rows),
        "RACE": rng.choice(["WHITE", "BLACK", "ASIAN", "OTHER"], n_rows, p=[0.6, 0.2, 0.15, 0.05]),
    }
    extra["DOSE_TOT"] = extra["DOSE_AM"] + extra["DOSE_PM"]
    extra["ARMCD"] = pd.Series(extra["ARM"]).map({"PLACEBO": "P", "LOW": "L", "HIGH": "H"}).to_numpy()
    for index in range(DETECT_COLUMNS - len(table.columns) - len(extra)):
        base = np.nan_to_num(table["LBSTRESN"].to_numpy(float), nan=0.5)  # no gaps: its own column
        extra[f"X{index:02d}"] = np.round(base * rng.normal(1, 0.1 + 0.05 * index, n_rows), 2)
    return pd.concat([table, pd.DataFrame(extra)], axis=1)


def detection_timing(n_rows: int) -> dict:
    """Seconds to infer the schema and to detect the rules of the wide table."""
    from fairsynth.metadata.rule_checks import detect_rules
    from fairsynth.metadata.schema import TableSchema

    table = wide_table(n_rows)
    tick = time.perf_counter()
    schema = TableSchema.infer(table)
    infer_s = time.perf_counter() - tick
    tick = time.perf_counter()
    rules = detect_rules(table, schema)
    detect_s = time.perf_counter() - tick
    return {
        "rows": len(table),
        "columns": len(table.columns),
        "infer_s": infer_s,
        "detect_s": detect_s,
        "rules": len(rules),
        "rule_texts": [rule.text for rule in rules],
    }


# -- (b) one table and backend, rules off and on --------------------------------------------------------
def run_job(job: dict) -> dict:
    """Detect rules on train, then fit and sample with every rule off and with them enforced; measure each."""
    from fairsynth.metadata.rule_checks import infer_with_rules
    from fairsynth.metadata.rules import RuleStatus

    train, holdout = split(load_table(job["table"]), job["seed"])
    if len(train) > job["fit_rows"]:
        train = train.sample(n=job["fit_rows"], random_state=job["seed"]).reset_index(drop=True)
    detected = infer_with_rules(train, seed=job["seed"])
    off = detected.model_copy(
        update={"rules": [rule.model_copy(update={"status": RuleStatus.OFF}) for rule in detected.rules]}
    )
    return {
        mode: _measured(job, train, holdout, schema, detected)
        for mode, schema in (("before", off), ("after", detected))
    }


def _measured(job: dict, train: pd.DataFrame, holdout: pd.DataFrame, schema, detected) -> dict:
    """Fit, sample and measure one run: times, quality, and the adherence of every detected rule."""
    from fairsynth.backends.registry import create
    from fairsynth.metadata.rule_checks import rule_counts
    from fairsynth.services.run.evaluation.quality import evaluate_quality

    generator = create(job["backend"], **job["params"])
    tick = time.perf_counter()
    generator.fit(train, schema, seed=job["seed"])
    fit_s = time.perf_counter() - tick
    tick = time.perf_counter()
    synthetic = pd.concat(generator.sample(job["rows"], seed=job["seed"] + 1), ignore_index=True)
    sample_s = time.perf_counter() - tick
    rules = []
    for rule in detected.rules:  # measured against the detected statuses: what "after" enforces
        applicable, kept = rule_counts(rule, synthetic, detected, reference=train)
        adherence = kept / applicable if applicable else None
        rules.append({"rule": rule.text, "status": rule.status.value, "applicable": applicable, "adherence": adherence})
    return {
        "quality": evaluate_quality(train, holdout, synthetic, schema, seed=job["seed"]).quality,
        "fit_s": fit_s,
        "sample_s": sample_s,
        "rules": rules,
    }


def summary(table: str, backend: str, mode: str, run: dict) -> dict:
    """One results row of a run: rule counts, worst adherence (enforced rules and all), quality, times."""
    measured = [r for r in run["rules"] if r["adherence"] is not None]
    enforced = [r["adherence"] for r in measured if r["status"] == "enforced"]
    return {
        "table": table,
        "backend": backend,
        "mode": mode,
        "rules": len(run["rules"]),
        "enforced": len(enforced),
        "worst_enforced_adherence": min(enforced, default=None),
        "worst_adherence": min((r["adherence"] for r in measured), default=None),
        "quality": run["quality"],
        "fit_s": run["fit_s"],
        "sample_s": run["sample_s"],
    }


def params_of(backend: str, epochs: int) -> dict:
    """Small runs: few epochs for the epoch-based backends (tvae stops on epochs, not patience)."""
    if backend == "tvae":
        return {"epochs": epochs, "patience": 0}
    return {"epochs": epochs} if backend in EPOCH_BACKENDS else {}


def main() -> None:
    """Time detection on the wide table, then run every (table, backend) in a child process; write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--tables", nargs="+", default=TABLES)
    parser.add_argument("--backends", nargs="+", default=BACKENDS)
    parser.add_argument("--epochs", type=int, default=20, help="epochs of tvae and sdv.tvae")
    parser.add_argument("--rows", type=int, default=3000, help="synthetic rows per run")
    parser.add_argument("--fit-rows", type=int, default=3000, help="training rows at most (a seeded sample)")
    parser.add_argument("--detect-rows", type=int, default=1_000_000, help="rows of the detection table")
    parser.add_argument("--skip-generation", action="store_true", help="time detection only")
    parser.add_argument("--timeout", type=int, default=900)
    args = parser.parse_args()
    if args.job:
        print(json.dumps(run_job(json.loads(args.job))))
        return
    detection = detection_timing(args.detect_rows)
    print({k: v for k, v in detection.items() if k != "rule_texts"}, flush=True)
    rows, rule_rows = [], []
    for table in [] if args.skip_generation else args.tables:
        for backend in args.backends:
            job = {"table": table, "backend": backend, "params": params_of(backend, args.epochs), "seed": 0}
            job |= {"rows": args.rows, "fit_rows": args.fit_rows}
            runs = in_child(__file__, job, args.timeout)
            if "error" in runs:
                rows.append({"table": table, "backend": backend, "error": runs["error"]})
                print(rows[-1], flush=True)
                continue
            for mode, run in runs.items():
                rows.append(summary(table, backend, mode, run))
                rule_rows += [{"table": table, "backend": backend, "mode": mode, **rule} for rule in run["rules"]]
                print(rows[-1], flush=True)
    _write(detection, rows, rule_rows, args)


def _write(detection: dict, rows: list[dict], rule_rows: list[dict], args: argparse.Namespace) -> None:
    RESULTS.mkdir(exist_ok=True)
    columns = COLUMNS + ["error"]
    _write_csv(RESULTS / "rules.csv", columns, rows)
    _write_csv(RESULTS / "rules_adherence.csv", RULE_COLUMNS, rule_rows)
    lines = [
        "# Cross-column rules: detection time, and the rules every backend keeps",
        "",
        f"Command: `PYTHONPATH=$PWD {shlex.join([Path(sys.executable).name, *sys.argv])}`",
        f"Machine: {platform.machine()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}. "
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Goals: detection < {GOALS['detect_s']:g} s "
        f"on 1M rows x 40 columns; every enforced rule kept in 100% of rows; quality not lower by more than "
        f"{GOALS['quality_drop']}; fit overhead < {GOALS['fit_overhead']:.0%}.",
        "",
        "## Detection",
        "",
        f"{detection['rows']:,} rows x {detection['columns']} columns (the lab table tiled and widened): "
        f"TableSchema.infer {detection['infer_s']:.1f} s, rule detection {detection['detect_s']:.1f} s, "
        f"{detection['rules']} rules found:",
        "",
        *(f"- `{text}`" for text in detection["rule_texts"]),
    ]
    if rows:
        lines += [
            "",
            "## Generation: rules off (before) and enforced (after)",
            "",
            f"Train: the seeded 80% split, at most {args.fit_rows:,} rows; {args.rows:,} synthetic rows; "
            f"{args.epochs} epochs for {', '.join(sorted(EPOCH_BACKENDS))}. Adherence: share of the synthetic rows "
            "a rule applies to that keep it, for the rules detected on train (measured in both modes).",
            "",
            *_markdown_table(columns, rows),
            "",
            *_overheads(rows),
            "",
            "## Adherence per rule",
            "",
            *_markdown_table(RULE_COLUMNS, rule_rows),
        ]
    (RESULTS / "rules.md").write_text("\n".join(lines) + "\n")


def _overheads(rows: list[dict]) -> list[str]:
    """Per table and backend: quality change and fit-time overhead of enforcing the rules."""
    runs = {(r["table"], r["backend"], r.get("mode")): r for r in rows}
    lines = ["| table | backend | quality change | fit overhead |", "|---|---|---|---|"]
    for (table, backend, mode), after in runs.items():
        before = runs.get((table, backend, "before"))
        if mode == "after" and before:
            change = after["quality"] - before["quality"]
            overhead = after["fit_s"] / before["fit_s"] - 1
            lines.append(f"| {table} | {backend} | {change:+.4f} | {overhead:+.0%} |")
    return lines


def _markdown_table(columns: list[str], rows: list[dict]) -> list[str]:
    return [
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(_cell(row.get(column)) for column in columns) + " |" for row in rows),
    ]


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value).replace("|", "\\|")


if __name__ == "__main__":
    main()
