"""Reading users' tables: CSV or Parquet in, a DataFrame out, or one clear sentence on what is wrong."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from fairsynth.errors import FairsynthError

MIN_ROWS = 10
SEPARATORS = ",;\t|"


class InputError(FairsynthError):
    """The input table cannot be used; each problem says what is wrong and what to do."""


def read_table(path: str | Path, *, encoding: str = "utf-8", separator: str | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet file and check it can be learned from."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist or is not a file; give the path of a CSV or Parquet table.")
    if path.stat().st_size == 0:
        raise InputError(f"{path.name} is empty; export the table again with its header and rows.")
    if path.suffix.lower() in (".parquet", ".pq"):
        data = _read_parquet(path)
    else:
        data = _read_csv(path, encoding, separator)
    check_table(data, path.name)
    return data


def check_table(data: pd.DataFrame, label: str = "The table") -> None:
    """Refuse tables no backend can learn from, naming every reason at once."""
    problems = _column_problems(data, label) + _row_problems(data, label)
    if problems:
        raise InputError(*problems)


def _column_problems(data: pd.DataFrame, label: str) -> list[str]:
    problems = []
    duplicated = sorted({str(c) for c in data.columns[data.columns.duplicated()]})
    if duplicated:
        problems.append(
            f"{label} has repeated column names ({', '.join(duplicated)}); rename them so every column name is unique."
        )
    if data.shape[1] < 2:
        found = f"only one column ({data.columns[0]!r})" if data.shape[1] else "no columns"
        problems.append(
            f"{label} has {found}; fairsynth needs at least two — "
            "if the file uses another separator, pass it with --separator."
        )
    return problems


def _row_problems(data: pd.DataFrame, label: str) -> list[str]:
    if len(data) == 0:
        return [f"{label} has a header but no rows; export it again with its data."]
    problems = []
    if len(data) < MIN_ROWS:
        problems.append(f"{label} has {len(data)} rows; at least {MIN_ROWS} are needed to learn anything.")
    if data.isna().all().all():
        problems.append(f"{label} has no values at all (every cell is empty).")
    return problems


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for corrupt files
        raise InputError(
            f"{path.name} is not a readable Parquet file ({type(exc).__name__}); export it again or save it as CSV."
        ) from exc


def _read_csv(path: Path, encoding: str, separator: str | None) -> pd.DataFrame:
    header = _first_line(path, encoding)
    if not header.strip():
        raise InputError(f"{path.name} has no header line; its first line must name the columns.")
    separator = separator or _sniff_separator(header)
    names = next(csv.reader([header], delimiter=separator))
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(
            f"{path.name} has repeated column names ({', '.join(repeated)}); "
            "rename them so every column name is unique."
        )
    try:
        return pd.read_csv(path, sep=separator, encoding=encoding, low_memory=False)
    except UnicodeDecodeError as exc:
        raise _encoding_error(path, encoding, exc) from exc
    except pd.errors.ParserError as exc:
        raise InputError(
            f"{path.name} is not a well-formed table ({str(exc).splitlines()[-1]}); "
            "check its quoting and that every row has the same number of fields."
        ) from exc


def _first_line(path: Path, encoding: str) -> str:
    try:
        with open(path, encoding=encoding, newline="") as handle:
            line = handle.readline()
            handle.read(1 << 16)  # decode a first block too, so bad bytes are caught early
            return line
    except UnicodeDecodeError as exc:
        raise _encoding_error(path, encoding, exc) from exc


def _encoding_error(path: Path, encoding: str, exc: UnicodeDecodeError) -> InputError:
    return InputError(
        f"{path.name} is not valid {encoding} text (byte {exc.object[exc.start]:#04x} at "
        f"position {exc.start}); re-save it as UTF-8 or pass its encoding, e.g. --encoding latin-1."
    )


def _sniff_separator(header: str) -> str:
    counts = {sep: header.count(sep) for sep in SEPARATORS}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else ","
