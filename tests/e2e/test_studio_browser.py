"""A real annotator in a real browser: log in, see the pre-label, correct it, submit, pull.

Drives Debian's chromium (never a downloaded browser) through Playwright, headless. The task
view is saved as test-artifacts/studio-task.png (pre-label shown) and studio-task-corrected.png.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pytest

from pipeline.studio import add_annotators, connect, push
from tests.integration.conftest import make_workspace, rows

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
HOW = (
    "install Debian's chromium (`sudo apt-get install chromium`) and the Python package playwright "
    "(`pip install playwright`, no browser download needed); `make test` does both"
)


def chromium() -> str:
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.skip(f"no chromium browser found: {HOW}")
    return path


def checkbox(page, code_name: str):
    return page.locator("label", has_text=code_name).locator("input[type=checkbox]")


def test_annotator_corrects_a_prelabel_and_pull_returns_it(studio_server, tmp_path, codebook, cli):
    sync_api = pytest.importorskip("playwright.sync_api", reason=f"playwright is not installed: {HOW}")
    browser_path = chromium()
    ws = tmp_path / "ws"
    store = make_workspace(ws, n_docs=1, turns=2)
    settings = studio_server.workspace_settings(ws)
    (person,) = add_annotators(connect(settings), settings, [f"browser-{uuid.uuid4().hex[:8]}"])
    project = push(store, settings, codebook, annotators=[person.email], show_progress=False).projects[0]
    seg = store.segments()[1]
    (pre,) = rows(store, "SELECT codes FROM predictions WHERE segment_id = ?", (seg.id,))
    assert json.loads(pre["codes"]) == ["carrot"]
    task_id = rows(store, "SELECT task_id FROM tasks WHERE segment_id = ?", (seg.id,))[0][0]
    ARTIFACTS.mkdir(exist_ok=True)

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=browser_path, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(60_000)
        page.goto(f"{studio_server.url}/user/login/")
        page.fill("input[name=email]", person.email)
        page.fill("input[name=password]", person.password)
        page.click("button[type=submit]")
        page.wait_for_url(lambda url: "/user/login" not in url)
        page.goto(f"{studio_server.url}/projects/{project.id}/data?task={task_id}")
        carrot, stick = checkbox(page, "Carrot"), checkbox(page, "Stick")
        page.get_by_text(seg.text).first.wait_for()
        sync_api.expect(carrot).to_be_checked()  # the pre-label is shown without touching any setting
        sync_api.expect(stick).not_to_be_checked()
        page.screenshot(path=str(ARTIFACTS / "studio-task.png"))
        page.locator("label", has_text="Carrot").click()
        page.locator("label", has_text="Stick").click()
        sync_api.expect(carrot).not_to_be_checked()
        sync_api.expect(stick).to_be_checked()
        page.screenshot(path=str(ARTIFACTS / "studio-task-corrected.png"))
        with page.expect_response(lambda r: "/annotations" in r.url and r.request.method == "POST") as posted:
            page.get_by_role("button", name="Submit").click()
        assert posted.value.status == 201
        browser.close()

    result = cli(
        "pull",
        "--workspace",
        ws,
        "--codebook",
        settings.codebook,
        "--url",
        studio_server.url,
        "--json",
        "--quiet",
        "--config",
        _config(tmp_path, studio_server),
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["new"], report["updated"], report["deleted"]) == (1, 0, 0)
    (ann,) = rows(store, "SELECT * FROM annotations")
    assert (ann["segment_id"], ann["annotator"], json.loads(ann["codes"])) == (seg.id, person.email, ["stick"])
    assert ann["prediction_version"] == "v1" and ann["lead_time"] > 0 and not ann["was_cancelled"]


def _config(tmp_path: Path, studio_server) -> Path:
    config = tmp_path / "pipeline.yaml"
    config.write_text(f"studio:\n  api_key_file: {studio_server.key_file}\n  api_key_env: CULTURECODE_TEST_UNSET_KEY\n")
    return config
