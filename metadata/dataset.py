"""DatasetSchema: several related tables, their keys, the parent -> child tree and each child's time column.

Keys and relationships are inferred from the data (a primary key is unique and never missing; a foreign key
is named after its parent's key and every one of its values is one of the parent's keys), then editable;
the schema round-trips through JSON and gives a data dictionary per table. `split_long_table` turns one long
table with a repeated subject key into a subject table and an event table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from fairsynth.metadata.rules import MIN_RULE_SUPPORT, CrossTableRule
from fairsynth.metadata.schema import ID_NAME, NUMERIC_KINDS, TEMPORAL_KINDS, SchemaError, TableSchema

#: names that mark a child's sequence / time column (a visit's day, an event's date)
TIME_NAME = re.compile(
    r"(?i)(^|[_.\s])(day|days|date|time|datetime|hour|hours|minute|minutes|week|weeks|month|months|visit|seq|sequence|order|start|tstart|onset|t)([_.\s]|$)"
)
ORDERED_GROUP_SHARE = 0.95  # share of a child's multi-row groups whose time column must be non-decreasing in file order


class TableEntry(BaseModel):
    """One table of a dataset: its name, its column schema, its primary key and (as a child) its time column."""

    name: str
    table: TableSchema
    primary_key: str | None = None
    sequence: str | None = Field(None, description="the column that orders a child's rows within its parent")


class Relationship(BaseModel):
    """A parent -> child link: every child_key value is one of the parent's parent_key values."""

    parent: str
    parent_key: str
    child: str
    child_key: str


class TableKeys(BaseModel):
    """One table's keys as a person gives them (the UI's keys table, a dataset file's `tables:` entry): a field left
    out keeps the schema's value, an empty one (None or '') clears it."""

    model_config = ConfigDict(extra="forbid")
    name: str
    primary_key: str | None = None
    parent: str | None = Field(None, description="the parent table; the link goes to its primary key")
    foreign_key: str | None = Field(None, description="the column holding the parent's primary key")
    time: str | None = Field(None, description="the column that orders the table's rows within its parent")


