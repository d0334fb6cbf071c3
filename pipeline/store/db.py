"""The workspace database: one SQLite file per annotation project, the single source of truth.

Schema changes are numbered migrations applied in order (`PRAGMA user_version` holds the
version). Every stage writes inside `store.transaction()`, so a killed run leaves the database as
it was before the run. JSON columns hold lists of codes and per-code score mappings.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.errors import CultureCodeError
from pipeline.store.backup import (
    PRIVATE_DIR,
    BackupPolicy,
    DefaultBackups,
    backup_due,
    check_file,
    create_private,
    damaged,
    is_corruption,
    quick_check,
    take_backup,
)
from pipeline.store.lock import acquire as acquire_lock
from pipeline.store.runs import mark_interrupted, run_owner

DB_NAME = "culturecode.db"
TABLES = (
    "meta",
    "documents",
    "segments",
    "models",
    "predictions",
    "studio_projects",
    "tasks",
    "annotations",
    "gold",
    "runs",
    "llm_cache",
    "prediction_counts",
    "prediction_codes",
    "fields",
)

# the trigger bodies of migration 4: count a prediction (NEW) in, or out (OLD), of the tallies
_TALLY_ADD = """
    INSERT INTO prediction_counts(model_version, predictions) VALUES (NEW.model_version, 1)
        ON CONFLICT(model_version) DO UPDATE SET predictions = predictions + 1;
    INSERT INTO prediction_codes(model_version, code, segments)
        SELECT NEW.model_version, value, 1 FROM json_each(NEW.codes) WHERE true
        ON CONFLICT(model_version, code) DO UPDATE SET segments = segments + 1;
"""
_TALLY_REMOVE = """
    UPDATE prediction_counts SET predictions = predictions - 1 WHERE model_version = OLD.model_version;
    DELETE FROM prediction_counts WHERE model_version = OLD.model_version AND predictions <= 0;
    UPDATE prediction_codes
        SET segments = segments - (SELECT COUNT(*) FROM json_each(OLD.codes) j WHERE j.value = prediction_codes.code)
        WHERE model_version = OLD.model_version AND code IN (SELECT value FROM json_each(OLD.codes));
    DELETE FROM prediction_codes WHERE model_version = OLD.model_version AND segments <= 0;
