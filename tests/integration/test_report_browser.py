"""The HTML report opens offline in headless Chromium with every plot drawn and no console errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fairsynth.metadata.schema import TableSchema
from fairsynth.services.run.demo import load_demo_table
from fairsynth.services.run.evaluation import evaluate
from fairsynth.services.run.report import render_comparison, render_report

from helpers import CHROMIUM, CHROMIUM_ARGS

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)"
    ),
]


@pytest.fixture(scope="module")
def reports() -> dict[str, str]:
    """A report for a holdout-sampling 'generator' and a comparison with a training-row copier."""
    table = load_demo_table().sample(n=1200, random_state=0)
    schema = TableSchema.infer(table).with_overrides(target="readmitted_30d")
    train, holdout = table.iloc[:600], table.iloc[600:]
    synthetic = holdout.sample(n=600, replace=True, random_state=1)
    good = evaluate(train, holdout, synthetic, schema, anonymeter=False)
    copied = evaluate(train, holdout, train, schema, anonymeter=False)
    return {
        "report": render_report(train, synthetic, schema, good, backend="holdout sampler"),
        "comparison": render_comparison({"holdout sampler": good, "copier": copied}),
    }


def _open_offline(html_text: str, directory: Path, name: str) -> tuple[int, int, list[str], list[str]]:
    """Load the page with every network request refused; return plot counts, console errors, requests."""
    from playwright.sync_api import sync_playwright

    page_path = directory / f"{name}.html"
    page_path.write_text(html_text, encoding="utf-8")
    errors, requests = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith("file:")
                else (requests.append(route.request.url), route.abort())
            ),
        )
        page.goto(page_path.as_uri(), wait_until="load")
        page.wait_for_function("document.querySelectorAll('.plot .js-plotly-plot').length > 0", timeout=30_000)
        plots = page.locator(".plot").count()
        drawn = page.evaluate(
            "Array.from(document.querySelectorAll('.plot')).filter("
            "d => d.querySelector('.js-plotly-plot .main-svg') && "
            "d.querySelector('.js-plotly-plot .main-svg').getBoundingClientRect().height > 50).length"
        )
        page.screenshot(path=str(directory / f"{name}.png"), full_page=True)
        browser.close()
    return plots, drawn, errors, requests


def test_report_renders_every_plot_offline(reports, tmp_path):
    plots, drawn, errors, requests = _open_offline(reports["report"], tmp_path, "report")
    assert plots >= 10  # 12 column plots + heatmap + DCR + utility
    assert drawn == plots
    assert errors == []
    assert requests == []
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_report_says_what_was_decided_and_warns(reports):
    text = reports["report"]
    assert "Release gate" in text and "PASS" in text
    assert "does not remove" in text
    assert len(re.findall(r"plotly\.js v\d", text)) == 1  # plotly.js inlined once, in the page head
    assert "<script src=" not in text and 'src="http' not in text


def test_comparison_renders_offline(reports, tmp_path):
    plots, drawn, errors, requests = _open_offline(reports["comparison"], tmp_path, "comparison")
    assert plots == drawn == 3
    assert errors == [] and requests == []
    assert "block" in reports["comparison"]
