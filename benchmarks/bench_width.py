"""Sweep tvae's network size (hidden units, latent dimension) on narrow tables, scored as bench_peers scores a job.

Every (table, hidden, latent, seed) runs bench_peers' own job (its split, sdmetrics quality with interval,
mostlyai-qa accuracy) in a child process; the rows go to benchmarks/results/width.md and width.csv. The
mostly.argn reference for the same tables is peers_defaults.md.

    PYTHONPATH=$PWD nice .venv/bin/python benchmarks/bench_width.py --tables nafld1 demo --seeds 0 1
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import pandas as pd

from benchmarks import bench_peers
from benchmarks.bench_ydata import markdown_table
from benchmarks.harness import in_child

ROOT = Path(__file__).resolve().parents[1]
SIZES = ["64x32", "128x32", "128x64", "256x32", "256x64"]  # hidden units x latent dimension [x hidden layers]
COLUMNS = ["table", "size", "seed", "encoded_width", "fit_s", "fit_cpu_s"]
COLUMNS += ["quality", "quality_low", "quality_high", "qa_accuracy", "dcr_share", "error"]


def job_for(table: str, size: str, seed: int, rows: int) -> dict:
    """bench_peers' job for tvae at one network size."""
    hidden, latent, *layers = (int(part) for part in size.split("x"))
    params = {"hidden_size": hidden, "latent_dim": latent} | ({"hidden_layers": layers[0]} if layers else {})
    return {"table": table, "backend": "tvae", "params": params, "seed": seed, "rows": rows}


def main() -> None:
    """Run every (seed, table, size) job, writing the results after each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", default=["nafld1", "demo", "flchain", "support2"])
    parser.add_argument("--sizes", nargs="+", default=SIZES)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--rows", type=int, default=2000, help="synthetic rows per job (at most the holdout's)")
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    command = "PYTHONPATH=$PWD nice .venv/bin/python benchmarks/bench_width.py " + shlex.join(sys.argv[1:])
    started, rows = time.perf_counter(), []
    for seed in args.seeds:
        for table in args.tables:
            for size in args.sizes:
                result = in_child(bench_peers.__file__, job_for(table, size, seed, args.rows), args.timeout)
                rows.append({"table": table, "size": size, "seed": seed, **result})
                print(rows[-1], flush=True)
                write(rows, args.out, command, time.perf_counter() - started)


def write(rows: list[dict], out: Path, command: str, seconds: float) -> None:
    """The results so far as width.csv and width.md (a cut run keeps what it measured)."""
    frame = pd.DataFrame(rows).reindex(columns=COLUMNS)
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "width.csv", index=False)
    header = [
        "# tvae's network size on narrow tables",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (shared), Python {platform.python_version()}; "
        f"whole run {seconds:.0f} s. size: hidden units x latent dimension [x hidden layers, else 2]; scored as "
        "bench_peers.py scores a job.",
        "",
    ]
    (out / "width.md").write_text("\n".join([*header, markdown_table(frame), ""]))


if __name__ == "__main__":
    main()
