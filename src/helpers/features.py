"""Moral features of an SAE (spec §4.4, §5.1): latent–dimension correlations, classes, prototypicality, polarity."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from scipy.stats import t as student_t

from helpers.checks import as_matrix
from helpers.data import DIMENSIONS, FOUNDATIONS

CLASSES = ("weak", "monosemantic", "polysemantic")
MIN_STD = 1e-8  # latents (or dimensions) with a smaller standard deviation are treated as constant


def _std(x: np.ndarray) -> np.ndarray:
    """Population standard deviation of every column of `x`."""
    return x.std(axis=0)


def _pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r `[d_x, d_y]` of the columns of `x` `[n, d_x]` with those of `y` `[n, d_y]`; 0 for constant ones."""
    n = len(x)
    yc = y - y.mean(axis=0)
    cov = (x.T @ yc) / n  # Σ x·(y − ȳ) needs no centring of the (large) x
    sx, sy = _std(x), _std(y)
    scale = np.outer(sx, sy)
    ok = (sx >= MIN_STD)[:, None] & (sy >= MIN_STD)[None, :]
    r = np.divide(cov, scale, out=np.zeros_like(cov), where=ok)
    return np.clip(r, -1.0, 1.0)


def _check_r(r: np.ndarray) -> np.ndarray:
    """`r` as a finite `[n_latents, 10]` float array, else ValueError naming `r`."""
    r = as_matrix(r, "r")
    if r.shape[1] != len(DIMENSIONS):
        raise ValueError(f"r must have one column per dimension ({len(DIMENSIONS)}), got shape {r.shape}")
    return r


