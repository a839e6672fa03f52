"""Structural indifference (spec §3.3): centring, 95 % PCA, HDBSCAN, and cluster scores against moral labelings."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.cluster import HDBSCAN
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, homogeneity_completeness_v_measure, normalized_mutual_info_score

from helpers.data import FOUNDATIONS

POLARITIES = ("virtue", "vice", "neutral")  # polarity3 label index = position here
LABELINGS = ("polarity3", "mft5", "mft15")  # mft15 label = 3 * foundation index + polarity index
SCORES = ("ari", "nmi", "homogeneity", "completeness", "v_measure")
_POLARITY_OF = {"virtue": 0, "virtue_typical": 0, "vice": 1, "vice_typical": 1, "neutral": 2}


def _check_x(x: np.ndarray, name: str = "x") -> np.ndarray:
    """`x` as a finite float64 `[n, d]` array with n ≥ 2 and d ≥ 1, else ValueError naming `name`."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(f"{name} must be a 2-D array [n ≥ 2, d ≥ 1], got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def labelings(sample: pd.DataFrame) -> dict[str, np.ndarray]:
    """Integer labels per row for 'mft5' (foundation), 'polarity3' (virtue/vice/neutral) and 'mft15' (both)."""
    for column in ("sampled_dimension", "sample_type"):
        if column not in sample.columns:
            raise ValueError(f"sample lacks the column {column!r}")
    foundation = sample["sampled_dimension"].map({f: k for k, f in enumerate(FOUNDATIONS)})
    if foundation.isna().any():
        bad = sorted(set(sample["sampled_dimension"][foundation.isna()].astype(str)))
        raise ValueError(f"sample column 'sampled_dimension' has unknown foundation(s) {bad}")
    pole = sample["sample_type"].map(_POLARITY_OF)
    if pole.isna().any():
        bad = sorted(set(sample["sample_type"][pole.isna()].astype(str)))
        raise ValueError(f"sample column 'sample_type' has unknown value(s) {bad}")
    mft5 = foundation.to_numpy(dtype=np.int64)
    polarity3 = pole.to_numpy(dtype=np.int64)
    return {"polarity3": polarity3, "mft5": mft5, "mft15": 3 * mft5 + polarity3}


def reduce_pca(x: np.ndarray, variance: float = 0.95) -> tuple[np.ndarray, int]:
    """Centre `x` and project it on the fewest principal components explaining `variance` of the variance."""
    x = _check_x(x)
    if not 0.0 < variance < 1.0:
        raise ValueError(f"variance must lie in (0, 1), got {variance}")
    centred = x - x.mean(axis=0, keepdims=True)
    if not np.any(centred):
        raise ValueError("x has zero variance: every row is the same")
    pca = PCA(n_components=variance, svd_solver="full")
    z = pca.fit_transform(centred)
    return z, int(pca.n_components_)


def cluster(z: np.ndarray, min_cluster_size: int, min_samples: int) -> np.ndarray:
    """HDBSCAN (scikit-learn, Euclidean) cluster label per row of `z`, -1 for noise."""
    z = _check_x(z, "z")
    if min_cluster_size < 2:
        raise ValueError(f"min_cluster_size must be ≥ 2, got {min_cluster_size}")
    if not 1 <= min_samples <= len(z):
        raise ValueError(f"min_samples must lie in [1, n = {len(z)}], got {min_samples}")
    model = HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples, metric="euclidean", copy=True)
    return model.fit_predict(z).astype(np.int64)


def score_clusters(labels_pred: np.ndarray, truth: dict[str, np.ndarray]) -> dict:
    """ARI, NMI, homogeneity, completeness, V-measure per labeling on non-noise rows; noise ratio and #clusters."""
    labels_pred = np.asarray(labels_pred)
    if labels_pred.ndim != 1 or len(labels_pred) == 0:
        raise ValueError(f"labels_pred must be a non-empty 1-D array, got shape {labels_pred.shape}")
    for name, labels in truth.items():
        if np.shape(labels) != labels_pred.shape:
            raise ValueError(f"truth[{name!r}] has shape {np.shape(labels)}, labels_pred has {labels_pred.shape}")
    kept = labels_pred != -1
    n_clusters = len(np.unique(labels_pred[kept]))
    result: dict = {"noise_ratio": float(1.0 - kept.mean()), "n_clusters": int(n_clusters)}
    scorable = kept.sum() >= 2 and n_clusters >= 2
    for name, labels in truth.items():
        if not scorable:
            result[name] = {score: float("nan") for score in SCORES}
            continue
        true, pred = np.asarray(labels)[kept], labels_pred[kept]
        homogeneity, completeness, v_measure = homogeneity_completeness_v_measure(true, pred)
        result[name] = {"ari": float(adjusted_rand_score(true, pred)),
                        "nmi": float(normalized_mutual_info_score(true, pred)),
                        "homogeneity": float(homogeneity), "completeness": float(completeness),
                        "v_measure": float(v_measure)}
    return result


def structural_layer(x: np.ndarray, sample: pd.DataFrame, min_cluster_size: int, min_samples: int) -> dict:
    """One layer's §3.3 diagnosis as a flat dict: `<score>_<labeling>`, noise_ratio, n_clusters, n_components."""
    x = _check_x(x)
    if len(sample) != len(x):
        raise ValueError(f"sample has {len(sample)} rows but x has {len(x)}")
    truth = labelings(sample)
    z, n_components = reduce_pca(x)
    scores = score_clusters(cluster(z, min_cluster_size, min_samples), truth)
    flat = {f"{score}_{name}": scores[name][score] for name in LABELINGS for score in SCORES}
    flat.update(noise_ratio=scores["noise_ratio"], n_clusters=scores["n_clusters"], n_components=n_components)
    return flat


def embedding_2d(x: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D map of the 95 %-PCA space: UMAP (15 neighbours, min_dist 0.1) if installed, else the first two PCs."""
    x = _check_x(x)
    try:
        import umap  # noqa: PLC0415  (optional dependency, imported only when a map is asked for)
    except ImportError:
        umap = None
    if umap is not None:
        z, _ = reduce_pca(x)
        reducer = umap.UMAP(n_neighbors=15, min_dist=0.1, n_components=2, random_state=seed)
        return np.asarray(reducer.fit_transform(z), dtype=np.float64), "umap"
    centred = x - x.mean(axis=0, keepdims=True)
    if min(centred.shape) < 2:
        raise ValueError(f"x needs ≥ 2 rows and ≥ 2 columns for a 2-D PCA map, got shape {x.shape}")
    return PCA(n_components=2, svd_solver="full").fit_transform(centred), "pca"
