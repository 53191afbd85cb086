"""Adapters for SDV 2.0's dataset synthesizers: HMA (several tables) and PAR (subjects with one sequence table).

Both learn from SDV metadata built from the DatasetSchema by `sdv_metadata` (keys, relationships, column
kinds), sample whole subjects in batches, and hand back every table with fresh keys: each batch's keys are
renumbered on from a number (or with a text prefix) no real key has, and each foreign key is mapped to its
synthetic parent's new key, so no real key is written and every child's parent exists. Columns fairsynth
never learns (free text, PII, identifiers that are not keys) are withheld: written empty.

SDV's community HMA takes at most five tables and one level of children (its own limits); PAR takes one
subject table with one child table. A dataset of another shape is refused at fit with one sentence.
Fitted SDV models are not saved (SDV persists only pickles, which fairsynth never writes): as the one-table SDV
backends, save() writes the parameters, the schema and MODEL_NOT_SAVED.txt saying so; load() refuses.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import Field

from fairsynth.backends.base import (
    BackendError,
    BackendParams,
    Capabilities,
    Epochs,
    FitResult,
    NotFittedError,
    Progress,
    ProgressCallback,
)
from fairsynth.backends.dataset import DatasetBatch
from fairsynth.backends.relational import constant_within, key_plan
from fairsynth.backends.sdv import SDV_LICENSE, SDV_URL, model_not_kept, sdv_availability, write_model_not_saved
from fairsynth.metadata.dataset import DatasetSchema
from fairsynth.metadata.schema import NUMERIC_KINDS, TEMPORAL_KINDS, ColumnKind, ColumnSpec

HMA_MAX_TABLES = 5  # SDV community HMASynthesizer's own limits (sdv.multi_table.hma._validate_schema_complexity)
HMA_MAX_DEPTH = 2  # tables in the longest parent -> child chain
CONTEXT = "__subject__"  # prefix of a subject's column carried on its sequence rows as PAR context
SDTYPES = {
    ColumnKind.INTEGER: "numerical",
    ColumnKind.FLOAT: "numerical",
    ColumnKind.BOOLEAN: "categorical",  # SDV's boolean sdtype refuses 0/1 columns; as levels they come back as written
    ColumnKind.CATEGORICAL: "categorical",
    ColumnKind.DATETIME: "datetime",
    ColumnKind.DATE: "datetime",
}


def sdv_metadata(schema: DatasetSchema):
    """SDV's multi-table Metadata for the dataset: key columns as ids, learned columns by kind, the relationships."""
    from sdv.metadata import Metadata

    tables: dict[str, dict[str, Any]] = {}
    for entry in schema.tables:
        keys = schema.key_columns(entry.name)
        columns = {key: {"sdtype": "id"} for key in keys}
        columns |= {c.name: {"sdtype": SDTYPES[c.kind]} for c in entry.table.columns if _modelled(c, keys)}
        table: dict[str, Any] = {"columns": columns}
        primary = next((r.parent_key for r in schema.children_of(entry.name)), entry.primary_key)
        if primary:
            table["primary_key"] = primary
        tables[entry.name] = table
    relationships = [
        {
            "parent_table_name": r.parent,
            "parent_primary_key": r.parent_key,
            "child_table_name": r.child,
            "child_foreign_key": r.child_key,
        }
        for r in schema.relationships
    ]
    return Metadata.load_from_dict({"tables": tables, "relationships": relationships})


def _modelled(spec: ColumnSpec, keys: list[str]) -> bool:
    """A column SDV learns: not a key, not dropped, of a kind fairsynth learns."""
    return spec.name not in keys and spec.learned and spec.kind in SDTYPES


def _regenerated(schema: DatasetSchema, name: str) -> set[str | None]:
    """A table's columns numbered afresh: its own keys and identifiers (its foreign key follows its parent)."""
    parent, table = schema.parent_of(name), schema.entry(name).table
    identifiers = {c.name for c in table.columns if c.kind in (ColumnKind.IDENTIFIER, ColumnKind.SUBJECT_KEY)}
    return (set(schema.key_columns(name)) | identifiers) - {parent.child_key if parent else None}


