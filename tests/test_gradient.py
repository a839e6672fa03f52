"""Tests of helpers.gradient (spec §3.2) against planted typicality axes and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from helpers.data import DIMENSIONS, FOUNDATIONS
from helpers.gradient import (
    OVERALL,
    category_sets,
    correlation,
    gradient_layer,
    human_labels,
    peak_over_layers,
    virtue_vice_asymmetry,
)

LEVELS = (0.125, 0.25, 0.375, 0.5, 0.75)  # the non-typical strata; typical rows have typicality 1.0


def make_sample(per_stratum: int = 10, per_typical: int = 10, per_neutral: int = 20) -> pd.DataFrame:
    """A synthetic diagnosis sample: every foundation × pole × stratum, typical rows and neutral rows."""
    rows = []
    for k, foundation in enumerate(FOUNDATIONS):
        for p, pole in enumerate(("virtue", "vice")):
            strata = [(level, pole) for level in LEVELS for _ in range(per_stratum)]
            strata += [(1.0, f"{pole}_typical")] * per_typical
            for level, kind in strata:
                vector = np.zeros(len(DIMENSIONS))
                vector[2 * k + p] = level
                rows.append({"sampled_dimension": foundation, "sample_type": kind, "score_stratum": level,
                             "polarity": pole, "m_virtue": level if p == 0 else 0.0,
                             "m_vice": level if p == 1 else 0.0, "moral_vector": vector})
        for _ in range(per_neutral):
            rows.append({"sampled_dimension": foundation, "sample_type": "neutral", "score_stratum": 0.0,
                         "polarity": "neutral", "m_virtue": 0.0, "m_vice": 0.0,
                         "moral_vector": np.zeros(len(DIMENSIONS))})
    return pd.DataFrame(rows)


def category_of_rows(sample: pd.DataFrame) -> np.ndarray:
    """Category index (2k + pole) of every polar row, -1 for neutral rows."""
    k = sample["sampled_dimension"].map({f: i for i, f in enumerate(FOUNDATIONS)}).to_numpy()
    kind = sample["sample_type"].to_numpy()
    pole = np.where(np.char.startswith(kind.astype(str), "vice"), 1, 0)
    return np.where(kind == "neutral", -1, 2 * k + pole)


def planted_axis(sample: pd.DataFrame, d: int = 32, noise: float = 0.02, offset: float = 5.0,
                 seed: int = 0) -> np.ndarray:
    """Rows at typicality × u_category + small noise (neutral at 0), plus a shared offset that centring must remove."""
    rng = np.random.default_rng(seed)
    u = np.linalg.qr(rng.standard_normal((d, len(DIMENSIONS))))[0].T  # 10 orthonormal category directions
    category = category_of_rows(sample)
    t = sample["score_stratum"].to_numpy(dtype=float)
    x = np.where(category[:, None] >= 0, t[:, None] * u[np.maximum(category, 0)], 0.0)
    return x + noise * rng.standard_normal(x.shape) + offset


# ---------- category sets and labels ----------

def test_category_sets_hand_frame():
    sample = pd.DataFrame({
        "sampled_dimension": ["care-harm", "care-harm", "care-harm", "care-harm", "care-harm", "fairness-cheating",
                              "sanctity-degradation"],
        "sample_type": ["virtue", "virtue_typical", "vice", "vice_typical", "neutral", "virtue", "neutral"]})
    sets = category_sets(sample)
    assert list(sets) == list(DIMENSIONS)
    np.testing.assert_array_equal(sets["care"], [1, 1, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(sets["harm"], [0, 0, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(sets["fairness"], [0, 0, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(sets["cheating"], [0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(sets["sanctity"], [0, 0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(sets["degradation"], [0, 0, 0, 0, 0, 0, 1])
    assert all(mask.dtype == bool for mask in sets.values())


def test_category_sets_sizes_on_synthetic_sample():
    sample = make_sample(per_stratum=3, per_typical=2, per_neutral=4)
    for mask in category_sets(sample).values():
        assert mask.sum() == 5 * 3 + 2 + 4


def test_human_labels_hand_frame():
    harm_and_betrayal = np.zeros(10)
    harm_and_betrayal[[1, 5]] = 1.0
    care = np.zeros(10)
    care[0] = 0.375
    odd_neutral = np.full(10, 0.5)  # a malformed neutral row: its label must still be 0
    sample = pd.DataFrame({"sample_type": ["vice_typical", "virtue", "neutral"],
                           "moral_vector": [harm_and_betrayal, care, odd_neutral]})
    np.testing.assert_array_equal(human_labels(sample, "harm"), [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(human_labels(sample, "betrayal"), [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(human_labels(sample, "care"), [0.0, 0.375, 0.0])
    with pytest.raises(ValueError, match="category"):
        human_labels(sample, "liberty")


# ---------- correlation ----------

def test_correlation_fisher_ci_hand_checked():
    # r = Σ dx·dy / sqrt(Σdx² Σdy²) = 8 / 10 = 0.8; atanh(0.8) = ln 3; se = 1/sqrt(5 - 3)
    got = correlation(np.array([1, 2, 3, 4, 5.0]), np.array([2, 1, 4, 3, 5.0]))
    assert got["n"] == 5
    assert got["pearson"] == pytest.approx(0.8)
    assert got["spearman"] == pytest.approx(0.8)  # the scores are already ranks
    half_width = 1.96 / math.sqrt(2)
    assert got["pearson_lo"] == pytest.approx(math.tanh(math.log(3) - half_width))
    assert got["pearson_hi"] == pytest.approx(math.tanh(math.log(3) + half_width))
    assert got["pearson_lo"] == pytest.approx(-0.27966, abs=1e-5)  # tanh(1.098612 - 1.385929)
    assert got["pearson_hi"] == pytest.approx(0.98620, abs=1e-5)  # tanh(1.098612 + 1.385929)


def test_correlation_monotone_and_perfect():
    labels = np.arange(10.0)
    got = correlation(labels, np.exp(labels))  # monotone but not linear
    assert got["spearman"] == pytest.approx(1.0)
    assert 0.0 < got["pearson"] < 1.0
    assert got["pearson_lo"] < got["pearson"] < got["pearson_hi"]
    perfect = correlation(labels, -2 * labels)
    assert perfect["pearson"] == perfect["pearson_lo"] == perfect["pearson_hi"] == pytest.approx(-1.0)


def test_correlation_constant_gives_nan_and_errors():
    got = correlation(np.ones(6), np.arange(6.0))
    assert got["n"] == 6
    assert all(math.isnan(got[key]) for key in ("spearman", "pearson", "pearson_lo", "pearson_hi"))
    assert math.isnan(correlation(np.arange(6.0), np.zeros(6))["spearman"])
    with pytest.raises(ValueError, match="n = 3"):
        correlation(np.arange(3.0), np.arange(3.0))
    with pytest.raises(ValueError, match="equal length"):
        correlation(np.arange(5.0), np.arange(6.0))
    with pytest.raises(ValueError, match="finite"):
        correlation(np.array([1, 2, 3, np.nan]), np.arange(4.0))


# ---------- the layer diagnosis ----------

def test_planted_typicality_axis_gives_spearman_near_one():
    sample = make_sample(per_stratum=20, per_typical=15, per_neutral=30)
    result = gradient_layer(planted_axis(sample), sample)
    assert list(result) == [*DIMENSIONS, OVERALL]
    sizes = {c: int(m.sum()) for c, m in category_sets(sample).items()}
    for category in DIMENSIONS:
        assert result[category]["n"] == sizes[category] == 5 * 20 + 15 + 30
        assert result[category]["spearman"] > 0.9, category
        assert 0.5 < result[category]["pearson"] < 1.0, category  # cosines saturate, so less than linear
        assert result[category]["pearson_lo"] < result[category]["pearson"] < result[category]["pearson_hi"]
    assert result[OVERALL]["n"] == sum(sizes.values())
    assert result[OVERALL]["spearman"] > 0.9
    held = gradient_layer(planted_axis(sample), sample, heldout=True, seed=3)
    assert all(held[c]["spearman"] > 0.9 for c in DIMENSIONS)  # a real axis survives held-out centres


def test_gradient_layer_is_translation_invariant():
    # The diagnosis centres x itself, so a shared offset (the anisotropy it corrects) must not change any number.
    sample = make_sample(per_stratum=6, per_typical=5, per_neutral=8)
    x = planted_axis(sample, noise=0.3, offset=0.0)
    shift = np.random.default_rng(5).standard_normal(x.shape[1]) * 10.0
    for heldout in (False, True):
        plain = gradient_layer(x, sample, heldout=heldout)
        shifted = gradient_layer(x + shift, sample, heldout=heldout)
        for key in plain:
            for stat in ("spearman", "pearson", "pearson_lo", "pearson_hi", "n"):
                assert shifted[key][stat] == pytest.approx(plain[key][stat], abs=1e-9), (key, stat)


def test_pure_noise_gives_small_spearman():
    # 320 rows per category: one |ρ| has sd ≈ 1/sqrt(319) ≈ 0.056, the pooled one (3,200 pairs) ≈ 0.018.
    sample = make_sample(per_stratum=40, per_typical=60, per_neutral=60)
    x = np.random.default_rng(7).standard_normal((len(sample), 4)) + 3.0
    for heldout in (False, True):
        result = gradient_layer(x, sample, heldout=heldout, seed=1)
        spearman = np.array([result[category]["spearman"] for category in DIMENSIONS])
        assert abs(result[OVERALL]["spearman"]) < 0.15, heldout
        assert np.abs(spearman).mean() < 0.1, heldout
        assert np.abs(spearman).max() < 0.2, heldout  # ≈ 3.5 sd for the largest of 10


def test_heldout_excludes_half_a_rows():
    sample = make_sample(per_stratum=5, per_typical=7, per_neutral=8)  # 7 prototypes -> half A holds 4
    x = planted_axis(sample, noise=0.3)
    paper = gradient_layer(x, sample)
    held = gradient_layer(x, sample, heldout=True, seed=0)
    for category in DIMENSIONS:
        assert paper[category]["n"] == 5 * 5 + 7 + 8
        assert held[category]["n"] == 5 * 5 + 7 + 8 - 4
    assert held[OVERALL]["n"] == paper[OVERALL]["n"] - 10 * 4
    again = gradient_layer(x, sample, heldout=True, seed=0)
    other = gradient_layer(x, sample, heldout=True, seed=1)
    assert again == held  # deterministic given the seed
    assert other[OVERALL]["n"] == held[OVERALL]["n"]
    assert other[OVERALL]["spearman"] != held[OVERALL]["spearman"]  # a different split


def test_self_scoring_inflation_paper_variant_beats_heldout():
    # Every row is isotropic noise: prototypes line up with their centre only because they build it.
    sample = make_sample(per_stratum=30, per_typical=20, per_neutral=50)
    x = np.random.default_rng(11).standard_normal((len(sample), 200))
    paper = gradient_layer(x, sample)
    held = gradient_layer(x, sample, heldout=True, seed=0)
    assert paper[OVERALL]["spearman"] > held[OVERALL]["spearman"] + 0.2
    assert abs(held[OVERALL]["spearman"]) < 0.1
    assert all(paper[c]["spearman"] > held[c]["spearman"] + 0.1 for c in DIMENSIONS)


def test_gradient_layer_errors():
    sample = make_sample(per_stratum=2, per_typical=2, per_neutral=2)
    x = np.random.default_rng(0).standard_normal((len(sample), 4))
    with pytest.raises(ValueError, match="moral_vector"):
        gradient_layer(x, sample.drop(columns="moral_vector"))
    with pytest.raises(ValueError, match="sample_type"):
        gradient_layer(x, sample.drop(columns="sample_type"))
    with pytest.raises(ValueError, match="sampled_dimension"):
        gradient_layer(x, sample.drop(columns="sampled_dimension"))
    with pytest.raises(ValueError, match="rows"):
        gradient_layer(x[:-1], sample)
    with pytest.raises(ValueError, match="x must be a 2-D"):
        gradient_layer(x[:, 0], sample)
    with pytest.raises(ValueError, match="NaN"):
        gradient_layer(np.full_like(x, np.nan), sample)
    bad = sample.copy()
    bad.loc[0, "sample_type"] = "saintly"
    with pytest.raises(ValueError, match="saintly"):
        gradient_layer(x, bad)
    short = sample.copy()
    short["moral_vector"] = [v[:9] for v in short["moral_vector"]]
    with pytest.raises(ValueError, match="moral_vector"):
        gradient_layer(x, short)
    no_care_prototype = sample[~((sample["sampled_dimension"] == "care-harm")
                                 & (sample["sample_type"] == "virtue_typical"))]
    with pytest.raises(ValueError, match="care"):
        gradient_layer(x[no_care_prototype.index.to_numpy()], no_care_prototype.reset_index(drop=True))


# ---------- peaks and asymmetry ----------

def _layer(values: dict[str, float]) -> dict[str, dict]:
    """A hand-made layer result holding only a Spearman value per category."""
    return {c: {"spearman": v, "pearson": v / 2, "pearson_lo": 0.0, "pearson_hi": 0.0, "n": 10}
            for c, v in values.items()}


def test_peak_over_layers_hand_dicts():
    nan = float("nan")
    layers = [_layer({"care": 0.1, "harm": nan, "overall": nan}),
              _layer({"care": 0.4, "harm": 0.2, "overall": nan}),
              _layer({"care": -0.3, "harm": 0.5, "overall": nan})]
    peaks = peak_over_layers(layers)
    assert peaks["care"] == pytest.approx(0.4)
    assert peaks["harm"] == pytest.approx(0.5)
    assert math.isnan(peaks["overall"])
    assert peak_over_layers(layers, key="pearson")["care"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="empty"):
        peak_over_layers([])
    with pytest.raises(ValueError, match="key"):
        peak_over_layers(layers, key="kendall")
    with pytest.raises(ValueError, match=r"per_layer\[1\]"):
        peak_over_layers([_layer({"care": 0.1}), _layer({"harm": 0.1})])


def test_virtue_vice_asymmetry_hand_dict():
    peaks = {c: (0.5 if i % 2 else 0.3) for i, c in enumerate(DIMENSIONS)}
    assert virtue_vice_asymmetry(peaks) == pytest.approx(0.2)
    peaks["care"] = 0.8  # virtue mean 0.4
    assert virtue_vice_asymmetry(peaks) == pytest.approx(0.1)
    peaks["harm"] = float("nan")
    assert math.isnan(virtue_vice_asymmetry(peaks))
    with pytest.raises(ValueError, match="degradation"):
        virtue_vice_asymmetry({c: 0.1 for c in DIMENSIONS[:-1]})


def test_summarise_separates_overall_and_adds_heldout():
    from helpers.gradient import summarise
    from helpers.data import DIMENSIONS

    def layer(value):
        return {**{c: {"spearman": value + (0.1 if c in DIMENSIONS[1::2] else 0.0)} for c in DIMENSIONS},
                "overall": {"spearman": value}}

    out = summarise([layer(0.2), layer(0.5)], heldout=[layer(0.1), layer(0.0)])
    assert out["peak_spearman_overall"] == 0.5 and "overall" not in out["peak_spearman"]
    assert out["peak_spearman"]["harm"] == pytest.approx(0.6) and out["asymmetry"] == pytest.approx(0.1)
    assert out["spearman_overall"] == [0.2, 0.5] and out["peak_spearman_heldout_overall"] == 0.1


def test_null_overall_equals_the_per_permutation_loop_and_ties_duplicates_exactly():
    from helpers.gradient import null_overall, prepare, score
    from helpers.robustness import permutation_null

    sample = make_sample(per_stratum=3, per_typical=4, per_neutral=6)
    x = planted_axis(sample, noise=0.3)
    x[1::7] = x[0::7][: len(x[1::7])]  # repeated actions: identical rows, as the exploded sample has
    for heldout in (False, True):
        task = prepare(sample, heldout=heldout, seed=3)
        loop = permutation_null(lambda xs, t=task: score(xs, t)[OVERALL]["spearman"], x, n_perm=30, seed=5)
        batched = null_overall(x, task, n_perm=30, seed=5, block=7)
        assert batched == pytest.approx(loop, abs=1e-12)
    # a planted gradient sits far above its own null; with held-out prototypes (no self-scoring) the null of
    # structureless rows straddles zero
    task = prepare(sample, heldout=True)
    assert score(planted_axis(sample), task)[OVERALL]["spearman"] > null_overall(planted_axis(sample), task, 50)["hi"]
    band = null_overall(np.random.default_rng(0).normal(size=x.shape), task, 50)
    assert band["lo"] < 0 < band["hi"]
    with pytest.raises(ValueError, match="n_perm"):
        null_overall(x, task, 0)


def test_identical_rows_get_identical_cosines_whatever_their_position():
    from helpers.gradient import _distinct_rows

    rng = np.random.default_rng(1)
    x = rng.normal(size=(9, 5))
    x[[4, 7]] = x[2]
    assert _distinct_rows(x).tolist() == [0, 1, 2, 3, 2, 5, 6, 2, 8]
    x[3, 0] = -0.0 * x[3, 0]  # the hash sees bits: a collision-free fallback keeps the answer exact either way
    assert _distinct_rows(x)[[2, 4, 7]].tolist() == [2, 2, 2]
