"""SQL is written in `pipeline/store/` only: every other module calls the store's named functions."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PIPELINE = Path(__file__).resolve().parents[2] / "pipeline"
STORE = PIPELINE / "store"
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE)\b.*\b(FROM|INTO|SET)\b", re.S)
CURSOR_CALLS = {"execute", "executemany", "executescript"}


def sql_outside_store(source: str, name: str = "<source>") -> list[str]:
    """`name:line: what` for each cursor call, SQL string or raw `where` fragment in `source`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        what = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method, args = node.func.attr, len(node.args) + len(node.keywords)
            if method in CURSOR_CALLS:
                what = f".{method}() call"
            elif method == "iter_segments" and (len(node.args) > 1 or any(k.arg == "where" for k in node.keywords)):
                what = "raw where fragment passed to iter_segments"
            elif (
                method == "count"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "store"
                and args > 1
            ):
                what = "raw where fragment passed to store.count"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
            what = f"SQL in a string: {node.value[:60]!r}"
        if what:
            found.append((node.lineno, f"{name}:{node.lineno}: {what}"))
    return [text for _, text in sorted(found)]


def test_no_sql_outside_the_store() -> None:
    found = []
    for path in sorted(PIPELINE.rglob("*.py")):
        if STORE not in path.parents:
            found += sql_outside_store(path.read_text(encoding="utf-8"), str(path.relative_to(PIPELINE.parent)))
    assert not found, "SQL outside pipeline/store/ (add a named function there):\n" + "\n".join(found)


def test_the_scan_finds_each_kind_of_sql() -> None:
    source = '''
rows = store.conn.execute("SELECT id FROM segments").fetchall()
store.conn.executemany(
    "INSERT INTO gold(segment_id) "
    "VALUES(?)", rows)
total = store.count("segments", "id > ?", ("a",))
chunks = store.iter_segments(100, where="id > 'a'")
query = f"UPDATE models SET is_current = {flag}"
"""Select the rows from the table and update the set: prose, not SQL."""
np.divide(a, b, where=b > 0)
'''
    found = sql_outside_store(source)
    assert [line.split(":")[1] for line in found] == ["2", "2", "3", "4", "6", "7", "8"], found
    assert "store.count" in found[4] and "iter_segments" in found[5] and "UPDATE models" in found[6]