def _depth(schema: DatasetSchema) -> int:
    """Tables in the longest parent -> child chain."""

    def below(name: str) -> int:
        return 1 + max((below(r.child) for r in schema.children_of(name)), default=0)

    return max(below(root) for root in schema.roots())


class HMAParams(BackendParams):
    """sdv.hma: SDV's defaults (Gaussian copulas per table, normal distributions for child tables)."""


class PARParams(BackendParams):
    """sdv.par: the sequence model's training length."""

    epochs: Epochs = Field(128, description="Passes over the training sequences (SDV's default 128).")


class _SDVDatasetGenerator:
    """Common adapter: tables prepared for SDV, sampling in batches of subjects, keys renumbered, columns restored."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    Params: ClassVar[type[BackendParams]]
    params: BackendParams
    draws_in_order: ClassVar[bool]  # the model draws a parent's children in time order (else they are sorted)

    def __init__(self, **params: object) -> None:
        self.params = self.Params.checked(self.name, params)
        self.schema: DatasetSchema | None = None
        self._synthesizer: Any = None
        self._key_starts: dict[str, dict[str, int]] = {}
        self._key_prefixes: dict[str, dict[str, str]] = {}

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """SDV is an optional extra."""
        return sdv_availability()

    @classmethod
    def shape_problem(cls, schema: DatasetSchema) -> str | None:
        """Why the synthesizer cannot take a dataset of this shape, in one sentence; None when it can."""
        raise NotImplementedError

    def fit(
        self,
        tables: Mapping[str, pd.DataFrame],
        schema: DatasetSchema,
        *,
        seed: int,
        progress: ProgressCallback | None = None,
    ) -> FitResult:
        """Fit SDV's synthesizer on the tables (children without a parent left out), keys planned afresh."""
        problem = self.shape_problem(schema)
        if problem:
            raise BackendError(problem)
        start, self.schema = time.perf_counter(), schema
        for name in schema.names:
            plan = key_plan(tables[name], _regenerated(schema, name))
            self._key_starts[name], self._key_prefixes[name] = plan
        import torch

        np.random.seed(seed)
        torch.manual_seed(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._fit(_prepared(tables, schema), schema)
        if progress:
            progress(Progress(self.name, "fit", 1, 1, seconds=time.perf_counter() - start))
        return FitResult(seconds=time.perf_counter() - start)

    def sample(self, n_subjects: int, *, seed: int, batch_subjects: int = 1_000) -> Iterator[DatasetBatch]:
        """Batches of whole subjects, keys numbered on across batches, each parent's rows together in time order."""
        schema = self._fitted_schema()
        if n_subjects < 0:
            raise BackendError(f"Cannot sample {n_subjects} subjects; ask for zero or more.")
        counters = dict.fromkeys(schema.names, 0)
        done, step = 0, 0
        while done < n_subjects:
            size = min(max(1, batch_subjects), n_subjects - done)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                batch = self._draw(size, seed + step)
            yield self._restored(self._renumbered(batch, counters))
            done, step = done + size, step + 1

    def save(self, directory: Path) -> None:
        """The parameters and the schema; the fitted SDV model is not kept (pickles only): MODEL_NOT_SAVED.txt."""
        schema = self._fitted_schema()
        write_model_not_saved(self.name, directory)
        backend = {"backend": self.name, "params": self.params.model_dump(mode="json")}
        (directory / "backend.json").write_text(json.dumps(backend, indent=2))
        (directory / "dataset.json").write_text(schema.to_json())

    @classmethod
    def load(cls, directory: Path) -> _SDVDatasetGenerator:
        """Refused: SDV's fitted models are not kept; fit again with the same seed for the same rows."""
        raise model_not_kept(cls.name)

    def _fit(self, tables: dict[str, pd.DataFrame], schema: DatasetSchema) -> None:
        raise NotImplementedError

    def _draw(self, n_subjects: int, seed: int) -> DatasetBatch:
        """One batch in SDV's own key space: every table, keyed as SDV made them."""
        raise NotImplementedError

    def _renumbered(self, batch: DatasetBatch, counters: dict[str, int]) -> DatasetBatch:
        """Fresh keys numbered on across batches; each foreign key mapped to its parent's fresh key."""
        schema = self._fitted_schema()
        fresh: dict[str, pd.Series] = {}  # table -> its parent key's fresh value, indexed by SDV's value
        for name in schema.top_down():
            frame, link = batch[name], schema.parent_of(name)
            if link is not None:
                frame = frame.assign(**{link.child_key: frame[link.child_key].map(fresh[link.parent])})
                frame = frame[frame[link.child_key].notna()]
                sequence = schema.entry(name).sequence
                if sequence and not self.draws_in_order:
                    frame = frame.sort_values([link.child_key, sequence], kind="stable")
            frame = frame.reset_index(drop=True)
            numbers = np.arange(counters[name], counters[name] + len(frame))
            counters[name] += len(frame)
            children = schema.children_of(name)  # every child links to one parent key: SDV's primary key
            parent_key = children[0].parent_key if children else None
            drawn = frame[parent_key].to_numpy() if parent_key else None
            for column, start in self._key_starts[name].items():
                frame[column] = start + numbers
            for column, prefix in self._key_prefixes[name].items():
                frame[column] = [f"{prefix}{i + 1}" for i in numbers]
            if parent_key:
                fresh[name] = pd.Series(frame[parent_key].to_numpy(), index=drawn)
            batch[name] = frame
        return batch

    def _restored(self, batch: DatasetBatch) -> DatasetBatch:
        """Every table with the source's columns in order (withheld ones empty), dates without a time if so."""
        schema = self._fitted_schema()
        out = {}
        for name, frame in batch.items():
            table = schema.entry(name).table
            frame = frame.reindex(columns=table.names)
            for spec in table.columns:
                if spec.kind == ColumnKind.DATE and pd.api.types.is_datetime64_any_dtype(frame[spec.name]):
                    frame[spec.name] = frame[spec.name].dt.normalize()
            out[name] = frame
        return out

    def _fitted_schema(self) -> DatasetSchema:
        if self.schema is None or self._synthesizer is None:
            raise NotFittedError(f"Backend '{self.name}' has not been fitted; call fit() first.")
        return self.schema


class HMAGenerator(_SDVDatasetGenerator):
    """SDV's HMASynthesizer: Gaussian copulas per table, each parent row carrying its children's parameters."""

    name: ClassVar[str] = "sdv.hma"
    capabilities: ClassVar[Capabilities] = Capabilities(
        description="SDV's hierarchical modelling algorithm (HMA): per-table Gaussian copulas, a parent's rows "
        f"carrying its children's distributions; at most {HMA_MAX_TABLES} tables, one level of children.",
        license=SDV_LICENSE,
        family="sdv",
        url=SDV_URL,
        package="sdv",
        model_family="hierarchical Gaussian copulas",
    )
    Params: ClassVar[type[BackendParams]] = HMAParams
    params: HMAParams
    draws_in_order: ClassVar[bool] = False  # a parent's children are drawn independently: sorting loses nothing

    @classmethod
    def shape_problem(cls, schema: DatasetSchema) -> str | None:
        """SDV's community HMA takes at most five tables and one level of children."""
        if len(schema.tables) > HMA_MAX_TABLES or _depth(schema) > HMA_MAX_DEPTH:
            return (
                f"sdv.hma takes at most {HMA_MAX_TABLES} tables and one level of children (SDV's own limit); "
                f"this dataset has {len(schema.tables)} tables {_depth(schema)} levels deep: use the relational "
                "backend."
            )
        return None

    def _fit(self, tables: dict[str, pd.DataFrame], schema: DatasetSchema) -> None:
        from sdv.multi_table import HMASynthesizer

        self._synthesizer = HMASynthesizer(sdv_metadata(schema), verbose=False)
        self._synthesizer.fit(tables)

    def _draw(self, n_subjects: int, seed: int) -> DatasetBatch:
        self._synthesizer.reset_sampling()
        self._synthesizer._numpy_seed = seed  # HMA samples under this numpy seed (no public seeding in SDV 2.0)
        return self._synthesizer.sample(n_subjects, main_table_name=self._fitted_schema().roots()[0])


class PARGenerator(_SDVDatasetGenerator):
    """SDV's PARSynthesizer: a subject table as context, its one child table as the subject's sequence."""

    name: ClassVar[str] = "sdv.par"
    capabilities: ClassVar[Capabilities] = Capabilities(
        description="SDV's probabilistic autoregressive model (PAR): one subject table and one time-ordered "
        "child table; each subject's rows drawn in sequence. Subjects without child rows are not generated.",
        license=SDV_LICENSE,
        family="sdv",
        url=SDV_URL,
        conditional=True,
        package="sdv",
        model_family="autoregressive recurrent network",
    )
    Params: ClassVar[type[BackendParams]] = PARParams
    params: PARParams
    draws_in_order: ClassVar[bool] = True  # time steps are learned non-negative gaps, clipped to the real range

    @classmethod
    def shape_problem(cls, schema: DatasetSchema) -> str | None:
        """PAR takes exactly two tables: a subject table and one child table of its rows in sequence."""
        if len(schema.tables) != 2 or len(schema.relationships) != 1:
            return (
                "sdv.par takes one subject table with one child table (its rows in sequence); this dataset has "
                f"{len(schema.tables)} tables and {len(schema.relationships)} relationships: use sdv.hma or "
                "relational."
            )
        return None

    def _fit(self, tables: dict[str, pd.DataFrame], schema: DatasetSchema) -> None:
        from sdv.metadata import Metadata
        from sdv.sequential import PARSynthesizer

        link = schema.relationships[0]
        sequence = schema.entry(link.child).sequence
        described = sdv_metadata(schema).to_dict()["tables"]
        own = {c: v for c, v in described[link.child]["columns"].items() if v["sdtype"] != "id"}
        subject = {CONTEXT + c: v for c, v in described[link.parent]["columns"].items() if v["sdtype"] != "id"}
        columns = {link.child_key: {"sdtype": "id"}, **own, **subject}
        table: dict[str, Any] = {"columns": columns, "sequence_key": link.child_key}
        if sequence:
            table["sequence_index"] = sequence
        metadata = Metadata.load_from_dict({"tables": {link.child: table}})
        subjects = tables[link.parent].set_index(link.parent_key)
        rows = tables[link.child].sort_values([link.child_key, *([sequence] if sequence else [])], kind="stable")
        for column in subject:
            rows[column] = rows[link.child_key].map(subjects[column.removeprefix(CONTEXT)])
        # the subject's columns and the child's columns constant within every subject are PAR's context
        context = [*subject, *constant_within(rows, link.child_key, [c for c in own if c != sequence])]
        self._synthesizer = PARSynthesizer(metadata, context_columns=context, epochs=self.params.epochs, verbose=False)
        self._synthesizer.fit({link.child: rows[list(columns)].reset_index(drop=True)})

    def _draw(self, n_subjects: int, seed: int) -> DatasetBatch:
        import torch

        link = self._fitted_schema().relationships[0]
        np.random.seed(seed)
        torch.manual_seed(seed)
        self._synthesizer._context_synthesizer._set_random_state(seed)
        rows = self._synthesizer.sample_sequences(n_subjects)[link.child]
        context = [c for c in rows.columns if c.startswith(CONTEXT)]
        subjects = rows.groupby(link.child_key, sort=False)[context].first().reset_index()
        subjects = subjects.rename(
            columns={link.child_key: link.parent_key, **{c: c.removeprefix(CONTEXT) for c in context}}
        )
        return {link.parent: subjects, link.child: rows.drop(columns=context)}


def _prepared(tables: Mapping[str, pd.DataFrame], schema: DatasetSchema) -> dict[str, pd.DataFrame]:
    """Each table as SDV takes it: its keys and learned columns, dates parsed, children without a parent left out."""
    prepared = {}
    for name in schema.top_down():
        entry, keys, link = schema.entry(name), schema.key_columns(name), schema.parent_of(name)
        columns = [c.name for c in entry.table.columns if c.name in keys or _modelled(c, keys)]
        frame = tables[name][columns].copy()
        if link is not None:
            frame = frame[frame[link.child_key].isin(set(prepared[link.parent][link.parent_key]))]
        for spec in entry.table.columns:
            if spec.name in columns and spec.kind in TEMPORAL_KINDS:
                frame[spec.name] = pd.to_datetime(frame[spec.name], format=spec.datetime_format, errors="coerce")
            elif spec.name in columns and spec.kind in NUMERIC_KINDS:
                frame[spec.name] = pd.to_numeric(frame[spec.name], errors="coerce")
        prepared[name] = frame.reset_index(drop=True)
    return prepared
