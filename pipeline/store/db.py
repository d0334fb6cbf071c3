"""The workspace database: one SQLite file per annotation project, the single source of truth.

Schema changes are numbered migrations applied in order (`PRAGMA user_version` holds the
version). Every stage writes inside `store.transaction()`, so a killed run leaves the database as
it was before the run. JSON columns hold lists of codes and per-code score mappings.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.errors import CultureCodeError

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
)

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
]


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


class Store:
    """A connection to one workspace's database."""

    def __init__(self, workspace: str | Path, create: bool = True):
        self.workspace = Path(workspace)
        if not self.workspace.exists():
            if not create:
                raise CultureCodeError(
                    f"workspace '{self.workspace}' does not exist: run `culturecode ingest PATH "
                    f"--workspace {self.workspace}` first"
                )
            self.workspace.mkdir(parents=True)
        self.path = self.workspace / DB_NAME
        try:
            self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        except sqlite3.Error as exc:
            raise CultureCodeError(f"cannot open the workspace database {self.path}: {exc}") from None
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self._depth = 0
        self.migrate()

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    def migrate(self) -> None:
        current = self.schema_version
        if current > len(MIGRATIONS):
            raise CultureCodeError(
                f"{self.path} was written by a newer culturecode (schema {current}); upgrade culturecode"
            )
        for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
            with self.transaction():
                for statement in script.split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {number}")

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
        """Remember which codebook the workspace labels with (its hash and content)."""
        self.set_meta("codebook_hash", codebook.content_hash)
        self.set_meta("codebook", dumps(codebook.model_dump()))

    @property
    def codebook_hash(self) -> str | None:
        return self.get_meta("codebook_hash")

    # ------------------------------------------------------------------ runs

    @contextmanager
    def run(self, stage: str, args: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Record a stage run; the yielded dict becomes its summary. Failed runs are kept too."""
        cur = self.conn.execute(
            "INSERT INTO runs(stage, status, started_at, args) VALUES(?, 'running', ?, ?)",
            (stage, now(), dumps(args or {})),
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

    def put_document(self, doc: Document, segments: Iterable[Segment]) -> int:
        """Insert or replace one document and its segments (caller holds the transaction).

        Segments that keep their ID survive a replace together with their predictions and
        annotations; vanished segments are removed. Returns the number of new segments.
        """
        self.conn.execute(
            "INSERT INTO documents(id, source_path, format, content_hash, metadata, ingested_at) "
            "VALUES(?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET source_path = excluded.source_path, "
            "format = excluded.format, content_hash = excluded.content_hash, "
            "metadata = excluded.metadata, ingested_at = excluded.ingested_at",
            (doc.id, doc.source_path, doc.format, doc.content_hash, dumps(doc.metadata), now()),
        )
        old_ids = {r[0] for r in self.conn.execute("SELECT id FROM segments WHERE document_id = ?", (doc.id,))}
        # positions are unique per document: park old rows out of the way before rewriting them
        self.conn.execute("UPDATE segments SET position = -1 - position WHERE document_id = ?", (doc.id,))
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
        vanished = old_ids - new_ids
        if vanished:
            self.conn.executemany("DELETE FROM segments WHERE id = ?", [(i,) for i in vanished])
        return len(new_ids - old_ids)

    def _upsert_segments(self, rows: list[tuple]) -> None:
        self.conn.executemany(
            "INSERT INTO segments(id, document_id, position, speaker, text, start_time, end_time, metadata) "
            "VALUES(?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET position = excluded.position, "
            "speaker = excluded.speaker, start_time = excluded.start_time, end_time = excluded.end_time, "
            "metadata = excluded.metadata",
            rows,
        )

    def segments(self, document_id: str | None = None, limit: int | None = None) -> list[Segment]:
        sql = "SELECT * FROM segments"
        params: list[Any] = []
        if document_id is not None:
            sql += " WHERE document_id = ?"
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

    def segment(self, segment_id: str) -> Segment | None:
        row = self.conn.execute("SELECT * FROM segments WHERE id = ?", (segment_id,)).fetchone()
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
    """Segments matching `where` (SQL over the `segments` table) in chunks ordered by id; a segment
    that stops matching between chunks is neither skipped nor repeated. For the store's modules only."""
    last = ""
    clause = f" AND ({where})" if where else ""
    while True:
        rows = store.conn.execute(
            f"SELECT * FROM segments WHERE id > ?{clause} ORDER BY id LIMIT ?", (last, *params, chunk_size)
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


def open_store(workspace: str | Path, create: bool = False) -> Store:
    return Store(workspace, create=create)
