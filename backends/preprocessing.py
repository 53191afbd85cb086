"""The shared table codec: turns a real table into a model-ready one and synthetic output back.

Encoded form, which every backend may learn:
- integer, float, date and datetime columns become float columns (dates as days since 1970-01-01);
  missing values are filled by draws from the observed values (no spike at a fill value) and a
  `<column>__missing` categorical indicator ("0"/"1") records where they were;
- boolean and categorical columns become string tokens; missing is its own token, and levels too
  rare to model on their own share one "rare" token, which decodes to those levels (each seen in at
  least the schema's `min_level_rows` rows) and to one value that is no real level (RARE_LEVEL,
  "other") in place of every level seen in fewer rows;
- identifiers, subject keys, PII and free text are removed before fitting and never learned:
  identifiers come back as fresh unique values in the source's shape, subject keys (a key repeated
  over a subject's rows) as synthetic keys in the source's shape, none of them a real key, each
  shared by consecutive rows as often as the source's rows per key, PII as fabricated values of the
  same pattern, free text withheld (empty).

Decoding restores the source's columns, order, value types and date formats, clips numbers to the
training range and applies the missing indicators, so every backend returns valid tables. It works
on arrays (EncodedBatch: floats, and level codes into each column's tokens) and builds an Arrow
table, the form the file writers take, without a Python object per value; decode() and to_pandas()
give the same batch as a DataFrame. The
missing share is calibrated to the training share with the fewest random flips of the model's own
mask (several libraries lose rare indicator levels); which rows are missing still comes from the model.

Privacy of what the codec keeps: per-column ranges, decimals and category levels seen at least
`min_level_rows` times, and quantiles of the rows per subject key (never a key). Levels rarer than that are
never stored or reproduced. The enforced cross-column rules (backends/rule_codec.py) add which rules hold and
what each kept level of a determinant fixes. These statistics are not
covered by any differential-privacy budget; DP backends say so in their FitResult.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, Field

from fairsynth.backends.rule_codec import RuleCodec
from fairsynth.metadata.schema import (
    NUMERIC_KINDS,
    TEMPORAL_KINDS,
    TEXT_DTYPES,
    ColumnKind,
    ColumnSpec,
    SchemaError,
    TableSchema,
    datetimes_to_days,
    detect_datetime_format,
    key_shapes,
    level_threshold,
    nhs_check_digit,
    parse_datetimes,
    rare_level_value,
)

MISSING_TOKEN = "__missing__"
RARE_TOKEN = "__rare__"
INDICATOR_SUFFIX = "__missing"
DAY_NS = 86_400 * 10**9
FORMAT_SAMPLE_ROWS = 20_000  # rows a forced date column's format is detected on
FORCED_DATETIME_SHARE = 0.5  # share of those a format must read; the rest become missing values
ROWS_PER_KEY_QUANTILES = 21  # quantiles of the rows per subject key a codec keeps (every 5%)
SUBJECT_KEY_TEMPLATE = ("SUBJ-", 4)  # prefix and digits of synthetic keys for a key column without digits
MAX_LEVELS = 500  # most levels of a category column modelled on their own; the rest share the rare token


class NumericCodec(BaseModel):
    """Integer, float, date and datetime columns: a float in the encoded table."""

    type: Literal["numeric"] = "numeric"
    name: str
    kind: ColumnKind
    minimum: float
    maximum: float
    decimals: int = 6
    indicator: str | None = None
    missing_share: float = 0.0
    datetime_format: str | None = None
    time_resolution_days: float = 1.0  # dates round to days, datetimes to the format's finest unit
    source_dtype: str = "float64"

    def encode(self, raw: pd.Series, rng: np.random.Generator) -> dict[str, pd.Series]:
        """Float column (+ indicator), missing filled by draws from the observed values."""
        values = self.to_numbers(raw)
        missing = values.isna().to_numpy()
        filled = values.to_numpy(copy=True)
        observed = filled[~missing]
        if missing.any():
            pool = observed if observed.size else np.array([0.0])
            filled[missing] = rng.choice(pool, size=int(missing.sum()))
        out = {self.name: pd.Series(filled, index=raw.index)}
        if self.indicator:
            out[self.indicator] = pd.Series(np.where(missing, "1", "0"), index=raw.index)
        return out

    def to_numbers(self, raw: pd.Series) -> pd.Series:
        """Parse the raw column to floats (days for dates); unparseable values become NaN."""
        if self.kind not in TEMPORAL_KINDS:
            return pd.to_numeric(raw, errors="coerce").astype(float)
        return datetimes_to_days(parse_datetimes(raw, self.datetime_format))

    def decode_values(self, batch: EncodedBatch, rng: np.random.Generator) -> Decoded:
        """Final values (clipped, rounded: dates to days or their time unit) and the calibrated missing mask."""
        values = clipped(batch.numbers[self.name].copy(), self.minimum, self.maximum)  # changed in place below
        gaps = np.isnan(values)
        missing = gaps | batch.token_mask(self.indicator, "1") if self.indicator else gaps
        missing = calibrate_missing(missing, self.missing_share, rng)
        if gaps.any():  # a gap the calibration kept gets a value; one it masks keeps no NaN behind the mask
            values[gaps] = (self.minimum + self.maximum) / 2
        return Decoded(self.on_grid(values), missing)

    def on_grid(self, values: np.ndarray) -> np.ndarray:
        """Values rounded to what the column writes: its decimals, or days / the datetime format's finest unit;
        never past the training range (a maximum with more decimals than kept, 0.969970703, stays the maximum)."""
        if self.kind in TEMPORAL_KINDS:
            step = self.time_resolution_days
            return np.round(values / step) * step
        return clipped(np.round(values, self.decimals_kept), self.minimum, self.maximum)

    @property
    def step(self) -> float:
        """The distance between two neighbouring values the column writes."""
        return self.time_resolution_days if self.kind in TEMPORAL_KINDS else 10.0**-self.decimals_kept

    def up_to_grid(self, values: np.ndarray) -> np.ndarray:
        """The smallest value on the column's grid at or above each value (a rule's lower bound kept), rounded as
        the column writes it (1e-6 * 900000 is 0.9000000000000001, above a maximum of 0.9)."""
        raised = np.ceil(np.round(values / self.step, 6)) * self.step
        if self.kind in TEMPORAL_KINDS:
            return self.on_grid(raised)
        # on_grid clips to the maximum; a bound above it (the other column's range) is kept as it is
        return np.where(values > self.maximum, values, self.on_grid(raised))

    def to_arrow(self, decoded: Decoded) -> pa.Array:
        """The source's type and format for final values."""
        values, missing = decoded.values, decoded.missing
        if self.kind in TEMPORAL_KINDS:
            return self._decode_temporal(values, missing)
        if self.kind == ColumnKind.INTEGER:
            integers = masked_array(np.round(values).astype(np.int64), missing)
            # whole numbers the source wrote as text ("101" site codes) come back as text: as ints they matched no
            # real value in a Parquet or DataFrame reader (mostlyai-qa scored the lab table's SITEID 0)
            return pc.cast(integers, pa.string()) if self.source_dtype in TEXT_DTYPES else integers
        return masked_array(values, missing)

    @property
    def decimals_kept(self) -> int:
        """Decimals a decoded value keeps: none for integers."""
        return 0 if self.kind == ColumnKind.INTEGER else self.decimals

    def to_pandas(self, column: pa.Array | pa.ChunkedArray) -> pd.Series:
        """The decoded column as pandas: Int64 where a batch has gaps (or the source had that dtype)."""
        if self.kind == ColumnKind.INTEGER and (column.null_count or "Int" in self.source_dtype):
            return pd.Series(column.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get))
        return pd.Series(column.to_pandas())

    def _decode_temporal(self, days: np.ndarray, missing: np.ndarray) -> pa.Array:
        nanoseconds = np.round(np.nan_to_num(days) * DAY_NS).astype("int64")
        if self.datetime_format is None:
            return masked_array(nanoseconds, missing, pa.timestamp("ns"))
        return format_datetimes(nanoseconds, missing, self.datetime_format)


