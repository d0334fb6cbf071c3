"""push and pull against a real Label Studio: projects, pre-labels, annotators, idempotence."""

from __future__ import annotations

import json
import uuid

import pytest

from pipeline.errors import CultureCodeError
from pipeline.studio import add_annotators, connect, pull, push
from tests.integration.conftest import add_model, make_workspace, rows

pytestmark = pytest.mark.integration


def annotate(http, task_id: int, codes: list[str], lead_time: float = 4.0, cancelled: bool = False) -> dict:
    result = (
        [] if cancelled else [{"from_name": "codes", "to_name": "text", "type": "choices", "value": {"choices": codes}}]
    )
    resp = http.post(
        f"/api/tasks/{task_id}/annotations/",
        json={"result": result, "lead_time": lead_time, "was_cancelled": cancelled},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def server_tasks(studio, project_id: int) -> list[dict]:
    """The project's tasks with predictions, as plain dicts."""
    return [t.model_dump() for t in studio.sdk.tasks.list(project=project_id, fields="all", page_size=1000)]


def task_for(store, project_id: int, segment_id: str) -> int:
    return rows(store, "SELECT task_id FROM tasks WHERE project_id = ? AND segment_id = ?", (project_id, segment_id))[
        0
    ][0]


def test_push_imports_every_segment_with_visible_prelabels_once(studio_server, tmp_path, codebook):
    store = make_workspace(tmp_path / "ws")
    settings = studio_server.workspace_settings(tmp_path / "ws")
    report = push(store, settings, codebook, show_progress=False)
    assert report.imported == 8 and len(report.projects) == 1
    pid = report.projects[0].id
    studio = connect(settings)
    project = studio.sdk.projects.get(pid)
    assert project.show_collab_predictions and project.model_version == "v1"
    tasks = server_tasks(studio, pid)
    assert sorted(t["data"]["segment_id"] for t in tasks) == sorted(s.id for s in store.segments())
    expected = {r["segment_id"]: json.loads(r["codes"]) for r in rows(store, "SELECT * FROM predictions")}
    for task in tasks:
        (pred,) = task["predictions"]
        assert pred["model_version"] == "v1" and 0 < pred["score"] <= 1
        assert pred["result"][0]["value"]["choices"] == expected[task["data"]["segment_id"]]
    again = push(store, settings, codebook, show_progress=False)
    assert again.imported == 0 and again.projects[0].id == pid
    assert len(server_tasks(studio, pid)) == 8
    assert store.count("tasks") == 8


def test_rationale_is_shown_in_the_task(studio_server, tmp_path, codebook):
    store = make_workspace(tmp_path / "ws", n_docs=1, turns=2, model_version=None)
    add_model(store, "llm-1", codebook.content_hash, rationale="mentions a hostel bed")
    settings = studio_server.workspace_settings(tmp_path / "ws")
    pid = push(store, settings, codebook, show_progress=False).projects[0].id
    tasks = server_tasks(connect(settings), pid)
    assert all("mentions a hostel bed" in t["data"]["rationale"] for t in tasks)
    assert '<Text name="rationale" value="$rationale"' in connect(settings).sdk.projects.get(pid).label_config


def test_push_defaults_to_the_classifier_and_with_llm_shows_the_llm_reasons(studio_server, tmp_path, cli, codebook):
    store = make_workspace(tmp_path / "ws", n_docs=1, turns=3)  # classifier v1 is current
    add_model(
        store,
        "llm-1",
        codebook.content_hash,
        kind="llm",
        codes_for=lambda i: ["carrot"],
        rationale="offers the hostel bed",
    )  # newer than v1, but not the default for push
    store.close()
    config = tmp_path / "pipeline.yaml"
    config.write_text(
        f"studio:\n  api_key_file: {studio_server.key_file}\n  api_key_env: CULTURECODE_TEST_UNSET_KEY\n"
        "admission:\n  enabled: false\n"
    )
    common = [
        "--workspace",
        tmp_path / "ws",
        "--config",
        config,
        "--url",
        studio_server.url,
        "--codebook",
        studio_server.workspace_settings(tmp_path).codebook,
        "--quiet",
        "--json",
    ]
    first = cli("push", *common)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["model_version"] == "v1"
    with_llm = cli("push", *common, "--with", "llm")
    assert with_llm.exit_code == 0, with_llm.output
    report = json.loads(with_llm.stdout)
    assert report["model_version"] == "llm-1" and report["imported"] == 0
    settings = studio_server.workspace_settings(tmp_path / "ws")
    pid = report["projects"][0]["id"]
    assert connect(settings).sdk.projects.get(pid).model_version == "llm-1"
    for task in server_tasks(connect(settings), pid):
        assert task["data"]["rationale"] == "Model's reasoning: offers the hostel bed"
        assert {p["model_version"]: p["result"][0]["value"]["choices"] for p in task["predictions"]}["llm-1"] == [
            "carrot"
        ]
    wrong = cli("push", *common, "--with", "oracle")
    assert (
        wrong.exit_code == 2
        and "no labeller of that name" in wrong.output
        and "installed: classifier, llm" in wrong.output
    )


def test_each_annotator_gets_a_project_and_pull_names_them(studio_server, tmp_path, codebook):
    store = make_workspace(tmp_path / "ws", n_docs=1, turns=3)
    settings = studio_server.workspace_settings(tmp_path / "ws")
    people = add_annotators(connect(settings), settings, [f"ann-{uuid.uuid4().hex[:8]}", f"ann-{uuid.uuid4().hex[:8]}"])
    assert all(p.created and p.password for p in people)
    report = push(store, settings, codebook, annotators=[p.email for p in people], show_progress=False)
    projects = {p.annotator: p.id for p in report.projects}
    assert len(set(projects.values())) == 2 and all(p.tasks == 3 for p in report.projects)
    seg = store.segments()[0].id
    for person, codes in zip(people, (["carrot"], ["carrot", "stick"]), strict=True):
        http = studio_server.login(person.email, person.password)
        annotate(http, task_for(store, projects[person.email], seg), codes, lead_time=7.5)
    first = pull(store, settings, codebook, show_progress=False)
    assert (first.new, first.updated, first.deleted, first.warnings) == (2, 0, 0, [])
    got = {
        r["annotator"]: (json.loads(r["codes"]), r["lead_time"], r["prediction_version"], r["segment_id"])
        for r in rows(store, "SELECT * FROM annotations")
    }
    assert got == {
        people[0].email: (["carrot"], 7.5, "v1", seg),
        people[1].email: (["carrot", "stick"], 7.5, "v1", seg),
    }
    again = pull(store, settings, codebook, show_progress=False)
    assert (again.new, again.updated, again.deleted, again.unchanged) == (0, 0, 0, 2)


def test_pull_records_edits_deletions_and_skips(studio_server, tmp_path, codebook):
    store = make_workspace(tmp_path / "ws", n_docs=1, turns=3)
    settings = studio_server.workspace_settings(tmp_path / "ws")
    pid = push(store, settings, codebook, show_progress=False).projects[0].id
    admin = studio_server.login(
        studio_server.settings.studio.username, studio_server.password(studio_server.settings.studio.username)
    )
    segs = [s.id for s in store.segments()]
    edited = annotate(admin, task_for(store, pid, segs[0]), ["stick"])
    dropped = annotate(admin, task_for(store, pid, segs[1]), ["carrot"])
    annotate(admin, task_for(store, pid, segs[2]), [], cancelled=True)
    assert pull(store, settings, codebook, show_progress=False).new == 3
    studio = connect(settings)
    studio.sdk.annotations.update(
        edited["id"],
        result=[
            {"from_name": "codes", "to_name": "text", "type": "choices", "value": {"choices": ["carrot", "stick"]}}
        ],
    )
    studio.sdk.annotations.delete(dropped["id"])
    report = pull(store, settings, codebook, show_progress=False)
    assert (report.new, report.updated, report.deleted) == (0, 1, 1)
    by_id = {r["annotation_id"]: r for r in rows(store, "SELECT * FROM annotations")}
    assert json.loads(by_id[edited["id"]]["codes"]) == ["carrot", "stick"]
    assert by_id[dropped["id"]]["deleted"] == 1
    assert [r["was_cancelled"] for r in by_id.values() if r["segment_id"] == segs[2]] == [1]


def test_new_model_version_updates_only_unannotated_tasks(studio_server, tmp_path, codebook):
    store = make_workspace(tmp_path / "ws", n_docs=1, turns=4)
    settings = studio_server.workspace_settings(tmp_path / "ws")
    pid = push(store, settings, codebook, show_progress=False).projects[0].id
    admin = studio_server.login(
        studio_server.settings.studio.username, studio_server.password(studio_server.settings.studio.username)
    )
    done = store.segments()[0].id
    annotate(admin, task_for(store, pid, done), ["stick"])
    add_model(store, "v2", codebook.content_hash, codes_for=lambda i: ["carrot", "stick"])
    report = push(store, settings, codebook, show_progress=False)
    assert report.projects[0].predictions_updated == 3 and report.imported == 0
    studio = connect(settings)
    assert studio.sdk.projects.get(pid).model_version == "v2"
    for task in server_tasks(studio, pid):
        versions = sorted(p["model_version"] for p in task["predictions"])
        assert versions == (["v1"] if task["data"]["segment_id"] == done else ["v1", "v2"])
    assert {r[0] for r in rows(store, "SELECT model_version FROM tasks WHERE segment_id != ?", (done,))} == {"v2"}


def test_changed_codebook_is_refused_unless_update_config(studio_server, tmp_path, codebook):
    store = make_workspace(tmp_path / "ws", n_docs=1, turns=2)
    settings = studio_server.workspace_settings(tmp_path / "ws")
    pid = push(store, settings, codebook, show_progress=False).projects[0].id
    admin = studio_server.login(
        studio_server.settings.studio.username, studio_server.password(studio_server.settings.studio.username)
    )
    annotate(admin, task_for(store, pid, store.segments()[0].id), ["carrot"])
    grown = codebook.model_copy(
        update={"codes": [*codebook.codes, codebook.codes[0].model_copy(update={"id": "referral", "name": "Referral"})]}
    )
    with pytest.raises(CultureCodeError, match="another codebook.*--update-config"):
        push(store, settings, grown, show_progress=False)
    report = push(store, settings, grown, update_config=True, show_progress=False)
    assert report.projects[0].config_updated and report.projects[0].id == pid
    studio = connect(settings)
    assert 'value="referral"' in studio.sdk.projects.get(pid).label_config
    assert studio.sdk.projects.get(pid).total_annotations_number == 1
    push(store, settings, grown, show_progress=False)  # the new codebook is now the project's


def test_cli_push_and_status_json_agree_with_the_workspace(studio_server, tmp_path, cli):
    make_workspace(tmp_path / "ws", n_docs=1, turns=3)
    config = tmp_path / "pipeline.yaml"
    config.write_text(
        f"studio:\n  api_key_file: {studio_server.key_file}\n  api_key_env: CULTURECODE_TEST_UNSET_KEY\n"
        "admission:\n  enabled: false\n"
    )
    common = ["--workspace", tmp_path / "ws", "--config", config, "--url", studio_server.url]
    first = cli(
        "push",
        *common,
        "--codebook",
        studio_server.workspace_settings(tmp_path).codebook,
        "--annotators",
        "x1,x2",
        "--quiet",
    )
    assert first.exit_code == 0, first.output
    assert first.stdout.count("3 imported") == 2 and first.stdout.count("(new project)") == 2
    status = cli("studio", "status", *common, "--json")
    assert status.exit_code == 0, status.output
    report = json.loads(status.stdout)
    assert report["running"] and report["tasks"] == 6
    assert sorted(p["tasks"] for p in report["projects"]) == [3, 3]
    assert all(p["annotations"] == 0 for p in report["projects"])
    assert studio_server.api_key not in first.stdout + status.stdout
