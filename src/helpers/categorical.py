"""Categorical indifference (spec §3.1): centring, typical-sample category centres, centre cosines, optimal layer."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd

from helpers.checks import as_matrix, require_columns, require_rows
from helpers.data import DIMENSIONS, FOUNDATIONS
from helpers.robustness import null_band, permutations

N_CATEGORIES = len(DIMENSIONS)  # category 2k = virtue pole of foundation k, 2k + 1 = its vice pole
TYPICAL_TYPES = ("virtue_typical", "vice_typical")  # sample_type whose rows build the virtue / vice centres
OFFDIAG_KEYS = ("mean", "std", "min", "max")


def _check_matrix(matrix: np.ndarray) -> np.ndarray:
    """`matrix` as a finite float64 `[10, 10]` array, else ValueError."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (N_CATEGORIES, N_CATEGORIES):
        raise ValueError(f"matrix must have shape ({N_CATEGORIES}, {N_CATEGORIES}), got {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError("matrix contains NaN or infinite values")
    return matrix


def centre(x: np.ndarray) -> np.ndarray:
    """Subtract the mean over rows (the per-layer anisotropy correction of spec §2.2)."""
    x = as_matrix(x)
    return x - x.mean(axis=0, keepdims=True)


def category_centres(x_centred: np.ndarray, sample: pd.DataFrame, mask: np.ndarray | None = None) -> np.ndarray:
    """`[10, d]` prototypes: mean of the centred `*_typical` rows of each (foundation, pole), rows limited by `mask`."""
    x_centred = as_matrix(x_centred, "x_centred")
    n = len(x_centred)
    require_rows(sample, n, "x_centred")
    require_columns(sample, ("sampled_dimension", "sample_type"))
    if mask is None:
        keep = np.ones(n, dtype=bool)
    else:
        keep = np.asarray(mask)
        if keep.dtype != np.bool_ or keep.shape != (n,):
            raise ValueError(f"mask must be a boolean array of shape ({n},), got {keep.dtype} {keep.shape}")
    foundation = sample["sampled_dimension"].to_numpy()
    kind = sample["sample_type"].to_numpy()
    centres = np.empty((N_CATEGORIES, x_centred.shape[1]))
    for k, name in enumerate(FOUNDATIONS):
        for pole, typical in enumerate(TYPICAL_TYPES):
            rows = keep & (foundation == name) & (kind == typical)
            index = 2 * k + pole
            if not rows.any():
                raise ValueError(f"category {DIMENSIONS[index]!r} ({name}, {typical}) has no rows"
                                 + ("" if mask is None else " under the mask"))
            centres[index] = x_centred[rows].mean(axis=0)
    return centres


def cosine_matrix(centres: np.ndarray) -> np.ndarray:
    """`[10, 10]` cosine similarities between the category centres (diagonal exactly 1, entries clipped to ±1)."""
    centres = as_matrix(centres, "centres")
    if len(centres) != N_CATEGORIES:
        raise ValueError(f"centres must have {N_CATEGORIES} rows (one per category), got {len(centres)}")
    norms = np.linalg.norm(centres, axis=1)
    if (norms == 0).any():
        zero = [DIMENSIONS[i] for i in np.flatnonzero(norms == 0)]
        raise ValueError(f"the centre of category(ies) {zero} is the zero vector: cosine undefined")
    unit = centres / norms[:, None]
    matrix = np.clip(unit @ unit.T, -1.0, 1.0)
    np.fill_diagonal(matrix, 1.0)
    return matrix


def virtue_vice_cosines(matrix: np.ndarray) -> dict[str, float]:
    """Foundation name -> cos(c_2k, c_2k+1), the cosine between its virtue and vice centres."""
    matrix = _check_matrix(matrix)
    return {name: float(matrix[2 * k, 2 * k + 1]) for k, name in enumerate(FOUNDATIONS)}


def offdiag_stats(matrix: np.ndarray) -> dict[str, float]:
    """Mean, std (population, ddof 0), min and max of the 90 off-diagonal entries of the cosine matrix."""
    matrix = _check_matrix(matrix)
    values = matrix[~np.eye(N_CATEGORIES, dtype=bool)]
    return {"mean": float(values.mean()), "std": float(values.std()),
            "min": float(values.min()), "max": float(values.max())}


def categorical_layer(x: np.ndarray, sample: pd.DataFrame) -> dict:
    """One layer's §3.1 diagnosis: cosine matrix, virtue–vice cosines, their mean, off-diagonal statistics."""
    matrix = cosine_matrix(category_centres(centre(x), sample))
    virtue_vice = virtue_vice_cosines(matrix)
    return {"matrix": matrix, "virtue_vice": virtue_vice,
            "mean_virtue_vice": float(np.mean(list(virtue_vice.values()))), "offdiag": offdiag_stats(matrix)}


def shuffled_centres(x_centred: np.ndarray, typical: np.ndarray, n_perm: int, seed: int = 0, block: int = 50
                     ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per block of the row shuffles of `robustness.permutations` (same seed, same draws): the shuffles `[b, n]` and
    the category centres `[b, 10, d]` of the shuffled rows, the centre of category j averaging the rows its
    `typical[j]` mask selects (one matrix product per block: a shuffle moves rows, never the mean)."""
    if not typical.any(axis=1).all():
        empty = [DIMENSIONS[i] for i in np.flatnonzero(~typical.any(axis=1))]
        raise ValueError(f"category(ies) {empty} have no typical rows to build a centre from")
    averaging = typical / typical.sum(axis=1, keepdims=True)  # [10, n]: centres = averaging @ shuffled rows
    drawn = permutations(len(x_centred), n_perm, seed)
    for start in range(0, n_perm, block):
        perm = drawn[start:start + block]  # row i of a shuffled x is x[perm[i]]
        weights = averaging[:, np.argsort(perm, axis=1)].transpose(1, 0, 2)  # a shuffle's centre j: original rows
        yield perm, weights @ x_centred


def null_mean_virtue_vice(x: np.ndarray, sample: pd.DataFrame, n_perm: int, seed: int = 0,
                          block: int = 50) -> dict[str, float]:
    """Null band of `categorical_layer`'s mean virtue–vice cosine when the rows of `x` are shuffled: the
    permutations of `robustness.permutation_null` (same seed, same draws), `block` of them per matrix product."""
    x_centred = centre(x)
    require_rows(sample, len(x_centred))
    require_columns(sample, ("sampled_dimension", "sample_type"))
    foundation, kind = sample["sampled_dimension"].to_numpy(), sample["sample_type"].to_numpy()
    typical = np.stack([(foundation == name) & (kind == pole) for name in FOUNDATIONS for pole in TYPICAL_TYPES])
    means = []
    for _, centres in shuffled_centres(x_centred, typical, n_perm, seed, block):
        unit = centres / np.linalg.norm(centres, axis=2, keepdims=True)
        virtue_vice = np.clip(np.einsum("bkd,bkd->bk", unit[:, 0::2], unit[:, 1::2]), -1.0, 1.0)
        means.append(virtue_vice.mean(axis=1))
    return null_band(np.concatenate(means))


def optimal_layer(mean_offdiag_by_layer: Sequence[float]) -> int:
    """Index of the layer with the lowest mean off-diagonal cosine (the first one on ties)."""
    values = np.asarray(mean_offdiag_by_layer, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"mean_offdiag_by_layer must be a non-empty 1-D sequence, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("mean_offdiag_by_layer contains NaN or infinite values")
    return int(np.argmin(values))


def summarise(per_layer: Sequence[dict]) -> dict:
    """Ledger metrics of a layer sweep: virtue–vice cosine per layer and foundation, mean off-diagonal, optimum."""
    offdiag = [result["offdiag"]["mean"] for result in per_layer]
    best = optimal_layer(offdiag)
    return {"virtue_vice_cosine": {str(layer): result["virtue_vice"] for layer, result in enumerate(per_layer)},
            "mean_offdiag_cosine": offdiag, "optimal_layer": best,
            "virtue_vice_cosine_at_optimal": per_layer[best]["virtue_vice"]}