class CategoricalCodec(BaseModel):
    """Boolean and categorical columns: string tokens, with missing and rare levels as tokens."""

    type: Literal["categorical"] = "categorical"
    name: str
    kind: ColumnKind
    levels: dict[str, str | int | float | bool]  # token -> original value (the levels modelled on their own)
    # what the rare token decodes to, with row counts: levels seen too seldom to model but at least
    # min_level_rows times, and rare_level_value standing for every level seen fewer times
    rare_pool: list[tuple[str | int | float | bool, int]] = Field(default_factory=list)
    frequencies: dict[str, int] = Field(default_factory=dict)  # token -> count, for rare fallback
    missing_share: float = 0.0
    source_dtype: str = "object"

    def encode(self, raw: pd.Series, rng: np.random.Generator) -> dict[str, pd.Series]:
        """Tokens: the level's text, MISSING_TOKEN or RARE_TOKEN."""
        tokens = raw.map(_token).astype(object)
        tokens[raw.isna()] = MISSING_TOKEN
        known = tokens.isin(set(self.levels) | {MISSING_TOKEN})
        tokens[~known] = RARE_TOKEN
        return {self.name: tokens.astype(str)}

    def decode_values(self, batch: EncodedBatch, rng: np.random.Generator) -> Decoded:
        """Level indices into dictionary_values() and the calibrated missing mask; rare tokens become rare-pool
        values (or common levels when there is no pool), and a missing row holds a drawn level behind its mask
        (a rule that fills it has a value)."""
        codes, tokens = batch.codes[self.name], batch.tokens[self.name]
        place = {token: i for i, token in enumerate(self.levels)}
        level_of_token = np.array([place.get(t, -1) for t in tokens] + [-1], dtype=np.int32)
        missing = calibrate_missing(batch.token_mask(self.name, MISSING_TOKEN), self.missing_share, rng)
        index = level_of_token[codes]
        values, rare_positions, rare_weights = self._dictionary()
        unknown = index < 0  # rare tokens, unseen tokens and missing rows
        if unknown.any():
            drawn = rng.choice(len(rare_positions), size=int(unknown.sum()), p=rare_weights / rare_weights.sum())
            index[unknown] = rare_positions[drawn]
        return Decoded(index, missing)

    def dictionary_values(self) -> list:
        """Every value a decoded row can hold, in the order decode_values' indices count them."""
        return self._dictionary()[0]

    def to_arrow(self, decoded: Decoded) -> pa.Array:
        """Original values as a dictionary array (indices into the column's values, no copy of a value per row)."""
        index = np.where(decoded.missing, 0, decoded.values).astype(np.int32)
        return pa.DictionaryArray.from_arrays(
            masked_array(index, decoded.missing), _values_array(self.dictionary_values())
        )

    def to_pandas(self, column: pa.Array | pa.ChunkedArray) -> pd.Series:
        """The decoded column as pandas: plain bool where a boolean source has no gap, else inferred objects."""
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        series = pd.Series(column.to_pandas())
        if self.source_dtype == "bool" and not column.null_count and pa.types.is_boolean(column.type):
            return series.astype(bool)
        return series

    def _dictionary(self) -> tuple[list, np.ndarray, np.ndarray]:
        """Every value a decoded row can hold (the kept levels, then the rare pool), the same for every
        batch so a file writer keeps one dictionary; and where rare tokens draw from, with weights."""
        values = list(self.levels.values())
        if self.rare_pool:
            positions = np.arange(len(values), len(values) + len(self.rare_pool), dtype=np.int32)
            return values + [v for v, _ in self.rare_pool], positions, np.array([c for _, c in self.rare_pool], float)
        counted = [(i, self.frequencies[t]) for i, t in enumerate(self.levels) if t in self.frequencies]
        return values, np.array([i for i, _ in counted], dtype=np.int32), np.array([c for _, c in counted], float)


