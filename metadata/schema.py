"""TableSchema: what each column of a table is, inferred from the data and editable by the user."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, Field

from fairsynth.errors import FairsynthError
from fairsynth.metadata.rules import MIN_RULE_SUPPORT, Rule


class SchemaError(FairsynthError):
    """The schema or an override does not fit the table; the message says what to change."""


class ColumnKind(StrEnum):
    """The kinds of column fairsynth tells apart."""

    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    CATEGORICAL = "categorical"
    DATETIME = "datetime"
    DATE = "date"
    IDENTIFIER = "identifier"
    SUBJECT_KEY = "subject_key"
    TEXT = "text"
    PII = "pii"


NUMERIC_KINDS = frozenset({ColumnKind.INTEGER, ColumnKind.FLOAT})
TEMPORAL_KINDS = frozenset({ColumnKind.DATETIME, ColumnKind.DATE})
TEXT_DTYPES = ("object", "string", "str")  # pandas dtypes of a column read as text (numbers in strings included)
#: kinds that are never learned: regenerated (identifier, subject key, PII) or withheld (text)
UNLEARNED_KINDS = frozenset({ColumnKind.IDENTIFIER, ColumnKind.SUBJECT_KEY, ColumnKind.TEXT, ColumnKind.PII})

# Day-first before month-first: UK hospital exports are day-first, and a column whose days are
# all <= 12 is ambiguous, so the order is the tie-break. Verified on the whole column afterwards.
DATE_FORMATS = (
    "%Y-%m-%d",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%d %H:%M:%S.%f",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M:%S",
    "%d-%m-%Y",
    "%m-%d-%Y",
    "%d.%m.%Y",
    "%Y/%m/%d",
    "%d %b %Y",
    "%d-%b-%Y",
    "%d %B %Y",
    "%b %d, %Y",
    "%Y%m%d",
)
TIME_DIRECTIVES = ("%H", "%M", "%S")

ID_NAME = re.compile(
    r"(^|_|\b)(id|ids|uuid|guid|key|rownames|row_?id|mrn|record(_?no|_?number)?|"
    r"episode(_?no|_?number)?|patient(_?no|_?number)?|hospital_?number)($|_|\b)",
    re.IGNORECASE,
)
#: names of a key that repeats over each subject's rows (USUBJID, patient_id, PatientID, case.id, id); a lowercase
#: "...id" counts only after a key word, so lipid or fluid name no key
SUBJECT_KEY_NAME = re.compile(
    r"(?i:(^|[_.\s])(id|usubjid|subjid|subj|subject|patient|pat|person|participant|mrn|case)"
    r"([_.\s]?(id|no|nr|num|number|key|code))?$)"
    r"|(?i:[_.\s]id$)"
    r"|[a-z]Id$|[a-zA-Z]ID$"
)
SUBJECT_KEY_MIN_LEVELS = 20  # a subject key has at least this many distinct values ...
SUBJECT_KEY_MAX_LEVEL_SHARE = 0.05  # ... and none of them holds more than this share of the rows
#: a key is nested in another (numbers rows within it) when their distinct pairs outnumber either's levels this much
CROSSED_PAIRS_FACTOR = 1.5
SUBJECT_KEY_SHAPE_SHARE = 0.9  # share of text values that must have the key's shape (letters, digits, separators)
NAME_COLUMN = re.compile(
    r"(^|_)(name|names|surname|forename|first_?name|last_?name|full_?name|"
    r"given_?name|family_?name)($|_)",
    re.IGNORECASE,
)
#: words of places, services and tests: a column of values with them names no person (clinic_name)
INSTITUTION_WORDS = re.compile(
    r"\b(?:clinic|clinical|hospital|hosp|ward|lab|labs|laboratory|test|tests|testing|centre|center|unit|"
    r"dept|department|practice|surgery|service|services|trust|pharmacy|team|site|room|theatre|van|icu|"
    r"pcr|assay|panel|screen|group)\b",
    re.IGNORECASE,
)
PII_MATCH_SHARE = 0.9  # share of values that must look like the PII kind
PII_HINTED_MATCH_SHARE = 0.6  # ... where the column's name hints at the kind
MIN_HINTED_NAMES = 20  # distinct single-token values a column named like a name needs to be names
MIN_UNHINTED_NAMES = 50  # distinct values names need where the column's name says nothing
UNHINTED_NAMES_UNIQUE_SHARE = 0.3  # ... and that share of rows with a distinct value (people differ)


TRUE_WORDS = {"true", "t", "yes", "y"}
FALSE_WORDS = {"false", "f", "no", "n"}
MANY_LEVELS = 1000
MIN_LEVEL_ROWS = 10  # the default of MinLevelRows
RARE_LEVEL = "other"  # what a synthetic table holds in place of every level under the threshold
DICTIONARY_LEVELS = 50  # a column with more levels has only its number of levels in the data dictionary
#: DataFrame.attrs key the table reader sets: numeric columns the source writes with a decimal point
DECIMAL_POINT_COLUMNS = "decimal_point_columns"
EPOCH = pd.Timestamp("1970-01-01")
DISCRETE_KINDS = frozenset({ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN})

MinLevelRows = Annotated[
    int,
    Field(
        ge=2,
        description="a category level seen in fewer training rows is never reproduced (it comes back as "
        f"'{RARE_LEVEL}') and never listed in the data dictionary",
    ),
]


class ColumnSpec(BaseModel):
    """One column: its kind and the facts about it that generation and metadata need."""

    name: str
    kind: ColumnKind
    missing_share: float = 0.0
    cardinality: int | None = None
    datetime_format: str | None = None
    pii_type: str | None = None
    drop: bool = False
    unit: str | None = None
    description: str | None = None
    minimum: float | str | None = None
    maximum: float | str | None = None
    decimals: int | None = None
    decimal_point: bool = Field(False, description="the source writes every value with a decimal point (1.0, not 1)")
    allowed_values: list[str] | None = None
    source_dtype: str = "object"

    @property
    def learned(self) -> bool:
        """True when backends model this column (not dropped, not regenerated or withheld)."""
        return not self.drop and self.kind not in UNLEARNED_KINDS

    def handling(self) -> str:
        """How the synthetic table treats this column, in words."""
        if self.drop:
            return "dropped"
        return {
            ColumnKind.IDENTIFIER: "regenerated: fresh unique values in the source's shape",
            ColumnKind.SUBJECT_KEY: "regenerated: a subject key, synthetic keys in the source's shape shared by "
            "consecutive rows as often as in the source, never a real value",
            ColumnKind.PII: "replaced: fabricated values of the same pattern, never learned",
            ColumnKind.TEXT: "withheld: free text is never learned",
        }.get(self.kind, "modelled")


class TableSchema(BaseModel):
    """All columns of one table, the target column, and what inference warned about."""

    columns: list[ColumnSpec]
    n_rows: int
    target: str | None = None
    warnings: list[str] = Field(default_factory=list)
    min_level_rows: MinLevelRows = MIN_LEVEL_ROWS
    rules: list[Rule] = Field(default_factory=list, description="cross-column rules (metadata/rules.py)")
    min_rule_support: int = Field(MIN_RULE_SUPPORT, ge=1, description="real rows a detected rule must hold in")

    # -- inference ----------------------------------------------------------------------------
    @classmethod
    def infer(cls, data: pd.DataFrame, *, sample_rows: int = 20_000, seed: int = 0) -> TableSchema:
        """Infer every column's kind on a seeded sample, then verify and measure on the whole table."""
        sample = data.sample(n=sample_rows, random_state=seed) if len(data) > sample_rows else data
        inferred = {name: infer_column(data[name], sample[name]) for name in data.columns}
        for name in _nested_subject_keys(data, [spec for spec, _ in inferred.values()]):
            inferred[name] = infer_column(data[name], sample[name], subject_keys=False)
        columns, warnings = [], []
        for name, (spec, warning) in inferred.items():
            spec.decimal_point = spec.kind in NUMERIC_KINDS and name in data.attrs.get(DECIMAL_POINT_COLUMNS, ())
            columns.append(spec)
            if warning:
                warnings.append(warning)
        return cls(columns=columns, n_rows=len(data), warnings=warnings).with_level_rule(data, MIN_LEVEL_ROWS)

    # -- access -------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Column names in table order."""
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSpec:
        """The spec of one column, or a SchemaError naming the known columns."""
        for spec in self.columns:
            if spec.name == name:
                return spec
        raise SchemaError(f"There is no column '{name}'; the columns are: {', '.join(self.names)}.")

    def learned_columns(self) -> list[ColumnSpec]:
        """Columns that backends model."""
        return [c for c in self.columns if c.learned]

    def output_columns(self) -> list[ColumnSpec]:
        """Columns the synthetic table has (every column not dropped)."""
        return [c for c in self.columns if not c.drop]

    # -- user edits ---------------------------------------------------------------------------
    def with_overrides(
        self,
        *,
        kinds: dict[str, str] | None = None,
        drop: Iterable[str] = (),
        target: str | None = None,
        formats: dict[str, str] | None = None,
    ) -> TableSchema:
        """A copy with the user's choices applied: column kinds, dropped columns, target, date formats.

        Every problem with the choices is reported at once, in one SchemaError.
        """
        kinds, formats, drop = kinds or {}, formats or {}, list(drop)
        named = [*kinds, *formats, *drop, *([] if target is None else [target])]
        problems = self._unknown_columns(named) + _bad_kinds(kinds)
        if problems:
            raise SchemaError(*problems)
        updated = self.model_copy(deep=True)
        for name, kind in kinds.items():
            updated.column(name).kind = ColumnKind(str(kind).lower())
        for name, fmt in formats.items():
            updated.column(name).datetime_format = fmt
        for name in drop:
            updated.column(name).drop = True
        if target is not None:
            updated.target = target
        updated.rules = [rule for rule in updated.rules if updated.still_fits(rule, self)]
        problems = updated._unlearnable()
        if problems:
            raise SchemaError(*problems)
        return updated

    def still_fits(self, rule: Rule, before: TableSchema) -> bool:
        """True when a rule's columns are all kept with the kinds it was found on."""
        return all(not self.column(n).drop and self.column(n).kind == before.column(n).kind for n in rule.columns)

    def _unknown_columns(self, named: Iterable[str]) -> list[str]:
        """One sentence naming every given column the table does not have, or none."""
        unknown = [name for name in dict.fromkeys(named) if name not in self.names]
        if not unknown:
            return []
        listed = ", ".join(f"'{name}'" for name in unknown)
        missing = f"There is no column {listed}" if len(unknown) == 1 else f"There are no columns {listed}"
        return [f"{missing}; the columns are: {', '.join(self.names)}."]

    def _unlearnable(self) -> list[str]:
        """What stops a run after the user's choices: an unlearned target, no column left to learn."""
        problems = []
        if self.target is not None and not (spec := self.column(self.target)).learned:
            problems.append(
                f"The target '{self.target}' is a {spec.kind} column that is not learned; "
                "choose a measured column as target."
            )
        if not self.learned_columns():
            problems.append(
                "No column is left to learn: every column is dropped, an identifier, "
                "PII or free text; keep at least one measured column."
            )
        return problems

    def with_level_rule(self, data: pd.DataFrame, min_level_rows: int) -> TableSchema:
        """A copy that lists, per category column of at most DICTIONARY_LEVELS levels, the levels with at least
        min_level_rows rows in data (the training rows: the levels a synthetic table may hold), and none elsewhere."""
        updated = self.model_copy(deep=True, update={"min_level_rows": min_level_rows})
        for spec in updated.columns:
            listed = spec.kind in DISCRETE_KINDS and not spec.drop and (spec.cardinality or 0) <= DICTIONARY_LEVELS
            threshold = level_threshold(spec.kind, min_level_rows)
            spec.allowed_values = _frequent_levels(data[spec.name], threshold) if listed else None
        return updated

    # -- serialisation ------------------------------------------------------------------------
    def to_json(self) -> str:
        """JSON text that from_json reads back to an equal schema."""
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str) -> TableSchema:
        """Parse to_json's output."""
        return cls.model_validate_json(text)

    def data_dictionary(self) -> pd.DataFrame:
        """One row per column: kind, unit, allowed values or range, missing share, handling, rules it takes part in.

        A category column lists only its levels with at least min_level_rows rows, and none when it has more
        than DICTIONARY_LEVELS levels (distinct_values still counts them).
        """
        rows = []
        for c in self.columns:
            rows.append(
                {
                    "column": c.name,
                    "kind": c.kind.value,
                    "unit": c.unit or "",
                    "description": c.description or "",
                    "format": c.datetime_format or "",
                    "minimum": "" if c.minimum is None else c.minimum,
                    "maximum": "" if c.maximum is None else c.maximum,
                    "allowed_values": self._listed_values(c),
                    "distinct_values": c.cardinality,
                    "missing_share": round(c.missing_share, 4),
                    "synthetic_handling": c.handling(),
                    "target": c.name == self.target,
                    "rules": "; ".join(self._rule_texts(c.name)),
                }
            )
        return pd.DataFrame(rows)

    def _rule_texts(self, name: str) -> list[str]:
        """The dictionary's rules cell: the cross-column rules a column takes part in, with a status other than
        enforced in brackets."""
        return [
            rule.text + ("" if rule.enforced else f" ({rule.status.value})")
            for rule in self.rules
            if name in rule.columns
        ]

    def _listed_values(self, column: ColumnSpec) -> str:
        """The dictionary's allowed_values cell: the listed levels, and what is not listed."""
        if column.kind not in DISCRETE_KINDS or column.drop:
            return ""
        listed = "; ".join(column.allowed_values or [])
        if (column.cardinality or 0) > DICTIONARY_LEVELS:
            return f"not listed: {column.cardinality:,} levels (more than {DICTIONARY_LEVELS})"
        if len(column.allowed_values or []) < (column.cardinality or 0):
            replacement = rare_level_value(column.allowed_values or [])
            rare = f"levels with fewer than {self.min_level_rows} rows: not listed, '{replacement}' in synthetic rows"
            return f"{listed}; {rare}" if listed else rare
        return listed


