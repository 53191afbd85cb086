"""One error root: every user-facing error is a FairsynthError, every problem of a request is reported together,
and the API, the CLI and the UI each turn any of them into clean messages."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import fairsynth.backends
import fairsynth.metadata
import fairsynth.services
from fairsynth.backends import registry
from fairsynth.backends.base import BackendError, BackendUnavailable
from fairsynth.errors import ControlFlow, FairsynthError, field_problems, os_errors_as
from fairsynth.metadata.biostudies import DepositError, deposit
from fairsynth.metadata.model import PAGETAB_PATH, CrateError
from fairsynth.metadata.schema import SchemaError, TableSchema
from fairsynth.metadata.validate import validate_crate
from fairsynth.services.entry.api import create_app
from fairsynth.services.entry.cli import app as cli
from fairsynth.services.run.config import ConfigError, parse_request
from fairsynth.services.run.tables import InputError, check_table
from fairsynth.services.settings import Settings

# modules that are not part of the running product: their classes need not know the root
NOT_IMPORTED_BY_FAIRSYNTH = {
    "fairsynth.backends.ydata.worker",  # runs inside the ydata venv, where fairsynth is not installed
    "fairsynth.backends.mostly.worker",  # the same, inside the MOSTLY AI venv
    "fairsynth.services.jobs.migrations",  # Alembic's scripts, loaded by Alembic only
}


def exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined in backends, metadata and services, by qualified name."""
    found = {}
    for package in (fairsynth.backends, fairsynth.metadata, fairsynth.services):
        for module_info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if any(module_info.name.startswith(skipped) for skipped in NOT_IMPORTED_BY_FAIRSYNTH):
                continue
            module = importlib.import_module(module_info.name)
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if issubclass(cls, BaseException) and cls.__module__ == module.__name__:
                    found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return found


def test_every_exception_we_define_is_a_user_error_or_a_control_flow_signal():
    classes = exception_classes()
    assert {"BackendError", "SchemaError", "CrateError", "JobStoreError", "ConfigError", "InputError"} <= {
        cls.__name__ for cls in classes.values()
    }
    stray = [name for name, cls in classes.items() if not issubclass(cls, (FairsynthError, ControlFlow))]
    assert stray == [], "derive user-facing errors from FairsynthError, internal signals from ControlFlow"
    both = [name for name, cls in classes.items() if issubclass(cls, FairsynthError) and issubclass(cls, ControlFlow)]
    assert both == []


def test_user_errors_no_longer_pose_as_builtin_errors():
    classes = exception_classes().values()
    posing = [cls.__name__ for cls in classes if issubclass(cls, (ValueError, LookupError, RuntimeError))]
    assert posing == []


def test_an_error_carries_every_problem_and_reads_as_their_sentences():
    error = ConfigError("'rows' is invalid: give a positive number.", "'seed' is invalid: give a whole number.")
    assert error.problems == ("'rows' is invalid: give a positive number.", "'seed' is invalid: give a whole number.")
    assert str(error) == "'rows' is invalid: give a positive number. 'seed' is invalid: give a whole number."
    assert str(BackendError("One sentence.")) == "One sentence."


def test_a_request_with_two_bad_fields_names_both():
    with pytest.raises(ConfigError) as caught:
        parse_request({"rows": 0, "output_format": "xls", "backends": ["marginals"]}, "the request")
    first, second = caught.value.problems
    assert first.startswith("In the request, 'rows' is invalid: ") and first.endswith(".")
    assert second.startswith("In the request, 'output_format' is invalid: ") and "'csv' or 'parquet'" in second


def test_field_problems_name_the_field_path_and_drop_pydantic_prefixes():
    errors = [{"loc": ("authors", 0, "orcid"), "msg": "Value error, not an ORCID iD."}, {"loc": (), "msg": "bad"}]
    assert field_problems(errors, "the crate metadata", prefix="crate") == [
        "In the crate metadata, 'crate.authors.0.orcid' is invalid: not an ORCID iD.",
        "In the crate metadata, 'crate' is invalid: bad.",
    ]


def test_schema_overrides_report_every_bad_name_and_kind(demo):
    schema = TableSchema.infer(demo)
    with pytest.raises(SchemaError) as caught:
        schema.with_overrides(kinds={"age": "number", "ward": "colour"}, drop=["nope", "nada"])
    unknown, age, ward = caught.value.problems
    assert unknown.startswith("There are no columns 'nope', 'nada'; the columns are: episode_id,")
    assert age.startswith("'number' is not a column kind for 'age'")
    assert ward.startswith("'colour' is not a column kind for 'ward'")


def test_a_table_with_one_column_and_few_rows_is_told_both(demo):
    with pytest.raises(InputError) as caught:
        check_table(demo[["age"]].head(3), "tiny.csv")
    assert [p.split(";")[0] for p in caught.value.problems] == [
        "tiny.csv has only one column ('age')",
        "tiny.csv has 3 rows",
    ]


