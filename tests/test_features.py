"""Tests of helpers.features (spec §4.4, §5.1) against hand-built correlation rows and planted latents."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy.stats import pointbiserialr, spearmanr

from helpers import features
from helpers.data import DIMENSIONS, FOUNDATIONS
from helpers.features import (
    best_layer_score,
    class_ratios,
    classify,
    distinguishing_latents,
    latent_correlations,
    polarity_collapse,
    prototypicality_spearman,
    strictly_monosemantic,
    top_latents,
)


def r_rows(*entries: dict[str, float]) -> np.ndarray:
    """A `[len(entries), 10]` correlation matrix from {dimension name: r} dicts (other entries 0)."""
    r = np.zeros((len(entries), len(DIMENSIONS)))
    for i, entry in enumerate(entries):
        for name, value in entry.items():
            r[i, DIMENSIONS.index(name)] = value
    return r


# one row per branch of spec §4.4 step 3, with the class it must get
BRANCHES = [
    ({"care": 0.04, "harm": -0.03, "loyalty": 0.049}, "weak"),  # max |r| < 0.05
    ({}, "weak"),  # a constant latent: r = 0 everywhere
    ({"fairness": 0.3, "cheating": 0.08, "care": -0.09}, "monosemantic"),  # exactly one |r| > 0.1
    ({"care": 0.3, "harm": -0.2, "loyalty": 0.05}, "monosemantic"),  # two significant: the poles of care-harm
    ({"care": 0.3, "loyalty": 0.2}, "polysemantic"),  # two significant from different foundations
    ({"care": 0.3, "harm": 0.2, "fairness": -0.15}, "polysemantic"),  # three significant
    ({"sanctity": 0.08, "degradation": -0.07, "care": 0.01}, "monosemantic"),  # none significant, top two same pair
    ({"care": 0.08, "loyalty": 0.07}, "polysemantic"),  # none significant, top two from different foundations
    ({"authority": 0.05, "subversion": -0.05}, "monosemantic"),  # max |r| = 0.05 exactly is not weak
    ({"care": 0.1, "harm": 0.1, "loyalty": 0.1}, "monosemantic"),  # |r| = 0.1 is not significant (> 0.1)
]


def test_classify_every_branch():
    r = r_rows(*(entry for entry, _ in BRANCHES))
    assert list(classify(r)) == [expected for _, expected in BRANCHES]


def test_classify_thresholds_and_validation():
    r = r_rows({"care": 0.3, "loyalty": 0.2})
    assert list(classify(r, significant=0.25)) == ["monosemantic"]  # only one dimension above the raised cut-off
    assert list(classify(r, weak=0.31, significant=0.4)) == ["weak"]
    with pytest.raises(ValueError, match="r must have one column per dimension"):
        classify(np.zeros((3, 9)))
    with pytest.raises(ValueError, match="weak"):
        classify(r, weak=0.2, significant=0.1)


def test_class_ratios():
    classes = classify(r_rows(*(entry for entry, _ in BRANCHES)))
    assert class_ratios(classes) == {"monosemantic_ratio": 0.5, "polysemantic_ratio": 0.3, "weak_ratio": 0.2}
    with pytest.raises(ValueError, match="classes"):
        class_ratios(np.array(["weak", "mono"]))
    with pytest.raises(ValueError, match="classes"):
        class_ratios(np.array([], dtype=str))


def test_latent_correlations_match_corrcoef_and_zero_for_constants():
    rng = np.random.default_rng(0)
    z, h = rng.standard_normal((50, 7)), rng.random((50, 10))
    z[:, 3] = 2.5  # a constant latent
    h[:, 4] = 0.0  # a constant dimension
    r = latent_correlations(z, h)
    assert r.shape == (7, 10)
    with np.errstate(invalid="ignore"):  # corrcoef divides by the zero std of the constant columns
        full = np.corrcoef(z.T, h.T)[:7, 7:]
    live = [i for i in range(7) if i != 3]
    other = [j for j in range(10) if j != 4]
    np.testing.assert_allclose(r[np.ix_(live, other)], full[np.ix_(live, other)], atol=1e-12)
    assert (r[3] == 0).all() and (r[:, 4] == 0).all()
    with pytest.raises(ValueError, match="h has 49 rows"):
        latent_correlations(z, h[:49])
    with pytest.raises(ValueError, match="z"):
        latent_correlations(np.full((5, 2), np.nan), h[:5])


def test_latent_correlations_is_fast_at_book_scale():
    rng = np.random.default_rng(1)
    z = np.maximum(rng.standard_normal((2_000, 9_216)), 0.0).astype(np.float32)
    h = rng.random((2_000, 10))
    start = time.perf_counter()
    r = latent_correlations(z, h)
    assert r.shape == (9_216, 10)
    assert time.perf_counter() - start < 5.0  # ≈ 0.3 s here; the bound only catches a per-latent Python loop


def test_strictly_monosemantic_on_hand_rows():
    r = r_rows(
        {"care": 0.3},  # second |r| = 0 < 1e-8
        {"harm": -0.3, "fairness": 0.19},  # 0.3 > 1.5 × 0.19
        {"care": 0.3, "harm": 0.2},  # 0.3 is not > 1.5 × 0.2
        {"loyalty": 0.09},  # max |r| not > 0.1
        {"cheating": 0.5, "loyalty": -0.4},  # 0.5 < 1.5 × 0.4
        {"degradation": -0.2, "sanctity": 0.01},  # 0.2 > 1.5 × 0.01
    )
    index, primary, sign = strictly_monosemantic(r)
    assert index.tolist() == [0, 1, 5]
    assert [DIMENSIONS[d] for d in primary] == ["care", "harm", "degradation"]
    assert sign.tolist() == [1, -1, -1]


def test_top_latents_orders_and_filters():
    r = np.zeros((8, 10))
    r[:, 2] = [0.2, 0.06, -0.5, 0.9, 0.05, 0.3, 0.04, 0.3]
    assert top_latents(r, 2, k=20).tolist() == [3, 5, 7, 0, 1]  # r > 0.05 only, ties by index
    assert top_latents(r, 2, k=2).tolist() == [3, 5]
    assert top_latents(r, 0).tolist() == []
    with pytest.raises(ValueError, match="dim"):
        top_latents(r, 10)


def planted_rows(seed: int = 0, per_group: int = 100, n_noise: int = 25):
    """Rows of care-virtue, harm-vice, fairness-virtue, cheating-vice and neutral, with planted latents.

    Latents 0–4 fire on care and harm rows (a collapsed pair), 5–9 on fairness rows only and 10–14 on cheating rows
    only (a separated pair); the rest are small non-negative noise.
    """
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(6), per_group)  # 0 care, 1 harm, 2 fairness, 3 cheating, 4 and 5 neutral
    n = len(group)
    level = rng.uniform(0.55, 1.0, n)
    virtue, vice = np.isin(group, (0, 2)), np.isin(group, (1, 3))
    m_virtue, m_vice = np.where(virtue, level, 0.0), np.where(vice, level, 0.0)
    h = np.zeros((n, len(DIMENSIONS)))
    for dim in range(4):
        h[group == dim, dim] = level[group == dim]
    z = np.abs(rng.standard_normal((n, 15 + n_noise))) * 0.01
    fires = {range(0, 5): (0, 1), range(5, 10): (2,), range(10, 15): (3,)}
    for latents, groups in fires.items():
        on = np.isin(group, groups)
        z[np.ix_(on, list(latents))] = 1.0 + 0.05 * rng.standard_normal((on.sum(), len(latents)))
    return z, h, m_virtue, m_vice


def test_polarity_collapse_on_planted_pairs():
    z, h, m_virtue, m_vice = planted_rows()
    r = latent_correlations(z, h)
    result = polarity_collapse(z, h, r, m_virtue, m_vice, top=15)
    care, fairness = result["care-harm"], result["fairness-cheating"]
    assert care["cosine"] > 0.9  # the same latents carry care and harm
    assert fairness["cosine"] < 0  # each pole has its own latents
    assert care == {"cosine": care["cosine"], "overlap": 15, "same_sign": 15, "opposite_sign": 0}
    # fairness: 5–9 (+, −) and 10–14 (−, +) are opposite, the care/harm latents 0–4 are negative for both poles
    assert (fairness["overlap"], fairness["same_sign"], fairness["opposite_sign"]) == (15, 5, 10)
    assert result["coactivated"] == 5  # only latents 0–4 fire on both virtue and vice rows
    cosines = [result[f]["cosine"] for f in FOUNDATIONS]
    assert result["mean_pair_cosine"] == pytest.approx(np.mean(cosines))
    assert polarity_collapse(z, h, r, m_virtue, m_vice, top=5)["fairness-cheating"]["overlap"] == 0


def test_polarity_collapse_exact_cosines_and_validation():
    rng = np.random.default_rng(2)
    column = rng.standard_normal(30)
    r = np.zeros((30, 10))
    r[:, 0], r[:, 1] = column, 0.5 * column  # collapsed: cosine 1
    r[:, 2], r[:, 3] = column, -column  # separated: cosine −1
    z, h = rng.random((12, 30)), rng.random((12, 10))
    zeros = np.zeros(12)
    result = polarity_collapse(z, h, r, zeros, zeros, top=10)
    assert result["care-harm"]["cosine"] == pytest.approx(1.0)
    assert result["fairness-cheating"]["cosine"] == pytest.approx(-1.0)
    assert result["fairness-cheating"]["opposite_sign"] == 10
    assert result["loyalty-betrayal"]["cosine"] == 0.0  # zero columns
    assert result["mean_pair_cosine"] == pytest.approx(0.0)
    assert result["coactivated"] == 0  # no rows above 0.5 on either pole
    with pytest.raises(ValueError, match="m_vice"):
        polarity_collapse(z, h, r, zeros, zeros[:5])
    with pytest.raises(ValueError, match="r has 29 rows"):
        polarity_collapse(z, h, r[:29], zeros, zeros)


def test_distinguishing_latents_on_planted_latents():
    z, _, m_virtue, m_vice = planted_rows()
    z[:, -1] = 3.0  # a constant latent is skipped
    # 5–9 fire only on virtue rows and 10–14 only on vice rows; 0–4 fire on as many of each
    assert distinguishing_latents(z, m_virtue, m_vice) == 10
    moral = (m_virtue > 0) | (m_vice > 0)
    label = m_virtue[moral] > m_vice[moral]
    expected = 0
    for latent in range(z.shape[1] - 1):
        rb, p = pointbiserialr(label, z[moral, latent])
        expected += abs(rb) > 0.1 and p < 0.01
    assert expected == 10
    assert distinguishing_latents(z, m_virtue, np.zeros_like(m_vice)) == 0  # one class only


def test_prototypicality_graded_versus_flat_latent():
    rng = np.random.default_rng(3)
    n = 300
    h = np.zeros((n, len(DIMENSIONS)))
    care = np.arange(n) < 150
    h[care, 0] = rng.uniform(0.05, 1.0, care.sum())
    z = np.zeros((n, 3))
    z[care, 0] = h[care, 0] + 1e-6 * rng.standard_normal(care.sum())  # graded: tracks typicality
    z[care, 1] = 1.0 + 0.1 * rng.standard_normal(care.sum())  # flat: fires on care rows, ignores typicality
    z[care, 2] = 1.0  # binary: constant among care rows, so skipped
    r = latent_correlations(z, h)
    assert (r[:, 0] > 0.05).all()
    graded = prototypicality_spearman(z, h, r, k=20)
    z_graded_only = z.copy()
    z_graded_only[:, 1] = 0.0
    alone = prototypicality_spearman(z_graded_only, h, latent_correlations(z_graded_only, h))
    assert alone["care"] == pytest.approx(1.0)
    flat_rho = spearmanr(z[care, 1], h[care, 0]).statistic
    assert graded["care"] == pytest.approx((1.0 + flat_rho) / 2)  # the constant latent 2 is skipped
    assert abs(flat_rho) < 0.25
    assert all(math.isnan(graded[name]) for name in DIMENSIONS[1:])  # no rows (or no latents) for them
    assert graded["mean"] == pytest.approx(graded["care"])
    only_binary = prototypicality_spearman(z[:, 2:], h, r[2:])
    assert math.isnan(only_binary["care"]) and math.isnan(only_binary["mean"])
    with pytest.raises(ValueError, match="h must have shape"):
        prototypicality_spearman(z, h[:, :9], r)


def test_best_layer_score_by_hand():
    assert best_layer_score(0.01, 0.2, 0.6, 100, 1000) == pytest.approx(0.003 + 0.06 + 0.08 + 0.02)
    assert best_layer_score(0.0, 0.0, 1.0, 0, 65_536) == 0.0
    with pytest.raises(ValueError, match="n_latents"):
        best_layer_score(0.1, 0.1, 0.1, 1, 0)


def test_identify_finds_planted_moral_latents_and_the_null_does_not():
    rng = np.random.default_rng(0)
    n = 4000  # with a few hundred rows, chance |r| > 0.1 would make many noise latents "monosemantic" too
    h = np.zeros((n, 10))
    h[np.arange(n), rng.integers(0, 10, n)] = rng.choice([0.25, 0.5, 0.75, 1.0], n)
    noise = np.abs(rng.normal(size=(n, 90)))
    graded = h * 3.0 + 0.05 * np.abs(rng.normal(size=(n, 10)))  # latent j tracks dimension j and its typicality
    z = np.hstack([graded, noise])
    m_virtue, m_vice = h[:, 0::2].max(1), h[:, 1::2].max(1)
    result = features.identify(z, h, m_virtue, m_vice)
    assert result["monosemantic_ratio"] == pytest.approx(0.1), "exactly the 10 planted latents"
    assert result["mean_prototypicality_spearman"] > 0.8
    assert result["mean_pair_cosine"] < 0.1, "opposite poles load on different latents"
    assert result["r"].shape == (100, 10) and len(result["classes"]) == 100
    collapse = features.polarity_collapse(z, h, result["r"], m_virtue, m_vice)
    assert result["pair_overlap"]["care-harm"] == {k: collapse["care-harm"][k]
                                                   for k in ("overlap", "same_sign", "opposite_sign")}
    null = features.identify_null(z, h, m_virtue, m_vice, n_permutations=20, seed=1)
    assert null["monosemantic_ratio"]["hi"] < 0.05
    assert abs(null["mean_prototypicality_spearman"]["median"]) < 0.2
