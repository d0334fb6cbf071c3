"""`bench_learning_curve.py --rare`: how fast each strategy finds the rare codes' positives (issue 29).

Pools are built by rule, not written to flatter: the labelled set (the example gold and dev set, or `--gold`) is
split by document into a pool (70%) and a held-out part (30%); in the pool, each chosen code keeps a random
subset of its positives so that it sits on the stated share of the pool's segments (1%, 2%, 5%), and every other
segment is kept as it is. The held-out part keeps its natural prevalence, so that the rare codes' F1 and kappa are
measured on enough positives to mean something. Several seeds (each its own split and subsample).

Every strategy that needs a model starts from the same random batch; `typical` and `auto` choose their first
batch themselves, with no labels and no model (their point is the cold start). Then 20 labels a step, a refit
after each (the `head` learner of the main benchmark). Printed per strategy, with its ratio against random in the
same run: labels to reach 5 and 10 positives of each rare code (median over rare codes and seeds; random's draw
continues past the budget so that its figure is always known); the rare codes' F1 and kappa on the held-out part
after 100, 200 and 400 labels; the area under the macro-F1 curve over all codes; the ceiling as in the main run.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np

from pipeline.classifier.metrics import code_metrics
from pipeline.learning.strategies import Candidate, Pool, run_strategy

RARE_CODES = ("violence", "machismo", "conservatism", "solidarity_isolation")
STRATEGIES = ("random", "uncertainty", "hybrid", "typical", "anchor", "auto")
COLD = {"typical", "auto"}  # choose their own first batch, without labels
CHECKPOINTS = (100, 200, 400)
TARGETS = (5, 10)


@dataclass
class RareRun:
    strategy: str
    f1: list[float] = field(default_factory=list)  # macro-F1 over all codes after each batch
    order: list[int] = field(default_factory=list)  # the labelled segments, in the order labelled
    rare_f1: dict[int, float] = field(default_factory=dict)  # labels -> mean F1 of the rare codes
    rare_kappa: dict[int, float] = field(default_factory=dict)


@dataclass
class RarePool:
    x: np.ndarray
    y: np.ndarray
    answers: np.ndarray
    codes: list[str]
    rare: list[int]  # column indices of the rare codes
    pool_idx: np.ndarray
    test_idx: np.ndarray
    seed: int
    code_vectors: dict[str, np.ndarray]


def subsample(y: np.ndarray, pool_idx: np.ndarray, rare: list[int], share: float, seed: int) -> np.ndarray:
    """The pool with each rare code's positives cut to `share` of the pool's segments (the rest kept)."""
    rng = np.random.default_rng(50_000 + seed)
    rows = y[pool_idx][:, rare]
    negative = pool_idx[rows.sum(axis=1) == 0]
    keep_each = max(1, round(share * len(negative) / (1 - share * len(rare))))
    kept: set[int] = set()
    for k in range(len(rare)):
        positives = pool_idx[rows[:, k] == 1]
        kept.update(int(i) for i in rng.choice(positives, size=min(keep_each, len(positives)), replace=False))
    # a kept segment that is also positive for another rare code stays: it counts for both
    return np.array(sorted(set(negative.tolist()) | kept))


def make_pool(s: RarePool, open_idx, scores, labelled: list[int]) -> Pool:
    codes = s.codes
    counts = s.answers[labelled].sum(axis=0) if labelled else np.zeros(len(codes))
    candidates = [
        Candidate(str(i), dict(zip(codes, map(float, row), strict=True)), document_id=f"doc{i // 25}", vector=s.x[i])
        for i, row in zip(open_idx, scores, strict=True)
    ]
    return Pool(
        candidates,
        list(codes),
        {c: 0.5 for c in codes},
        {c: int(n) for c, n in zip(codes, counts, strict=True)},
        "annotations",
        [dict.fromkeys(codes, 0.0) for _ in labelled],  # replaced below with the model's scores
        s.seed,
        [s.x[i] for i in labelled],
        [{codes[j] for j in np.flatnonzero(s.answers[i])} for i in labelled],
        s.code_vectors,
    )


def _rare_scores(s: RarePool, test_scores: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import cohen_kappa_score, f1_score

    f1s, kappas = [], []
    for j in s.rare:
        truth, guess = s.y[s.test_idx, j], (test_scores[:, j] >= 0.5).astype(int)
        f1s.append(f1_score(truth, guess, zero_division=0))
        kappas.append(cohen_kappa_score(truth, guess) if len(set(truth) | set(guess)) > 1 else 0.0)
    return float(np.mean(f1s)), float(np.mean(kappas))


def simulate(strategy: str, fit, s: RarePool, batch: int, budget: int, documents: np.ndarray) -> RareRun:
    rng = np.random.default_rng(s.seed)
    run = RareRun(strategy)
    pool_set = set(s.pool_idx.tolist())
    if strategy in COLD:
        open_idx = np.array(sorted(pool_set))
        first = make_pool(s, open_idx, np.zeros((len(open_idx), len(s.codes))), [])
        _documents(first, documents)
        labelled = [int(p.segment_id) for p in run_strategy(strategy, first, batch)]
    else:
        labelled = [int(i) for i in rng.choice(s.pool_idx, size=batch, replace=False)]
    while True:
        open_idx = np.array(sorted(pool_set - set(labelled)))
        pool_scores, test_scores, seen = fit(s.answers, labelled, [open_idx, s.test_idx, np.array(labelled)])
        run.f1.append(code_metrics(s.y[s.test_idx], test_scores >= 0.5, s.codes)["macro_f1"])
        if len(labelled) in CHECKPOINTS:
            run.rare_f1[len(labelled)], run.rare_kappa[len(labelled)] = _rare_scores(s, test_scores)
        if len(labelled) >= budget or not len(open_idx):
            break
        pool = make_pool(s, open_idx, pool_scores, labelled)
        pool.labelled = [dict(zip(s.codes, map(float, row), strict=True)) for row in seen]
        _documents(pool, documents)
        labelled += [int(p.segment_id) for p in run_strategy(strategy, pool, batch)]
    if strategy == "random":  # its draw goes on past the budget, so that its labels-to-k are always known
        rest = np.array(sorted(pool_set - set(labelled)))
        labelled += [int(i) for i in np.random.default_rng(70_000 + s.seed).permutation(rest)]
    run.order = labelled
    return run


def _documents(pool: Pool, documents: np.ndarray) -> None:
    for cand in pool.candidates:
        cand.document_id = str(documents[int(cand.segment_id)])


def labels_to(run: RareRun, s: RarePool, j: int, k: int) -> float:
    """Labels collected when the k-th positive of code column j arrived (inf: never)."""
    hits = np.flatnonzero(s.y[run.order, j] == 1)
    return float(hits[k - 1] + 1) if len(hits) >= k else float("inf")


def ceiling(fit, s: RarePool, batch: int, budget: int, tries: int) -> RareRun:
    """Each step, the best of `tries` random batches by held-out macro-F1 (looks at the held-out answers)."""
    rng, draws = np.random.default_rng(s.seed), np.random.default_rng(10_000 + s.seed)
    labelled = [int(i) for i in rng.choice(s.pool_idx, size=batch, replace=False)]
    run = RareRun("ceiling")

    def scored(rows: list[int]) -> tuple[float, np.ndarray]:
        (test_scores,) = fit(s.answers, rows, [s.test_idx])
        return code_metrics(s.y[s.test_idx], test_scores >= 0.5, s.codes)["macro_f1"], test_scores

    f1, test_scores = scored(labelled)
    while True:
        run.f1.append(f1)
        if len(labelled) in CHECKPOINTS:
            run.rare_f1[len(labelled)], run.rare_kappa[len(labelled)] = _rare_scores(s, test_scores)
        if len(labelled) >= budget:
            break
        open_idx = np.array(sorted(set(s.pool_idx.tolist()) - set(labelled)))
        options = [[int(i) for i in draws.choice(open_idx, size=batch, replace=False)] for _ in range(tries)]
        (f1, test_scores), best = max(((scored(labelled + o), o) for o in options), key=lambda t: t[0][0])
        labelled += best
    run.order = labelled
    return run


def run_rare(args, fit, x, y, codes, documents, code_vectors, split) -> None:
    rare = [codes.index(c) for c in args.rare_codes]
    names = list(args.strategies) + (["ceiling"] if args.ceiling else [])
    for share in args.prevalence:
        runs: dict[str, list[tuple[RareRun, RarePool]]] = {n: [] for n in names}
        sizes, found = [], []
        for seed in range(args.seeds):
            pool_idx, test_idx = split(seed)
            pool_idx = subsample(y, pool_idx, rare, share, seed)
            sizes.append(len(pool_idx))
            found.append(y[pool_idx][:, rare].sum(axis=0))
            flips = np.random.default_rng(1000 + seed).random(y.shape) < args.noise
            s = RarePool(x, y, np.where(flips, 1 - y, y), codes, rare, pool_idx, test_idx, seed, code_vectors)
            for name in names:
                started = time.perf_counter()
                if name == "ceiling":
                    run = ceiling(fit, s, args.batch, args.budget, args.ceiling)
                else:
                    run = simulate(name, fit, s, args.batch, args.budget, documents)
                runs[name].append((run, s))
                print(f"  {share:.0%} seed {seed} {name:<12} {time.perf_counter() - started:6.1f} s", file=sys.stderr)
        report_rare(runs, args, share, rare, codes, sizes, found)


def _median_to(pairs, k: int, rare: list[int]) -> float:
    return float(np.median([labels_to(run, s, j, k) for run, s in pairs for j in rare]))


def _fmt(v: float) -> str:
    return "never" if not np.isfinite(v) else f"{v:.0f}"


def report_rare(runs, args, share, rare, codes, sizes, found) -> None:
    rare_names = [codes[j] for j in rare]
    mean_found = np.mean(found, axis=0)
    print(
        f"\n== rare codes at {share:.0%} of the pool ({args.seeds} seed(s); pools of {np.mean(sizes):.0f} segments; "
        "positives in the pool: "
        + ", ".join(f"{c} {n:.1f}" for c, n in zip(rare_names, mean_found, strict=True))
        + "; held-out part at its natural prevalence)"
    )
    area = {n: 100 * float(np.mean([np.mean(r.f1) for r, _ in pairs])) for n, pairs in runs.items()}
    to = {n: {k: _median_to(pairs, k, rare) for k in TARGETS} for n, pairs in runs.items() if n != "ceiling"}
    checkpoints = [c for c in CHECKPOINTS if c <= args.budget]

    def at(n: str, c: int, what: str) -> float:
        values = [getattr(r, what).get(c) for r, _ in runs[n]]
        return float(np.mean([v for v in values if v is not None])) if any(v is not None for v in values) else np.nan

    head = "".join(f"{f'to {k} pos':>10}{'x rnd':>7}" for k in TARGETS)
    head += "".join(f"{f'F1@{c}':>8}" for c in checkpoints) + "".join(f"{f'k@{c}':>8}" for c in checkpoints)
    print(f"{'strategy':<12}{head}{'area':>7}{'vs rnd':>8}")
    for n in runs:
        row = ""
        for k in TARGETS:
            if n == "ceiling":
                row += f"{'':>10}{'':>7}"
                continue
            v, base = to[n][k], to["random"][k]
            ratio = f"{v / base:.2f}x" if np.isfinite(v) else ">" + f"{args.budget / base:.2f}x"
            row += f"{_fmt(v):>10}{ratio:>7}"
        row += "".join(f"{at(n, c, 'rare_f1'):>8.3f}" for c in checkpoints)
        row += "".join(f"{at(n, c, 'rare_kappa'):>8.3f}" for c in checkpoints)
        print(f"{n:<12}{row}{area[n]:>7.1f}{area[n] - area['random']:>+8.1f}")
    c = 200 if 200 in checkpoints else checkpoints[-1]
    for n in [n for n in runs if n not in ("random", "ceiling")]:
        ratio = f"{to[n][10] / to['random'][10]:.2f}x" if np.isfinite(to[n][10]) else "never (within the budget)"
        gain = 100 * (at(n, c, "rare_f1") - at("random", c, "rare_f1"))
        print(
            f"{n}: labels to 10 positives {ratio} random (target <= 0.5x), rare-code F1@{c} {gain:+.1f} points "
            f"(target >= +10), area {area[n] - area['random']:+.1f} points (target >= -1)"
        )
    if "ceiling" in area:
        print(
            f"ceiling (best of {args.ceiling} random batches by held-out F1): "
            f"area {area['ceiling'] - area['random']:+.1f}"
        )