def level_threshold(kind: ColumnKind, min_level_rows: int) -> int:
    """Rows a level needs to be listed and reproduced: min_level_rows, except a yes/no column keeps both its
    values (a flag's two values identify no one, and 'other' in a 0/1 column would make no sense)."""
    return 1 if kind == ColumnKind.BOOLEAN else min_level_rows


def rare_level_value(levels: Iterable[object]) -> str:
    """The value standing for every level under the threshold: RARE_LEVEL, numbered when a kept level has that name."""
    taken = {str(level) for level in levels}
    value, number = RARE_LEVEL, 1
    while value in taken:
        number += 1
        value = f"{RARE_LEVEL} {number}"
    return value


def _frequent_levels(column: pd.Series, min_rows: int) -> list[str]:
    """The column's levels (as text, most frequent first, 1.0 as 1) seen in at least min_rows rows."""
    values = column.dropna()
    if pd.api.types.is_float_dtype(values) and bool((values % 1 == 0).all()):
        values = values.astype("int64")
    counts = values.astype(str).value_counts()
    return [str(v) for v in counts[counts >= min_rows].index]


def _bad_kinds(kinds: dict[str, str]) -> list[str]:
    """One sentence per override that names no column kind."""
    allowed = ", ".join(k.value for k in ColumnKind)
    known = {k.value for k in ColumnKind}
    return [
        f"'{kind}' is not a column kind for '{name}'; use one of: {allowed}."
        for name, kind in kinds.items()
        if str(kind).lower() not in known
    ]


