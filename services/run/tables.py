"""Reading users' tables: CSV or Parquet in, a DataFrame out, or one clear sentence on what is wrong.

A CSV may come compressed (gzip, bz2, xz, or a zip holding one file); the compression is told by the
file's first bytes, since an upload may have lost its name.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import lzma
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, NamedTuple, TypeVar

import pandas as pd

from fairsynth.errors import FairsynthError
from fairsynth.metadata.schema import DECIMAL_POINT_COLUMNS

MIN_ROWS = 10
SEPARATORS = ",;\t|"
PARQUET_MAGIC = b"PAR1"
T = TypeVar("T")
PARQUET_SUFFIXES = (".parquet", ".pq")
READ_CHUNK = 1 << 20
LOOK_ROWS = 10_000  # rows whose text tells how numbers are written (1.0 or 1)
#: what a damaged or cut-short compressed file raises while it is unpacked
DAMAGED = (OSError, EOFError, lzma.LZMAError, zlib.error, zipfile.BadZipFile)
#: byte-order marks that name a file's encoding outright
BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
#: tried in order on a file without a byte-order mark; the last one reads any bytes
DETECTED_ENCODINGS = ("utf-8", "cp1252", "latin-1")
TEXT_ENCODING = "text_encoding"  # DataFrame.attrs key: the encoding a CSV was read with (given or detected)
STORED_CSV = "table.csv"
SEPARATOR_EXAMPLE = "';'"


class Options(NamedTuple):
    """How an error sentence tells the reader to set a reading option: a command-line flag or an API form field."""

    form: str  # filled with the option's name and an example value

    def example(self, name: str, value: str) -> str:
        """'--encoding latin-1' or 'the form field encoding=latin-1'."""
        return self.form.format(name=name, value=value)


FLAGS = Options("--{name} {value}")
FORM_FIELDS = Options("the form field {name}={value}")
PAGE_CONTROLS = Options("the {name} choice {value} above the upload box")  # the UI's Data page


class InputError(FairsynthError):
    """The input table cannot be used; each problem says what is wrong and what to do."""


def read_table(
    path: str | Path,
    *,
    encoding: str | None = "utf-8",
    separator: str | None = None,
    max_unpacked_bytes: int | None = None,
    label: str | None = None,
    options: Options = FLAGS,
) -> pd.DataFrame:
    """Read a CSV (plain or compressed) or Parquet file and check it can be learned from.

    `encoding` None: detected (a byte-order mark, else utf-8, cp1252 or latin-1). `max_unpacked_bytes` caps what a
    compressed file may unpack to (a guard against decompression bombs). Errors name the file `label` (default:
    its name) and tell how to set an option in `options`' words.
    """
    path = Path(path)
    try:
        return _read_checked(path, encoding, separator, max_unpacked_bytes, options)
    except InputError as exc:
        if label is None:
            raise
        raise InputError(*(problem.replace(path.name, label) for problem in exc.problems)) from exc


def reading_problems(encoding: str | None, separator: str | None, options: Options = FLAGS) -> list[str]:
    """What is wrong with the reading options themselves: an unknown encoding, a separator not one character."""
    problems = []
    if encoding is not None and not known_encoding(encoding):
        problems.append(
            f"'{encoding}' is not a text encoding fairsynth knows; give one such as "
            f"{options.example('encoding', 'latin-1')} (or utf-8, cp1252, utf-16)."
        )
    if separator is not None and len(separator) != 1:
        problems.append(
            f"The separator must be one character; got '{separator}' — give one such as "
            f"{options.example('separator', SEPARATOR_EXAMPLE)}."
        )
    return problems


def known_encoding(encoding: str) -> bool:
    """True when Python has a text codec of this name."""
    try:
        return codecs.lookup(encoding)._is_text_encoding
    except LookupError:
        return False


def _read_checked(
    path: Path, encoding: str | None, separator: str | None, max_unpacked_bytes: int | None, options: Options
) -> pd.DataFrame:
    problems = reading_problems(encoding, separator, options)
    if problems:
        raise InputError(*problems)
    if not path.is_file():
        raise InputError(f"{path} does not exist or is not a file; give the path of a CSV or Parquet table.")
    if path.stat().st_size == 0:
        raise InputError(f"{path.name} is empty; export the table again with its header and rows.")
    head = _head(path)
    if head.startswith(PARQUET_MAGIC) or path.suffix.lower() in PARQUET_SUFFIXES:
        data = _read_parquet(path)
    elif (source := _Source(path, compression_of(head), max_unpacked_bytes, options)).holds_parquet():
        data = source.unpacking(lambda: _read_parquet(path, source.unpacked()))
    else:
        encoding = encoding or source.unpacking(lambda: _detect_encoding(source))
        data = source.unpacking(lambda: _read_csv(source, encoding, separator))
        data.attrs[TEXT_ENCODING] = encoding
    check_table(data, path.name, options)
    return data


def as_plain_csv(path: Path, *, encoding: str, separator: str | None) -> Path:
    """Store a CSV read with these options as plain UTF-8 that read_table's defaults read the same (runs read it so).

    A UTF-8 file whose separator is the one detected stays as it is (compressed or not); any other is written
    again, field by field, as uncompressed UTF-8 with commas, under STORED_CSV next to it.
    """
    source = _Source(path, compression_of(_head(path)), None, FLAGS)
    header = _first_line(source, encoding)
    separator = separator or _sniff_separator(header)
    if encoding == "utf-8" and _sniff_separator(header) == separator:
        return path
    partial = path.with_name(STORED_CSV + ".partial")
    with (
        io.TextIOWrapper(source.open(), encoding=encoding, newline="") as text,
        open(partial, "w", encoding="utf-8", newline="") as out,
    ):
        csv.writer(out, lineterminator="\n").writerows(csv.reader(text, delimiter=separator))
    path.unlink()
    return partial.rename(path.with_name(STORED_CSV))


def stored_name(head: bytes) -> tuple[str, str]:
    """The format ("csv" or "parquet") and file name an upload starting with these bytes is stored under."""
    if head.startswith(PARQUET_MAGIC):
        return "parquet", "table.parquet"
    compression = compression_of(head)
    return "csv", "table.csv" + (COMPRESSIONS[compression].suffix if compression else "")


def compression_of(head: bytes) -> str | None:
    """The compression a file's first bytes announce, or None for a plain file."""
    return next((name for name, kind in COMPRESSIONS.items() if head.startswith(kind.magic)), None)


