"""The reliability-sampling planner: how many segments to double-code, how far the double coding has
got, when to stop, and which segments the second coder codes next.

Before coding, Bloch and Kraemer's (1989, eq. 3.7) sample size as Krippendorff (2019, ch. 12)
applies it: for a smallest acceptable alpha `a`, a one-tailed significance level `p` (z its normal
quantile) and `P_c`, the expected share of the least frequent value,

    N = 2 z^2 ((1 + a)(3 - a) / (4 (1 - a) P_c (1 - P_c)) - a)      units, rounded up.

It reproduces Krippendorff's table (two coders, four equally likely values, a = .800, p = .05:
139 units; a = .667: 81). Every code of a multi-label codebook is a yes/no variable, so its P_c is
min(share, 1 - share); a single-choice codebook's smallest code share gives the same maximum.
Each double-coded segment is coded for every code, so the codebook needs the largest per-code N.

Coders: the formula and the table are for two coders. With more, we keep the two-coder N: alpha
over any two of the coders already rests on N pairable units, and further coders only add pairs,
so N is enough (conservative). (The ATLAS.ti manual's rule of multiplying z^2 by the number of
coders would make more coders need more units; we do not follow it.)

During coding, each code's alpha and bootstrap interval come from `coefficients` (the agreement
report's own functions). "There" means the one-sided lower bound at `p` (the p-quantile of the
bootstrap, the test the formula is sized for) is at or above `a` on at least the N planned for
the observed share. How many more segments get there is simulated: the current double-coded
segments are resampled at larger sizes until the bound reaches `a` (next segments assumed drawn
like the current ones). The verdict follows the 95% interval: a code is out of reach by more coding only when
the interval's upper end lies below `a`; one whose alpha is below `a` while its interval covers `a` continues,
with no projected number (a projection from a point estimate below `a` never gets there), as more coding decides.

Rare codes are oversampled: for codes whose share is below `min_share`, the segments the model
scores highest for them are chosen first, until the model's scores expect `min_share` of the
sample to carry the code; the rest is a seeded random draw. The plan records that the sample was
enriched, which a methods section must say.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.errors import CultureCodeError, shorten

if TYPE_CHECKING:
    import numpy as np

    from pipeline.config import Codebook
    from pipeline.store import Store

REACHED, CONTINUE, OUT_OF_REACH, NO_DATA = "reached", "continue", "out of reach", "too little data"
SIMULATION_LIMIT = 100_000  # segments; beyond this a code is reported as out of reach


@dataclass(frozen=True)
class Target:
    """What the reliability data must show: alpha >= alpha_min at one-tailed `significance`."""

    alpha_min: float = 0.800
    significance: float = 0.05
    coders: int = 2

    def check(self) -> None:
        if not 0 < self.alpha_min < 1:
            raise CultureCodeError(f"--alpha-min {self.alpha_min}: give a value between 0 and 1, e.g. 0.8")
        if not 0 < self.significance < 0.5:
            raise CultureCodeError(f"--significance {self.significance}: give a value between 0 and 0.5, e.g. 0.05")
        if self.coders < 2:
            raise CultureCodeError(f"--coders {self.coders}: reliability needs at least two coders")


def z_one_tailed(significance: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(1 - significance))


MAX_UNITS = 10_000_000  # `plan --smallest-share` refuses a plan beyond this many units (1e-300 printed 300 digits)


def required_units(target: Target, smallest_share: float) -> int:
    """Bloch and Kraemer's N as Krippendorff applies it (two-coder N for any number of coders)."""
    target.check()
    if not 0 < smallest_share <= 0.5:
        raise CultureCodeError(
            f"smallest share {smallest_share}: the least frequent value's expected share is above 0 and at most 0.5"
        )
    a, pc, z = target.alpha_min, smallest_share, z_one_tailed(target.significance)
    n = 2 * z * z * ((1 + a) * (3 - a) / (4 * (1 - a) * pc * (1 - pc)) - a)
    return math.ceil(round(n, 9))  # round first: a float error must not add a unit


def binary_share(share: float) -> float:
    """The smallest share of a yes/no code's two values."""
    return min(share, 1 - share)


def units_or_none(target: Target, share: float | None) -> int | None:
    if share is None or binary_share(share) <= 0:
        return None
    return required_units(target, binary_share(share))