# -- column inference ---------------------------------------------------------------------------
def infer_column(column: pd.Series, sample: pd.Series, *, subject_keys: bool = True) -> tuple[ColumnSpec, str | None]:
    """Infer one column's spec (a subject key only where subject_keys); returns a warning sentence when the
    column needs the user's eye."""
    name = str(column.name)
    non_null = column.dropna()
    spec = ColumnSpec(
        name=name,
        kind=ColumnKind.CATEGORICAL,
        missing_share=float(column.isna().mean()) if len(column) else 0.0,
        cardinality=int(non_null.nunique()),
        source_dtype=str(column.dtype),
    )
    if non_null.empty:
        return spec, f"Column '{name}' is empty in every row; it stays empty in the synthetic table."
    sample = sample.dropna()
    if pd.api.types.is_bool_dtype(non_null):
        return _discrete(spec, non_null, ColumnKind.BOOLEAN), None
    if pd.api.types.is_datetime64_any_dtype(non_null):
        return _temporal_from_values(spec, pd.to_datetime(non_null), None), None
    if pd.api.types.is_numeric_dtype(non_null):
        return _numeric(spec, non_null.astype(float), subject_keys), None
    text, sample_text = non_null.astype(str), sample.astype(str)
    if sample_text.str.match(r"^\s|.*\s$").any():  # strip only columns that carry padding (costly on 1M rows)
        text, sample_text = text.str.strip(), sample_text.str.strip()
    return _from_text(spec, text, sample_text, subject_keys)