def check_table(data: pd.DataFrame, label: str = "The table", options: Options = FLAGS) -> None:
    """Refuse tables no backend can learn from, naming every reason at once."""
    problems = _column_problems(data, label, options) + _row_problems(data, label)
    if problems:
        raise InputError(*problems)


def _column_problems(data: pd.DataFrame, label: str, options: Options) -> list[str]:
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
            f"if the file uses another separator, give it, such as {options.example('separator', SEPARATOR_EXAMPLE)}."
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


def _read_parquet(path: Path, content: BinaryIO | None = None) -> pd.DataFrame:
    """A Parquet file, or its unpacked bytes (a compressed Parquet file)."""
    try:
        return pd.read_parquet(content if content is not None else path)
    except Exception as exc:  # pyarrow raises many types for corrupt files
        raise InputError(
            f"{path.name} is not a readable Parquet file ({type(exc).__name__}); export it again or save it as CSV."
        ) from exc


def _read_csv(source: _Source, encoding: str, separator: str | None) -> pd.DataFrame:
    path = source.path
    header = _first_line(source, encoding)
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
        with source.open() as handle:
            data = pd.read_csv(handle, sep=separator, encoding=encoding, low_memory=False)
    except UnicodeDecodeError as exc:
        raise _encoding_error(source, encoding, exc) from exc
    except pd.errors.ParserError as exc:
        raise InputError(
            f"{path.name} is not a well-formed table ({str(exc).splitlines()[-1]}); "
            "check its quoting and that every row has the same number of fields."
        ) from exc
    data.attrs[DECIMAL_POINT_COLUMNS] = _decimal_point_columns(source, data, separator, encoding)
    return data


def _decimal_point_columns(source: _Source, data: pd.DataFrame, separator: str, encoding: str) -> list[str]:
    """Float columns whose first rows write every value with a decimal point (1.0, not 1)."""
    floats = [name for name in data.columns if pd.api.types.is_float_dtype(data[name])]
    if not floats:
        return []
    with source.open() as handle:  # read as the table was, so the columns get the same names
        text = pd.read_csv(handle, sep=separator, encoding=encoding, dtype=str, nrows=LOOK_ROWS)
    # an exponent, nan or inf counts as written with a point: only a bare whole number says otherwise
    return [name for name in floats if text[name].dropna().str.contains(r"[.eEnN]").all()]


def _first_line(source: _Source, encoding: str) -> str:
    try:
        with io.TextIOWrapper(source.open(), encoding=encoding, newline="") as handle:
            line = handle.readline()
            handle.read(1 << 16)  # decode a first block too, so bad bytes are caught early
            return line
    except UnicodeDecodeError as exc:
        raise _encoding_error(source, encoding, exc) from exc


def _encoding_error(source: _Source, encoding: str, exc: UnicodeDecodeError) -> InputError:
    return InputError(
        f"{source.path.name} is not valid {encoding} text (byte {exc.object[exc.start]:#04x} at "
        f"position {exc.start}); re-save it as UTF-8 or give its encoding, such as "
        f"{source.options.example('encoding', 'latin-1')}."
    )


