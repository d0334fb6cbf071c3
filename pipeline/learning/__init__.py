"""Learning from the annotators: which segments they should code next, and why.

    from pipeline.learning import next_segments, available
    available()                                      # ['diversity', 'random', 'rare', 'uncertainty']
    report = next_segments(store, "rare", n=50)      # report.picks: segment, reason, score, margin, ...

Strategies (`strategies`) are plugins of the entry-point group `culturecode.strategies`; `select` builds
their pool from the workspace (the current model's stored scores, the labels so far).
"""

from pipeline.learning.select import NextReport, build_pool, next_segments
from pipeline.learning.strategies import GROUP, Candidate, Pick, Pool, available, register, run_strategy, unregister

__all__ = [
    "GROUP",
    "Candidate",
    "NextReport",
    "Pick",
    "Pool",
    "available",
    "build_pool",
    "next_segments",
    "register",
    "run_strategy",
    "unregister",
]
