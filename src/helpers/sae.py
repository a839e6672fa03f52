"""Sparse autoencoders on the residual stream (spec §4.1–4.3), trained with sae-lens and saved in its format."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sae_lens import (SAE, SAETrainer, StandardTrainingSAE, StandardTrainingSAEConfig, TopKTrainingSAE,
                      TopKTrainingSAEConfig, TrainingSAE)
from sae_lens.config import LoggingConfig, SAETrainerConfig

from helpers import activations
from helpers.activations import ActivationStore, TokenActivations
from helpers.chapter import Chapter, start
from helpers.checks import as_matrix
from helpers.data import sae_splits
from helpers.models import LoadedModel, choose_device, load_model, model_device, to_device
from helpers.paths import cache_dir
from helpers.shards import Shard

ARCHITECTURES = ("relu_l1", "topk")
INPUTS = ("tokens", "pooled")
L1_RANGE = (1e-6, 100.0)  # the paper clamps λ to this range
EARLY_STOP = {"mse": 1e-3, "l0_tolerance": 0.1, "patience": 5}  # spec §4.3
SINK_NORM_RATIO = 10.0  # a token whose norm exceeds this × the median token norm is a secondary attention sink


@dataclasses.dataclass(frozen=True)
class SAESettings:
    """How one SAE is trained; `l1_init` is in the paper's units (MSE and |z| both averaged over coordinates);
    `device` is where it trains and is applied (not part of the cache key)."""

    architecture: str = "relu_l1"
    expansion: int = 16
    target_l0: int = 100
    l1_init: float = 1e-3
    lr: float = 1e-4
    batch_size: int = 4096
    epochs: int = 100
    warmup_epochs: int = 5
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown SAE architecture {self.architecture!r}; use one of {ARCHITECTURES}")
        for name in ("expansion", "target_l0", "batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"SAE setting {name} must be ≥ 1, got {getattr(self, name)}")
        if not (self.lr > 0 and self.l1_init > 0 and self.warmup_epochs >= 0):
            raise ValueError(f"SAE settings need lr > 0, l1_init > 0, warmup_epochs ≥ 0: {self}")

    def key(self) -> str:
        """A short hash of the settings but `device`, for cache folder names."""
        knobs = {name: value for name, value in dataclasses.asdict(self).items() if name != "device"}
        return hashlib.sha256(json.dumps(knobs, sort_keys=True).encode()).hexdigest()[:12]


def settings_from_profile(profile, seed: int = 0) -> SAESettings:
    """The SAE settings of a profile (`sae_*` keys), on the profile's device."""
    return SAESettings(architecture=profile.sae_architecture, expansion=profile.sae_expansion,
                       target_l0=profile.sae_target_l0, l1_init=profile.sae_l1_init, lr=profile.sae_lr,
                       batch_size=profile.sae_batch_size, epochs=profile.sae_epochs,
                       warmup_epochs=profile.sae_warmup_epochs, seed=seed, device=choose_device(profile.device))


def adapt_l1(l1: float, l0: float, target: float) -> float:
    """The paper's once-per-epoch λ update toward a target L0 (×1.2 if L0 > 2·target, ×1.05 > 1.1, ×0.95 < 0.9)."""
    ratio = l0 / target
    factor = 1.2 if ratio > 2 else 1.05 if ratio > 1.1 else 0.95 if ratio < 0.9 else 1.0
    return float(np.clip(l1 * factor, *L1_RANGE))


def _build(settings: SAESettings, d_in: int) -> StandardTrainingSAE | TopKTrainingSAE:
    """A fresh sae-lens training SAE (no input bias subtraction: the centre is handled explicitly)."""
    torch.manual_seed(settings.seed)
    d_sae = settings.expansion * d_in
    if settings.architecture == "topk":
        cfg = TopKTrainingSAEConfig(d_in=d_in, d_sae=d_sae, k=settings.target_l0, apply_b_dec_to_input=False,
                                    rescale_acts_by_decoder_norm=False)  # the decoder is kept at unit norm
        sae = TopKTrainingSAE(cfg)
    else:
        cfg = StandardTrainingSAEConfig(d_in=d_in, d_sae=d_sae, l1_coefficient=_coefficient(settings.l1_init, d_in,
                                                                                             d_sae),
                                        apply_b_dec_to_input=False)
        sae = StandardTrainingSAE(cfg)
    _unit_decoder(sae)
    return sae


