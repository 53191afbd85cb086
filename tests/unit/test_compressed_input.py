"""Files as they come: compressed CSV read everywhere a table comes in, told by its bytes, with clear refusals."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zipfile
import zlib

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fairsynth.services.entry import workspace as ws_api
from fairsynth.services.entry.api import create_app
from fairsynth.services.entry.cli import app
from fairsynth.services.run.tables import InputError, read_table
from fairsynth.services.settings import Settings

runner = CliRunner()
BOMB_BYTES = 200 * 1024 * 1024


def zipped(*members: tuple[str, bytes]) -> bytes:
    """A zip archive holding the given (name, content) members."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members:
            archive.writestr(name, content)
    return buffer.getvalue()


COMPRESS = {
    "csv.gz": gzip.compress,
    "csv.bz2": bz2.compress,
    "csv.xz": lzma.compress,
    "zip": lambda content: zipped(("table.csv", content)),
}


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """A small table with a non-ASCII text column, integers and floats."""
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "site": rng.choice(["Zürich", "Lyon", "Malmö"], 60),
            "age": rng.integers(20, 90, 60),
            "weight": rng.normal(70, 12, 60).round(1),
        }
    )


@pytest.fixture(scope="module")
def plain(table) -> bytes:
    """The table as UTF-8 CSV."""
    return table.to_csv(index=False).encode()


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """A header and 200 MB of zeros, gzip-compressed to a few hundred KB."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    parts, zeros = [packer.compress(b"a,b\n")], bytes(1024 * 1024)
    parts += [packer.compress(zeros) for _ in range(BOMB_BYTES // len(zeros))]
    return b"".join(parts) + packer.flush()


def one_sentence(message: str) -> bool:
    return message.count(". ") == 0 and message.endswith(".") and "\n" not in message


@pytest.mark.parametrize("suffix", sorted(COMPRESS))
def test_compressed_csv_reads_like_the_plain_file(tmp_path, table, plain, suffix):
    path = tmp_path / f"table.{suffix}"
    path.write_bytes(COMPRESS[suffix](plain))
    pd.testing.assert_frame_equal(read_table(path), table)


def test_compression_is_told_by_the_bytes_not_the_name(tmp_path, table, plain):
    path = tmp_path / "export.csv"  # gzip inside, the name says nothing
    path.write_bytes(gzip.compress(plain))
    pd.testing.assert_frame_equal(read_table(path), table)


def test_encoding_and_separator_detection_work_on_the_unpacked_text(tmp_path, table):
    path = tmp_path / "latin.csv.gz"
    path.write_bytes(gzip.compress(table.to_csv(index=False, sep=";").encode("latin-1")))
    with pytest.raises(InputError, match=r"not valid utf-8 text.*--encoding latin-1"):
        read_table(path)
    pd.testing.assert_frame_equal(read_table(path, encoding="latin-1"), table)


def test_a_zip_with_several_files_gets_one_sentence(tmp_path, plain):
    path = tmp_path / "two.zip"
    path.write_bytes(zipped(("a.csv", plain), ("b.csv", plain)))
    with pytest.raises(InputError, match=r"zip archive holding 2 files \(a\.csv, b\.csv\)") as info:
        read_table(path)
    assert one_sentence(str(info.value)), str(info.value)


def test_a_zip_made_on_a_mac_is_one_file(tmp_path, table, plain):
    path = tmp_path / "mac.zip"
    path.write_bytes(zipped(("table.csv", plain), ("__MACOSX/._table.csv", b"\x00\x05\x16\x07")))
    pd.testing.assert_frame_equal(read_table(path), table)


def password_protected(archive: bytes) -> bytes:
    """The zip with its members marked encrypted (general-purpose flag bit 0 in the local and central headers),
    as `zip -P` marks them; the standard library cannot write an encrypted zip."""
    patched = bytearray(archive)
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = patched.find(signature)
        while start != -1:
            patched[start + flag_offset] |= 0x1
            start = patched.find(signature, start + 4)
    return bytes(patched)


def test_a_password_protected_zip_gets_one_sentence(tmp_path, plain):
    path = tmp_path / "locked.zip"
    path.write_bytes(password_protected(zipped(("table.csv", plain))))
    with pytest.raises(InputError, match="protected by a password") as info:
        read_table(path)
    assert one_sentence(str(info.value)), str(info.value)


def test_a_compressed_parquet_file_reads_like_the_plain_one(tmp_path, table):
    buffer = io.BytesIO()
    table.to_parquet(buffer)
    path = tmp_path / "table.parquet.gz"
    path.write_bytes(gzip.compress(buffer.getvalue()))
    pd.testing.assert_frame_equal(read_table(path), table)


def test_a_truncated_gzip_gets_one_sentence(tmp_path, plain):
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(gzip.compress(plain * 50)[:-40])
    with pytest.raises(InputError, match="gzip file that is damaged or cut short") as info:
        read_table(path)
    assert one_sentence(str(info.value)), str(info.value)


def test_a_decompression_bomb_is_refused_before_it_is_all_unpacked(tmp_path, bomb):
    path = tmp_path / "bomb.csv.gz"
    path.write_bytes(bomb[: len(bomb) * 9 // 10])  # cut short: read to the end, it would say "damaged"
    with pytest.raises(InputError, match="unpacks to more than 20 MiB") as info:
        read_table(path, max_unpacked_bytes=20 * 1024 * 1024)
    assert one_sentence(str(info.value)), str(info.value)


def test_cli_inspect_reads_a_gzipped_csv(tmp_path, plain):
    path = tmp_path / "x.csv.gz"
    path.write_bytes(gzip.compress(plain))
    result = runner.invoke(app, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert "weight" in result.output and "not valid" not in result.output


@pytest.fixture
def client(tmp_path):
    """The API with a 1 MiB upload limit (so 20 MiB unpacked at most)."""
    settings = Settings.from_env({"FAIRSYNTH_DATA_DIR": str(tmp_path / "data"), "FAIRSYNTH_MAX_UPLOAD_MB": "1"})
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize(
    "name, suffix, content_type",
    [
        ("t.csv.gz", "csv.gz", "application/gzip"),
        ("t.csv.bz2", "csv.bz2", "application/x-bzip2"),
        ("t.csv.xz", "csv.xz", "application/x-xz"),
        ("t.zip", "zip", "application/zip"),
        ("blob", "csv.gz", "application/octet-stream"),  # a gzip upload that lost its name
        ("table.csv", "csv.gz", "text/csv"),  # and one whose name and type say plain CSV
    ],
)
def test_api_upload_reads_compressed_csv(client, table, plain, name, suffix, content_type):
    response = client.post("/datasets", files={"file": (name, COMPRESS[suffix](plain), content_type)})
    assert response.status_code == 201, response.json()
    dataset = response.json()
    assert (dataset["rows"], dataset["columns"], dataset["format"]) == (len(table), 3, "csv")
    preview = client.get(f"/datasets/{dataset['id']}/schema").json()
    assert [c["name"] for c in preview["columns"]] == list(table.columns)


def test_api_refuses_a_bomb_and_a_two_file_zip_with_one_sentence(client, bomb, plain, tmp_path):
    assert len(bomb) < 1024 * 1024  # the upload itself is within the limit
    refused = client.post("/datasets", files={"file": ("bomb.gz", bomb, "application/gzip")})
    assert refused.status_code == 422 and "unpacks to more than 20 MiB" in refused.json()["detail"]
    assert "FAIRSYNTH_MAX_UPLOAD_MB" in refused.json()["detail"]
    two = client.post("/datasets", files={"file": ("two.zip", zipped(("a.csv", plain), ("b.csv", plain)), "")})
    assert two.status_code == 422 and "holding 2 files" in two.json()["detail"]


def test_ui_upload_reads_a_nameless_gzip_and_refuses_a_bomb(tmp_path, table, plain, bomb):
    ws = ws_api.open_workspace(Settings.from_env({"FAIRSYNTH_DATA_DIR": str(tmp_path), "FAIRSYNTH_MAX_UPLOAD_MB": "1"}))
    try:
        dataset = ws_api.upload_dataset(ws, None, gzip.compress(plain))
        assert (dataset.format, dataset.rows) == ("csv", len(table))
        pd.testing.assert_frame_equal(ws_api.dataset_table(ws, dataset), table)
        with pytest.raises(InputError, match="unpacks to more than 20 MiB"):
            ws_api.upload_dataset(ws, "bomb.csv.gz", bomb)
        assert len(ws.store.list_datasets()) == 1
    finally:
        ws.close()
