"""The backend contract: what every generator plugin provides and returns."""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, NamedTuple, Protocol, Self, runtime_checkable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fairsynth.backends.background import run_ahead
from fairsynth.backends.preprocessing import EncodedBatch, TableCodec
from fairsynth.errors import FairsynthError, requirement
from fairsynth.metadata.schema import TableSchema

PROJECT_URL = "https://github.com/fairsynth/fairsynth"


class BackendError(FairsynthError):
    """A backend failed in a way the user can understand; the message is one clear sentence."""


class BackendUnavailable(BackendError):
    """The backend cannot run here (missing extra, environment or hardware)."""


class NotFittedError(BackendError):
    """sample() or save() was called before fit()."""


class ModelFileError(BackendError):
    """A saved model directory is missing, unreadable or was tampered with."""


class ParameterError(BackendError):
    """A backend was given a parameter it does not take or a value out of its bounds; names every problem."""


class BackendParams(BaseModel):
    """A backend's parameters as data: each field declares its type, default, bounds and a description.

    Each backend subclasses it (a family's subclass adds to its parent's fields); the registry, the command
    line, the API and the UI's forms all read its JSON schema. Unknown parameters are refused.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def checked(cls, backend: str, values: Mapping[str, object]) -> Self:
        """The values validated (strings converted to the declared types), or a ParameterError naming them all."""
        try:
            return cls.model_validate(dict(values))
        except ValidationError as exc:
            raise ParameterError(_parameter_problems(backend, cls, exc)) from None


# parameters many backends take, declared once; a backend gives its own default (`epochs: Epochs = 300`)
Epochs = Annotated[int, Field(ge=1, description="Passes over the training rows.")]
BatchSize = Annotated[int, Field(ge=1, description="Training rows per optimisation step.")]
LearningRate = Annotated[float, Field(gt=0, description="Step size of the optimiser.")]


def _parameter_problems(backend: str, params: type[BackendParams], exc: ValidationError) -> str:
    """One sentence listing every bad parameter, and the names the backend takes when one is unknown."""
    problems: list[str] = []
    unknown: list[str] = []
    for error in exc.errors():
        if error["type"] == "extra_forbidden":
            unknown.append(repr(str(error["loc"][0])))
        else:
            problems.append(_problem(error))
    if unknown:
        takes = ", ".join(params.model_fields) or "none"
        problems.append(f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} (it takes: {takes})")
    return f"Backend '{backend}': {'; '.join(problems)}."


def _problem(error: Mapping[str, Any]) -> str:
    """'name must be ... (got value)' for one pydantic error."""
    name = str(error["loc"][0]) if error["loc"] else "the parameters"
    if error["type"] == "missing":
        return f"{name} is required"
    return f"{name} {requirement(error)} (got {error['input']!r})"


SAMPLING_HELPER_THREADS = 2  # beside the model while sampling: the codec's decoder thread, a file writer's
STAGE_DEPTH = 1  # batches a background stage of the sampling stream may run ahead


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, shown to users before they choose it."""

    description: str
    license: str
    family: str = "basic"  # executor queue: basic | torch | sdv | ydata
    dp: bool = False
    gpu: bool = False
    conditional: bool = False
    handles_missing: bool = True
    handles_datetime: bool = True
    model_family: str = ""  # e.g. "variational autoencoder", for metadata
    package: str = "fairsynth"  # distribution whose version identifies the model code
    url: str = PROJECT_URL


@dataclass(frozen=True)
class Progress:
    """One progress report from fit or sample."""

    backend: str
    stage: str  # "fit" | "sample"
    step: int
    total: int | None = None
    loss: float | None = None
    seconds: float = 0.0
    message: str = ""


@dataclass
class FitResult:
    """What a fit produced: how long, how many epochs, the loss curve, the privacy spent."""

    seconds: float
    epochs: int | None = None
    losses: list[float] = field(default_factory=list)
    epsilon: float | None = None
    delta: float | None = None
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain JSON-ready dict."""
        return asdict(self)


ProgressCallback = Callable[[Progress], None]


@runtime_checkable
class Generator(Protocol):
    """The protocol every backend satisfies (docs/architecture.md, "The backend contract")."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    Params: ClassVar[type[BackendParams]]  # the parameters it takes, as data
    params: BackendParams  # this instance's values

    def fit(
        self, data: pd.DataFrame, schema: TableSchema, *, seed: int, progress: ProgressCallback | None = None
    ) -> FitResult: ...

    def sample(self, n_rows: int, *, seed: int, batch_rows: int = 100_000) -> Iterator[pd.DataFrame]: ...

    def save(self, directory: Path) -> None: ...

    @classmethod
    def load(cls, directory: Path) -> Generator: ...


