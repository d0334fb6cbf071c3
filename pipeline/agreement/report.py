"""The agreement report as one JSON-ready dict: per code, over the label set, per model, per round."""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np

from pipeline.agreement import coefficients as co
from pipeline.agreement.labelsets import exact_match, set_alphas
from pipeline.agreement.ratings import Ratings

PERCENT_AGREEMENT = (
    "percent agreement is the mean, over annotator pairs, of the share of the items "
    "both annotators coded on which they made the same decision"
)
BINARY = ["absent", "present"]


def _pack(coefs: dict[str, co.Coef]) -> dict[str, Any]:
    """Values, kappa/alpha bands and the reasons for undefined values, in the documented shape."""
    out: dict[str, Any] = {name: c.value for name, c in coefs.items()}
    reasons = {name: c.reason for name, c in coefs.items() if c.value is None}
    out["interpretation"] = {
        name: (
            co.alpha_band(c.value)
            if name.startswith("krippendorff")
            else None
            if name.startswith("percent")
            else co.kappa_band(c.value)
        )
        for name, c in coefs.items()
    }
    out["undefined_reasons"] = reasons
    out["undefined_reason"] = "; ".join(f"{k}: {v}" for k, v in reasons.items()) or None
    return out


def category_stats(
    x: np.ndarray, k: int, labels: list[str], annotators: list[str], weights: np.ndarray
) -> dict[str, Any]:
    """Every coefficient for one units x raters matrix of category indices."""
    pairs = co.cohen_pairs(x, k, labels)
    coefs = {
        "percent_agreement": co.percent_agreement(x),
        "cohen_kappa_mean": co.mean_of(list(pairs.values())),
        "fleiss_kappa": co.fleiss_kappa(x, k, labels),
        "krippendorff_alpha": co.krippendorff_alpha(x, k, labels),
        "gwet_ac1": co.gwet_ac1(x, k),
    }
    out = _pack(coefs)
    counts = co.value_counts(x, k)
    m = counts.sum(axis=1)
    ci, ci_reason = (None, coefs["krippendorff_alpha"].reason)
    if coefs["krippendorff_alpha"].value is not None:
        ci, ci_reason = co.alpha_interval(counts, weights)
    out.update(
        {
            "krippendorff_alpha_ci": ci,
            "krippendorff_alpha_ci_reason": ci_reason,
            "cohen_kappa_pairs": {f"{annotators[a]} | {annotators[b]}": c.value for (a, b), c in pairs.items()},
            "n_units": int((m >= 1).sum()),
            "n_pairable_units": int((m >= 2).sum()),
            "n_pairable_values": int(m[m >= 2].sum()),
            "category_counts": dict(zip(labels, counts.sum(axis=0).tolist(), strict=True)),
        }
    )
    return out


def confusion(x: np.ndarray) -> dict[str, int]:
    """Decisions of annotator pairs on one binary code, summed over pairs and shared items."""
    both_yes = both_no = split = 0
    for a, b in combinations(range(x.shape[1]), 2):
        shared = ~np.isnan(x[:, a]) & ~np.isnan(x[:, b])
        xa, xb = x[shared, a], x[shared, b]
        both_yes += int(((xa == 1) & (xb == 1)).sum())
        both_no += int(((xa == 0) & (xb == 0)).sum())
        split += int((xa != xb).sum())
    return {"both_present": both_yes, "both_absent": both_no, "split": split}


def per_code(ratings: Ratings, codes: list[str], weights: np.ndarray) -> dict[str, dict[str, Any]]:
    out = {}
    for code in codes:
        x = ratings.binary(ratings.codes.index(code))
        stats = category_stats(x, 2, BINARY, ratings.annotators, weights)
        stats["name"] = ratings.names.get(code, code)
        stats["confusion"] = confusion(x)
        stats["prevalence"] = float(np.nanmean(x)) if np.isfinite(x).any() else None
        out[code] = stats
    return out