"""

MIGRATIONS: list[str] = [
    # 1: the initial schema
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE documents (
        id TEXT PRIMARY KEY,
        source_path TEXT NOT NULL,
        format TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}',
        ingested_at TEXT NOT NULL
    );
    CREATE TABLE segments (
        id TEXT PRIMARY KEY,
        document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        speaker TEXT,
        text TEXT NOT NULL,
        start_time REAL,
        end_time REAL,
        metadata TEXT NOT NULL DEFAULT '{}',
        UNIQUE (document_id, position)
    );
    CREATE INDEX segments_by_document ON segments(document_id, position);
    CREATE TABLE models (
        version TEXT PRIMARY KEY,
        kind TEXT NOT NULL DEFAULT 'classifier',
        path TEXT,
        codebook_hash TEXT NOT NULL,
        is_current INTEGER NOT NULL DEFAULT 0,
        metrics TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL
    );
    CREATE TABLE predictions (
        segment_id TEXT NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
        model_version TEXT NOT NULL,
        scores TEXT NOT NULL,
        codes TEXT NOT NULL,
        rationale TEXT,
        codebook_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (segment_id, model_version)
    );
    CREATE TABLE studio_projects (
        id INTEGER NOT NULL,
        server_url TEXT NOT NULL,
        title TEXT NOT NULL,
        role TEXT NOT NULL DEFAULT 'annotation',
        annotator TEXT,
        codebook_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (server_url, id)
    );
    CREATE TABLE tasks (
        server_url TEXT NOT NULL,
        project_id INTEGER NOT NULL,
        task_id INTEGER NOT NULL,
        segment_id TEXT NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
        model_version TEXT,
        pushed_at TEXT NOT NULL,
        PRIMARY KEY (server_url, project_id, segment_id),
        UNIQUE (server_url, project_id, task_id)
    );
    CREATE TABLE annotations (
        server_url TEXT NOT NULL,
        project_id INTEGER NOT NULL,
        annotation_id INTEGER NOT NULL,
        task_id INTEGER NOT NULL,
        segment_id TEXT NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
        annotator TEXT NOT NULL,
        codes TEXT NOT NULL,
        was_cancelled INTEGER NOT NULL DEFAULT 0,
        deleted INTEGER NOT NULL DEFAULT 0,
        lead_time REAL,
        prediction_version TEXT,
        codebook_hash TEXT NOT NULL,
        created_at TEXT,
        updated_at TEXT,
        pulled_at TEXT NOT NULL,
        PRIMARY KEY (server_url, annotation_id)
    );
    CREATE INDEX annotations_by_segment ON annotations(segment_id);
    CREATE TABLE gold (
        segment_id TEXT PRIMARY KEY REFERENCES segments(id) ON DELETE CASCADE,
        codes TEXT NOT NULL,
        method TEXT NOT NULL,
        votes TEXT NOT NULL DEFAULT '{}',
        codebook_hash TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        stage TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        args TEXT NOT NULL DEFAULT '{}',
        summary TEXT NOT NULL DEFAULT '{}'
    );
    """,
    # 2: LLM responses, keyed by backend, model, prompt version, rendered prompt and sampling settings
    """
    CREATE TABLE llm_cache (
        key TEXT PRIMARY KEY,
        backend TEXT NOT NULL,
        model TEXT NOT NULL,
        prompt_version TEXT NOT NULL,
        segment_id TEXT,
        segment_hash TEXT NOT NULL,
        params TEXT NOT NULL,
        response TEXT NOT NULL,
        attempts TEXT NOT NULL DEFAULT '[]',
        error TEXT,
        prompt_tokens INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        seconds REAL NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    );
    CREATE INDEX llm_cache_by_segment ON llm_cache(segment_id);
    """,
    # 3: superseded segments. A re-ingest (`ingest --replace`) keeps a vanished segment that holds
    # annotations, gold or Label Studio tasks instead of deleting it: it leaves the active document
    # (superseded_at set, moved to a far negative position, former_position keeps where it was) and
    # superseded_by names the new segment its work was carried to. A carried annotation or gold row
    # is a copy on the new segment (carried_from: the old segment), so the annotations key gains
    # segment_id and only originals (carried_from NULL) are unique per (server_url, annotation_id).
    """
    ALTER TABLE segments ADD COLUMN superseded_at TEXT;
    ALTER TABLE segments ADD COLUMN superseded_by TEXT;
    ALTER TABLE segments ADD COLUMN former_position INTEGER;
    CREATE INDEX segments_superseded ON segments(document_id) WHERE superseded_at IS NOT NULL;
    CREATE TABLE annotations_v3 (
        server_url TEXT NOT NULL,
        project_id INTEGER NOT NULL,
        annotation_id INTEGER NOT NULL,
        task_id INTEGER NOT NULL,
        segment_id TEXT NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
        annotator TEXT NOT NULL,
        codes TEXT NOT NULL,
        was_cancelled INTEGER NOT NULL DEFAULT 0,
        deleted INTEGER NOT NULL DEFAULT 0,
        lead_time REAL,
        prediction_version TEXT,
        codebook_hash TEXT NOT NULL,
        created_at TEXT,
        updated_at TEXT,
        pulled_at TEXT NOT NULL,
        carried_from TEXT,
        PRIMARY KEY (server_url, annotation_id, segment_id)
    );
    INSERT INTO annotations_v3(server_url, project_id, annotation_id, task_id, segment_id, annotator, codes,
        was_cancelled, deleted, lead_time, prediction_version, codebook_hash, created_at, updated_at, pulled_at)
        SELECT server_url, project_id, annotation_id, task_id, segment_id, annotator, codes, was_cancelled, deleted,
        lead_time, prediction_version, codebook_hash, created_at, updated_at, pulled_at FROM annotations;
    DROP TABLE annotations;
    ALTER TABLE annotations_v3 RENAME TO annotations;
    CREATE INDEX annotations_by_segment ON annotations(segment_id);
    CREATE UNIQUE INDEX annotations_original ON annotations(server_url, annotation_id) WHERE carried_from IS NULL;
    ALTER TABLE gold ADD COLUMN carried_from TEXT;
    """,
    # 4: prediction tallies, so that `status` reads a few rows instead of every prediction. Triggers keep them exact
    # whatever writes or deletes predictions (upserts, deletes, cascades from segments and documents; an
    # INSERT OR REPLACE too, as `_connect` turns recursive triggers on); the migration fills them from the rows.
    # prediction_counts: predictions per model version; prediction_codes: per version, the predictions choosing
    # each code (a code listed twice counts twice, as `json_each` does). Rows that drop to zero are removed.
    f"""
    CREATE TABLE prediction_counts (
        model_version TEXT PRIMARY KEY,
        predictions INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE prediction_codes (
        model_version TEXT NOT NULL,
        code TEXT NOT NULL,
        segments INTEGER NOT NULL,
        PRIMARY KEY (model_version, code)
    ) WITHOUT ROWID;
    INSERT INTO prediction_counts(model_version, predictions)
        SELECT model_version, COUNT(*) FROM predictions GROUP BY model_version;
    INSERT INTO prediction_codes(model_version, code, segments)
        SELECT p.model_version, j.value, COUNT(*) FROM predictions p, json_each(p.codes) j
        GROUP BY p.model_version, j.value;
    CREATE TRIGGER predictions_tally_insert AFTER INSERT ON predictions BEGIN {_TALLY_ADD} END;
    CREATE TRIGGER predictions_tally_delete AFTER DELETE ON predictions BEGIN {_TALLY_REMOVE} END;
    CREATE TRIGGER predictions_tally_update AFTER UPDATE OF model_version, codes ON predictions
        WHEN OLD.model_version IS NOT NEW.model_version OR OLD.codes IS NOT NEW.codes
        BEGIN {_TALLY_REMOVE} {_TALLY_ADD} END;
    """,
    # 5: codebook versions by content hash, with their text (YAML; the JSON kept in meta is valid YAML) and when
    # first seen, so that `recode` keeps the history; filled with the workspace's recorded codebook (RESEARCH)
    """
    CREATE TABLE codebook_versions (
        hash TEXT PRIMARY KEY,
        version TEXT NOT NULL,
        yaml TEXT NOT NULL,
        first_seen TEXT NOT NULL
    );
    INSERT INTO codebook_versions(hash, version, yaml, first_seen)
        SELECT h.value, COALESCE(json_extract(c.value, '$.version'), '1'), c.value,
            COALESCE((SELECT MIN(created_at) FROM predictions WHERE codebook_hash = h.value),
                     (SELECT MIN(pulled_at) FROM annotations WHERE codebook_hash = h.value),
                     strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now'))
        FROM meta h JOIN meta c ON c.key = 'codebook' WHERE h.key = 'codebook_hash';
    """,
    # 6: project calibrations: per-code thresholds of a model version re-tuned on the project's own human labels;
    # the newest row of a version is in force (pipeline/store/calibration.py) (CALIB)
    """
    CREATE TABLE calibrations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        model_version TEXT NOT NULL,
        labels INTEGER NOT NULL,
        labels_hash TEXT NOT NULL,
        thresholds TEXT NOT NULL,
        sources TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX calibrations_by_version ON calibrations(model_version, id);
    """,
    # 7: the embedding cache: a frozen encoder's float32 vector per (encoder key, text SHA-256), least recently
    # used evicted beyond classifier.embedding_cache_rows (pipeline/store/embeddings.py) (LOOP)
    """
    CREATE TABLE embeddings (
        encoder TEXT NOT NULL,
        text_hash TEXT NOT NULL,
        vector BLOB NOT NULL,
        used_at TEXT NOT NULL,
        PRIMARY KEY (encoder, text_hash)
    );
    CREATE INDEX embeddings_by_use ON embeddings(used_at);
    """,
    # 8: the sampling design per Label Studio task (pipeline/studio/stream.py): the stream a task belongs to (blind,
    # audit, or the model-ordered stream's mode), the inclusion probability of a random stream (NULL for the model's
    # choice) and the task's sort key in the label stream (`data.stream_order`); NULL for tasks pushed before (DESIGN)
    """
    ALTER TABLE tasks ADD COLUMN stream TEXT;
    ALTER TABLE tasks ADD COLUMN inclusion_probability REAL;
    ALTER TABLE tasks ADD COLUMN stream_order TEXT;
    """,
    # 9: metadata fields on speakers and documents (role, site, wave, ...) set from a file by `meta set`
    # (pipeline/store/fields.py); a transcript's own header fields stay in documents.metadata (FINDINGS)
    """
    CREATE TABLE fields (
        kind TEXT NOT NULL CHECK (kind IN ('speaker', 'document')),
        key TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        source TEXT NOT NULL,
        set_at TEXT NOT NULL,
        PRIMARY KEY (kind, key, name)
    ) WITHOUT ROWID;
    """,
]


