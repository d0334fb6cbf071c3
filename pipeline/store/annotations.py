"""Label Studio projects, tasks (which task holds which segment) and the annotations pulled back.

Two rules are written here once:
- a *kept* annotation is neither deleted on the server nor skipped (cancelled);
- a *live* annotation is a kept one from an annotation project: review-project decisions are the
  adjudicator's, not a rater's, so they never count as ratings.

Annotations of a superseded segment (see `pipeline.store.segments`) stay in the ledger but count
nowhere; when a re-ingest carried them over to the edited segment, a copy of each lives there
(`carried_from` names the old segment) and counts as the annotation.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.store.db import ACTIVE, Store, dumps, now, tally_codes

KEPT = "a.deleted = 0 AND a.was_cancelled = 0"
_REVIEW_PROJECT = (
    "SELECT 1 FROM studio_projects p WHERE p.server_url = a.server_url AND p.id = a.project_id AND p.role = 'review'"
)
LIVE = f"{KEPT} AND NOT EXISTS ({_REVIEW_PROJECT})"
IN_REVIEW = f"{KEPT} AND EXISTS ({_REVIEW_PROJECT})"
# "on an active segment", spelt "not on a superseded one": the few superseded ids come from the partial index
# `segments_superseded`, where looking each annotation's segment up would read pages all over a large table (0.2 s
# per query for 40,000 annotations at a million segments); equal, annotation rows referencing segments (foreign key)
_SUPERSEDED_IDS = "SELECT id FROM segments WHERE superseded_at IS NOT NULL"
ON_ACTIVE_SEGMENT = f"a.segment_id NOT IN ({_SUPERSEDED_IDS})"
# the order in which edits happened: the latest annotation of a (segment, annotator) comes last
CHRONOLOGICAL = "COALESCE(a.updated_at, a.created_at, a.pulled_at), a.annotation_id"


# --------------------------------------------------------------------------- projects


def projects(store: Store, url: str, role: str | None = None) -> list[sqlite3.Row]:
    """The workspace's projects on the server at `url` (of `role`, when given), by id."""
    sql = "SELECT * FROM studio_projects WHERE server_url = ?"
    params: list[Any] = [url]
    if role:
        sql += " AND role = ?"
        params.append(role)
    return store.conn.execute(sql + " ORDER BY id", params).fetchall()


def find_project(store: Store, url: str, role: str, annotator: str | None) -> sqlite3.Row | None:
    """The newest project of (role, annotator); annotator None is the shared project."""
    return store.conn.execute(
        "SELECT * FROM studio_projects WHERE server_url = ? AND role = ? AND annotator IS ? ORDER BY id DESC",
        (url, role, annotator),
    ).fetchone()


def add_project(
    store: Store, url: str, project_id: int, title: str, role: str, annotator: str | None, codebook_hash: str
) -> None:
    store.conn.execute(
        "INSERT INTO studio_projects(id, server_url, title, role, annotator, codebook_hash, created_at) "
        "VALUES(?, ?, ?, ?, ?, ?, ?)",
        (project_id, url, title, role, annotator, codebook_hash, now()),
    )


def forget_project(store: Store, url: str, project_id: int) -> None:
    """Drop a project and its task ledger (its annotations stay: they were made)."""
    store.conn.execute("DELETE FROM tasks WHERE server_url = ? AND project_id = ?", (url, project_id))
    store.conn.execute("DELETE FROM studio_projects WHERE server_url = ? AND id = ?", (url, project_id))


def set_project_codebook(store: Store, url: str, project_id: int, codebook_hash: str) -> None:
    store.conn.execute(
        "UPDATE studio_projects SET codebook_hash = ? WHERE server_url = ? AND id = ?", (codebook_hash, url, project_id)
    )


def project_annotators(store: Store, url: str, role: str) -> list[str | None]:
    """Who the projects of `role` are for (None: the shared project)."""
    rows = store.conn.execute(
        "SELECT DISTINCT annotator FROM studio_projects WHERE server_url = ? AND role = ?", (url, role)
    )
    return [r[0] for r in rows]


# --------------------------------------------------------------------------- tasks


def task_ledger(store: Store, url: str, project_id: int) -> list[dict[str, Any]]:
    """The project's task rows as dicts (task_id, segment_id, model_version, pushed_at, ...)."""
    rows = store.conn.execute("SELECT * FROM tasks WHERE server_url = ? AND project_id = ?", (url, project_id))
    return [dict(r) for r in rows]


