"""Structural indifference (spec §3.3): centring, 95 % PCA, HDBSCAN, and cluster scores against moral labelings."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, parallel_config
from sklearn.cluster import HDBSCAN
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, homogeneity_completeness_v_measure, normalized_mutual_info_score

from helpers.activations import ActivationStore
from helpers.checks import as_matrix, require_columns, require_rows
from helpers.data import FOUNDATIONS
from helpers.robustness import null_band, sweep_layers

POLARITIES = ("virtue", "vice", "neutral")  # polarity3 label index = position here
LABELINGS = ("polarity3", "mft5", "mft15")  # mft15 label = 3 * foundation index + polarity index
SCORES = ("ari", "nmi", "homogeneity", "completeness", "v_measure")
_POLARITY_OF = {"virtue": 0, "virtue_typical": 0, "vice": 1, "vice_typical": 1, "neutral": 2}


def labelings(sample: pd.DataFrame) -> dict[str, np.ndarray]:
    """Integer labels per row for 'mft5' (foundation), 'polarity3' (virtue/vice/neutral) and 'mft15' (both)."""
    require_columns(sample, ("sampled_dimension", "sample_type"))
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
    x = as_matrix(x, min_rows=2)
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
    z = as_matrix(z, "z", min_rows=2)
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


def cluster_labels(x: np.ndarray, min_cluster_size: int, min_samples: int) -> np.ndarray:
    """HDBSCAN labels (-1 = noise) of a layer's activations after centring and 95 % PCA."""
    z, _ = reduce_pca(x)
    return cluster(z, min_cluster_size, min_samples)


def fast_ari(truth: np.ndarray, pred: np.ndarray) -> float:
    """Adjusted Rand index from a bincount contingency table (equals sklearn's; ~100× faster for null draws)."""
    t = np.unique(truth, return_inverse=True)[1]
    p = np.unique(pred, return_inverse=True)[1]
    table = np.bincount(t * (p.max() + 1) + p, minlength=(t.max() + 1) * (p.max() + 1)).reshape(t.max() + 1, -1)
    pairs = lambda counts: float((counts * (counts - 1)).sum() / 2)  # noqa: E731
    both, rows, cols, total = pairs(table), pairs(table.sum(1)), pairs(table.sum(0)), len(t) * (len(t) - 1) / 2
    expected = rows * cols / total
    top = (rows + cols) / 2
    return 1.0 if top == expected else (both - expected) / (top - expected)


def ari_null(labels_pred: np.ndarray, truth: dict[str, np.ndarray], n_perm: int, seed: int = 0) -> dict[str, dict]:
    """Per labeling, the null band of the ARI when the human labels are shuffled against fixed clusters."""
    kept = labels_pred != -1
    rng = np.random.default_rng(seed)
    out = {}
    for name, labels in truth.items():
        if kept.sum() < 2 or len(np.unique(labels_pred[kept])) < 2:
            draws = np.full(n_perm, np.nan)
        else:
            draws = np.array([fast_ari(rng.permutation(labels)[kept], labels_pred[kept]) for _ in range(n_perm)])
        out[f"ari_{name}"] = null_band(draws)
    return out


def cluster_all(zs: Sequence[np.ndarray], min_cluster_size: int, min_samples: int, workers: int = 1
                ) -> list[np.ndarray]:
    """`cluster` of every matrix, `workers` single-threaded processes at a time: HDBSCAN is exact and runs on one
    thread, so the labels equal those of one run after another."""
    if workers <= 1 or len(zs) <= 1:
        return [cluster(z, min_cluster_size, min_samples) for z in zs]
    with parallel_config(backend="loky", inner_max_num_threads=1):
        return Parallel(n_jobs=min(workers, len(zs)))(delayed(cluster)(z, min_cluster_size, min_samples) for z in zs)


def _layer_result(predicted: np.ndarray, truth: dict[str, np.ndarray], n_components: int, n_perm: int,
                  seed: int) -> dict:
    """A layer's flat diagnosis from its cluster labels: scores per labeling, noise, clusters, PCA size, null."""
    scores = score_clusters(predicted, truth)
    flat = {f"{score}_{name}": scores[name][score] for name in LABELINGS for score in SCORES}
    flat.update(noise_ratio=scores["noise_ratio"], n_clusters=scores["n_clusters"], n_components=n_components)
    if n_perm > 0:
        flat["null"] = ari_null(predicted, truth, n_perm, seed)
    return flat


def structural_layer(x: np.ndarray, sample: pd.DataFrame, min_cluster_size: int, min_samples: int,
                     n_perm: int = 0, seed: int = 0) -> dict:
    """One layer's §3.3 diagnosis as a flat dict: `<score>_<labeling>`, noise_ratio, n_clusters, n_components.

    With `n_perm > 0` it adds `null`: the ARI null band of each labeling (labels shuffled, clusters fixed).
    """
    x = as_matrix(x, min_rows=2)
    require_rows(sample, len(x))
    z, n_components = reduce_pca(x)
    return _layer_result(cluster(z, min_cluster_size, min_samples), labelings(sample), n_components, n_perm, seed)


def sweep(store: ActivationStore, sample: pd.DataFrame, min_cluster_size: int, min_samples: int,
          variant: str = "paper", n_perm: int = 0, seed: int = 0, workers: int = 1) -> list[dict]:
    """`structural_layer` at every layer of a cache (activations prepared as `variant` says), the layers' HDBSCAN
    runs `workers` at a time (`cluster_all`): the same results as one layer after another."""
    truth = labelings(sample)
    reduced = sweep_layers(store, sample, lambda x, _: reduce_pca(x), variant)
    predicted = cluster_all([z for z, _ in reduced], min_cluster_size, min_samples, workers)
    return [_layer_result(labels, truth, n_components, n_perm, seed)
            for labels, (_, n_components) in zip(predicted, reduced, strict=True)]


def summarise(per_layer: list[dict]) -> dict:
    """Ledger metrics of a layer sweep: ARIs, noise ratio and cluster count per layer, and the peak ARIs."""
    keys = ("ari_polarity3", "ari_mft5", "ari_mft15", "noise_ratio", "n_clusters")
    out = {key: [result[key] for result in per_layer] for key in keys}
    for key in ("ari_polarity3", "ari_mft5"):
        values = np.array(out[key], dtype=float)
        out[f"peak_{key}"] = float(np.nanmax(values)) if np.isfinite(values).any() else float("nan")
    return out


def embedding_2d(x: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D map of the 95 %-PCA space: UMAP (15 neighbours, min_dist 0.1) if installed, else the first two PCs."""
    x = as_matrix(x, min_rows=2)
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