# --------------------------------------------------------------------------- before coding


@dataclass
class CodePlan:
    """One code: its expected share, the units it needs under random sampling and when oversampled."""

    code: str
    share: float | None
    source: str  # "given", the model version, or "none"
    units: int | None
    oversampled: bool = False
    units_oversampled: int | None = None
    reason: str | None = None


def expected_shares(
    scores: dict[str, dict[str, float]], labels: dict[str, list[str]], codes: list[str]
) -> dict[str, float]:
    """Each code's share of the segments the model labelled."""
    n = len(labels)
    return {c: sum(c in chosen for chosen in labels.values()) / n for c in codes} if n else {}


def code_plans(
    target: Target,
    codes: list[str],
    model_shares: dict[str, float],
    given: dict[str, float],
    source: str | None,
    min_share: float,
    can_oversample: bool,
) -> list[CodePlan]:
    plans = []
    for code in codes:
        share, origin = (given[code], "given") if code in given else (model_shares.get(code), source or "none")
        plan = CodePlan(code, share, origin if share is not None else "none", units_or_none(target, share))
        if share is None:
            plan.reason = "no expected share: give it with --prevalence CODE=SHARE or pre-label the segments"
        elif binary_share(share) == 0:
            plan.reason = "expected share 0: no segment is expected to carry it; give --prevalence CODE=SHARE"
        if can_oversample and origin != "given" and (share is None or binary_share(share) < min_share):
            plan.oversampled = share is not None and share < 0.5
            plan.units_oversampled = required_units(target, min_share) if plan.oversampled else None
        plans.append(plan)
    return plans


def codebook_units(plans: list[CodePlan], oversampled: bool) -> int | None:
    """The segments the whole codebook needs: the most any code needs (each segment is coded for all)."""
    units = [(p.units_oversampled if oversampled and p.oversampled else p.units) for p in plans]
    known = [u for u in units if u is not None]
    return max(known) if known else None


# --------------------------------------------------------------------------- during coding


@dataclass
class CodeProgress:
    """One code on the segments double-coded so far."""

    code: str
    double_coded: int
    share: float | None
    alpha: float | None
    ci: list[float] | None  # 95% percentile bootstrap interval, as in the agreement report
    lower_bound: float | None  # one-sided bound at the target's significance (the rule's test)
    planned: int | None  # the formula's N at the observed share
    more_needed: int | None
    status: str
    reason: str | None = None


def lower_bound_at(counts: np.ndarray, size: int, significance: float, replicates: int, seed: int) -> float | None:
    """The p-quantile of bootstrap alphas when `size` units are drawn from the current ones."""
    import numpy as np

    from pipeline.agreement import coefficients as co

    n = counts.shape[0]
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(size, np.full(n, 1 / n), size=replicates).astype(np.float32)
    values = co.alpha_from_counts(counts, weights)
    values = values[np.isfinite(values)]
    if len(values) < 0.5 * replicates:
        return None
    return float(np.percentile(values, 100 * significance))


def units_to_reach(counts: np.ndarray, target: Target, replicates: int, seed: int) -> int | None:
    """Smallest number of double-coded segments whose simulated lower bound reaches alpha_min
    (doubling, then bisection; the same seed at every size keeps the search steady); None past the limit."""

    def ok(size: int) -> bool:
        bound = lower_bound_at(counts, size, target.significance, replicates, seed)
        return bound is not None and bound >= target.alpha_min

    n = counts.shape[0]
    if ok(n):
        return n
    low, high = n, 2 * n
    while not ok(high):
        low, high = high, high * 2
        if high > SIMULATION_LIMIT:
            return None
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if ok(mid) else (mid, high)
    return high