def _coefficient(l1: float, d_in: int, d_sae: int) -> float:
    """sae-lens's L1 coefficient for the paper's λ: its loss sums over coordinates, the paper's averages."""
    return l1 * d_in / d_sae


@torch.no_grad()
def _unit_decoder(sae: SAE) -> None:
    """Renormalise every decoder row (one latent's direction) to unit L2 norm, as the paper does after each step."""
    sae.W_dec.data /= sae.W_dec.norm(dim=1, keepdim=True).clamp(min=1e-8)


@torch.no_grad()
def _fold_center(sae: SAE, center: torch.Tensor) -> None:
    """Fold the training centre c into the biases, so the SAE takes raw x: b_enc −= c·W_enc, b_dec += c."""
    sae.b_enc.data -= center @ sae.W_enc
    sae.b_dec.data += center


def segment_mean(x: torch.Tensor | np.ndarray, owner: torch.Tensor | np.ndarray, n: int) -> torch.Tensor | np.ndarray:
    """`[n, d]` mean of the rows of `x` owned by each of `n` segments (e.g. a sentence's tokens); empty segments are
    0. Torch in, torch out (differentiable); numpy in, numpy out."""
    as_numpy = isinstance(x, np.ndarray)
    xt = torch.as_tensor(x)
    ot = torch.as_tensor(owner, dtype=torch.long, device=xt.device)
    counts = torch.bincount(ot, minlength=n).clamp(min=1).to(xt.dtype)
    mean = torch.zeros(n, xt.shape[1], dtype=xt.dtype, device=xt.device).index_add(0, ot, xt) / counts[:, None]
    return mean.numpy() if as_numpy else mean


