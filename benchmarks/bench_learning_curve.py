"""How fast the model learns under each selection strategy: simulated annotators, batches of 20 labels.

    .venv/bin/python benchmarks/bench_learning_curve.py                  # 3 seeds, up to 400 labels
    .venv/bin/python benchmarks/bench_learning_curve.py --noise 0.05     # annotators flip 5% of decisions
    .venv/bin/python benchmarks/bench_learning_curve.py --gold ours/ --codebook ours.yaml   # your own labelled set
    .venv/bin/python benchmarks/bench_learning_curve.py --rare           # rare codes at 1%, 2%, 5% (issue 29)
    .venv/bin/python benchmarks/bench_learning_curve.py --rare --quick   # a smoke run: 1 seed, 2%, 200 labels

`--rare` (benchmarks/rare_pools.py) builds pools from the example gold and dev set in which chosen codes sit on a
stated share of the segments, and reports how fast each strategy finds their positives; see that module.

The example gold (examples/gold/*.jsonl, or `--gold` with its `--codebook`) is split by document into a pool (70%)
and a held-out test part (30%).
Every strategy starts from the same random first batch; then, batch after batch, the strategy picks 20 unlabelled
segments of the pool (the real strategies of `culturecode next`, pipeline/learning/strategies.py, given the current
model's scores and, for hybrid's diversity step, the segments' embeddings), the simulated annotator answers with
the gold codes (optionally noisy), and the classifier's output layer is refitted on the labels so far. Texts are
embedded once with the packaged MiniLM encoder (cached in $CULTURECODE_CACHE/bench/learning_curve), so a step costs
a refit only.

The learner is the one `culturecode retrain` fits (`--learner head`, the default): the `head` method's logistic
regressions with the settings of configs/pipeline.yaml (unit-length embeddings, the codebook-similarity features,
head_c, balanced classes), decided at 0.5. (Trying the grouped-CV thresholds retrain tunes moved no strategy's area
by more than a point, at six times the cost.) `--learner plain` is the learner this benchmark used before: a
logistic regression (C 0.1) on embeddings standardised on the labelled rows.

A ceiling row (`--ceiling 10`; 0 leaves it out) shows what batch selection can gain at all on this pool: at each
step it draws 10 random batches and keeps the one whose labels give the best macro-F1 on the held-out part. It
cheats (it looks at the held-out answers), so no strategy can be expected to beat it; if it stays below the target,
the target is out of reach of selection on this pool and learner.

Printed: macro-F1 on the held-out part after each batch (mean over seeds), the area under the learning curve
(mean macro-F1 over the batches, in points), the labels each strategy needs to reach random's final F1, the
positives of the three rarest codes among the labels collected, and each figure's ratio to random.
Targets (issue 14): the best strategy's area >= 5 points above random, and it reaches random's final F1
with <= 60% of the labels.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import rare_pools  # a namespace package: the repository root is on the path
from pipeline.classifier.data import Example, label_matrix, read_gold
from pipeline.classifier.encoder import CodeClassifier, embed, load_encoder, load_tokenizer, resolve_base_model
from pipeline.classifier.metrics import code_metrics
from pipeline.classifier.packaged import encoder_cache_dir
from pipeline.config import ClassifierSettings, load_codebook, load_settings
from pipeline.learning.strategies import Candidate, Pool, run_strategy

GOLD = ROOT / "examples" / "gold"
DEV = ROOT / "examples" / "dev"
CODEBOOK = ROOT / "configs" / "codebooks" / "police_culture.yaml"
STRATEGIES = ("random", "uncertainty", "diversity", "rare", "hybrid")


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def embed_once(texts: list[str]) -> np.ndarray:
    """MiniLM mean-pooled embeddings of `texts`, cached by text hash."""
    cache = encoder_cache_dir().parent / "bench" / "learning_curve"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / "vectors.npz"
    known = dict(np.load(path)) if path.exists() else {}
    todo = sorted({t for t in texts if _key(t) not in known})
    if todo:
        base = resolve_base_model("minilm")
        model = CodeClassifier(load_encoder(base), 1)
        for text, vec in zip(todo, embed(model, load_tokenizer(base), todo, 32, 128), strict=True):
            known[_key(text)] = vec
        np.savez(path, **known)
    return np.stack([known[_key(t)] for t in texts]).astype(np.float64)


def split_documents(examples: list[Example], seed: int, test_share: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    docs = sorted({e.document for e in examples})
    rng = np.random.default_rng(seed)
    test_docs = set(rng.choice(docs, size=round(len(docs) * test_share), replace=False))
    is_test = np.array([e.document in test_docs for e in examples])
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


Learner = Callable[[np.ndarray, list[int], list[np.ndarray]], list[np.ndarray]]


def plain_learner(x: np.ndarray) -> Learner:
    """A balanced logistic regression per code (C 0.1) on embeddings standardised on the labelled rows."""
    from sklearn.linear_model import LogisticRegression

    def fit_scores(y: np.ndarray, labelled: list[int], targets: list[np.ndarray]) -> list[np.ndarray]:
        xs, ys = x[labelled], y[labelled]
        mean, spread = xs.mean(axis=0), xs.std(axis=0) + 1e-6
        outs = [np.zeros((len(t), y.shape[1])) for t in targets]
        for j in range(y.shape[1]):
            if 0 < ys[:, j].sum() < len(ys):
                clf = LogisticRegression(class_weight="balanced", C=0.1, solver="liblinear")
                clf.fit((xs - mean) / spread, ys[:, j])
                for out, t in zip(outs, targets, strict=True):
                    out[:, j] = clf.predict_proba((x[t] - mean) / spread)[:, 1]
            elif ys[:, j].sum() == len(ys):
                for out in outs:
                    out[:, j] = 1.0
        return outs

    return fit_scores


def head_learner(x: np.ndarray, code_vectors: np.ndarray, settings: ClassifierSettings) -> Learner:
    """The `head` method's output layer as `retrain` fits it (pipeline/classifier/methods.py), on `x`."""
    from pipeline.classifier.methods import feature_map, fit_linear, linear_proba

    features = _unit(x) if settings.normalize else x
    projection = feature_map(x.shape[1], code_vectors if settings.codebook_features else None)

    def fit_scores(y: np.ndarray, labelled: list[int], targets: list[np.ndarray]) -> list[np.ndarray]:
        weight, bias = fit_linear(features[labelled], y[labelled], settings, projection)
        return [linear_proba(features[t], weight, bias) for t in targets]

    return fit_scores


