"""Residual-stream activations: pooled per layer, extracted once per (model, texts, template), cached on disk."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from helpers.models import LoadedModel
from helpers.paths import atomic_path, atomic_write_text, cache_dir

POOLINGS = ("mean", "mean_nosink", "last")
FORMAT_VERSION = 1
_DTYPES = {"float32": torch.float32, "float16": torch.float16}


class CacheError(RuntimeError):
    """An activation cache is missing, incomplete or corrupt; the message names the file."""


def prompts(actions: Sequence[str], template: str) -> list[str]:
    """Render each action into the probing template, e.g. `"{action} is morally"` (no chat template)."""
    if "{action}" not in template:
        raise ValueError(f"template {template!r} has no '{{action}}' placeholder")
    if len(actions) == 0:
        raise ValueError("the list of actions is empty: nothing to extract")
    return [template.format(action=a) for a in actions]


def pool(resid: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Pool `[batch, pos, d]` residuals over real tokens (mask 1) into the three poolings of `POOLINGS`.

    `mean` averages every real token (the paper's recipe), `mean_nosink` leaves out the first real token (the
    attention sink, whose norm is ~100x the others), `last` takes the last real token. Works for left or right
    padding. A one-token text has no token left after the sink, so its `mean_nosink` equals its `mean`.
    """
    weights = mask.to(resid.dtype)
    counts = weights.sum(1, keepdim=True)
    mean = (resid * weights[..., None]).sum(1) / counts
    first = mask.int().argmax(1)
    nosink_w = weights.clone()
    nosink_w[torch.arange(len(mask)), first] = 0.0
    nosink_w[counts.squeeze(1) == 1] = weights[counts.squeeze(1) == 1]
    mean_nosink = (resid * nosink_w[..., None]).sum(1) / nosink_w.sum(1, keepdim=True)
    last_index = mask.shape[1] - 1 - mask.int().flip(1).argmax(1)
    last = resid[torch.arange(len(mask)), last_index]
    return {"mean": mean, "mean_nosink": mean_nosink, "last": last}


def cache_key(model_name: str, texts: Sequence[str], max_length: int) -> str:
    """Hash of everything that determines the activations: model, the exact texts (so template too), truncation."""
    digest = hashlib.sha256(f"v{FORMAT_VERSION}|{model_name}|{max_length}|".encode())
    for text in texts:
        digest.update(text.encode("utf-8") + b"\x00")
    return digest.hexdigest()[:20]


def store_dir(model_name: str, texts: Sequence[str], max_length: int) -> Path:
    """The cache folder of one (model, texts, template, truncation) combination."""
    return cache_dir("activations", model_name) / cache_key(model_name, texts, max_length)


@dataclasses.dataclass(frozen=True)
class ActivationStore:
    """A complete on-disk activation cache: one safetensors file per layer with every pooling."""

    directory: Path
    manifest: dict

    @property
    def n_layers(self) -> int:
        """Number of layers stored."""
        return len(self.manifest["layers"])

    @property
    def d_model(self) -> int:
        """Width of the stored vectors."""
        return int(self.manifest["d_model"])

    @property
    def n_texts(self) -> int:
        """Number of texts (rows of every matrix)."""
        return int(self.manifest["n_texts"])

    def load(self, layer: int, pooling: str = "mean") -> np.ndarray:
        """The `[n_texts, d_model]` float32 matrix of one layer and pooling, rows in the order of the texts."""
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; use one of {POOLINGS}")
        if layer not in self.manifest["layers"]:
            raise ValueError(f"layer {layer} out of range: this cache holds layers {self.manifest['layers']}")
        path = self.directory / f"layer_{layer:03d}.safetensors"
        with safe_open(path, framework="pt") as handle:
            return handle.get_tensor(pooling).to(torch.float32, copy=True).numpy()  # copy: never alias the mmap


def open_store(directory: Path) -> ActivationStore:
    """Open a finished cache, checking that every layer file is whole; raise `CacheError` otherwise."""
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise CacheError(f"{directory}: no manifest.json, the extraction has not finished")
    manifest = json.loads(manifest_path.read_text())
    for layer in manifest["layers"]:
        path = directory / f"layer_{layer:03d}.safetensors"
        if not path.is_file() or path.stat().st_size != manifest["sizes"][str(layer)]:
            raise CacheError(f"{path}: missing or truncated (expected {manifest['sizes'][str(layer)]} bytes)")
    return ActivationStore(directory, manifest)


