"""Streaming writers: synthetic batches go to CSV or Parquet as they come, never all in memory.

Batches are Arrow tables (what backends.base.sample_tables yields); DataFrames are converted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from fairsynth.backends.background import run_ahead
from fairsynth.backends.base import STAGE_DEPTH

SUFFIXES = {"csv": ".csv", "parquet": ".parquet"}
CSV_CHUNK_ROWS = 8192  # rows Arrow formats per chunk (its default of 1,024 is a quarter slower)


class BatchWriter:
    """Appends batches (Arrow tables or DataFrames) with one fixed Arrow schema (taken from the first batch)."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path, self.fmt = Path(path), fmt
        self.rows = 0
        self._schema: pa.Schema | None = None
        self._writer = None

    def write(self, batch: pa.Table | pd.DataFrame) -> None:
        """Append one batch."""
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_pandas(batch, preserve_index=False)
        if self._schema is None:
            self._schema = _widen_nulls(table.schema)
            self._writer = self._open(self._schema)
        if not table.schema.equals(self._schema):
            table = table.cast(self._schema)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        """Flush and close the file (an empty run still gets a header)."""
        if self._writer is not None:
            self._writer.close()

    def _open(self, schema: pa.Schema):
        if self.fmt == "parquet":
            # Dictionary pages pay off for codes, flags and text; continuous floats rarely repeat and
            # would only fill a dictionary before falling back (a third of the write time). Min/max
            # statistics serve range filters on numbers and dates; on text they cost a sixth of the
            # write time and filter nothing a category reader asks for.
            coded = [f.name for f in schema if not pa.types.is_floating(f.type)]
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
        options = pa_csv.WriteOptions(quoting_style="needed", batch_size=CSV_CHUNK_ROWS)
        return pa_csv.CSVWriter(self.path, schema, write_options=options)

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_batches(
    batches: Iterable[pa.Table | pd.DataFrame], path: Path, fmt: str
) -> Iterator[pa.Table | pd.DataFrame]:
    """Write every batch to path and pass it on once written, so callers can watch or keep a sample.

    Batches are written in a background thread while the next ones are drawn (Arrow's writers and
    torch release the GIL), at most STAGE_DEPTH batches ahead, so memory stays bounded.
    """

    def write(batch):
        writer.write(batch)
        return batch

    with BatchWriter(path, fmt) as writer:
        yield from run_ahead(batches, write, depth=STAGE_DEPTH, name="batch-writer")


def _is_text(kind: pa.DataType) -> bool:
    """Strings, or a dictionary of strings."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _widen_nulls(schema: pa.Schema) -> pa.Schema:
    # A column that is empty in the first batch (withheld text, a rare gap) is typed null by
    # Arrow; later batches may hold strings, so give it a type that can carry them.
    return pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in schema], schema.metadata)
