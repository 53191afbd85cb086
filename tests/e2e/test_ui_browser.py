"""The UI in a real browser (Playwright driving Debian's Chromium): bad uploads, a real upload, two backends
generated, both compared, the metadata form, a crate zip downloaded that validates; screenshots of each page; two
tables uploaded as one dataset and their relationship diagram drawn with nothing fetched."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fairsynth.metadata.validate import validate_crate
from fairsynth.services.settings import Settings

from helpers import CHROMIUM, CHROMIUM_ARGS, free_port, pbc_tables, wait_for_url

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
        page.outside, page.missing = [], []  # requests that leave the machine; answers 404
        page.on("request", lambda r: page.outside.append(r.url) if not local(r.url) else None)
        page.on("response", lambda r: page.missing.append(r.url) if r.status == 404 else None)
        page.goto(ui_server)
        yield page
        browser.close()


def local(url: str) -> bool:
    """True for a request that stays on this machine (the UI's own server, inline data)."""
    return re.match(r"(https?|wss?)://(127\.0\.0\.1|localhost)[:/]", url) is not None or url.startswith(
        ("data:", "blob:", "about:")
    )


def seconds(text: str) -> float:
    """'3 min 20 s', '45 s' or '1 h 5 min' (ui.common.duration) as seconds."""
    units = {"h": 3600, "min": 60, "s": 1}
    return sum(int(number) * units[unit] for number, unit in re.findall(r"(\d+) (h|min|s)\b", text))


def upload(page, path: Path) -> None:
    """Drop a file on the upload box (once the box a rejected file emptied is the only one)."""
    page.wait_for_function("document.querySelectorAll('input[type=file]').length === 1")
    page.locator('input[type="file"]').set_input_files(str(path))


def shot(page, path: Path) -> None:
    """A screenshot once the app has finished running the page."""
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=120_000)
    page.wait_for_timeout(500)
    page.screenshot(path=path, full_page=True)