def record_tasks(store: Store, url: str, project_id: int, tasks: Iterable[tuple[int, str, str | None]]) -> None:
    """Remember (task id, segment id, model version shown) rows of a project, replacing older ones. A row keeps its
    recorded stream (`set_task_streams`) while its task stays the same; a new task for the segment starts without."""
    stamp = now()
    rows = [(url, project_id, tid, seg, version, stamp) for tid, seg, version in tasks]
    store.conn.executemany(
        "DELETE FROM tasks WHERE server_url = ? AND project_id = ? AND task_id = ? AND segment_id != ?",
        [(url, project_id, tid, seg) for url, project_id, tid, seg, _, _ in rows],
    )
    store.conn.executemany(
        "INSERT INTO tasks(server_url, project_id, task_id, segment_id, model_version, pushed_at) "
        "VALUES(?, ?, ?, ?, ?, ?) ON CONFLICT(server_url, project_id, segment_id) DO UPDATE SET "
        "stream = CASE WHEN task_id = excluded.task_id THEN stream END, "
        "inclusion_probability = CASE WHEN task_id = excluded.task_id THEN inclusion_probability END, "
        "stream_order = CASE WHEN task_id = excluded.task_id THEN stream_order END, "
        "task_id = excluded.task_id, model_version = excluded.model_version, pushed_at = excluded.pushed_at",
        rows,
    )


def set_task_streams(
    store: Store, url: str, project_id: int, streams: Iterable[tuple[int, str, float | None, str]]
) -> None:
    """Record (task id, stream, inclusion probability, sort key) of a project's tasks: the sampling design as pushed
    (pipeline/studio/stream.py)."""
    store.conn.executemany(
        "UPDATE tasks SET stream = ?, inclusion_probability = ?, stream_order = ? "
        "WHERE server_url = ? AND project_id = ? AND task_id = ?",
        [(stream, p, order, url, project_id, tid) for tid, stream, p, order in streams],
    )


def annotated_task_ids(store: Store, url: str, project_id: int) -> set[int]:
    """Tasks of the project with a pulled annotation (cancelled ones too): their stream is settled."""
    rows = store.conn.execute(
        "SELECT DISTINCT task_id FROM annotations WHERE server_url = ? AND project_id = ? AND carried_from IS NULL",
        (url, project_id),
    )
    return {r[0] for r in rows}


def task_streams(store: Store) -> list[dict[str, Any]]:
    """Every recorded task's (segment, project, stream, inclusion probability, model version shown)."""
    rows = store.conn.execute(
        "SELECT server_url, project_id, task_id, segment_id, model_version, stream, inclusion_probability, "
        "stream_order FROM tasks ORDER BY server_url, project_id, task_id"
    )
    return [dict(r) for r in rows]


def stream_segments(store: Store, stream: str) -> set[str]:
    """Segments with a task recorded in `stream` (e.g. 'audit', 'blind')."""
    return {r[0] for r in store.conn.execute("SELECT DISTINCT segment_id FROM tasks WHERE stream = ?", (stream,))}


def drop_task(store: Store, url: str, project_id: int, segment_id: str) -> None:
    store.conn.execute(
        "DELETE FROM tasks WHERE server_url = ? AND project_id = ? AND segment_id = ?", (url, project_id, segment_id)
    )


def tasks_shown_other_version(store: Store, url: str, project_id: int, model_version: str) -> list[sqlite3.Row]:
    """(task_id, segment_id) of the project's tasks whose pre-labels are not `model_version`'s."""
    return store.conn.execute(
        "SELECT task_id, segment_id FROM tasks WHERE server_url = ? AND project_id = ? AND model_version IS NOT ?",
        (url, project_id, model_version),
    ).fetchall()


def count_tasks_to_update(store: Store, url: str, project_id: int, model_version: str) -> int:
    """Tasks that show another version's pre-labels while `model_version` has predictions for them."""
    return store.conn.execute(
        "SELECT COUNT(*) FROM tasks t JOIN predictions p ON p.segment_id = t.segment_id AND p.model_version = ? "
        "WHERE t.server_url = ? AND t.project_id = ? AND t.model_version IS NOT ?",
        (model_version, url, project_id, model_version),
    ).fetchone()[0]


