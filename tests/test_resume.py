"""An extraction killed with SIGKILL mid-run (as when `make book` is interrupted) leaves a cache that a rerun
finishes without recomputing the chunks written before the kill, and ends with the arrays of an uninterrupted run."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from safetensors import safe_open

from helpers import activations as act
from helpers.paths import cache_dir

MODEL = "smollm2-135m-instruct"
TEXTS = [f"Action {i} {'and more ' * (i % 3)}is morally" for i in range(12)]
SETTINGS = {"max_length": 32, "batch_size": 3, "chunk_size": 3, "progress": False}  # 4 chunks of one batch each
# The subprocess runs the same helper the chapters reach through `ensure_activations`, with a small chunk size.
DRIVER = """
import json, sys
from helpers import activations
from helpers.models import load_model
texts, settings = json.loads(open(sys.argv[1]).read())
activations.extract(load_model(sys.argv[2]), sys.argv[2], texts, **settings)
"""


def _stats(chunks: Path) -> dict[str, tuple[int, int]]:
    """Inode and mtime of every finished chunk file (finished chunks only ever appear by an atomic rename)."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(chunks.glob("chunk_*.safetensors"))}


def _kill_after_first_chunk(root: Path, tmp_path: Path) -> Path:
    """Start the extraction in a subprocess under `root`, SIGKILL it once a chunk is finished; return the chunks dir."""
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps([TEXTS, SETTINGS]))
    src = str(Path(act.__file__).resolve().parents[1])
    env = {**os.environ, "BOOK_ROOT": str(root), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    chunks = act.store_dir(MODEL, TEXTS, SETTINGS["max_length"]) / "chunks"
    log = tmp_path / "driver.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(inputs), MODEL], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while proc.poll() is None and not _stats(chunks) and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.kill()  # SIGKILL: no cleanup handler of the child runs
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, (f"the extraction ended before the kill (code {proc.returncode}):\n"
                                               f"{log.read_text()}")
    return chunks


def test_extraction_killed_mid_run_resumes_without_recomputing(smollm2, tmp_path, monkeypatch, caplog):
    root = tmp_path / "killed"
    (root / "cache").mkdir(parents=True)
    (root / "cache" / "models").symlink_to(cache_dir("models"))  # the float copy the smollm2 fixture made
    monkeypatch.setenv("BOOK_ROOT", str(root))
    chunks = _kill_after_first_chunk(root, tmp_path)

    finished = _stats(chunks)
    n_chunks = len(TEXTS) // SETTINGS["chunk_size"]
    assert 1 <= len(finished) < n_chunks, f"killed with {len(finished)} of {n_chunks} chunks finished"
    assert not (chunks.parent / "manifest.json").exists() and not list(chunks.parent.glob("layer_*"))
    for path in chunks.glob("chunk_*.safetensors"):
        assert act._whole(path, len(act.POOLINGS) * smollm2.n_layers + 1), f"{path.name} is not a whole chunk"
    others = [p.name for p in chunks.iterdir() if p.name not in finished]
    assert all(name.startswith(".") and name.endswith(".tmp") for name in others), others  # at most a temp file
    done_rows = 0
    for name in finished:
        with safe_open(chunks / name, framework="pt") as handle:
            done_rows += len(handle.get_tensor("rows"))

    forwarded, before_merge = [], {}
    real_forward, real_merge = act.forward_pooled, act._merge_chunks

    def counting_forward(model, batch, max_length, layers):
        forwarded.extend(batch)
        return real_forward(model, batch, max_length, layers)

    def snapshot_merge(directory, *args):
        before_merge.update(_stats(directory / "chunks"))
        return real_merge(directory, *args)

    monkeypatch.setattr(act, "forward_pooled", counting_forward)
    monkeypatch.setattr(act, "_merge_chunks", snapshot_merge)
    with caplog.at_level(logging.WARNING, logger="helpers.activations"):
        resumed = act.extract(smollm2, MODEL, TEXTS, **SETTINGS)
    assert not caplog.text, "the kill left a damaged file behind"
    assert len(forwarded) == len(TEXTS) - done_rows, "the rerun recomputed texts of chunks finished before the kill"
    assert {name: before_merge[name] for name in finished} == finished, "a chunk finished before the kill was rewritten"
    assert len(before_merge) == n_chunks and not chunks.exists()

    monkeypatch.setattr(act, "forward_pooled", real_forward)
    monkeypatch.setattr(act, "_merge_chunks", real_merge)
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path / "uninterrupted"))
    reference = act.extract(smollm2, MODEL, TEXTS, **SETTINGS)
    assert resumed.manifest["sizes"] == reference.manifest["sizes"]
    for layer in range(smollm2.n_layers):
        for pooling in act.POOLINGS:
            np.testing.assert_array_equal(resumed.load(layer, pooling), reference.load(layer, pooling))
