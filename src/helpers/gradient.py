"""Gradient indifference (spec §3.2): does the cosine to a category's prototype rise with human typicality?"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from helpers.data import DIMENSIONS, FOUNDATIONS

POLES = ("virtue", "vice")  # category index = 2 * foundation index + pole index
SAMPLE_TYPES = ("virtue", "virtue_typical", "vice", "vice_typical", "neutral")
VIRTUES = DIMENSIONS[0::2]
VICES = DIMENSIONS[1::2]
OVERALL = "overall"
CORRELATION_KEYS = ("spearman", "pearson", "pearson_lo", "pearson_hi", "n")
_Z95 = 1.96


def _check_x(x: np.ndarray, name: str = "x") -> np.ndarray:
    """`x` as a finite float64 `[n, d]` array with n ≥ 1 and d ≥ 1, else ValueError naming `name`."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name} must be a 2-D array [n, d], got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _check_sample(sample: pd.DataFrame, columns: Sequence[str]) -> None:
    """ValueError naming the first missing column or unknown foundation / sample_type value of `sample`."""
    for column in columns:
        if column not in sample.columns:
            raise ValueError(f"sample lacks the column {column!r}")
    if "sampled_dimension" in columns:
        bad = sorted(set(sample["sampled_dimension"].astype(str)) - set(FOUNDATIONS))
        if bad:
            raise ValueError(f"sample column 'sampled_dimension' has unknown foundation(s) {bad}")
    if "sample_type" in columns:
        bad = sorted(set(sample["sample_type"].astype(str)) - set(SAMPLE_TYPES))
        if bad:
            raise ValueError(f"sample column 'sample_type' has unknown value(s) {bad}")


