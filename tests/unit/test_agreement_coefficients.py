"""Coefficients against published worked examples, second libraries, and their edge cases."""

from __future__ import annotations

import math
import warnings
from itertools import combinations

import krippendorff
import numpy as np
import pytest
from nltk.metrics.agreement import AnnotationTask
from nltk.metrics.distance import binary_distance, jaccard_distance, masi_distance
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

from pipeline.agreement import coefficients as co
from pipeline.agreement.labelsets import exact_match, set_alpha, set_distance

nan = np.nan


def from_table(table: list[list[int]]) -> np.ndarray:
    """A two-rater contingency table (rows: rater 1, columns: rater 2) as a units x 2 matrix."""
    rows = [[i, j] for i, row in enumerate(table) for j, n in enumerate(row) for _ in range(n)]
    return np.array(rows, dtype=float)


def from_distribution(table: list[list[int]]) -> np.ndarray:
    """Fleiss-style subject x category counts as a units x raters matrix."""
    return np.array([[c for c, n in enumerate(row) for _ in range(n)] for row in table], dtype=float)


# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", 4 coders, 12 units, values 1-5
KRIPPENDORFF_2011 = (
    np.array(
        [
            [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
            [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
            [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
            [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
        ]
    ).T
    - 1
)
# Gwet (2014), Handbook of Inter-Rater Reliability, 4th ed., p. 120: 4 raters, 12 units, missing ratings
GWET_4RATERS = (
    np.array(
        [
            [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
            [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, nan],
            [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, 3],
            [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
        ]
    ).T
    - 1
)
# Wikipedia, "Fleiss' kappa" worked example: 10 subjects, 14 raters, 5 categories
FLEISS_WIKIPEDIA = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_krippendorff_2011_nominal_example() -> None:
    assert round(co.krippendorff_alpha(KRIPPENDORFF_2011, 5).value, 3) == 0.743


def test_fleiss_wikipedia_example() -> None:
    assert round(co.fleiss_kappa(from_distribution(FLEISS_WIKIPEDIA), 5).value, 3) == 0.210


def test_cohen_two_by_two_example() -> None:
    # Wikipedia "Cohen's kappa": 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no -> 0.40
    x = from_table([[20, 5], [10, 15]])
    assert co.cohen_kappa(x[:, 0], x[:, 1], 2).value == pytest.approx(0.40, abs=1e-12)


def test_gwet_two_rater_examples_from_the_handbook() -> None:
    # Gwet (2014): 100 pregnancies by 2 abstractors, 3 categories (AC1 0.849);
    # 223 psychiatric patients by 2 diagnosis methods, 4 categories (AC1 0.456)
    abstractors = from_table([[13, 0, 0], [0, 20, 7], [0, 4, 56]])
    diagnosis = from_table([[40, 4, 4, 17], [6, 25, 2, 13], [4, 1, 21, 12], [15, 5, 9, 45]])
    assert round(co.gwet_ac1(abstractors, 3).value, 3) == 0.849
    assert round(co.gwet_ac1(diagnosis, 4).value, 3) == 0.456


def test_gwet_four_raters_with_missing_ratings() -> None:
    # Gwet (2014) p. 120: AC1 0.775 (pa .818, pe .190) and Fleiss' kappa 0.761 (pe .239)
    assert round(co.gwet_ac1(GWET_4RATERS, 5).value, 3) == 0.775
    assert round(co.fleiss_kappa(GWET_4RATERS, 5).value, 3) == 0.761


def test_skewed_table_kappa_low_but_ac1_high() -> None:
    # Feinstein & Cicchetti's paradox: 118 of 125 agree on "no", kappa is below zero
    x = from_table([[118, 5], [2, 0]])
    kappa = co.cohen_kappa(x[:, 0], x[:, 1], 2).value
    ac1 = co.gwet_ac1(x, 2).value
    assert round(kappa, 3) == -0.023
    assert round(ac1, 3) == 0.941
    assert co.percent_agreement(x).value == pytest.approx(118 / 125)


def test_two_units_swapped_alpha_is_minus_half_and_kappa_minus_one() -> None:
    x = np.array([[0, 1], [1, 0]], dtype=float)
    assert co.krippendorff_alpha(x, 2).value == pytest.approx(-0.5)
    assert co.cohen_kappa(x[:, 0], x[:, 1], 2).value == pytest.approx(-1.0)


# --------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: co.krippendorff_alpha(x, 2),
        lambda x: co.fleiss_kappa(x, 2),
        lambda x: co.cohen_kappa(x[:, 0], x[:, 1], 2),
        lambda x: co.mean_of(list(co.cohen_pairs(x, 2).values())),
    ],
)
def test_one_category_everywhere_is_undefined_with_a_reason(fn) -> None:
    result = fn(np.zeros((6, 3)))
    assert result.value is None
    assert "only one category" in result.reason


def test_one_category_among_pairable_values_plus_a_stray_value() -> None:
    # krippendorff returns NaN here; the single-rated "1" has no pair to disagree with
    x = np.array([[0, 0], [0, 0], [1, nan]])
    result = co.krippendorff_alpha(x, 2)
    assert result.value is None and "only one category" in result.reason


@pytest.mark.parametrize(
    "fn",
    [
        co.percent_agreement,
        lambda x: co.fleiss_kappa(x, 2),
        lambda x: co.krippendorff_alpha(x, 2),
        lambda x: co.gwet_ac1(x, 2),
    ],
)
def test_single_annotator_and_no_pairable_units(fn) -> None:
    single = np.array([[0], [1], [1]], dtype=float)
    assert fn(single) == co.Coef(None, co.ONE_RATER)
    no_pairs = np.array([[0, nan], [nan, 1], [1, nan]])
    assert fn(no_pairs) == co.Coef(None, co.NO_PAIRS)


def test_cohen_with_nothing_in_common() -> None:
    result = co.cohen_kappa(np.array([0, 1, nan, nan]), np.array([nan, nan, 1, 0]), 2)
    assert result.value is None and "in common" in result.reason


def test_libraries_fail_where_the_wrappers_report_undefined() -> None:
    """The pitfalls the wrappers exist for (if a library fixes one, this test says so)."""
    with pytest.raises(ValueError):
        krippendorff.alpha(reliability_data=np.zeros((3, 5)), level_of_measurement="nominal")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert math.isnan(
            krippendorff.alpha(reliability_data=np.array([[0, 0, 1], [0, 0, nan]]), level_of_measurement="nominal")
        )
        assert math.isnan(cohen_kappa_score([0, 0, 0], [0, 0, 0]))
        with np.errstate(all="ignore"):
            assert math.isnan(sm_fleiss(np.array([[3, 0], [3, 0]])))


# --------------------------------------------------------------------------- second libraries


def random_ratings(seed: int, units: int = 60, raters: int = 4, k: int = 3, missing: float = 0.2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, units)
    x = np.where(rng.random((units, raters)) < 0.7, truth[:, None], rng.integers(0, k, (units, raters))).astype(float)
    x[rng.random((units, raters)) < missing] = nan
    return x


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_alpha_matches_nltk_on_random_data_with_missing_values(seed: int) -> None:
    x = random_ratings(seed)
    triples = [
        (str(r), str(u), int(x[u, r])) for u in range(len(x)) for r in range(x.shape[1]) if not np.isnan(x[u, r])
    ]
    nltk_alpha = AnnotationTask(triples, distance=binary_distance).alpha()
    assert co.krippendorff_alpha(x, 3).value == pytest.approx(nltk_alpha, abs=1e-9)


@pytest.mark.parametrize("seed", [12, 13])
def test_alpha_matches_the_krippendorff_package(seed: int) -> None:
    x = random_ratings(seed, k=4, missing=0.3)
    expected = krippendorff.alpha(reliability_data=x.T, level_of_measurement="nominal", value_domain=[0, 1, 2, 3])
    assert co.krippendorff_alpha(x, 4).value == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", [4, 5])
def test_cohen_matches_scikit_learn_on_shared_units(seed: int) -> None:
    x = random_ratings(seed, raters=2)
    shared = ~np.isnan(x).any(axis=1)
    expected = cohen_kappa_score(x[shared, 0].astype(int), x[shared, 1].astype(int))
    assert co.cohen_kappa(x[:, 0], x[:, 1], 3).value == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", [6, 7])
def test_fleiss_matches_statsmodels_on_complete_data(seed: int) -> None:
    x = random_ratings(seed, missing=0.0)
    assert co.fleiss_kappa(x, 3).value == pytest.approx(sm_fleiss(co.value_counts(x, 3)), abs=1e-12)


def test_ac1_two_raters_matches_the_two_rater_formula() -> None:
    # Gwet (2008) eq. for 2 raters and 2 categories: pe = 2 * pi * (1 - pi), pi the mean "yes" share
    x = random_ratings(8, raters=2, k=2, missing=0.0)
    pa = float((x[:, 0] == x[:, 1]).mean())
    pi = float(x.mean())
    pe = 2 * pi * (1 - pi)
    assert co.gwet_ac1(x, 2).value == pytest.approx((pa - pe) / (1 - pe), abs=1e-12)


def test_percent_agreement_is_the_mean_over_pairs_of_shared_items() -> None:
    x = random_ratings(9)
    shares = []
    for a, b in combinations(range(x.shape[1]), 2):
        both = [(x[u, a], x[u, b]) for u in range(len(x)) if not np.isnan(x[u, a]) and not np.isnan(x[u, b])]
        shares.append(sum(p == q for p, q in both) / len(both))
    assert co.percent_agreement(x).value == pytest.approx(sum(shares) / len(shares))
    complete = random_ratings(9, missing=0.0)
    triples = [(str(r), str(u), int(complete[u, r])) for u in range(len(complete)) for r in range(4)]
    assert co.percent_agreement(complete).value == pytest.approx(AnnotationTask(triples).avg_Ao())


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_point_and_interval() -> None:
    counts = co.value_counts(KRIPPENDORFF_2011, 5)
    ones = np.ones((1, len(counts)), dtype=np.float32)
    assert co.alpha_from_counts(counts, ones)[0] == pytest.approx(0.743421, abs=1e-6)
    w = co.bootstrap_weights(len(counts), 500, seed=7)
    assert w.shape == (500, 12) and (w.sum(axis=1) == 12).all()
    ci, reason = co.alpha_interval(counts, w)
    assert reason is None and ci[0] < 0.743 < ci[1] <= 1.0
    assert co.alpha_interval(counts, co.bootstrap_weights(12, 500, seed=7))[0] == ci
    assert co.alpha_interval(counts, co.bootstrap_weights(12, 500, seed=8))[0] != ci


def test_bootstrap_replicates_match_the_library_on_resampled_units() -> None:
    x = random_ratings(10)
    counts = co.value_counts(x, 3)
    w = co.bootstrap_weights(len(x), 3, seed=1)
    for row, value in zip(w, co.alpha_from_counts(counts, w), strict=True):
        resampled = np.repeat(counts, row.astype(int), axis=0)
        assert value == pytest.approx(krippendorff.alpha(value_counts=resampled, level_of_measurement="nominal"))


# --------------------------------------------------------------------------- label sets


def test_nltk_masi_is_pinned() -> None:
    # nltk 3.10 uses exactly 2/3 for a subset (3.8 gave 0.665): culturecode pins nltk==3.10.4
    assert masi_distance({1, 2}, {1, 2, 3, 4}) == pytest.approx(2 / 3, abs=1e-15)
    assert set_distance(np.array([1, 1, 0, 0], bool), np.array([1, 1, 1, 1], bool), "masi") == pytest.approx(2 / 3)


def test_set_distances_match_nltk() -> None:
    rng = np.random.default_rng(3)
    vectors = rng.random((40, 5)) < 0.4
    for a, b in combinations(vectors[:20], 2):
        sa, sb = set(np.flatnonzero(a)), set(np.flatnonzero(b))
        if not sa and not sb:
            continue  # nltk divides by zero here; set_distance says 0 (two empty sets agree)
        assert set_distance(a, b, "masi") == pytest.approx(masi_distance(sa, sb))
        assert set_distance(a, b, "jaccard") == pytest.approx(jaccard_distance(sa, sb))
    empty = np.zeros(5, bool)
    assert set_distance(empty, empty, "masi") == 0 and set_distance(empty, vectors[0] | True, "jaccard") == 1


@pytest.mark.parametrize("metric,distance", [("masi", masi_distance), ("jaccard", jaccard_distance)])
def test_set_alpha_matches_nltk_with_missing_values(metric: str, distance) -> None:
    rng = np.random.default_rng(11)
    units, raters, codes = 50, 3, 4
    truth = rng.random((units, codes)) < 0.4
    labels = truth[:, None, :] ^ (rng.random((units, raters, codes)) < 0.15)
    labels[:, :, 0] |= ~labels.any(axis=2)  # nltk cannot compare two empty sets
    rated = rng.random((units, raters)) > 0.15
    triples = [
        (str(a), str(u), frozenset(np.flatnonzero(labels[u, a])))
        for u in range(units)
        for a in range(raters)
        if rated[u, a]
    ]
    expected = AnnotationTask(triples, distance=distance).alpha()
    assert set_alpha(labels, rated, metric).value == pytest.approx(expected, abs=1e-6)


def test_set_alpha_and_exact_match_edge_cases() -> None:
    labels = np.zeros((4, 3, 2), bool)
    rated = np.ones((4, 3), bool)
    assert set_alpha(labels, rated, "masi").value is None
    assert exact_match(labels, rated).value == 1.0
    assert set_alpha(labels[:, :1], rated[:, :1], "masi").reason == co.ONE_RATER


def test_interpretation_bands() -> None:
    assert [co.kappa_band(v) for v in (-0.1, 0.1, 0.3, 0.5, 0.7, 0.9, None)] == [
        "poor",
        "slight",
        "fair",
        "moderate",
        "substantial",
        "almost perfect",
        "undefined",
    ]
    assert [co.alpha_band(v) for v in (0.9, 0.8, 0.7, 0.667, 0.5, None)] == [
        "reliable",
        "reliable",
        "tentative",
        "tentative",
        "unreliable",
        "undefined",
    ]