def overall(ratings: Ratings, weights: np.ndarray) -> dict[str, Any]:
    alphas = set_alphas(ratings.labels, ratings.rated)
    coefs = {
        "alpha_masi": alphas["masi"],
        "alpha_jaccard": alphas["jaccard"],
        "exact_match": exact_match(ratings.labels, ratings.rated),
    }
    out = _pack(coefs)
    out["interpretation"] = {k: co.alpha_band(c.value) if k.startswith("alpha") else None for k, c in coefs.items()}
    if ratings.single_choice:
        cats, names = ratings.categories()
        multi = category_stats(cats, len(names), names, ratings.annotators, weights)
        multi["krippendorff_alpha_nominal"] = multi.pop("krippendorff_alpha")
        multi["interpretation"]["krippendorff_alpha_nominal"] = multi["interpretation"].pop("krippendorff_alpha")
        reasons = {
            **out["undefined_reasons"],
            **{
                ("krippendorff_alpha_nominal" if k == "krippendorff_alpha" else k): v
                for k, v in multi.pop("undefined_reasons").items()
            },
        }
        multi.pop("undefined_reason")
        out = {
            **out,
            **multi,
            "interpretation": {**out["interpretation"], **multi["interpretation"]},
            "undefined_reasons": reasons,
            "undefined_reason": "; ".join(f"{k}: {v}" for k, v in reasons.items()) or None,
        }
    return out


def kappa_matrix(ratings: Ratings, codes: list[str]) -> list[list[float | None]]:
    """Annotator x annotator Cohen's kappa (mean over codes; the multi-category kappa when single-choice)."""
    n = len(ratings.annotators)
    matrix: list[list[float | None]] = [[1.0 if a == b else None for b in range(n)] for a in range(n)]
    if ratings.single_choice:
        cats, names = ratings.categories()
        cells = {p: c.value for p, c in co.cohen_pairs(cats, len(names), names).items()}
    else:
        per = [co.cohen_pairs(ratings.binary(ratings.codes.index(c)), 2, BINARY) for c in codes]
        cells = {p: co.mean_of([d[p] for d in per]).value for p in combinations(range(n), 2)}
    for (a, b), value in cells.items():
        matrix[a][b] = matrix[b][a] = value
    return matrix


def model_agreement(
    ratings: Ratings, models: dict[str, tuple[np.ndarray, np.ndarray]], codes: list[str]
) -> dict[str, Any]:
    """Each model version as an extra rater: its agreement with every human, per code."""
    out = {}
    for version, (labels, has) in sorted(models.items()):
        row = {}
        for code in codes:
            c = ratings.codes.index(code)
            humans = ratings.binary(c)
            model = np.where(has, labels[:, c].astype(np.float64), np.nan)
            kappas = [co.cohen_kappa(model, humans[:, a], 2, BINARY) for a in range(humans.shape[1])]
            both = np.column_stack([model, humans])
            shares = [
                float((model[s] == humans[s, a]).mean())
                for a in range(humans.shape[1])
                if (s := ~np.isnan(model) & ~np.isnan(humans[:, a])).any()
            ]
            mean_kappa = co.mean_of(kappas, "the model labelled none of these items")
            row[code] = {
                "cohen_kappa_mean": mean_kappa.value,
                "undefined_reason": mean_kappa.reason,
                "interpretation": co.kappa_band(mean_kappa.value),
                "percent_agreement": float(np.mean(shares)) if shares else None,
                "krippendorff_alpha_with_model": co.krippendorff_alpha(both, 2, BINARY).value,
            }
        out[version] = {"n_items": int(has.sum()), "codes": row}
    return out