def _no_lock() -> None:
    """The release function of a store that holds no workspace lock."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


@dataclass
class Segment:
    """One speaker turn (or a piece of a long one); the unit annotators label."""

    id: str
    document_id: str
    position: int
    text: str
    speaker: str | None = None
    start_time: float | None = None
    end_time: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Segment":
        return cls(
            id=row["id"],
            document_id=row["document_id"],
            position=row["position"],
            text=row["text"],
            speaker=row["speaker"],
            start_time=row["start_time"],
            end_time=row["end_time"],
            metadata=json.loads(row["metadata"]),
        )


@dataclass
class Document:
    id: str
    source_path: str
    format: str
    content_hash: str
    metadata: dict[str, Any] = field(default_factory=dict)
    ingested_at: str = ""


# a segment in the active document (not superseded by a re-ingest); SQL over the `segments` table
ACTIVE = "superseded_at IS NULL"
# superseded segments take positions below this one, out of the way of any document's own positions
SUPERSEDED_BELOW = -(1 << 40)


@dataclass
class DocumentUpdate:
    """What `Store.put_document` did to a document's segments."""

    added: int = 0  # segments not in the active document before
    deleted: int = 0  # vanished segments without any work on them
    superseded: list[str] = field(default_factory=list)  # vanished segments kept for their work, in old order