class IdentifierCodec(BaseModel):
    """Identifiers: never learned, regenerated as unique values in the source's shape, none of them a real one.

    Synthetic numbers start at `first_free`, the real maximum's leading digit rounded up (LB-000066 of at most
    LB-000500 -> from LB-000600): above every real identifier, and itself not a real value.
    """

    type: Literal["identifier"] = "identifier"
    name: str
    numeric: bool
    template: str = ""  # for text ids: the shape, '#' for each digit slot
    sequential_start: int | None = None  # numeric ids that were 1..n-like stay sequential (from first_free)
    digits: int = 6
    first_free: int = 0
    missing_share: float = 0.0

    def decode(
        self, n_rows: int, start_row: int, rng: np.random.Generator, salt: int, total_rows: int = 0
    ) -> pd.Series:
        """Unique values for rows start_row .. start_row + n_rows - 1 of a sampling run of total_rows rows.

        The source's digit count is kept when the numbers above every real one can hold every row of the run,
        and widened when not, so asking for more rows than the source's ID space never fails or repeats an ID.
        """
        rows = np.arange(start_row, start_row + n_rows, dtype=np.int64)
        if self.sequential_start is not None:
            return pd.Series(max(self.first_free, self.sequential_start) + rows)
        needed = max(total_rows, start_row + n_rows)
        digits = self.digits
        low = max(10 ** (digits - 1) if self.numeric else 0, self.first_free)
        while 10**digits - low < needed:
            digits += 1
            low = max(10 ** (digits - 1) if self.numeric else 0, self.first_free)
        counters = low + unique_counters(rows, 10**digits - low, salt)
        if self.numeric:
            return pd.Series(counters).astype("int64")
        first_slot = self.template.index("#")
        template = self.template[:first_slot] + "#" * (digits - self.digits) + self.template[first_slot:]
        return pd.Series(_fill_template(template, counters))


class SubjectKeyCodec(BaseModel):
    """Subject keys (a key repeated over a subject's rows): never learned; synthetic keys in the source's shape,
    numbered from a power of ten above every real key of that shape (so none is real), each shared by a run of
    consecutive rows drawn from the source's rows per key (kept as quantiles, no key kept)."""

    type: Literal["subject_key"] = "subject_key"
    name: str
    numeric: bool
    prefix: str = ""  # text keys: the text before and after the number (STUDY1- and '' of STUDY1-0001)
    suffix: str = ""
    digits: int = 1  # text keys: the number's width, zero padded
    first_number: int = 0
    rows_per_key: list[float] = Field(min_length=2)  # quantiles, from the fewest rows a key has to the most
    missing_share: float = 0.0

    def decode(
        self, n_rows: int, start_row: int, rng: np.random.Generator, salt: int, total_rows: int = 0
    ) -> pd.Series:
        """Keys for rows start_row .. start_row + n_rows - 1 of a sampling run of total_rows rows.

        Every run of one key has at least `fewest` rows, so a batch holds at most n_rows // fewest keys and
        numbering them from start_row // fewest keeps batches apart (no key continues into another batch);
        a batch shorter than `fewest` rows is one key, so only the last batch of a run may be that short.
        """
        fewest = self._fewest_rows()
        runs = self._run_lengths(n_rows, fewest, rng)
        numbers = self.first_number + start_row // fewest + np.repeat(np.arange(len(runs), dtype=np.int64), runs)
        if self.numeric:
            return pd.Series(numbers, dtype="int64")
        largest = self.first_number + max(total_rows, start_row + n_rows) // fewest
        width = max(self.digits, len(str(largest)))
        text = np.char.add(np.char.add(self.prefix, np.char.zfill(numbers.astype(str), width)), self.suffix)
        return pd.Series(text.astype(object))

    def _fewest_rows(self) -> int:
        return max(1, int(self.rows_per_key[0]))

    def _run_lengths(self, n_rows: int, fewest: int, rng: np.random.Generator) -> np.ndarray:
        """Rows per key for n_rows consecutive rows, drawn from the quantiles; a short last run joins the one before."""
        if n_rows == 0:
            return np.zeros(0, dtype=np.int64)
        levels = np.linspace(0, 1, len(self.rows_per_key))
        draws = max(1, math.ceil(n_rows / fewest))
        runs = np.maximum(fewest, np.round(np.interp(rng.random(draws), levels, self.rows_per_key))).astype(np.int64)
        runs = runs[: int(np.searchsorted(np.cumsum(runs), n_rows)) + 1]
        runs[-1] -= int(runs.sum()) - n_rows
        if runs[-1] < fewest and len(runs) > 1:
            runs[-2] += runs[-1]
            runs = runs[:-1]
        return runs


