"""Schema inference on 1M rows: fairsynth's TableSchema.infer vs SDV metadata detection, same table.

Run: PYTHONPATH=. .venv/bin/python benchmarks/bench_schema.py [--rows 1000000] [--repeats 3]
Writes benchmarks/results/schema.md and schema.csv. SDV only detects sdtypes; fairsynth also
parses dates with their format, verifies them on every row, measures ranges, missing shares and
distinct counts, and finds identifiers and PII.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import pandas as pd

from fairsynth.metadata.schema import TableSchema
from fairsynth.services.run.demo import make_demo_table

RESULTS = Path(__file__).parent / "results"


def million_row_table(rows: int) -> pd.DataFrame:
    """The demo table's shape (IDs, NHS numbers, dates, codes, gaps) grown to `rows` rows."""
    return make_demo_table(n_rows=rows, seed=11)


def time_it(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    table = million_row_table(args.rows)
    path = RESULTS / "schema-input.csv"
    table.to_csv(path, index=False)
    table = pd.read_csv(path, low_memory=False)  # as a user's file arrives: dates are text
    path.unlink()
    from sdv.metadata import Metadata

    ours = time_it(lambda: TableSchema.infer(table), args.repeats)
    sdv = time_it(lambda: Metadata.detect_from_dataframes({"t": table}), args.repeats)
    schema = TableSchema.infer(table)
    rows = [
        {
            "tool": "fairsynth TableSchema.infer",
            "rows": len(table),
            "columns": table.shape[1],
            "median_seconds": round(ours, 2),
            "ratio_to_sdv": round(ours / sdv, 2),
        },
        {
            "tool": "SDV Metadata.detect_from_dataframes",
            "rows": len(table),
            "columns": table.shape[1],
            "median_seconds": round(sdv, 2),
            "ratio_to_sdv": 1.0,
        },
    ]
    frame = pd.DataFrame(rows)
    RESULTS.mkdir(exist_ok=True)
    frame.to_csv(RESULTS / "schema.csv", index=False)
    kinds = ", ".join(f"{c.name}={c.kind.value}" for c in schema.columns)
    lines = [
        "# Schema inference benchmark",
        "",
        f"Command: `PYTHONPATH=. .venv/bin/python benchmarks/bench_schema.py --rows {args.rows} "
        f"--repeats {args.repeats}` (median of {args.repeats}, same table in one process)",
        "",
        "| tool | rows | columns | median s | ratio to SDV |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['tool']} | {r['rows']:,} | {r['columns']} | {r['median_seconds']} | {r['ratio_to_sdv']} |" for r in rows
    ]
    lines += ["", f"Kinds found by fairsynth: {kinds}.", ""]
    (RESULTS / "schema.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
