"""Shared fixtures: the repository root, the bundled model (loaded once), a tiny random Llama for fast tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("BOOK_ROOT", str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")


@pytest.fixture(scope="session")
def root() -> Path:
    """The repository root."""
    return ROOT


@pytest.fixture(scope="session")
def smollm2():
    """The bundled SmolLM2-135M-Instruct as a bridge (the float copy is cached under the repository's cache/)."""
    from helpers.models import load_model

    return load_model("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def tiny_model(smollm2):
    """A 2-layer random Llama with SmolLM2's tokenizer, wrapped like every book model (fast forward passes)."""
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM, LlamaConfig

    from helpers.models import LoadedModel, ModelSpec

    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=len(smollm2.tokenizer), max_position_embeddings=256)
    torch.manual_seed(0)
    hf = AutoModelForCausalLM.from_config(config).eval()
    bridge = TransformerBridge.boot_transformers("local/tiny-llama", hf_model=hf, tokenizer=smollm2.tokenizer,
                                                 device="cpu")
    spec = ModelSpec("tiny", "random", "local/tiny-llama", "Control", "test", "tiny")
    return LoadedModel(spec=spec, bridge=bridge, tokenizer=smollm2.tokenizer)