class NameShape(BaseModel):
    """What a column of person names looks like, without any of its names: the letter case, the tokens
    per name, and the pool of fabricated names rows draw from (as many as the source's distinct names)."""

    case: Literal["lower", "upper", "title"] = "title"
    tokens: int = Field(2, ge=1)
    pool_size: int = Field(1, ge=1)
    pool_seed: int = 0  # the first seed whose pool holds no name of the source

    @property
    def vocabulary(self) -> int:
        """Distinct words per token position: about four times the pool's tokens, so first and last names
        recur across names as real ones do, and at least enough for pool_size distinct names."""
        words = max(2, math.ceil((4 * self.pool_size) ** (1 / self.tokens)))
        while words ** (self.tokens) < self.pool_size:
            words += 1
        return min(words, NAME_WORDS)


class PiiCodec(BaseModel):
    """PII: never learned, replaced by fabricated values of the same pattern (names in the source's shape)."""

    type: Literal["pii"] = "pii"
    name: str
    pii_type: str
    separator: str = ""
    numeric: bool = False
    missing_share: float = 0.0
    names: NameShape | None = None

    def decode(
        self, n_rows: int, start_row: int, rng: np.random.Generator, salt: int, total_rows: int = 0
    ) -> pd.Series:
        """Fabricated values: reserved e-mail domain, drama phone numbers, NHS test-range numbers, names
        drawn from a pool of invented ones."""
        if self.names is not None:
            return pd.Series(fabricate_names(self.names, rng.integers(0, self.names.pool_size, n_rows)), dtype=object)
        values = fabricate_pii(self.pii_type, n_rows, start_row, rng, salt, self.separator)
        if self.numeric:
            return pd.Series(values).astype("int64")
        return pd.Series(values, dtype=object)


class WithheldCodec(BaseModel):
    """Free text and empty columns: present in the output, every value missing."""

    type: Literal["withheld"] = "withheld"
    name: str

    def decode(
        self, n_rows: int, start_row: int, rng: np.random.Generator, salt: int, total_rows: int = 0
    ) -> pd.Series:
        """All-missing column."""
        return pd.Series([None] * n_rows, dtype=object)


ColumnCodec = Annotated[
    NumericCodec | CategoricalCodec | IdentifierCodec | SubjectKeyCodec | PiiCodec | WithheldCodec,
    Field(discriminator="type"),
]
LEARNED_CODECS = (NumericCodec, CategoricalCodec)


@dataclass
class Decoded:
    """One learned column of a decoded batch before it takes the source's type: final values (numbers, days, or
    level indices) and where they are missing. Rules adjust these arrays across columns (backends/rule_codec.py)."""

    values: np.ndarray
    missing: np.ndarray


@dataclass
class EncodedBatch:
    """A batch of the encoded form as arrays: floats per numeric column, and per categorical column
    integer codes into that column's list of tokens (no Python string per value)."""

    rows: int
    numbers: dict[str, np.ndarray] = field(default_factory=dict)
    codes: dict[str, np.ndarray] = field(default_factory=dict)
    tokens: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, kinds: dict[str, str]) -> EncodedBatch:
        """The arrays of an encoded DataFrame (a backend's tokens as text, factorised once per column)."""
        batch = cls(rows=len(frame))
        for name, kind in kinds.items():
            if kind == "numeric":
                batch.numbers[name] = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float, copy=True)
            else:
                codes, tokens = pd.factorize(frame[name].astype(str).to_numpy())
                batch.codes[name], batch.tokens[name] = codes, [str(t) for t in tokens]
        return batch

    def token_mask(self, name: str, token: str) -> np.ndarray:
        """Rows of a categorical column that hold the given token."""
        tokens = self.tokens[name]
        return self.codes[name] == tokens.index(token) if token in tokens else np.zeros(self.rows, dtype=bool)

    def to_frame(self, kinds: dict[str, str]) -> pd.DataFrame:
        """The encoded DataFrame (tokens as text), for backends and tests that read that form."""
        return pd.DataFrame(
            {
                name: self.numbers[name]
                if kind == "numeric"
                else np.asarray(self.tokens[name] + [""], dtype=object)[self.codes[name]]
                for name, kind in kinds.items()
            },
            index=pd.RangeIndex(self.rows),
        )