def _numeric(spec: ColumnSpec, values: pd.Series, subject_keys: bool = True) -> ColumnSpec:
    integral = bool(np.all(np.mod(values.to_numpy(), 1) == 0))
    unique_ratio = spec.cardinality / len(values)
    if integral and set(np.unique(values.to_numpy())) <= {0.0, 1.0} and not ID_NAME.search(spec.name):
        return _discrete(spec, values.astype(int), ColumnKind.BOOLEAN)
    if integral and _looks_like_identifier(spec.name, unique_ratio, len(values)):
        if values.between(1e9, 1e10 - 1).all() and _nhs_checksums_valid(values.astype("int64").astype(str)):
            return _pii(spec, "nhs_number")
        spec.kind = ColumnKind.IDENTIFIER
        spec.minimum, spec.maximum = float(values.min()), float(values.max())
        return spec
    if subject_keys and integral and bool((values >= 0).all()) and _looks_like_subject_key(spec.name, values):
        spec.kind = ColumnKind.SUBJECT_KEY  # no minimum or maximum: both are real keys
        return spec
    spec.kind = ColumnKind.INTEGER if integral else ColumnKind.FLOAT
    spec.minimum, spec.maximum = float(values.min()), float(values.max())
    spec.decimals = 0 if integral else _decimals(values)
    return spec