@torch.no_grad()
def encode(sae: SAE, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """The latent codes `[n, d_sae]` of raw activations `x` `[n, d_in]` (encoded on the SAE's device)."""
    x = as_matrix(x, "x")
    if x.shape[1] != sae.cfg.d_in:
        raise ValueError(f"x has width {x.shape[1]} but the SAE expects d_in={sae.cfg.d_in}")
    sae.eval()
    device = model_device(sae)
    parts = [sae.encode(torch.as_tensor(x[i:i + batch_size], dtype=torch.float32, device=device)).cpu().numpy()
             for i in range(0, len(x), batch_size)]
    return np.concatenate(parts)


@torch.no_grad()
def evaluate(sae: SAE, x: np.ndarray, batch_size: int = 4096) -> dict[str, float]:
    """FVU (Σ‖x − x̂‖² / Σ‖x − x̄‖²), mean MSE per coordinate, L0 and alive fraction of an SAE on `x` (computed on
    the SAE's device)."""
    x = as_matrix(x, "x", min_rows=2)
    sae.eval()
    device = model_device(sae)
    sq_err, l0, fired = 0.0, 0.0, torch.zeros(sae.cfg.d_sae, dtype=torch.bool, device=device)
    for i in range(0, len(x), batch_size):
        batch = torch.as_tensor(x[i:i + batch_size], dtype=torch.float32, device=device)
        z = sae.encode(batch)
        sq_err += float((sae.decode(z) - batch).pow(2).sum())
        active = z > 0
        l0 += float(active.sum())
        fired |= active.any(0)
    variance = float(((x - x.mean(0)) ** 2).sum())
    return {"fvu": sq_err / variance if variance > 0 else float("nan"), "mse": sq_err / x.size,
            "l0": l0 / len(x), "alive_fraction": float(fired.float().mean())}


@dataclasses.dataclass
class TrainedSAE:
    """An SAE that takes raw activations (centre folded in), its per-epoch history and how long it trained."""

    sae: SAE
    history: pd.DataFrame
    n_train: int
    train_seconds: float


def train_sae(x_train: np.ndarray, settings: SAESettings, x_val: np.ndarray | None = None,
              progress: Callable[[dict], None] | None = None) -> TrainedSAE:
    """Train one SAE on `x_train` `[n, d_in]` with sae-lens's trainer: centring, scaling, unit-norm decoder, adaptive λ.

    Epochs are full shuffled passes (drop_last); after each, L0 is compared to the target and λ adapted (ReLU+L1);
    validation FVU / L0 are logged per epoch when `x_val` is given, and the paper's early stop applies. Centre,
    scale, initial weights and shuffles are drawn on the CPU; the SAE and its data train on `settings.device`.
    """
    x = torch.as_tensor(as_matrix(x_train, "x_train"), dtype=torch.float32)
    n, d_in = x.shape
    steps = n // settings.batch_size
    if steps < 1:
        raise ValueError(f"x_train has {n} rows, fewer than one batch (sae_batch_size={settings.batch_size})")
    if x_val is not None and as_matrix(x_val, "x_val").shape[1] != d_in:
        raise ValueError(f"x_val has width {x_val.shape[1]} but x_train has {d_in}")
    center = x.mean(0)
    # Rescale centred vectors to a mean squared norm of d_in (sae-lens's "expected_average_only_in"), so that one λ
    # means the same at every layer and in every model; the factor is folded into the weights after training.
    scale = float(np.sqrt(d_in) / (x - center).norm(dim=1).mean())
    centred = ((x - center) * scale).to(settings.device)
    val_centred = None if x_val is None else (np.asarray(x_val, np.float32) - center.numpy()) * scale
    sae = _build(settings, d_in).to(settings.device)
    trainer = SAETrainer(
        SAETrainerConfig(total_training_samples=settings.epochs * steps * settings.batch_size,
                         train_batch_size_samples=settings.batch_size, lr=settings.lr, lr_end=settings.lr / 100,
                         lr_scheduler_name="cosineannealing", lr_warm_up_steps=settings.warmup_epochs * steps,
                         device=settings.device, logger=LoggingConfig(log_to_wandb=False)),
        sae, data_provider=iter(()))  # fed batch by batch below through the trainer's `step`
    generator = torch.Generator().manual_seed(settings.seed)
    l1, rows, calm_epochs = settings.l1_init, [], 0
    start = time.perf_counter()
    for epoch in range(1, settings.epochs + 1):
        order = torch.randperm(n, generator=generator).to(settings.device)
        sums = {"mse": 0.0, "l1": 0.0, "l0": 0.0}
        fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool, device=settings.device)
        for s in range(steps):
            out = trainer.step(centred[order[s * settings.batch_size:(s + 1) * settings.batch_size]])
            trainer.n_training_steps += 1
            _unit_decoder(sae)
            with torch.no_grad():
                active = out.feature_acts > 0
                sums["mse"] += float(out.losses["mse_loss"]) / d_in
                sums["l1"] += float(out.feature_acts.abs().mean())
                sums["l0"] += float(active.sum(1).float().mean())
                fired |= active.any(0)
        row = {"epoch": epoch, "step": epoch * steps, "lr": trainer.optimizer.param_groups[0]["lr"], "l1_lambda": l1,
               **{k: v / steps for k, v in sums.items()}, "alive_fraction": float(fired.float().mean())}
        if val_centred is not None:
            val = evaluate(sae, val_centred)
            row.update({"val_fvu": val["fvu"], "val_mse": val["mse"], "val_l0": val["l0"]})
            calm = val["mse"] < EARLY_STOP["mse"] and abs(val["l0"] / settings.target_l0 - 1) <= EARLY_STOP["l0_tolerance"]
            calm_epochs = calm_epochs + 1 if calm else 0
        rows.append(row)
        if progress is not None:
            progress(row)
        if settings.architecture == "relu_l1":
            l1 = adapt_l1(l1, row["l0"], settings.target_l0)
            scheduler = trainer.coefficient_schedulers["l1"]
            scheduler.final_value = scheduler.current_value = _coefficient(l1, d_in, sae.cfg.d_sae)
        if calm_epochs >= EARLY_STOP["patience"]:
            break
    seconds = time.perf_counter() - start
    sae.fold_activation_norm_scaling_factor(scale)
    _fold_center(sae, center.to(settings.device))
    sae.eval()
    return TrainedSAE(sae, pd.DataFrame(rows), n, seconds)


