"""The HTML agreement report renders in a real browser (Debian chromium, headless): tables, plots,
escaped transcript text, and no request leaves the file (it is self-contained)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pipeline.agreement import agreement_report
from pipeline.config import load_codebook, load_settings
from tests.unit.test_agreement_workspace import HOSTILE, SMALL_CODEBOOK, build_workspace

pytestmark = pytest.mark.e2e
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def chromium() -> str:
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.skip(
            "no chromium browser found: install Debian's chromium (`apt-get install chromium`); "
            "Playwright's own browser download is not needed"
        )
    return path


def test_html_report_renders_and_escapes(tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="install the Python package playwright")
    settings = load_settings(overrides={"agreement.bootstrap": 200, "codebook": str(SMALL_CODEBOOK)})
    with build_workspace(tmp_path / "ws") as store:
        result = agreement_report(store, settings, load_codebook(SMALL_CODEBOOK), out_dir=tmp_path / "reports")
    html = result.paths["html"]

    requests: list[str] = []
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), headless=True, args=ARGS)
        try:
            page = browser.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(html.as_uri())
            page.wait_for_load_state("load")
            assert page.title().startswith("Agreement report")
            assert page.locator("#per-code tr").count() >= 3  # header + carrot + stick
            assert "reliable" in page.locator("#summary").inner_text()
            images = page.locator("img")
            assert images.count() >= 4  # alpha, heatmap, confusion, rounds
            widths = page.eval_on_selector_all("img", "els => els.map(e => e.complete ? e.naturalWidth : 0)")
            assert all(w > 100 for w in widths), widths
            # the transcript text shows as text; its script did not run and added no element
            assert HOSTILE in page.locator("#disagreements").inner_text()
            assert page.evaluate("window.__pwned === undefined")
            assert page.locator("#disagreements b").count() == 0
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    outside = [u for u in requests if not u.startswith(("file:", "data:"))]
    assert not outside, f"the report fetched {outside}; it must be self-contained"
