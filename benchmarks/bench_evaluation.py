"""Benchmark: evaluating 1M synthetic rows against a 10k-row real table, beside the naive peer.

The real table is the fabricated demo population (10,000 rows, split 80/20 into train and holdout
as a run would); the "synthetic" table is 1,000,000 fresh rows of the same population (another
seed), i.e. what an ideal generator would give. fairsynth's `evaluate` subsamples where a metric
allows it (sample sizes are in the table); the peer is what a pipeline without subsampling does:
sdmetrics' QualityReport on every synthetic row. Both are timed in the same run, and the quality
scores are compared to show what the subsampling costs in accuracy.

    PYTHONPATH=. python benchmarks/bench_evaluation.py [--synthetic-rows 1000000] [--no-peer]

Writes benchmarks/results/evaluation.md and evaluation.csv.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import pandas as pd

from fairsynth.metadata.schema import TableSchema
from fairsynth.services.run.demo import DEMO_SEED, make_demo_table
from fairsynth.services.run.evaluation import evaluate
from fairsynth.services.run.evaluation.quality import quality_score

RESULTS = Path(__file__).parent / "results"
GOAL_SECONDS = 60.0


def main() -> None:
    """Run the benchmark and write the results table (Markdown + CSV)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-rows", type=int, default=10_000)
    parser.add_argument("--synthetic-rows", type=int, default=1_000_000)
    parser.add_argument("--no-peer", action="store_true", help="skip sdmetrics on every synthetic row")
    args = parser.parse_args()

    real = make_demo_table(args.real_rows, seed=DEMO_SEED)
    schema = TableSchema.infer(real).with_overrides(target="readmitted_30d")
    train, holdout = real.iloc[: int(0.8 * len(real))], real.iloc[int(0.8 * len(real)) :]
    synthetic = make_demo_table(args.synthetic_rows, seed=DEMO_SEED + 1)
    print(f"tables ready: train {len(train):,}, holdout {len(holdout):,}, synthetic {len(synthetic):,}", flush=True)

    tick = time.perf_counter()
    metrics = evaluate(train, holdout, synthetic, schema, seed=0).model_dump(mode="json")
    ours = time.perf_counter() - tick
    print(f"fairsynth evaluate: {ours:.1f} s", flush=True)
    rows = [_row("fairsynth evaluate (quality + privacy incl. anonymeter + utility + gate)", ours, metrics)]

    if not args.no_peer:
        tick = time.perf_counter()
        full = quality_score(train, synthetic, schema)
        peer = time.perf_counter() - tick
        print(f"peer sdmetrics on all rows: {peer:.1f} s", flush=True)
        rows.append(
            {
                "method": "peer: sdmetrics QualityReport on every synthetic row (quality only)",
                "seconds": round(peer, 1),
                "quality": round(full["quality"], 4),
                "column_pair_trends": round(full["column_pair_trends"], 4),
                "synthetic_rows_used": f"{len(synthetic):,} (all)",
            }
        )
    _write(rows, metrics, args, ours)


def _row(method: str, seconds: float, metrics: dict) -> dict:
    q, p, u = metrics["quality"], metrics["privacy"], metrics["utility"]
    sizes = p["sample_sizes"]
    used = (
        f"quality {q['sample_sizes']['synthetic']:,}; DCR/NNDR {sizes['synthetic_queries']:,} vs "
        f"{sizes['train_reference']:,}+{sizes['holdout_reference']:,} real; MIA {sizes['synthetic_for_mia']:,}; "
        f"anonymeter {p['anonymeter']['rows']['synthetic']:,} ({p['anonymeter']['n_attacks']} attacks); "
        f"utility {u['sample_sizes']['synthetic']:,}; "
        f"exact copies {p['exact_copies']['synthetic_rows_checked']:,} (all)"
    )
    return {
        "method": method,
        "seconds": round(seconds, 1),
        "quality": round(q["quality"], 4),
        "column_pair_trends": round(q["column_pair_trends"], 4),
        "synthetic_rows_used": used,
    }


def _write(rows: list[dict], metrics: dict, args, ours: float) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    table.to_csv(RESULTS / "evaluation.csv", index=False)
    peer = rows[1]["seconds"] if len(rows) > 1 else None
    timings = metrics["timings"]
    lines = [
        "# Evaluation speed: 1M synthetic rows against a 10k-row table",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs (shared), "
        f"Python {platform.python_version()}. Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        f"Real table {args.real_rows:,} rows "
        f"(train {metrics['rows']['train']:,} / holdout {metrics['rows']['holdout']:,}), "
        f"synthetic {metrics['rows']['synthetic']:,} rows, {len(metrics['quality']['columns'])} compared columns.",
        "",
        f"**fairsynth `evaluate`: {ours:.1f} s** (goal < {GOAL_SECONDS:.0f} s: "
        f"{'met' if ours < GOAL_SECONDS else 'NOT met'}); quality {timings['quality']:.1f} s, privacy "
        f"{timings['privacy']:.1f} s, utility {timings['utility']:.1f} s.",
        "",
        _markdown(table),
        "",
    ]
    if peer:
        lines += [
            f"Speed ratio (peer / fairsynth): {peer / ours:.1f}× — and the peer measures quality only. "
            f"Quality from the subsample differs from the all-rows score by "
            f"{abs(rows[0]['quality'] - rows[1]['quality']):.4f}.",
            "",
        ]
    lines += [
        "Decision of the gate on this ideal generator: "
        f"**{metrics['gate']['decision']}** — {' '.join(metrics['gate']['reasons'])}",
        "",
        f"DCR share {metrics['privacy']['dcr']['share_closer_to_train']:.3f}, MIA AUC "
        f"{metrics['privacy']['membership_inference']['auc']:.3f}, exact copies "
        f"{metrics['privacy']['exact_copies']['count']:,}.",
        "",
    ]
    (RESULTS / "evaluation.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


def _markdown(table: pd.DataFrame) -> str:
    """A Markdown table (no tabulate dependency)."""
    head = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "---|" * len(table.columns)
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *body])


if __name__ == "__main__":
    main()
