"""Inputs and references shared by the diagnoses: pooling variants, outlier-dimension share, permutation nulls."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np
import pandas as pd

from helpers.activations import ActivationStore

T = TypeVar("T")

# variant name -> (pooling read from the cache, standardise each dimension?)
VARIANTS: dict[str, tuple[str, bool]] = {
    "paper": ("mean", False),          # the paper's recipe: mean over all tokens, centring only
    "no_sink": ("mean_nosink", False),  # first token (attention sink) left out of the mean
    "last_token": ("last", False),      # the token "morally"
    "standardised": ("mean", True),     # every dimension scaled to unit variance (tames outlier channels)
}


def standardise(x: np.ndarray) -> np.ndarray:
    """Scale each column to zero mean and unit variance (constant columns left at zero)."""
    std = x.std(axis=0, keepdims=True)
    return (x - x.mean(axis=0, keepdims=True)) / np.where(std == 0, 1.0, std)


def layer_activations(store: ActivationStore, sample: pd.DataFrame, layer: int, variant: str = "paper") -> np.ndarray:
    """The `[len(sample), d]` activations of the sample's rows at one layer, prepared as `variant` says."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known variants: {sorted(VARIANTS)}")
    pooling, scale = VARIANTS[variant]
    x = store.load(layer, pooling)[sample["text_index"].to_numpy()]
    return standardise(x) if scale else x


def sweep_layers(store: ActivationStore, sample: pd.DataFrame, diagnose: Callable[[np.ndarray, pd.DataFrame], T],
                 variant: str = "paper") -> list[T]:
    """`diagnose(x, sample)` at every layer of a cache, on the activations prepared as `variant` says."""
    return [diagnose(layer_activations(store, sample, layer, variant), sample) for layer in range(store.n_layers)]


def top_k_variance_share(x: np.ndarray, k: int = 3) -> float:
    """Share of the total variance carried by the `k` highest-variance dimensions (outlier channels → near 1)."""
    var = np.sort(np.asarray(x, dtype=np.float64).var(axis=0))[::-1]
    total = var.sum()
    if total == 0:
        raise ValueError("x has zero variance in every dimension")
    return float(var[:k].sum() / total)


def top3_by_layer(store: ActivationStore, sample: pd.DataFrame, variant: str = "paper") -> list[float]:
    """Per layer, the variance share of the three largest dimensions of the sample's activations."""
    return [top_k_variance_share(layer_activations(store, sample, layer, variant)) for layer in range(store.n_layers)]


def null_band(values: np.ndarray) -> dict[str, float]:
    """Mean and central 95 % interval of a null distribution (NaN draws ignored)."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan")}
    return {"mean": float(values.mean()), "lo": float(np.percentile(values, 2.5)),
            "hi": float(np.percentile(values, 97.5))}


def permutations(n: int, n_perm: int, seed: int = 0) -> np.ndarray:
    """`[n_perm, n]` row shuffles, the draws every label-permutation null of the book uses (one seeded generator)."""
    if n_perm < 1:
        raise ValueError(f"n_perm must be ≥ 1, got {n_perm}")
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n) for _ in range(n_perm)])


def permutation_null(statistic: Callable[[np.ndarray], float], x: np.ndarray, n_perm: int = 100,
                     seed: int = 0) -> dict[str, float]:
    """Null band of `statistic(x)` when the rows of `x` are shuffled, i.e. labels carry no moral structure."""
    return null_band(np.array([statistic(x[perm]) for perm in permutations(len(x), n_perm, seed)]))

