"""Variants, outlier share and permutation nulls against planted truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import robustness as rb


def test_top_k_variance_share_sees_an_outlier_channel():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 50))
    assert rb.top_k_variance_share(x) == pytest.approx(3 / 50, abs=0.02)
    x[:, 7] *= 100.0
    assert rb.top_k_variance_share(x) > 0.99
    with pytest.raises(ValueError, match="zero variance"):
        rb.top_k_variance_share(np.ones((4, 3)))


def test_standardise_gives_unit_variance_and_keeps_constant_columns():
    x = np.array([[1.0, 5.0, 2.0], [3.0, 5.0, 4.0], [5.0, 5.0, 9.0]])
    z = rb.standardise(x)
    np.testing.assert_allclose(z.std(axis=0), [1.0, 0.0, 1.0])
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-12)


def test_permutation_null_of_a_planted_association():
    rng = np.random.default_rng(1)
    labels = np.repeat([0.0, 1.0], 100)
    x = (labels + 0.1 * rng.normal(size=200))[:, None]
    statistic = lambda xs: float(np.corrcoef(xs[:, 0], labels)[0, 1])  # noqa: E731
    null = rb.permutation_null(statistic, x, n_perm=200, seed=0)
    assert statistic(x) > 0.95
    assert abs(null["mean"]) < 0.05 and null["lo"] < 0 < null["hi"] < 0.3


def test_null_band_ignores_nan_and_handles_all_nan():
    band = rb.null_band(np.array([1.0, np.nan, 3.0]))
    assert band["mean"] == 2.0
    assert np.isnan(rb.null_band(np.array([np.nan]))["mean"])


def test_layer_activations_reads_the_variant(monkeypatch):
    class Store:
        def load(self, layer, pooling):
            base = {"mean": 1.0, "mean_nosink": 2.0, "last": 3.0}[pooling]
            return np.arange(8, dtype=float).reshape(4, 2) + base + 10 * layer

    sample = pd.DataFrame({"text_index": [3, 0, 3]})
    x = rb.layer_activations(Store(), sample, 1, "last_token")
    np.testing.assert_array_equal(x, [[19.0, 20.0], [13.0, 14.0], [19.0, 20.0]])
    with pytest.raises(ValueError, match="unknown variant"):
        rb.layer_activations(Store(), sample, 0, "median")