def _from_text(
    spec: ColumnSpec, values: pd.Series, sample: pd.Series, subject_keys: bool = True
) -> tuple[ColumnSpec, str | None]:
    name = spec.name
    numbers = pd.to_numeric(sample, errors="coerce")
    numeric_share = float(numbers.notna().mean())
    has_leading_zero = bool(sample.str.match(r"^0\d").any())
    if numeric_share == 1.0 and not has_leading_zero:
        whole = pd.to_numeric(values, errors="coerce")
        if whole.notna().all():
            return _numeric(spec, whole.astype(float), subject_keys), None
        numeric_share = float(whole.notna().mean())
    lowered = set(sample.str.lower().unique())
    if lowered <= TRUE_WORDS | FALSE_WORDS and len(lowered) <= 2:
        return _discrete(spec, values, ColumnKind.BOOLEAN), None
    temporal = _temporal_from_text(spec, values, sample)
    if temporal is not None:
        return temporal
    pii_type = _pii_type(name, sample)
    if pii_type:
        return _pii(spec, pii_type), None
    unique_ratio = spec.cardinality / len(values)
    wordy = float(sample.str.count(" ").mean()) >= 4
    if wordy:
        spec.kind = ColumnKind.TEXT
        return spec, None
    if _looks_like_identifier(name, unique_ratio, len(values)):
        spec.kind = ColumnKind.IDENTIFIER
        return spec, None
    if subject_keys and _key_shaped(sample) and _looks_like_subject_key(name, values):
        spec.kind = ColumnKind.SUBJECT_KEY
        return spec, None
    spec = _discrete(spec, values, ColumnKind.CATEGORICAL)
    if 0.5 <= numeric_share < 1.0:
        examples = ", ".join(repr(v) for v in values[pd.to_numeric(values, errors="coerce").isna()].unique()[:3])
        return spec, (
            f"Column '{name}' mixes numbers with text (e.g. {examples}), so it is treated as "
            "categorical; set its kind to float to turn the text into missing values."
        )
    if spec.cardinality > MANY_LEVELS:
        return spec, (
            f"Column '{name}' has {spec.cardinality:,} distinct values; the most frequent are "
            "modelled and the rest are grouped as rare, or set its kind to identifier or text."
        )
    return spec, None


def _temporal_from_text(spec: ColumnSpec, values: pd.Series, sample: pd.Series) -> tuple[ColumnSpec, str | None] | None:
    if not sample.str.contains(r"\d", regex=True).all() or sample.str.len().max() > 40:
        return None
    fmt = detect_datetime_format(sample)
    if fmt is None:
        return None
    parsed = parse_datetime_text(values, fmt)
    share = float(parsed.notna().mean())
    if share == 1.0:
        return _temporal_from_values(spec, parsed, fmt), None
    if share >= 0.99:
        bad = ", ".join(map(repr, values[parsed.isna()].unique()[:3]))
        return (
            _temporal_from_values(spec, parsed.dropna(), fmt),
            f"Column '{spec.name}' holds dates in {fmt} but {1 - share:.1%} of values do not "
            f"parse (e.g. {bad}); those become missing values.",
        )
    return None


