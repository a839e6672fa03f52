"""Extraction's memory is bounded by a chunk, not by the data set: scaled-up synthetic runs (a stand-in model with
paper-like width, float16 cache) whose merged layers exceed the allowed growth in resident memory, at two sizes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

WIDTH, N_LAYERS, CHUNK = 2048, 4, 256
SMALL, LARGE = 6000, 12000  # texts; a merged layer of the large run (3 poolings, float16) is 141 MiB
ALLOWED_MB = 100  # resident growth allowed for the large run: a chunk (12 MiB) plus a fixed ~65 MiB of start-up
DRIVER = f"""
import json, sys, types
import torch
from helpers import activations
from helpers.ledger import peak_rss_mb, rss_mb

WIDTH, N_LAYERS, CHUNK = {WIDTH}, {N_LAYERS}, {CHUNK}
N_TEXTS = int(sys.argv[1])
texts = [f"synthetic text {{i}} " + "word " * (i % 17) for i in range(N_TEXTS)]
generator = torch.Generator().manual_seed(0)

def forward_pooled(model, batch, max_length, layers):
    # a stand-in forward: seeded vectors of the model's width for every layer and pooling
    return {{f"{{p}}.{{l}}": torch.randn(len(batch), WIDTH, generator=generator)
            for l in layers for p in activations.POOLINGS}}

def tokenizer(batch, truncation, max_length):
    return {{"input_ids": [text.split() for text in batch]}}

activations.forward_pooled = forward_pooled
model = types.SimpleNamespace(n_layers=N_LAYERS, d_model=WIDTH, tokenizer=tokenizer)
rss_before = rss_mb()
store = activations.extract(model, "synthetic", texts, batch_size=64, cache_dtype="float16", chunk_size=CHUNK,
                            progress=False)
peak = peak_rss_mb()  # this process's own high-water mark, before reading anything back
rows = [store.load(layer, "mean")[[0, N_TEXTS // 2, N_TEXTS - 1], :3].tolist() for layer in range(N_LAYERS)]
print(json.dumps({{"growth_mb": peak - rss_before, "rows": rows, "sizes": store.manifest["sizes"]}}))
"""


def run(n_texts: int, root) -> dict:
    """The driver's report for a synthetic extraction of `n_texts` texts under the book root `root`."""
    env = {"BOOK_ROOT": str(root), "PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path),
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", DRIVER, str(n_texts)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_extraction_memory_grows_by_a_chunk_not_by_the_data_set(tmp_path):
    small, large = run(SMALL, tmp_path / "small"), run(LARGE, tmp_path / "large")
    layer_mb = 3 * LARGE * WIDTH * 2 / 2**20
    assert layer_mb > ALLOWED_MB, "a merged layer must exceed the allowed growth, or the test proves nothing"
    assert large["growth_mb"] < ALLOWED_MB, (
        f"extraction grew resident memory by {large['growth_mb']:.0f} MiB; a merged layer is {layer_mb:.0f} MiB")
    assert large["growth_mb"] - small["growth_mb"] < 0.1 * layer_mb, "doubling the texts must not add memory"
    assert all(size > 3 * LARGE * WIDTH * 2 for size in large["sizes"].values()), "every layer was written"
    rows = np.asarray(large["rows"])
    assert rows.shape == (N_LAYERS, 3, 3) and np.isfinite(rows).all() and rows.std() > 0.5, "standard normal draws"