def _unit(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)


def codebook_vectors(book) -> np.ndarray:
    """Per code, the mean unit embedding of its codebook texts (as the head method computes them)."""
    from pipeline.classifier.methods import codebook_texts

    groups = codebook_texts(book)
    flat = _unit(embed_once([t for group in groups for t in group]))
    vectors, start = [], 0
    for group in groups:
        vectors.append(flat[start : start + len(group)].mean(axis=0))
        start += len(group)
    return _unit(np.stack(vectors))


@dataclass
class Run:
    strategy: str
    f1: list[float] = field(default_factory=list)  # macro-F1 after each batch
    rare_found: int = 0  # positives of the rarest codes among the collected labels


@dataclass
class Setting:
    """One seed's pool, held-out part and simulated answers."""

    x: np.ndarray
    y: np.ndarray
    answers: np.ndarray
    codes: list[str]
    pool_idx: np.ndarray
    test_idx: np.ndarray
    seed: int


def simulate(strategy: str, fit: Learner, s: Setting, batch: int, budget: int) -> Run:
    rng = np.random.default_rng(s.seed)
    labelled = [int(i) for i in rng.choice(s.pool_idx, size=batch, replace=False)]  # the same first batch for all
    run = Run(strategy)
    while True:
        open_idx = np.array(sorted(set(s.pool_idx.tolist()) - set(labelled)))
        pool_scores, test_scores, seen = fit(s.answers, labelled, [open_idx, s.test_idx, np.array(labelled)])
        run.f1.append(code_metrics(s.y[s.test_idx], test_scores >= 0.5, s.codes)["macro_f1"])
        if len(labelled) >= budget:
            break
        counts = s.answers[labelled].sum(axis=0)
        pool = _pool(s.codes, counts, open_idx, pool_scores, seen, s.seed, s.x, labelled)
        picks = run_strategy(strategy, pool, batch)
        labelled += [int(p.segment_id) for p in picks]
    run.rare_found = _rare_found(s, labelled)
    return run


