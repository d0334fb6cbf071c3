"""A transcript edited and re-ingested (`ingest --replace`) while Label Studio holds its tasks:
nothing annotated is lost, pull reports annotations on superseded segments, push sends the new text
(issue 12, defect 6); pull refuses a codebook the projects were not set up with (defect 9)."""

from __future__ import annotations

import json

import pytest

from pipeline.config import load_codebook
from pipeline.errors import CultureCodeError
from pipeline.ingest import ingest
from pipeline.store import Store
from pipeline.store.annotations import live_annotations
from pipeline.studio import connect, pull, push
from tests.integration.conftest import FIXTURES
from tests.integration.test_studio_push_pull import annotate, server_tasks, task_for

pytestmark = pytest.mark.integration

BEFORE = (
    "R: How did the visit go last Tuesday?\nPC Dawes: I think the sergeant was right about that.\nR: And the hostel?\n"
)
AFTER = (
    "R: How did the visit go last Tuesday?\n"
    "PC Dawes: I think the sergeant was wrong about that.\n"  # one word: carried over
    "R: Where does he sleep these days?\n"  # rewritten: kept as superseded
)


def test_replace_keeps_annotations_and_pull_reports_them(studio_server, tmp_path, codebook):
    src = tmp_path / "visit.txt"
    src.write_text(BEFORE, encoding="utf-8")
    store = Store(tmp_path / "ws")
    with store.transaction():
        store.record_codebook(codebook)
    ingest(store, [src], show_progress=False)
    settings = studio_server.workspace_settings(tmp_path / "ws")
    pid = push(store, settings, codebook, show_progress=False).projects[0].id
    admin = studio_server.login(
        studio_server.settings.studio.username, studio_server.password(studio_server.settings.studio.username)
    )
    old = store.segments()
    edited = annotate(admin, task_for(store, pid, old[1].id), ["carrot"])
    annotate(admin, task_for(store, pid, old[2].id), ["stick"])
    assert pull(store, settings, codebook, show_progress=False).new == 2

    src.write_text(AFTER, encoding="utf-8")
    report = ingest(store, [src], replace=True, show_progress=False)
    new = store.segments()
    assert {s.segment_id: s.carried_to for s in report.superseded} == {old[1].id: new[1].id, old[2].id: None}
    assert {a.segment_id: a.codes for a in live_annotations(store)} == {new[1].id: ["carrot"]}

    # the annotator keeps working on the old task: the edit follows the carried copy
    connect(settings).sdk.annotations.update(
        edited["id"],
        result=[
            {"from_name": "codes", "to_name": "text", "type": "choices", "value": {"choices": ["carrot", "stick"]}}
        ],
    )
    pulled = pull(store, settings, codebook, show_progress=False)
    assert pulled.updated == 1 and pulled.unknown_segment == []
    listed = {(a.segment_id, a.carried_to, a.changed) for a in pulled.superseded}
    assert listed == {(old[1].id, new[1].id, True), (old[2].id, None, False)}
    assert {a.segment_id: a.codes for a in live_annotations(store)} == {new[1].id: ["carrot", "stick"]}

    again = push(store, settings, codebook, show_progress=False)
    assert again.imported == 2  # the edited and the rewritten turn; the superseded tasks stay as they are
    texts = sorted(t["data"]["text"] for t in server_tasks(connect(settings), pid))
    assert "I think the sergeant was wrong about that." in texts and "And the hostel?" in texts


def test_pull_with_a_changed_codebook_is_refused(studio_server, tmp_path, codebook, cli):
    src = tmp_path / "visit.txt"
    src.write_text(BEFORE, encoding="utf-8")
    store = Store(tmp_path / "ws")
    ingest(store, [src], show_progress=False)
    settings = studio_server.workspace_settings(tmp_path / "ws")
    push(store, settings, codebook, show_progress=False)
    grown = codebook.model_copy(
        update={"codes": [*codebook.codes, codebook.codes[0].model_copy(update={"id": "referral", "name": "Referral"})]}
    )
    with pytest.raises(CultureCodeError, match="set up with codebook"):
        pull(store, settings, grown, show_progress=False)
    store.close()
    changed = tmp_path / "codebook.yaml"
    text = (FIXTURES / "codebook_small.yaml").read_text(encoding="utf-8")
    changed.write_text(text.replace("Offers of help", "Offers of practical help"), encoding="utf-8")
    assert load_codebook(changed).content_hash != codebook.content_hash
    config = tmp_path / "pipeline.yaml"
    config.write_text(f"studio:\n  api_key_file: {studio_server.key_file}\n  api_key_env: CULTURECODE_TEST_UNSET_KEY\n")
    common = ["--workspace", tmp_path / "ws", "--config", config, "--url", studio_server.url, "--quiet"]
    refused = cli("pull", *common, "--codebook", changed)
    assert refused.exit_code == 2 and "set up with codebook" in refused.stderr and "--update-config" in refused.stderr
    fine = cli("pull", *common, "--codebook", FIXTURES / "codebook_small.yaml", "--json")
    assert fine.exit_code == 0, fine.output
    assert json.loads(fine.stdout)["superseded"] == []
