"""Synthetic diagnosis samples shared by the tests (import as `from synthetic import make_sample`)."""

from __future__ import annotations

import pandas as pd

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