def save_sae(trained: TrainedSAE, directory: Path, metadata: dict) -> Path:
    """Save in sae-lens's format (`cfg.json`, `sae_weights.safetensors`) plus `history.csv`, atomically."""
    directory = Path(directory)
    for key, value in metadata.items():
        setattr(trained.sae.cfg.metadata, key, value)
    tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    if isinstance(trained.sae, TrainingSAE):
        trained.sae.save_inference_model(tmp)
    else:  # already an inference SAE (e.g. a fine-tuned copy of a loaded one)
        trained.sae.save_model(tmp)
    trained.history.to_csv(tmp / "history.csv", index=False)
    (tmp / "training.json").write_text(json.dumps({"n_train": trained.n_train,
                                                   "train_seconds": round(trained.train_seconds, 3)}))
    if directory.exists():
        shutil.rmtree(directory)
    tmp.rename(directory)
    return directory


def load_sae(directory: Path, device: str = "cpu") -> TrainedSAE:
    """Load an SAE saved by `save_sae` (with sae-lens's `SAE.load_from_disk`) onto `device`, and its history."""
    directory = Path(directory)
    for name in ("cfg.json", "sae_weights.safetensors", "history.csv", "training.json"):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory / name}: missing; this is not a finished SAE folder")
    info = json.loads((directory / "training.json").read_text())
    return TrainedSAE(SAE.load_from_disk(directory, device=device), pd.read_csv(directory / "history.csv"),
                      int(info["n_train"]), float(info["train_seconds"]))


Replace = Callable[[torch.Tensor], torch.Tensor]  # rewrites the `[n, d]` residual vectors of spliced tokens


@torch.no_grad()
def splice_kls(model: LoadedModel, texts: Sequence[str], splices: Sequence[tuple[int, Replace]],
               max_length: int = 128, batch_size: int = 32) -> list[float]:
    """Per (layer, replace) of `splices`: the mean KL(p_clean ‖ p_spliced) of next-token distributions when `replace`
    rewrites block `layer`'s output; the clean forward of each batch runs once for all of them.

    Every real token but each text's first (the attention sink) is replaced; the mean is over those positions.
    """
    for layer, _ in splices:
        if not 0 <= layer < model.n_layers:
            raise ValueError(f"layer {layer} out of range 0..{model.n_layers - 1}")
    totals, count = [0.0] * len(splices), 0
    for b in range(0, len(texts), batch_size):
        enc = to_device(model.tokenizer(list(texts[b:b + batch_size]), return_tensors="pt", padding=True,
                                        padding_side="left", truncation=True, max_length=max_length), model.device)
        mask = enc["attention_mask"].bool()
        spliced = mask & (mask.cumsum(1) > 1)  # real tokens after each text's first
        log_p = model.bridge(enc["input_ids"], attention_mask=enc["attention_mask"]).float().log_softmax(-1)[spliced]
        for k, (layer, replace) in enumerate(splices):
            def hook(resid: torch.Tensor, hook, replace=replace) -> torch.Tensor:  # noqa: ARG001 - TransformerLens
                resid = resid.clone()
                resid[spliced] = replace(resid[spliced].float()).to(resid.dtype)
                return resid

            patched = model.bridge.run_with_hooks(enc["input_ids"], attention_mask=enc["attention_mask"],
                                                  fwd_hooks=[(f"blocks.{layer}.hook_resid_post", hook)]).float()
            log_q = patched.log_softmax(-1)[spliced]
            totals[k] += float((log_p.exp() * (log_p - log_q)).sum())
        count += int(spliced.sum())
    if count == 0:
        raise ValueError("no token to splice: every text has a single token")
    return [total / count for total in totals]


def splice_kl(model: LoadedModel, texts: Sequence[str], layer: int, replace: Replace, max_length: int = 128,
              batch_size: int = 32) -> float:
    """`splice_kls` of one splice: the mean KL when `replace` rewrites block `layer`'s output."""
    return splice_kls(model, texts, [(layer, replace)], max_length, batch_size)[0]


