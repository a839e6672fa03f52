"""Tests of helpers.dimensional (spec §3.4) against planted linear maps and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from helpers import dimensional
from helpers.data import FOUNDATIONS
from helpers.dimensional import (
    adjusted_r2,
    dimensional_layer,
    probe_split,
    r2_per_dimension,
    ridge_probe,
    train_linear_probe,
)

FAST = {"lr": 3e-2, "batch_size": 32}  # enough steps for a 420-row train split to converge in a few dozen epochs
TYPES = ("virtue", "virtue_typical", "vice", "vice_typical", "neutral")


def planted_map(n: int = 600, d: int = 16, noise: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Raw (non-centred) x and y = x W + small Gaussian noise, W a fixed random [d, 10] matrix."""
    rng = np.random.default_rng(seed)
    x = 2.0 * rng.standard_normal((n, d)) + 1.0
    w = 0.5 * rng.standard_normal((d, 10))
    return x, x @ w + noise * rng.standard_normal((n, 10))


def make_sample(per_cell: int = 24, d: int = 16, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A synthetic diagnosis sample with paper-like moral vectors, and activations x = y A + noise + offset."""
    rng = np.random.default_rng(seed)
    rows, vectors = [], []
    for k, foundation in enumerate(FOUNDATIONS):
        for kind in TYPES:
            for _ in range(per_cell):
                vector = np.zeros(10)
                if kind != "neutral":
                    vector[2 * k + (0 if kind.startswith("virtue") else 1)] = rng.choice([0.125, 0.25, 0.5, 1.0])
                rows.append({"sampled_dimension": foundation, "sample_type": kind,
                             "polarity": kind.split("_")[0], "moral_vector": vector})
                vectors.append(vector)
    y = np.stack(vectors)
    x = y @ rng.standard_normal((10, d)) * 3.0 + 0.01 * rng.standard_normal((len(y), d)) + 5.0
    return pd.DataFrame(rows), x


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny probes run fastest on one thread (two threads spin-wait badly on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------- split ----------

@pytest.mark.parametrize(("n", "sizes"), [(1000, (700, 100, 200)), (16315, (11420, 1632, 3263))])
def test_probe_split_sizes(n, sizes):
    train, val, test = probe_split(n)
    assert (len(train), len(val), len(test)) == sizes  # 16,315 -> about 11.4k / 1.6k / 3.3k as in the spec
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val, test])), np.arange(n))


def test_probe_split_matches_paper_two_step_and_seed():
    n = 200
    rows = np.arange(n) * 10  # the paper splits the arrays themselves; indices must pick the same rows
    rest, test = train_test_split(rows, test_size=0.2, random_state=42)
    train, val = train_test_split(rest, test_size=0.125, random_state=42)
    got = probe_split(n)
    for ours, paper in zip(got, (train, val, test)):
        np.testing.assert_array_equal(rows[ours], paper)
    for a, b in zip(got, probe_split(n, seed=42)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(probe_split(n, seed=1)[2], got[2])


def test_probe_split_too_small():
    with pytest.raises(ValueError, match="n must be"):
        probe_split(5)


# ---------- adjusted R² ----------

def test_adjusted_r2_hand_computed():
    assert adjusted_r2(0.5, 101, 10) == pytest.approx(1 - 0.5 * 100 / 90)  # 0.4444…
    assert adjusted_r2(0.5, 101, 10) == pytest.approx(0.444444444)
    assert adjusted_r2(0.3, 50, 0) == pytest.approx(0.3)  # no predictors: no penalty
    assert adjusted_r2(1.0, 20, 5) == pytest.approx(1.0)
    assert adjusted_r2(0.9, 10, 8) == pytest.approx(1 - 0.1 * 9 / 1)  # p = n − 2: last defined case


@pytest.mark.parametrize(("n", "p"), [(10, 9), (10, 10), (3263, 4096)])
def test_adjusted_r2_undefined_is_none(n, p):
    assert adjusted_r2(0.5, n, p) is None


def test_adjusted_r2_errors():
    with pytest.raises(ValueError, match="p ≥ 0"):
        adjusted_r2(0.5, 10, -1)


# ---------- per-dimension R² ----------

def test_r2_per_dimension_hand_computed():
    y_true = np.zeros((4, 10))
    y_pred = np.zeros((4, 10))
    y_true[:, 0] = [1, 2, 3, 4]
    y_pred[:, 0] = [1, 2, 3, 5]  # SS_res = 1, SS_tot = 5 -> 0.8
    y_true[:, 1] = [1, 2, 3, 4]
    y_pred[:, 1] = 2.5  # predicting the mean -> 0
    y_true[:, 2] = [0, 1, 0, 1]
    y_pred[:, 2] = [0, 1, 0, 1]  # perfect -> 1
    y_true[:, 3] = 7.0
    y_pred[:, 3] = [1, 9, -4, 0]  # constant true column, bad prediction -> 0, not -inf
    # columns 4..9: constant true column (zeros) predicted exactly -> 0 too (the paper's rule)
    got = r2_per_dimension(y_true, y_pred)
    assert got.shape == (10,)
    np.testing.assert_allclose(got, [0.8, 0.0, 1.0] + [0.0] * 7, atol=1e-12)


def test_r2_per_dimension_shape_errors():
    with pytest.raises(ValueError, match="y_true"):
        r2_per_dimension(np.zeros((5, 9)), np.zeros((5, 9)))
    with pytest.raises(ValueError, match="y_pred"):
        r2_per_dimension(np.zeros((5, 10)), np.zeros((4, 10)))


# ---------- probes on planted structure ----------

def test_planted_linear_map_is_recovered_by_both_probes():
    x, y = planted_map()
    split = probe_split(len(x))
    probe = train_linear_probe(x, y, split, **FAST)
    assert probe["r2"] > 0.95
    assert min(probe["r2_per_dim"]) > 0.9 and len(probe["r2_per_dim"]) == 10
    assert probe["adj_r2"] == pytest.approx(adjusted_r2(probe["r2"], len(split[2]), x.shape[1]))
    assert probe["epochs_run"] == len(probe["val_curve"]) <= 100
    ridge = ridge_probe(x, y, split)
    assert ridge["r2"] > 0.95
    assert ridge["alpha"] in (0.1, 1, 10, 100, 1000)
    train, _, test = split  # same pipeline through scikit-learn's own scaler, fitted on the train rows only
    scaler = StandardScaler().fit(x[train])
    fitted = Ridge(alpha=ridge["alpha"]).fit(scaler.transform(x[train]), y[train])
    assert ridge["r2"] == pytest.approx(r2_score(y[test], fitted.predict(scaler.transform(x[test]))), rel=1e-9)


def test_shuffled_target_gives_no_r2():
    x, y = planted_map()
    y = y[np.random.default_rng(7).permutation(len(y))]  # break the row pairing
    split = probe_split(len(x))
    assert train_linear_probe(x, y, split, **FAST)["r2"] <= 0.02
    assert ridge_probe(x, y, split)["r2"] <= 0.02


def test_ridge_ignores_feature_scale_and_shrinks_on_noise():
    x, y = planted_map()
    split = probe_split(len(x))
    reference = ridge_probe(x, y, split)
    outlier = x * np.array([1e4] + [1.0] * (x.shape[1] - 1))  # one huge channel, as in gpt-oss's last layers
    tiny = x * 1e-3  # unstandardised, ridge would shrink these coefficients to ~0 even at alpha = 0.1
    assert ridge_probe(outlier, y, split) == pytest.approx(reference)
    assert ridge_probe(tiny, y, split) == pytest.approx(reference)
    constant = np.hstack([x, np.full((len(x), 1), 3.0)])  # zero-std column: divided by 1, contributes nothing
    assert ridge_probe(constant, y, split) == pytest.approx(reference)
    noise = np.random.default_rng(3).standard_normal(x.shape)
    assert ridge_probe(noise, y, split)["alpha"] >= 100


# ---------- best-epoch restoration (the paper's shallow-copy bug) ----------

def test_best_epoch_is_restored_not_the_last(monkeypatch):
    made: list[torch.nn.Linear] = []

    class Recording(torch.nn.Linear):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(dimensional.nn, "Linear", Recording)
    # few train rows, many features, noisy targets, large lr: val MSE dips early, then the probe overfits
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 40))
    y = x @ (0.2 * rng.standard_normal((40, 10))) + rng.standard_normal((80, 10))
    split = probe_split(len(x))
    result = train_linear_probe(x, y, split, lr=0.05, batch_size=8)
    curve = np.array(result["val_curve"])
    assert len(made) == 1
    assert result["best_epoch"] == int(np.argmin(curve))
    assert result["epochs_run"] == result["best_epoch"] + 1 + 10 < 100  # stopped by patience 10
    assert curve[-1] > 1.1 * curve.min()  # the case really worsens, so keeping the last epoch would be caught
    model, (_, val, test) = made[0], split
    with torch.no_grad():
        xt = torch.from_numpy(x).float()
        val_mse = float(torch.nn.functional.mse_loss(model(xt[val]), torch.from_numpy(y[val]).float()))
        y_hat = model(xt[test]).double().numpy()
    assert val_mse == pytest.approx(curve.min(), rel=1e-6)
    assert result["r2"] == pytest.approx(r2_score(y[test], y_hat), rel=1e-9)


def test_max_epochs_and_patience_bound_the_run():
    x, y = planted_map(n=120)
    result = train_linear_probe(x, y, probe_split(len(x)), max_epochs=4)
    assert result["epochs_run"] == 4 and len(result["val_curve"]) == 4


def test_linear_probe_is_deterministic():
    x, y = planted_map(n=200)
    split = probe_split(len(x))
    first = train_linear_probe(x, y, split, seed=3, **FAST)
    assert train_linear_probe(x, y, split, seed=3, **FAST) == first
    assert train_linear_probe(x, y, split, seed=4, **FAST)["val_curve"] != first["val_curve"]


def test_probe_input_errors():
    x, y = planted_map(n=60)
    split = probe_split(60)
    with pytest.raises(ValueError, match="x must be"):
        train_linear_probe(x[:, 0], y, split)
    with pytest.raises(ValueError, match="y must have shape"):
        train_linear_probe(x, y[:, :9], split)
    with pytest.raises(ValueError, match="split val"):
        ridge_probe(x, y, (split[0], split[1][:1], split[2]))
    with pytest.raises(ValueError, match="outside"):
        ridge_probe(x, y, (split[0], split[1], np.array([0, 60])))
    with pytest.raises(ValueError, match="NaN"):
        ridge_probe(np.where(np.arange(60)[:, None] == 0, np.nan, x), y, split)


# ---------- one layer ----------

def test_dimensional_layer_on_planted_sample():
    sample, x = make_sample()
    result = dimensional_layer(x, sample, seed=1)
    assert set(result) == {"r2", "adj_r2", "r2_ridge", "r2_per_dim", "best_epoch"}
    y = np.stack(sample["moral_vector"])
    split = probe_split(len(x))
    probe = train_linear_probe(x, y, split, seed=1)
    assert result["r2"] == probe["r2"] and result["best_epoch"] == probe["best_epoch"]
    assert result["adj_r2"] == pytest.approx(adjusted_r2(probe["r2"], len(split[2]), x.shape[1]))
    assert result["r2_ridge"] > 0.95  # y is an exact linear function of x up to tiny noise
    assert len(result["r2_per_dim"]) == 10


def test_dimensional_layer_adj_r2_null_when_d_too_large():
    sample, x = make_sample(per_cell=2, d=16)  # 50 rows -> 10 test rows, p = 16 ≥ n − 1
    result = dimensional_layer(x, sample)
    assert result["adj_r2"] is None
    assert np.isfinite(result["r2"])


def test_dimensional_layer_errors():
    sample, x = make_sample(per_cell=2)
    with pytest.raises(ValueError, match="moral_vector"):
        dimensional_layer(x, sample.drop(columns="moral_vector"))
    with pytest.raises(ValueError, match="rows"):
        dimensional_layer(x[:-1], sample)
    short = sample.assign(moral_vector=[v[:9] for v in sample["moral_vector"]])
    with pytest.raises(ValueError, match="moral_vector"):
        dimensional_layer(x, short)


def test_summarise_keeps_undefined_adjusted_r2_as_none():
    from helpers.dimensional import summarise

    layers = [{"r2": 0.1, "adj_r2": None, "r2_ridge": 0.3}, {"r2": 0.4, "adj_r2": None, "r2_ridge": 0.2}]
    out = summarise(layers)
    assert out["peak_adj_r2"] is None and out["peak_r2"] == 0.4 and out["peak_r2_ridge"] == 0.3
    assert out["adj_r2"] == [None, None]


def test_ridge_only_layer_skips_the_probe():
    from helpers.dimensional import dimensional_layer

    sample, x = make_sample()
    out = dimensional_layer(x, sample, probe=False)
    assert out["r2"] is None and out["adj_r2"] is None and out["r2_ridge"] > 0.9