def go_to(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()


def test_upload_generate_compare_export_in_a_browser(page, tmp_path, support2, ui_server):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"screenshots of every page: {shots}")
    page.get_by_text("1 · Data").wait_for()
    assert page.url.rstrip("/").endswith("/data")  # the root opens the Data page at its own address
    page.get_by_text("episode_id").first.wait_for(
        state="attached"
    )  # the demo table is loaded at start (grid cells are drawn on a canvas)
    page.get_by_text("2 Generate", exact=True).wait_for()  # the how-this-works strip
    shot(page, shots / "1-data-demo.png")

    (tmp_path / "empty.csv").write_bytes(b"")
    upload(page, tmp_path / "empty.csv")
    page.get_by_text("The uploaded file is empty; send a CSV or Parquet table.").wait_for()
    (tmp_path / "binary.csv").write_bytes(bytes(range(256)) * 64)
    upload(page, tmp_path / "binary.csv")
    page.get_by_text("binary.csv is not valid utf-8 text").wait_for()
    assert "the encoding choice latin-1 above the upload box" in page.locator('[data-testid="stAlert"]').inner_text()
    (tmp_path / "large.csv").write_bytes(b"a,b\n" + b"1,2\n" * 300_000)
    upload(page, tmp_path / "large.csv")
    page.get_by_text("The upload is larger than this server accepts (1 MiB)").wait_for()
    assert page.locator('[data-testid="stFileUploaderFile"]').count() == 0  # a rejected file leaves the box
    shot(page, shots / "1-data-bad-upload.png")

    sample = tmp_path / "support2_sample.csv"
    support2.sample(500, random_state=0).to_csv(sample, index=False)
    upload(page, sample)
    page.get_by_text("Preview — support2_sample.csv").wait_for()
    page.get_by_text("Schema", exact=True).first.wait_for()
    shot(page, shots / "1-data-upload.png")

    go_to(page, "Generate")
    page.get_by_text("2 · Generate").first.wait_for()
    page.get_by_text("Synthesise support2_sample.csv").wait_for()  # the upload, not the demo table
    page.wait_for_url(re.compile(r"/generate\?.*dataset="))  # and the URL says so
    page.reload()
    page.get_by_text("Synthesise support2_sample.csv").wait_for()  # so a reload keeps it
    page.get_by_text("No target column is set").wait_for()
    page.get_by_text("Use tvae", exact=True).click()  # ticked by default; this run compares the two quick ones
    page.get_by_text("Use marginals", exact=True).click()
    page.get_by_text("Use sdv.gaussian_copula").click()
    page.get_by_label("Rows to generate per backend").fill("300")
    page.get_by_label("Rows to generate per backend").press("Enter")
    page.get_by_text("Run anonymeter's re-identification attacks").click()
    estimate = page.get_by_text("Estimated time of the whole run: about")
    estimate.wait_for()
    shot(page, shots / "2-generate-setup.png")
    estimated = seconds(estimate.inner_text())
    page.get_by_role("button", name="Generate").click()
    page.get_by_text("elapsed · about").wait_for()
    expect(page.get_by_role("button", name="Generate")).to_be_disabled()  # once the rerun has reached it
    shot(page, shots / "2-generate-progress.png")
    page.reload()  # mid-run: the same table, backends and rows, progress first
    page.get_by_text("Synthesise support2_sample.csv").wait_for()
    page.get_by_text("Run finished.").or_(page.get_by_text("elapsed · about")).first.wait_for()
    paced = None
    if page.get_by_text("elapsed · about").count():
        assert page.get_by_role("checkbox", name="Use marginals", exact=True).is_checked()
        assert not page.get_by_role("checkbox", name="Use tvae", exact=True).is_checked()
        assert page.get_by_label("Rows to generate per backend").input_value() == "300"
        page.wait_for_timeout(8000)  # the time left follows the run's own pace once it has gone a while
        if page.get_by_text("elapsed · about").count():
            paced = seconds(page.get_by_text("elapsed · about").first.inner_text())  # elapsed + left
    page.get_by_text("Run finished.").wait_for(timeout=300_000)
    took = seconds(page.get_by_text("Took ").first.inner_text())
    shot(page, shots / "2-generate-done.png")
    print(f"run estimated {estimated} s before it started, {paced} s while running; it took {took} s")
    assert paced is None or 0.5 <= paced / took <= 2.0, (paced, took)
    # before the run: from runs recorded without a browser and other work on the machine (see test_run_estimates)
    assert 0.25 <= estimated / took <= 4.0, (estimated, took)

    go_to(page, "Compare")
    page.get_by_text("Recommended:").or_(page.get_by_text("A tie on")).first.wait_for()
    page.get_by_text("marginals:").wait_for()  # each backend's release gate
    page.get_by_text("sdv.gaussian_copula:").wait_for()
    page.get_by_text("Full reports").wait_for()
    page.wait_for_timeout(2000)  # plots draw
    shot(page, shots / "3-compare.png")
    page.get_by_text("utility (Utility TSTR/TRTR)").click()
    page.get_by_text("no target column was set for this run").wait_for()

    go_to(page, "Export")
    page.get_by_role("button", name="Build and validate crates").click()
    page.get_by_text("Give the crate a title and a description and an author").wait_for()
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
    assert re.fullmatch(r"support2_sample-marginals-\d{4}-\d{2}-\d{2}\.crate\.zip", crate.name), crate.name
    report = validate_crate(crate, limits=Settings())
    assert report.ok, report.summary()
    with page.expect_download() as download:
        page.get_by_role("button", name="Synthetic CSV").first.click()
    assert re.fullmatch(r"support2_sample-marginals-\d{4}-\d{2}-\d{2}\.csv", download.value.suggested_filename)

    page.get_by_role("button", name="Deposit to BioStudies").first.click()
    dry_run = page.get_by_text("Dry run (no BioStudies server and login configured)")
    dry_run.wait_for()
    assert str(tmp_path) not in dry_run.inner_text() and "/" not in dry_run.inner_text()  # no server path

    go_to(page, "Past runs")
    page.get_by_role("button", name="Open in Compare").wait_for()
    shot(page, shots / "5-past-runs.png")
    assert page.get_by_text("Traceback").count() == 0

    page.goto(ui_server + "/compare")  # a deep link, as after a reload
    page.get_by_text("3 · Compare").wait_for()
    page.goto(ui_server + "/data")
    page.get_by_text("1 · Data").wait_for()
    page.wait_for_timeout(1000)
    assert page.get_by_text("Page not found").count() == 0
    assert page.outside == [], page.outside  # nothing leaves the machine (air-gapped hospitals)
    # Streamlit's own front end, opened at /<page>, first looks for its server under /<page>/ (a 404 each, then it
    # finds it at the root): not fixable from the app; any other missing address is ours
    ours = [url for url in page.missing if not re.search(r"/\w+/_stcore/(health|host-config)$", url)]
    assert ours == [], page.missing


def test_several_tables_uploaded_together_show_their_diagram_drawn_offline(page, tmp_path):
    files = []
    for name, frame in pbc_tables().items():
        files.append(tmp_path / f"{name}.csv")
        frame.to_csv(files[-1], index=False)
    page.get_by_text("1 · Data").wait_for()
    page.get_by_text("Several tables (one dataset)").click()
    page.wait_for_function("document.querySelectorAll('input[type=file][multiple]').length === 1")
    page.locator('input[type="file"][multiple]').set_input_files([str(path) for path in files])
    page.get_by_role("button", name="Read as one dataset").click()
    page.get_by_text("Tables — pbc").wait_for()
    chart = page.locator('[data-testid="stGraphVizChart"] svg')
    chart.wait_for()  # Graphviz drew the diagram in the page, from Streamlit's own bundle
    drawn = chart.text_content()
    assert "key: id" in drawn and "418 rows" in drawn and "ordered by day" in drawn
    shot(page, tmp_path / "1-data-several-tables.png")
    assert page.get_by_text("Traceback").count() == 0
    assert page.outside == [], page.outside  # nothing fetched to draw it