def set_task_versions(store: Store, url: str, project_id: int, task_ids: Iterable[int], model_version: str) -> None:
    stamp = now()
    store.conn.executemany(
        "UPDATE tasks SET model_version = ?, pushed_at = ? WHERE server_url = ? AND project_id = ? AND task_id = ?",
        [(model_version, stamp, url, project_id, tid) for tid in task_ids],
    )


def count_tasks(store: Store, url: str | None = None, project_id: int | None = None) -> int:
    """Tasks of one project (url and project_id), or of the whole workspace."""
    if url is None:
        return store.conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
    return store.conn.execute(
        "SELECT COUNT(*) FROM tasks WHERE server_url = ? AND project_id = ?", (url, project_id)
    ).fetchone()[0]


# --------------------------------------------------------------------------- annotations as pulled


def project_annotations(store: Store, url: str, project_id: int) -> dict[int, sqlite3.Row]:
    """{annotation id: stored row} of one project, deleted ones included (the originals as pulled,
    not the copies carried over to edited segments)."""
    rows = store.conn.execute(
        "SELECT * FROM annotations WHERE server_url = ? AND project_id = ? AND carried_from IS NULL", (url, project_id)
    )
    return {r["annotation_id"]: r for r in rows}


def upsert_annotations(store: Store, rows: Iterable[dict[str, Any]]) -> None:
    """Insert or replace annotation rows as pulled (dicts of column -> value; `codes` as a JSON
    string), stamped as pulled now; the same (server_url, annotation_id) again replaces it."""
    stamp = now()
    for row in rows:
        cols = ", ".join(row) + ", pulled_at"
        marks = ", ".join("?" * (len(row) + 1))
        store.conn.execute(f"INSERT OR REPLACE INTO annotations({cols}) VALUES({marks})", (*row.values(), stamp))


def mark_deleted(store: Store, url: str, annotation_ids: Iterable[int]) -> None:
    """Annotations deleted on the server stay in the ledger, flagged (their carried copies too)."""
    stamp = now()
    store.conn.executemany(
        "UPDATE annotations SET deleted = 1, pulled_at = ? WHERE server_url = ? AND annotation_id = ?",
        [(stamp, url, aid) for aid in annotation_ids],
    )


_COPIED = (
    "project_id, task_id, annotator, codes, was_cancelled, deleted, lead_time, prediction_version, "
    "codebook_hash, created_at, updated_at, pulled_at"
)


def carry_annotations(store: Store, old_segment: str, new_segment: str) -> int:
    """Copy every annotation of `old_segment` onto `new_segment` (marked as carried from it); a copy
    made before is refreshed, an original already on `new_segment` is never touched. Returns the
    annotations of `old_segment`."""
    refresh = ", ".join(f"{c} = excluded.{c}" for c in _COPIED.split(", "))
    store.conn.execute(
        f"INSERT INTO annotations(server_url, annotation_id, segment_id, carried_from, {_COPIED}) "
        f"SELECT server_url, annotation_id, ?, segment_id, {_COPIED} FROM annotations WHERE segment_id = ? "
        f"ON CONFLICT(server_url, annotation_id, segment_id) DO UPDATE SET {refresh}, "
        "carried_from = excluded.carried_from WHERE annotations.carried_from IS NOT NULL",
        (new_segment, old_segment),
    )
    return store.conn.execute("SELECT COUNT(*) FROM annotations WHERE segment_id = ?", (old_segment,)).fetchone()[0]


def count_left_behind(store: Store) -> int:
    """Kept annotations on superseded segments whose work was not carried over: in the ledger, but
    counted nowhere (carried ones count through their copies)."""
    left = f"{_SUPERSEDED_IDS} AND superseded_by IS NULL"
    sql = f"SELECT COUNT(*) FROM annotations a WHERE {KEPT} AND a.segment_id IN ({left})"
    return store.conn.execute(sql).fetchone()[0]


# --------------------------------------------------------------------------- annotations as ratings


@dataclass
class Annotation:
    """One kept annotation with its segment's document and text."""

    annotation_id: int
    segment_id: str
    annotator: str
    codes: list[str]
    prediction_version: str | None
    document_id: str
    text: str
    extra: dict[str, Any] = field(default_factory=dict)


_ANNOTATION_SQL = (
    "SELECT a.annotation_id, a.segment_id, a.annotator, a.codes, a.prediction_version, "
    f"s.document_id, s.text FROM annotations a JOIN segments s ON s.id = a.segment_id WHERE s.{ACTIVE} AND "
)


