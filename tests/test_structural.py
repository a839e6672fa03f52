"""Tests of helpers.structural (spec §3.3) against planted clusters and hand-computed cases."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from synthetic import make_sample

from helpers.structural import (
    LABELINGS,
    SCORES,
    cluster,
    embedding_2d,
    labelings,
    reduce_pca,
    score_clusters,
    structural_layer,
    sweep,
)

POLE = {"virtue": 0, "virtue_typical": 0, "vice": 1, "vice_typical": 1, "neutral": 2}


def planted(groups: np.ndarray, d: int = 16, separation: float = 30.0, seed: int = 0) -> np.ndarray:
    """Unit-variance Gaussian points around one far-apart, non-zero-mean centre per group label."""
    rng = np.random.default_rng(seed)
    centres = separation * rng.standard_normal((groups.max() + 1, d)) + 5.0
    return centres[groups] + rng.standard_normal((len(groups), d))


# ---------- labelings ----------

def test_labelings_hand_frame():
    sample = pd.DataFrame({"sampled_dimension": ["care-harm", "loyalty-betrayal", "sanctity-degradation",
                                                 "fairness-cheating", "authority-subversion"],
                           "sample_type": ["virtue_typical", "vice", "neutral", "virtue", "vice_typical"]})
    got = labelings(sample)
    assert set(got) == {"mft5", "polarity3", "mft15"}
    np.testing.assert_array_equal(got["mft5"], [0, 2, 4, 1, 3])
    np.testing.assert_array_equal(got["polarity3"], [0, 1, 2, 0, 1])
    np.testing.assert_array_equal(got["mft15"], [0, 7, 14, 3, 10])


def test_labelings_errors():
    with pytest.raises(ValueError, match="sample_type"):
        labelings(pd.DataFrame({"sampled_dimension": ["care-harm"]}))
    with pytest.raises(ValueError, match="sampled_dimension"):
        labelings(pd.DataFrame({"sample_type": ["vice"]}))
    with pytest.raises(ValueError, match="unknown foundation"):
        labelings(pd.DataFrame({"sampled_dimension": ["liberty-oppression"], "sample_type": ["vice"]}))
    with pytest.raises(ValueError, match="sample_type"):
        labelings(pd.DataFrame({"sampled_dimension": ["care-harm"], "sample_type": ["saintly"]}))


# ---------- PCA ----------

def test_reduce_pca_known_rank():
    rng = np.random.default_rng(1)
    basis = np.linalg.qr(rng.standard_normal((30, 3)))[0].T  # 3 orthonormal directions in 30-D
    coeffs = rng.standard_normal((400, 3)) * np.array([10.0, 6.0, 4.0])
    x = coeffs @ basis + 1e-3 * rng.standard_normal((400, 30)) + 7.0
    z, k = reduce_pca(x)
    assert k == 3
    assert z.shape == (400, 3)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-8)
    np.testing.assert_allclose(z.var(axis=0), [100.0, 36.0, 16.0], rtol=0.25)


def test_reduce_pca_hand_threshold():
    # variance along axis 0 is 96 %, along axis 1 is 4 % of the total
    x = np.array([[np.sqrt(96.0), 0.0], [-np.sqrt(96.0), 0.0], [0.0, 2.0], [0.0, -2.0]]) + 3.0
    assert reduce_pca(x, 0.95)[1] == 1
    assert reduce_pca(x, 0.97)[1] == 2


def test_reduce_pca_errors():
    with pytest.raises(ValueError, match="x"):
        reduce_pca(np.ones(5))
    with pytest.raises(ValueError, match="zero variance"):
        reduce_pca(np.ones((5, 3)))
    with pytest.raises(ValueError, match="variance"):
        reduce_pca(np.eye(3), variance=1.5)


# ---------- scoring ----------

def test_score_clusters_hand_cases():
    truth = {"a": np.array([0, 0, 1, 1, 0, 1])}
    perfect = score_clusters(np.array([5, 5, 2, 2, -1, -1]), truth)  # label names do not matter, noise dropped
    assert perfect["noise_ratio"] == pytest.approx(1 / 3)
    assert perfect["n_clusters"] == 2
    for score in SCORES:
        assert perfect["a"][score] == pytest.approx(1.0)
    # contingency [[2, 1], [0, 1]]: sum C(n_ij, 2) = 1, expected = 3 * 2 / 6 = 1, max = 2.5 -> ARI = 0
    half = score_clusters(np.array([0, 0, 0, 1]), {"a": np.array([0, 0, 1, 1])})
    assert half["a"]["ari"] == pytest.approx(0.0, abs=1e-12)
    h, c = half["a"]["homogeneity"], half["a"]["completeness"]
    assert half["a"]["v_measure"] == pytest.approx(2 * h * c / (h + c))
    assert half["noise_ratio"] == 0.0


def test_score_clusters_all_noise_and_single_cluster_give_nan():
    truth = {"a": np.arange(6) % 2, "b": np.arange(6) % 3}
    noise = score_clusters(np.full(6, -1), truth)
    assert noise["noise_ratio"] == 1.0 and noise["n_clusters"] == 0
    assert all(np.isnan(noise[name][score]) for name in truth for score in SCORES)
    single = score_clusters(np.array([0, 0, 0, 0, -1, -1]), truth)
    assert single["noise_ratio"] == pytest.approx(1 / 3) and single["n_clusters"] == 1
    assert all(np.isnan(single[name][score]) for name in truth for score in SCORES)


def test_score_clusters_shape_errors():
    with pytest.raises(ValueError, match="truth"):
        score_clusters(np.zeros(4, int), {"a": np.zeros(5, int)})
    with pytest.raises(ValueError, match="labels_pred"):
        score_clusters(np.zeros((2, 2), int), {"a": np.zeros(4, int)})


# ---------- whole layer on planted structure ----------

def test_planted_polarity_clusters():
    sample = make_sample()
    x = planted(labelings(sample)["polarity3"], seed=2)
    out = structural_layer(x, sample, min_cluster_size=30, min_samples=5)
    assert out["ari_polarity3"] > 0.95
    assert out["v_measure_polarity3"] > 0.95
    assert out["noise_ratio"] < 0.1
    assert out["n_clusters"] == 3
    assert out["ari_mft5"] < 0.05  # the clusters say nothing about the foundation
    assert out["homogeneity_mft15"] < 0.5 and out["completeness_mft15"] > 0.95


def test_planted_foundation_clusters():
    sample = make_sample()
    x = planted(labelings(sample)["mft5"], seed=3)
    out = structural_layer(x, sample, min_cluster_size=30, min_samples=5)
    assert out["ari_mft5"] > 0.95
    assert out["nmi_mft5"] > 0.95
    assert out["noise_ratio"] < 0.1
    assert out["n_clusters"] == 5
    assert out["ari_polarity3"] < 0.05


def test_planted_mft15_clusters():
    sample = make_sample()
    x = planted(labelings(sample)["mft15"], d=32, seed=4)
    out = structural_layer(x, sample, min_cluster_size=10, min_samples=3)
    assert out["ari_mft15"] > 0.95
    assert out["n_clusters"] == 15


class PlantedStore:
    """An in-memory stand-in for an activation cache: one planted matrix per layer (every pooling alike)."""

    def __init__(self, layers: list[np.ndarray]):
        self.layers = layers

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def load(self, layer: int, pooling: str = "mean") -> np.ndarray:
        return self.layers[layer]


def _same(a: dict, b: dict) -> bool:
    """Equal flat results, NaN equal to NaN."""
    return a.keys() == b.keys() and all(
        _same(a[k], b[k]) if isinstance(a[k], dict) else (a[k] == b[k] or (np.isnan(a[k]) and np.isnan(b[k])))
        for k in a)


def test_sweep_in_parallel_processes_equals_one_layer_after_another():
    """The layers' HDBSCAN runs in two processes give exactly the per-layer results, in layer order."""
    sample = make_sample().assign(text_index=lambda f: np.arange(len(f))[::-1])  # rows read through text_index
    truth = labelings(sample)
    order = sample["text_index"].to_numpy()
    layers = [planted(truth[name], d=24, seed=k) for k, name in enumerate(("polarity3", "mft5", "mft15"))]
    store = PlantedStore([np.empty_like(x) for x in layers])
    for stored, x in zip(store.layers, layers):
        stored[order] = x  # row text_index of the cache holds sample row i
    got = sweep(store, sample, 10, 3, n_perm=5, seed=1, workers=2)
    one_by_one = [structural_layer(x, sample, 10, 3, n_perm=5, seed=1) for x in layers]
    assert all(_same(a, b) for a, b in zip(got, one_by_one, strict=True))
    assert got[0]["ari_polarity3"] > 0.95 and got[1]["ari_mft5"] > 0.95 and got[2]["ari_mft15"] > 0.95


