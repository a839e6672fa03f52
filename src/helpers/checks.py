"""Shared input validation of the diagnosis modules: activation matrices and sample frames."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd


def as_matrix(x: np.ndarray, name: str = "x", min_rows: int = 1) -> np.ndarray:
    """`x` as a finite float64 `[n, d]` array with n ≥ `min_rows` and d ≥ 1, else ValueError naming `name`."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < min_rows or x.shape[1] < 1:
        raise ValueError(f"{name} must be a 2-D array [n ≥ {min_rows}, d ≥ 1], got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def require_columns(frame: pd.DataFrame, columns: Iterable[str], name: str = "sample") -> None:
    """ValueError naming the first of `columns` that `frame` (called `name`) lacks."""
    for column in columns:
        if column not in frame.columns:
            raise ValueError(f"{name} lacks the column {column!r}")


def require_rows(frame: pd.DataFrame, n: int, of: str = "x", name: str = "sample") -> None:
    """ValueError unless `frame` (called `name`) has the `n` rows of the array called `of`."""
    if len(frame) != n:
        raise ValueError(f"{name} has {len(frame)} rows but {of} has {n}")