def code_progress(
    x: np.ndarray, code: str, target: Target, replicates: int, seed: int, expected: float | None
) -> CodeProgress:
    """`x`: the double-coded segments x coders matrix of 0/1 (NaN where not coded) for one code."""
    import numpy as np

    from pipeline.agreement import coefficients as co
    from pipeline.agreement.report import BINARY

    counts = co.value_counts(x, 2)
    n = int((counts.sum(axis=1) >= 2).sum())
    share = float(counts[:, 1].sum() / counts.sum()) if counts.sum() else None
    alpha = co.krippendorff_alpha(x, 2, BINARY)
    if alpha.value is None:
        planned = units_or_none(target, expected)
        more = None if planned is None else max(planned - n, 0)
        return CodeProgress(code, n, share, None, None, None, planned, more, NO_DATA, alpha.reason)
    weights = co.bootstrap_weights(counts.shape[0], replicates, seed)
    ci, _ = co.alpha_interval(counts, weights, 0.95)
    one_sided, _ = co.alpha_interval(counts, weights, 1 - 2 * target.significance)
    bound = one_sided[0] if one_sided else None
    planned = units_or_none(target, share)
    gap = max((planned or n) - n, 0)
    if gap == 0 and bound is not None and bound >= target.alpha_min:
        return CodeProgress(code, n, share, alpha.value, ci, bound, planned, 0, REACHED)
    if alpha.value < target.alpha_min:
        if ci is None or ci[1] < target.alpha_min:
            why = f"alpha {alpha.value:.3f} and its 95% interval lie below {target.alpha_min:.3f}: more segments only "
            why += "narrow the interval around it; revise the code's definition and retrain the coders"
            return CodeProgress(code, n, share, alpha.value, ci, bound, planned, None, OUT_OF_REACH, why)
        why = (
            f"alpha {alpha.value:.3f} is below {target.alpha_min:.3f} but its 95% interval [{ci[0]:.3f}, "
            f"{ci[1]:.3f}] covers it: more double-coding decides (no number can be projected from an alpha below "
            "the target)"
        )
        return CodeProgress(code, n, share, alpha.value, ci, bound, planned, None, CONTINUE, why)
    reach = units_to_reach(counts.astype(np.float64), target, replicates, seed)
    if reach is None:
        why = f"the simulated bound stays below {target.alpha_min:.3f} up to {SIMULATION_LIMIT} segments"
        return CodeProgress(code, n, share, alpha.value, ci, bound, planned, None, CONTINUE, why)
    # at least one more: the measured bound is short even where the simulation's draw at n passed
    more = max(gap, reach - n, 1)
    return CodeProgress(code, n, share, alpha.value, ci, bound, planned, more, CONTINUE)


def stop_rule(progress: list[CodeProgress], target: Target) -> tuple[bool, str]:
    """Stop double-coding when every code is there; say which codes hold it up, and by how much."""
    waiting = [p for p in progress if p.status in (CONTINUE, NO_DATA)]
    stuck = [p.code for p in progress if p.status == OUT_OF_REACH]
    bar = f"one-sided lower bound >= {target.alpha_min:.3f} at p = {target.significance:g}"
    if not progress:
        return False, "no segment is double-coded yet: double-code the planned sample"
    if not waiting and not stuck:
        return True, f"stop: every code is there ({bar}, on at least its planned number of segments)"
    if not waiting:
        return True, f"stop double-coding: more segments will not help {', '.join(stuck)}; revise those codes"
    projected = [p for p in waiting if p.more_needed is not None]
    open_ended = [p.code for p in waiting if p.more_needed is None]
    if projected:
        most = max(p.more_needed or 0 for p in projected)
        text = (
            f"continue: {most} more double-coded segment(s) (for {', '.join(p.code for p in projected)}) to reach {bar}"
        )
        if open_ended:
            text += f"; no projected number for {', '.join(open_ended)} (see each code's reason): keep double-coding"
    else:
        text = f"continue: keep double-coding for {', '.join(open_ended)} (no projected number: see each code's reason)"
    if stuck:
        text += f"; out of reach by more coding: {', '.join(stuck)}"
    return False, text


# --------------------------------------------------------------------------- choosing segments


@dataclass
class Selection:
    segment_ids: list[str]
    candidates: int
    oversampled: dict[str, int]  # code -> segments chosen for its high model score
    expected_share: dict[str, float]  # code -> share the model's scores expect in the chosen sample
    wanted: int = 0  # what the plan asked for; more than `candidates` when the workspace runs short


