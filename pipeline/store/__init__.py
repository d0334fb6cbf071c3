"""The workspace store: the only place SQL is written.

`db` holds the connection, migrations, transactions and runs; one module per concern holds the
named queries (`segments`, `predictions`, `models`, `annotations` (tasks, projects and
annotations), `gold`, `llm_cache`). Stages call these functions and never write SQL themselves.
"""

from pipeline.store.db import DB_NAME, MIGRATIONS, Document, Segment, Store, dumps, now, open_store

__all__ = ["DB_NAME", "MIGRATIONS", "Document", "Segment", "Store", "dumps", "now", "open_store"]