def ceiling(fit: Learner, s: Setting, batch: int, budget: int, tries: int) -> Run:
    """Each step, the best of `tries` random batches by held-out macro-F1 (looks at the held-out answers)."""
    rng = np.random.default_rng(s.seed)
    labelled = [int(i) for i in rng.choice(s.pool_idx, size=batch, replace=False)]
    draws = np.random.default_rng(10_000 + s.seed)

    def held_out_f1(rows: list[int]) -> float:
        (test_scores,) = fit(s.answers, rows, [s.test_idx])
        return code_metrics(s.y[s.test_idx], test_scores >= 0.5, s.codes)["macro_f1"]

    run = Run("ceiling", [held_out_f1(labelled)])
    while len(labelled) < budget:
        open_idx = np.array(sorted(set(s.pool_idx.tolist()) - set(labelled)))
        options = [[int(i) for i in draws.choice(open_idx, size=batch, replace=False)] for _ in range(tries)]
        f1, best = max(((held_out_f1(labelled + o), o) for o in options), key=lambda pair: pair[0])
        labelled += best
        run.f1.append(f1)
    run.rare_found = _rare_found(s, labelled)
    return run


def _rare_found(s: Setting, labelled: list[int]) -> int:
    rarest = np.argsort(s.y[s.pool_idx].sum(axis=0))[:3]
    return int(s.y[labelled][:, rarest].sum())


def _pool(codes, counts, open_idx, scores, seen, seed, x, labelled) -> Pool:
    """What `culturecode next` would give the strategy: the open segments' scores, the labels per code so far,
    the labelled segments' scores (diversity's starting centres), and everyone's embeddings (as `next` reads
    them from the workspace's embedding cache; hybrid's diversity step uses them)."""
    candidates = [
        Candidate(str(i), dict(zip(codes, map(float, row), strict=True)), vector=x[i])
        for i, row in zip(open_idx, scores, strict=True)
    ]
    return Pool(
        candidates,
        list(codes),
        {c: 0.5 for c in codes},
        {c: int(n) for c, n in zip(codes, counts, strict=True)},
        "annotations",
        [dict(zip(codes, map(float, row), strict=True)) for row in seen],
        seed,
        [x[i] for i in labelled],
    )


def labels_to_reach(f1: list[float], target: float, batch: int) -> int | None:
    for step, value in enumerate(f1):
        if value >= target - 1e-9:
            return (step + 1) * batch
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--budget", type=int, default=400)
    parser.add_argument("--noise", type=float, default=0.0, help="share of code decisions the annotators flip")
    parser.add_argument("--learner", choices=("head", "plain"), default="head", help="head: what retrain fits")
    parser.add_argument("--ceiling", type=int, default=10, help="random batches the ceiling row chooses from (0: none)")
    parser.add_argument("--gold", type=Path, default=GOLD, help="gold JSONL file or folder (default: the example gold)")
    parser.add_argument("--codebook", type=Path, default=CODEBOOK, help="the codebook the gold is coded with")
    parser.add_argument("--rare", action="store_true", help="pools with rare codes (issue 29; gold and dev set)")
    parser.add_argument("--rare-codes", default=",".join(rare_pools.RARE_CODES), help="--rare: the codes made rare")
    parser.add_argument("--prevalence", type=float, nargs="+", default=[0.01, 0.02, 0.05], help="--rare: shares")
    parser.add_argument("--strategies", default=",".join(rare_pools.STRATEGIES), help="--rare: strategies to run")
    parser.add_argument("--quick", action="store_true", help="--rare smoke run: 1 seed, 2%%, 200 labels, ceiling 3")
    args = parser.parse_args()
    args.rare_codes = args.rare_codes.split(",")
    args.strategies = args.strategies.split(",")
    if args.quick:
        args.seeds, args.prevalence, args.budget, args.ceiling = 1, [0.02], 200, min(args.ceiling, 3)
    book = load_codebook(args.codebook)
    codes = [c.id for c in book.codes]
    examples = read_gold(args.gold, book)
    if args.rare and args.gold == GOLD and DEV.exists():
        examples += read_gold(DEV, book)
    started = time.perf_counter()
    x = embed_once([e.text for e in examples])
    print(f"{len(examples)} gold segments, {len(codes)} codes; embedded in {time.perf_counter() - started:.1f} s")
    settings = load_settings(ROOT / "configs" / "pipeline.yaml").classifier
    fit = head_learner(x, codebook_vectors(book), settings) if args.learner == "head" else plain_learner(x)
    print(
        f"learner: {args.learner}"
        + (
            f" (C {settings.head_c}, normalize {settings.normalize}, codebook features {settings.codebook_features})"
            if args.learner == "head"
            else ""
        )
    )
    y = label_matrix(examples, codes).astype(int)
    if args.rare:
        vectors = dict(zip(codes, codebook_vectors(book), strict=True))
        documents = np.array([e.document for e in examples])
        rare_pools.run_rare(args, fit, x, y, codes, documents, vectors, lambda seed: split_documents(examples, seed))
        return
    names = STRATEGIES + (("ceiling",) if args.ceiling else ())
    runs: dict[str, list[Run]] = {s: [] for s in names}
    for seed in range(args.seeds):
        pool_idx, test_idx = split_documents(examples, seed)
        flips = np.random.default_rng(1000 + seed).random(y.shape) < args.noise
        setting = Setting(x, y, np.where(flips, 1 - y, y), codes, pool_idx, test_idx, seed)
        for name in names:
            started = time.perf_counter()
            if name == "ceiling":
                runs[name].append(ceiling(fit, setting, args.batch, args.budget, args.ceiling))
            else:
                runs[name].append(simulate(name, fit, setting, args.batch, args.budget))
            print(f"  seed {seed} {name:<12} {time.perf_counter() - started:6.1f} s", file=sys.stderr)
    report(runs, args)


