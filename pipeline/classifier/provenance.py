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


def onnx_line(check: dict) -> str:
    """The int8 ONNX copy against the full-precision model, saying what the figures are measured on."""
    same = f"{check['same_decisions']:.1%} identical decisions"
    scores = f"macro F1 {check['macro_f1']:.3f} vs {check['fp32_macro_f1']:.3f} full precision"
    if check.get("segments_learned"):
        return (
            f"int8 ONNX copy (`--runtime onnx`): {same} on the test split, which this version has since learned from "
            f"({scores} there: a comparison of the two runtimes, not held-out quality)."
        )
    return f"int8 ONNX copy (`--runtime onnx`): {scores} on the held-out test split ({same})."
