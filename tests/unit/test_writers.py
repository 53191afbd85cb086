"""Streaming writers: Arrow batches from the fast path give the same files as the DataFrame batches."""

from __future__ import annotations

import io
import threading

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from fairsynth.backends.background import run_ahead
from fairsynth.backends.base import sample_tables
from fairsynth.backends.registry import create
from fairsynth.metadata.schema import TableSchema
from fairsynth.services.run.config import BackendSpec, GenerationRequest
from fairsynth.services.run.demo import load_demo_table
from fairsynth.services.run.pipeline import run
from fairsynth.services.run.writers import BatchWriter, write_sampled


@pytest.fixture(scope="module")
def fitted():
    """tvae fitted for two epochs on the demo table (dates, gaps, rare levels, identifiers, PII)."""
    table = load_demo_table()
    generator = create("tvae", epochs=2, hidden_size=32, latent_dim=16)
    generator.fit(table, TableSchema.infer(table), seed=1)
    return generator


def _write(batches, path, fmt):
    with BatchWriter(path, fmt) as writer:
        for batch in batches:
            writer.write(batch)
    return path


def _write_sampled(generator, rows, path, fmt, *, seed, batch_rows):
    for _ in write_sampled(generator, rows, seed=seed, batch_rows=batch_rows, path=path, fmt=fmt):
        pass
    return path


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_arrow_batches_write_the_same_file_as_dataframes(fitted, tmp_path, fmt):
    arrow = _write_sampled(fitted, 2500, tmp_path / f"arrow.{fmt}", fmt, seed=4, batch_rows=1000)
    frames = _write(fitted.sample(2500, seed=4, batch_rows=1000), tmp_path / f"frames.{fmt}", fmt)
    if fmt == "csv":
        assert arrow.read_bytes() == frames.read_bytes()
        text = pd.read_csv(arrow, dtype=str)
        assert pd.to_datetime(text["admission_date"], format="%d/%m/%Y").notna().all()  # the source's format
        assert text["episode_id"].is_unique
    else:
        pd.testing.assert_frame_equal(pd.read_parquet(arrow), pd.read_parquet(frames))
        assert len(pd.read_parquet(arrow)) == 2500


def test_writer_keeps_the_first_schema_and_counts_rows(fitted, tmp_path):
    with BatchWriter(tmp_path / "out.parquet", "parquet") as writer:
        for table in sample_tables(fitted, 900, seed=2, batch_rows=300):
            writer.write(table)
    assert writer.rows == 900
    back = pd.read_parquet(tmp_path / "out.parquet")
    assert list(back.columns) == fitted.codec.output_columns() and len(back) == 900


def test_a_failed_background_write_is_raised(fitted, tmp_path):
    first = next(sample_tables(fitted, 10, seed=1))
    other = first.drop_columns([first.column_names[0]])  # a batch that cannot take the file's schema
    with BatchWriter(tmp_path / "bad.csv", "csv") as writer, pytest.raises(ValueError):
        for _ in run_ahead([first, other, first], lambda table: table, depth=1, name="test", then=writer.write):
            pass


def test_parquet_keeps_ranges_for_numbers_and_dates_only(fitted, tmp_path):
    import pyarrow.parquet as pq

    path = _write_sampled(fitted, 600, tmp_path / "ranges.parquet", "parquet", seed=3, batch_rows=300)
    group = pq.ParquetFile(path).metadata.row_group(0)
    ranged = {
        group.column(i).path_in_schema: group.column(i).statistics is not None
        and group.column(i).statistics.has_min_max
        for i in range(group.num_columns)
    }
    types = {f.name: str(f.type) for f in pq.read_schema(path)}
    assert ranged and all(ranged[name] == (types[name] != "string") for name in ranged)
    assert any(t.startswith("timestamp") or t in ("double", "int64") for t in types.values())


