"""Streaming writers: synthetic batches go to CSV or Parquet as they come, never all in memory.

Batches are Arrow tables (what backends.base.sample_tables yields); DataFrames are converted.
CSV keeps the source's look: text is quoted only where CSV needs it, and numbers the source wrote
with a decimal point (1.0) keep it; every step is an Arrow compute kernel over whole columns. Unless
the run asks for raw values, text cells and headers a spreadsheet would run as formulas are neutralised
(metadata.spreadsheet); Parquet always keeps the raw values.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from fairsynth.backends.base import Generator, sample_tables
from fairsynth.metadata.spreadsheet import neutralised, neutralised_names

SUFFIXES = {"csv": ".csv", "parquet": ".parquet"}
CSV_CHUNK_ROWS = 8192  # rows Arrow formats per chunk (its default of 1,024 is a quarter slower)
NEEDS_QUOTES = r'[",\r\n]'  # a field holding a quote, the separator or a line break (RFC 4180)
STRUCTURAL_BYTES = (b'"', b",", b"\r", b"\n")


class BatchWriter:
    """Appends batches (Arrow tables or DataFrames) with one fixed Arrow schema (taken from the first batch).

    `decimal_point` names the numeric columns a CSV writes with a decimal point (the source's 1.0);
    `neutralise`: a CSV's formula-like text cells and headers are neutralised (Parquet is always raw).
    """

    def __init__(self, path: Path, fmt: str, decimal_point: Collection[str] = (), *, neutralise: bool = True) -> None:
        self.path, self.fmt, self.decimal_point = Path(path), fmt, frozenset(decimal_point)
        self.neutralise = neutralise
        self.rows = 0
        self._schema: pa.Schema | None = None
        self._writer = None

    def write(self, batch: pa.Table | pd.DataFrame) -> None:
        """Append one batch."""
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_pandas(batch, preserve_index=False)
        if self._schema is None:
            self._schema = _widen_nulls(table.schema)
            self._writer = self._open(self._schema, table)
        if not table.schema.equals(self._schema):
            table = table.cast(self._schema)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        """Flush and close the file (an empty run still gets a header)."""
        if self._writer is not None:
            self._writer.close()

    def _open(self, schema: pa.Schema, first: pa.Table):
        if self.fmt == "parquet":
            # Dictionary pages pay off for codes, flags and text; continuous floats rarely repeat and
            # would only fill a dictionary before falling back (a third of the write time), and a
            # column whose first batch is mostly distinct values (IDs) would get a dictionary holding
            # nearly every value: on SUPPORT2 an ID column took a sixth of the write time so. Min/max
            # statistics serve range filters on numbers and dates; on text they cost a sixth of the
            # write time and filter nothing a category reader asks for.
            distinct = _mostly_distinct(first)
            coded = [f.name for f in schema if not pa.types.is_floating(f.type) and f.name not in distinct]
            ranged = [f.name for f in schema if not _is_text(f.type)]
            # Category columns may come as Arrow dictionaries (level indices; the writer then skips
            # hashing every value); Parquet stores them as dictionary-encoded values either way. The
            # Arrow schema is not stored, so readers see the values' type, as for text from a
            # DataFrame; the pandas metadata is, so pandas gets the dtypes sample() gives.
            writer = pq.ParquetWriter(
                self.path,
                schema,
                compression="snappy",
                use_dictionary=coded,
                write_statistics=ranged,
                store_schema=False,
            )
            if schema.metadata and b"pandas" in schema.metadata:
                writer.add_key_value_metadata({"pandas": schema.metadata[b"pandas"].decode()})
            return writer
        return CsvWriter(self.path, schema, self.decimal_point, neutralise=self.neutralise)

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CsvWriter:
    """CSV in the source's look: quotes only where a field needs them, decimal points where the source had them.

    A batch with no field to quote goes through Arrow's own writer (quoting nothing); one with such a
    field is joined into lines by compute kernels, its quoted fields escaped. With `neutralise`, text
    cells and headers a spreadsheet would run as formulas get a leading single quote first.
    """

    def __init__(
        self, path: Path, schema: pa.Schema, decimal_point: Collection[str] = (), *, neutralise: bool = True
    ) -> None:
        self._file = pa.OSFile(str(path), "wb")
        self._file.write(_csv_header(neutralised_names(schema.names) if neutralise else schema.names))
        self._decimal_point, self._neutralise = decimal_point, neutralise
        self._options = pa_csv.WriteOptions(include_header=False, quoting_style="none", batch_size=CSV_CHUNK_ROWS)

    def write_table(self, table: pa.Table) -> None:
        """Append one batch's rows."""
        columns, quoted = [], False
        for field, column in zip(table.schema, table.columns, strict=True):
            if field.name in self._decimal_point and _is_number(field.type):
                column = _with_decimal_point(column)
            elif _is_text(field.type):
                column = neutralised(column) if self._neutralise else column
                if _needs_quotes(column):
                    column, quoted = _quoted(column), True
            columns.append(column)
        if quoted:
            for chunk in _csv_lines(columns).chunks:
                self._file.write(_string_bytes(chunk))
        else:
            pa_csv.write_csv(pa.table(columns, names=table.column_names), self._file, self._options)

    def close(self) -> None:
        """Flush and close the file."""
        self._file.close()


def write_sampled(
    generator: Generator,
    n_rows: int,
    *,
    seed: int,
    batch_rows: int,
    path: Path,
    fmt: str,
    decimal_point: Collection[str] = (),
    neutralise: bool = True,
) -> Iterator[pa.Table]:
    """A generator's sampling stream (backends.base.sample_tables) written to path, each batch passed on once
    written, so callers can watch or keep a sample. The writer takes each batch in a thread of its own as
    soon as it is decoded (Arrow's writers, numpy and torch release the GIL), at most a few batches ahead of
    the caller, so memory stays bounded."""
    with BatchWriter(path, fmt, decimal_point, neutralise=neutralise) as writer:
        yield from sample_tables(generator, n_rows, seed=seed, batch_rows=batch_rows, then=writer.write)


def _mostly_distinct(table: pa.Table) -> set[str]:
    """Columns (not Arrow dictionaries or floats) whose values in this batch are more than half distinct."""
    return {
        field.name
        for field, column in zip(table.schema, table.columns, strict=True)
        if not (pa.types.is_dictionary(field.type) or pa.types.is_floating(field.type))
        and pc.count_distinct(column).as_py() * 2 > table.num_rows
    }


def _is_text(kind: pa.DataType) -> bool:
    """Strings, or a dictionary of strings."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _is_number(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind)


def _csv_header(names: list[str]) -> bytes:
    line = io.StringIO()
    csv.writer(line, lineterminator="\n").writerow(names)  # quotes a name only where CSV needs it
    return line.getvalue().encode()


def _with_decimal_point(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Numbers as text, a whole number given '.0' (1 -> 1.0; 2.5, 1e+20, nan, inf and gaps as they are)."""
    text = pc.cast(column, pa.string())
    if pa.types.is_integer(column.type):
        return pc.binary_join_element_wise(text, ".0", "")
    # Arrow writes whole floats from 1e+10 on with an exponent: those keep their look
    whole = pc.and_(pc.is_finite(column), pc.equal(pc.floor(column), column))
    suffix = pc.if_else(pc.and_not(whole, pc.match_substring(text, "e")), ".0", "")
    return pc.binary_join_element_wise(text, suffix, "")


def _needs_quotes(column: pa.ChunkedArray) -> bool:
    """Whether some field holds a quote, comma or line break: a scan of the raw bytes (a category's levels only)."""
    for chunk in column.chunks:
        values = chunk.dictionary if pa.types.is_dictionary(chunk.type) else chunk
        data = values.buffers()[2]
        raw = data.to_pybytes() if data is not None else b""  # a copy, but searched at memchr speed
        if any(byte in raw for byte in STRUCTURAL_BYTES):
            return True
    return False


def _quoted(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """The column as text, fields that need it in quotes with their quotes doubled."""
    return pa.chunked_array([_quote_chunk(chunk) for chunk in column.chunks], pa.string())


def _quote_chunk(chunk: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(chunk.type):
        return _quote_chunk(chunk.dictionary).take(chunk.indices)
    values = chunk.cast(pa.string())
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(values, '"', '""'), '"', "")
    return pc.if_else(pc.match_substring_regex(values, NEEDS_QUOTES), quoted, values)


def _csv_lines(columns: list[pa.ChunkedArray]) -> pa.ChunkedArray:
    """One string per row: the fields joined by commas (a gap as an empty field), ending in a line break."""
    text = [pc.cast(column, pa.string()) for column in columns]
    rows = pc.binary_join_element_wise(*text, ",", null_handling="replace", null_replacement="")
    return pc.binary_join_element_wise(rows, "\n", "")


def _string_bytes(chunk: pa.Array) -> pa.Buffer:
    """The bytes of a string array's values, back to back (its data buffer, without copying)."""
    if len(chunk) == 0:
        return pa.py_buffer(b"")
    _, offsets, data = chunk.buffers()
    bounds = np.frombuffer(offsets, np.int32, len(chunk) + 1, chunk.offset * 4)
    return data.slice(int(bounds[0]), int(bounds[-1] - bounds[0]))


def _widen_nulls(schema: pa.Schema) -> pa.Schema:
    # A column that is empty in the first batch (withheld text, a rare gap) is typed null by
    # Arrow; later batches may hold strings, so give it a type that can carry them.
    return pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in schema], schema.metadata)
