"""Inference-time steering (spec §5.4): edit one block's residual output on every token of prompt and generation."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import torch
from sae_lens import SAE

from helpers.models import LoadedModel
from helpers.sae import on_covered_tokens, reconstruct

Edit = Callable[[torch.Tensor], torch.Tensor]  # maps token vectors [n, d] to their edited values


@dataclasses.dataclass(frozen=True)
class Decoding:
    """Decoding settings shared by baseline and steered runs (the original used different ones for each)."""

    max_new_tokens: int = 512
    do_sample: bool = True
    temperature: float = 0.7
    top_p: float = 0.9
    repetition_penalty: float = 1.1
    seed: int = 0


def sae_edit(sae: SAE, alpha: float, max_token_norm: float | None = None) -> Edit:
    """x ↦ x + α·(SAE(x) − x) on the tokens the SAE covers (secondary sinks above `max_token_norm` unchanged)."""
    rebuild = reconstruct(sae)
    return on_covered_tokens(lambda x: x + alpha * (rebuild(x) - x), max_token_norm)


def vector_edit(vector: torch.Tensor, alpha: float) -> Edit:
    """x ↦ x + α·v, the classic activation-addition control."""
    vector = torch.as_tensor(vector, dtype=torch.float32)
    return lambda x: x + alpha * vector


def steering_hook(edit: Edit, skip: torch.Tensor):
    """A TransformerLens hook applying `edit` to every position, except where `skip` is set during the prefill.

    `skip` `[batch, prompt_len]` marks padding and each prompt's first token (the attention sink); generated
    tokens (one position per call with a KV cache) are always edited.
    """
    def hook(resid: torch.Tensor, hook) -> torch.Tensor:  # noqa: ARG001 - TransformerLens hook signature
        keep = skip if resid.shape[1] == skip.shape[1] else torch.zeros(resid.shape[:2], dtype=torch.bool)
        edited = resid.clone()
        target = ~keep.to(resid.device)
        with torch.no_grad():
            edited[target] = edit(resid[target].float()).to(resid.dtype)
        return edited
    return hook


def chat_texts(model: LoadedModel, prompts: Sequence[str], system: str | None = None) -> list[str]:
    """Each prompt as a user turn (after an optional system turn) in the model's chat template, ready to answer."""
    texts = []
    for prompt in prompts:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        texts.append(model.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
    return texts


@torch.no_grad()
def generate(model: LoadedModel, texts: Sequence[str], decoding: Decoding, layer: int | None = None,
             edit: Edit | None = None, batch_size: int = 16) -> list[str]:
    """Responses to `texts` (already templated), optionally steered at block `layer`; hooks never outlive the call.

    Every batch is seeded from `decoding.seed` and its position, so baseline and steered runs draw the same
    random numbers.
    """
    if (layer is None) != (edit is None):
        raise ValueError("pass both layer and edit to steer, or neither for the baseline")
    if layer is not None and not 0 <= layer < model.n_layers:
        raise ValueError(f"layer {layer} out of range 0..{model.n_layers - 1}")
    tokenizer = model.tokenizer
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    responses = []
    for b in range(0, len(texts), batch_size):
        enc = tokenizer(list(texts[b:b + batch_size]), return_tensors="pt", padding=True, padding_side="left",
                        add_special_tokens=False)
        mask = enc["attention_mask"]
        skip = (mask == 0) | (mask.cumsum(1) == 1)
        hooks = [] if edit is None else [(f"blocks.{layer}.hook_resid_post", steering_hook(edit, skip))]
        torch.manual_seed(decoding.seed + b)
        sampling = ({"do_sample": True, "temperature": decoding.temperature, "top_p": decoding.top_p}
                    if decoding.do_sample else {"do_sample": False})
        with model.bridge.hooks(fwd_hooks=hooks):
            out = model.bridge.original_model.generate(
                **enc, max_new_tokens=decoding.max_new_tokens, repetition_penalty=decoding.repetition_penalty,
                pad_token_id=pad, **sampling)
        responses += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return responses


def mean_difference(x: torch.Tensor | np.ndarray, virtue: np.ndarray, vice: np.ndarray) -> torch.Tensor:
    """The classic steering vector: mean of the virtue rows minus mean of the vice rows."""
    x = torch.as_tensor(x, dtype=torch.float32)
    virtue, vice = torch.as_tensor(virtue, dtype=torch.bool), torch.as_tensor(vice, dtype=torch.bool)
    if not virtue.any() or not vice.any():
        raise ValueError("mean_difference needs at least one virtue row and one vice row")
    return x[virtue].mean(0) - x[vice].mean(0)