class Store:
    """A connection to one workspace's database.

    Opening checks the file first (`backup.check_file`): a damaged database is reported, never written to. A new
    database is built under a temporary name and linked into place, so `culturecode.db` is never an empty file
    that a crash could leave behind. Before a command's first write, a backup is taken when one is due
    (`backups`: `keep` and `every_hours`, the settings' `backups` section)."""

    def __init__(
        self,
        workspace: str | Path,
        create: bool = True,
        backups: BackupPolicy | None = None,
        lock_as: str | None = None,
        busy_wait: float = 10.0,
    ):
        """`lock_as`: hold the workspace lock (`store.lock`) as this command until `close`, waiting up to
        `busy_wait` seconds for another holder; None: no lock (readers, library use)."""
        self.workspace = Path(workspace)
        if not self.workspace.exists():
            if not create:
                raise CultureCodeError(
                    f"workspace '{self.workspace}' does not exist: run `culturecode ingest PATH "
                    f"--workspace {self.workspace}` first"
                )
            self.workspace.mkdir(parents=True, mode=PRIVATE_DIR)
        self.path = self.workspace / DB_NAME
        if not create and not self.path.exists():  # an empty or unrelated folder: left exactly as it is
            raise CultureCodeError(
                f"no workspace in '{self.workspace}': run `culturecode ingest PATH --workspace {self.workspace}` first"
            )
        self.backups: BackupPolicy = backups or DefaultBackups()
        self._depth = 0
        self._unlock = acquire_lock(self.workspace, lock_as, busy_wait) if lock_as else _no_lock
        try:
            self._open()
        except BaseException:
            self._release_lock()
            raise

    def _open(self) -> None:
        check_file(self.path)
        created = not self.path.exists() and _create_database(self.path)
        self._checked = created  # a database this store made holds nothing to check or back up yet
        self.conn = _connect(self.path)
        try:
            self.migrate()
            mark_interrupted(self)
        except BaseException as exc:
            self.conn.close()
            if is_corruption(exc):
                raise damaged(self.path, str(exc)) from None
            raise

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        try:
            self.conn.close()
        finally:
            self._release_lock()

    def _release_lock(self) -> None:
        unlock, self._unlock = self._unlock, _no_lock
        unlock()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.close()
        if exc is not None and is_corruption(exc):
            raise damaged(self.path, str(exc)) from None

    @property
    def schema_version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    def migrate(self) -> None:
        current = self.schema_version
        if current > len(MIGRATIONS):
            raise CultureCodeError(
                f"{self.path} was written by a newer culturecode (schema {current}); upgrade culturecode"
            )
        if current < len(MIGRATIONS):
            self._checked = True
            self._check_and_back_up(force=True)  # before a schema change, a backup whatever the newest one's age
        _apply_migrations(self.conn, current)

    def before_write(self) -> None:
        """Before this store's first write: check every page (`PRAGMA quick_check`, about 0.1 s per 100 MB), so a
        damaged database is never written to, and take the day's backup when one is due."""
        if self._checked or self._depth:
            return
        self._checked = True
        self._check_and_back_up(force=False)

    def back_up_now(self) -> None:
        """A backup whatever the newest one's age (when backups are on), before a change that is hard to undo: a
        codebook switch (`recode`), `ingest --replace`. `restore` then goes back to just before it, not to the first
        write of the day (issue 26 #8). Outside any transaction."""
        if self._depth:
            raise RuntimeError("back_up_now inside a transaction: the backup would miss what it is about to protect")
        self._checked = True
        self._check_and_back_up(force=True)

    def _check_and_back_up(self, force: bool) -> None:
        if self.backups.keep > 0 and (force or backup_due(self.workspace, self.backups)):
            take_backup(self.conn, self.path, self.backups.keep)  # checks first
            return
        problem = quick_check(self.conn)
        if problem:
            raise damaged(self.path, problem)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One all-or-nothing write; nested calls join the outer transaction."""
        if self._depth:
            self._depth += 1
            try:
                yield self.conn
            finally:
                self._depth -= 1
            return
        self.before_write()
        self.conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")
        finally:
            self._depth = 0

    # ------------------------------------------------------------------ meta / codebook

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def record_codebook(self, codebook: Any) -> None:
        """Remember which codebook the workspace labels with (its hash and content), and keep it in the history."""
        self.set_meta("codebook_hash", codebook.content_hash)
        self.set_meta("codebook", dumps(codebook.model_dump()))
        record_codebook_version(self, codebook)

    @property
    def codebook_hash(self) -> str | None:
        return self.get_meta("codebook_hash")

    # ------------------------------------------------------------------ runs

    @contextmanager
    def run(self, stage: str, args: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Record a stage run; the yielded dict becomes its summary. Failed runs are kept too. While it runs, the
        summary names its process, so that the next command can tell a killed run (`runs.mark_interrupted`)."""
        self.before_write()
        cur = self.conn.execute(
            "INSERT INTO runs(stage, status, started_at, args, summary) VALUES(?, 'running', ?, ?, ?)",
            (stage, now(), dumps(args or {}), dumps(run_owner())),
        )
        run_id = cur.lastrowid
        summary: dict[str, Any] = {}
        status = "failed"
        try:
            yield summary
            status = "ok"
        finally:
            self.conn.execute(
                "UPDATE runs SET status = ?, finished_at = ?, summary = ? WHERE id = ?",
                (status, now(), dumps(summary), run_id),
            )

    def last_runs(self, limit: int = 10) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [{**dict(row), "args": json.loads(row["args"]), "summary": json.loads(row["summary"])} for row in rows]

    # ------------------------------------------------------------------ documents and segments

    def document(self, document_id: str) -> Document | None:
        row = self.conn.execute("SELECT * FROM documents WHERE id = ?", (document_id,)).fetchone()
        if row is None:
            return None
        return Document(**{**dict(row), "metadata": json.loads(row["metadata"])})

    def documents(self) -> list[Document]:
        rows = self.conn.execute("SELECT * FROM documents ORDER BY id").fetchall()
        return [Document(**{**dict(r), "metadata": json.loads(r["metadata"])}) for r in rows]

    def put_document(self, doc: Document, segments: Iterable[Segment]) -> DocumentUpdate:
        """Insert or replace one document and its segments (caller holds the transaction).

        Segments that keep their ID survive a replace together with their predictions and
        annotations. A vanished segment is deleted, unless it holds annotations, gold or Label Studio
        tasks (people's work): then it is kept as superseded, out of the active document.
        """
        self.conn.execute(
            "INSERT INTO documents(id, source_path, format, content_hash, metadata, ingested_at) "
            "VALUES(?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET source_path = excluded.source_path, "
            "format = excluded.format, content_hash = excluded.content_hash, "
            "metadata = excluded.metadata, ingested_at = excluded.ingested_at",
            (doc.id, doc.source_path, doc.format, doc.content_hash, dumps(doc.metadata), now()),
        )
        active = f"document_id = ? AND {ACTIVE}"
        rows = self.conn.execute(f"SELECT id FROM segments WHERE {active} ORDER BY position", (doc.id,))
        old_ids = [r[0] for r in rows]
        # positions are unique per document: park the active rows out of the way before rewriting them
        # (superseded rows sit below SUPERSEDED_BELOW, out of this range)
        self.conn.execute(f"UPDATE segments SET position = -1 - position WHERE {active}", (doc.id,))
        new_ids: set[str] = set()
        batch: list[tuple] = []
        for seg in segments:
            new_ids.add(seg.id)
            batch.append(
                (seg.id, doc.id, seg.position, seg.speaker, seg.text, seg.start_time, seg.end_time, dumps(seg.metadata))
            )
            if len(batch) >= 2000:
                self._upsert_segments(batch)
                batch = []
        self._upsert_segments(batch)
        vanished = [i for i in old_ids if i not in new_ids]
        worked = self._with_work(vanished)
        self.conn.executemany("DELETE FROM segments WHERE id = ?", [(i,) for i in vanished if i not in worked])
        superseded = [i for i in vanished if i in worked]
        self._supersede(doc.id, superseded)
        return DocumentUpdate(len(new_ids - set(old_ids)), len(vanished) - len(superseded), superseded)

    def _with_work(self, ids: list[str]) -> set[str]:
        """The segments of `ids` that hold annotations (any, skipped and deleted ones too), gold or tasks."""
        found: set[str] = set()
        for table in ("annotations", "gold", "tasks"):
            rows = self.conn.execute(
                f"SELECT DISTINCT segment_id FROM {table} WHERE segment_id IN (SELECT value FROM json_each(?))",
                (dumps(ids),),
            )
            found.update(r[0] for r in rows)
        return found

    def _supersede(self, document_id: str, ids: list[str]) -> None:
        """Move parked segments out of the active document, each to its own position below the others,
        and drop their predictions."""
        if not ids:
            return
        lowest = self.conn.execute("SELECT MIN(position) FROM segments WHERE document_id = ?", (document_id,))
        below = min(lowest.fetchone()[0], SUPERSEDED_BELOW)
        stamp = now()
        self.conn.executemany(
            "UPDATE segments SET former_position = -1 - position, position = ?, superseded_at = ?, "
            "superseded_by = NULL WHERE id = ?",
            [(below - 1 - n, stamp, seg) for n, seg in enumerate(ids)],
        )
        # predictions describe text that is no longer in the document; a model can make them again
        self.conn.executemany("DELETE FROM predictions WHERE segment_id = ?", [(seg,) for seg in ids])

    def _upsert_segments(self, rows: list[tuple]) -> None:
        """Insert segments; one already stored (the same text) takes its new place and, when it was
        superseded, comes back into the active document."""
        self.conn.executemany(
            "INSERT INTO segments(id, document_id, position, speaker, text, start_time, end_time, metadata) "
            "VALUES(?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET position = excluded.position, "
            "speaker = excluded.speaker, start_time = excluded.start_time, end_time = excluded.end_time, "
            "metadata = excluded.metadata, superseded_at = NULL, superseded_by = NULL, former_position = NULL",
            rows,
        )

    def segments(self, document_id: str | None = None, limit: int | None = None) -> list[Segment]:
        """The active segments (of one document, or all), in document order."""
        sql = f"SELECT * FROM segments WHERE {ACTIVE}"
        params: list[Any] = []
        if document_id is not None:
            sql += " AND document_id = ?"
            params.append(document_id)
        sql += " ORDER BY document_id, position"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [Segment.from_row(r) for r in self.conn.execute(sql, params)]

    def iter_segments(self, chunk_size: int = 2000) -> Iterator[list[Segment]]:
        """Every segment in chunks, keyset-paginated so memory stays flat on large workspaces; for a
        subset, see the named queries in `pipeline.store.segments`."""
        return iter_segments_where(self, chunk_size)

    def segment(self, segment_id: str, include_superseded: bool = False) -> Segment | None:
        """One segment by id; a superseded one only when asked for."""
        sql = "SELECT * FROM segments WHERE id = ?" + ("" if include_superseded else f" AND {ACTIVE}")
        row = self.conn.execute(sql, (segment_id,)).fetchone()
        return Segment.from_row(row) if row else None

    def neighbours(self, segment: Segment, before: int = 2, after: int = 1) -> tuple[list[Segment], list[Segment]]:
        rows = self.conn.execute(
            "SELECT * FROM segments WHERE document_id = ? AND position BETWEEN ? AND ? ORDER BY position",
            (segment.document_id, segment.position - before, segment.position + after),
        ).fetchall()
        segs = [Segment.from_row(r) for r in rows]
        return ([s for s in segs if s.position < segment.position], [s for s in segs if s.position > segment.position])

    # ------------------------------------------------------------------ counts

    def count(self, table: str) -> int:
        """Rows in one table (a quick look for tests and scripts; stages use the named counts)."""
        if table not in TABLES:
            raise ValueError(f"no table '{table}' in the workspace database; tables: {', '.join(TABLES)}")
        return self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def iter_segments_where(store: Store, chunk_size: int, where: str = "", params: tuple = ()) -> Iterator[list[Segment]]:
    """Active segments matching `where` (SQL over the `segments` table) in chunks ordered by id; a
    segment that stops matching between chunks is neither skipped nor repeated. For the store's modules only."""
    last = ""
    clause = f" AND ({where})" if where else ""
    while True:
        rows = store.conn.execute(
            f"SELECT * FROM segments WHERE id > ? AND {ACTIVE}{clause} ORDER BY id LIMIT ?", (last, *params, chunk_size)
        ).fetchall()
        if not rows:
            return
        yield [Segment.from_row(r) for r in rows]
        last = rows[-1]["id"]