class TableCodec(BaseModel):
    """The codec for one table: one column codec per output column, in output order."""

    columns: list[ColumnCodec]
    options: dict = Field(default_factory=dict)
    fit_seed: int = 0
    rules: RuleCodec = Field(default_factory=RuleCodec)

    # -- building ----------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        data: pd.DataFrame,
        schema: TableSchema,
        *,
        rare_share: float = 0.001,
        max_levels: int = MAX_LEVELS,
        seed: int = 0,
    ) -> TableCodec:
        """Learn the codec's statistics from the training table; levels under the schema's min_level_rows are
        never kept."""
        options = {"rare_share": rare_share, "min_level_rows": schema.min_level_rows, "max_levels": max_levels}
        codecs = [_fit_column(data[spec.name], spec, len(data), options) for spec in schema.output_columns()]
        rules = RuleCodec.fit(data, schema, {codec.name: codec for codec in codecs})
        return cls(columns=codecs, options=options, fit_seed=seed, rules=rules)

    # -- the encoded table ------------------------------------------------------------------------
    def model_columns(self) -> dict[str, str]:
        """Encoded column name -> 'numeric' or 'categorical', in encoded order."""
        kinds: dict[str, str] = {}
        for codec in self.columns:
            if isinstance(codec, NumericCodec):
                kinds[codec.name] = "numeric"
                if codec.indicator:
                    kinds[codec.indicator] = "categorical"
            elif isinstance(codec, CategoricalCodec):
                kinds[codec.name] = "categorical"
        return {
            name: kind for name, kind in kinds.items() if name not in self.rules.hidden
        } | self.rules.model_columns()

    def output_columns(self) -> list[str]:
        """Column names of decoded tables, in the source's order."""
        return [c.name for c in self.columns]

    def encode(self, data: pd.DataFrame) -> pd.DataFrame:
        """The model-ready table: numeric floats and string tokens, no identifiers, PII or text."""
        rng = np.random.default_rng(self.fit_seed)
        parts: dict[str, pd.Series] = {}
        for codec in self.columns:
            if isinstance(codec, LEARNED_CODECS):
                parts.update(codec.encode(data[codec.name], rng))
        return self.rules.encode(data, pd.DataFrame(parts, index=data.index), {c.name: c for c in self.columns}, rng)

    def decode(self, encoded: pd.DataFrame, *, start_row: int = 0, seed: int = 0, total_rows: int = 0) -> pd.DataFrame:
        """A synthetic batch in the source's shape; start_row and total_rows keep identifiers unique across batches."""
        batch = EncodedBatch.from_frame(encoded.reset_index(drop=True), self.model_columns())
        return self.to_pandas(self.decode_arrow(batch, start_row=start_row, seed=seed, total_rows=total_rows))

    def decode_arrow(self, batch: EncodedBatch, *, start_row: int = 0, seed: int = 0, total_rows: int = 0) -> pa.Table:
        """decode() as an Arrow table, straight from the encoded arrays (what the file writers take)."""
        rng = np.random.default_rng(seed)
        codecs = {codec.name: codec for codec in self.columns}
        self.rules.restore_encoded(batch, codecs)
        decoded = {c.name: c.decode_values(batch, rng) for c in self.columns if isinstance(c, LEARNED_CODECS)}
        printed = self.rules.after_decode(decoded, codecs, batch)
        columns: dict[str, pa.Array] = {}
        for position, codec in enumerate(self.columns):
            if codec.name in printed:
                columns[codec.name] = printed[codec.name]
            elif isinstance(codec, LEARNED_CODECS):
                columns[codec.name] = codec.to_arrow(decoded[codec.name])
            else:
                series = codec.decode(
                    batch.rows, start_row, rng, salt=self.fit_seed * 7919 + position, total_rows=total_rows
                )
                series = _apply_missing(series, getattr(codec, "missing_share", 0.0), rng)
                columns[codec.name] = pa.array(series, from_pandas=True)
        # a column the training data had no gap in is never null: declared required, Parquet then
        # writes no definition levels for it (7% of the write time on SUPPORT2)
        ruled = {name for rule in self.rules.rules for name in rule.columns}  # a rule may leave gaps in any of them
        fields = [
            pa.field(name, array.type, nullable=getattr(codec, "missing_share", 1.0) > 0 or name in ruled)
            for (name, array), codec in zip(columns.items(), self.columns)
        ]
        return pa.Table.from_arrays(list(columns.values()), schema=pa.schema(fields))

    def to_pandas(self, table: pa.Table) -> pd.DataFrame:
        """A decoded Arrow table as the DataFrame decode() returns (same dtypes column by column)."""
        return pd.DataFrame({codec.name: _column_to_pandas(codec, table.column(codec.name)) for codec in self.columns})

    # -- persistence ------------------------------------------------------------------------------
    def to_json(self) -> str:
        """JSON text (no pickle) that from_json reads back."""
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> TableCodec:
        """Parse to_json's output; raises ValueError on anything else."""
        return cls.model_validate_json(text)


# -- fitting one column ---------------------------------------------------------------------------
def _fit_column(raw: pd.Series, spec: ColumnSpec, n_rows: int, options: dict) -> ColumnCodec:
    if spec.kind == ColumnKind.IDENTIFIER:
        return _fit_identifier(raw, spec)
    if spec.kind == ColumnKind.SUBJECT_KEY:
        return _fit_subject_key(raw, spec)
    if spec.kind == ColumnKind.PII:
        return _fit_pii(raw, spec)
    if spec.kind == ColumnKind.TEXT or raw.notna().sum() == 0:
        return WithheldCodec(name=spec.name)
    if spec.kind in NUMERIC_KINDS or spec.kind in TEMPORAL_KINDS:
        return _fit_numeric(raw, spec)
    return _fit_categorical(raw, spec, n_rows, options)


def _fit_numeric(raw: pd.Series, spec: ColumnSpec) -> NumericCodec:
    datetime_format = spec.datetime_format
    if spec.kind in TEMPORAL_KINDS and datetime_format is None and not pd.api.types.is_datetime64_any_dtype(raw):
        datetime_format = _forced_datetime_format(raw)
    probe = NumericCodec(
        name=spec.name,
        kind=spec.kind,
        minimum=0,
        maximum=0,
        datetime_format=datetime_format,
        source_dtype=str(raw.dtype),
    )
    values = probe.to_numbers(raw)
    observed = values.dropna()
    if observed.empty:
        raise SchemaError(
            f"Column '{spec.name}' has no value that reads as {spec.kind}; set its kind to categorical or drop it."
        )
    indicator = f"{spec.name}{INDICATOR_SUFFIX}" if values.isna().any() else None
    decimals = spec.decimals if spec.decimals is not None else (0 if spec.kind == ColumnKind.INTEGER else 6)
    return probe.model_copy(
        update={
            "minimum": float(observed.min()),
            "maximum": float(observed.max()),
            "decimals": decimals,
            "indicator": indicator,
            "time_resolution_days": _time_resolution(spec.kind, datetime_format),
            "missing_share": float(values.isna().mean()),
        }
    )