def detect_datetime_format(sample: pd.Series, min_share: float = 1.0) -> str | None:
    """The first of DATE_FORMATS that reads at least min_share of the sample's text values (date-only
    values count for a datetime format of their family, see parse_datetime_text); None when none does."""
    probe = sample.head(200)  # most formats fail at once on a small probe; test the sample after
    for fmt in DATE_FORMATS:
        if fmt == "%Y%m%d" and sample.str.fullmatch(r"(19|20)\d{6}").mean() < min_share:
            continue
        if all(parse_datetime_text(part, fmt).notna().mean() >= min_share for part in (probe, sample)):
            return fmt
    return None


def parse_datetime_text(text: pd.Series, fmt: str) -> pd.Series:
    """Datetimes from text in one strftime format; values that do not match it exactly become NaT.

    Mixed precision is one format: a date-only value among datetimes (2014-01-16 among 2014-01-16T13:17)
    reads as that day's midnight, and synthetic values are written in the full format.
    """
    parsed = _parse_exact(text, fmt)
    date_part = _date_part(fmt)
    unread = parsed.isna().to_numpy() & text.notna().to_numpy()
    if date_part and unread.any():
        parsed[unread] = _parse_exact(text[unread], date_part)
    return parsed


# -- values as numbers and labels ---------------------------------------------------------------
def parse_datetimes(raw: pd.Series, fmt: str | None) -> pd.Series:
    """Datetimes from a column of text (with the schema's format) or of datetimes."""
    if pd.api.types.is_datetime64_any_dtype(raw):
        values = raw
    elif fmt:
        values = parse_datetime_text(raw, fmt)
    else:
        values = pd.to_datetime(raw, format="mixed", dayfirst=True, errors="coerce")
    if getattr(values.dt, "tz", None) is not None:
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values


def datetimes_to_days(values: pd.Series) -> pd.Series:
    """Days since 1970-01-01 as floats; NaT becomes NaN."""
    return (values - EPOCH) / pd.Timedelta(days=1)


def column_values(raw: pd.Series, spec: ColumnSpec) -> pd.Series:
    """One column as floats (dates as days since 1970) or as string labels with missing kept as NaN."""
    if spec.kind in TEMPORAL_KINDS:
        return datetimes_to_days(parse_datetimes(raw, spec.datetime_format)).astype(float)
    if spec.kind in NUMERIC_KINDS:
        return pd.to_numeric(raw, errors="coerce").astype(float)
    present = raw.dropna()
    labels = {value: _label(value) for value in present.unique()}  # label each distinct value once
    if spec.kind == ColumnKind.BOOLEAN:  # True, "True" and "true" are one category
        labels = {value: label.lower() for value, label in labels.items()}
    return raw.map(labels).astype(object).where(raw.notna(), np.nan)


def level_labels(spec: ColumnSpec, levels: Iterable[str]) -> list[str]:
    """A category's levels as _labels writes them (a boolean's 'Y' is 'y': True and 'true' are one value)."""
    return [level.lower() for level in levels] if spec.kind == ColumnKind.BOOLEAN else list(levels)


