"""Gradient indifference (spec §3.2): does the cosine to a category's prototype rise with human typicality?"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata, spearmanr

from helpers.categorical import category_centres, shuffled_centres
from helpers.checks import as_matrix, require_columns, require_rows
from helpers.data import DIMENSIONS, FOUNDATIONS
from helpers.robustness import null_band

POLES = ("virtue", "vice")  # category index = 2 * foundation index + pole index
SAMPLE_TYPES = ("virtue", "virtue_typical", "vice", "vice_typical", "neutral")
VIRTUES = DIMENSIONS[0::2]
VICES = DIMENSIONS[1::2]
OVERALL = "overall"
CORRELATION_KEYS = ("spearman", "pearson", "pearson_lo", "pearson_hi", "n")
_Z95 = 1.96


def _check_sample(sample: pd.DataFrame, columns: Sequence[str]) -> None:
    """ValueError naming the first missing column or unknown foundation / sample_type value of `sample`."""
    require_columns(sample, columns)
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


def _category_masks(sample: pd.DataFrame, include_neutral: bool) -> dict[str, np.ndarray]:
    """Per category, the mask of its foundation's rows of its pole: typical rows only, or all + neutral rows."""
    _check_sample(sample, ("sampled_dimension", "sample_type"))
    dimension, kind = sample["sampled_dimension"].to_numpy(), sample["sample_type"].to_numpy()
    masks = {}
    for category in DIMENSIONS:
        foundation, pole = _split(category)
        kinds = (pole, f"{pole}_typical", "neutral") if include_neutral else (f"{pole}_typical",)
        masks[category] = (dimension == foundation) & np.isin(kind, kinds)
    return masks