def _forced_datetime_format(raw: pd.Series) -> str | None:
    """The format of a text column the user declared temporal (inference found none): the first known
    format that reads most of a seeded sample, so synthetic values are written as the source writes them."""
    text = raw.dropna().astype(str).str.strip()
    sample = text.sample(n=min(len(text), FORMAT_SAMPLE_ROWS), random_state=0)
    return detect_datetime_format(sample, min_share=FORCED_DATETIME_SHARE)


def _time_resolution(kind: ColumnKind, datetime_format: str | None) -> float:
    if kind == ColumnKind.DATE:
        return 1.0
    fmt = datetime_format or "%S"
    if "%f" in fmt:
        return 1e-3 / 86_400
    if "%S" in fmt:
        return 1 / 86_400
    if "%M" in fmt:
        return 1 / 1_440
    return 1 / 24


def _fit_categorical(raw: pd.Series, spec: ColumnSpec, n_rows: int, options: dict) -> CategoricalCodec:
    observed = raw.dropna()
    counts = observed.map(_token).value_counts()
    originals = dict(zip(observed.map(_token), observed))
    shown = counts[counts >= level_threshold(spec.kind, options["min_level_rows"])]  # what a synthetic table may hold
    kept = shown[shown >= options["rare_share"] * n_rows].head(options["max_levels"])
    pooled = [(_plain(originals[t]), int(c)) for t, c in shown.drop(kept.index).items()]
    suppressed = int(counts.sum() - shown.sum())
    if suppressed:
        pooled.append((rare_level_value(shown.index), suppressed))
    return CategoricalCodec(
        name=spec.name,
        kind=spec.kind,
        source_dtype=str(raw.dtype),
        levels={t: _plain(originals[t]) for t in kept.index},
        rare_pool=pooled,
        frequencies={t: int(c) for t, c in kept.items()},
        missing_share=float(raw.isna().mean()),
    )


def _fit_identifier(raw: pd.Series, spec: ColumnSpec) -> IdentifierCodec:
    observed = raw.dropna()
    missing = float(raw.isna().mean())
    if pd.api.types.is_numeric_dtype(observed):
        ints = observed.astype("int64")
        lo, hi = int(ints.min()), int(ints.max())
        sequential = lo if hi - lo + 1 <= 1.05 * len(ints) else None
        return IdentifierCodec(
            name=spec.name,
            numeric=True,
            sequential_start=sequential,
            digits=max(len(str(hi)), 2),
            first_free=_above(hi),
            missing_share=missing,
        )
    text = observed.astype(str)
    shapes = text.map(_shape)
    common = shapes.value_counts().index[0]
    template = text[shapes == common].iloc[0]
    template = "".join("#" if ch.isdigit() else ch for ch in template)
    if template.count("#") < 4:
        template = f"SYN-{'#' * max(6, len(str(len(text))) + 1)}"
        first_free = 0  # a shape of its own: no real value has it
    else:
        digits = text[shapes == common].str.replace(r"\D", "", regex=True)  # one width: text order is number order
        first_free = _above(int(digits.max()))
    return IdentifierCodec(
        name=spec.name,
        numeric=False,
        template=template,
        digits=template.count("#"),
        first_free=first_free,
        missing_share=missing,
    )


