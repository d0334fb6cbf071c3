"""Gold labels from annotations: majority vote, Dawid-Skene (crowd-kit) or the adjudicator's decision.

Multi-label codebooks are aggregated per code as a yes/no decision (binary relevance); single-choice
codebooks as one choice among the codes. Every gold row records the method and the votes, and the
whole table is rewritten in one transaction, so a rerun gives the same gold.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipeline.agreement.ratings import Ratings, load_ratings
from pipeline.config import Codebook
from pipeline.errors import CultureCodeError
from pipeline.store import Store
from pipeline.store.annotations import review_annotations
from pipeline.store.gold import GoldLabel, replace_gold

METHODS = ("majority", "dawid-skene", "adjudicator")
CONFUSION_META = "dawid_skene_confusion"  # the last Dawid-Skene adjudication's per-coder confusion


@dataclass
class AdjudicationReport:
    method: str
    segments: int = 0
    per_code: dict[str, int] = field(default_factory=dict)
    ties: int = 0  # majority: (segment, code) pairs with as many yes as no votes, resolved to "absent"
    adjudicated: int = 0  # adjudicator: segments decided in the review project
    fallback_majority: int = 0  # adjudicator: segments without a review decision, decided by majority
    # dawid-skene: {code: {coder: {"sensitivity", "specificity", "segments"}}}, kept for the appendix
    coder_confusion: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _votes(r: Ratings, i: int) -> dict[str, Any]:
    yes = (r.labels[i] & r.rated[i][:, None]).sum(axis=0)
    return {"n_annotators": int(r.rated[i].sum()), "yes": {c: int(n) for c, n in zip(r.codes, yes, strict=True)}}


def majority(r: Ratings) -> tuple[np.ndarray, np.ndarray]:
    """Gold (items, codes) and the ties. Multi-label: a code is gold when more than half ticked it.
    Single-choice: the most chosen code; a tie goes to the code that comes first in the codebook."""
    yes = (r.labels & r.rated[:, :, None]).sum(axis=1)
    n = r.rated.sum(axis=1)[:, None]
    if not r.single_choice:
        return 2 * yes > n, 2 * yes == n
    counts = np.column_stack([yes, n[:, 0] - yes.sum(axis=1)])  # the last column is "no code"
    top = counts.max(axis=1, keepdims=True)
    winner = counts.argmax(axis=1)  # the first maximum: codebook order, "no code" last
    gold = np.zeros_like(yes, dtype=bool)
    has_code = winner < yes.shape[1]
    gold[np.flatnonzero(has_code), winner[has_code]] = True
    tied = (counts == top).sum(axis=1) > 1
    return gold, (yes == top) & tied[:, None]


def _frame(r: Ratings, values: np.ndarray) -> pd.DataFrame:
    i, a = np.nonzero(r.rated)
    return pd.DataFrame(
        {
            "task": np.asarray(r.items, dtype=object)[i],
            "worker": np.asarray(r.annotators, dtype=object)[a],
            "label": values[i, a],
        }
    )


def dawid_skene(r: Ratings, n_iter: int = 100) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Gold (items, codes), the posterior probability of each gold code and, per code, each coder's sensitivity
    and specificity (multi-label codebooks), via crowd-kit."""
    with warnings.catch_warnings():
        # crowd-kit 1.4 uses pandas' deprecated inplace= arguments on every iteration
        warnings.simplefilter("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*(inplace|copy) keyword.*")
        return _dawid_skene(r, n_iter)


def _fit(frame: pd.DataFrame, items: list[str], n_iter: int) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    """One Dawid-Skene fit: the chosen label and the label probabilities per item, in `items` order, and each
    coder's confusion (rows: (coder, given label); columns: true label; values: P(given | true))."""
    from crowdkit.aggregation import DawidSkene

    model = DawidSkene(n_iter=n_iter)
    chosen = model.fit_predict(frame).reindex(items).to_numpy()
    if model.probas_ is None or model.errors_ is None:  # crowd-kit types them Optional: unset before fitting
        raise RuntimeError("crowd-kit's DawidSkene left probas_ or errors_ unset after fitting")
    return chosen, model.probas_.reindex(items), model.errors_


def _rate(errors: pd.DataFrame, coder: str, given: int, true: int) -> float | None:
    """P(coder gives `given` | the true label is `true`), None where the fit has no such cell."""
    try:
        value = float(errors.loc[(coder, given), true])
    except KeyError:
        return None
    return round(value, 6) if np.isfinite(value) else None