def test_unreadable_crate_files_become_crate_and_deposit_errors(tmp_path, monkeypatch):
    crate = tmp_path / "crate"
    (crate / "metadata").mkdir(parents=True)
    (crate / "ro-crate-metadata.json").write_text("{}")
    (crate / PAGETAB_PATH).write_text("{}")

    def unreadable(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(Path, "read_text", unreadable)
    with pytest.raises(CrateError, match=r"Cannot read the crate \(.*ro-crate-metadata.json: Permission denied\)"):
        validate_crate(crate)
    with pytest.raises(DepositError, match=r"\(.*biostudies.pagetab.json: Permission denied\); check the path"):
        deposit(crate, out_dir=tmp_path / "plan")


def test_os_errors_as_wraps_a_function_or_a_block(tmp_path):
    @os_errors_as(InputError, "read the table")
    def read(path):
        return path.read_text()

    with pytest.raises(InputError, match=r"Cannot read the table \(.*absent.csv: No such file or directory\)"):
        read(tmp_path / "absent.csv")
    (tmp_path / "plan").mkdir()
    expected = r"^Cannot write the plan \(.*plan: Is a directory\); check the path"
    with pytest.raises(ConfigError, match=expected), os_errors_as(ConfigError, "write the plan"):
        (tmp_path / "plan").write_text("x")


# -- the three entry points ---------------------------------------------------------------------------------
@pytest.fixture
def client(tmp_path):
    """The API on a fresh data directory."""
    with TestClient(create_app(Settings.from_env({"FAIRSYNTH_DATA_DIR": str(tmp_path / "data")}))) as client:
        yield client


@pytest.fixture
def marginals_unavailable(monkeypatch):
    """The marginals backend says it cannot run here, as a backend without its hardware does."""
    cls = registry.backend_class("marginals")
    monkeypatch.setattr(cls, "availability", classmethod(lambda cls: (False, "it needs a GPU")))


def test_the_api_answers_every_problem_in_errors(client):
    response = client.post("/jobs", json={"backends": ["marginals"], "rows": 0, "output_format": "xls"})
    assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert [e.split(" is invalid")[0] for e in body["errors"]] == ["'body.rows'", "'body.output_format'"]
    assert body["detail"] == " ".join(body["errors"])


def test_the_api_answers_a_user_error_with_several_problems_together(client):
    upload = client.post("/datasets", files={"file": ("t.csv", b"a,b\n" + b"1,x\n" * 20, "text/csv")})
    schema = client.get(f"/datasets/{upload.json()['id']}/schema").json()
    schema["columns"][0]["name"], schema["target"] = "renamed", "nope"
    response = client.put(f"/datasets/{upload.json()['id']}/schema", json=schema)
    assert response.status_code == 422 and response.json()["title"] == "Unprocessable Content"
    renamed, target = response.json()["errors"]
    assert renamed.startswith("The schema must list the dataset's columns in its order (a, b)")
    assert target.startswith("The target 'nope' is not a column of the dataset")


def test_an_unknown_id_is_still_not_found_with_its_sentence_in_errors(client):
    response = client.get("/jobs/0123")
    assert response.status_code == 404 and response.json()["title"] == "Not Found"
    assert response.json()["errors"] == ["There is no job '0123'; list them with GET /jobs."]


def test_a_backend_error_reaches_the_api_as_a_clean_problem(client, marginals_unavailable):
    response = client.post("/jobs", json={"backends": ["marginals", "no-such-backend"]})
    assert response.status_code == 422
    unavailable, unknown = response.json()["errors"]
    assert unavailable == "Backend 'marginals' is not available here: it needs a GPU."
    assert unknown.startswith("Unknown backend 'no-such-backend'; choose one of:")


def test_a_backend_error_reaches_the_cli_as_a_clean_message(tmp_path, marginals_unavailable):
    result = CliRunner().invoke(cli, ["generate", "--backend", "marginals", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "error: Backend 'marginals' is not available here: it needs a GPU." in result.output
    assert not (tmp_path / "run").exists()


def test_the_cli_prints_each_problem_on_its_own_line(tmp_path):
    args = ["generate", "--backend", "marginals", "--kind", "age=number", "--kind", "ward=colour", "--drop", "nope"]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert [line.split(";")[0] for line in lines] == [
        "error: There is no column 'nope'",
        "error: 'number' is not a column kind for 'age'",
        "error: 'colour' is not a column kind for 'ward'",
    ]


def test_the_cli_names_every_malformed_option_at_once():
    result = CliRunner().invoke(cli, ["generate", "--kind", "age", "--kind", "=float"])
    assert result.exit_code == 2
    assert [line for line in result.output.splitlines() if line.startswith("error: ")] == [
        "error: --kind takes COLUMN=KIND; got 'age'.",
        "error: --kind takes COLUMN=KIND; got '=float'.",
    ]


def test_the_ui_shows_a_backend_error_as_its_sentences(monkeypatch):
    from fairsynth.ui import common

    shown, details = [], []
    monkeypatch.setattr(common.st, "error", shown.append)
    monkeypatch.setattr(common.st, "expander", lambda label: details.append(label))
    with common.friendly_errors("Starting the run"):
        raise BackendUnavailable("Backend 'tvae.dp' is not available here: opacus is not installed.", "Second.")
    assert shown == ["Backend 'tvae.dp' is not available here: opacus is not installed.\n\nSecond."]
    assert details == []  # no traceback offered for the user's own error
