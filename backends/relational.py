"""relational: whole synthetic subjects from per-table single-table backends, linked top-down.

Design (docs/architecture.md, "Several tables"):
- Each table is learned by a single-table backend from the registry (tvae by default) on a training frame:
  its own columns without keys, one count column per child table (how many children each row has, learned
  jointly with the row, so conditioned on it), and for a child table its parent's learned columns as
  context, its position within the parent and, for a time column, the gap since the previous row.
- Sampling goes top-down in batches of root rows: a child table's model draws a pool of rows (context
  included); each child slot (a synthetic parent, a position) takes one of the pool rows whose context is
  nearest the synthetic parent's values and position. Columns constant within every parent in the source
  are made constant within each synthetic parent.
- Keys are regenerated (never a real one), every foreign key is a synthetic parent's key, and a time
  column is rebuilt as the first value plus the cumulated non-negative gaps, so rows are in time order.
- An enforced cross-table rule (schema.rules, `visits.date >= patients.admission`) is kept by construction: the
  child's column is also learned as its non-negative distance from the first rule's parent column (for the time
  column: the first row's), rebuilt from the synthetic parent's value, then clipped to every rule's bound.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, cast

import numpy as np
import pandas as pd
from pydantic import Field
from sklearn.neighbors import NearestNeighbors

from fairsynth.backends import registry
from fairsynth.backends.base import (
    BackendError,
    BackendParams,
    Capabilities,
    FitResult,
    Generator,
    NotFittedError,
    Progress,
    ProgressCallback,
)
from fairsynth.backends.dataset import DatasetBatch
from fairsynth.metadata.dataset import DatasetSchema
from fairsynth.metadata.rules import CrossTableRule, Rule, RuleKind
from fairsynth.metadata.schema import (
    TEMPORAL_KINDS,
    UNLEARNED_KINDS,
    ColumnKind,
    ColumnSpec,
    TableSchema,
    column_values,
)

COUNT = "__n__"  # prefix of a row's count of children in one child table
CONTEXT = "__parent__"  # prefix of a parent's column copied onto its children's training rows
POSITION = "__position__"  # a child row's place within its parent (0, 1, ...)
GAP = "__gap__"  # time since the previous row of the same parent (0 on the first row)
START = "__start__"  # the parent's first row's time, on each of its rows: one column each, not one of two meanings
OFFSET = "__offset__"  # prefix of a ruled column's distance from its parent's bound (enforced cross-table rules)
POSITION_WEIGHT = 2.0  # weight of the position against one standardised context column when matching
CONTEXT_LEVELS = 20  # most frequent levels of a categorical context column one-hot encoded for matching
DAY_NS = 86_400 * 10**9
TABLE_EPOCHS, TABLE_BATCH = 30, 500  # each table's training budget (RelationalParams says why)


class RelationalParams(BackendParams):
    """relational: which single-table backend learns each table, and how children are matched to parents."""

    table_backend: str = Field("tvae", description="Single-table backend that learns every table.")
    # measured on pbc and 1,000 / 4,000 nafld subjects (bench_relational): dataset quality within 0.01-0.03 of tvae's
    # early stopping (~100-200 epochs of batches of 128) in a tenth of the time, still 0.05 above SDV's HMA
    epochs: int | None = Field(
        TABLE_EPOCHS, ge=1, description="Epochs for the table backend, when it trains in epochs; empty: its default."
    )
    batch_size: int | None = Field(
        TABLE_BATCH,
        ge=1,
        description="Rows per training step of the table backend, when it takes one; empty: its default.",
    )
    pool_factor: float = Field(3.0, ge=1, description="Pool rows drawn per child row needed, to match parents.")
    match_candidates: int = Field(5, ge=1, description="Nearest pool rows a child slot chooses among at random.")


@dataclass
class _Matcher:
    """Encodes context columns (a parent's values and a position) as numbers for nearest-neighbour matching."""

    numeric: dict[str, tuple[float, float]] = field(default_factory=dict)  # column -> (mean, std)
    levels: dict[str, list[str]] = field(default_factory=dict)  # column -> one-hot levels

    @classmethod
    def fit(cls, context: pd.DataFrame) -> _Matcher:
        """Means and spreads of numeric columns, frequent levels of the others."""
        matcher = cls()
        for name, values in context.items():
            values = _numbers(values)
            if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                std = float(values.std()) if values.notna().sum() > 1 else 1.0
                matcher.numeric[str(name)] = (float(values.mean()), std if std > 0 and np.isfinite(std) else 1.0)
            else:
                matcher.levels[str(name)] = values.astype(str).value_counts().index[:CONTEXT_LEVELS].tolist()
        return matcher

    def encode(self, context: pd.DataFrame, position: np.ndarray) -> np.ndarray:
        """One row of numbers per context row: standardised numbers, one-hot levels, the weighted position."""
        parts = [POSITION_WEIGHT * np.asarray(position, dtype=float)[:, None]]
        for name, (mean, std) in self.numeric.items():
            values = (pd.to_numeric(_numbers(context[name]), errors="coerce").to_numpy(dtype=float) - mean) / std
            parts.append(np.nan_to_num(values, nan=0.0)[:, None])
        for name, levels in self.levels.items():
            text = context[name].astype(str).to_numpy()
            parts.append(np.stack([text == level for level in levels], axis=1).astype(float) / np.sqrt(2))
        return np.hstack(parts)


@dataclass
class _TableModel:
    """What was learned for one table: its generator, its own columns and, as a child, how to match and order."""

    generator: Generator
    own: list[str]  # the table's learned columns, in the source's order
    constant: list[str] = field(default_factory=list)  # columns constant within every parent in the source
    context: list[str] = field(default_factory=list)  # the parent's columns its rows were learned with
    matcher: _Matcher | None = None
    max_children: dict[str, int] = field(default_factory=dict)  # child table -> most children one row had
    temporal: bool = False  # the time column holds dates (learned as days)
    key_start: dict[str, int] = field(default_factory=dict)  # key column -> first synthetic number
    key_prefix: dict[str, str] = field(default_factory=dict)  # text key column -> prefix no real key has


class RelationalGenerator:
    """Whole synthetic subjects: each table from a single-table backend, children matched to synthetic parents."""

    name: ClassVar[str] = "relational"
    capabilities: ClassVar[Capabilities] = Capabilities(
        description="Several related tables: per-table models (tvae by default), children per parent learned "
        "with the parent, child rows matched to synthetic parents, time gaps learned; keys regenerated.",
        license="Apache-2.0",
        family="torch",
        conditional=True,
        model_family="hierarchical per-table generators",
    )
    Params: ClassVar[type[BackendParams]] = RelationalParams
    params: RelationalParams

    def __init__(self, **params: object) -> None:
        self.params = cast(RelationalParams, self.Params.checked(self.name, params))  # relational.dp's too
        self.schema: DatasetSchema | None = None
        self.models: dict[str, _TableModel] = {}
        self.root_rows: dict[str, int] = {}
        self.table_fits: dict[str, FitResult] = {}  # each table's own fit (its epochs, losses, privacy spent)

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """Available wherever its default table backend is."""
        info = registry.backend_info(RelationalParams.model_fields["table_backend"].default)
        return info.available, info.reason

    @classmethod
    def shape_problem(cls, schema: DatasetSchema) -> str | None:
        """None: any tree of tables, of any depth and width."""
        return None

    # -- fit ----------------------------------------------------------------------------------
    def fit(
        self,
        tables: Mapping[str, pd.DataFrame],
        schema: DatasetSchema,
        *,
        seed: int,
        progress: ProgressCallback | None = None,
    ) -> FitResult:
        """Fit one single-table model per table, top-down, on its training frame."""
        start, self.schema, self.models, self.table_fits = time.perf_counter(), schema, {}, {}
        order = schema.top_down()
        for step, name in enumerate(order, start=1):
            frame, model = self._training_frame(tables, name)
            generator = registry.create(self.params.table_backend, **self._table_params(name))
            fitted = generator.fit(frame, _frame_schema(frame, schema, name), seed=seed + step)
            self.table_fits[name] = fitted
            model.generator = generator
            self.models[name] = model
            if progress:
                progress(Progress(self.name, "fit", step, len(order), message=f"table {name}"))
        self.root_rows = {name: len(tables[name]) for name in schema.roots()}
        return FitResult(seconds=time.perf_counter() - start, details={"tables": order})

    def _table_params(self, name: str) -> dict[str, object]:
        """The table backend's parameters for one table (here the same for every table)."""
        takes = registry.params_model(self.params.table_backend).model_fields
        given = {"epochs": self.params.epochs, "batch_size": self.params.batch_size}
        return {k: v for k, v in given.items() if v is not None and k in takes}

    def _training_frame(self, tables: Mapping[str, pd.DataFrame], name: str) -> tuple[pd.DataFrame, _TableModel]:
        """The table's own learned columns, its children counts, and as a child its context, position and gap."""
        schema = self._fitted_schema()
        entry, parent = schema.entry(name), schema.parent_of(name)
        data = tables[name]
        keys = set(schema.key_columns(name))
        own = [c for c in data.columns if c not in keys and c != entry.sequence]
        model = _TableModel(generator=None, own=own)  # type: ignore[arg-type]  # set once fitted
        model.key_start, model.key_prefix = self._key_plan(name, data, keys - {parent.child_key if parent else None})
        if parent is not None:
            data = data[data[parent.child_key].notna()]
            if entry.sequence:
                data = data.sort_values([parent.child_key, entry.sequence], kind="stable")
        frame = data[own].reset_index(drop=True)
        for link in schema.children_of(name):
            counts = tables[link.child].groupby(link.child_key).size()
            frame[COUNT + link.child] = data[link.parent_key].map(counts).fillna(0).astype(int).to_numpy()
            model.max_children[link.child] = self._count_limit(frame[COUNT + link.child])
        if parent is None:
            return frame, model
        groups = data[parent.child_key].to_numpy()
        frame[POSITION] = data.groupby(parent.child_key, sort=False).cumcount().to_numpy()
        if entry.sequence:
            model.temporal = entry.table.column(entry.sequence).kind in TEMPORAL_KINDS
            times = _as_number(data[entry.sequence], model.temporal)
            gaps = times.groupby(groups, sort=False).diff()
            frame[GAP] = gaps.fillna(0.0).to_numpy()
            frame[START] = times.groupby(groups, sort=False).transform("first").to_numpy()
        model.constant = self._constant_columns(data, parent.child_key, own)
        for column, offset in rule_offsets(schema, name, data, frame, tables[parent.parent]).items():
            frame[OFFSET + column] = offset
        parent_data = tables[parent.parent]
        model.context = [c for c in self.models[parent.parent].own if _learned(schema, parent.parent, c)]
        rows = pd.Index(parent_data[parent.parent_key]).get_indexer(groups)
        context = parent_data[model.context].iloc[rows].reset_index(drop=True)
        model.matcher = self._matcher(context)
        for column in model.context:
            frame[CONTEXT + column] = context[column].to_numpy()
        return frame, model

    # what the fit measures on the training rows; the DP variant (relational_dp.py) measures none of them there
    def _key_plan(self, name: str, data: pd.DataFrame, keys: set[str | None]) -> tuple[dict[str, int], dict[str, str]]:
        """Where the table's fresh keys start: above every real key."""
        return key_plan(data, keys)

    def _count_limit(self, counts: pd.Series) -> int:
        """The most children a synthetic row may get: the most a real row had."""
        return int(counts.max())

    def _constant_columns(self, data: pd.DataFrame, key: str, columns: list[str]) -> list[str]:
        """Columns kept constant within each synthetic parent: those constant within every real one."""
        return constant_within(data, key, columns)

    def _matcher(self, context: pd.DataFrame) -> _Matcher | None:
        """The child slots' matcher, scaled on the real parents' values."""
        return _Matcher.fit(context)

    # -- save / load (backends/relational_state.py) ---------------------------------------------
    def save(self, directory: Path) -> None:
        """Every table's generator by its own save() and the fitted state as JSON (nothing pickled here)."""
        from fairsynth.backends import relational_state  # it imports this module

        relational_state.save(self, Path(directory))

    @classmethod
    def load(cls, directory: Path) -> RelationalGenerator:
        """A fitted generator from save()'s folder; it samples what the saved one would for a seed."""
        from fairsynth.backends import relational_state  # it imports this module

        return relational_state.load(cls, Path(directory))

    # -- sample -------------------------------------------------------------------------------
    def sample(self, n_subjects: int, *, seed: int, batch_subjects: int = 1_000) -> Iterator[DatasetBatch]:
        """Batches of whole subjects: n_subjects rows of the (first) root table with every descendant."""
        schema = self._fitted_schema()
        if n_subjects < 0:
            raise BackendError(f"Cannot sample {n_subjects} subjects; ask for zero or more.")
        rng = np.random.default_rng(seed)
        first = schema.roots()[0]
        counters = dict.fromkeys(schema.names, 0)
        done = 0
        while done < n_subjects:
            size = min(max(1, batch_subjects), n_subjects - done)
            batch: DatasetBatch = {}
            for root in schema.roots():
                n_root = size if root == first else round(size * self.root_rows[root] / self.root_rows[first])
                batch[root] = self._draw(root, n_root, rng)
            for name in schema.top_down():
                link = schema.parent_of(name)
                if link is not None:
                    batch[name] = self._children(name, batch[link.parent], rng)
                batch[name] = self._with_keys(name, batch[name], counters)
            for name in schema.top_down():
                link = schema.parent_of(name)
                if link is not None:
                    batch[name] = self._linked(name, batch[name], batch[link.parent])
            yield {name: self._output(name, frame) for name, frame in batch.items()}
            done += size

    def _draw(self, name: str, n_rows: int, rng: np.random.Generator) -> pd.DataFrame:
        generator = self.models[name].generator
        seed = int(rng.integers(0, 2**31 - 1))
        frames = list(generator.sample(n_rows, seed=seed)) if n_rows else []
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def _children(self, name: str, parents: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        """Child rows for synthetic parents: a count per parent, each slot matched to a pool row of similar context."""
        model, link = self.models[name], self._fitted_schema().parent_of(name)
        assert link is not None and model.matcher is not None
        limit = self.models[link.parent].max_children[name]
        counts = pd.to_numeric(parents[COUNT + name], errors="coerce").fillna(0).round().clip(0, limit).astype(int)
        owner = np.repeat(np.arange(len(parents)), counts.to_numpy())
        if not len(owner):
            return pd.DataFrame(columns=[*model.own, "__owner__"])
        position = np.concatenate([np.arange(n) for n in counts.to_numpy() if n])
        pool = self._draw(name, int(np.ceil(len(owner) * self.params.pool_factor)), rng)
        pool_context = pool[[CONTEXT + c for c in model.context]].set_axis(model.context, axis=1)
        k = min(self.params.match_candidates, len(pool))
        finder = NearestNeighbors(n_neighbors=k).fit(model.matcher.encode(pool_context, pool[POSITION]))
        targets = model.matcher.encode(parents[model.context].iloc[owner].reset_index(drop=True), position)
        nearest = finder.kneighbors(targets, return_distance=False)
        chosen = nearest[np.arange(len(owner)), rng.integers(0, k, len(owner))]
        children = pool.iloc[chosen].reset_index(drop=True)
        children[POSITION], children["__owner__"] = position, owner
        for column in model.constant:  # a value constant within each parent in the source stays so
            children[column] = children.groupby("__owner__")[column].transform("first")
        return children

    def _with_keys(self, name: str, frame: pd.DataFrame, counters: dict[str, int]) -> pd.DataFrame:
        """Fresh keys numbered on across batches, from a number (or with a prefix) no real key has."""
        model, n = self.models[name], len(frame)
        numbers = np.arange(counters[name], counters[name] + n)
        counters[name] += n
        for column, start in model.key_start.items():
            frame[column] = start + numbers
        for column, prefix in model.key_prefix.items():
            frame[column] = [f"{prefix}{i + 1}" for i in numbers]
        return frame

    def _linked(self, name: str, children: pd.DataFrame, parents: pd.DataFrame) -> pd.DataFrame:
        """The foreign key from each child's synthetic parent; the time column from cumulated gaps."""
        schema = self._fitted_schema()
        link, entry, model = schema.parent_of(name), schema.entry(name), self.models[name]
        assert link is not None
        if children.empty:
            return pd.DataFrame(columns=entry.table.names)
        owner = children["__owner__"].to_numpy(dtype=int)
        children[link.child_key] = parents[link.parent_key].to_numpy()[owner] if len(owner) else []
        if entry.sequence:
            gaps = pd.to_numeric(children[GAP], errors="coerce").fillna(0.0).clip(lower=0)  # never going back
            starts = pd.to_numeric(children[START], errors="coerce").fillna(0.0)
            steps = np.where(children[POSITION].to_numpy() == 0, starts, gaps)  # the first row's start, then gaps
            times = pd.Series(steps).groupby(owner).cumsum()
            children[entry.sequence] = _from_number(times, model.temporal, entry.table.column(entry.sequence).kind)
        children = within_rules(schema, name, children, parents, model.constant)
        return kept_table_orders(schema, name, children, model.constant)

    def _output(self, name: str, frame: pd.DataFrame) -> pd.DataFrame:
        """The table's columns in the source's order, without the generator's helper columns."""
        entry = self._fitted_schema().entry(name)
        return frame.reindex(columns=entry.table.names)

    def _fitted_schema(self) -> DatasetSchema:
        if self.schema is None:
            raise NotFittedError(f"Backend '{self.name}' has not been fitted; call fit() first.")
        return self.schema


def _frame_schema(frame: pd.DataFrame, schema: DatasetSchema, name: str) -> TableSchema:
    """The training frame's schema: the table's own and its parent's (context) column specs as the dataset schema
    has them, only the helper columns inferred (numeric). Inferring the known columns again cost a fifth of a
    small dataset's fit."""
    table, parent = schema.entry(name).table, schema.parent_of(name)
    known = {c.name: c for c in table.columns}
    if parent is not None:
        known |= {
            CONTEXT + c.name: c.model_copy(update={"name": CONTEXT + c.name})
            for c in schema.entry(parent.parent).table.columns
        }
    helpers = [c for c in frame.columns if c not in known]
    inferred = TableSchema.infer(frame[helpers]) if helpers else None
    columns = [known[c] if c in known else _helper_spec(inferred.column(c)) for c in frame.columns]  # type: ignore[union-attr]
    framed = TableSchema(columns=columns, n_rows=len(frame), rules=frame_rules(table, frame))
    return framed.with_level_rule(frame, table.min_level_rows)


def _helper_spec(spec: ColumnSpec) -> ColumnSpec:
    """A helper column's spec: a count or position is an integer, a time gap, start or offset a float."""
    real = spec.name in (GAP, START) or spec.name.startswith(OFFSET)
    return spec.model_copy(update={"kind": ColumnKind.FLOAT if real else ColumnKind.INTEGER})


# -- rules within one table ----------------------------------------------------------------------------
def frame_rules(table: TableSchema, frame: pd.DataFrame) -> list[Rule]:
    """The table's rules on columns its training frame holds: the table backend's codec keeps the enforced ones as it
    does for one table (a rule on the time column, rebuilt from gaps, is kept by kept_table_orders instead)."""
    return [rule for rule in table.rules if set(rule.columns) <= set(frame.columns)]


def kept_table_orders(schema: DatasetSchema, name: str, children: pd.DataFrame, constant: list[str]) -> pd.DataFrame:
    """The table's enforced order rules kept once columns were rebuilt after sampling (the time column, columns
    constant within a parent, columns under a cross-table bound): the rule's other column is moved to the rebuilt
    one (per parent where it is constant, so it stays constant); a rule between two rebuilt columns is measured."""
    entry = schema.entry(name)
    fixed = {entry.sequence, *enforced_bounds(schema, name)}
    owner = children["__owner__"].to_numpy(dtype=int)
    for rule in entry.table.rules:
        if rule.kind != RuleKind.ORDER or not rule.enforced or not (fixed | set(constant)) & set(rule.columns):
            continue
        low, high = rule.columns
        if high in fixed and low in fixed:
            continue
        moved, bound = (low, high) if high in fixed else (high, low)
        spec = entry.table.column(moved)
        limit = column_values(children[bound], entry.table.column(bound)).to_numpy(dtype=float)
        if moved in constant:
            limit = pd.Series(limit).groupby(owner).transform("min" if moved == low else "max").to_numpy()
        values = column_values(children[moved], spec).to_numpy(dtype=float)
        values = _clipped(values, limit, spec, below=moved == low, strict=rule.strict)
        children[moved] = _from_number(pd.Series(values), spec.kind in TEMPORAL_KINDS, spec.kind)
    return children


# -- enforced cross-table rules ------------------------------------------------------------------------
def enforced_bounds(schema: DatasetSchema, name: str) -> dict[str, list[CrossTableRule]]:
    """A child table's columns under enforced cross-table rules, each with its rules (the first one learned as an
    offset); every rule on a column its table learns."""
    bounds: dict[str, list[CrossTableRule]] = {}
    for rule in schema.rules:
        if rule.child == name and rule.enforced:
            bounds.setdefault(rule.column_of(name), []).append(rule)
    return bounds


def rule_offsets(
    schema: DatasetSchema, name: str, data: pd.DataFrame, frame: pd.DataFrame, parent_data: pd.DataFrame
) -> dict[str, np.ndarray]:
    """Per ruled column, its distance from the first rule's parent column on each training row (above a lower
    bound, below an upper one: non-negative where the rule holds); the time column's is its first row's (START)."""
    entry, link = schema.entry(name), schema.parent_of(name)
    assert link is not None
    offsets = {}
    for column, rules in enforced_bounds(schema, name).items():
        bound = _parent_numbers(parent_data, link.parent_key, data[link.child_key], schema, rules[0])
        if column == entry.sequence:
            values = frame[START].to_numpy(dtype=float)
        else:
            values = column_values(data[column], entry.table.column(column)).to_numpy(dtype=float)
        offsets[column] = bound - values if rules[0].child_is_low else values - bound
    return offsets


def within_rules(
    schema: DatasetSchema, name: str, children: pd.DataFrame, parents: pd.DataFrame, constant: list[str]
) -> pd.DataFrame:
    """Each ruled column rebuilt from its synthetic parent's bound and the learned offset (kept where the offset
    is missing), then clipped to every enforced rule's bound: the rules hold in every row; a time column is moved
    whole, so its order stays."""
    entry, link = schema.entry(name), schema.parent_of(name)
    assert link is not None
    parent_rows = children["__owner__"].to_numpy(dtype=int)
    keys = parents[link.parent_key].iloc[parent_rows]
    for column, rules in enforced_bounds(schema, name).items():
        spec = entry.table.column(column)
        values = column_values(children[column], spec).to_numpy(dtype=float)
        offsets = pd.to_numeric(children[OFFSET + column], errors="coerce").clip(lower=0)
        if column in constant or column == entry.sequence:  # one offset per parent keeps the column's shape
            offsets = offsets.groupby(parent_rows).transform("first")
        first = rules[0]
        bound = _parent_numbers(parents, link.parent_key, keys, schema, first)
        rebuilt = bound - offsets.to_numpy() if first.child_is_low else bound + offsets.to_numpy()
        if column == entry.sequence:  # shift each parent's times so that its first one is the rebuilt start
            shift = pd.Series(rebuilt - values).groupby(parent_rows).transform("first").to_numpy()
            rebuilt = values + shift
        elif not np.isnan(values).all():  # within the range the model drew (a status code 0-2 stays one)
            rebuilt = np.clip(rebuilt, np.nanmin(values), np.nanmax(values))
        values = np.where(np.isnan(rebuilt), values, rebuilt)
        for rule in rules:
            bound = _parent_numbers(parents, link.parent_key, keys, schema, rule)
            values = _clipped(values, bound, spec, below=rule.child_is_low, strict=rule.strict)
        children[column] = _from_number(pd.Series(values), spec.kind in TEMPORAL_KINDS, spec.kind)
    return children


def _parent_numbers(
    parents: pd.DataFrame, key: str, child_keys: pd.Series, schema: DatasetSchema, rule: CrossTableRule
) -> np.ndarray:
    """The rule's parent column (days for dates) on each child row, found by the child's foreign key."""
    column = rule.column_of(rule.parent)
    values = column_values(parents[column], schema.entry(rule.parent).table.column(column)).to_numpy(dtype=float)
    rows = pd.Index(parents[key]).get_indexer(child_keys)
    return np.where(rows >= 0, values[rows], np.nan)


def _clipped(values: np.ndarray, bound: np.ndarray, spec: ColumnSpec, *, below: bool, strict: bool) -> np.ndarray:
    """Values kept at or below the bound (below) or at or above it, one step past it when strict; whole numbers and
    dates stay whole."""
    whole = spec.kind in (ColumnKind.INTEGER, ColumnKind.DATE)
    step = (1.0 if whole else np.abs(bound) * 1e-12 + 1e-12) if strict else 0.0
    limit = bound - step if below else bound + step
    if whole:
        values, limit = np.round(values), np.floor(limit) if below else np.ceil(limit)
    clip = np.fmin if below else np.fmax  # fmin/fmax: a missing bound leaves the value
    return np.where(np.isnan(values), values, clip(values, limit))


def _numbers(values: pd.Series) -> pd.Series:
    """Dates as days, so the matcher measures them as numbers; other columns as they are."""
    return _as_number(values, temporal=True) if pd.api.types.is_datetime64_any_dtype(values) else values


def _learned(schema: DatasetSchema, table: str, column: str) -> bool:
    return schema.entry(table).table.column(column).kind not in UNLEARNED_KINDS


def constant_within(data: pd.DataFrame, key: str, columns: list[str]) -> list[str]:
    """Columns with one value within each parent that has several rows (e.g. a patient's sex on every visit)."""
    groups = data.groupby(key, sort=False)
    if not (groups.size() > 1).any():
        return []
    return [c for c in columns if bool((groups[c].nunique(dropna=False) <= 1).all())]


def key_plan(data: pd.DataFrame, keys: set[str | None]) -> tuple[dict[str, int], dict[str, str]]:
    """Per key column: a first number above every real one (a power of ten), or a text prefix no real key has."""
    starts, prefixes = {}, {}
    for column in sorted(k for k in keys if k):
        values = data[column].dropna()
        if pd.api.types.is_integer_dtype(values):
            top = int(values.abs().max()) if len(values) else 0
            starts[column] = 10 ** len(str(top))
        else:
            prefix = "S"
            while values.astype(str).str.startswith(prefix).any():
                prefix += "S"
            prefixes[column] = prefix
    return starts, prefixes


def _as_number(values: pd.Series, temporal: bool) -> pd.Series:
    """A time column as numbers: days for dates, the values otherwise."""
    if temporal:
        return pd.Series(
            pd.to_datetime(values, errors="coerce").to_numpy().astype("datetime64[ns]").astype("int64") / DAY_NS,
            index=values.index,
        ).where(values.notna())
    return pd.to_numeric(values, errors="coerce")


def _from_number(times: pd.Series, temporal: bool, kind: ColumnKind) -> pd.Series:
    """Days back to dates (a date column without a time of day), numbers rounded as integers when they were."""
    if temporal:
        stamps = pd.to_datetime(times * DAY_NS, unit="ns")
        return stamps.dt.normalize() if kind == ColumnKind.DATE else stamps
    return times.round().astype("Int64") if kind == ColumnKind.INTEGER else times
