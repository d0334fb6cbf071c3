"""Which data a quality figure was measured on: said wherever culturecode prints one about itself.

Figures measured on the bundled example data (synthetic text the culturecode developers wrote) overstate what
to expect on real transcripts; docs/classifier.md gives the figures on real fieldwork quotes."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import PROJECT_ROOT

REAL_SPEECH_DOC = "docs/classifier.md, 'What to expect on real transcripts'"
OWN_WRITING = (
    "synthetic example data written by the culturecode developers: expect lower figures on real transcripts "
    f"({REAL_SPEECH_DOC})"
)


def is_bundled_example(source: str | Path | None) -> bool:
    """Whether `source` (a gold file or folder) is culturecode's own example data."""
    if not source:
        return False
    path = Path(str(source)).expanduser()
    try:
        resolved = path.resolve()
    except OSError:
        return False
    examples = (PROJECT_ROOT / "examples").resolve()
    return resolved == examples or examples in resolved.parents or str(source).startswith("examples/")


def data_note(source: str | Path | None) -> str:
    """'' for a project's own data; the caveat for figures measured on the bundled examples."""
    return OWN_WRITING if is_bundled_example(source) else ""