def by_round(ratings: Ratings, codes: list[str]) -> dict[str, dict[str, Any]]:
    """Agreement among annotations made on tasks pre-labelled by the same model version."""
    if ratings.rounds is None:
        return {}
    out = {}
    for name in sorted({r for r in ratings.rounds[ratings.rated]}):
        sub = ratings.subset(ratings.rated & (ratings.rounds == name))
        alphas = [co.krippendorff_alpha(sub.binary(sub.codes.index(c)), 2, BINARY) for c in codes]
        mean_alpha = co.mean_of(alphas, co.NO_PAIRS)
        out[name] = {
            "n_items": sub.n_items,
            "mean_alpha": mean_alpha.value,
            "mean_alpha_reason": mean_alpha.reason,
            "exact_match": exact_match(sub.labels, sub.rated).value,
        }
    return out


def contested(ratings: Ratings, limit: int | None = None) -> list[dict[str, Any]]:
    """Items where annotators disagree, most contested first (share of minority votes)."""
    yes = (ratings.labels & ratings.rated[:, :, None]).sum(axis=1)
    n = ratings.rated.sum(axis=1)
    minority = np.minimum(yes, n[:, None] - yes)
    score = minority.sum(axis=1) / np.maximum(n, 1)
    split_codes = (minority > 0).sum(axis=1)
    order = sorted(np.flatnonzero(score > 0), key=lambda i: (-score[i], -split_codes[i], ratings.items[i]))
    rows = []
    for i in order[:limit]:
        votes = {ratings.codes[c]: int(yes[i, c]) for c in np.flatnonzero(minority[i] > 0)}
        coders = {
            a: [ratings.codes[c] for c in np.flatnonzero(ratings.labels[i, j])]
            for j, a in enumerate(ratings.annotators)
            if ratings.rated[i, j]
        }
        rows.append(
            {
                "item": ratings.items[i],
                "score": round(float(score[i]), 4),
                "n_annotators": int(n[i]),
                "split_votes": votes,
                "annotations": coders,
            }
        )
    return rows


def summary(codes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    groups: dict[str, list[str]] = {"reliable": [], "tentative": [], "unreliable": [], "undefined": []}
    for code, stats in codes.items():
        groups[stats["interpretation"]["krippendorff_alpha"]].append(code)
    labels = {
        "reliable": "reliable (alpha >= .800)",
        "tentative": "tentative only (.667 <= alpha < .800)",
        "unreliable": "unreliable (alpha < .667)",
        "undefined": "alpha undefined",
    }
    parts = []
    for group, label in labels.items():
        if group == "undefined":
            names = [f"{c} ({codes[c]['undefined_reasons'].get('krippendorff_alpha')})" for c in groups[group]]
        else:
            names = groups[group]
        if names or group == "reliable":
            parts.append(f"{label}: {', '.join(names) or 'none'}")
    text = f"Of {len(codes)} code{'s' if len(codes) != 1 else ''}, " + "; ".join(parts) + "."
    return {**groups, "text": text}


def compute_agreement(
    ratings: Ratings,
    codes: list[str] | None = None,
    bootstrap: int = 1000,
    seed: int = 7,
    models: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Every figure of the report for `ratings` (optionally only some codes) as one dict."""
    codes = codes or ratings.codes
    weights = co.bootstrap_weights(ratings.n_items, bootstrap, seed)
    per = per_code(ratings, codes, weights)
    return {
        "n_items": ratings.n_items,
        "n_annotators": len(ratings.annotators),
        "annotators": ratings.annotators,
        "single_choice": ratings.single_choice,
        "bootstrap": {"replicates": bootstrap, "seed": seed, "level": 0.95, "over": "items"},
        "definitions": {
            "percent_agreement": PERCENT_AGREEMENT,
            "kappa_bands": "Landis & Koch (1977)",
            "alpha_bands": "alpha >= .800 reliable, >= .667 tentative (Krippendorff 2004)",
        },
        "codes": per,
        "overall": overall(ratings, weights),
        "pairwise_kappa": {"annotators": ratings.annotators, "matrix": kappa_matrix(ratings, codes)},
        "models": model_agreement(ratings, models or {}, codes),
        "rounds": by_round(ratings, codes),
        "summary": summary(per),
        "disagreements": contested(ratings, limit=20),
    }
