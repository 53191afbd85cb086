"""Identifiers that look valid but are not: an ORCID iD with a wrong check digit, a malformed ROR id.

Refused with one sentence in the metadata model, the request, the CLI (--author), the API and the UI form.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from fairsynth.metadata.model import Author, Organization, orcid_checks, ror_checks
from fairsynth.services.entry import workspace as ws_api
from fairsynth.services.entry.api import create_app
from fairsynth.services.entry.cli import app
from fairsynth.services.run.config import ConfigError, GenerationRequest, crate_info
from fairsynth.services.settings import Settings

BAD_ORCID = "0000-0002-1825-0098"
ORCID_SENTENCE = (
    f"'{BAD_ORCID}' is not an ORCID iD: its checksum does not match; copy it again from https://orcid.org/."
)
BAD_ROR = "013meh723"  # Cambridge is 013meh722
ROR_SENTENCE = f"'{BAD_ROR}' is not a ROR id: its checksum does not match; copy it again from https://ror.org/."
UCL = {"name": "UCL", "ror": "02jx3x895"}


@pytest.mark.parametrize("orcid", ["0000-0002-1825-0097", "0000-0002-1694-233X", "0000-0001-5109-3700"])
def test_valid_orcid_check_digits_pass(orcid):
    assert orcid_checks(orcid)
    assert Author(name="A", affiliation=UCL, orcid=orcid).orcid == "https://orcid.org/" + orcid


@pytest.mark.parametrize("orcid", [BAD_ORCID, "0000-0002-1694-2339", "0000-0000-0000-0000"])
def test_a_wrong_orcid_check_digit_is_refused(orcid):
    assert not orcid_checks(orcid)
    with pytest.raises(ValidationError, match="is not an ORCID iD: its checksum does not match"):
        Author(name="A", affiliation=UCL, orcid=orcid)


@pytest.mark.parametrize("ror", ["013meh722", "02jx3x895", "029chgv08", "https://ror.org/052gg0110"])
def test_valid_ror_ids_pass(ror):
    assert ror_checks(ror.removeprefix("https://ror.org/"))
    assert Organization(name="O", ror=ror).ror == "https://ror.org/" + ror.removeprefix("https://ror.org/")


@pytest.mark.parametrize(
    "ror, sentence",
    [
        (BAD_ROR, "its checksum does not match"),
        ("0l3meh722", "give it as https://ror.org/0xxxxxxxx"),  # l is not in ROR's alphabet
        ("013meh72", "give it as https://ror.org/0xxxxxxxx"),
        ("113meh722", "give it as https://ror.org/0xxxxxxxx"),
    ],
)
def test_a_malformed_ror_id_is_refused(ror, sentence):
    with pytest.raises(ValidationError, match=sentence):
        Organization(name="O", ror=ror)


def test_the_request_refuses_them_with_one_sentence_each():
    request = GenerationRequest(
        package_crates=True,
        crate={"authors": [{"name": "A", "orcid": BAD_ORCID, "affiliation": {"name": "C", "ror": BAD_ROR}}]},
    )
    with pytest.raises(ConfigError) as caught:
        crate_info(request, "table.csv")
    assert sorted(caught.value.problems) == [
        f"In the crate metadata, 'crate.authors.0.affiliation.ror' is invalid: {ROR_SENTENCE}",
        f"In the crate metadata, 'crate.authors.0.orcid' is invalid: {ORCID_SENTENCE}",
    ]


def test_the_cli_refuses_a_bad_orcid_before_running(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "generate",
            "--backend",
            "marginals",
            "--out",
            str(tmp_path / "run"),
            "--crate",
            "--author",
            f"Ada Lovelace;{BAD_ORCID};UCL;02jx3x895",
        ],
    )
    assert result.exit_code == 2
    assert ORCID_SENTENCE in " ".join(result.output.split())
    assert not list((tmp_path / "run").glob("*/data/synthetic.*"))


def test_the_api_refuses_a_bad_ror_id(tmp_path):
    settings = Settings.from_env({"FAIRSYNTH_DATA_DIR": str(tmp_path / "data")})
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/jobs",
            json={
                "backends": ["marginals"],
                "package_crates": True,
                "crate": {"authors": [{"name": "Ada", "affiliation": {"name": "C", "ror": BAD_ROR}}]},
            },
        )
    assert response.status_code == 422
    assert ROR_SENTENCE in response.json()["detail"]


def test_the_ui_form_refuses_a_bad_orcid():
    line = f"Ada Lovelace; {BAD_ORCID}; University of Cambridge; https://ror.org/013meh722"
    with pytest.raises(ConfigError, match="its checksum does not match"):
        ws_api.metadata_form(title="T", description="D", authors=line, license_id="CC-BY-4.0", keywords="x")
