"""The contract of a backend that takes a dataset (several related tables) rather than one table.

Such backends are declared in the entry-point group `fairsynth.dataset_backends` (registry.DATASET_GROUP),
so the single-table listings never offer them and the dataset commands offer only them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import ClassVar, Protocol, cast, runtime_checkable

import pandas as pd

from fairsynth.backends import registry
from fairsynth.backends.base import BackendParams, Capabilities, FitResult, ProgressCallback
from fairsynth.metadata.dataset import DatasetSchema

DatasetBatch = dict[str, pd.DataFrame]  # table name -> the synthetic rows of one batch of subjects


@runtime_checkable
class DatasetGenerator(Protocol):
    """A generator of whole synthetic subjects: root rows with every descendant row, keys regenerated."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    Params: ClassVar[type[BackendParams]]
    params: BackendParams

    @classmethod
    def shape_problem(cls, schema: DatasetSchema) -> str | None:
        """Why the backend cannot take a dataset of this shape (tables, depth), in one sentence; None if it can."""
        ...

    def fit(
        self,
        tables: Mapping[str, pd.DataFrame],
        schema: DatasetSchema,
        *,
        seed: int,
        progress: ProgressCallback | None = None,
    ) -> FitResult: ...

    def sample(self, n_subjects: int, *, seed: int, batch_subjects: int = 1_000) -> Iterator[DatasetBatch]:
        """Batches of whole subjects: every table's rows for batch_subjects root rows at a time."""
        ...

    def save(self, directory: Path) -> None:
        """Write the fitted model into directory (JSON and tensors; a pickle only signed, backends/signing.py), or
        a MODEL_NOT_SAVED.txt saying why it is not kept."""
        ...

    @classmethod
    def load(cls, directory: Path) -> DatasetGenerator:
        """The fitted generator save() wrote; it samples what the saved one would for a seed (ModelFileError if not)."""
        ...


def dataset_backends() -> list[registry.BackendInfo]:
    """Every declared dataset backend, available or why not."""
    return registry.list_backends(registry.DATASET_GROUP)


def create_dataset_generator(name: str, **params: object) -> DatasetGenerator:
    """A new, unfitted dataset generator; its parameters checked by its Params model."""
    cls = cast(type[DatasetGenerator], registry.backend_class(name, registry.DATASET_GROUP))
    cls.Params.checked(name, params)
    return cls(**params)