def _split(category: str) -> tuple[str, str]:
    """(foundation, pole) of a category name from `DIMENSIONS`, else ValueError."""
    if category not in DIMENSIONS:
        raise ValueError(f"category must be one of {DIMENSIONS}, got {category!r}")
    index = DIMENSIONS.index(category)
    return FOUNDATIONS[index // 2], POLES[index % 2]


def _typical_masks(sample: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per category, the boolean mask of its `<pole>_typical` rows in its own foundation."""
    _check_sample(sample, ("sampled_dimension", "sample_type"))
    dimension, kind = sample["sampled_dimension"].to_numpy(), sample["sample_type"].to_numpy()
    masks = {}
    for category in DIMENSIONS:
        foundation, pole = _split(category)
        masks[category] = (dimension == foundation) & (kind == f"{pole}_typical")
    return masks


def category_sets(sample: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per category, the row mask of its evaluation set: its foundation's rows of its pole (incl. typical) + neutral."""
    _check_sample(sample, ("sampled_dimension", "sample_type"))
    dimension, kind = sample["sampled_dimension"].to_numpy(), sample["sample_type"].to_numpy()
    sets = {}
    for category in DIMENSIONS:
        foundation, pole = _split(category)
        sets[category] = (dimension == foundation) & np.isin(kind, (pole, f"{pole}_typical", "neutral"))
    return sets


def human_labels(sample: pd.DataFrame, category: str) -> np.ndarray:
    """`moral_vector[index of category]` for every row of `sample` (forced to 0 on neutral rows)."""
    _split(category)
    index = DIMENSIONS.index(category)
    _check_sample(sample, ("sample_type", "moral_vector"))
    if len(sample) == 0:
        return np.zeros(0)
    try:
        vectors = np.stack([np.asarray(v, dtype=np.float64) for v in sample["moral_vector"]])
    except ValueError as error:
        raise ValueError(f"sample column 'moral_vector' must hold equal-length float vectors: {error}") from None
    if vectors.shape != (len(sample), len(DIMENSIONS)):
        raise ValueError(f"sample column 'moral_vector' must hold length-{len(DIMENSIONS)} vectors, "
                         f"got shape {vectors.shape[1:]}")
    labels = vectors[:, index].copy()
    labels[sample["sample_type"].to_numpy() == "neutral"] = 0.0
    return labels


def correlation(labels: np.ndarray, scores: np.ndarray) -> dict:
    """Spearman ρ, Pearson r with its Fisher-z 95 % CI, and n; NaN values when either input is constant."""
    labels, scores = np.asarray(labels, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    if labels.ndim != 1 or scores.ndim != 1 or labels.shape != scores.shape:
        raise ValueError(f"labels and scores must be 1-D of equal length, got {labels.shape} and {scores.shape}")
    n = len(labels)
    if n < 4:
        raise ValueError(f"correlation needs n ≥ 4 pairs (the Fisher CI uses n - 3), got n = {n}")
    if not (np.isfinite(labels).all() and np.isfinite(scores).all()):
        raise ValueError("labels and scores must be finite")
    if np.ptp(labels) == 0 or np.ptp(scores) == 0:
        nan = float("nan")
        return {"spearman": nan, "pearson": nan, "pearson_lo": nan, "pearson_hi": nan, "n": n}
    rho = float(spearmanr(labels, scores).statistic)
    a, b = labels - labels.mean(), scores - scores.mean()
    r = float(np.clip(a @ b / np.sqrt((a @ a) * (b @ b)), -1.0, 1.0))
    if abs(r) == 1.0:
        lo = hi = r
    else:
        z, se = np.arctanh(r), 1.0 / np.sqrt(n - 3)
        lo, hi = float(np.tanh(z - _Z95 * se)), float(np.tanh(z + _Z95 * se))
    return {"spearman": rho, "pearson": r, "pearson_lo": lo, "pearson_hi": hi, "n": n}


def pole_centres(x_centred: np.ndarray, sample: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """`[10, d]` category centres: mean of the (already centred) `*_typical` rows of each category within `rows`."""
    x_centred = _check_x(x_centred, "x_centred")
    if len(sample) != len(x_centred):
        raise ValueError(f"sample has {len(sample)} rows but x_centred has {len(x_centred)}")
    rows = np.asarray(rows)
    if rows.dtype != bool or rows.shape != (len(x_centred),):
        raise ValueError(f"rows must be a boolean mask of shape ({len(x_centred)},), got {rows.dtype} {rows.shape}")
    centres = np.empty((len(DIMENSIONS), x_centred.shape[1]))
    for i, (category, typical) in enumerate(_typical_masks(sample).items()):
        chosen = typical & rows
        if not chosen.any():
            raise ValueError(f"category {category!r} has no '*_typical' rows to build its centre from")
        centres[i] = x_centred[chosen].mean(axis=0)
    return centres


def _cosines(x: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Cosine of every row of `x` with `centre`; 0 where a row or the centre has zero norm."""
    norms = np.linalg.norm(x, axis=1) * np.linalg.norm(centre)
    dots = x @ centre
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


def _half_a(sample: pd.DataFrame, seed: int) -> np.ndarray:
    """Mask of half A: a random ceil(m/2) of each category's m typical rows (one generator, categories in order)."""
    rng = np.random.default_rng(seed)
    half = np.zeros(len(sample), dtype=bool)
    for typical in _typical_masks(sample).values():
        index = np.flatnonzero(typical)
        half[rng.permutation(index)[: (len(index) + 1) // 2]] = True
    return half


def gradient_layer(x: np.ndarray, sample: pd.DataFrame, heldout: bool = False, seed: int = 0) -> dict[str, dict]:
    """§3.2 for one layer: `correlation` of typicality with cos(x̃, own-pole centre), per category + overall."""
    x = _check_x(x)
    if len(sample) != len(x):
        raise ValueError(f"sample has {len(sample)} rows but x has {len(x)}")
    _check_sample(sample, ("sampled_dimension", "sample_type", "moral_vector"))
    x_centred = x - x.mean(axis=0, keepdims=True)
    build = _half_a(sample, seed) if heldout else np.ones(len(x), dtype=bool)  # rows that may build centres
    centres = pole_centres(x_centred, sample, build)
    evaluate = ~build if heldout else np.ones(len(x), dtype=bool)
    result, pooled_labels, pooled_scores = {}, [], []
    for i, (category, members) in enumerate(category_sets(sample).items()):
        chosen = members & evaluate
        labels = human_labels(sample, category)[chosen]
        scores = _cosines(x_centred[chosen], centres[i])
        result[category] = correlation(labels, scores)
        pooled_labels.append(labels)
        pooled_scores.append(scores)
    result[OVERALL] = correlation(np.concatenate(pooled_labels), np.concatenate(pooled_scores))
    return result


def peak_over_layers(per_layer: Sequence[dict[str, dict]], key: str = "spearman") -> dict[str, float]:
    """Per category (and 'overall'), the maximum of `key` over layers, ignoring NaN (NaN if every layer is NaN)."""
    if len(per_layer) == 0:
        raise ValueError("per_layer is empty")
    if key not in CORRELATION_KEYS:
        raise ValueError(f"key must be one of {CORRELATION_KEYS}, got {key!r}")
    categories = list(per_layer[0])
    for layer, result in enumerate(per_layer):
        if list(result) != categories:
            raise ValueError(f"per_layer[{layer}] has categories {list(result)}, per_layer[0] has {categories}")
    peaks = {}
    for category in categories:
        values = np.array([result[category][key] for result in per_layer], dtype=np.float64)
        peaks[category] = float(np.nanmax(values)) if np.isfinite(values).any() else float("nan")
    return peaks


def virtue_vice_asymmetry(peaks: dict[str, float]) -> float:
    """Mean peak over the 5 vice categories minus mean over the 5 virtue categories (NaN propagates)."""
    missing = [category for category in DIMENSIONS if category not in peaks]
    if missing:
        raise ValueError(f"peaks lacks the categories {missing}")
    vice = np.mean([float(peaks[c]) for c in VICES])
    virtue = np.mean([float(peaks[c]) for c in VIRTUES])
    return float(vice - virtue)
