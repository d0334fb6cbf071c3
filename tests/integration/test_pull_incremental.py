"""Incremental pull against a real Label Studio: only what changed since the last pull is fetched, and a
deleted task and a duplicated task are both found in one pull of the same project."""

from __future__ import annotations

import json

import pytest

from pipeline.studio import connect, pull, push
from tests.integration.conftest import make_workspace, rows
from tests.integration.test_studio_push_pull import annotate, task_for

pytestmark = pytest.mark.integration

CHOICES = {"from_name": "codes", "to_name": "text", "type": "choices"}


def admin_session(studio_server):
    email = studio_server.settings.studio.username
    return studio_server.login(email, studio_server.password(email))


def test_pull_fetches_only_changes_and_finds_deleted_and_duplicated_tasks(studio_server, tmp_path, codebook):
    store = make_workspace(tmp_path / "ws", n_docs=1, turns=4)
    settings = studio_server.workspace_settings(tmp_path / "ws")
    pid = push(store, settings, codebook, show_progress=False).projects[0].id
    segs = [s.id for s in store.segments()]
    http = admin_session(studio_server)
    edited = annotate(http, task_for(store, pid, segs[0]), ["carrot"])
    annotate(http, task_for(store, pid, segs[1]), ["stick"])

    first = pull(store, settings, codebook, show_progress=False)
    assert first.full and (first.new, first.fetched_tasks) == (2, 2)

    nothing = pull(store, settings, codebook, show_progress=False)
    assert not nothing.full and (nothing.fetched_tasks, nothing.changed, nothing.unchanged) == (0, 0, 2)
    assert nothing.deleted_tasks == [] and nothing.duplicated_tasks == []

    studio = connect(settings)
    studio.sdk.annotations.update(edited["id"], result=[{**CHOICES, "value": {"choices": ["carrot", "stick"]}}])
    edit = pull(store, settings, codebook, show_progress=False)
    assert (edit.fetched_tasks, edit.new, edit.updated, edit.deleted, edit.unchanged) == (1, 0, 1, 0, 1)
    (row,) = rows(store, "SELECT codes FROM annotations WHERE annotation_id = ?", (edited["id"],))
    assert json.loads(row["codes"]) == ["carrot", "stick"]

    gone = task_for(store, pid, segs[1])
    studio.sdk.tasks.delete(gone)  # with its annotation
    (twin,) = [
        t
        for t in studio.sdk.tasks.list(project=pid, fields="task_only", include="id,data")
        if t.data["segment_id"] == segs[2]
    ]
    studio.sdk.projects.import_tasks(pid, request=[{"data": twin.data}])  # the same segment in a second task
    both = pull(store, settings, codebook, show_progress=False)
    assert [(t.task_id, t.segment_id, t.annotations) for t in both.deleted_tasks] == [(gone, segs[1], 1)]
    assert both.deleted == 1 and both.changed == 1 and both.fetched_tasks == 1  # the new twin
    (dup,) = both.duplicated_tasks
    assert dup.segment_id == segs[2] and twin.id in dup.task_ids and len(dup.task_ids) == 2
    assert any("is held by 2 tasks" in w for w in both.warnings)
    (kept,) = rows(store, "SELECT deleted FROM annotations WHERE task_id = ?", (gone,))
    assert kept["deleted"] == 1

    after = pull(store, settings, codebook, show_progress=False)
    assert (after.fetched_tasks, after.changed, after.deleted_tasks) == (0, 0, [])
    assert len(after.duplicated_tasks) == 1  # still on the server: still listed


def test_cli_pull_full_exports_everything_and_reports_no_change(studio_server, tmp_path, codebook, cli):
    store = make_workspace(tmp_path / "ws", n_docs=1, turns=3)
    settings = studio_server.workspace_settings(tmp_path / "ws")
    pid = push(store, settings, codebook, show_progress=False).projects[0].id
    annotate(admin_session(studio_server), task_for(store, pid, store.segments()[0].id), ["stick"])
    pull(store, settings, codebook, show_progress=False)
    store.close()
    config = tmp_path / "pipeline.yaml"
    config.write_text(f"studio:\n  api_key_file: {studio_server.key_file}\n  api_key_env: CULTURECODE_TEST_UNSET_KEY\n")
    common = ["--workspace", tmp_path / "ws", "--config", config, "--url", studio_server.url, "--codebook"]
    common += [settings.codebook, "--quiet"]
    full = cli("pull", *common, "--full", "--json")
    assert full.exit_code == 0, full.output
    report = json.loads(full.stdout)
    assert report["full"] and report["fetched_tasks"] == 1 and report["changed"] == 0 and report["unchanged"] == 1
    shown = cli("pull", *common)
    assert shown.exit_code == 0, shown.output
    assert "changes only, 0 task(s) fetched" in shown.stdout and "0 new, 0 edited, 0 deleted" in shown.stdout