class DatasetSchema(BaseModel):
    """Tables, primary keys, relationships (a tree of any depth) and time columns, inferred then editable."""

    tables: list[TableEntry]
    relationships: list[Relationship] = Field(default_factory=list)
    rules: list[CrossTableRule] = Field(
        default_factory=list, description="cross-table rules: a child's column against its parent row's column"
    )
    min_rule_support: int = Field(MIN_RULE_SUPPORT, ge=1, description="child rows a detected cross-table rule holds in")
    warnings: list[str] = Field(default_factory=list)

    # -- inference ----------------------------------------------------------------------------
    @classmethod
    def infer(cls, frames: Mapping[str, pd.DataFrame]) -> DatasetSchema:
        """Keys from uniqueness, names and containment; relationships; a time column per child table."""
        candidates = {name: _key_candidates(frame) for name, frame in frames.items()}
        relationships, warnings = _infer_relationships(frames, candidates)
        keys = {r.parent: r.parent_key for r in relationships}
        tables = []
        for name, frame in frames.items():
            key = keys.get(name) or next(iter(candidates[name]), None)
            entry = TableEntry(name=name, table=TableSchema.infer(frame), primary_key=key)
            parent = next((r for r in relationships if r.child == name), None)
            if parent is not None:
                entry.sequence = _time_column(frame, parent.child_key, entry.table, exclude={key})
            tables.append(entry)
        return cls(tables=tables, relationships=relationships, warnings=warnings).checked()

    # -- access -------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Table names in the dataset's order."""
        return [t.name for t in self.tables]

    def entry(self, name: str) -> TableEntry:
        """One table's entry, or a SchemaError naming the tables there are."""
        for entry in self.tables:
            if entry.name == name:
                return entry
        raise SchemaError(f"No table named '{name}'; the dataset has: {', '.join(self.names)}.")

    def parent_of(self, name: str) -> Relationship | None:
        """The relationship in which the table is the child, if any."""
        return next((r for r in self.relationships if r.child == name), None)

    def children_of(self, name: str) -> list[Relationship]:
        """The relationships in which the table is the parent."""
        return [r for r in self.relationships if r.parent == name]

    def roots(self) -> list[str]:
        """Tables with no parent."""
        return [name for name in self.names if self.parent_of(name) is None]

    def top_down(self) -> list[str]:
        """Every table, each after its parent."""
        order, todo = [], list(self.roots())
        while todo:
            name = todo.pop(0)
            order.append(name)
            todo.extend(r.child for r in self.children_of(name))
        return order

    def key_columns(self, name: str) -> list[str]:
        """A table's own primary key and its foreign key: regenerated, never learned."""
        entry, parent = self.entry(name), self.parent_of(name)
        keys = [entry.primary_key, parent.child_key if parent else None]
        keys += [r.parent_key for r in self.children_of(name)]
        return list(dict.fromkeys(k for k in keys if k))

    def value_table(self, name: str) -> TableSchema:
        """A table's schema with its keys dropped: what it learns and its rules may tie (keys are regenerated)."""
        return self.entry(name).table.with_overrides(drop=self.key_columns(name))

    # -- edits --------------------------------------------------------------------------------
    def with_edits(
        self,
        *,
        primary_keys: Mapping[str, str | None] | None = None,
        relationships: Iterable[Relationship] | None = None,
        sequences: Mapping[str, str | None] | None = None,
    ) -> DatasetSchema:
        """A copy with the user's keys, relationships or time columns; every problem reported at once."""
        edited = self.model_copy(deep=True)
        problems = [
            f"No table named '{name}'."
            for name in {**(primary_keys or {}), **(sequences or {})}
            if name not in self.names
        ]
        if problems:
            raise SchemaError(*problems)
        for name, key in (primary_keys or {}).items():
            edited.entry(name).primary_key = key
        for name, column in (sequences or {}).items():
            edited.entry(name).sequence = column
        if relationships is not None:
            edited.relationships = list(relationships)
            links = {(r.parent, r.child) for r in edited.relationships}
            edited.rules = [rule for rule in edited.rules if (rule.parent, rule.child) in links]
        for entry in edited.tables:  # a column that became a key is regenerated: no rule of its table ties it
            keys = set(edited.key_columns(entry.name))
            entry.table.rules = [rule for rule in entry.table.rules if not keys & set(rule.columns)]
        return edited.checked()

    def with_table_keys(self, keys: Sequence[TableKeys]) -> DatasetSchema:
        """A copy with each table's keys as given (through with_edits); a link goes to its parent's primary key.

        One SchemaError lists every problem: a table or parent the dataset lacks, a parent without a primary key, a
        parent without a foreign key (or the reverse), then with_edits' own (a column a table lacks, a cycle).
        """
        rows = {name: self._key_row(name) for name in self.names}
        problems = [
            f"No table named '{k.name}'; the dataset has: {', '.join(self.names)}." for k in keys if k.name not in rows
        ]
        for k in keys:
            if k.name in rows:
                given = k.model_dump(include=k.model_fields_set - {"name"})
                rows[k.name].update({field: value or None for field, value in given.items()})
        relationships = []
        for child, row in rows.items():
            link, link_problems = _link(child, row, rows)
            problems += link_problems
            relationships += [link] if link else []
        try:
            edited = self.with_edits(
                primary_keys={name: row["primary_key"] for name, row in rows.items()},
                relationships=relationships,
                sequences={name: row["time"] for name, row in rows.items()},
            )
        except SchemaError as exc:
            problems += exc.problems
        if problems:
            raise SchemaError(*problems)
        return edited

    def _key_row(self, name: str) -> dict[str, str | None]:
        """A table's keys now: primary key, parent, foreign key and time column (None for none)."""
        entry, link = self.entry(name), self.parent_of(name)
        return {
            "primary_key": entry.primary_key,
            "parent": link.parent if link else None,
            "foreign_key": link.child_key if link else None,
            "time": entry.sequence,
        }

    def checked(self) -> DatasetSchema:
        """Itself, or one SchemaError listing every unknown table or column, second parent and cycle."""
        problems = []
        columns = {t.name: set(t.table.names) for t in self.tables}
        for entry in self.tables:
            for label, column in (("primary key", entry.primary_key), ("time column", entry.sequence)):
                if column and column not in columns[entry.name]:
                    problems.append(f"Table '{entry.name}' has no column '{column}' for its {label}.")
        for r in self.relationships:
            for table, column in ((r.parent, r.parent_key), (r.child, r.child_key)):
                if table not in columns:
                    problems.append(f"The relationship {_text(r)} names a table '{table}' the dataset lacks.")
                elif column not in columns[table]:
                    problems.append(f"The relationship {_text(r)} names a column '{column}' that '{table}' lacks.")
        children = [r.child for r in self.relationships]
        problems += [
            f"Table '{name}' has more than one parent; keep one."
            for name in sorted(set(children))
            if children.count(name) > 1
        ]
        if not problems and len(self.top_down()) < len(self.tables):
            problems.append("The relationships form a cycle; a dataset's tables must form a tree.")
        problems += [problem for rule in self.rules for problem in self._rule_problems(rule, columns)]
        if problems:
            raise SchemaError(*problems)
        return self

    def _rule_problems(self, rule: CrossTableRule, columns: Mapping[str, set[str]]) -> list[str]:
        """Why a cross-table rule does not fit the dataset: not a child and its parent, or a column it lacks."""
        link = self.parent_of(rule.child)
        if link is None or link.parent != rule.parent:
            return [f"The rule '{rule.text}' ties '{rule.child}' to '{rule.parent}', which is not its parent."]
        return [
            f"The rule '{rule.text}' names a column '{rule.column_of(table)}' that '{table}' lacks."
            for table in (rule.child, rule.parent)
            if rule.column_of(table) not in columns.get(table, set())
        ]

    # -- documents ------------------------------------------------------------------------------
    def to_json(self) -> str:
        """JSON text that from_json reads back to an equal schema."""
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str) -> DatasetSchema:
        """Parse to_json's output (checked)."""
        return cls.model_validate_json(text).checked()

    def data_dictionary(self, name: str) -> pd.DataFrame:
        """One table's data dictionary, with each column's role in the dataset (primary key, foreign key, time)."""
        entry, parent = self.entry(name), self.parent_of(name)
        dictionary = entry.table.data_dictionary()
        roles: dict[str, list[str]] = {column: [] for column in entry.table.names}
        if entry.primary_key:
            roles[entry.primary_key].append("primary key")
        if parent:
            roles[parent.child_key].append(f"foreign key -> {parent.parent}.{parent.parent_key}")
        if entry.sequence:
            roles[entry.sequence].append("time column (orders rows within the parent)")
        dictionary.insert(2, "role", [", ".join(roles[c]) for c in dictionary["column"]])
        return dictionary


