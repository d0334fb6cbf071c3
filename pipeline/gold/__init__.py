"""Gold data: adjudication of annotations into gold labels, and export of the gold dataset.

from pipeline.gold import adjudicate, export
adjudicate(store, codebook, method="majority")        # writes the gold table
export(store, settings, codebook, formats=["hf", "jsonl"])
"""

from pipeline.gold.adjudicate import METHODS, AdjudicationReport, adjudicate
from pipeline.gold.export import FORMATS, ExportReport, export

__all__ = ["METHODS", "FORMATS", "AdjudicationReport", "ExportReport", "adjudicate", "export"]