def test_structural_layer_keys():
    sample = make_sample(per_cell=4)
    out = structural_layer(planted(labelings(sample)["polarity3"], d=8), sample, 15, 3)
    expected = {f"{score}_{name}" for name in LABELINGS for score in SCORES}
    assert set(out) == expected | {"noise_ratio", "n_clusters", "n_components"}
    assert isinstance(out["n_components"], int) and 1 <= out["n_components"] <= 8


@pytest.mark.parametrize(("d", "min_cluster_size", "min_samples"), [(2, 5, 2), (10, 30, 10)])
def test_isotropic_blob_has_no_moral_structure(d, min_cluster_size, min_samples):
    # (2, 5, 2): HDBSCAN carves spurious clusters out of the blob; (10, 30, 10): it calls everything noise
    sample = make_sample()
    x = np.random.default_rng(5).standard_normal((len(sample), d))
    out = structural_layer(x, sample, min_cluster_size=min_cluster_size, min_samples=min_samples)
    for name in LABELINGS:
        ari = out[f"ari_{name}"]
        assert (np.isnan(ari) and out["n_clusters"] < 2) or abs(ari) < 0.1


def test_all_noise_layer_returns_nan():
    sample = make_sample(per_cell=4)  # 100 rows: no cluster of 80 can form without allow_single_cluster
    x = np.random.default_rng(6).standard_normal((len(sample), 5))
    out = structural_layer(x, sample, min_cluster_size=80, min_samples=10)
    assert out["noise_ratio"] == 1.0 and out["n_clusters"] == 0
    assert all(np.isnan(out[f"{score}_{name}"]) for name in LABELINGS for score in SCORES)
    assert out["n_components"] >= 1