@dataclasses.dataclass
class Corpus:
    """What a profile's SAEs are trained and evaluated on: the §1.5 split rows, their texts and activations.

    `rows` holds the exploded train and validation rows (`split`, `text_index` into `texts`). With `input`
    "tokens" the SAE sees every token after the first of each training sentence, minus secondary sinks; with
    "pooled" it sees one mean-pooled vector per exploded row (the paper's recipe).
    """

    model_name: str
    model: LoadedModel
    rows: pd.DataFrame
    texts: list[str]
    input: str
    max_length: int
    tokens: TokenActivations | None = None
    store: ActivationStore | None = None
    _sink_norms: dict[int, float] = dataclasses.field(default_factory=dict, repr=False)

    def key(self) -> str:
        """A short hash of the texts, the input kind and the truncation, for cache folder names."""
        return activations.cache_key(f"{self.model_name}|{self.input}", self.texts, self.max_length)[:12]

    def _texts_of(self, split: str) -> np.ndarray:
        """The distinct text indices of a split."""
        if split not in set(self.rows["split"]):
            raise ValueError(f"unknown split {split!r}; this corpus holds {sorted(set(self.rows['split']))}")
        return np.unique(self.rows.loc[self.rows["split"] == split, "text_index"].to_numpy())

    def pooled(self, layer: int) -> np.ndarray:
        """`[n_texts, d]` mean-pooled vectors (the paper's mean, first token included)."""
        return self.store.load(layer, "mean") if self.store is not None else self.tokens.pooled_mean(layer)

    def max_token_norm(self, layer: int) -> float | None:
        """Tokens above this norm are secondary sinks, left out of token-level SAEs (None for pooled input)."""
        if self.input == "pooled":
            return None
        if layer not in self._sink_norms:  # computed once per layer: every token_vectors call needs it
            x, owner = self.tokens.tokens(layer)
            norms = np.linalg.norm(x[np.isin(owner, self._texts_of("train"))], axis=1)
            self._sink_norms[layer] = float(SINK_NORM_RATIO * np.median(norms))
        return self._sink_norms[layer]

    def token_vectors(self, layer: int, split: str) -> tuple[np.ndarray, np.ndarray]:
        """A split's token vectors the SAE covers (not first, not a secondary sink) and their text index."""
        x, owner = self.tokens.tokens(layer)
        keep = np.isin(owner, self._texts_of(split)) & (np.linalg.norm(x, axis=1) <= self.max_token_norm(layer))
        return x[keep], owner[keep]

    def vectors(self, layer: int, split: str) -> np.ndarray:
        """What the SAE trains on (or is validated on) for one split."""
        if self.input == "tokens":
            return self.token_vectors(layer, split)[0]
        return self.pooled(layer)[self.rows.loc[self.rows["split"] == split, "text_index"].to_numpy()]

    def units(self, layer: int, split: str) -> tuple[np.ndarray, np.ndarray]:
        """What the SAE encodes for a split's sentences and the text each vector belongs to (tokens or pooled)."""
        if self.input == "tokens":
            return self.token_vectors(layer, split)
        texts = self._texts_of(split)
        return self.pooled(layer)[texts], texts

    def sentence_codes(self, sae: SAE, layer: int, split: str = "val") -> np.ndarray:
        """`[n_rows, d_sae]` codes of a split's exploded rows: the mean code of each sentence's units (its covered
        tokens, or its one pooled vector)."""
        text_index = self.rows.loc[self.rows["split"] == split, "text_index"].to_numpy()
        x, owner = self.units(layer, split)
        counts = np.bincount(owner, minlength=len(self.texts))
        if (counts[text_index] == 0).any():
            raise ValueError(f"{int((counts[text_index] == 0).sum())} {split} sentence(s) have no covered token")
        return segment_mean(encode(sae, x), owner, len(self.texts))[text_index].astype(np.float32)


class MissingCorpus(FileNotFoundError):
    """The SAE corpus's activations are not cached and the caller asked not to extract them."""