def _chunk_valid(path: Path, n_layers: int) -> bool:
    """Whether a chunk file can be read back whole (a truncated or foreign file is not)."""
    try:
        with safe_open(path, framework="pt") as handle:
            return len(list(handle.keys())) == len(POOLINGS) * n_layers + 1
    except (SafetensorError, OSError):  # truncated or foreign file: the caller recomputes the chunk
        return False


@torch.no_grad()
def _forward_pooled(model: LoadedModel, batch: list[str], max_length: int) -> dict[str, torch.Tensor]:
    """Run one batch (left padded, with its attention mask) and pool every block's residual output."""
    enc = model.tokenizer(batch, return_tensors="pt", padding=True, padding_side="left", truncation=True,
                          max_length=max_length)
    mask = enc["attention_mask"]
    pooled: dict[str, torch.Tensor] = {}

    def make_hook(layer: int):
        def hook(resid: torch.Tensor, hook) -> None:  # noqa: ARG001 - TransformerLens hook signature
            for name, value in pool(resid.float(), mask.to(resid.device)).items():
                pooled[f"{name}.{layer}"] = value.cpu()
        return hook

    hooks = [(f"blocks.{layer}.hook_resid_post", make_hook(layer)) for layer in range(model.n_layers)]
    # The bridge wraps the HF modules in place, so its hooks fire when the decoder body runs alone; skipping the
    # unembedding saves most of the time for large vocabularies (Gemma-3: 262k tokens).
    with model.bridge.hooks(fwd_hooks=hooks):
        model.bridge.original_model.base_model(input_ids=enc["input_ids"], attention_mask=mask)
    return pooled


def extract(model: LoadedModel, model_name: str, texts: Sequence[str], max_length: int = 128,
            batch_size: int = 64, cache_dtype: str = "float32", chunk_size: int = 512,
            progress: bool = True) -> ActivationStore:
    """Extract every layer's pooled residuals for `texts`, resuming from finished chunks; return the store.

    Texts are sorted by token length so batches carry little padding; chunks of `chunk_size` texts are written
    atomically as they finish, then merged into one file per layer and a manifest (written last).
    """
    if not texts:
        raise ValueError("the list of texts is empty: nothing to extract")
    if cache_dtype not in _DTYPES:
        raise ValueError(f"unknown cache_dtype {cache_dtype!r}; use one of {sorted(_DTYPES)}")
    directory = store_dir(model_name, texts, max_length)
    try:
        return open_store(directory)
    except CacheError:
        pass  # not finished (or damaged): (re)build below, keeping any whole chunks
    chunks_dir = directory / "chunks"
    chunks_dir.mkdir(parents=True, exist_ok=True)
    lengths = [len(ids) for ids in model.tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]]
    order = np.argsort(lengths, kind="stable")
    n_chunks = (len(texts) + chunk_size - 1) // chunk_size
    bar = tqdm(total=len(texts), desc=f"extract {model_name}", file=sys.stderr, disable=not progress)
    for c in range(n_chunks):
        path = chunks_dir / f"chunk_{c:05d}.safetensors"
        rows = order[c * chunk_size:(c + 1) * chunk_size]
        if path.is_file() and _chunk_valid(path, model.n_layers):
            bar.update(len(rows))
            continue
        start = time.perf_counter()
        parts: dict[str, list[torch.Tensor]] = {}
        for b in range(0, len(rows), batch_size):
            batch = [texts[i] for i in rows[b:b + batch_size]]
            for key, value in _forward_pooled(model, batch, max_length).items():
                parts.setdefault(key, []).append(value)
            bar.update(len(batch))
        tensors = {k: torch.cat(v).to(_DTYPES[cache_dtype]).contiguous() for k, v in parts.items()}
        tensors["rows"] = torch.as_tensor(rows, dtype=torch.int64)
        with atomic_path(path) as tmp:
            save_file(tensors, tmp, metadata={"seconds": f"{time.perf_counter() - start:.6f}"})
    bar.close()
    return _merge_chunks(directory, model, model_name, texts, max_length, cache_dtype, n_chunks)


