"""`make gpu-check`, for a session lent a GPU: the colab-smoke book on that GPU with every module forward checked to
receive GPU tensors only (`models.expect_device`), then one colab-size step (a forward of a random Qwen3-0.6B-shaped
model) timed against the cost model's assumed throughput. Prints one JSON summary and writes it beside the run."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from helpers import cost, smoke
from helpers.models import EXPECT_DEVICE_ENV
from helpers.paths import atomic_write_text, project_root

COLAB_MODEL = "qwen3-0.6b"


def colab_step(batch: int = 32, seq: int = 128, repeats: int = 5) -> dict[str, float | str]:
    """Seconds of one forward of a randomly initialised model of `COLAB_MODEL`'s shape over `batch` × `seq` tokens
    in the dtype the colab profile picks on this GPU, its achieved TFLOP/s by the cost model's FLOP count, and what
    the cost model assumes a free T4 reaches."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen3Config

    from helpers.models import choose_dtype

    s = cost.shape(COLAB_MODEL)
    dtype = choose_dtype("auto", "cuda")
    config = Qwen3Config(vocab_size=s.vocab, hidden_size=s.d_model, intermediate_size=s.d_mlp,
                         num_hidden_layers=s.n_layers, num_attention_heads=s.n_heads, num_key_value_heads=s.n_kv_heads,
                         head_dim=s.head_dim, tie_word_embeddings=s.tied)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype)).to("cuda").eval()
    ids = torch.randint(0, s.vocab, (batch, seq), device="cuda")
    with torch.no_grad():
        model(ids)  # warm-up: kernels chosen, memory allocated
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            model(ids)
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / repeats
    flops = cost.forward(s, batch * seq, seq, logits=True)
    return {"model": COLAB_MODEL, "dtype": dtype, "tokens": batch * seq, "seconds": seconds,
            "achieved_tflops": flops / seconds / 1e12,
            "cost_model_t4_tflops": cost.ACHIEVED * cost.T4_PEAK / 1e12}


def main() -> None:
    """Command-line entry point: fail unless CUDA is available, then the checked smoke book and the timed step."""
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("gpu-check: no CUDA device here; it is for a machine with a GPU (make smoke runs on CPU)")
    os.environ[EXPECT_DEVICE_ENV] = "cuda"  # inherited by every chapter's kernel: a CPU tensor in a forward raises
    out = project_root() / "_build" / "smoke-gpu"
    started = time.perf_counter()
    results = smoke.run(out=out)
    summary = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
               "smoke_book_seconds": time.perf_counter() - started, "ledgers": len(list(results.glob("*.json"))),
               "every_forward_on": "cuda", "colab_step": colab_step()}
    atomic_write_text(Path(out) / "gpu-check.json", json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
