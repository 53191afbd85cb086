"""API uploads of CSVs that are not UTF-8 or not comma separated: encoding and separator form fields, detection,
errors worded for an API user, and a stored table that runs read with their defaults."""

from __future__ import annotations

import codecs

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from fairsynth.services.entry.api import create_app
from fairsynth.services.run.tables import read_table
from fairsynth.services.settings import Settings

NAMES = ["José", "Zoë", "Ångström", "Müller", "Noël", "Renée", "Søren", "Ana", "Bo", "Cy", "Di", "Ed"]


@pytest.fixture
def settings(tmp_path) -> Settings:
    """A fresh data directory."""
    return Settings.from_env({"FAIRSYNTH_DATA_DIR": str(tmp_path / "data")})


@pytest.fixture
def client(settings):
    """A TestClient with the app's lifespan running."""
    with TestClient(create_app(settings)) as client:
        yield client


def table(names=NAMES) -> pd.DataFrame:
    """Twelve rows with accented names and a decimal column."""
    return pd.DataFrame({"name": names, "age": range(30, 30 + len(names)), "bmi": [22.5] * len(names)})


def text(frame: pd.DataFrame, separator: str = ",") -> str:
    return frame.to_csv(index=False, sep=separator)


def stored_table(settings: Settings, dataset_id: str) -> pd.DataFrame:
    """The stored upload read as a run reads it: read_table's defaults."""
    (stored,) = [p for p in (settings.data_dir / "datasets" / dataset_id).iterdir() if p.is_file()]
    return read_table(stored)


@pytest.mark.parametrize(
    "encoded",
    [
        pytest.param(text(table()).encode("utf-8"), id="utf-8"),
        pytest.param(codecs.BOM_UTF8 + text(table()).encode("utf-8"), id="utf-8-sig"),
        pytest.param(text(table(NAMES[:6] + ["€uro", "“q”", *NAMES[8:]])).encode("cp1252"), id="cp1252"),
        pytest.param(text(table()).encode("latin-1"), id="latin-1"),
        pytest.param(text(table()).encode("utf-16"), id="utf-16-bom"),
    ],
)
def test_common_encodings_are_detected_and_stored_as_utf8(client, settings, encoded):
    response = client.post("/datasets", files={"file": ("people.csv", encoded, "text/csv")})
    assert response.status_code == 201, response.text
    stored = stored_table(settings, response.json()["id"])
    assert list(stored.columns) == ["name", "age", "bmi"]
    assert stored["name"].iloc[0] == "José" and stored["bmi"].iloc[0] == 22.5


def test_the_encoding_and_separator_fields_are_used(client, settings):
    encoded = text(table(), separator="|").encode("latin-1")
    response = client.post(
        "/datasets",
        files={"file": ("people.csv", encoded, "text/csv")},
        data={"encoding": "latin-1", "separator": "|"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["columns"] == 3
    stored = stored_table(settings, response.json()["id"])
    assert list(stored.columns) == ["name", "age", "bmi"] and stored["name"].iloc[1] == "Zoë"


def test_a_given_separator_beats_the_detected_one_in_the_stored_table(client, settings):
    frame = pd.DataFrame({"a,b": [f"x,{i}" for i in range(12)], "c": range(12)})  # more commas than semicolons
    response = client.post(
        "/datasets", files={"file": ("t.csv", text(frame, ";").encode(), "text/csv")}, data={"separator": ";"}
    )
    assert response.status_code == 201, response.text
    assert list(stored_table(settings, response.json()["id"]).columns) == ["a,b", "c"]


@pytest.mark.parametrize(
    "fields, content, expected",
    [
        ({"encoding": "utf-8"}, text(table()).encode("latin-1"), "the form field encoding=latin-1"),
        ({"encoding": "bogus-enc"}, text(table()).encode(), "'bogus-enc' is not a text encoding"),
        ({"separator": ";;"}, text(table()).encode(), "the form field separator=';'"),
        ({}, "\n".join(["only"] + ["1"] * 12).encode(), "the form field separator=';'"),
    ],
)
def test_upload_errors_speak_to_an_api_user(client, fields, content, expected):
    response = client.post("/datasets", files={"file": ("people.csv", content, "text/csv")}, data=fields)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert expected in detail
    assert "table.csv" not in detail and "--encoding" not in detail and "--separator" not in detail