def _above(largest: int) -> int:
    """A number above `largest` that keeps no real value: its leading digit rounded up (66 -> 70, 500 -> 600)."""
    if largest < 0:
        return 0
    scale = 10 ** (len(str(largest)) - 1)
    return (largest // scale + 1) * scale


def _fit_subject_key(raw: pd.Series, spec: ColumnSpec) -> SubjectKeyCodec:
    """The key's shape, a first number above every real key of that shape, and the rows-per-key quantiles."""
    observed = raw.dropna()
    rows_per_key = observed.value_counts().to_numpy(dtype=float) if len(observed) else np.ones(1)
    common = {
        "name": spec.name,
        "rows_per_key": np.quantile(rows_per_key, np.linspace(0, 1, ROWS_PER_KEY_QUANTILES)).tolist(),
        "missing_share": float(raw.isna().mean()),
    }
    if pd.api.types.is_numeric_dtype(observed):
        largest = int(observed.abs().max()) if len(observed) else 0
        return SubjectKeyCodec(numeric=True, first_number=10 ** len(str(largest)), **common)
    prefix, digits, suffix = _key_template(observed.astype(str).str.strip())
    pattern = f"^{re.escape(prefix)}(\\d+){re.escape(suffix)}$"
    real_numbers = observed.astype(str).str.strip().str.extract(pattern)[0].dropna().str.lstrip("0")
    first_number = 10 ** int(real_numbers.str.len().max()) if len(real_numbers) else 0
    return SubjectKeyCodec(
        numeric=False, prefix=prefix, suffix=suffix, digits=digits, first_number=first_number, **common
    )


def _key_template(keys: pd.Series) -> tuple[str, int, str]:
    """Prefix, digit count and suffix around the last run of digits of a key of the most common shape."""
    shapes = key_shapes(keys)
    example = keys[shapes == shapes.mode().iloc[0]].iloc[0] if len(keys) else ""
    numbers = list(re.finditer(r"\d+", example))
    if not numbers:
        prefix, digits = SUBJECT_KEY_TEMPLATE
        return prefix, digits, ""
    number = numbers[-1]
    return example[: number.start()], number.end() - number.start(), example[number.end() :]


def _fit_pii(raw: pd.Series, spec: ColumnSpec) -> PiiCodec:
    observed = raw.dropna()
    numeric = pd.api.types.is_numeric_dtype(observed)
    separator = ""
    if spec.pii_type == "nhs_number" and not numeric and len(observed):
        first = str(observed.iloc[0])
        separator = first[3] if len(first) == 12 and not first[3].isdigit() else ""
    return PiiCodec(
        name=spec.name,
        pii_type=spec.pii_type or "text",
        separator=separator,
        numeric=numeric,
        missing_share=float(raw.isna().mean()),
        names=_name_shape(observed.astype(str)) if spec.pii_type == "name" and len(observed) else None,
    )


def _name_shape(names: pd.Series) -> NameShape:
    """The source names' most common case and token count, and a pool as large as their distinct count
    whose seed makes none of its names equal a source name (in any case)."""
    cases = np.select([names == names.str.lower(), names == names.str.upper()], ["lower", "upper"], "title")
    shape = NameShape(
        case=pd.Series(cases).mode().iloc[0],
        tokens=int(names.str.split().str.len().clip(1, 3).mode().iloc[0]),
        pool_size=min(names.nunique(), NAME_WORDS),
    )
    real = set(names.str.casefold())
    for seed in range(NAME_POOL_TRIES):
        shape.pool_seed = seed
        pool = fabricate_names(shape, np.arange(shape.pool_size))
        if real.isdisjoint(np.char.lower(pool.astype(str))):
            return shape
    raise SchemaError(
        f"Column '{names.name}' holds so many distinct names that no pool of invented ones avoids them all; "
        "set its kind to identifier."
    )


# -- helpers --------------------------------------------------------------------------------------
def unique_counters(rows: np.ndarray, modulus: int, salt: int) -> np.ndarray:
    """A bijection of row numbers onto 0 .. modulus - 1 that looks shuffled (affine map, unit multiplier)."""
    if rows.size and int(rows.max()) >= modulus:
        raise ValueError(f"Cannot make more than {modulus:,} unique identifiers in this shape.")
    rng = np.random.default_rng(abs(salt))
    multiplier = int(rng.integers(1, min(modulus, 2**62)))
    while math.gcd(multiplier, modulus) != 1:
        multiplier += 1
    offset = int(rng.integers(0, min(modulus, 2**62)))
    if modulus < 2**31 and (rows.size == 0 or int(rows.max()) < 2**31):
        return (rows.astype(np.int64) * multiplier + offset) % modulus
    return np.array([(int(r) * multiplier + offset) % modulus for r in rows], dtype=object)


def _fill_template(template: str, counters: np.ndarray) -> np.ndarray:
    """Template text with each counter's digits in the '#' slots, vectorised (no per-row Python)."""
    slot_positions = [i for i, ch in enumerate(template) if ch == "#"]
    counters = np.asarray(counters).astype(np.int64)
    digits = (counters[:, None] // 10 ** np.arange(len(slot_positions) - 1, -1, -1)) % 10
    points = np.tile(np.array([ord(ch) for ch in template], dtype=np.uint32), (len(counters), 1))
    points[:, slot_positions] = digits + ord("0")
    return code_points_to_strings(points)


def code_points_to_strings(points: np.ndarray) -> np.ndarray:
    """Rows of Unicode code points (n, width) as an object array of strings."""
    points = np.ascontiguousarray(points, dtype=np.uint32)
    return points.view(f"<U{points.shape[1]}").ravel().astype(object)


def format_datetimes(nanoseconds: np.ndarray, missing: np.ndarray, fmt: str) -> pa.Array:
    """Text in the source's format, by strftime in Arrow's C++ (pandas formats row by row); gaps are null."""
    if "%f" in fmt:  # Arrow's strftime has no %f
        stamps = pd.Series(pd.to_datetime(nanoseconds, unit="ns")).where(~missing)
        return pa.array(stamps.dt.strftime(fmt).where(~missing, None), type=pa.string())
    seconds = masked_array(np.floor_divide(nanoseconds, 10**9), missing, pa.timestamp("s"))
    return pc.strftime(seconds, format=fmt, locale="C")


def _values_array(values: list) -> pa.Array:
    """A column's original values as one Arrow array; mixed Python types fall back to their text."""
    try:
        return pa.array(values or [None])
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([str(v) for v in values])


# invented names: onset, vowel, onset, vowel, ending ("Bravoton"); every such word parses one way only
NAME_ONSETS = ("b", "br", "c", "ch", "d", "dr", "f", "g", "gr", "h", "j", "k", "l")
NAME_ONSETS += ("m", "n", "p", "r", "s", "sh", "st", "t", "th", "tr", "v", "w", "z")
NAME_VOWELS = tuple("aeiou")
NAME_ENDINGS = ("", "n", "l", "r", "s", "th", "nd", "rt", "ley", "ton", "well", "by", "den", "ford", "win", "ric")
NAME_SYLLABLES = (NAME_ONSETS, NAME_VOWELS, NAME_ONSETS, NAME_VOWELS, NAME_ENDINGS)
NAME_WORDS = math.prod(len(part) for part in NAME_SYLLABLES)
NAME_POOL_TRIES = 100


def fabricate_names(shape: NameShape, pool_indices: np.ndarray) -> np.ndarray:
    """The invented names at the given places of a shape's pool, in its case and token count, vectorised."""
    words_per_token = shape.vocabulary
    counters = unique_counters(np.asarray(pool_indices, dtype=np.int64), words_per_token**shape.tokens, shape.pool_seed)
    tokens = []
    for position in range(shape.tokens):
        word_index = unique_counters(counters % words_per_token, NAME_WORDS, shape.pool_seed * 31 + position + 1)
        counters = counters // words_per_token
        tokens.append(_cased(_invented_words(np.asarray(word_index, dtype=np.int64)), shape.case))
    names = tokens[0]
    for token in tokens[1:]:
        names = np.char.add(np.char.add(names, " "), token)
    return names.astype(object)


def _invented_words(word_index: np.ndarray) -> np.ndarray:
    """Lowercase invented words, one per index below NAME_WORDS (a mixed-radix number over the syllables)."""
    word = np.full(word_index.shape, "", dtype="<U12")
    for part in NAME_SYLLABLES:
        word = np.char.add(word, np.asarray(part)[word_index % len(part)])
        word_index = word_index // len(part)
    return word


def _cased(words: np.ndarray, case: str) -> np.ndarray:
    if case == "upper":
        return np.char.upper(words)
    return words if case == "lower" else np.char.capitalize(words)


def fabricate_pii(
    pii_type: str, n: int, start_row: int, rng: np.random.Generator, salt: int, separator: str = ""
) -> np.ndarray:
    """Values that look like the PII type but belong to nobody (reserved or test ranges)."""
    if pii_type == "email":
        counters = unique_counters(np.arange(start_row, start_row + n), 10**8, salt)
        return _fill_template("person########@example.org", counters)
    if pii_type == "phone":
        return _fill_template("07700 900###", rng.integers(0, 1000, n))  # Ofcom drama range
    if pii_type == "nhs_number":
        return _test_nhs_numbers(n, rng, separator)
    if pii_type == "postcode":  # ZZ99 is the NHS pseudo-postcode area: no real address
        points = np.tile(np.array([ord(c) for c in "ZZ99 9AA"], dtype=np.uint32), (n, 1))
        points[:, 5] = rng.integers(1, 10, n) + ord("0")
        points[:, 6:] = rng.integers(0, 26, (n, 2)) + ord("A")
        return code_points_to_strings(points)
    return _fill_template("withheld-##########", np.arange(start_row, start_row + n))


def _test_nhs_numbers(n: int, rng: np.random.Generator, separator: str) -> np.ndarray:
    """NHS numbers in the 999 test range with valid check digits, vectorised."""
    rows = np.empty((0, 10), dtype=np.int64)
    while len(rows) < n:
        stems = np.hstack([np.full((n, 3), 9), rng.integers(0, 10, (n, 6))])
        check = nhs_check_digit(stems)
        valid = check != 10
        rows = np.vstack([rows, np.hstack([stems[valid], check[valid, None]])])
    points = rows[:n] + ord("0")
    if separator:
        gap = np.full((n, 1), ord(separator))
        points = np.hstack([points[:, :3], gap, points[:, 3:6], gap, points[:, 6:]])
    return code_points_to_strings(points)


def masked_array(values: np.ndarray, missing: np.ndarray, kind: pa.DataType | None = None) -> pa.Array:
    """An Arrow array over values (no copy) with missing rows as nulls, typed as the values or as kind (a
    type with the same 64-bit layout, e.g. a timestamp over int64); the validity bitmap is packed by
    numpy, several times faster than pa.array's mask argument."""
    kind = kind or pa.from_numpy_dtype(values.dtype)
    values = np.ascontiguousarray(values)
    nulls = int(missing.sum())
    validity = pa.py_buffer(np.packbits(~missing, bitorder="little")) if nulls else None
    return pa.Array.from_buffers(kind, len(values), [validity, pa.py_buffer(values)], null_count=nulls)


def clipped(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """values clipped to [low, high] in place, bit for bit as np.clip, a few times faster when none is out of range
    (a decoded column's usual case): numpy clips floats in a scalar loop, its min and max are vectorised."""
    if values.dtype.kind != "f":
        return np.clip(values, low, high)
    return np.clip(values, low, high, out=values) if _clip_changes(values, low, high) else values


def _clip_changes(values: np.ndarray, low: float, high: float) -> bool:
    """Whether np.clip(values, low, high) differs from values: a value out of range or NaN (min/max propagate NaN,
    which fails the comparison), or a zero of the other sign than a zero bound (clip returns the bound on a tie)."""
    if values.size == 0:
        return False
    if not (low <= values.min() and values.max() <= high):
        return True
    return any(
        bound == 0 and ((values == 0) & (np.signbit(values) != np.signbit(bound))).any() for bound in (low, high)
    )


def calibrate_missing(missing: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """The model's missing mask, with the fewest random flips that bring its share to the training share.

    Which rows are missing still comes from the model (so gaps stay tied to other values); only the
    overall share is corrected, since several libraries lose rare indicator levels.
    """
    n = missing.size
    if n == 0:
        return missing
    wanted = int(np.floor(share * n + rng.random()))  # stochastic rounding keeps small batches unbiased
    have = int(missing.sum())
    if wanted == have:
        return missing
    missing = missing.copy()
    pool = np.flatnonzero(~missing if wanted > have else missing)
    missing[rng.choice(pool, size=abs(wanted - have), replace=False)] = wanted > have
    return missing


def _column_to_pandas(codec, column: pa.ChunkedArray) -> pd.Series:
    if isinstance(codec, LEARNED_CODECS):
        return codec.to_pandas(column)
    if getattr(codec, "missing_share", 0.0) > 0:  # gaps were set on an object column (_apply_missing)
        return pd.Series(column.to_pandas(integer_object_nulls=True)).astype(object)
    return pd.Series(column.to_pandas())


def _apply_missing(series: pd.Series, share: float, rng: np.random.Generator) -> pd.Series:
    if share <= 0:
        return series
    series = series.astype(object)
    series[rng.random(len(series)) < share] = None
    return series


def _token(value) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _plain(value):
    """A JSON-ready Python scalar."""
    return value.item() if isinstance(value, np.generic) else value


def _shape(value: str) -> str:
    return "".join("9" if ch.isdigit() else "A" if ch.isalpha() else ch for ch in value)