def _merge_chunks(directory: Path, model: LoadedModel, model_name: str, texts: Sequence[str], max_length: int,
                  cache_dtype: str, n_chunks: int) -> ActivationStore:
    """Merge finished chunks into one file per layer (original text order), write the manifest, drop chunks."""
    chunk_paths = [directory / "chunks" / f"chunk_{c:05d}.safetensors" for c in range(n_chunks)]
    seconds = 0.0
    rows = []
    for path in chunk_paths:
        with safe_open(path, framework="pt") as handle:
            seconds += float(handle.metadata()["seconds"])
            rows.append(handle.get_tensor("rows"))
    rows_all = torch.cat(rows)
    sizes = {}
    for layer in range(model.n_layers):
        merged = {}
        for pooling in POOLINGS:
            parts = []
            for path in chunk_paths:
                with safe_open(path, framework="pt") as handle:
                    parts.append(handle.get_tensor(f"{pooling}.{layer}"))
            stacked = torch.cat(parts)
            out = torch.empty_like(stacked)
            out[rows_all] = stacked
            merged[pooling] = out.contiguous()
        target = directory / f"layer_{layer:03d}.safetensors"
        with atomic_path(target) as tmp:
            save_file(merged, tmp)
        sizes[str(layer)] = target.stat().st_size
    manifest = {
        "format_version": FORMAT_VERSION, "model": model_name, "n_texts": len(texts), "d_model": model.d_model,
        "layers": list(range(model.n_layers)), "poolings": list(POOLINGS), "max_length": max_length,
        "cache_dtype": cache_dtype, "sizes": sizes, "extract_seconds": round(seconds, 3),
        "first_text": texts[0],
    }
    atomic_write_text(directory / "manifest.json", json.dumps(manifest, indent=1))
    shutil.rmtree(directory / "chunks", ignore_errors=True)
    return open_store(directory)


def ensure_activations(model_name: str, texts: Sequence[str], profile, model: LoadedModel | None = None,
                       progress: bool = True) -> ActivationStore:
    """The finished cache for `texts` under a profile, extracting (and loading the model) only if needed."""
    try:
        return open_store(store_dir(model_name, texts, profile.max_length))
    except CacheError:
        if model is None:
            from helpers.models import load_model

            model = load_model(model_name, dtype=profile.dtype, device=profile.device)
        return extract(model, model_name, texts, max_length=profile.max_length, batch_size=profile.batch_size,
                       cache_dtype=profile.cache_dtype, progress=progress)


def profile_stores(profile, texts: Sequence[str], progress: bool = True) -> dict[str, ActivationStore]:
    """The activation cache of every model of a profile for `texts` (extracting what is missing)."""
    return {name: ensure_activations(name, texts, profile, progress=progress) for name in profile.models}


def center(x: np.ndarray) -> np.ndarray:
    """Subtract the mean over samples (the paper's per-layer anisotropy correction)."""
    return x - x.mean(axis=0, keepdims=True)


def mean_pairwise_cosine(x: np.ndarray) -> float:
    """Mean cosine over all pairs i ≠ j, in O(n·d): (‖Σ uᵢ‖² − n) / (n(n − 1)) with uᵢ = xᵢ/‖xᵢ‖."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if x.shape[0] < 2 or np.any(norms == 0):
        raise ValueError("mean_pairwise_cosine needs at least 2 rows, none of them zero")
    u = x / norms
    n = len(u)
    return float((np.sum(u.sum(0) ** 2) - n) / (n * (n - 1)))


@torch.no_grad()
def position_norms(model: LoadedModel, text: str) -> tuple[list[str], np.ndarray]:
    """The tokens of one text and the `[n_layers, n_tokens]` L2 norms of its residual stream after each block."""
    enc = model.tokenizer([text], return_tensors="pt")
    names = [f"blocks.{layer}.hook_resid_post" for layer in range(model.n_layers)]
    _, cache = model.bridge.run_with_cache(enc["input_ids"], attention_mask=enc["attention_mask"], names_filter=names)
    norms = np.stack([cache[name][0].float().norm(dim=-1).numpy() for name in names])
    tokens = model.tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    return tokens, norms