def tally_codes(store: Store, table: str, where: str = "", params: tuple = (), alias: str = "t") -> dict[str, int]:
    """{code: rows of `table` (named `alias` in `where`) whose JSON `codes` list holds it}; for the
    store's modules only."""
    sql = (
        f"SELECT j.value AS code, COUNT(*) FROM {table} {alias}, json_each({alias}.codes) j"
        + (f" WHERE {where}" if where else "")
        + " GROUP BY j.value"
    )
    return {row[0]: row[1] for row in store.conn.execute(sql, params)}


def codebook_yaml(codebook: Any) -> str:
    """The codebook as YAML text, in its own field order (what the codebook history stores)."""
    import yaml

    return yaml.safe_dump(codebook.model_dump(), sort_keys=False, allow_unicode=True, width=100)


def record_codebook_version(store: Store, codebook: Any, seen: str | None = None) -> bool:
    """Remember `codebook` in the codebook history (caller holds the transaction); an already known hash keeps its
    first-seen time. Returns True when the version is new. Here rather than in store.codebooks (which reads the
    history) so that `Store.record_codebook` needs no import back from it."""
    cur = store.conn.execute(
        "INSERT OR IGNORE INTO codebook_versions(hash, version, yaml, first_seen) VALUES(?, ?, ?, ?)",
        (codebook.content_hash, codebook.version, codebook_yaml(codebook), seen or now()),
    )
    return cur.rowcount > 0


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    except sqlite3.Error as exc:
        raise CultureCodeError(f"cannot open the workspace database {path}: {exc}") from None
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA recursive_triggers = ON")  # rows an INSERT OR REPLACE drops fire their delete triggers
    conn.execute("PRAGMA journal_mode = WAL")  # a no-op on our databases, which are created in WAL mode
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def _statements(script: str) -> Iterator[str]:
    """The SQL statements of a migration script, a trigger's body (semicolons and all) inside its statement."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending
            pending = ""
    if pending.strip(" \n;"):
        raise ValueError(f"incomplete SQL statement in a migration: {pending.strip()[:80]}")


def _apply_migrations(conn: sqlite3.Connection, current: int) -> None:
    """Each pending migration in its own transaction, with the version it brings the schema to."""
    for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
        conn.execute("BEGIN IMMEDIATE")
        if conn.execute("PRAGMA user_version").fetchone()[0] >= number:  # another process got there first
            conn.execute("COMMIT")
            continue
        try:
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def _create_database(path: Path) -> bool:
    """Build a new database (mode 0600, WAL, every migration) under a temporary name, then link it into place.
    False when another process created `path` first (its database is used)."""
    partial = path.with_name(f".{path.name}.new-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    create_private(partial)
    try:
        conn = _connect(partial)
        try:
            _apply_migrations(conn, conn.execute("PRAGMA user_version").fetchone()[0])
        finally:
            conn.close()  # checkpoints the WAL: one self-contained file
        try:
            os.link(partial, path)  # unlike a rename, never replaces a database another process just made
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links
            if path.exists():
                return False
            os.rename(partial, path)
        return True
    finally:
        for leftover in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
            leftover.unlink(missing_ok=True)


def open_store(workspace: str | Path, create: bool = False) -> Store:
    return Store(workspace, create=create)