def choose_segments(
    candidates: list[str],
    size: int,
    scores: dict[str, dict[str, float]],
    rare: list[str],
    min_share: float,
    seed: int,
) -> Selection:
    """Top-scored candidates for each rare code (rarest first) until the scores expect `min_share`
    of `size` to carry it, then a seeded random draw of the rest."""
    import numpy as np

    chosen: dict[str, None] = {}
    picked: dict[str, int] = {}
    for code in rare:
        quota = min_share * size
        expected = sum(scores.get(s, {}).get(code, 0.0) for s in chosen)
        ranked = sorted(candidates, key=lambda s: (-scores.get(s, {}).get(code, 0.0), s))
        picked[code] = 0
        for seg in ranked:
            if expected >= quota or scores.get(seg, {}).get(code, 0.0) < 0.5:
                break
            if seg not in chosen:
                chosen[seg] = None
                expected += scores[seg][code]
                picked[code] += 1
    rest = sorted(s for s in candidates if s not in chosen)
    draw = max(size - len(chosen), 0)
    order = np.random.default_rng(seed).permutation(len(rest))[:draw]
    chosen.update(dict.fromkeys(rest[i] for i in sorted(order)))
    ids = list(chosen)
    codes = sorted({c for s in ids for c in scores.get(s, {})})
    shares = {c: sum(scores.get(s, {}).get(c, 0.0) for s in ids) / len(ids) for c in codes} if ids else {}
    return Selection(ids, len(candidates), picked, shares)


# --------------------------------------------------------------------------- the plan


@dataclass
class ReliabilityPlan:
    target: Target
    model_version: str | None
    segments: int
    min_share: float
    codes: list[CodePlan]
    units: int | None  # the whole codebook, rare codes oversampled where the model allows
    units_random_sampling: int | None
    progress: list[CodeProgress] = field(default_factory=list)
    stop: bool = False
    stop_reason: str = ""
    coder: str | None = None
    selection: Selection | None = None
    pushed: Any = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["pushed"] = self.pushed.as_dict() if hasattr(self.pushed, "as_dict") else self.pushed
        return data


def _model_view(
    store: Store, version: str | None, active: set[str]
) -> tuple[dict[str, dict[str, float]], dict[str, list[str]]]:
    from pipeline.store.predictions import predictions_of

    preds = predictions_of(store, version) if version else {}
    preds = {s: p for s, p in preds.items() if s in active}
    return {s: p.scores for s, p in preds.items()}, {s: p.codes for s, p in preds.items()}


def _double_coded(store: Store, codebook: Codebook, annotators: list[str] | None) -> Any:
    from pipeline.agreement.ratings import from_records, store_records

    records = store_records(store, codebook, annotators)
    if not records:
        return None
    ratings = from_records(records, codebook.code_ids)
    pairable = ratings.rated.sum(axis=1) >= 2
    return ratings.subset(ratings.rated & pairable[:, None]) if pairable.any() else None


def _model_version(store: Store, model_version: str | None) -> str | None:
    """`model_version` when the workspace has it (else a one-line error naming the versions it has); None: the
    current model's."""
    from pipeline.store.models import current_model, get_model, list_models

    if model_version is not None and get_model(store, model_version) is None:
        known = ", ".join(m["version"] for m in list_models(store, "classifier") + list_models(store, "llm"))
        raise CultureCodeError(
            f"no model version '{shorten(model_version)}' in {store.workspace} (versions: {known or 'none'})"
        )
    return model_version or current_model(store)


def reliability_plan(
    store: Store,
    codebook: Codebook,
    target: Target,
    given: dict[str, float] | None = None,
    model_version: str | None = None,
    min_share: float = 0.1,
    annotators: list[str] | None = None,
    coder: str | None = None,
    size: int | None = None,
    bootstrap: int = 1000,
    seed: int = 7,
) -> ReliabilityPlan:
    """The plan before coding, the progress during it, the stop rule, and the next segments for `coder`."""
    from pipeline.store.annotations import segments_sent_to

    target.check()
    given = _check_given(given or {}, codebook.code_ids)
    if not 0 < min_share <= 0.5:
        raise CultureCodeError(f"--min-share {min_share}: give a share above 0 and at most 0.5, e.g. 0.1")
    version = _model_version(store, model_version)
    active = [s.id for s in store.segments()]
    scores, labels = _model_view(store, version, set(active))
    shares = expected_shares(scores, labels, codebook.code_ids)
    plans = code_plans(target, codebook.code_ids, shares, given, version, min_share, bool(scores))
    plan = ReliabilityPlan(
        target,
        version if labels else None,
        len(active),
        min_share,
        plans,
        codebook_units(plans, True),
        codebook_units(plans, False),
        coder=coder,
    )
    ratings = _double_coded(store, codebook, annotators)
    if ratings is not None:
        expected = {p.code: p.share for p in plans}
        plan.progress = [
            code_progress(ratings.binary(i), c, target, bootstrap, seed, expected[c])
            for i, c in enumerate(ratings.codes)
        ]
    plan.stop, plan.stop_reason = stop_rule(plan.progress, target)
    exclude = (set(ratings.items) if ratings is not None else set()) | (
        segments_sent_to(store, coder) if coder else set()
    )
    candidates = [s for s in active if s not in exclude]
    _select(plan, candidates, scores, size, seed)
    return plan


