"""Shared input validation: activation matrices, sample frames and JSONL data files."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.paths import read_jsonl


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


def read_records(path: str | Path, fields: Sequence[str], enums: dict[str, Sequence[str]] | None = None,
                 text: bool = False) -> pd.DataFrame:
    """A JSONL data file as a frame whose lines hold non-empty `fields` (all strings if `text`; allowed `enums`
    values) and unique ids; errors name the file and line."""
    rows = read_jsonl(path)
    for row in rows:
        missing = [f for f in fields if row.get(f) is None or (text and not isinstance(row[f], str))
                   or (isinstance(row[f], str) and not row[f].strip())]
        if missing:
            raise ValueError(f"{path}:{row['line']}: missing or empty field(s) {missing}")
        for field, allowed in (enums or {}).items():
            if row[field] not in allowed:
                raise ValueError(f"{path}:{row['line']}: {field} must be one of {tuple(allowed)}, got {row[field]!r}")
    frame = pd.DataFrame(rows)
    if "id" in frame:
        duplicated = frame.loc[frame["id"].duplicated(), "line"]
        if len(duplicated):
            raise ValueError(f"{path}:{duplicated.iloc[0]}: id {frame.loc[duplicated.index[0], 'id']!r} is used twice")
    return frame.drop(columns="line")
