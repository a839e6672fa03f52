"""Dimensional indifference (spec §3.4): linear probe from raw activations to the moral vector, R², ridge control."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from torch import nn

from helpers.checks import as_matrix, require_columns, require_rows
from helpers.data import DIMENSIONS

N_DIMS = len(DIMENSIONS)  # 10 outputs, order helpers.data.DIMENSIONS
MIN_ROWS = 12  # smallest n whose 70/10/20 split leaves ≥ 2 val rows (and ≥ 2 test rows)
Split = tuple[np.ndarray, np.ndarray, np.ndarray]


def _check_y(y: np.ndarray, n: int, name: str = "y") -> np.ndarray:
    """`y` as a finite float64 `[n, 10]` array, else ValueError naming `name`."""
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (n, N_DIMS):
        raise ValueError(f"{name} must have shape ({n}, {N_DIMS}), got {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return y


def _check_split(split: Split, n: int) -> Split:
    """The (train, val, test) index arrays as int64, inside [0, n), train ≥ 1 row, val and test ≥ 2 rows."""
    if len(split) != 3:
        raise ValueError(f"split must be a (train, val, test) triple, got {len(split)} parts")
    parts = tuple(np.asarray(part, dtype=np.int64).ravel() for part in split)
    for name, part, least in zip(("train", "val", "test"), parts, (1, 2, 2)):
        if len(part) < least:
            raise ValueError(f"split {name} part needs ≥ {least} rows, got {len(part)}")
        if part.min() < 0 or part.max() >= n:
            raise ValueError(f"split {name} part has indices outside [0, {n})")
    return parts


def probe_split(n: int, seed: int = 42) -> Split:
    """Train/val/test row indices, 70/10/20 %: test 20 % first, then val = 10 % of the total from the rest."""
    if n < MIN_ROWS:
        raise ValueError(f"n must be ≥ {MIN_ROWS}, got {n}")
    rest, test = train_test_split(np.arange(n), test_size=0.2, random_state=seed)
    train, val = train_test_split(rest, test_size=0.1 / 0.8, random_state=seed)
    return np.asarray(train, dtype=np.int64), np.asarray(val, dtype=np.int64), np.asarray(test, dtype=np.int64)


def adjusted_r2(r2: float, n: int, p: int) -> float | None:
    """1 − (1 − R²)(n − 1)/(n − p − 1); None (undefined, reported as null) when n − p − 1 ≤ 0."""
    if n < 1 or p < 0:
        raise ValueError(f"need n ≥ 1 and p ≥ 0, got n = {n}, p = {p}")
    if n - p - 1 <= 0:
        return None
    return float(1.0 - (1.0 - r2) * (n - 1) / (n - p - 1))


def r2_per_dimension(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """R² of each of the 10 output columns; 0.0 for a column whose true values are constant (as the paper's code)."""
    y_true = np.asarray(y_true, dtype=np.float64)
    if y_true.ndim != 2 or y_true.shape[1] != N_DIMS or len(y_true) < 2:
        raise ValueError(f"y_true must have shape (n ≥ 2, {N_DIMS}), got {y_true.shape}")
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_pred.shape != y_true.shape:
        raise ValueError(f"y_pred has shape {y_pred.shape}, y_true has {y_true.shape}")
    out = np.zeros(N_DIMS)
    for j in range(N_DIMS):
        if np.ptp(y_true[:, j]) > 0:
            out[j] = r2_score(y_true[:, j], y_pred[:, j])
    return out


def _mse(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean squared error of `model` on (x, y) over all rows and outputs."""
    with torch.no_grad():
        return float(nn.functional.mse_loss(model(x), y))


def train_linear_probe(x: np.ndarray, y: np.ndarray, split: Split, seed: int = 0, lr: float = 1e-3,
                       weight_decay: float = 1e-4, batch_size: int = 512, max_epochs: int = 100,
                       patience: int = 10) -> dict:
    """nn.Linear(d, 10) on raw x with MSE/AdamW/ReduceLROnPlateau and early stopping; best epoch restored; test R²."""
    x = as_matrix(x, min_rows=MIN_ROWS)
    y = _check_y(y, len(x))
    train, val, test = _check_split(split, len(x))
    if batch_size < 1 or max_epochs < 1 or patience < 1:
        raise ValueError(f"batch_size, max_epochs, patience must be ≥ 1, got {batch_size}, {max_epochs}, {patience}")
    torch.manual_seed(seed)
    shuffler = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy(x).float(), torch.from_numpy(y).float()
    x_train, y_train, x_val, y_val = xt[train], yt[train], xt[val], yt[val]
    model = nn.Linear(x.shape[1], N_DIMS)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, mode="min", factor=0.5, patience=5)
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    # best_epoch is a 0-based index into val_curve; it stays -1 (initial weights kept) if no val MSE is finite
    best_val, best_epoch, stale, val_curve = float("inf"), -1, 0, []
    for epoch in range(max_epochs):
        order = torch.randperm(len(train), generator=shuffler)
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            optimiser.zero_grad()
            nn.functional.mse_loss(model(x_train[batch]), y_train[batch]).backward()
            optimiser.step()
        val_mse = _mse(model, x_val, y_val)
        val_curve.append(val_mse)
        scheduler.step(val_mse)
        if val_mse < best_val:  # NaN never counts as an improvement
            best_val, best_epoch, stale = val_mse, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}  # a real copy (paper: shallow)
        else:
            stale += 1
            if stale >= patience:
                break
    model.load_state_dict(best_state)
    with torch.no_grad():
        y_hat = model(xt[test]).double().numpy()
    r2 = float(r2_score(y[test], y_hat))
    return {"r2": r2, "adj_r2": adjusted_r2(r2, len(test), x.shape[1]),
            "r2_per_dim": r2_per_dimension(y[test], y_hat).tolist(), "best_epoch": best_epoch,
            "epochs_run": len(val_curve), "val_curve": val_curve}


def ridge_probe(x: np.ndarray, y: np.ndarray, split: Split,
                alphas: tuple[float, ...] = (0.1, 1, 10, 100, 1000)) -> dict:
    """Control probe: features standardised on the train rows, sklearn Ridge with alpha picked by val R², test R²."""
    x = as_matrix(x, min_rows=MIN_ROWS)
    y = _check_y(y, len(x))
    train, val, test = _check_split(split, len(x))
    if len(alphas) == 0 or min(alphas) <= 0:
        raise ValueError(f"alphas must be a non-empty sequence of positive numbers, got {alphas}")
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    z = (x - mean) / np.where(std == 0, 1.0, std)
    best_alpha, best_val, best_model = None, -np.inf, None
    for alpha in alphas:
        model = Ridge(alpha=float(alpha)).fit(z[train], y[train])
        val_r2 = r2_score(y[val], model.predict(z[val]))
        if best_model is None or val_r2 > best_val:
            best_alpha, best_val, best_model = float(alpha), val_r2, model
    return {"r2": float(r2_score(y[test], best_model.predict(z[test]))), "alpha": best_alpha}


def dimensional_layer(x: np.ndarray, sample: pd.DataFrame, seed: int = 0, probe: bool = True) -> dict:
    """One layer's §3.4 diagnosis: linear-probe R², adjusted R² (n = test rows, p = d), ridge R², per-dim R².

    `probe=False` fits only the (fast, closed-form) ridge control; the probe's entries are then None.
    """
    x = as_matrix(x, min_rows=MIN_ROWS)
    require_columns(sample, ("moral_vector",))
    require_rows(sample, len(x))
    try:
        y = np.stack([np.asarray(v, dtype=np.float64) for v in sample["moral_vector"]])
    except ValueError as err:
        raise ValueError(f"sample column 'moral_vector' must hold length-{N_DIMS} vectors: {err}") from err
    y = _check_y(y, len(x), "sample column 'moral_vector'")
    split = probe_split(len(x))
    ridge = ridge_probe(x, y, split)["r2"]
    if not probe:
        return {"r2": None, "adj_r2": None, "r2_ridge": ridge, "r2_per_dim": None, "best_epoch": None}
    trained = train_linear_probe(x, y, split, seed=seed)
    return {"r2": trained["r2"], "adj_r2": trained["adj_r2"], "r2_ridge": ridge,
            "r2_per_dim": trained["r2_per_dim"], "best_epoch": trained["best_epoch"]}


def _peak(values: Sequence[float | None]) -> float | None:
    """Largest finite value, None if there is none."""
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return max(finite) if finite else None


def summarise(per_layer: Sequence[dict]) -> dict:
    """Ledger metrics of a layer sweep: R², adjusted R² (None where undefined) and ridge R² per layer, and peaks."""
    out = {key: [result[key] for result in per_layer] for key in ("r2", "adj_r2", "r2_ridge")}
    out.update(peak_r2=_peak(out["r2"]), peak_adj_r2=_peak(out["adj_r2"]), peak_r2_ridge=_peak(out["r2_ridge"]))
    return out
