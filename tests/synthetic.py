"""Synthetic data shared by the tests (import as `from synthetic import make_sample`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers import surgery
from helpers.data import FOUNDATIONS

TYPES = ("virtue", "virtue_typical", "vice", "vice_typical", "neutral")


def make_sample(per_cell: int = 12) -> pd.DataFrame:
    """A synthetic diagnosis sample: `per_cell` rows for every (foundation, sample_type) pair."""
    rows = []
    for foundation in FOUNDATIONS:
        for kind in TYPES:
            for _ in range(per_cell):
                rows.append({"sampled_dimension": foundation, "sample_type": kind,
                             "score_stratum": 0.0 if kind == "neutral" else 1.0 if "typical" in kind else 0.5})
    return pd.DataFrame(rows)


def planted_row_tokens(n: int, seed: int = 0) -> surgery.RowTokens:
    """`n` rows of two 4-d tokens each, every row scored on one random dimension (0.1–1), for surgery's tests."""
    rng = np.random.default_rng(seed)
    h = np.zeros((n, 10))
    h[np.arange(n), rng.integers(0, 10, n)] = rng.uniform(0.1, 1, n)
    return surgery.RowTokens(rng.normal(size=(2 * n, 4)), np.repeat(np.arange(n), 2), np.arange(n), h,
                             h[:, 0::2].max(1), h[:, 1::2].max(1))
