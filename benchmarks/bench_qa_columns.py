"""Where a synthetic sample loses mostlyai-qa accuracy: per column and per column pair, beside the ceiling.

mostlyai-qa's accuracy is the mean of its univariate, bivariate and trivariate accuracies (1 - TVD over columns
binned on the real rows: 10 quantile bins for numbers, the 10 most frequent levels plus "(other)" for categories,
"(n/a)" for missing). This script computes the same binned accuracies per column and per pair for each sample
given, next to mostlyai-qa's own `accuracy_max` (what a sample of the same size drawn from the real rows would
reach), the holdout's accuracy and that of as many holdout rows as the samples have (mostlyai-qa scores a column
whose values are mostly seen once in a small table as text tokens, so real rows lose there too), so the columns
and pairs where a generator trails stand out.

Two steps, because mostlyai-qa lives in its own venv:

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_qa_columns.py prepare lab_wide --dir /tmp/samples
    .venv-mostly/bin/python benchmarks/bench_qa_columns.py score lab_wide --dir /tmp/samples

`prepare` writes the seeded train/holdout split bench_peers fits on (train.parquet, holdout.parquet and the scored
columns) beside the samples bench_peers --keep-samples saved as <dir>/<table>/<backend>.parquet; `score` prints
the per-column and per-pair tables of every <backend>.parquet there (written to <dir>/<table>/qa_columns.md too).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

SPLIT_FILES = ("train.parquet", "holdout.parquet", "columns.json")
MAX_ROWS = 20_000  # evaluate_second's max_sample_size for accuracy (QUALITY_ROWS)


def prepare(table: str, folder: Path, seed: int) -> None:
    """Write the train/holdout split and the scored columns as evaluate_second hands them to mostlyai-qa."""
    from benchmarks.harness import load_table, split
    from fairsynth.metadata.schema import TableSchema
    from fairsynth.services.run.evaluation.quality import scored_columns
    from fairsynth.services.run.evaluation.second import _as_plain_columns

    train, holdout = split(load_table(table), seed)
    names = [spec.name for spec in scored_columns(TableSchema.infer(train), train)]
    folder.mkdir(parents=True, exist_ok=True)
    _as_plain_columns(train[names]).to_parquet(folder / "train.parquet", index=False)
    _as_plain_columns(holdout[names]).to_parquet(folder / "holdout.parquet", index=False)
    (folder / "columns.json").write_text(json.dumps(names))


def binned(folder: Path, samples: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """The real rows (train + holdout, as mostlyai-qa pools them) and every sample, binned on the real rows."""
    from mostlyai.qa._accuracy import bin_data
    from mostlyai.qa._sampling import prepare_data_for_accuracy

    names = json.loads((folder / "columns.json").read_text())
    train, holdout = (pd.read_parquet(folder / name)[names] for name in SPLIT_FILES[:2])
    prepared = {
        name: prepare_data_for_accuracy(df_tgt=frame, max_sample_size=MAX_ROWS, setup="1:1")
        for name, frame in {"train": train, "holdout": holdout}.items()
    }
    dtypes = prepared["train"].dtypes.to_dict()
    real = pd.concat([prepared["train"], prepared["holdout"]], ignore_index=True)
    real_bin, bins = bin_data(real, bins=10)
    out = {}
    for name, frame in samples.items():
        sample = prepare_data_for_accuracy(
            df_tgt=frame[names], max_sample_size=MAX_ROWS, setup="1:1", ori_dtypes=dtypes
        )
        out[name], _ = bin_data(sample, bins=bins)
    return real_bin, out


def accuracies(real_bin: pd.DataFrame, samples_bin: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per column and per pair: each sample's accuracy and mostlyai-qa's expected ceiling (accuracy_max)."""
    from mostlyai.qa._accuracy import calculate_bivariates, calculate_univariates

    uni, biv = None, None
    for name, sample_bin in samples_bin.items():
        one = calculate_univariates(real_bin, sample_bin).set_index("column")
        two = calculate_bivariates(real_bin, sample_bin)
        two = two[two.col1 < two.col2].set_index(["col1", "col2"])
        if uni is None:
            uni, biv = one[["accuracy_max"]].rename(columns={"accuracy_max": "ceiling"}), two[["accuracy_max"]]
            biv = biv.rename(columns={"accuracy_max": "ceiling"})
        uni[name], biv[name] = one["accuracy"], two["accuracy"]
    return _tidy(uni), _tidy(biv)


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Plain column names (mostlyai-qa prefixes them with 'tgt::')."""
    frame = frame.rename(index=lambda name: str(name).removeprefix("tgt::"))
    frame.index.names = [str(name) for name in frame.index.names]
    return frame


def score(folder: Path) -> str:
    """Markdown tables of per-column and per-pair accuracy for every sample in the folder, worst gaps first."""
    files = sorted(p for p in folder.glob("*.parquet") if p.name not in SPLIT_FILES)
    holdout = pd.read_parquet(folder / "holdout.parquet")
    generated = {path.stem: pd.read_parquet(path) for path in files}
    rows = min([len(holdout), *map(len, generated.values())])
    # the holdout cut to the samples' size: mostlyai-qa reads a column as text (and scores tokens of it) when over 5%
    # of a table's rows hold a value seen once there, so a small sample of real rows is the fair ceiling
    samples = {"holdout": holdout, f"holdout_{rows}": holdout.sample(rows, random_state=0), **generated}
    real_bin, samples_bin = binned(folder, samples)
    uni, biv = accuracies(real_bin, samples_bin)
    first, reference = (files[0].stem if files else "holdout"), f"holdout_{rows}"
    lines = [f"# mostlyai-qa accuracy per column and pair: {folder.name}", ""]
    lines += ["Means: " + ", ".join(f"{c} uni {uni[c].mean():.3f} biv {biv[c].mean():.3f}" for c in uni.columns), ""]
    for title, frame in (("Per column", uni), ("Per pair (40 largest gaps)", biv)):
        frame = frame.assign(gap=frame[reference] - frame[first]).sort_values("gap", ascending=False)
        lines += [f"## {title}, by {first}'s gap to {reference}", "", markdown(frame.head(40)), ""]
    per_column = pd.concat([biv.droplevel(1), biv.droplevel(0)]).groupby(level=0).mean()
    per_column = per_column.assign(gap=per_column[reference] - per_column[first]).sort_values("gap", ascending=False)
    lines += ["## Mean bivariate accuracy of each column's pairs", "", markdown(per_column), ""]
    return "\n".join(lines)


def markdown(frame: pd.DataFrame) -> str:
    """A markdown table of the frame, index first, numbers to 3 places (.venv-mostly has no tabulate)."""
    frame = frame.round(3).reset_index()
    rows = [[str(v) for v in row] for row in frame.itertuples(index=False)]
    header = "| " + " | ".join(map(str, frame.columns)) + " |\n|" + "---|" * len(frame.columns)
    return "\n".join([header, *("| " + " | ".join(row) + " |" for row in rows)])


def main() -> None:
    """prepare (in .venv) or score (in .venv-mostly) one table's samples."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["prepare", "score"])
    parser.add_argument("table")
    parser.add_argument("--dir", type=Path, required=True, help="bench_peers --keep-samples folder")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    folder = args.dir / args.table
    if args.step == "prepare":
        prepare(args.table, folder, args.seed)
        return
    report = score(folder)
    (folder / "qa_columns.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