def split_long_table(
    data: pd.DataFrame, subject_key: str, *, names: tuple[str, str] = ("subjects", "events")
) -> dict[str, pd.DataFrame]:
    """A subject table (the key and the columns constant within each subject) and an event table (key + the rest)."""
    if subject_key not in data.columns:
        raise SchemaError(f"The table has no column '{subject_key}'; name its subject key.")
    if data[subject_key].isna().any():
        raise SchemaError(f"The subject key '{subject_key}' is missing in some rows; fill or drop them first.")
    groups = data.groupby(subject_key, sort=False, dropna=False)
    constant = [c for c in data.columns if c != subject_key and bool((groups[c].nunique(dropna=False) <= 1).all())]
    subjects = data.drop_duplicates(subject_key)[[subject_key, *constant]].reset_index(drop=True)
    events = data.drop(columns=constant).reset_index(drop=True)
    return {names[0]: subjects, names[1]: events}


def _key_candidates(frame: pd.DataFrame) -> list[str]:
    """Columns that could be the primary key (unique, never missing, not float), best first: named like a key."""
    unique = [
        c
        for c in frame.columns
        if frame[c].notna().all() and frame[c].is_unique and not pd.api.types.is_float_dtype(frame[c])
    ]
    return sorted(unique, key=lambda c: (not ID_NAME.search(str(c)), c.lower() != "id", c.lower() == "rownames"))


