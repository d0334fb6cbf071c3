"""culturecode: an annotation pipeline for qualitative research on organisational culture.

The stages (ingest, classifier, studio, agreement, gold, llm) are plain modules usable from
Python; `pipeline.cli` is a thin typer layer over them. A notebook starts from `pipeline.api`
(docs/python.md):

    from pipeline.api import Workspace
    ws = Workspace("workspace")
    ws.agreement().per_code          # a pandas DataFrame
"""

__version__ = "0.1.0"