def _check_vector(v: np.ndarray, n: int, name: str) -> np.ndarray:
    """`v` as a finite float vector of length `n`, else ValueError naming `name`."""
    v = np.asarray(v, dtype=np.float64)
    if v.shape != (n,):
        raise ValueError(f"{name} must be 1-D of length {n} (the rows of z), got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return v


def _check_zhr(z: np.ndarray, h: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate latent codes `z` `[n, L]`, moral vectors `h` `[n, 10]` and correlations `r` `[L, 10]` together."""
    z, h, r = as_matrix(z, "z"), as_matrix(h, "h"), _check_r(r)
    if h.shape != (len(z), len(DIMENSIONS)):
        raise ValueError(f"h must have shape ({len(z)}, {len(DIMENSIONS)}) to match z, got {h.shape}")
    if len(r) != z.shape[1]:
        raise ValueError(f"r has {len(r)} rows but z has {z.shape[1]} latents")
    return z, h, r


def latent_correlations(z: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Pearson r `[n_latents, d]` of every latent column of `z` `[n, n_latents]` with every column of `h` `[n, d]`."""
    z, h = as_matrix(z, "z", min_rows=2), as_matrix(h, "h", min_rows=2)
    if len(h) != len(z):
        raise ValueError(f"h has {len(h)} rows but z has {len(z)}")
    return _pearson(z, h)


def _top_two(r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per latent: |r| sorted descending `[L, 10]`, and the dimensions of the largest and second-largest |r|."""
    a = np.abs(r)
    order = np.argsort(-a, axis=1, kind="stable")
    return np.take_along_axis(a, order, axis=1), order[:, 0], order[:, 1]


def classify(r: np.ndarray, weak: float = 0.05, significant: float = 0.1) -> np.ndarray:
    """Per latent 'weak', 'monosemantic' or 'polysemantic' from its 10 correlations (spec §4.4 step 3)."""
    r = _check_r(r)
    if not 0 <= weak <= significant:
        raise ValueError(f"weak must lie in [0, significant={significant}], got {weak}")
    ranked, first, second = _top_two(r)
    n_significant = (ranked > significant).sum(axis=1)
    same_foundation = first // 2 == second // 2
    mono = (n_significant == 1) | (np.isin(n_significant, (0, 2)) & same_foundation)
    classes = np.where(mono, "monosemantic", "polysemantic")
    return np.where(ranked[:, 0] < weak, "weak", classes)


def class_ratios(classes: np.ndarray) -> dict:
    """Fractions of all latents that are monosemantic, polysemantic and weak."""
    classes = np.asarray(classes).astype(str)
    if classes.ndim != 1 or len(classes) == 0:
        raise ValueError(f"classes must be a non-empty 1-D array, got shape {classes.shape}")
    bad = sorted(set(classes) - set(CLASSES))
    if bad:
        raise ValueError(f"classes holds unknown value(s) {bad}; allowed: {list(CLASSES)}")
    return {f"{c}_ratio": float(np.mean(classes == c)) for c in ("monosemantic", "polysemantic", "weak")}


def strictly_monosemantic(r: np.ndarray, significant: float = 0.1,
                          dominance: float = 1.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Latents of spec §5.1(a): indices, primary dimension and sign (±1) of the largest |r|."""
    r = _check_r(r)
    ranked, first, _ = _top_two(r)
    keep = (ranked[:, 0] > significant) & ((ranked[:, 1] < MIN_STD) | (ranked[:, 0] > dominance * ranked[:, 1]))
    index = np.flatnonzero(keep)
    primary = first[index]
    return index, primary, np.sign(r[index, primary]).astype(int)


def top_latents(r: np.ndarray, dim: int, k: int = 20, min_r: float = 0.05) -> np.ndarray:
    """The (up to) `k` latents with the largest r > `min_r` for dimension `dim`, best first."""
    r = _check_r(r)
    if not 0 <= dim < len(DIMENSIONS):
        raise ValueError(f"dim must lie in [0, {len(DIMENSIONS)}), got {dim}")
    if k < 1:
        raise ValueError(f"k must be ≥ 1, got {k}")
    column = r[:, dim]
    candidates = np.flatnonzero(column > min_r)
    return candidates[np.argsort(-column[candidates], kind="stable")][:k]


def _nanmean(values: list[float]) -> float:
    """Mean ignoring NaN; NaN (without a warning) when every value is NaN."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if len(finite) else float("nan")


def prototypicality_spearman(z: np.ndarray, h: np.ndarray, r: np.ndarray, k: int = 20) -> dict[str, float]:
    """Per dimension, mean Spearman ρ of its top-k latents with typicality on rows with h_j > 0; 'mean' over dims."""
    z, h, r = _check_zhr(z, h, r)
    result = {}
    for j, name in enumerate(DIMENSIONS):
        rows = h[:, j] > 0
        latents = top_latents(r, j, k=k)
        typical = h[rows, j]
        if rows.sum() < 2 or len(latents) == 0 or _std(typical[:, None])[0] < MIN_STD:
            result[name] = float("nan")
            continue
        activations = z[np.ix_(rows, latents)]
        varying = _std(activations) >= MIN_STD  # constant latents have no ranking to compare
        if not varying.any():
            result[name] = float("nan")
            continue
        ranks = rankdata(activations[:, varying], axis=0)
        rho = _pearson(ranks, rankdata(typical)[:, None])[:, 0]
        result[name] = float(rho.mean())
    result["mean"] = _nanmean([result[name] for name in DIMENSIONS])
    return result


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two vectors; 0 when either has zero norm."""
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norm) if norm > 0 else 0.0


def polarity_collapse(z: np.ndarray, h: np.ndarray, r: np.ndarray, m_virtue: np.ndarray, m_vice: np.ndarray,
                      top: int = 100) -> dict:
    """Spec §4.4 step 5: per foundation the virtue/vice r-column cosine and top-|r| overlap; co-activated latents.

    Returns `{foundation: {cosine, overlap, same_sign, opposite_sign}, "mean_pair_cosine": float, "coactivated":
    int}`; `h` is only checked against `z` (the columns it yields are `r`).
    """
    z, h, r = _check_zhr(z, h, r)
    m_virtue, m_vice = _check_vector(m_virtue, len(z), "m_virtue"), _check_vector(m_vice, len(z), "m_vice")
    if top < 1:
        raise ValueError(f"top must be ≥ 1, got {top}")
    result: dict = {}
    for k, foundation in enumerate(FOUNDATIONS):
        virtue, vice = r[:, 2 * k], r[:, 2 * k + 1]
        top_virtue = np.argsort(-np.abs(virtue), kind="stable")[:top]
        top_vice = np.argsort(-np.abs(vice), kind="stable")[:top]
        shared = np.intersect1d(top_virtue, top_vice)
        product = virtue[shared] * vice[shared]
        result[foundation] = {"cosine": _cosine(virtue, vice), "overlap": len(shared),
                              "same_sign": int((product > 0).sum()), "opposite_sign": int((product < 0).sum())}
    result["mean_pair_cosine"] = float(np.mean([result[f]["cosine"] for f in FOUNDATIONS]))
    virtue_rows, vice_rows = m_virtue > 0.5, m_vice > 0.5
    if virtue_rows.any() and vice_rows.any():
        threshold = z.mean(axis=0) + 0.1
        both = (z[virtue_rows].mean(axis=0) > threshold) & (z[vice_rows].mean(axis=0) > threshold)
        result["coactivated"] = int(both.sum())
    else:
        result["coactivated"] = 0
    return result


def distinguishing_latents(z: np.ndarray, m_virtue: np.ndarray, m_vice: np.ndarray, r_min: float = 0.1,
                           p_max: float = 0.01) -> int:
    """Number of latents whose point-biserial r with m⁺ > m⁻ over moral rows has |r| > `r_min` and p < `p_max`."""
    z = as_matrix(z, "z")
    m_virtue, m_vice = _check_vector(m_virtue, len(z), "m_virtue"), _check_vector(m_vice, len(z), "m_vice")
    if r_min < 0:
        raise ValueError(f"r_min must be ≥ 0, got {r_min}")
    moral = (m_virtue > 0) | (m_vice > 0)
    n = int(moral.sum())
    label = (m_virtue[moral] > m_vice[moral]).astype(np.float64)
    if n < 3 or label.min() == label.max():
        return 0
    codes = z[moral]
    rb = _pearson(codes, label[:, None])[:, 0]  # constant latents get r = 0, so they never count
    with np.errstate(divide="ignore"):
        t = np.abs(rb) * np.sqrt((n - 2) / np.maximum(1.0 - rb**2, 0.0))
    p = 2.0 * student_t.sf(t, n - 2)
    return int(((np.abs(rb) > r_min) & (p < p_max)).sum())


def best_layer_score(mono_ratio: float, mean_proto_rho: float, mean_pair_cos: float, n_dist: int,
                     n_latents: int) -> float:
    """The composite of spec §4.4 step 6: 0.3·mono + 0.3·ρ + 0.2·(1 − pair cos) + 0.2·n_dist / n_latents."""
    if n_latents < 1:
        raise ValueError(f"n_latents must be ≥ 1, got {n_latents}")
    return 0.3 * mono_ratio + 0.3 * mean_proto_rho + 0.2 * (1.0 - mean_pair_cos) + 0.2 * n_dist / n_latents


def identify(z: np.ndarray, h: np.ndarray, m_virtue: np.ndarray, m_vice: np.ndarray) -> dict:
    """Spec §4.4 on one layer's codes: class ratios, prototypicality ρ, pair cosine, distinguishing latents, score.

    Returns the per-layer summary (ledger keys of chapter 09) plus `r` (the `[n_latents, 10]` correlations) and
    `classes`.
    """
    z, h = as_matrix(z, "z", min_rows=2), as_matrix(h, "h", min_rows=2)
    r = latent_correlations(z, h)
    classes = classify(r)
    ratios = class_ratios(classes)
    rho = prototypicality_spearman(z, h, r)
    collapse = polarity_collapse(z, h, r, m_virtue, m_vice)
    n_dist = distinguishing_latents(z, m_virtue, m_vice)
    summary = {**ratios, "mean_prototypicality_spearman": rho["mean"], "mean_pair_cosine": collapse["mean_pair_cosine"],
               "n_distinguishing": n_dist, "coactivated": collapse["coactivated"],
               "pair_cosine": {f: collapse[f]["cosine"] for f in FOUNDATIONS},
               "pair_overlap": {f: {k: collapse[f][k] for k in ("overlap", "same_sign", "opposite_sign")}
                                for f in FOUNDATIONS},
               "prototypicality_spearman": {d: rho[d] for d in DIMENSIONS}}
    proto = 0.0 if np.isnan(rho["mean"]) else rho["mean"]
    summary["best_layer_score"] = best_layer_score(ratios["monosemantic_ratio"], proto,
                                                   collapse["mean_pair_cosine"], n_dist, z.shape[1])
    return {**summary, "r": r, "classes": classes}


NULL_KEYS = ("monosemantic_ratio", "mean_prototypicality_spearman", "mean_pair_cosine", "n_distinguishing")


def identify_null(z: np.ndarray, h: np.ndarray, m_virtue: np.ndarray, m_vice: np.ndarray, n_permutations: int,
                  seed: int = 0) -> dict[str, dict[str, float]]:
    """The same statistics with the rows' labels (h, m⁺, m⁻ together) shuffled: 2.5 / 50 / 97.5 % per statistic."""
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be ≥ 1, got {n_permutations}")
    rng = np.random.default_rng(seed)
    draws = {key: [] for key in NULL_KEYS}
    for _ in range(n_permutations):
        order = rng.permutation(len(h))
        result = identify(z, np.asarray(h)[order], np.asarray(m_virtue)[order], np.asarray(m_vice)[order])
        for key in NULL_KEYS:
            draws[key].append(result[key])
    return {key: dict(zip(("lo", "median", "hi"), np.nanpercentile(values, [2.5, 50, 97.5]).tolist()))
            for key, values in draws.items()}