def _detect_encoding(source: _Source) -> str:
    """The encoding a byte-order mark names, else the first of DETECTED_ENCODINGS that decodes the whole file."""
    with source.open() as handle:
        head = handle.read(len(codecs.BOM_UTF8))
    named = next((name for bom, name in BOMS if head.startswith(bom)), None)
    return named or next(
        name for name in DETECTED_ENCODINGS if name == DETECTED_ENCODINGS[-1] or _decodes(source, name)
    )


def _decodes(source: _Source, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    with source.open() as handle:
        try:
            while chunk := handle.read(READ_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def _sniff_separator(header: str) -> str:
    counts = {sep: header.count(sep) for sep in SEPARATORS}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else ","


def _head(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(8)


class _Compression(NamedTuple):
    """One compression: the bytes its files start with, the suffix it is stored under, how to unpack it."""

    magic: bytes
    suffix: str
    unpack: Callable[[Path], BinaryIO]


def _only_member(path: Path) -> BinaryIO:
    archive = zipfile.ZipFile(path)
    members = [m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
    if len(members) != 1:
        archive.close()
        listed = ", ".join(m.filename for m in members[:5]) + (", ..." if len(members) > 5 else "")
        held = f"{len(members)} files ({listed})" if members else "no file"
        raise InputError(
            f"{path.name} is a zip archive holding {held}; zip the one table alone, or unzip it and give the CSV."
        )
    if members[0].flag_bits & 0x1:  # the zip format's "encrypted" flag
        archive.close()
        raise InputError(
            f"{path.name} is protected by a password; unzip it yourself and give the CSV, "
            "or zip it again without a password."
        )
    return archive.open(members[0])


COMPRESSIONS = {
    "gzip": _Compression(b"\x1f\x8b", ".gz", gzip.open),
    "bz2": _Compression(b"BZh", ".bz2", bz2.open),
    "xz": _Compression(b"\xfd7zXZ\x00", ".xz", lzma.open),
    "zip": _Compression(b"PK\x03\x04", ".zip", _only_member),
}


class _Source:
    """A CSV file as a byte stream, unpacked as it is read when compressed, never beyond the cap."""

    def __init__(self, path: Path, compression: str | None, max_unpacked_bytes: int | None, options: Options) -> None:
        self.path, self.compression, self.max_unpacked_bytes = path, compression, max_unpacked_bytes
        self.options = options

    def open(self) -> BinaryIO:
        """A fresh stream of the file's (unpacked) bytes."""
        if self.compression is None:
            return open(self.path, "rb")
        raw = _Capped(COMPRESSIONS[self.compression].unpack(self.path), self)
        return io.BufferedReader(raw, READ_CHUNK)

    def holds_parquet(self) -> bool:
        """True when a compressed file unpacks to a Parquet file (x.parquet.gz)."""
        if self.compression is None:
            return False
        with self.open() as stream:
            return self.unpacking(lambda: stream.read(len(PARQUET_MAGIC))) == PARQUET_MAGIC

    def unpacked(self) -> BinaryIO:
        """The whole unpacked file in memory (Parquet needs to seek), never beyond the cap."""
        with self.open() as stream:
            return io.BytesIO(stream.read())

    def unpacking(self, read: Callable[[], T]) -> T:
        """Run `read`, turning a damaged compressed file's errors into one sentence."""
        if self.compression is None:
            return read()
        try:
            return read()
        except DAMAGED as exc:
            raise InputError(
                f"{self.path.name} is a {self.compression} file that is damaged or cut short ({exc}); "
                "compress the table again, or give the CSV uncompressed."
            ) from exc

    def too_large(self) -> InputError:
        """The one sentence for a compressed file that unpacks past the cap."""
        return InputError(
            f"{self.path.name} unpacks to more than {self.max_unpacked_bytes // (1024 * 1024)} MiB, "
            "the most a compressed upload may hold; send a smaller table or raise FAIRSYNTH_MAX_UPLOAD_MB."
        )


class _Capped(io.RawIOBase):
    """Passes an unpacking stream through, refusing to go past the source's cap."""

    def __init__(self, raw: BinaryIO, source: _Source) -> None:
        self.raw, self.source, self.unpacked = raw, source, 0

    def readable(self) -> bool:
        """An input stream."""
        return True

    def readinto(self, buffer) -> int:
        """Fill buffer from the unpacking stream."""
        count = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        self.unpacked += count
        cap = self.source.max_unpacked_bytes
        if cap is not None and self.unpacked > cap:
            raise self.source.too_large()
        return count

    def close(self) -> None:
        """Close the unpacking stream too."""
        self.raw.close()
        super().close()
