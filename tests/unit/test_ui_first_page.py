"""The first UI page lists the backends and runs one generation on the demo table."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "ui" / "app.py")


@pytest.mark.slow
def test_first_page_lists_backends_and_generates_on_the_demo_table():
    app = AppTest.from_file(APP, default_timeout=120).run()
    assert not app.exception
    assert app.title[0].value == "fairsynth"
    backends = app.dataframe[1].value
    assert {"marginals", "sdv.gaussian_copula"} <= set(backends["backend"])
    app.multiselect[0].set_value(["marginals"])
    app.number_input[1].set_value(500)
    app.button[0].click().run()
    assert not app.exception
    assert "Run written to" in app.success[0].value
    comparison = app.dataframe[2].value
    assert comparison.loc[0, "backend"] == "marginals" and comparison.loc[0, "status"] == "ok"
