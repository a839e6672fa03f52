"""Inference-time steering (spec §5.4): edit one block's residual output on every token of prompt and generation."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from sae_lens import SAE

from helpers import sae as sae_module
from helpers import surgery
from helpers.models import LoadedModel, chat_prompt, model_device, to_device
from helpers.paths import atomic_write_text, cache_dir
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
    """x ↦ x + α·v, the classic activation-addition control (v taken to x's device)."""
    vector = torch.as_tensor(vector, dtype=torch.float32)
    return lambda x: x + alpha * vector.to(x.device)


def steering_hook(edit: Edit, skip: torch.Tensor):
    """A TransformerLens hook applying `edit` to every position, except where `skip` is set during the prefill.

    `skip` `[batch, prompt_len]` marks padding and each prompt's first token (the attention sink); generated
    tokens (one position per call with a KV cache) are always edited.
    """
    def hook(resid: torch.Tensor, hook) -> torch.Tensor:  # noqa: ARG001 - TransformerLens hook signature
        keep = skip if resid.shape[1] == skip.shape[1] else torch.zeros(resid.shape[:2], dtype=torch.bool,
                                                                        device=resid.device)
        edited = resid.clone()
        target = ~keep.to(resid.device)
        with torch.no_grad():
            edited[target] = edit(resid[target].float()).to(resid.dtype)
        return edited
    return hook


def chat_texts(model: LoadedModel, prompts: Sequence[str], system: str | None = None) -> list[str]:
    """Each prompt as a user turn (after an optional system turn) in the model's chat template, ready to answer."""
    return [chat_prompt(model.tokenizer, prompt, system) for prompt in prompts]


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
        enc = to_device(tokenizer(list(texts[b:b + batch_size]), return_tensors="pt", padding=True,
                                  padding_side="left", add_special_tokens=False), model.device)
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


SYSTEM = "You are a helpful assistant."  # the paper's system message, translated
CONDITIONS = ("alpha = 0", "post-surgery SAE", "pre-surgery SAE", "mean difference")


@dataclasses.dataclass(frozen=True)
class Condition:
    """One generation run: its name, the steered block (None: the baseline), the edit and a digest of its inputs."""

    name: str
    layer: int | None = None
    edit: Edit | None = None
    fingerprint: str = ""


def tensor_fingerprint(*tensors: torch.Tensor | float) -> str:
    """A short sha256 over tensors' float32 bytes (and plain numbers), naming what an edit computes."""
    digest = hashlib.sha256()
    for value in tensors:
        digest.update(torch.as_tensor(value, dtype=torch.float32).detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _sae_fingerprint(sae: SAE, alpha: float, max_token_norm: float | None) -> str:
    """The digest of an SAE edit: its weights, α and the sink threshold."""
    return tensor_fingerprint(sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec, alpha, max_token_norm or 0.0)


def layer_conditions(corpus: sae_module.Corpus, layer: int, settings: sae_module.SAESettings,
                     surgery_settings: surgery.SurgerySettings, identify_split: str, alpha: float) -> list[Condition]:
    """Chapter 11's four conditions at one layer: α = 0, the post- and pre-surgery SAE edits, and the mean
    virtue − vice difference scaled to the mean size of the SAE edit on the training tokens."""
    pre = sae_module.ensure_sae(corpus, layer, settings).sae
    post, _ = surgery.ensure_surgery(corpus, layer, settings, surgery_settings, identify_split)
    max_norm = corpus.max_token_norm(layer)
    x, owner = corpus.units(layer, "train")
    with torch.no_grad():
        x_t = torch.as_tensor(x, dtype=torch.float32, device=model_device(pre))
        edit_size = float((pre.decode(pre.encode(x_t)) - x_t).norm(dim=1).mean())
    train_rows = corpus.rows[corpus.rows["split"] == "train"].drop_duplicates("text_index")
    sentence = sae_module.segment_mean(x, owner, len(corpus.texts))[train_rows["text_index"].to_numpy()]
    direction = mean_difference(sentence, train_rows["m_virtue"].to_numpy() > 0, train_rows["m_vice"].to_numpy() > 0)
    vector = direction / direction.norm() * edit_size
    return [Condition("alpha = 0", layer, sae_edit(post.sae, 0.0, max_norm), _sae_fingerprint(post.sae, 0.0, max_norm)),
            Condition("post-surgery SAE", layer, sae_edit(post.sae, alpha, max_norm),
                      _sae_fingerprint(post.sae, alpha, max_norm)),
            Condition("pre-surgery SAE", layer, sae_edit(pre, alpha, max_norm), _sae_fingerprint(pre, alpha, max_norm)),
            Condition("mean difference", layer, vector_edit(vector, alpha), tensor_fingerprint(vector, alpha))]


def flames_generation(model: LoadedModel, profile, prompts: Sequence[str], seed: int = 0) -> tuple[list[str], Decoding]:
    """Chapter 11's inputs: the prompts in the model's chat template after `SYSTEM`, and the one shared decoding."""
    return chat_texts(model, prompts, system=SYSTEM), Decoding(max_new_tokens=profile.max_new_tokens, seed=seed)


def steer_layers(profile, n_layers: int) -> list[int]:
    """The profile's steering layers (`steer_layers`, or "all" = every SAE layer), each required to hold an SAE."""
    available = sae_module.sae_layers(profile, n_layers)
    layers = available if profile.steer_layers == "all" else list(profile.steer_layers)
    missing = sorted(set(layers) - set(available))
    if missing:
        raise ValueError(f"steer_layers {missing} have no SAE: add them to sae_layers of params/{profile.name}.yaml")
    return layers


def profile_conditions(corpus: sae_module.Corpus, profile, layers: Sequence[int], seed: int = 0) -> list[Condition]:
    """The baseline and, at every steering layer, the four conditions, with the profile's SAE and surgery settings."""
    settings = sae_module.settings_from_profile(profile, seed)
    surgery_settings = surgery.settings_from_profile(profile, seed)
    return [Condition("baseline")] + [c for layer in layers for c in layer_conditions(
        corpus, layer, settings, surgery_settings, profile.sae_identify_split, profile.steer_alpha)]


class MissingGenerations(FileNotFoundError):
    """A condition's responses are not in the cache and the caller asked not to generate them."""


def missing_saes(corpus: sae_module.Corpus, profile, layers: Sequence[int], seed: int = 0) -> list[int]:
    """The steering layers whose pre- or post-surgery SAE is not cached yet (their conditions would train it)."""
    settings = sae_module.settings_from_profile(profile, seed)
    surgery_settings = surgery.settings_from_profile(profile, seed)
    return [layer for layer in layers
            if not (sae_module.sae_dir(corpus, layer, settings) / "training.json").is_file()
            or not (surgery.surgery_dir(corpus, layer, settings, surgery_settings, profile.sae_identify_split)
                    / "training.json").is_file()]


def _generations_path(model: LoadedModel, texts: Sequence[str], decoding: Decoding, condition: Condition) -> Path:
    """The cache file of one condition's responses: a digest of model, texts, decoding and the edit."""
    key = hashlib.sha256(json.dumps([model.spec.name, list(texts), dataclasses.asdict(decoding), condition.name,
                                     condition.layer, condition.fingerprint]).encode()).hexdigest()[:20]
    return cache_dir("generations", model.spec.name) / f"{key}.json"


def _read_generations(path: Path, n_texts: int) -> tuple[list[str] | None, str]:
    """The cached responses at `path` (None if absent or unusable) and, if unusable, why."""
    if not path.is_file():
        return None, "not cached"
    try:
        responses = json.loads(path.read_text())["responses"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        return None, f"unreadable ({err})"
    if not isinstance(responses, list) or len(responses) != n_texts:
        return None, f"holds {len(responses) if isinstance(responses, list) else 'no'} responses for {n_texts} texts"
    return responses, ""


def cached_generations(model: LoadedModel, texts: Sequence[str], decoding: Decoding, condition: Condition
                       ) -> list[str]:
    """The cached responses of one condition, never generated here: MissingGenerations if they are not cached."""
    path = _generations_path(model, texts, decoding, condition)
    responses, problem = _read_generations(path, len(texts))
    if responses is None:
        where = f" at layer {condition.layer}" if condition.layer is not None else ""
        raise MissingGenerations(f"the {condition.name!r} responses{where}: {problem} ({path})")
    return responses


def ensure_generations(model: LoadedModel, texts: Sequence[str], decoding: Decoding, condition: Condition
                       ) -> list[str]:
    """The responses of one condition, generated once and cached under a digest of model, texts, decoding and edit."""
    path = _generations_path(model, texts, decoding, condition)
    responses, problem = _read_generations(path, len(texts))
    if responses is not None:
        return responses
    if path.is_file():
        print(f"{path}: {problem}; generating again")
    responses = generate(model, texts, decoding, condition.layer, condition.edit)
    atomic_write_text(path, json.dumps({"condition": condition.name, "layer": condition.layer,
                                        "responses": responses}) + "\n")
    return responses