def test_parquet_gives_dictionaries_to_repeated_values_only(tmp_path):
    """Codes, flags and text get dictionary pages; floats and a column of mostly distinct values (an ID) do not:
    a dictionary holding nearly every value only cost time (a sixth of SUPPORT2's write). Values read back alike."""
    import pyarrow.parquet as pq

    rows = 1000
    batch = pa.table(
        {
            "pid": pa.array(np.arange(rows, dtype=np.int64)),
            "visits": pa.array(np.arange(rows, dtype=np.int64) % 7),
            "dose": pa.array(np.arange(rows) % 5 / 2),
            "ward": pa.array(["north", "south"] * (rows // 2)),
            "site": pa.array(["x", "y"] * (rows // 2)).dictionary_encode(),
        }
    )
    path = tmp_path / "coded.parquet"
    with BatchWriter(path, "parquet") as writer:
        writer.write(batch)
        writer.write(batch)
    group = pq.ParquetFile(path).metadata.row_group(1)
    encodings = {group.column(i).path_in_schema: group.column(i).encodings for i in range(group.num_columns)}
    coded = {name for name, used in encodings.items() if "RLE_DICTIONARY" in used}
    assert coded == {"visits", "ward", "site"}
    back = pd.read_parquet(path)
    assert back["pid"].tolist() == list(range(rows)) * 2 and back["visits"].dtype == np.int64


def test_a_consumer_may_stop_early(fitted):
    """Closing the batch stream mid-run returns at once (the decoder thread ahead of it is joined)."""
    batches = sample_tables(fitted, 5000, seed=1, batch_rows=1000)
    assert next(batches).num_rows == 1000
    batches.close()


def test_csv_quotes_only_where_needed_and_keeps_decimal_points(tmp_path):
    batch = pa.table(
        {
            "dose, mg": pa.array([1.0, 2.5, None, 1e20]),
            "count": pa.array([3, 4, None, 5]),
            "ward": pa.array(["north", 'say "hi"', "a,b", None]),
            "site": pa.array(["x", "y", "x", "x"]).dictionary_encode(),
        }
    )
    path = tmp_path / "out.csv"
    with BatchWriter(path, "csv", decimal_point=["dose, mg"]) as writer:
        writer.write(batch)
        writer.write(batch.slice(0, 2).set_column(2, "ward", pa.array(["south", "east"])))
    assert path.read_text().splitlines() == [
        '"dose, mg",count,ward,site',
        "1.0,3,north,x",
        '2.5,4,"say ""hi""",y',
        ',,"a,b",x',
        "1e+20,5,,x",
        "1.0,3,south,x",
        "2.5,4,east,y",
    ]


def test_synthetic_csv_keeps_the_sources_look(tmp_path):
    rng = np.random.default_rng(7)
    source = tmp_path / "look.csv"
    doses, scores, visits = rng.choice([1.0, 2.0, 2.5, 3.0], 300), rng.integers(1, 9, 300), rng.integers(0, 20, 300)
    wards = rng.choice(["north", "south"], 300)
    lines = ["dose,score,visits,ward"] + [f"{d},{s}.0,{v},{w}" for d, s, v, w in zip(doses, scores, visits, wards)]
    source.write_text("\n".join(lines) + "\n")
    request = GenerationRequest(
        input_path=str(source), backends=[BackendSpec(name="marginals")], rows=400, output_dir=str(tmp_path / "run")
    )
    run(request)
    written = (tmp_path / "run" / "marginals" / "data" / "synthetic.csv").read_text()
    assert '"' not in written
    text = pd.read_csv(io.StringIO(written), dtype=str)
    assert text["dose"].str.fullmatch(r"\d\.\d").all() and text["dose"].isin(["1.0", "2.0", "3.0"]).any()
    assert text["score"].str.fullmatch(r"\d\.0").all()  # whole in every row, written 1.0 in the source
    assert text["visits"].str.fullmatch(r"\d+").all()  # integers stay integers


def test_batches_carry_the_pandas_metadata_of_the_whole_first_batch(fitted):
    rng = np.random.default_rng(3)
    n = 600
    mixed = pd.DataFrame(
        {
            "mixed_levels": rng.choice(np.array(["a", 1, "b", 2.5, True], dtype=object), n),
            "count_with_gaps": pd.array(np.where(rng.random(n) < 0.3, None, rng.integers(0, 9, n)), dtype="Int64"),
            "flag": rng.random(n) < 0.5,
            "value": rng.normal(size=n).round(2),
        }
    )
    other = create("tvae", epochs=1, hidden_size=16, latent_dim=8)
    other.fit(mixed, TableSchema.infer(mixed), seed=1)
    for generator in (fitted, other):
        first = next(sample_tables(generator, 3000, seed=5, batch_rows=3000))
        whole = pa.Schema.from_pandas(generator.codec.to_pandas(first), preserve_index=False).metadata
        assert first.schema.metadata == whole


def test_the_writer_stage_takes_a_batch_while_the_next_is_drawn():
    """run_ahead's then-stage gets each result as soon as it is made, in order, before it is yielded: the
    second item is only produced once the first result has reached the writer (so the writer never waits for
    the model to finish drawing the next batch)."""
    written, first_written = [], threading.Event()

    def items():
        yield 1
        assert first_written.wait(10)
        yield 2

    def write(result):
        written.append(result)
        first_written.set()

    assert list(run_ahead(items(), lambda item: item * 10, depth=1, name="test", then=write)) == [10, 20]
    assert written == [10, 20]