class CodecGenerator(ABC):
    """Base for backends that learn the codec's encoded table.

    Subclasses declare `Params` (a BackendParams subclass: the constructor's keywords are validated
    through it once, here, into `self.params`) and implement `_fit_encoded`, `_sample_encoded`,
    `_save_model`, `_load_model`; this class runs the shared codec around them so every backend gets
    dates, missing values, rare categories, identifiers and PII right.
    """

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    Params: ClassVar[type[BackendParams]] = BackendParams
    params: BackendParams

    def __init__(self, **params: object) -> None:
        self.params = self.Params.checked(self.name, params)
        self.codec: TableCodec | None = None

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """Whether the backend can run here, and why not."""
        return True, ""

    def _codec_options(self) -> dict:
        """Keywords for TableCodec.fit this backend's parameters set (none: the codec's defaults)."""
        return {}

    # -- the contract -------------------------------------------------------------------------
    def fit(
        self, data: pd.DataFrame, schema: TableSchema, *, seed: int, progress: ProgressCallback | None = None
    ) -> FitResult:
        """Fit the codec, then the model on the encoded table."""
        start = time.perf_counter()
        self.codec = TableCodec.fit(data, schema, **self._codec_options())
        encoded = self.codec.encode(data)
        result = self._fit_encoded(encoded, seed=seed, progress=progress or _ignore)
        result.seconds = time.perf_counter() - start
        return result

    def sample(self, n_rows: int, *, seed: int, batch_rows: int = 100_000) -> Iterator[pd.DataFrame]:
        """Yield decoded batches that add up to n_rows."""
        codec = self._fitted_codec()
        for table in self.sample_arrow(n_rows, seed=seed, batch_rows=batch_rows):
            yield codec.to_pandas(table)

    def sample_arrow(
        self,
        n_rows: int,
        *,
        seed: int,
        batch_rows: int = 100_000,
        then: Callable[[pa.Table], object] | None = None,
    ) -> Iterator[pa.Table]:
        """The same batches as Arrow tables, decoded from the model's arrays without a Python object per value.

        The model draws in the caller's thread; the codec finishes and decodes each batch in a
        background thread up to STAGE_DEPTH batches behind, and `then` (a file writer) takes each
        decoded table in a thread of its own before it is yielded. Each table carries the pandas
        metadata of the first batch, so a Parquet file read back with pandas gets the dtypes sample()
        gives (as when the writers converted DataFrames).
        """
        codec = self._fitted_codec()
        metadata: dict[bytes, bytes] = {}  # the first batch's pandas metadata, for every batch

        def decode(drawn: _DrawnBatch) -> pa.Table:
            table = codec.decode_arrow(drawn.finish(), start_row=drawn.start_row, seed=drawn.seed, total_rows=n_rows)
            if not metadata:  # the first batch: batches decode in order, in one thread
                metadata.update(_pandas_metadata(codec, table))
            return table.replace_schema_metadata(metadata)

        depth = STAGE_DEPTH * (2 if then else 1)  # two stages: as many batches in flight as a decoder and a writer
        yield from run_ahead(
            self._drawn_batches(n_rows, seed, batch_rows), decode, depth=depth, name="batch-decoder", then=then
        )

    def _drawn_batches(self, n_rows: int, seed: int, batch_rows: int) -> Iterator[_DrawnBatch]:
        start = 0
        for size, batch_seed in _batch_plan(n_rows, batch_rows, np.random.default_rng(seed)):
            yield _DrawnBatch(self._draw_batch(size, seed=batch_seed, helpers_idle=start == 0), start, batch_seed)
            start += size

    def save(self, directory: Path) -> None:
        """Write codec.json and the model's own files into directory."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "codec.json").write_text(self._fitted_codec().to_json())
        (directory / "backend.json").write_text(
            json.dumps({"backend": self.name, "params": self.params.model_dump(mode="json")})
        )
        self._save_model(directory)

    @classmethod
    def load(cls, directory: Path) -> CodecGenerator:
        """Rebuild a fitted generator from save()'s files (JSON and tensors; a pickle only when signed here)."""
        directory = Path(directory)
        try:
            info = json.loads((directory / "backend.json").read_text())
            codec = TableCodec.from_json((directory / "codec.json").read_text())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelFileError(f"The model in {directory} cannot be read ({exc}); fit the backend again.") from exc
        if info.get("backend") != cls.name:
            raise ModelFileError(
                f"The model in {directory} was saved by backend '{info.get('backend')}', not '{cls.name}'."
            )
        try:
            generator = cls(**info.get("params", {}))
        except ParameterError as exc:
            reason = str(exc).rstrip(".")
            raise ModelFileError(f"The model in {directory} has parameters this version refuses ({reason}).") from exc
        generator.codec = codec
        generator._load_model(directory)
        return generator

    # -- for subclasses -------------------------------------------------------------------------
    @abstractmethod
    def _fit_encoded(self, encoded: pd.DataFrame, *, seed: int, progress: ProgressCallback) -> FitResult:
        """Fit the model on the codec's output."""

    @abstractmethod
    def _sample_encoded(self, n_rows: int, *, seed: int) -> pd.DataFrame:
        """Return n_rows of the codec's encoded form."""

    def _sample_encoded_batch(self, n_rows: int, *, seed: int) -> EncodedBatch:
        """n_rows of the encoded form as arrays."""
        return self._draw_batch(n_rows, seed=seed)()

    def _draw_batch(self, n_rows: int, *, seed: int, helpers_idle: bool = False) -> Callable[[], EncodedBatch]:
        """Draw n_rows from the model; the returned step finishes them into the encoded form (it may run
        in another thread, while the model draws the next batch). `helpers_idle`: the stream's decoder
        and writer have nothing to do yet (the first batch), so the model may use their CPUs. By default
        _sample_encoded's tokens, factorised, with nothing left to finish."""
        batch = EncodedBatch.from_frame(self._sample_encoded(n_rows, seed=seed), self._fitted_codec().model_columns())
        return lambda: batch

    def _save_model(self, directory: Path) -> None:  # noqa: B027  (optional: a model may have nothing to save)
        """Write model files (JSON or tensors) into directory."""

    def _load_model(self, directory: Path) -> None:  # noqa: B027  (optional, as _save_model)
        """Read what _save_model wrote."""

    def _fitted_codec(self) -> TableCodec:
        if self.codec is None:
            raise NotFittedError(f"Backend '{self.name}' has not been fitted; call fit() first.")
        return self.codec


