"""Real-speech measurement for the benchmarks: figures with bootstrap CIs, and the loop on real quotes.

The real quotes (`../shared/eval/real_dev.jsonl` in the development checkout) are for measuring only: they are
never copied into the repository and nothing that ships is trained on them. Benchmarks read them when the
file is there and print one line saying so when it is not.

- `Figures` / `bootstrap_figures`: micro-F1, macro-F1 and mean per-code Cohen's kappa, each with a percentile
  bootstrap 95% CI over quotes; `paired_difference`: the CI of a difference between two candidates scored on
  the same bootstrap draws (paired).
- `loop_curve`: the real quotes as a project would hold them, in pseudo-documents; for k = 0, 1, 2, ... of
  them fed as project labels (the example gold as the prior, project weighting, the split and threshold
  procedure of `train`/`retrain`: `pipeline.classifier.training`), scored on the quotes of the other documents;
  averaged over every choice of k documents.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.classifier.data import Example, label_matrix, read_gold
from pipeline.config import ClassifierSettings, Codebook

REAL_DEFAULT = Path(__file__).resolve().parent.parent.parent / "shared" / "eval" / "real_dev.jsonl"
REPLICATES, LEVEL, SEED = 1000, 0.95, 7
METRICS = ("micro_f1", "macro_f1", "kappa")


def read_real(path: Path | None, codebook: Codebook) -> list[Example] | None:
    """The real quotes, or None with one line saying why the real-speech figures are skipped."""
    if path is None:
        return None
    if not path.is_file():
        print(f"real-speech figures skipped: {path} not found (it is not part of the repository; pass --real FILE)")
        return None
    return read_gold(path, codebook)


def bootstrap_weights(n: int, replicates: int = REPLICATES, seed: int = SEED) -> np.ndarray:
    """(replicates + 1) x n: how often each quote is drawn; row 0 is every quote once (the point estimate)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(replicates, n))
    counts = np.stack([np.bincount(row, minlength=n) for row in draws]) if replicates else np.zeros((0, n))
    return np.vstack([np.ones(n), counts]).astype(np.float64)