def _label(value) -> str:
    """The same label for 1, 1.0 and '1', so categories compare across file types."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _date_part(fmt: str) -> str | None:
    """The date of a datetime format ('%Y-%m-%d' of '%Y-%m-%dT%H:%M'); None for a format without a time."""
    match = re.match(r"(.*%[dY])[T ]%H", fmt)
    return match.group(1) if match else None


def _parse_exact(text: pd.Series, fmt: str) -> pd.Series:
    """parse_datetime_text for one format to the letter.

    Arrow parses ten times faster than pandas but rolls impossible dates over (30 Feb -> 1 Mar) and
    forgives stray spaces, so every value it parsed whose re-formatting differs (those, and
    unpadded days like 1/2/2020) is re-parsed strictly by pandas.
    """
    if "%f" in fmt or "%z" in fmt or "%Z" in fmt:
        return pd.to_datetime(text, format=fmt, errors="coerce")
    strings = text if pd.api.types.is_string_dtype(text) else text.astype(object).where(text.isna(), text.astype(str))
    array = pa.array(strings.astype(object), type=pa.string(), from_pandas=True)
    parsed = pc.strptime(array, format=fmt, unit="s", error_is_null=True)
    exact = pc.fill_null(pc.equal(pc.strftime(parsed, format=fmt, locale="C"), array), True)
    result = pd.Series(parsed.to_pandas().to_numpy(), index=text.index).astype("datetime64[ns]")
    doubtful = ~exact.to_numpy(zero_copy_only=False)  # parsed by Arrow, but not to the letter
    if doubtful.any():
        result[doubtful] = pd.to_datetime(strings[doubtful], format=fmt, errors="coerce")
    return result


def _temporal_from_values(spec: ColumnSpec, parsed: pd.Series, fmt: str | None) -> ColumnSpec:
    has_time = (fmt is not None and any(d in fmt for d in TIME_DIRECTIVES)) or (
        fmt is None and bool((parsed != parsed.dt.normalize()).any())
    )
    spec.kind = ColumnKind.DATETIME if has_time else ColumnKind.DATE
    spec.datetime_format = fmt
    spec.minimum, spec.maximum = parsed.min().isoformat(), parsed.max().isoformat()
    return spec


def _discrete(spec: ColumnSpec, values: pd.Series, kind: ColumnKind) -> ColumnSpec:
    spec.kind = kind  # the levels listed are set for the whole table (TableSchema.with_level_rule)
    return spec


def _pii(spec: ColumnSpec, pii_type: str) -> ColumnSpec:
    spec.kind, spec.pii_type = ColumnKind.PII, pii_type
    spec.minimum = spec.maximum = None
    return spec


def _pii_type(name: str, sample: pd.Series) -> str | None:
    """The first PII kind most values look like (fewer where the column's name hints at it) and that its
    further content check confirms; None for any other column."""
    for pii_type, kind in PII_KINDS.items():
        hinted = bool(kind.name_hint.search(name))
        matches = sample.str.match(kind.pattern)
        if matches.mean() >= (PII_HINTED_MATCH_SHARE if hinted else PII_MATCH_SHARE) and kind.confirm(
            sample[matches], hinted
        ):
            return pii_type
    return None


def _looks_like_identifier(name: str, unique_ratio: float, n_values: int) -> bool:
    if ID_NAME.search(name) and unique_ratio >= 0.9:
        return True
    return unique_ratio >= 0.999 and n_values >= 50


def _looks_like_subject_key(name: str, values: pd.Series) -> bool:
    """A key that repeats over rows: named like one, many levels, and none holding more than a few % of rows."""
    if not SUBJECT_KEY_NAME.search(name):
        return False
    shares = values.value_counts(normalize=True, sort=False)
    return len(shares) >= SUBJECT_KEY_MIN_LEVELS and float(shares.max()) <= SUBJECT_KEY_MAX_LEVEL_SHARE


def _nested_subject_keys(data: pd.DataFrame, specs: list[ColumnSpec]) -> list[str]:
    """Subject keys that number rows only within another key with more levels (visit 1, 2, ... of each patient):
    the two are crossed, neither telling the other, as a key and a subject-level code (its site) never are."""
    keys = sorted((s for s in specs if s.kind == ColumnKind.SUBJECT_KEY), key=lambda s: s.cardinality or 0)
    nested = []
    for position, inner in enumerate(keys):
        for outer in keys[position + 1 :]:
            pairs = len(data[[inner.name, outer.name]].dropna().drop_duplicates())
            if pairs >= CROSSED_PAIRS_FACTOR * max(inner.cardinality or 0, outer.cardinality or 0):
                nested.append(inner.name)
                break
    return nested


def _key_shaped(text: pd.Series) -> bool:
    """Text values shaped like codes: each with a digit, most of one shape (STUDY1-0001: letters, digits, dash)."""
    if text.empty or not text.str.contains(r"\d", regex=True).all() or text.str.len().max() > 40:
        return False
    return float(key_shapes(text).value_counts(normalize=True).iloc[0]) >= SUBJECT_KEY_SHAPE_SHARE


def key_shapes(text: pd.Series) -> pd.Series:
    """Each code's shape: every run of digits as 9, every run of letters as A (STUDY1-0001 -> A9-9)."""
    return text.str.replace(r"\d+", "9", regex=True).str.replace(r"[^\W\d_]+", "A", regex=True)


def _nhs_checksums_valid(values: pd.Series, hinted: bool = False) -> bool:
    """True when most values pass the NHS number modulus-11 check (so it is not just any 10 digits)."""
    digits = values.str.replace(r"\D", "", regex=True)
    digits = digits[digits.str.len() == 10]
    if digits.empty:
        return False
    matrix = np.array([list(map(int, d)) for d in digits.head(500)])
    return float((nhs_check_digit(matrix[:, :9]) == matrix[:, 9]).mean()) >= 0.9


def _looks_like_person_names(values: pd.Series, hinted: bool) -> bool:
    """Names of people, not of clinics or tests: hardly a word of a place or a test, and the diversity of
    people (first and last tokens that recombine, or many distinct values); without a hint in the column's
    name also many distinct values, most rows with their own (a category repeats, people differ)."""
    distinct = pd.Series(values.unique(), dtype=object)
    if distinct.empty or distinct.str.contains(INSTITUTION_WORDS).mean() >= 0.1:
        return False
    tokens = distinct.str.split()
    recombined = (tokens.str.len() >= 2).mean() >= 0.5 and len(distinct) > max(
        tokens.str[0].nunique(), tokens.str[-1].nunique()
    )
    if hinted:
        return recombined or len(distinct) >= MIN_HINTED_NAMES
    return recombined and len(distinct) >= max(MIN_UNHINTED_NAMES, UNHINTED_NAMES_UNIQUE_SHARE * len(values))


def _any_content(values: pd.Series, hinted: bool) -> bool:
    """No further check: the pattern says it all."""
    return True


@dataclass(frozen=True)
class PiiKind:
    """One kind of personal data, detected by content: the pattern each value matches, the column names
    that hint at it, and a further check on the matching values (told whether the name hinted)."""

    pattern: re.Pattern[str]
    name_hint: re.Pattern[str]
    confirm: Callable[[pd.Series, bool], bool] = _any_content


NAME_TOKEN = r"[^\W\d_](?:[^\W\d_]|['.-])*"  # letters (any script), with apostrophes, dots, hyphens
#: the PII kinds, tried in this order; fabricate_pii (backends.preprocessing) makes each one's values
PII_KINDS = {
    "email": PiiKind(re.compile(r"^[\w.+-]+@[\w-]+(\.[\w-]+)+$"), re.compile(r"e_?mail", re.IGNORECASE)),
    "phone": PiiKind(
        re.compile(r"^(\+44\s?7\d{3}|\+44\s?\d{2,4}|0\d{2,4}|\(0\d{2,4}\))[\s-]?\d{3,4}[\s-]?\d{3,4}$"),
        re.compile(r"phone|mobile|(^|_)tel($|_)", re.IGNORECASE),
    ),
    "nhs_number": PiiKind(
        re.compile(r"^\d{3}[\s-]?\d{3}[\s-]?\d{4}$"), re.compile(r"nhs", re.IGNORECASE), _nhs_checksums_valid
    ),
    "postcode": PiiKind(
        re.compile(r"^[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}$", re.IGNORECASE),
        re.compile(r"post_?code|zip", re.IGNORECASE),
    ),
    "name": PiiKind(re.compile(rf"^{NAME_TOKEN}(\s{NAME_TOKEN}){{0,2}}$"), NAME_COLUMN, _looks_like_person_names),
}


def nhs_check_digit(nine_digits: np.ndarray) -> np.ndarray:
    """Modulus-11 check digits for rows of nine digits; 10 marks an invalid stem."""
    check = 11 - (nine_digits @ np.arange(10, 1, -1)) % 11
    return np.where(check == 11, 0, check)


def _decimals(values: pd.Series, limit: int = 6) -> int:
    """Fewest decimal places that represent every value (checked on the whole column)."""
    array = values.to_numpy(dtype=float)
    for places in range(limit + 1):
        if np.allclose(array, np.round(array, places), rtol=0, atol=10 ** -(places + 3)):
            return places
    return limit
