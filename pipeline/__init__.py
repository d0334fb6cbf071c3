"""culturecode: an annotation pipeline for qualitative research on organisational culture.

The stages (ingest, classifier, studio, agreement, gold, llm) are plain modules usable from
Python; `pipeline.cli` is a thin typer layer over them.
"""

__version__ = "0.1.0"
