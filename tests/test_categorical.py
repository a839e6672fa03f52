"""Tests of helpers.categorical (spec §3.1) against planted centres and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from synthetic import make_sample

from helpers.categorical import (
    categorical_layer,
    category_centres,
    centre,
    cosine_matrix,
    offdiag_stats,
    optimal_layer,
    virtue_vice_cosines,
)
from helpers.data import DIMENSIONS, FOUNDATIONS



def planted(sample: pd.DataFrame, collapsed: bool, d: int = 16, noise: float = 0.05, offset: float = 50.0,
            seed: int = 0) -> np.ndarray:
    """Rows around +u_k (virtue poles) and -u_k (vice poles; +u_k if `collapsed`), 0 for neutral, plus a big shift.

    The u_k are orthonormal; non-typical polar rows sit at half the typical distance. The common shift (norm
    `offset`) mimics the anisotropy that centring must remove.
    """
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((d, len(FOUNDATIONS))))[0].T  # [5, d] orthonormal rows
    k = sample["sampled_dimension"].map({f: i for i, f in enumerate(FOUNDATIONS)}).to_numpy()
    vice_sign = 1.0 if collapsed else -1.0
    scale = sample["sample_type"].map({"virtue_typical": 1.0, "virtue": 0.5, "vice_typical": vice_sign,
                                       "vice": 0.5 * vice_sign, "neutral": 0.0}).to_numpy()
    shift = offset * np.ones(d) / np.sqrt(d)
    return scale[:, None] * basis[k] + shift + noise * rng.standard_normal((len(sample), d))


# ---------- centring ----------

def test_centre_hand_example():
    x = np.array([[1.0, 10.0], [3.0, 20.0], [5.0, 60.0]])
    np.testing.assert_allclose(centre(x), [[-2.0, -20.0], [0.0, -10.0], [2.0, 30.0]])
    np.testing.assert_allclose(centre(x).mean(axis=0), 0.0, atol=1e-12)


def test_centre_errors():
    with pytest.raises(ValueError, match="x"):
        centre(np.ones(4))
    with pytest.raises(ValueError, match="NaN"):
        centre(np.array([[1.0, np.nan], [0.0, 1.0]]))


# ---------- planted structure ----------

def test_planted_separated_poles_give_minus_one():
    sample = make_sample()
    x = planted(sample, collapsed=False, seed=1)
    out = categorical_layer(x, sample)
    assert set(out) == {"matrix", "virtue_vice", "mean_virtue_vice", "offdiag"}
    assert list(out["virtue_vice"]) == list(FOUNDATIONS)
    for name, value in out["virtue_vice"].items():
        assert value == pytest.approx(-1.0, abs=0.01), name
    assert out["mean_virtue_vice"] == pytest.approx(-1.0, abs=0.01)
    # 10 of the 90 off-diagonal entries are virtue–vice pairs (≈ -1); the 80 cross-foundation ones are ≈ 0
    assert out["offdiag"]["mean"] == pytest.approx(-10 / 90, abs=0.02)
    assert out["offdiag"]["min"] == pytest.approx(-1.0, abs=0.01)
    assert abs(out["offdiag"]["max"]) < 0.1
    # without centring the common shift dominates and every pair looks alike: the test could fail
    raw = cosine_matrix(category_centres(x, sample))
    assert min(virtue_vice_cosines(raw).values()) > 0.9


def test_planted_collapsed_poles_give_plus_one():
    sample = make_sample()
    out = categorical_layer(planted(sample, collapsed=True, seed=2), sample)
    for name, value in out["virtue_vice"].items():
        assert value == pytest.approx(1.0, abs=0.01), name
    assert out["mean_virtue_vice"] == pytest.approx(1.0, abs=0.01)
    assert out["offdiag"]["max"] == pytest.approx(1.0, abs=0.01)
    assert out["offdiag"]["mean"] < 0.5  # cross-foundation pairs stay apart


def test_centres_ignore_non_typical_rows():
    sample = make_sample(per_cell=4)
    x = centre(planted(sample, collapsed=False, seed=3))
    changed = x.copy()
    non_typical = ~sample["sample_type"].str.endswith("_typical").to_numpy()
    changed[non_typical] += 100.0 * np.random.default_rng(4).standard_normal((non_typical.sum(), x.shape[1]))
    np.testing.assert_allclose(category_centres(changed, sample), category_centres(x, sample))


def test_mask_restricts_rows_held_out_variant():
    sample = make_sample(per_cell=6)
    x = centre(planted(sample, collapsed=False, seed=5))
    mask = np.arange(len(sample)) % 2 == 0
    got = category_centres(x, sample, mask=mask)
    for k, foundation in enumerate(FOUNDATIONS):
        for pole, kind in enumerate(("virtue_typical", "vice_typical")):
            rows = mask & (sample["sampled_dimension"] == foundation).to_numpy() & (sample["sample_type"] == kind).to_numpy()
            np.testing.assert_allclose(got[2 * k + pole], x[rows].mean(axis=0))
    assert not np.allclose(got, category_centres(x, sample))


def test_mask_hand_check_gradient_heldout_use():
    """The masked centres gradient_layer builds its held-out prototypes from (formerly gradient.pole_centres)."""
    sample = make_sample(per_cell=2)
    x = np.random.default_rng(0).standard_normal((len(sample), 3))
    all_rows = np.ones(len(sample), dtype=bool)
    centres = category_centres(x, sample, mask=all_rows)
    assert centres.shape == (10, 3)
    typical = ((sample["sampled_dimension"] == "loyalty-betrayal") & (sample["sample_type"] == "vice_typical")).to_numpy()
    np.testing.assert_allclose(centres[DIMENSIONS.index("betrayal")], x[typical].mean(axis=0))
    only_first = all_rows.copy()
    only_first[np.flatnonzero(typical)[1]] = False  # drop the second betrayal prototype
    centres = category_centres(x, sample, mask=only_first)
    np.testing.assert_allclose(centres[DIMENSIONS.index("betrayal")], x[np.flatnonzero(typical)[0]])
    with pytest.raises(ValueError, match="betrayal"):
        category_centres(x, sample, mask=only_first & ~typical)
    with pytest.raises(ValueError, match="mask"):
        category_centres(x, sample, mask=all_rows[:-1])


# ---------- hand-computed 2-D example ----------

HAND_CENTRED = {  # category -> centred typical rows; the centre is their mean
    "care": [(2.0, 1.0), (0.0, -1.0)], "harm": [(-1.0, 0.0)],          # centres (1, 0), (-1, 0): cos -1
    "fairness": [(0.0, 1.0)], "cheating": [(0.0, 2.0)],                 # (0, 1), (0, 2): cos 1
    "loyalty": [(1.0, 1.0)], "betrayal": [(1.0, -1.0)],                 # (1, 1), (1, -1): cos 0
    "authority": [(3.0, 4.0)], "subversion": [(4.0, 3.0)],              # (3, 4), (4, 3): cos 24/25
    "sanctity": [(2.0, 0.0)], "degradation": [(1.0, 1.0)],              # (2, 0), (1, 1): cos 1/sqrt 2
}
HAND_MEAN = np.array([10.0, -3.0])


def hand_example() -> tuple[np.ndarray, pd.DataFrame]:
    """Raw 2-D rows with mean HAND_MEAN whose centred typical rows are HAND_CENTRED; two balancing extra rows."""
    rows, types, foundations = [], [], []
    for index, name in enumerate(DIMENSIONS):
        for row in HAND_CENTRED[name]:
            rows.append(row)
            types.append("virtue_typical" if index % 2 == 0 else "vice_typical")
            foundations.append(FOUNDATIONS[index // 2])
    # the typical rows sum to (13, 11): a neutral and a non-typical vice row bring the centred sum to zero
    rows += [(-6.0, -5.0), (-7.0, -6.0)]
    types += ["neutral", "vice"]
    foundations += ["care-harm", "loyalty-betrayal"]
    x = np.array(rows) + HAND_MEAN
    return x, pd.DataFrame({"sampled_dimension": foundations, "sample_type": types})


def test_hand_example_centres_and_cosines():
    x, sample = hand_example()
    np.testing.assert_allclose(x.mean(axis=0), HAND_MEAN)
    centres = category_centres(centre(x), sample)
    expected = [(1, 0), (-1, 0), (0, 1), (0, 2), (1, 1), (1, -1), (3, 4), (4, 3), (2, 0), (1, 1)]
    np.testing.assert_allclose(centres, np.array(expected, dtype=float), atol=1e-12)
    matrix = cosine_matrix(centres)
    assert matrix.shape == (10, 10)
    np.testing.assert_allclose(np.diag(matrix), 1.0)
    np.testing.assert_allclose(matrix, matrix.T)
    assert matrix[0, 2] == pytest.approx(0.0, abs=1e-12)  # care vs fairness: (1, 0) · (0, 1)
    assert matrix[0, 6] == pytest.approx(3 / 5)  # care vs authority: (1, 0) · (3, 4) / 5
    assert matrix[1, 7] == pytest.approx(-4 / 5)  # harm vs subversion: (-1, 0) · (4, 3) / 5
    assert matrix[4, 9] == pytest.approx(1.0)  # loyalty and degradation share the centre (1, 1)
    vv = virtue_vice_cosines(matrix)
    expected_vv = [-1.0, 1.0, 0.0, 24 / 25, 1 / np.sqrt(2)]
    assert vv == pytest.approx(dict(zip(FOUNDATIONS, expected_vv)), abs=1e-12)
    out = categorical_layer(x, sample)
    np.testing.assert_allclose(out["matrix"], matrix)
    assert out["mean_virtue_vice"] == pytest.approx(np.mean(expected_vv))


def test_offdiag_stats_hand_matrix():
    matrix = np.full((10, 10), 0.5)
    np.fill_diagonal(matrix, 1.0)  # the diagonal must not count: it would raise the max to 1
    matrix[3, 7] = matrix[7, 3] = -1.0
    stats = offdiag_stats(matrix)
    assert set(stats) == {"mean", "std", "min", "max"}
    assert stats["mean"] == pytest.approx((88 * 0.5 - 2) / 90)  # 7/15
    assert stats["std"] == pytest.approx(np.sqrt((88 * (1 / 30) ** 2 + 2 * (22 / 15) ** 2) / 90))
    assert stats["min"] == -1.0
    assert stats["max"] == 0.5


def test_matrix_shape_errors():
    with pytest.raises(ValueError, match="matrix"):
        offdiag_stats(np.eye(9))
    with pytest.raises(ValueError, match="matrix"):
        virtue_vice_cosines(np.eye(10)[:, :9])
    with pytest.raises(ValueError, match="centres"):
        cosine_matrix(np.ones((9, 3)))
    centres = np.ones((10, 3))
    centres[4] = 0.0
    with pytest.raises(ValueError, match="loyalty"):
        cosine_matrix(centres)


# ---------- optimal layer ----------

def test_optimal_layer_hand_lists():
    assert optimal_layer([0.4, 0.1, 0.3, 0.1, 0.2]) == 1  # first of the tied minima
    assert optimal_layer([0.2, -0.05, 0.0, -0.3]) == 3
    assert optimal_layer(np.array([0.7])) == 0
    assert isinstance(optimal_layer((0.5, 0.4)), int)


def test_optimal_layer_errors():
    with pytest.raises(ValueError, match="non-empty"):
        optimal_layer([])
    with pytest.raises(ValueError, match="1-D"):
        optimal_layer([[0.1, 0.2]])
    with pytest.raises(ValueError, match="NaN"):
        optimal_layer([0.1, float("nan")])


# ---------- input errors ----------

def test_missing_column_errors():
    sample = make_sample(per_cell=2)
    x = np.random.default_rng(6).standard_normal((len(sample), 4))
    for column in ("sample_type", "sampled_dimension"):
        with pytest.raises(ValueError, match=column):
            categorical_layer(x, sample.drop(columns=column))
        with pytest.raises(ValueError, match=column):
            category_centres(centre(x), sample.drop(columns=column))


def test_shape_and_row_count_errors():
    sample = make_sample(per_cell=2)
    x = np.random.default_rng(7).standard_normal((len(sample), 4))
    with pytest.raises(ValueError, match="rows"):
        categorical_layer(x[:-1], sample)
    with pytest.raises(ValueError, match="rows"):
        category_centres(x, sample.iloc[1:])
    with pytest.raises(ValueError, match="x"):
        categorical_layer(x.ravel(), sample)
    with pytest.raises(ValueError, match="mask"):
        category_centres(x, sample, mask=np.ones(len(sample) - 1, dtype=bool))
    with pytest.raises(ValueError, match="mask"):
        category_centres(x, sample, mask=np.ones(len(sample)))  # not boolean


def test_missing_category_errors():
    sample = make_sample(per_cell=2)
    x = centre(np.random.default_rng(8).standard_normal((len(sample), 4)))
    gone = (sample["sampled_dimension"] == "loyalty-betrayal") & (sample["sample_type"] == "vice_typical")
    with pytest.raises(ValueError, match="betrayal"):
        categorical_layer(x[~gone.to_numpy()], sample[~gone].reset_index(drop=True))
    hidden = ~((sample["sampled_dimension"] == "sanctity-degradation") & (sample["sample_type"] == "virtue_typical"))
    with pytest.raises(ValueError, match="sanctity.*mask"):
        category_centres(x, sample, mask=hidden.to_numpy())


def test_summarise_picks_the_optimal_layer():
    layers = [{"offdiag": {"mean": m}, "virtue_vice": {"care-harm": v}} for m, v in [(0.3, 0.9), (0.1, -0.2), (0.2, 0.5)]]
    from helpers.categorical import summarise

    out = summarise(layers)
    assert out["optimal_layer"] == 1 and out["virtue_vice_cosine_at_optimal"] == {"care-harm": -0.2}
    assert out["mean_offdiag_cosine"] == [0.3, 0.1, 0.2] and out["virtue_vice_cosine"]["2"] == {"care-harm": 0.5}


# ---------- the label-permutation null ----------

def test_batched_null_equals_the_per_permutation_loop_and_sits_below_planted_structure():
    from helpers.categorical import null_mean_virtue_vice
    from helpers.robustness import permutation_null

    sample = make_sample()
    x = planted(sample, collapsed=False, noise=0.5, seed=2)
    loop = permutation_null(lambda xs: categorical_layer(xs, sample)["mean_virtue_vice"], x, n_perm=40, seed=4)
    batched = null_mean_virtue_vice(x, sample, n_perm=40, seed=4, block=9)
    assert batched == pytest.approx(loop, abs=1e-12)
    assert categorical_layer(x, sample)["mean_virtue_vice"] < batched["lo"]  # separated poles: far below chance
    with pytest.raises(ValueError, match="n_perm"):
        null_mean_virtue_vice(x, sample, n_perm=0)