def _infer_relationships(
    frames: Mapping[str, pd.DataFrame], candidates: Mapping[str, list[str]]
) -> tuple[list[Relationship], list[str]]:
    """For each table, at most one parent: a column named after another table's key whose values all lie in it."""
    found, warnings = [], []
    for child, frame in frames.items():
        links = [
            Relationship(parent=parent, parent_key=key, child=child, child_key=column)
            for parent in frames
            if parent != child
            for key in candidates[parent]
            for column in frame.columns
            if column not in candidates[child]  # a unique column is its own table's key, not a link (no 1:1 yet)
            and _names_match(column, parent, key)
            and _contained(frame[column], frames[parent][key])
        ]
        if len({link.parent for link in links}) > 1:
            warnings.append(
                f"Table '{child}' fits several parents ({', '.join(sorted({x.parent for x in links}))}); "
                f"'{links[0].parent}' was kept — edit the relationships if another is meant."
            )
        if links:
            found.append(links[0])
    return found, warnings


def _names_match(column: str, parent: str, key: str) -> bool:
    """A foreign key is named as the parent's key, or as the parent's name (singular or plural) plus the key."""

    def plain(text: str) -> str:
        return re.sub(r"[^a-z0-9]", "", text.lower())

    table, singular = plain(parent), plain(parent).removesuffix("s")
    return plain(column) in {plain(key), table + plain(key), singular + plain(key), table + "id", singular + "id"}


def _contained(values: pd.Series, keys: pd.Series) -> bool:
    """True when the column has values and every one of them is a parent key."""
    present = values.dropna()
    if present.empty:
        return False
    if pd.api.types.is_numeric_dtype(present) != pd.api.types.is_numeric_dtype(keys):
        return False
    return bool(present.isin(set(keys)).all())


def _time_column(frame: pd.DataFrame, parent_key: str, table: TableSchema, exclude: set[str | None]) -> str | None:
    """The column named like a time or a date (or of a date kind) that orders rows within most parents."""
    groups = frame.groupby(parent_key, sort=False)
    sizes = groups.size()
    if not (sizes > 1).any():
        return None
    for spec in table.columns:
        if spec.name in exclude or spec.name == parent_key:
            continue
        temporal = spec.kind in TEMPORAL_KINDS
        if not (temporal or (spec.kind in NUMERIC_KINDS and TIME_NAME.search(spec.name))):
            continue
        values = (
            pd.to_datetime(frame[spec.name], errors="coerce")
            if temporal and frame[spec.name].dtype == object
            else frame[spec.name]
        )
        ordered = values.groupby(frame[parent_key], sort=False).apply(lambda v: v.dropna().is_monotonic_increasing)
        varying = values.groupby(frame[parent_key], sort=False).nunique() > 1
        multi = sizes > 1
        if ordered[multi].mean() >= ORDERED_GROUP_SHARE and varying[multi].mean() >= 0.5:
            return spec.name
    return None


def _link(
    child: str, row: Mapping[str, str | None], rows: Mapping[str, Mapping[str, str | None]]
) -> tuple[Relationship | None, list[str]]:
    """The relationship a table's key row asks for (to its parent's primary key), or why there is none."""
    parent, foreign_key = row["parent"], row["foreign_key"]
    if not parent:
        problem = f"Table '{child}' has a foreign key but no parent; choose its parent table."
        return None, [problem] if foreign_key else []
    problems = []
    parent_key = rows[parent]["primary_key"] if parent in rows else None
    if parent not in rows:
        problems.append(f"Table '{child}' names a parent '{parent}' the dataset lacks.")
    elif not parent_key:
        problems.append(f"Table '{child}' has the parent '{parent}', which has no primary key; give it one.")
    if not foreign_key:
        problems.append(f"Table '{child}' has the parent '{parent}' but no foreign key; name the column.")
    if problems or not parent_key or not foreign_key:
        return None, problems
    return Relationship(parent=parent, parent_key=parent_key, child=child, child_key=foreign_key), []


def _text(r: Relationship) -> str:
    return f"{r.parent}.{r.parent_key} -> {r.child}.{r.child_key}"