def metric_draws(y: np.ndarray, pred: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Each metric under each row of `weights` (quotes drawn that often). Macro-F1 and kappa average the codes
    with a positive among the drawn quotes; a code whose kappa is undefined counts 0 (as `summary` does)."""
    y, pred = y.astype(bool), pred.astype(bool)
    tp = weights @ (y & pred)
    fp = weights @ (~y & pred)
    fn = weights @ (y & ~pred)
    tn = weights @ (~y & ~pred)
    n = tp + fp + fn + tn
    present = (tp + fn) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        micro = 2 * tp.sum(1) / (2 * tp.sum(1) + fp.sum(1) + fn.sum(1))
        f1 = np.where(present, 2 * tp / (2 * tp + fp + fn), np.nan)
        po = (tp + tn) / n
        pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / n**2
        kappa = np.where(1 - pe > 1e-12, (po - pe) / (1 - pe), 0.0)
        kappa = np.where(present, kappa, np.nan)
        return {
            "micro_f1": np.nan_to_num(micro),
            "macro_f1": np.nanmean(f1, axis=1),
            "kappa": np.nanmean(kappa, axis=1),
        }


def interval(values: np.ndarray) -> tuple[float, float, float]:
    """(point, low, high): row 0 is the point estimate, the rest the bootstrap replicates."""
    tail = (1 - LEVEL) / 2 * 100
    lo, hi = np.nanpercentile(values[1:], [tail, 100 - tail]) if len(values) > 1 else (np.nan, np.nan)
    return round(float(values[0]), 4), round(float(lo), 4), round(float(hi), 4)


@dataclass
class Figures:
    """One candidate's real-speech figures: metric -> (point, low, high)."""

    values: dict[str, tuple[float, float, float]]

    def cell(self, metric: str) -> str:
        point, lo, hi = self.values[metric]
        return f"{point:.3f} [{lo:.2f}, {hi:.2f}]"


def bootstrap_figures(y: np.ndarray, pred: np.ndarray, weights: np.ndarray) -> Figures:
    draws = metric_draws(y, pred, weights)
    return Figures({m: interval(draws[m]) for m in METRICS})


def paired_difference(y: np.ndarray, a: np.ndarray, b: np.ndarray, weights: np.ndarray) -> Figures:
    """a minus b, each metric, with the CI of the difference over the same draws."""
    da, db = metric_draws(y, a, weights), metric_draws(y, b, weights)
    return Figures({m: interval(da[m] - db[m]) for m in METRICS})


def per_code(y: np.ndarray, pred: np.ndarray, codes: list[str]) -> dict[str, dict[str, float | int]]:
    y, pred = y.astype(bool), pred.astype(bool)
    out: dict[str, dict[str, float | int]] = {}
    for j, code in enumerate(codes):
        tp, ticked, support = int((y[:, j] & pred[:, j]).sum()), int(pred[:, j].sum()), int(y[:, j].sum())
        out[code] = {
            "support": support,
            "precision": round(tp / ticked, 3) if ticked else 0.0,
            "recall": round(tp / support, 3) if support else 0.0,
        }
    return out


def print_per_code(name: str, table: dict[str, dict[str, float | int]]) -> None:
    print(f"\nper code on the real quotes, {name}:")
    print(f"  {'code':<22} {'n':>3} {'precision':>9} {'recall':>6}")
    for code, row in table.items():
        print(f"  {code:<22} {row['support']:>3} {row['precision']:>9.2f} {row['recall']:>6.2f}")


# --------------------------------------------------------------------------- the loop on real speech

# (examples to learn from, how many of them at the end are the prior, settings) -> texts' decisions
Learner = Callable[[list[Example], int, ClassifierSettings], Callable[[list[Example]], np.ndarray]]


def _copies(examples: list[Example]) -> list[Example]:
    return [Example(e.key, e.text, list(e.codes), e.document, e.weight) for e in examples]


def loop_curve(
    real: list[Example],
    prior: list[Example],
    codes: list[str],
    cfg: ClassifierSettings,
    learn: Learner,
    fed: tuple[int, ...] = (0, 1, 2, 3, 4),
    replicates: int = REPLICATES,
) -> list[dict]:
    """Per k in `fed`: the real quotes of k pseudo-documents fed as project labels next to `prior`, the model
    `learn` makes from them scoring the quotes of the other documents; metrics averaged over every choice of k
    documents, with a bootstrap CI over quotes (each replicate re-weights the same quotes in every choice)."""
    from pipeline.classifier.training import with_prior

    documents = sorted({e.document for e in real})
    y = label_matrix(real, codes)
    weights = bootstrap_weights(len(real), replicates)
    rows = []
    for k in fed:
        per_choice, labels = [], []
        for chosen in itertools.combinations(documents, k):
            project = [e for e in real if e.document in chosen]
            scored = np.array([e.document not in chosen for e in real])
            examples = with_prior(_copies(project), _copies(prior) if project else None, cfg.project_weight)
            decide = learn(examples if project else _copies(prior), len(prior) if project else 0, cfg)
            pred = np.zeros_like(y, dtype=bool)
            pred[scored] = decide([e for e in real if e.document not in chosen])
            per_choice.append(metric_draws(y[scored], pred[scored], weights[:, scored]))
            labels.append(len(project))
        mean = {m: np.mean([d[m] for d in per_choice], axis=0) for m in METRICS}
        rows.append(
            {
                "documents_fed": k,
                "labels_fed": round(float(np.mean(labels)), 1),
                "choices": len(per_choice),
                **{m: interval(mean[m]) for m in METRICS},
            }
        )
    return rows


def print_loop(rows: list[dict], title: str) -> None:
    print(f"\n{title}")
    print(f"  {'docs fed':>8} {'labels':>6} {'choices':>7}  {'micro-F1 [95% CI]':<22} {'macro-F1':<22} {'kappa':<22}")
    for r in rows:
        cells = "".join(f"{r[m][0]:.3f} [{r[m][1]:.2f}, {r[m][2]:.2f}]   " for m in METRICS)
        print(f"  {r['documents_fed']:>8} {r['labels_fed']:>6} {r['choices']:>7}  {cells}")