def _annotations(store: Store, rule: str, filters: list[str], params: list[Any]) -> list[Annotation]:
    sql = _ANNOTATION_SQL + " AND ".join([rule, *filters]) + f" ORDER BY {CHRONOLOGICAL}"
    return [Annotation(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6]) for r in store.conn.execute(sql, params)]


def live_annotations(
    store: Store,
    annotators: list[str] | None = None,
    documents: list[str] | None = None,
    since: str | None = None,
    codebook_hash: str | None = None,
) -> list[Annotation]:
    """The ratings: kept annotations of annotation projects, oldest edit first (so that, read in
    order, the latest annotation of a segment by an annotator wins). Optional filters: annotators,
    documents, last edit at or after `since`, made with the codebook `codebook_hash`."""
    filters: list[str] = []
    params: list[Any] = []
    if annotators:
        filters.append("a.annotator IN (SELECT value FROM json_each(?))")
        params.append(dumps(list(annotators)))
    if documents:
        filters.append("s.document_id IN (SELECT value FROM json_each(?))")
        params.append(dumps(list(documents)))
    if since:
        filters.append("COALESCE(a.updated_at, a.created_at, a.pulled_at) >= ?")
        params.append(since)
    if codebook_hash:
        filters.append("a.codebook_hash = ?")
        params.append(codebook_hash)
    return _annotations(store, LIVE, filters, params)


def review_annotations(store: Store) -> list[Annotation]:
    """Adjudicators' decisions: kept annotations of review projects, oldest edit first."""
    return _annotations(store, IN_REVIEW, [], [])


def segments_sent_to(store: Store, annotator: str) -> set[str]:
    """Segments already in `annotator`'s annotation projects (any server) or annotated by them."""
    rows = store.conn.execute(
        "SELECT t.segment_id FROM tasks t JOIN studio_projects p ON p.server_url = t.server_url "
        "AND p.id = t.project_id WHERE p.role = 'annotation' AND p.annotator = ? "
        f"UNION SELECT a.segment_id FROM annotations a WHERE a.annotator = ? AND {KEPT}",
        (annotator, annotator),
    )
    return {r[0] for r in rows}


def annotated_segment_ids(store: Store) -> set[str]:
    """Active segments with at least one kept annotation (review projects included)."""
    rows = store.conn.execute(f"SELECT DISTINCT a.segment_id FROM annotations a WHERE {KEPT} AND {ON_ACTIVE_SEGMENT}")
    return {r[0] for r in rows}


def unannotated_segment_ids(store: Store) -> list[str]:
    """Active segments without any kept annotation (review projects included), in document order."""
    rows = store.conn.execute(
        f"SELECT id FROM segments s WHERE s.{ACTIVE} AND NOT EXISTS (SELECT 1 FROM annotations a "
        f"WHERE a.segment_id = s.id AND {KEPT}) ORDER BY document_id, position"
    )
    return [r[0] for r in rows]


@dataclass
class AnnotationCounts:
    annotations: int  # kept (review projects included)
    skipped: int
    annotated_segments: int
    annotators: int


def annotation_counts(store: Store) -> AnnotationCounts:
    """Annotations on active segments."""
    kept = store.conn.execute(
        "SELECT COUNT(*), COUNT(DISTINCT a.segment_id), COUNT(DISTINCT a.annotator) FROM annotations a "
        f"WHERE {KEPT} AND {ON_ACTIVE_SEGMENT}"
    ).fetchone()
    skipped = store.conn.execute(
        f"SELECT COUNT(*) FROM annotations a WHERE a.deleted = 0 AND a.was_cancelled = 1 AND {ON_ACTIVE_SEGMENT}"
    )
    return AnnotationCounts(kept[0], skipped.fetchone()[0], kept[1], kept[2])


def annotated_per_code(store: Store) -> dict[str, int]:
    """{code: kept annotations on active segments (review projects included) that chose it}."""
    return tally_codes(store, "annotations", f"{KEPT} AND {ON_ACTIVE_SEGMENT}", alias="a")


def count_annotations(store: Store) -> int:
    """Every annotation row, deleted and skipped ones and carried copies included."""
    return store.conn.execute("SELECT COUNT(*) FROM annotations").fetchone()[0]
