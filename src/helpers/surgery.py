"""Representational surgery (spec §5.1–5.3): fine-tune only an SAE's moral latents toward the human moral space."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sae_lens import SAE

from helpers import sae as sae_module
from helpers.checks import as_matrix
from helpers.data import DIMENSIONS
from helpers.features import latent_correlations, strictly_monosemantic, top_latents
from helpers.models import model_device

WEIGHTS = {"reconstruction": 1.0, "sparsity": 1e-4, "alignment": 0.5, "polarity": 0.3, "prototype": 0.2,
           "monosemantic": 0.1}  # spec §5.2
POLARITY_MARGIN, PROTOTYPE_MARGIN = 0.5, 0.1
POLE_ROWS = 0.3         # a row belongs to V (C) when m⁺ (m⁻) exceeds this
MIN_POLE_ROWS = 4       # the polarity term skips a batch with fewer rows in V or C
MIN_RANK_ROWS = 16      # the ranking term uses a dimension only with this many rows having h_j > 0
MAX_RANK_PAIRS = 100


@dataclasses.dataclass(frozen=True)
class LatentSets:
    """Spec §5.1: the tuned latents S, the read-out matrix M, the pole latents and the monosemantic latents."""

    tuned: np.ndarray          # sorted latent indices of S
    readout: np.ndarray        # M [10, n_latents]: |r| of each dimension's top-50 latents, rows summing to 1
    pole: np.ndarray           # [10, 20] top-20 positive latents per dimension (−1 pads a short list)
    mono: np.ndarray           # strictly monosemantic latents
    mono_dim: np.ndarray       # their primary dimension


def latent_sets(r: np.ndarray, top_readout: int = 50, top_pole: int = 20) -> LatentSets:
    """Build S = strictly monosemantic ∪ top-50 (r > 0.1) per dimension ∪ top-20 (r > 0.05) per dimension."""
    r = as_matrix(r, "r")
    mono, mono_dim, _ = strictly_monosemantic(r)
    readout = np.zeros((len(DIMENSIONS), len(r)))
    pole = -np.ones((len(DIMENSIONS), top_pole), dtype=int)
    for j in range(len(DIMENSIONS)):
        chosen = top_latents(r, j, k=top_readout, min_r=0.1)
        if len(chosen):
            readout[j, chosen] = np.abs(r[chosen, j]) / np.abs(r[chosen, j]).sum()
        best = top_latents(r, j, k=top_pole, min_r=0.05)
        pole[j, :len(best)] = best
    tuned = np.union1d(np.union1d(mono, np.flatnonzero(readout.any(0))), pole[pole >= 0])
    return LatentSets(tuned.astype(int), readout, pole, mono.astype(int), mono_dim.astype(int))


def sample_weights(m_virtue: np.ndarray, m_vice: np.ndarray) -> np.ndarray:
    """The sampler's row weights (spec §5.3), with the intended 3.0 for typicality > 0.75 that the original overwrote.

    Base 1; t = max(m⁺, m⁻): t > 0.75 → 3, t > 0.5 → 2, t > 0.25 → 1.5, t = 0 → 0.3; then the minority pole is
    up-weighted by min(ratio, 3) when the virtue:vice ratio is above 1.5 or below 0.67.
    """
    m_virtue, m_vice = np.asarray(m_virtue, float), np.asarray(m_vice, float)
    t = np.maximum(m_virtue, m_vice)
    weights = np.select([t > 0.75, t > 0.5, t > 0.25, t == 0], [3.0, 2.0, 1.5, 0.3], default=1.0)
    n_virtue, n_vice = int((m_virtue > 0).sum()), int((m_vice > 0).sum())
    if n_virtue and n_vice:
        ratio = n_virtue / n_vice
        if ratio > 1.5:
            weights[m_vice > 0] *= min(ratio, 3.0)
        elif ratio < 0.67:
            weights[m_virtue > 0] *= min(1.0 / ratio, 3.0)
    return weights


def dimension_scores(z: torch.Tensor, readout: torch.Tensor) -> torch.Tensor:
    """s_j = Σ_f M[j, f] z_f for every row: `[n, 10]`."""
    return z @ readout.T


def alignment_loss(s: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """MSE(σ(s_j), h_j) over the (row, dimension) entries with h_j > 0; 0 when there are none."""
    mask = h > 0
    if not mask.any():
        return s.sum() * 0.0
    return ((torch.sigmoid(s) - h)[mask] ** 2).mean()


def polarity_loss(z: torch.Tensor, m_virtue: torch.Tensor, m_vice: torch.Tensor, pole: torch.Tensor) -> torch.Tensor:
    """Margin loss pushing each foundation's virtue latents above its vice latents on virtue rows, and back.

    V / C are the rows with m⁺ / m⁻ > 0.3 (all foundations pooled, as in the paper); skipped (0) when either
    has fewer than 4 rows.
    """
    virtue_rows, vice_rows = m_virtue > POLE_ROWS, m_vice > POLE_ROWS
    if virtue_rows.sum() < MIN_POLE_ROWS or vice_rows.sum() < MIN_POLE_ROWS:
        return z.sum() * 0.0
    total, n_pairs = z.sum() * 0.0, pole.shape[0] // 2
    for p in range(n_pairs):
        a_v, a_c = _pole_activation(z, pole[2 * p]), _pole_activation(z, pole[2 * p + 1])
        total = total + torch.relu(POLARITY_MARGIN - a_v + a_c)[virtue_rows].mean()
        total = total + torch.relu(POLARITY_MARGIN - a_c + a_v)[vice_rows].mean()
    return total / (2 * n_pairs)


def _pole_activation(z: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
    """Mean activation of one pole's latents (uniform weights; −1 pads are ignored) per row."""
    latents = latents[latents >= 0]
    return z[:, latents].mean(1) if len(latents) else z.sum(1) * 0.0


