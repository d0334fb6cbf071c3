"""Agreement report speed: 10,000 units x 15 codes x 3 annotators, 10% of annotations missing.

Prints (1) the time for the full report -- arrays built from annotation records, every coefficient
per code, label-set alphas, 1,000 bootstrap replicates, JSON/Markdown/HTML with plots written -- and
(2) Krippendorff's alpha for the 15 codes as culturecode computes it against nltk's AnnotationTask
on the same data in the same run, with the ratio. Targets: report <= 10 s; alpha >= 100x nltk.

    .venv/bin/python benchmarks/bench_agreement.py            # full size
    .venv/bin/python benchmarks/bench_agreement.py --quick    # 1,000 units, 100 replicates
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nltk.metrics.agreement import AnnotationTask
from nltk.metrics.distance import binary_distance

from pipeline.agreement.coefficients import krippendorff_alpha
from pipeline.agreement.ratings import Record, from_records
from pipeline.agreement.render import write_reports
from pipeline.agreement.report import compute_agreement


def make_records(units: int, codes: list[str], annotators: int, missing: float, seed: int = 0) -> list[Record]:
    """Annotators who mostly agree: each code present in ~12% of units, 5% of decisions flipped."""
    rng = np.random.default_rng(seed)
    truth = rng.random((units, len(codes))) < 0.12
    records = []
    for u in range(units):
        for a in range(annotators):
            if rng.random() < missing:
                continue
            labels = truth[u] ^ (rng.random(len(codes)) < 0.05)
            records.append(
                Record(
                    f"seg{u:06d}",
                    f"annotator{a}",
                    [c for c, on in zip(codes, labels, strict=True) if on],
                    f"model-v{1 + u % 3}",
                )
            )
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 units and 100 bootstrap replicates")
    args = parser.parse_args()
    units, replicates = (1_000, 100) if args.quick else (10_000, 1_000)
    codes = [f"code{i:02d}" for i in range(15)]
    records = make_records(units, codes, annotators=3, missing=0.10)
    print(
        f"data: {units} units x {len(codes)} codes x 3 annotators, {len(records)} annotations "
        f"(10% missing), {replicates} bootstrap replicates"
    )

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        ratings = from_records(records, codes)
        report = compute_agreement(ratings, bootstrap=replicates, seed=7)
        report.update(generated_at="benchmark", source="synthetic", filters={})
        write_reports(report, Path(tmp), "agreement-bench")
        report_s = time.perf_counter() - start
    print(f"full report (all coefficients, CIs, JSON/MD/HTML with plots): {report_s:.2f} s  (target <= 10 s)")

    start = time.perf_counter()
    ours = [krippendorff_alpha(ratings.binary(c), 2).value for c in range(len(codes))]
    ours_s = time.perf_counter() - start

    start = time.perf_counter()
    theirs = []
    for c in range(len(codes)):
        x = ratings.binary(c)
        triples = [(str(a), str(u), int(x[u, a])) for u, a in zip(*np.nonzero(ratings.rated), strict=True)]
        theirs.append(AnnotationTask(triples, distance=binary_distance).alpha())
    nltk_s = time.perf_counter() - start
    assert np.allclose(ours, theirs), "culturecode and nltk disagree on alpha"
    print(
        f"Krippendorff's alpha, {len(codes)} codes: culturecode {ours_s * 1000:.1f} ms, "
        f"baseline nltk AnnotationTask {nltk_s:.2f} s (same values to 1e-8)"
    )
    print(f"ratio: {nltk_s / ours_s:.0f}x faster than nltk  (target >= 100x)")


if __name__ == "__main__":
    main()