def test_cluster_is_deterministic_and_validates():
    sample = make_sample(per_cell=4)
    z = planted(labelings(sample)["polarity3"], d=6, seed=7)
    first = cluster(z, 15, 3)
    np.testing.assert_array_equal(first, cluster(z.copy(), 15, 3))
    assert first.shape == (len(z),) and first.min() >= -1
    with pytest.raises(ValueError, match="min_samples"):
        cluster(z, 15, len(z) + 1)
    with pytest.raises(ValueError, match="min_cluster_size"):
        cluster(z, 1, 3)
    with pytest.raises(ValueError, match="z"):
        cluster(z[:, 0], 15, 3)


def test_structural_layer_errors():
    sample = make_sample(per_cell=2)
    x = np.random.default_rng(8).standard_normal((len(sample), 4))
    with pytest.raises(ValueError, match="rows"):
        structural_layer(x[:-1], sample, 10, 3)
    with pytest.raises(ValueError, match="sample_type"):
        structural_layer(x, sample.drop(columns="sample_type"), 10, 3)
    with pytest.raises(ValueError, match="x"):
        structural_layer(x.ravel(), sample, 10, 3)


# ---------- 2-D map ----------

def test_embedding_2d_pca_fallback(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # makes `import umap` fail even where it is installed
    sample = make_sample(per_cell=4)
    x = planted(labelings(sample)["polarity3"], d=8, seed=9)
    coords, method = embedding_2d(x, seed=0)
    assert method == "pca"
    assert coords.shape == (len(x), 2)
    z, _ = reduce_pca(x)
    np.testing.assert_allclose(np.abs(coords), np.abs(z[:, :2]), atol=1e-8)
    np.testing.assert_array_equal(coords, embedding_2d(x, seed=1)[0])


def test_ari_null_is_centred_on_zero_for_planted_clusters():
    from helpers.structural import ari_null

    groups = np.repeat(np.arange(3), 60)
    band = ari_null(groups, {"polarity3": groups}, n_perm=200, seed=0)["ari_polarity3"]
    assert abs(band["mean"]) < 0.02 and band["lo"] < 0 < band["hi"] < 0.1
    noise = np.full(180, -1)
    assert np.isnan(ari_null(noise, {"polarity3": groups}, n_perm=5)["ari_polarity3"]["mean"])


def test_summarise_takes_peaks_over_scorable_layers():
    from helpers.structural import summarise

    layers = [{"ari_polarity3": a, "ari_mft5": b, "ari_mft15": 0.0, "noise_ratio": r, "n_clusters": k}
              for a, b, r, k in [(np.nan, np.nan, 1.0, 0), (0.4, 0.1, 0.2, 3), (0.2, 0.3, 0.5, 4)]]
    out = summarise(layers)
    assert out["peak_ari_polarity3"] == 0.4 and out["peak_ari_mft5"] == 0.3 and out["noise_ratio"][0] == 1.0


def test_fast_ari_equals_sklearn():
    from sklearn.metrics import adjusted_rand_score

    from helpers.structural import fast_ari

    rng = np.random.default_rng(3)
    for _ in range(20):
        a, b = rng.integers(0, 4, 200), rng.integers(-1, 6, 200)
        assert fast_ari(a, b) == pytest.approx(adjusted_rand_score(a, b), abs=1e-12)
    same = rng.integers(0, 3, 50)
    assert fast_ari(same, same + 7) == pytest.approx(1.0)
