"""CSV cells a spreadsheet would run as formulas, neutralised (OWASP's CSV-injection guidance).

A spreadsheet treats a cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return as a
formula, quoted or not, so a hostile value in the real table (`=HYPERLINK(...)`, `@SUM(A1)`) would
run on the machine of whoever opens our CSV. Every CSV fairsynth writes (synthetic tables, data
dictionary, rules, comparison) passes its text cells and headers through `neutralised`, which
prefixes such a cell with a single quote: spreadsheets then show it as text. Numbers are never
touched: numeric columns are not text, and a text cell that is a plain number (-5, +1.5e3) is
read as that number, not a formula. Parquet keeps the raw values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

FORMULA_START = r"^[=+\-@\t\r]"  # what a spreadsheet reads as the start of a formula
PLAIN_NUMBER = r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$"  # read as a number: no formula to run
TEXT_PREFIX = "'"
FORMULA_BYTES = np.isin(np.arange(256), np.frombuffer(b"=+-@\t\r", np.uint8))  # FORMULA_START as a byte table
# the data dictionary's column saying whether the run's CSV files were neutralised
DICTIONARY_FLAG = "csv_formulas_neutralised"


def neutralised(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Text values with every cell a spreadsheet would run as a formula prefixed with a single quote.

    A dictionary array is fixed in its levels only; an array with nothing to fix comes back as it is.
    """
    if isinstance(values, pa.ChunkedArray):
        return pa.chunked_array([neutralised(chunk) for chunk in values.chunks], values.type)
    if pa.types.is_dictionary(values.type):
        levels = neutralised(values.dictionary)
        if levels is values.dictionary:
            return values
        return pa.DictionaryArray.from_arrays(values.indices, levels)
    formula = _formula_start(values)
    if not formula.any():
        return values
    formula = pc.and_not(pa.array(formula), pc.match_substring_regex(values, PLAIN_NUMBER))
    prefix, joiner = pa.scalar(TEXT_PREFIX, values.type), pa.scalar("", values.type)
    return pc.if_else(formula, pc.binary_join_element_wise(prefix, values, joiner), values)


def neutralised_names(names: list[str]) -> list[str]:
    """Column headers as a spreadsheet may safely show them."""
    return neutralised(pa.array(names, pa.string())).to_pylist()


def neutralised_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of the frame with its headers and text cells neutralised; numbers, flags and gaps unchanged."""
    cells = [_neutralised_cells(frame.iloc[:, position]) for position in range(frame.shape[1])]
    out = pd.concat(cells, axis=1) if cells else frame.copy()
    out.columns = neutralised_names([str(name) for name in frame.columns])
    return out


def write_csv(frame: pd.DataFrame, path: Path, *, neutralise: bool) -> None:
    """Write a small table as CSV (no index), neutralised unless the run asked for raw values."""
    (neutralised_frame(frame) if neutralise else frame).to_csv(path, index=False)


def _formula_start(values: pa.Array) -> np.ndarray:
    """Whether each value starts with a formula character: its first byte, read from the Arrow buffers by numpy."""
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return pc.fill_null(pc.match_substring_regex(values, FORMULA_START), False).to_numpy(zero_copy_only=False)
    _, offsets, data = values.buffers()
    width = np.int32 if pa.types.is_string(values.type) else np.int64
    bounds = np.frombuffer(offsets, width, len(values) + 1, values.offset * np.dtype(width).itemsize)
    if data is None or data.size == 0:
        return np.zeros(len(values), bool)
    first = np.frombuffer(data, np.uint8)[np.minimum(bounds[:-1], data.size - 1)]
    return FORMULA_BYTES[first] & (bounds[1:] > bounds[:-1])  # a gap or an empty cell has no first byte


def _neutralised_cells(values: pd.Series) -> pd.Series:
    """The column with its str cells neutralised (a column may mix text with numbers, as the dictionary's range)."""
    is_text = values.map(lambda value: isinstance(value, str)).to_numpy(bool)
    if not is_text.any():
        return values
    fixed = neutralised(pa.array(values[is_text].tolist(), pa.string())).to_pylist()
    out = values.astype(object)
    out[is_text] = fixed
    return out
