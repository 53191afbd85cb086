"""Property-based run of the OpenAPI spec (schemathesis): no generated request makes the API answer 5xx."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings

from fairsynth.services.entry.api import create_app
from fairsynth.services.settings import Settings

schemathesis = pytest.importorskip("schemathesis")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The app with its lifespan running (store and one-process local executor), stopped after the module."""
    data = tmp_path_factory.mktemp("schema") / "data"
    app = create_app(
        Settings.from_env({"FAIRSYNTH_DATA_DIR": str(data), "FAIRSYNTH_WORKERS": "1", "FAIRSYNTH_MAX_UPLOAD_MB": "1"})
    )
    with TestClient(app):
        yield app


@pytest.mark.slow
def test_no_generated_request_gets_a_server_error(app):
    from schemathesis.checks import not_a_server_error

    operations = [result.ok() for result in schemathesis.openapi.from_asgi("/openapi.json", app).get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:  # schemathesis' pytest plugin does not run on pytest 9: drive hypothesis directly

        @given(case=operation.as_strategy())
        @hypothesis_settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            case.call_and_validate(checks=[not_a_server_error])

        check()