def corpus_texts(profile, rows: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The train/val rows of `rows` (from `data.sae_splits`) with each row's `text_index`, and the distinct texts."""
    rows = rows[rows["split"].isin(["train", "val"])].reset_index(drop=True)
    actions = list(dict.fromkeys(rows["action"]))
    position = {a: i for i, a in enumerate(actions)}
    return rows.assign(text_index=rows["action"].map(position).to_numpy(int)), activations.prompts(actions,
                                                                                                    profile.template)


def _pooled_layers(profile) -> list[int] | None:
    """The layer subset of a pooled corpus's activation cache (None: every layer of the model)."""
    return None if profile.sae_layers == "all" else sorted(set(profile.sae_layers))


def profile_corpus(profile, rows: pd.DataFrame, progress: bool = True, extract: bool = True) -> Corpus:
    """The SAE corpus of a profile: the train/val rows of `rows` (from `data.sae_splits`) and their activations,
    extracted first if missing (or, with `extract=False`, a `MissingCorpus` error naming the command that does)."""
    rows, texts = corpus_texts(profile, rows)
    model = load_model(profile.sae_model, dtype=profile.dtype, device=profile.device)
    layers = sae_layers(profile, model.n_layers)
    corpus = Corpus(profile.sae_model, model, rows, texts, profile.sae_input, profile.max_length)
    if not extract:
        missing = (not activations.token_cache_whole(profile.sae_model, texts, layers, profile.max_length)
                   if profile.sae_input == "tokens" else
                   not activations.store_finished(profile.sae_model, texts, profile.max_length, _pooled_layers(profile)))
        if missing:
            shards = "" if profile.sae_input == "tokens" else " (or its shards, then once without --shard to merge)"
            raise MissingCorpus(f"the SAE corpus of profile {profile.name} ({len(texts)} texts through "
                                f"{profile.sae_model}) is not extracted yet: run `python -m helpers corpus --profile "
                                f"{profile.name}` first{shards}")
    if profile.sae_input == "tokens":
        corpus.tokens = activations.token_activations(model, profile.sae_model, texts, layers, profile.max_length,
                                                      profile.batch_size, progress)
    else:
        corpus.store = activations.ensure_activations(profile.sae_model, texts, profile, model, progress,
                                                      _pooled_layers(profile))
    return corpus


def split_corpus(profile, cleaned: pd.DataFrame, progress: bool = True, extract: bool = True) -> Corpus:
    """The profile's SAE corpus from chapter 01's cleaned rows: the §1.5 split (seeded by `sample_seed`), then
    `profile_corpus`."""
    return profile_corpus(profile, sae_splits(cleaned, seed=profile.sample_seed), progress, extract)


def extract_corpus(profile, cleaned: pd.DataFrame, shard: Shard = Shard()) -> bool:
    """The `corpus` stage: extract the SAE corpus's activations, or with a `shard` i/n only every n-th chunk of
    its texts (pooled input); an unsharded call afterwards merges the shards' chunks without loading the model.
    True when the corpus is complete."""
    texts = corpus_texts(profile, sae_splits(cleaned, seed=profile.sample_seed))[1]
    if profile.sae_input == "tokens":
        if shard.count > 1:
            raise ValueError(f"profile {profile.name} trains on tokens (sae_input: tokens), whose corpus is one "
                             "file for a few thousand short texts: run `corpus` without --shard")
        split_corpus(profile, cleaned)
        return True
    return activations.ensure_activations(profile.sae_model, texts, profile, layers=_pooled_layers(profile),
                                          shard=shard) is not None


def sae_layers(profile, n_layers: int) -> list[int]:
    """The layers a profile trains SAEs on (`sae_layers`: a list, or "all"), checked against the model's depth."""
    layers = list(range(n_layers)) if profile.sae_layers == "all" else list(profile.sae_layers)
    bad = [layer for layer in layers if not 0 <= layer < n_layers]
    if bad or not layers:
        raise ValueError(f"sae_layers {profile.sae_layers} must name layers in 0..{n_layers - 1} of {profile.sae_model}")
    return layers


def sae_dir(corpus: Corpus, layer: int, settings: SAESettings) -> Path:
    """The cache folder of one layer's SAE for a corpus and settings."""
    return cache_dir("saes", corpus.model_name, f"{corpus.key()}-{settings.key()}") / f"layer_{layer:03d}"


def ensure_sae(corpus: Corpus, layer: int, settings: SAESettings, progress: Callable[[dict], None] | None = None
               ) -> TrainedSAE:
    """The trained SAE of one layer on the settings' device: loaded from the cache, or trained on the corpus and
    saved there first."""
    directory = sae_dir(corpus, layer, settings)
    if not (directory / "training.json").is_file():
        trained = train_sae(corpus.vectors(layer, "train"), settings, corpus.vectors(layer, "val"), progress)
        save_sae(trained, directory, {"hook_name": f"blocks.{layer}.hook_resid_post", "model_name": corpus.model_name,
                                      "layer": layer, "sae_input": corpus.input,
                                      "max_token_norm": corpus.max_token_norm(layer),
                                      "final_l1_lambda": float(trained.history["l1_lambda"].iloc[-1])})
    return load_sae(directory, settings.device)


def on_covered_tokens(transform: Callable[[torch.Tensor], torch.Tensor], max_token_norm: float | None
                      ) -> Callable[[torch.Tensor], torch.Tensor]:
    """Apply `transform` to the tokens an SAE covers; secondary sinks (norm above `max_token_norm`) pass unchanged."""
    def replace(x: torch.Tensor) -> torch.Tensor:
        covered = (torch.ones(len(x), dtype=torch.bool, device=x.device) if max_token_norm is None
                   else x.norm(dim=1) <= max_token_norm)
        out = x.clone()
        with torch.no_grad():
            out[covered] = transform(x[covered])
        return out
    return replace


def reconstruct(sae: SAE) -> Callable[[torch.Tensor], torch.Tensor]:
    """x ↦ the SAE's reconstruction of x, the SAE moved to x's device first (a no-op once there)."""
    def rebuild(x: torch.Tensor) -> torch.Tensor:
        sae.to(x.device)
        return sae.decode(sae.encode(x))
    return rebuild


def layer_reports(corpus: Corpus, trained: dict[int, TrainedSAE], n_splice_texts: int) -> dict[int, dict]:
    """Per layer, its SAE's quality (chapter 08's ledger keys), with the splice KL of mean ablation as a yardstick;
    every splice on the same validation texts, their clean forwards shared."""
    texts = [corpus.texts[i] for i in corpus._texts_of("val")[:n_splice_texts]]
    splices = []
    for layer, sae_of_layer in trained.items():
        max_norm = corpus.max_token_norm(layer)
        mean = torch.as_tensor(corpus.vectors(layer, "train").mean(0), dtype=torch.float32)
        splices += [(layer, on_covered_tokens(reconstruct(sae_of_layer.sae), max_norm)),
                    (layer, on_covered_tokens(lambda x, mean=mean: mean.to(x.device).expand_as(x), max_norm))]
    kls = splice_kls(corpus.model, texts, splices, corpus.max_length)
    reports = {}
    for k, (layer, sae_of_layer) in enumerate(trained.items()):
        val = evaluate(sae_of_layer.sae, corpus.vectors(layer, "val"))
        reports[layer] = {"fvu_val": val["fvu"], "l0_val": val["l0"], "alive_fraction": val["alive_fraction"],
                          "splice_kl": kls[2 * k], "mean_ablation_kl": kls[2 * k + 1],
                          "d_sae": sae_of_layer.sae.cfg.d_sae, "n_train": sae_of_layer.n_train,
                          "train_seconds": sae_of_layer.train_seconds}
    return reports


@dataclasses.dataclass
class SAEChapter:
    """A running SAE chapter (08–11): its start-up, the SAE corpus, the training settings and the SAE layers."""

    chapter: Chapter
    corpus: Corpus
    settings: SAESettings
    layers: list[int]


def start_chapter(name: str, profile: str, seed: int = 0) -> SAEChapter:
    """`chapter.start` without the diagnosis caches, plus the profile's §1.5 split corpus, SAE settings and layers."""
    run = start(name, profile, seed, stores=False)
    corpus = split_corpus(run.profile, run.moral.cleaned)
    layers = sae_layers(run.profile, corpus.model.n_layers)
    print(f"SAEs on {run.profile.sae_model} (d_model = {corpus.model.d_model}), layers {layers}, input: {corpus.input}")
    return SAEChapter(run, corpus, settings_from_profile(run.profile, seed), layers)
