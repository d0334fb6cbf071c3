"""The HTML methods appendix renders in a real browser (Debian chromium, headless): every section, no script
errors, a transcript's <script> shown as text and never run, and no request leaves the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import load_codebook, load_settings
from pipeline.gold.appendix import build_appendix
from pipeline.gold.appendix_formats import write_appendix
from pipeline.store import Store
from tests.e2e.test_report_browser import ARGS, chromium
from tests.unit import test_agreement_workspace as built
from tests.unit.test_agreement_workspace import SMALL_CODEBOOK

pytestmark = pytest.mark.e2e
TRANSCRIPT = "<script>window.__pwned = 1; console.error('ran')</script> & <b>bold</b> { } ~ ^ \\"


def _appendix_html(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(built, "segment_text", lambda doc, p: TRANSCRIPT if (doc, p) == ("doc_b", 4) else f"{doc} {p}")
    built.build_workspace(tmp_path / "ws").close()
    settings = load_settings(overrides={"agreement.bootstrap": 100, "codebook": str(SMALL_CODEBOOK)})
    with Store(tmp_path / "ws") as store:
        appendix = build_appendix(store, settings, load_codebook(SMALL_CODEBOOK))
    return write_appendix(appendix.as_dict(), tmp_path / "appendix")["html"]


def test_html_appendix_renders_and_escapes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="install the Python package playwright")
    html = _appendix_html(tmp_path, monkeypatch)
    requests: list[str] = []
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), headless=True, args=ARGS)
        try:
            page = browser.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(html.as_uri())
            page.wait_for_load_state("load")
            assert page.title().startswith("Methods appendix")
            assert page.locator("section h2").count() == 11
            assert page.locator("nav a").count() == 11
            assert page.locator("#agreement table").count() >= 2
            assert "Curation rationale" in page.locator("#data-statement").inner_text()
            # coder drift by week: the embedded PNG plot decodes and has a size
            plot = page.locator("#drift figure img")
            assert plot.count() == 1 and plot.evaluate("img => img.complete && img.naturalWidth > 100")
            # the transcript text shows as text; its script did not run and added no element
            assert TRANSCRIPT in page.locator("#agreement").inner_text()
            assert page.evaluate("window.__pwned === undefined")
            assert page.locator("script").count() == 0
            assert page.locator("#agreement b").count() == 0
            page.screenshot(path=str(tmp_path / "appendix.png"), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    outside = [u for u in requests if not u.startswith(("file:", "data:"))]
    assert not outside, f"the appendix fetched {outside}; it must be self-contained"
