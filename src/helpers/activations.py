"""Residual-stream activations: pooled per layer, extracted once per (model, texts, template), cached on disk."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import struct
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from helpers.models import LoadedModel, run_blocks, to_device
from helpers.paths import atomic_path, atomic_write_text, cache_dir
from helpers.shards import Shard

POOLINGS = ("mean", "mean_nosink", "last")
FORMAT_VERSION = 1
_DTYPES = {"float32": torch.float32, "float16": torch.float16}
CHUNK_SIZE = 512  # texts per chunk file: the unit of resumption, of sharding and of the memory bound
_log = logging.getLogger(__name__)


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
    rows = torch.arange(len(mask), device=mask.device)
    nosink_w[rows, first] = 0.0
    nosink_w[counts.squeeze(1) == 1] = weights[counts.squeeze(1) == 1]
    mean_nosink = (resid * nosink_w[..., None]).sum(1) / nosink_w.sum(1, keepdim=True)
    last_index = mask.shape[1] - 1 - mask.int().flip(1).argmax(1)
    last = resid[rows, last_index]
    return {"mean": mean, "mean_nosink": mean_nosink, "last": last}


def cache_key(model_name: str, texts: Sequence[str], max_length: int) -> str:
    """Hash of everything that determines the activations: model, the exact texts (so template too), truncation."""
    digest = hashlib.sha256(f"v{FORMAT_VERSION}|{model_name}|{max_length}|".encode())
    for text in texts:
        digest.update(text.encode("utf-8") + b"\x00")
    return digest.hexdigest()[:20]


def store_dir(model_name: str, texts: Sequence[str], max_length: int, layers: Sequence[int] | None = None) -> Path:
    """The cache folder of one (model, texts, template, truncation[, layer subset]) combination."""
    tag = model_name if layers is None else f"{model_name}|layers={sorted(set(layers))}"
    return cache_dir("activations", model_name) / cache_key(tag, texts, max_length)


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
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except ValueError as error:  # JSONDecodeError or UnicodeDecodeError: a truncated or overwritten manifest
        raise CacheError(f"{manifest_path}: unreadable ({error})") from None
    for layer in manifest["layers"]:
        path = directory / f"layer_{layer:03d}.safetensors"
        if not path.is_file() or path.stat().st_size != manifest["sizes"][str(layer)]:
            raise CacheError(f"{path}: missing or truncated (expected {manifest['sizes'][str(layer)]} bytes)")
    return ActivationStore(directory, manifest)


def _whole(path: Path, n_tensors: int) -> bool:
    """Whether a safetensors file exists and reads back whole with `n_tensors` tensors; a damaged one is logged."""
    if not path.is_file():
        return False
    try:
        with safe_open(path, framework="pt") as handle:
            found = len(list(handle.keys()))
        problem = None if found == n_tensors else f"{found} tensors, expected {n_tensors}"
    except (SafetensorError, OSError) as error:  # truncated or foreign file: the caller computes it again
        problem = str(error)
    if problem:
        _log.warning("%s: truncated or unreadable (%s); computing it again", path, problem)
    return problem is None


@torch.no_grad()
def forward_hooked(model: LoadedModel, batch: list[str], max_length: int, layers: Sequence[int],
                    reduce) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Run one batch (left padded, with its mask); `reduce(resid, mask)` → named tensors kept per layer."""
    enc = model.tokenizer(batch, return_tensors="pt", padding=True, padding_side="left", truncation=True,
                          max_length=max_length)
    mask = enc["attention_mask"]
    inputs = to_device(enc, model.device)
    kept: dict[str, torch.Tensor] = {}

    def make_hook(layer: int):
        def hook(module, args, output) -> None:  # noqa: ARG001 - PyTorch forward-hook signature
            resid = output[0] if isinstance(output, tuple) else output
            for name, value in reduce(resid.float(), inputs["attention_mask"].to(resid.device)).items():
                kept[f"{name}.{layer}"] = value.cpu()
        return hook

    # The unwrapped twin with plain PyTorch hooks: its block outputs are the bridge's hook_resid_post bit for bit
    # (tested), without the bridge's per-module wrappers. The decoder body runs alone: skipping the unembedding
    # saves most of the time for large vocabularies (Gemma-3: 262k tokens); nor are the blocks after the deepest
    # one asked for run (`models.run_blocks`).
    run_blocks(model.plain.base_model, model.blocks(), {layer: make_hook(layer) for layer in layers},
               input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    return kept, mask


def forward_pooled(model: LoadedModel, batch: list[str], max_length: int,
                    layers: Sequence[int]) -> dict[str, torch.Tensor]:
    """The given blocks' residual outputs for one batch, pooled three ways (`POOLINGS`)."""
    return forward_hooked(model, batch, max_length, layers, pool)[0]


def extract(model: LoadedModel, model_name: str, texts: Sequence[str], max_length: int = 128,
            batch_size: int = 64, cache_dtype: str = "float32", chunk_size: int = CHUNK_SIZE,
            progress: bool = True, layers: Sequence[int] | None = None,
            shard: Shard = Shard()) -> ActivationStore | None:
    """Extract every layer's pooled residuals for `texts`, resuming from finished chunks; return the store.

    Texts are sorted by token length so batches carry little padding; chunks of `chunk_size` texts are written
    atomically as they finish, then merged into one file per layer and a manifest (written last). With a
    `shard` i/n (n > 1), only every n-th chunk is computed and nothing is merged (returns None): run the shards,
    then one unsharded call, which finds their chunks and only merges. Memory beyond the model: one batch's
    hidden states and one chunk of pooled vectors (chunk_size × layers × 3 × d_model in `cache_dtype`); the merge
    streams each layer file from one chunk at a time, so nothing grows with the number of texts.
    """
    if not texts:
        raise ValueError("the list of texts is empty: nothing to extract")
    if cache_dtype not in _DTYPES:
        raise ValueError(f"unknown cache_dtype {cache_dtype!r}; use one of {sorted(_DTYPES)}")
    directory = store_dir(model_name, texts, max_length, layers)
    layers = range(model.n_layers) if layers is None else sorted(set(layers))
    if not layers or layers[0] < 0 or layers[-1] >= model.n_layers:
        raise ValueError(f"layers must be a non-empty subset of 0..{model.n_layers - 1}, got {list(layers)}")
    try:
        return open_store(directory)
    except CacheError as error:  # not finished, or damaged: (re)build below, keeping any whole chunks
        if (directory / "manifest.json").is_file():
            _log.warning("%s; rebuilding the cache", error)
    (directory / "chunks").mkdir(parents=True, exist_ok=True)
    lengths = [len(ids) for ids in model.tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]]
    order = np.argsort(lengths, kind="stable")
    chunk_paths = _chunk_paths(directory, len(texts), chunk_size)
    bar = tqdm(total=len(texts), desc=f"extract {model_name}", file=sys.stderr, disable=not progress)
    for c, path in enumerate(chunk_paths):
        rows = order[c * chunk_size:(c + 1) * chunk_size]
        if not shard.owns(c):
            continue
        if _whole(path, len(POOLINGS) * len(layers) + 1):
            bar.update(len(rows))
            continue
        start = time.perf_counter()
        parts: dict[str, list[torch.Tensor]] = {}
        for b in range(0, len(rows), batch_size):
            batch = [texts[i] for i in rows[b:b + batch_size]]
            for key, value in forward_pooled(model, batch, max_length, layers).items():
                parts.setdefault(key, []).append(value.to(_DTYPES[cache_dtype]))  # a chunk is held in cache dtype
            bar.update(len(batch))
        tensors = {k: torch.cat(v).contiguous() for k, v in parts.items()}
        tensors["rows"] = torch.as_tensor(rows, dtype=torch.int64)
        with atomic_path(path) as tmp:
            save_file(tensors, tmp, metadata={"seconds": f"{time.perf_counter() - start:.6f}"})
    bar.close()
    if shard.count > 1:
        return None  # map step only: one unsharded call afterwards merges (and computes any chunk still missing)
    return _merge_chunks(directory, model_name, texts, max_length, cache_dtype, chunk_paths, layers, model.d_model)


_SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float16: "F16"}


def _chunk_layer(path: Path, layer: int) -> dict[str, torch.Tensor]:
    """One layer's pooled vectors of one finished chunk (every pooling)."""
    with safe_open(path, framework="pt") as handle:
        return {pooling: handle.get_tensor(f"{pooling}.{layer}") for pooling in POOLINGS}


def _write_rows_streamed(target: Path, names: Sequence[str], n_rows: int, width: int, dtype: torch.dtype,
                         chunks: Iterable[tuple[torch.Tensor, dict[str, torch.Tensor]]]) -> None:
    """Write a safetensors file of `[n_rows, width]` tensors chunk by chunk, each chunk's rows written at their
    indices, atomically: memory holds one chunk, never the whole matrix (the bound of `extract`'s merge)."""
    itemsize = torch.empty(0, dtype=dtype).element_size()
    row_bytes, size = width * itemsize, n_rows * width * itemsize
    header = {name: {"dtype": _SAFETENSORS_DTYPES[dtype], "shape": [n_rows, width],
                     "data_offsets": [i * size, (i + 1) * size]} for i, name in enumerate(names)}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # the format aligns the data to 8 bytes
    start = 8 + len(blob)
    with atomic_path(target) as tmp, open(tmp, "r+b") as handle:
        handle.write(struct.pack("<Q", len(blob)) + blob)
        handle.truncate(start + len(names) * size)
        for rows, tensors in chunks:
            for i, name in enumerate(names):
                data = tensors[name].to(dtype).contiguous()
                if data.shape != (len(rows), width):
                    raise CacheError(f"{target}: a chunk's {name} has shape {tuple(data.shape)}, "
                                     f"expected ({len(rows)}, {width})")
                payload = data.view(torch.uint8).numpy()
                for row, line in zip(rows.tolist(), payload):
                    os.pwrite(handle.fileno(), line.tobytes(), start + i * size + row * row_bytes)