def sample_tables(
    generator: Generator,
    n_rows: int,
    *,
    seed: int,
    batch_rows: int = 100_000,
    then: Callable[[pa.Table], object] | None = None,
) -> Iterator[pa.Table]:
    """Any generator's batches as Arrow tables, the form the file writers take; `then(table)` (a file writer)
    runs on each in a background thread, in order, before the table is yielded.

    Backends on the codec's batch loop decode straight to Arrow; one that replaces sample() (e.g. to
    draw every batch in one worker call) or is not a CodecGenerator has its DataFrames converted.
    """
    if isinstance(generator, CodecGenerator) and type(generator).sample is CodecGenerator.sample:
        yield from generator.sample_arrow(n_rows, seed=seed, batch_rows=batch_rows, then=then)
        return
    frames = generator.sample(n_rows, seed=seed, batch_rows=batch_rows)
    if then is None:
        yield from map(_frame_to_table, frames)
        return
    yield from run_ahead(frames, _frame_to_table, depth=STAGE_DEPTH, name="batch-converter", then=then)


def _frame_to_table(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False)


def table_to_frame(generator: Generator, table: pa.Table) -> pd.DataFrame:
    """A batch from sample_tables as the DataFrame sample() gives."""
    codec = getattr(generator, "codec", None)
    return codec.to_pandas(table) if isinstance(codec, TableCodec) else table.to_pandas()


class _DrawnBatch(NamedTuple):
    """A batch the model has drawn: the step that finishes its encoded form, and where it sits in the run."""

    finish: Callable[[], EncodedBatch]
    start_row: int
    seed: int


def _pandas_metadata(codec: TableCodec, table: pa.Table) -> dict:
    """The pandas metadata of a decoded batch: what sample() would give, for readers of the files.

    Converting the whole batch to pandas took a sixth of a million-row run; the dtypes depend only on
    each column's type, whether it has gaps and which kinds of values it holds, so a few rows that keep
    all three (_representative) give the same metadata."""
    return pa.Schema.from_pandas(codec.to_pandas(_representative(table)), preserve_index=False).metadata


def _representative(table: pa.Table) -> pa.Table:
    """A few rows per column with the batch's column types, gaps (a null where it has one) and, for a
    dictionary column, every level it uses: columns are converted to pandas one by one, so they need
    not come from the same rows."""
    if table.num_rows == 0:
        return table
    columns = [_representative_values(column.combine_chunks()) for column in table.columns]
    rows = max(len(column) for column in columns)
    padded = [column.take(np.arange(rows) % len(column)) for column in columns]  # repeats add no new kind
    return pa.Table.from_arrays(padded, schema=table.schema)


def _representative_values(column: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(column.type):
        kept = pa.DictionaryArray.from_arrays(pc.unique(column.indices.drop_null()), column.dictionary)
    else:
        kept = column.drop_null().slice(0, 1)
    return pa.concat_arrays([kept, pa.nulls(1, column.type)]) if column.null_count else kept


def _ignore(_: Progress) -> None:
    return None


def _batch_plan(n_rows: int, batch_rows: int, rng: np.random.Generator) -> Iterator[tuple[int, int]]:
    """Batch sizes and one seed per batch, so batch k is the same whatever batch_rows was before it."""
    if n_rows < 0:
        raise BackendError(f"Cannot sample {n_rows} rows; ask for zero or more.")
    batch_rows = max(1, int(batch_rows))
    done = 0
    while done < n_rows:
        size = min(batch_rows, n_rows - done)
        yield size, int(rng.integers(0, 2**31 - 1))
        done += size