def _select(
    plan: ReliabilityPlan, candidates: list[str], scores: dict[str, dict[str, float]], size: int | None, seed: int
) -> None:
    """Choose the next segments; when oversampling falls short of `min_share` for a code (the model
    scores too few segments high for it), the sample grows once to what the achieved share needs."""
    rare = [p.code for p in sorted(plan.codes, key=lambda p: p.share or 0.0) if p.oversampled]
    wanted = size if size is not None else _next_size(plan)
    selection = choose_segments(candidates, min(wanted, len(candidates)), scores, rare, plan.min_share, seed)
    if size is None and not plan.progress and rare and selection.segment_ids:
        achieved = [units_or_none(plan.target, selection.expected_share.get(c)) for c in rare]
        needed = max([u for u in achieved if u is not None] + [wanted])
        if needed > wanted:
            plan.units = needed
            selection = choose_segments(candidates, min(needed, len(candidates)), scores, rare, plan.min_share, seed)
            wanted = needed
    selection.wanted = wanted
    plan.selection = selection


PRECODING_KEY = "reliability_plan_precoding"  # the first plan recorded before any segment was double-coded: frozen


def record_plan(store: Store, plan: ReliabilityPlan) -> None:
    """Keep the latest plan in the workspace (meta `reliability_plan`, and a `plan` run) for the appendix; the first
    plan made before any segment was double-coded is also kept, once and for all (meta PRECODING_KEY), so the
    appendix shows the plan the study started from beside the latest."""
    from pipeline.store import dumps
    from pipeline.store.db import now

    data = {**plan.as_dict(), "recorded_at": now()}
    args = {**asdict(plan.target), "min_share": plan.min_share, "coder": plan.coder}
    with store.transaction(), store.run("plan", args) as summary:
        store.set_meta("reliability_plan", dumps(data))
        if store.get_meta(PRECODING_KEY) is None and not any(p.double_coded for p in plan.progress):
            store.set_meta(PRECODING_KEY, dumps(data))
        chosen = len(plan.selection.segment_ids) if plan.selection else 0
        summary.update(units=plan.units, stop=plan.stop, stop_reason=plan.stop_reason, chosen=chosen)
        summary.update(pushed=bool(plan.pushed))


def _next_size(plan: ReliabilityPlan) -> int:
    if plan.progress:
        return 0 if plan.stop else max((p.more_needed or 0) for p in plan.progress)
    return plan.units or 0


def _check_given(given: dict[str, float], codes: list[str]) -> dict[str, float]:
    unknown = [c for c in given if c not in codes]
    if unknown:
        raise CultureCodeError(f"--prevalence: unknown code(s) {', '.join(unknown)}; known: {', '.join(codes)}")
    bad = [f"{c}={v}" for c, v in given.items() if not 0 < v < 1]
    if bad:
        raise CultureCodeError(f"--prevalence {', '.join(bad)}: a code's expected share is between 0 and 1")
    return given


def single_variable(target: Target, smallest_share: float) -> dict[str, Any]:
    """The scriptable form: one variable's units for the least frequent value's expected share."""
    units = required_units(target, smallest_share)
    if units > MAX_UNITS:
        raise CultureCodeError(
            f"smallest share {smallest_share:g} needs {units:.3g} double-coded units, more than {MAX_UNITS:,}: a value "
            f"this rare cannot be planned by random double-coding; oversample it (plan --min-share) or merge values"
        )
    return {**asdict(target), "smallest_share": smallest_share, "z": z_one_tailed(target.significance), "units": units}