def _typical_masks(sample: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per category, the boolean mask of its `<pole>_typical` rows in its own foundation."""
    return _category_masks(sample, include_neutral=False)


def category_sets(sample: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per category, the row mask of its evaluation set: its foundation's rows of its pole (incl. typical) + neutral."""
    return _category_masks(sample, include_neutral=True)


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


def _distinct_rows(x: np.ndarray) -> np.ndarray:
    """Per row of `x`, the index of the first row identical to it (the sample repeats an action under several
    foundations: identical rows must score identically, so that their ranks tie exactly)."""
    bits = np.ascontiguousarray(x, dtype=np.float64).view(np.int64)
    key = (bits * (np.arange(1, bits.shape[1] + 1, dtype=np.int64) * 2654435761)).sum(axis=1)  # exact, wraps
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    representative = first[inverse]
    if not (x[representative] == x).all():  # a hash collision (or NaN): compare the rows themselves
        _, first, inverse = np.unique(x, axis=0, return_index=True, return_inverse=True)
        representative = first[inverse.ravel()]
    return representative


def _cosines(x: np.ndarray, centre: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Cosine with `centre` of the rows `rows` of `x`, each computed once per distinct row index (`rows` holds
    representatives from `_distinct_rows`); 0 where a row or the centre has zero norm."""
    distinct, inverse = np.unique(rows, return_inverse=True)
    x = x[distinct]
    norms = np.linalg.norm(x, axis=1) * np.linalg.norm(centre)
    dots = x @ centre
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)[inverse]


def _half_a(sample: pd.DataFrame, seed: int) -> np.ndarray:
    """Mask of half A: a random ceil(m/2) of each category's m typical rows (one generator, categories in order)."""
    rng = np.random.default_rng(seed)
    half = np.zeros(len(sample), dtype=bool)
    for typical in _typical_masks(sample).values():
        index = np.flatnonzero(typical)
        half[rng.permutation(index)[: (len(index) + 1) // 2]] = True
    return half


@dataclasses.dataclass(frozen=True)
class GradientTask:
    """The parts of §3.2 that depend on the sample only (rows, labels, held-out split), prepared once."""

    sample: pd.DataFrame
    build: np.ndarray | None  # rows that may build the centres (None: all of them)
    chosen: dict[str, np.ndarray]  # category -> rows it scores
    labels: dict[str, np.ndarray]  # category -> human typicality of those rows


def prepare(sample: pd.DataFrame, heldout: bool = False, seed: int = 0) -> GradientTask:
    """Validate the sample and precompute its category sets, labels and (if `heldout`) the seeded half-A split."""
    _check_sample(sample, ("sampled_dimension", "sample_type", "moral_vector"))
    build = _half_a(sample, seed) if heldout else None
    evaluate = ~build if heldout else np.ones(len(sample), dtype=bool)
    chosen = {category: members & evaluate for category, members in category_sets(sample).items()}
    labels = {category: human_labels(sample, category)[rows] for category, rows in chosen.items()}
    return GradientTask(sample, build, chosen, labels)


def score(x: np.ndarray, task: GradientTask) -> dict[str, dict]:
    """§3.2 for one layer and a prepared sample: per category and overall, `correlation` of typicality and cosine."""
    x = as_matrix(x)
    require_rows(task.sample, len(x))
    x_centred = x - x.mean(axis=0, keepdims=True)
    centres = category_centres(x_centred, task.sample, mask=task.build)
    representative = _distinct_rows(x_centred)
    result, pooled_labels, pooled_scores = {}, [], []
    for i, category in enumerate(DIMENSIONS):
        labels = task.labels[category]
        scores = _cosines(x_centred, centres[i], representative[task.chosen[category]])
        result[category] = correlation(labels, scores)
        pooled_labels.append(labels)
        pooled_scores.append(scores)
    result[OVERALL] = correlation(np.concatenate(pooled_labels), np.concatenate(pooled_scores))
    return result


def _rank_correlations(label_ranks: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per row of `scores` `[m, n]`, Spearman ρ with the fixed ranks `[n]` (NaN where either side is constant)."""
    ranks = rankdata(scores, axis=1)
    a = label_ranks - label_ranks.mean()
    b = ranks - ranks.mean(axis=1, keepdims=True)
    denominator = np.sqrt((a @ a) * np.einsum("ij,ij->i", b, b))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.clip(b @ a / denominator, -1.0, 1.0)
    return np.where(denominator > 0, rho, np.nan)


def null_overall(x: np.ndarray, task: GradientTask, n_perm: int, seed: int = 0, block: int = 50) -> dict[str, float]:
    """Null band of the overall ρ of `score` when the rows of `x` are shuffled: the permutations of
    `robustness.permutation_null` (same seed, same draws), `block` of them per pair of matrix products."""
    x = as_matrix(x)
    require_rows(task.sample, len(x))
    n = len(x)
    x_centred = x - x.mean(axis=0, keepdims=True)
    representative = _distinct_rows(x_centred)
    norms = np.linalg.norm(x_centred, axis=1)
    build = np.ones(n, dtype=bool) if task.build is None else task.build
    typical = np.stack([members & build for members in _typical_masks(task.sample).values()])
    rows = np.concatenate([np.flatnonzero(task.chosen[c]) for c in DIMENSIONS])  # scored rows, pooled order
    categories = np.concatenate([np.full(task.chosen[c].sum(), i) for i, c in enumerate(DIMENSIONS)])
    label_ranks = rankdata(np.concatenate([task.labels[c] for c in DIMENSIONS]))
    rho = []
    for perm, centres in shuffled_centres(x_centred, typical, n_perm, seed, block):
        m = len(perm)
        centres = centres.reshape(m * len(DIMENSIONS), -1)
        dots = x_centred @ centres.T  # [n, m * 10]
        source = representative[perm[:, rows]]  # the original row scored at each pooled position (one per distinct row)
        column = np.arange(m)[:, None] * len(DIMENSIONS) + categories
        denominator = norms[source] * np.linalg.norm(centres, axis=1)[column]
        picked = dots[source, column]
        scores = np.divide(picked, denominator, out=np.zeros_like(picked), where=denominator > 0)
        rho.append(_rank_correlations(label_ranks, scores))
    return null_band(np.concatenate(rho))


def gradient_layer(x: np.ndarray, sample: pd.DataFrame, heldout: bool = False, seed: int = 0) -> dict[str, dict]:
    """§3.2 for one layer: `correlation` of typicality with cos(x̃, own-pole centre), per category + overall.

    With `heldout`, centres come from a seeded half of the typical rows and only the other rows are scored.
    """
    return score(x, prepare(sample, heldout, seed))


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


def summarise(per_layer: Sequence[dict[str, dict]], heldout: Sequence[dict[str, dict]] | None = None) -> dict:
    """Ledger metrics of a layer sweep (and of its held-out-prototype twin): ρ per layer, peaks, asymmetry."""
    peaks = peak_over_layers(per_layer)
    out = {"spearman": {str(layer): {c: v["spearman"] for c, v in result.items()}
                        for layer, result in enumerate(per_layer)},
           "spearman_overall": [result[OVERALL]["spearman"] for result in per_layer],
           "peak_spearman": {c: v for c, v in peaks.items() if c != OVERALL},
           "peak_spearman_overall": peaks[OVERALL], "asymmetry": virtue_vice_asymmetry(peaks)}
    if heldout is not None:
        held = peak_over_layers(heldout)
        out.update(spearman_heldout_overall=[result[OVERALL]["spearman"] for result in heldout],
                   peak_spearman_heldout={c: v for c, v in held.items() if c != OVERALL},
                   peak_spearman_heldout_overall=held[OVERALL], asymmetry_heldout=virtue_vice_asymmetry(held))
    return out