def _chunk_paths(directory: Path, n_texts: int, chunk_size: int) -> list[Path]:
    """The chunk files of an extraction of `n_texts` texts, `chunk_size` per chunk, in chunk order."""
    return [directory / "chunks" / f"chunk_{c:05d}.safetensors" for c in range(-(-n_texts // chunk_size))]


def _merge_chunks(directory: Path, model_name: str, texts: Sequence[str], max_length: int, cache_dtype: str,
                  chunk_paths: Sequence[Path], layers: Sequence[int], d_model: int) -> ActivationStore:
    """Merge finished chunks into one file per layer (original text order), write the manifest, drop chunks."""
    seconds = 0.0
    rows = []
    for path in chunk_paths:
        with safe_open(path, framework="pt") as handle:
            seconds += float(handle.metadata()["seconds"])
            rows.append(handle.get_tensor("rows"))
    rows_all = torch.cat(rows)
    if not torch.equal(rows_all.sort().values, torch.arange(len(texts))):  # e.g. shards with another chunk_size
        raise CacheError(f"{directory / 'chunks'}: the chunks do not cover the {len(texts)} texts exactly once; "
                         "delete the folder and extract again")
    sizes = {}
    for layer in layers:
        target = directory / f"layer_{layer:03d}.safetensors"
        _write_rows_streamed(target, POOLINGS, len(texts), d_model, _DTYPES[cache_dtype],
                             ((chunk_rows, _chunk_layer(path, layer)) for chunk_rows, path in zip(rows, chunk_paths)))
        sizes[str(layer)] = target.stat().st_size
    manifest = {
        "format_version": FORMAT_VERSION, "model": model_name, "n_texts": len(texts), "d_model": d_model,
        "layers": list(layers), "poolings": list(POOLINGS), "max_length": max_length,
        "cache_dtype": cache_dtype, "sizes": sizes, "extract_seconds": round(seconds, 3),
        "first_text": texts[0],
    }
    atomic_write_text(directory / "manifest.json", json.dumps(manifest, indent=1))
    shutil.rmtree(directory / "chunks", ignore_errors=True)
    return open_store(directory)


@dataclasses.dataclass(frozen=True)
class TokenActivations:
    """Per-token residuals of some layers: `acts[layer]` `[n_tokens, d]`, each token's text and position in it."""

    acts: dict[int, np.ndarray]
    owner: np.ndarray
    position: np.ndarray
    n_texts: int

    def tokens(self, layer: int, skip_first: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """One layer's token vectors and their text index, leaving out each text's first token if `skip_first`."""
        if layer not in self.acts:
            raise ValueError(f"layer {layer} was not extracted; these token activations hold layers {sorted(self.acts)}")
        keep = self.position > 0 if skip_first else np.ones(len(self.position), bool)
        return self.acts[layer][keep], self.owner[keep]

    def pooled_mean(self, layer: int, skip_first: bool = False) -> np.ndarray:
        """`[n_texts, d]` mean of each text's tokens (with the first token: the paper's mean pooling)."""
        x, owner = self.tokens(layer, skip_first)
        sums = np.zeros((self.n_texts, x.shape[1]))
        np.add.at(sums, owner, x)
        counts = np.bincount(owner, minlength=self.n_texts)
        if (counts == 0).any():
            raise ValueError(f"{int((counts == 0).sum())} text(s) have no token left to pool (one-token texts)")
        return (sums / counts[:, None]).astype(np.float32)


def _real_tokens(resid: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """The residuals of real (unpadded) tokens, text by text, positions ascending: `[n_real, d]`."""
    return {"tokens": resid[mask.bool()]}


def token_cache_path(model_name: str, texts: Sequence[str], layers: Sequence[int], max_length: int) -> Path:
    """The one file `token_activations` caches a (model, texts, layers, truncation) combination in."""
    key = cache_key(f"{model_name}|{sorted(set(layers))}", texts, max_length)
    return cache_dir("tokens", model_name) / f"{key}.safetensors"


def token_cache_whole(model_name: str, texts: Sequence[str], layers: Sequence[int], max_length: int) -> bool:
    """Whether `token_activations` would find these token activations cached and whole."""
    return _whole(token_cache_path(model_name, texts, layers, max_length), len(set(layers)) + 2)


def token_activations(model: LoadedModel, model_name: str, texts: Sequence[str], layers: Sequence[int],
                      max_length: int = 128, batch_size: int = 64, progress: bool = True) -> TokenActivations:
    """Every real token's residual after the given blocks for `texts`, cached in one atomically written file.

    Meant for corpora of thousands of short texts (SAE training at token level); pooled extraction (`extract`)
    is the path for large corpora.
    """
    if not texts:
        raise ValueError("the list of texts is empty: nothing to extract")
    layers = sorted(set(layers))
    if not layers or layers[0] < 0 or layers[-1] >= model.n_layers:
        raise ValueError(f"layers must be a non-empty subset of 0..{model.n_layers - 1}, got {layers}")
    path = token_cache_path(model_name, texts, layers, max_length)
    if not _whole(path, len(layers) + 2):
        parts: dict[str, list[torch.Tensor]] = {}
        for b in tqdm(range(0, len(texts), batch_size), desc=f"tokens {model_name}", file=sys.stderr,
                      disable=not progress):
            kept, mask = forward_hooked(model, list(texts[b:b + batch_size]), max_length, layers, _real_tokens)
            rows, cols = torch.nonzero(mask, as_tuple=True)
            kept["owner"] = rows + b
            kept["position"] = cols - (mask.shape[1] - mask.sum(1))[rows]  # left padding: first real token is 0
            for key, value in kept.items():
                parts.setdefault(key, []).append(value)
        tensors = {key: torch.cat(value).contiguous() for key, value in parts.items()}
        with atomic_path(path) as tmp:
            save_file(tensors, tmp)
    with safe_open(path, framework="pt") as handle:
        owner = handle.get_tensor("owner").numpy().copy()
        position = handle.get_tensor("position").numpy().copy()
        acts = {layer: handle.get_tensor(f"tokens.{layer}").numpy().copy() for layer in layers}
    if owner.max() != len(texts) - 1:
        raise CacheError(f"{path}: holds {owner.max() + 1} texts, expected {len(texts)}; delete it to re-extract")
    return TokenActivations(acts, owner, position, len(texts))


def store_finished(model_name: str, texts: Sequence[str], max_length: int, layers: Sequence[int] | None = None
                   ) -> bool:
    """Whether the pooled activations of `texts` (all layers, or `layers`) are extracted and merged."""
    try:
        open_store(store_dir(model_name, texts, max_length, layers))
        return True
    except CacheError:
        return False


def merge_finished(model_name: str, texts: Sequence[str], profile,
                   layers: Sequence[int] | None = None) -> ActivationStore | None:
    """Merge an extraction whose chunks are all written (e.g. by shards) without loading the model; None if a
    chunk is missing or damaged, so the caller extracts."""
    directory = store_dir(model_name, texts, profile.max_length, layers)
    paths = _chunk_paths(directory, len(texts), CHUNK_SIZE)
    if not all(path.is_file() for path in paths):
        return None
    with safe_open(paths[0], framework="pt") as handle:
        keys = [key for key in handle.keys() if key != "rows"]
        d_model = int(handle.get_slice(keys[0]).get_shape()[1])
    chunk_layers = sorted({int(key.rsplit(".", 1)[1]) for key in keys})
    if not all(_whole(path, len(POOLINGS) * len(chunk_layers) + 1) for path in paths):
        return None
    return _merge_chunks(directory, model_name, texts, profile.max_length, profile.cache_dtype, paths,
                         chunk_layers, d_model)


def ensure_activations(model_name: str, texts: Sequence[str], profile, model: LoadedModel | None = None,
                       progress: bool = True, layers: Sequence[int] | None = None,
                       shard: Shard = Shard()) -> ActivationStore | None:
    """The finished cache for `texts` (all layers, or `layers`) under a profile, extracting only if needed (with a
    `shard`, only its chunks, returning None; see `extract`)."""
    try:
        return open_store(store_dir(model_name, texts, profile.max_length, layers))
    except CacheError:
        merged = merge_finished(model_name, texts, profile, layers) if shard.count == 1 else None
        if merged is not None:
            return merged
        if model is None:
            from helpers.models import load_model

            model = load_model(model_name, dtype=profile.dtype, device=profile.device)
        return extract(model, model_name, texts, max_length=profile.max_length, batch_size=profile.batch_size,
                       cache_dtype=profile.cache_dtype, progress=progress, layers=layers, shard=shard)


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
    inputs = to_device(enc, model.device)
    _, cache = model.bridge.run_with_cache(inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                           names_filter=names)
    norms = np.stack([cache[name][0].float().norm(dim=-1).cpu().numpy() for name in names])
    tokens = model.tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    return tokens, norms