def _binary_confusion(r: Ratings, c: int, errors: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per coder of code `c`: sensitivity P(ticks | present), specificity P(leaves | absent), segments coded."""
    out = {}
    for a, coder in enumerate(r.annotators):
        coded = int(r.rated[:, a].sum())
        if coded:
            sens, spec = _rate(errors, coder, 1, 1), _rate(errors, coder, 0, 0)
            out[coder] = {"sensitivity": sens, "specificity": spec, "segments": coded}
    return out


def _dawid_skene(r: Ratings, n_iter: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    gold = np.zeros((r.n_items, len(r.codes)), dtype=bool)
    posterior = np.zeros((r.n_items, len(r.codes)))
    confusion: dict[str, Any] = {}
    if r.single_choice:
        cats, names = r.categories()
        chosen, probas, _ = _fit(_frame(r, cats.astype(int)), r.items, n_iter)
        for k in range(len(r.codes)):
            gold[:, k] = chosen == k
            posterior[:, k] = probas[k].to_numpy() if k in probas else 0.0
        return gold, posterior, confusion
    for c in range(len(r.codes)):
        chosen, probas, errors = _fit(_frame(r, r.labels[:, :, c].astype(int)), r.items, n_iter)
        gold[:, c] = chosen == 1
        posterior[:, c] = probas[1].to_numpy() if 1 in probas else 0.0
        confusion[r.codes[c]] = _binary_confusion(r, c, errors)
    return gold, posterior, confusion


def coder_confusion(r: Ratings, n_iter: int = 100) -> dict[str, dict[str, dict[str, Any]]]:
    """{code: {coder: {"sensitivity", "specificity", "segments"}}} as Dawid-Skene estimates them (multi-label
    codebooks; each code a yes/no decision)."""
    return dawid_skene(r, n_iter)[2]


def review_decisions(store: Store, codebook: Codebook) -> dict[str, tuple[list[str], str]]:
    """The latest decision per segment in review projects: {segment: (codes, adjudicator)}."""
    return {
        a.segment_id: (codebook.check_codes(a.codes, f"review annotation {a.annotation_id}"), a.annotator)
        for a in review_annotations(store)
    }


def adjudicate(store: Store, codebook: Codebook, method: str = "majority") -> AdjudicationReport:
    """Turn annotations into gold labels per segment and write the `gold` table in one transaction."""
    if method not in METHODS:
        raise CultureCodeError(f"--method '{method}' is not one of {', '.join(METHODS)}")
    ratings = load_ratings(store, codebook)
    gold, ties = majority(ratings)
    report = AdjudicationReport(method, segments=ratings.n_items)
    rows_method = np.full(ratings.n_items, "majority", dtype=object)
    extra: list[dict[str, Any]] = [{} for _ in ratings.items]
    if method == "majority":
        report.ties = int(ties.sum())
        for i in np.flatnonzero(ties.any(axis=1)):
            extra[i]["ties"] = [ratings.codes[c] for c in np.flatnonzero(ties[i])]
    elif method == "dawid-skene":
        gold, posterior, report.coder_confusion = dawid_skene(ratings)
        rows_method[:] = "dawid-skene"
        for i in range(ratings.n_items):
            extra[i]["posterior"] = {c: round(float(p), 6) for c, p in zip(ratings.codes, posterior[i], strict=True)}
    else:
        decisions = review_decisions(store, codebook)
        for i, item in enumerate(ratings.items):
            if item in decisions:
                codes, who = decisions.pop(item)
                gold[i] = [c in codes for c in ratings.codes]
                rows_method[i] = "adjudicator"
                extra[i]["adjudicator"] = who
        report.adjudicated = int((rows_method == "adjudicator").sum())
        report.fallback_majority = ratings.n_items - report.adjudicated
    labels = [
        GoldLabel(
            item,
            [c for c, g in zip(ratings.codes, gold[i], strict=True) if g],
            str(rows_method[i]),
            {**_votes(ratings, i), **extra[i]},
        )
        for i, item in enumerate(ratings.items)
    ]
    with store.transaction(), store.run("adjudicate", {"method": method}) as summary:
        replace_gold(store, labels, codebook.content_hash)
        if method == "dawid-skene":
            store.set_meta(CONFUSION_META, json.dumps(report.coder_confusion, sort_keys=True))
        report.per_code = {c: int(gold[:, k].sum()) for k, c in enumerate(ratings.codes)}
        summary.update(report.as_dict())
    return report
