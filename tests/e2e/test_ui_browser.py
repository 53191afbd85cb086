"""The UI in a real browser (Playwright driving Debian's Chromium): bad uploads, a real upload, two backends
generated, both compared, the metadata form, a crate zip downloaded that validates; screenshots of each page."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fairsynth.metadata.validate import validate_crate
from fairsynth.services.settings import Settings

from helpers import CHROMIUM, CHROMIUM_ARGS, free_port, wait_for_url

expect = pytest.importorskip("playwright.sync_api").expect

AUTHOR = "Ada Lovelace; 0000-0002-1825-0097; University of Cambridge; https://ror.org/013meh722"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="needs Debian's chromium (scripts/system-deps.sh)"),
]


@pytest.fixture
def ui_server(tmp_path):
    """`fairsynth ui` on a free port with its own data directory (1 MiB upload limit); stopped at the end."""
    port = free_port()
    env = {**os.environ, "FAIRSYNTH_DATA_DIR": str(tmp_path / "data"), "FAIRSYNTH_MAX_UPLOAD_MB": "1"}
    log = tmp_path / "ui.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", "from fairsynth.services.entry.cli import app; app()", "ui", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_url(
            url + "/_stcore/health",
            60,
            process=process,
            message=lambda: "the UI did not start: " + log.read_text()[-2000:],
        )
        yield url
    finally:
        os.killpg(process.pid, 15)  # the UI and the task processes it started
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


@pytest.fixture
def page(ui_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 2000}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(ui_server)
        yield page
        browser.close()


def upload(page, path: Path) -> None:
    page.locator('input[type="file"]').set_input_files(str(path))


def shot(page, path: Path) -> None:
    """A screenshot once the app has finished running the page."""
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=120_000)
    page.wait_for_timeout(500)
    page.screenshot(path=path, full_page=True)


def go_to(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()


def test_upload_generate_compare_export_in_a_browser(page, tmp_path, support2):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    page.get_by_text("1 · Data").wait_for()
    page.get_by_text("episode_id").first.wait_for(
        state="attached"
    )  # the demo table is loaded at start (grid cells are drawn on a canvas)
    shot(page, shots / "1-data-demo.png")

    (tmp_path / "empty.csv").write_bytes(b"")
    upload(page, tmp_path / "empty.csv")
    page.get_by_text("The uploaded file is empty; send a CSV or Parquet table.").wait_for()
    (tmp_path / "binary.csv").write_bytes(bytes(range(256)) * 64)
    upload(page, tmp_path / "binary.csv")
    page.get_by_text("binary.csv is not valid utf-8 text").wait_for()
    (tmp_path / "large.csv").write_bytes(b"a,b\n" + b"1,2\n" * 300_000)
    upload(page, tmp_path / "large.csv")
    page.get_by_text("The upload is larger than this server accepts (1 MiB)").wait_for()
    shot(page, shots / "1-data-bad-upload.png")

    sample = tmp_path / "support2_sample.csv"
    support2.sample(500, random_state=0).to_csv(sample, index=False)
    upload(page, sample)
    page.get_by_text("Preview — support2_sample.csv").wait_for()
    page.get_by_text("Schema", exact=True).first.wait_for()
    shot(page, shots / "1-data-upload.png")

    go_to(page, "Generate")
    page.get_by_text("2 · Generate").wait_for()
    page.get_by_text("support2_sample.csv").first.wait_for()
    page.get_by_text("Use tvae", exact=True).click()  # ticked by default; this run compares the two quick ones
    page.get_by_text("Use marginals", exact=True).click()
    page.get_by_text("Use sdv.gaussian_copula").click()
    page.get_by_label("Rows to generate per backend").fill("300")
    page.get_by_label("Rows to generate per backend").press("Enter")
    page.get_by_text("Run anonymeter's re-identification attacks").click()
    page.get_by_text("Estimated fit time and peak memory").wait_for()
    shot(page, shots / "2-generate-setup.png")
    page.get_by_role("button", name="Generate").click()
    page.get_by_text("Progress", exact=True).wait_for()
    shot(page, shots / "2-generate-progress.png")
    page.get_by_text("Run finished.").wait_for(timeout=300_000)
    shot(page, shots / "2-generate-done.png")

    go_to(page, "Compare")
    page.get_by_text("Recommended:").wait_for()
    page.get_by_text("marginals:").wait_for()  # each backend's release gate
    page.get_by_text("sdv.gaussian_copula:").wait_for()
    page.get_by_text("Full reports").wait_for()
    page.wait_for_timeout(2000)  # plots draw
    shot(page, shots / "3-compare.png")

    go_to(page, "Export")
    page.get_by_label("Title").fill("Synthetic SUPPORT2 sample")
    page.get_by_label("Description").fill("Two backends trained on 500 SUPPORT2 rows, for testing the UI.")
    page.get_by_label("Authors — one per line").fill(AUTHOR)
    page.get_by_role("button", name="Build and validate crates").click()
    expect(page.get_by_text("valid crate")).to_have_count(2, timeout=180_000)
    shot(page, shots / "4-export.png")
    with page.expect_download() as download:
        page.get_by_role("button", name="Crate zip").first.click()
    crate = tmp_path / download.value.suggested_filename
    download.value.save_as(crate)
    assert crate.name.endswith(".crate.zip")
    report = validate_crate(crate, limits=Settings())
    assert report.ok, report.summary()

    page.get_by_role("button", name="Deposit to BioStudies").first.click()
    page.get_by_text("Dry run (no BioStudies server and login configured)").wait_for()

    go_to(page, "Past runs")
    page.get_by_role("button", name="Open in Compare").wait_for()
    shot(page, shots / "5-past-runs.png")
    assert page.get_by_text("Traceback").count() == 0
