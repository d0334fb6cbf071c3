"""Fixtures shared by every test: the small test codebook, a CLI runner, database snapshots."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def small_codebook() -> Path:
    return FIXTURES / "codebook_small.yaml"


@pytest.fixture
def cli():
    """Run `culturecode ARGS...`; returns the click Result (exit_code, stdout, stderr)."""
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args])

    return invoke


def table_dump(db: Path, tables=("documents", "segments", "predictions", "annotations", "gold")) -> dict:
    """Every row of the data tables, to check that a failed stage changed nothing."""
    if not db.exists():
        return {}
    conn = sqlite3.connect(db)
    try:
        return {t: sorted(map(tuple, conn.execute(f"SELECT * FROM {t}").fetchall())) for t in tables}
    finally:
        conn.close()