def report(runs: dict[str, list[Run]], args) -> None:
    curves = {s: np.mean([r.f1 for r in rs], axis=0) for s, rs in runs.items()}
    names = list(runs)
    labels = [(i + 1) * args.batch for i in range(len(curves["random"]))]
    print(f"\nmacro-F1 on the held-out documents (mean of {args.seeds} seeds; noise {args.noise:.0%})")
    print("labels  " + "".join(f"{s:>13}" for s in names))
    for i, n in enumerate(labels):
        if n in (20, 40, 60, 100, 140, 200, 300, 400) or n == labels[-1]:
            print(f"{n:>6}  " + "".join(f"{curves[s][i]:>13.3f}" for s in names))
    target = float(curves["random"][-1])
    area = {s: 100 * float(np.mean(c)) for s, c in curves.items()}
    print(f"\n{'strategy':<12} {'area':>6} {'vs random':>10} {'labels to':>10} {'share of':>9} {'rare-code':>10}")
    print(f"{'':<12} {'(pts)':>6} {'(pts)':>10} {f'F1 {target:.3f}':>10} {'random':>9} {'positives':>10}")
    base_need = labels_to_reach(list(curves["random"]), target, args.batch) or labels[-1]
    base_rare = np.mean([r.rare_found for r in runs["random"]])
    for s in names:
        need = labels_to_reach(list(curves[s]), target, args.batch)
        rare_found = np.mean([r.rare_found for r in runs[s]])
        share = f"{need / base_need:.0%}" if need else "never"
        print(
            f"{s:<12} {area[s]:>6.1f} {area[s] - area['random']:>+10.1f} {need or '-':>10} {share:>9} "
            f"{rare_found:>6.0f} " + (f"({rare_found / base_rare:.2f}x)" if base_rare else "(-)")
        )
    best = max(STRATEGIES[1:], key=lambda s: area[s])
    need = labels_to_reach(list(curves[best]), target, args.batch)
    print(
        f"\nbest: {best}: area {area[best] - area['random']:+.1f} points vs random (target >= +5), reaches random's "
        f"final F1 with {f'{need / base_need:.0%}' if need else 'never'} of the labels (target <= 60%)"
    )
    if "ceiling" in area:
        need = labels_to_reach(list(curves["ceiling"]), target, args.batch)
        print(
            f"ceiling (best of {args.ceiling} random batches by held-out F1, looks at the answers): area "
            f"{area['ceiling'] - area['random']:+.1f} points vs random, random's final F1 with "
            f"{f'{need / base_need:.0%}' if need else 'never'} of the labels"
        )


if __name__ == "__main__":
    main()