def rank_pairs(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Spec §5.2's random pairs among n rows: min(100, n(n−1)/2) pairs from a permutation (or its roll)."""
    n_pairs = min(MAX_RANK_PAIRS, n * (n - 1) // 2)
    perm = torch.randperm(n, generator=generator)
    if n >= 2 * n_pairs:
        return perm[:n_pairs], perm[n_pairs:2 * n_pairs]
    return perm[:n_pairs], torch.roll(perm, 1)[:n_pairs]


def prototype_loss(s: torch.Tensor, h: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Pairwise ranking: mean ReLU(0.1 − (h_ij − h_kj)(s_ij − s_kj)) over dimensions with ≥ 16 rows h_j > 0."""
    terms = []
    for j in range(h.shape[1]):
        rows = torch.nonzero(h[:, j] > 0).squeeze(1)
        if len(rows) < MIN_RANK_ROWS:
            continue
        i, k = rank_pairs(len(rows), generator)  # drawn on the CPU generator, the same on every device
        i, k = rows[i.to(rows.device)], rows[k.to(rows.device)]
        terms.append(torch.relu(PROTOTYPE_MARGIN - (h[i, j] - h[k, j]) * (s[i, j] - s[k, j])).mean())
    return torch.stack(terms).mean() if terms else s.sum() * 0.0


def monosemantic_loss(z: torch.Tensor, h: torch.Tensor, mono: torch.Tensor, mono_dim: torch.Tensor) -> torch.Tensor:
    """Mean z_f² of the monosemantic latents on rows whose dominant dimension is not theirs.

    A neutral row (h = 0) has no dominant dimension, so every monosemantic latent should stay silent on it (the
    original took argmax of the zero vector, i.e. care, and spared the care latents there).
    """
    if len(mono) == 0:
        return z.sum() * 0.0
    dominant = torch.where(h.abs().sum(1) > 0, h.argmax(1), torch.full((len(h),), -1, device=h.device))
    off = dominant[:, None] != mono_dim[None, :]
    return (z[:, mono] ** 2)[off].mean() if off.any() else z.sum() * 0.0


@dataclasses.dataclass
class Batch:
    """Token vectors of some rows, each token's row in the batch, and the rows' moral labels."""

    x: torch.Tensor
    row: torch.Tensor
    h: torch.Tensor
    m_virtue: torch.Tensor
    m_vice: torch.Tensor

    def to(self, device: torch.device | str) -> Batch:
        """The same batch on `device`."""
        return Batch(*(getattr(self, f.name).to(device) for f in dataclasses.fields(self)))


class TunedSAE(torch.nn.Module):
    """An SAE whose tuned latents (encoder columns, encoder biases, decoder rows) are the only parameters.

    The frozen latents' codes and reconstruction are computed without gradients: every surgery term except
    reconstruction and sparsity reads only tuned latents, so backpropagation touches only the tuned slices.
    """

    def __init__(self, sae: SAE, tuned: np.ndarray) -> None:
        super().__init__()
        self.base = copy.deepcopy(sae).eval()
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.index = torch.as_tensor(tuned, dtype=torch.long)
        frozen = torch.ones(self.base.cfg.d_sae, dtype=torch.bool)
        frozen[self.index] = False
        self.frozen_enc, self.frozen_b = self.base.W_enc[:, frozen], self.base.b_enc[frozen]
        self.frozen_dec = self.base.W_dec[frozen]
        self.w_enc = torch.nn.Parameter(self.base.W_enc[:, self.index].clone())
        self.b_enc = torch.nn.Parameter(self.base.b_enc[self.index].clone())
        self.w_dec = torch.nn.Parameter(self.base.W_dec[self.index].clone())
        self.decoder_norms = self.w_dec.detach().norm(dim=1, keepdim=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Tuned codes `[n, |S|]`, reconstruction x̂ and Σ|z| over the frozen latents of raw activations."""
        with torch.no_grad():
            z_frozen = torch.relu(x @ self.frozen_enc + self.frozen_b)
            frozen_part = z_frozen @ self.frozen_dec + self.base.b_dec
        z = torch.relu(x @ self.w_enc + self.b_enc)
        return z, frozen_part + z @ self.w_dec, z_frozen.sum(1)

    @torch.no_grad()
    def keep_decoder_norms(self) -> None:
        """Rescale tuned decoder rows to their starting norms (the paper's unit norm, in the SAE's own scale)."""
        self.w_dec.mul_(self.decoder_norms / self.w_dec.norm(dim=1, keepdim=True).clamp(min=1e-12))

    def export(self) -> SAE:
        """A copy of the base sae-lens SAE carrying the tuned weights."""
        out = copy.deepcopy(self.base)
        out.W_enc.data[:, self.index] = self.w_enc.detach()
        out.b_enc.data[self.index] = self.b_enc.detach()
        out.W_dec.data[self.index] = self.w_dec.detach()
        return out


def local_sets(sets: LatentSets) -> LatentSets:
    """The same sets with latent indices replaced by positions within the tuned set S."""
    position = -np.ones(len(sets.readout[0]), dtype=int)
    position[sets.tuned] = np.arange(len(sets.tuned))
    pole = np.where(sets.pole >= 0, position[np.maximum(sets.pole, 0)], -1)
    return LatentSets(np.arange(len(sets.tuned)), sets.readout[:, sets.tuned], pole, position[sets.mono],
                      sets.mono_dim)


def surgery_losses(model: TunedSAE, batch: Batch, local: LatentSets, variance: float,
                   generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The six terms of spec §5.2 on one batch (`local`: sets indexed within S); reconstruction is MSE divided by
    the data's per-coordinate variance, so the paper's weights keep their balance at any activation scale."""
    z, x_hat, frozen_l1 = model(batch.x)
    z_rows = sae_module.segment_mean(z, batch.row, len(batch.h))
    s = dimension_scores(z_rows, torch.as_tensor(local.readout, dtype=z.dtype, device=z.device))
    return {"reconstruction": ((x_hat - batch.x) ** 2).mean() / variance,
            "sparsity": (z.sum(1) + frozen_l1).mean() / model.base.cfg.d_sae,
            "alignment": alignment_loss(s, batch.h),
            "polarity": polarity_loss(z_rows, batch.m_virtue, batch.m_vice,
                                      torch.as_tensor(local.pole, device=z.device)),
            "prototype": prototype_loss(s, batch.h, generator),
            "monosemantic": monosemantic_loss(z_rows, batch.h, torch.as_tensor(local.mono, device=z.device),
                                              torch.as_tensor(local.mono_dim, device=z.device))}


def total_loss(terms: dict[str, torch.Tensor]) -> torch.Tensor:
    """Σ weight · term with the paper's weights."""
    return sum(WEIGHTS[name] * value for name, value in terms.items())


@dataclasses.dataclass(frozen=True)
class SurgerySettings:
    """Fine-tuning knobs (spec §5.3): AdamW, one-cycle schedule, batch of rows, epochs, early-stopping patience."""

    lr: float = 1e-4
    batch_size: int = 512
    epochs: int = 50
    patience: int = 10
    min_delta: float = 1e-4
    weight_decay: float = 0.01
    seed: int = 0


class RowTokens:
    """Token vectors grouped by row, so a batch of rows gathers its tokens (a pooled row has one 'token')."""

    def __init__(self, x: np.ndarray, owner: np.ndarray, rows_text: np.ndarray, h: np.ndarray,
                 m_virtue: np.ndarray, m_vice: np.ndarray) -> None:
        order = np.argsort(owner, kind="stable")
        self.x = torch.as_tensor(as_matrix(x, "x")[order], dtype=torch.float32)
        owner = np.asarray(owner)[order]
        self.start = np.searchsorted(owner, rows_text, "left")
        self.stop = np.searchsorted(owner, rows_text, "right")
        if (self.stop == self.start).any():
            raise ValueError(f"{int((self.stop == self.start).sum())} row(s) have no token vector")
        self.h, self.m_virtue, self.m_vice = (torch.tensor(np.asarray(v, dtype=np.float32)) for v in (h, m_virtue, m_vice))

    def __len__(self) -> int:
        """Number of rows."""
        return len(self.start)

    def batch(self, rows: np.ndarray) -> Batch:
        """The tokens and labels of the given rows."""
        spans = [np.arange(self.start[r], self.stop[r]) for r in rows]
        index = torch.as_tensor(np.concatenate(spans))
        row = torch.as_tensor(np.repeat(np.arange(len(rows)), [len(s) for s in spans]))
        rows = torch.as_tensor(rows)
        return Batch(self.x[index], row, self.h[rows], self.m_virtue[rows], self.m_vice[rows])


def fine_tune(sae: SAE, sets: LatentSets, train: RowTokens, val: RowTokens, settings: SurgerySettings
              ) -> tuple[SAE, pd.DataFrame]:
    """Fine-tune the tuned latents with the weighted sampler on the SAE's device (rows drawn on the CPU); return the
    best-on-validation SAE and the history."""
    if len(sets.tuned) == 0:
        raise ValueError("no latent to tune: no latent correlates with any moral dimension above 0.05")
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    model = TunedSAE(sae, sets.tuned)
    device = model_device(sae)
    local = local_sets(sets)
    variance = float(train.x.var(0).mean())
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    steps = max(1, len(train) // settings.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=settings.lr, total_steps=settings.epochs * steps,
                                                   pct_start=0.1, anneal_strategy="cos", div_factor=25,
                                                   final_div_factor=1000)
    weights = torch.as_tensor(sample_weights(train.m_virtue.numpy(), train.m_vice.numpy()), dtype=torch.float64)
    all_val = val.batch(np.arange(len(val))).to(device)
    best, best_loss, waited, rows = copy.deepcopy(model.state_dict()), float("inf"), 0, []
    for epoch in range(1, settings.epochs + 1):
        drawn = torch.multinomial(weights, steps * settings.batch_size, replacement=True, generator=generator)
        sums: dict[str, float] = {}
        model.train()
        for s in range(steps):
            rows_drawn = drawn[s * settings.batch_size:(s + 1) * settings.batch_size].numpy()
            terms = surgery_losses(model, train.batch(rows_drawn).to(device), local, variance, generator)
            loss = total_loss(terms)
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            model.keep_decoder_norms()
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach()) / steps
        with torch.no_grad():
            val_terms = surgery_losses(model, all_val, local, variance, torch.Generator().manual_seed(0))
            val_loss = float(total_loss(val_terms))
        rows.append({"epoch": epoch, **sums, "total": sum(WEIGHTS[k] * v for k, v in sums.items()),
                     "val_total": val_loss})
        if val_loss < best_loss - settings.min_delta:
            best, best_loss, waited = copy.deepcopy(model.state_dict()), val_loss, 0
        else:
            waited += 1
            if waited >= settings.patience:
                break
    model.load_state_dict(best)
    return model.export(), pd.DataFrame(rows)


def frozen_fraction(sae: SAE, n_tuned: int) -> float:
    """Share of the SAE's parameters left untouched when `n_tuned` latents are tuned (W_enc col, b_enc, W_dec row)."""
    total = sum(p.numel() for p in sae.parameters())
    return 1.0 - n_tuned * (2 * sae.cfg.d_in + 1) / total


def settings_from_profile(profile, seed: int = 0) -> SurgerySettings:
    """The surgery settings of a profile (`surgery_*` keys)."""
    return SurgerySettings(lr=profile.surgery_lr, batch_size=profile.surgery_batch_size, epochs=profile.surgery_epochs,
                           seed=seed)


def row_tokens(corpus: sae_module.Corpus, layer: int, split: str) -> RowTokens:
    """A split's rows with their units (covered tokens or pooled vector) and moral labels."""
    x, owner = corpus.units(layer, split)
    rows = corpus.rows[corpus.rows["split"] == split]
    return RowTokens(x, owner, rows["text_index"].to_numpy(), np.stack(rows["moral_vector"].to_numpy()),
                     rows["m_virtue"].to_numpy(), rows["m_vice"].to_numpy())


def identification(corpus: sae_module.Corpus, sae: SAE, layer: int, split: str) -> np.ndarray:
    """The latent × dimension correlations r of an SAE on a split's rows (spec §4.4 step 2)."""
    rows = corpus.rows[corpus.rows["split"] == split]
    return latent_correlations(corpus.sentence_codes(sae, layer, split), np.stack(rows["moral_vector"].to_numpy()))


def surgery_dir(corpus: sae_module.Corpus, layer: int, sae_settings: sae_module.SAESettings,
                settings: SurgerySettings, identify_split: str) -> Path:
    """Where the fine-tuned SAE of one layer is cached: beside the pre-trained one, keyed by the surgery settings."""
    key = hashlib.sha256(json.dumps([dataclasses.asdict(settings), identify_split]).encode()).hexdigest()[:12]
    return sae_module.sae_dir(corpus, layer, sae_settings) / f"surgery-{key}"


def ensure_surgery(corpus: sae_module.Corpus, layer: int, sae_settings: sae_module.SAESettings,
                   settings: SurgerySettings, identify_split: str) -> tuple[sae_module.TrainedSAE, LatentSets]:
    """The fine-tuned SAE of one layer (cached beside the pre-trained one, on the SAE settings' device) and the
    latent sets it tuned."""
    pretrained = sae_module.ensure_sae(corpus, layer, sae_settings)
    sets = latent_sets(identification(corpus, pretrained.sae, layer, identify_split))
    directory = surgery_dir(corpus, layer, sae_settings, settings, identify_split)
    if not (directory / "training.json").is_file():
        start = time.perf_counter()
        tuned, history = fine_tune(pretrained.sae, sets, row_tokens(corpus, layer, "train"),
                                   row_tokens(corpus, layer, "val"), settings)
        trained = sae_module.TrainedSAE(tuned, history, len(corpus.rows[corpus.rows["split"] == "train"]),
                                        time.perf_counter() - start)
        sae_module.save_sae(trained, directory, {"surgery": True, "n_tuned_latents": len(sets.tuned),
                                                 "identify_split": identify_split})
    return sae_module.load_sae(directory, sae_settings.device), sets
