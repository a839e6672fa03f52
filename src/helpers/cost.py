"""Predicted cost of every chapter of a profile: FLOPs, seconds, peak RAM and GPU memory from the profile's knobs.

Each chapter is a small function below (`CHAPTERS`) that lists its work as `Step`s (FLOPs, where they run, the cache
that keeps their result) and its peak memory as `Phase`s of held arrays. Time on a `Machine` is FLOPs over its
throughput (decoding also bounded by weight streaming and per-layer launch latency) plus weight loading; memory is
the largest phase plus the runtime's own. The CPU gets two throughputs, both fitted to the last `ci` build's
ledgers: one for model work (forwards, SAE training, generation: BLAS-bound) from the per-step times the ledgers
record, one for host statistics (many small numpy / scikit-learn calls) from the chapters whose work is mostly
statistics (`meta.seconds`); the same ledgers' `meta.peak_rss_mb` check the memory formulas.

Usage: `python -m helpers.cost --profile colab [--measured DIR] [--readme]` prints the check against the ci
ledgers and the profile's predictions on its machine (fast: no model is loaded, nothing is benchmarked);
`make bench` stores the same under `cost_model` in `results/bench.json` and refreshes the README section.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
from collections.abc import Callable
from pathlib import Path

from helpers.paths import atomic_write_text, output_root, project_root, replace_between_markers
from helpers.profiles import Profile, load_profile

README_MARKERS = ("<!-- cost:start -->", "<!-- cost:end -->")
MODEL, HOST = "model", "host"  # where work runs / arrays live: with the model (the GPU if any), or numpy on the CPU
KERNEL, SERVER = "kernel", "server"  # the chapter's own process, or chapter 11's `transformers serve` judge
GB = 1e9


# ---------------------------------------------------------------------------------------------------- model shapes
@dataclasses.dataclass(frozen=True)
class Shape:
    """A decoder's published shape (config.json): what every FLOP and byte formula reads. MoE models list their
    routed experts per layer (`experts`) and how many each token uses (`active`, a shared expert counted in both)."""

    n_layers: int
    d_model: int
    d_mlp: int
    vocab: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    tied: bool
    experts: int = 1
    active: int = 1

    def attention_params(self) -> int:
        """Weights of one block's q, k, v and o projections."""
        q = self.d_model * self.n_heads * self.head_dim
        return 2 * q + 2 * self.d_model * self.n_kv_heads * self.head_dim

    def block_params(self, active_only: bool = False) -> int:
        """Weights of every block's linears (routers ignored); `active_only`: those one token runs through."""
        mlp = 3 * self.d_model * self.d_mlp * (self.active if active_only else self.experts)
        return self.n_layers * (self.attention_params() + mlp)

    def embedding_params(self) -> int:
        """Token embedding, plus the unembedding when it is not tied to it."""
        return self.vocab * self.d_model * (1 if self.tied else 2)

    def params(self) -> int:
        """Every weight (what memory holds)."""
        return self.block_params() + self.embedding_params()

    def token_flops(self, context: float, logits: bool) -> float:
        """Forward FLOPs of one token attending to `context` positions: 2 per active block weight, QKᵀ and AV
        (4·heads·head_dim·context per layer), and the unembedding (2·d·vocab) when the logits are computed."""
        attention = 4 * self.n_layers * self.n_heads * self.head_dim * context
        return 2 * self.block_params(active_only=True) + attention + (2 * self.d_model * self.vocab if logits else 0)


_QWEN3_VOCAB, _LLAMA3_VOCAB = 151_936, 128_256
_QWEN3_06B = Shape(28, 1024, 3072, _QWEN3_VOCAB, 16, 8, 128, True)  # ~0.6B (0.596B)
_QWEN3_4B = Shape(36, 2560, 9728, _QWEN3_VOCAB, 32, 8, 128, True)
_QWEN3_8B = Shape(36, 4096, 12288, _QWEN3_VOCAB, 32, 8, 128, False)
_QWEN3_14B = Shape(40, 5120, 17408, _QWEN3_VOCAB, 40, 8, 128, False)
_QWEN3_235B = Shape(94, 4096, 1536, _QWEN3_VOCAB, 64, 4, 128, False, experts=128, active=8)
_LLAMA31_8B = Shape(32, 4096, 14336, _LLAMA3_VOCAB, 32, 8, 128, False)
_LLAMA4_SCOUT = Shape(48, 5120, 8192, 202_048, 40, 8, 128, False, experts=17, active=2)  # 16 routed + 1 shared
_GPT_OSS_20B = Shape(24, 2880, 2880, 201_088, 64, 8, 64, False, experts=32, active=4)
_GPT_OSS_120B = Shape(36, 2880, 2880, 201_088, 64, 8, 64, False, experts=128, active=4)
SMOLLM2_135M = Shape(30, 576, 1536, 49_152, 9, 3, 64, True)
_QWEN3_TINY = Shape(4, 64, 128, 2048, 4, 2, 16, True)  # helpers.smoke's random stand-ins (colab-smoke)
# The one table of model shapes (every `helpers.models` registry name; the ci ones read from their config.json).
SHAPES: dict[str, Shape] = {
    "smollm2-135m-instruct": SMOLLM2_135M, "smollm2-135m-random-init": SMOLLM2_135M,
    "gemma3-270m": Shape(18, 640, 2048, 262_144, 4, 1, 256, True),
    "qwen3-0.6b-base": _QWEN3_06B, "qwen3-0.6b": _QWEN3_06B, "qwen3guard-gen-0.6b": _QWEN3_06B,
    "qwen3-tiny-base": _QWEN3_TINY, "qwen3-tiny": _QWEN3_TINY, "qwen3guard-tiny": _QWEN3_TINY,
    "qwen3-4b-base": _QWEN3_4B, "qwen3-4b": _QWEN3_4B, "qwen3guard-gen-4b": _QWEN3_4B,
    "qwen3-8b-base": _QWEN3_8B, "qwen3-8b": _QWEN3_8B, "qwen3guard-gen-8b": _QWEN3_8B,
    "qwen3-14b-base": _QWEN3_14B, "qwen3-14b": _QWEN3_14B,
    "qwen3-32b": Shape(64, 5120, 25600, _QWEN3_VOCAB, 64, 8, 128, False),
    "qwen3-235b-a22b": _QWEN3_235B, "qwen3-235b-a22b-instruct-2507": _QWEN3_235B,
    "llama-3.1-8b": _LLAMA31_8B, "llama-3.1-8b-instruct": _LLAMA31_8B, "llama-guard-3-8b": _LLAMA31_8B,
    "llama-4-scout-17b-16e": _LLAMA4_SCOUT, "llama-4-scout-17b-16e-instruct": _LLAMA4_SCOUT,
    "gpt-oss-20b": _GPT_OSS_20B, "gpt-oss-safeguard-20b": _GPT_OSS_20B,
    "gpt-oss-120b": _GPT_OSS_120B, "gpt-oss-safeguard-120b": _GPT_OSS_120B,
}


def shape(name: str) -> Shape:
    """The shape of a registry model; an unknown name raises listing the known ones."""
    if name not in SHAPES:
        raise KeyError(f"no shape for model {name!r}: add its config values to helpers.cost.SHAPES "
                       f"(known: {', '.join(sorted(SHAPES))})")
    return SHAPES[name]


def dtype_bytes(dtype: str) -> int:
    """Bytes per weight of a profile dtype (`auto` is 16-bit: bfloat16 or float16 by the GPU's capability)."""
    return {"float32": 4, "bfloat16": 2, "float16": 2, "auto": 2}[dtype]


# ------------------------------------------------------------------------------------------------------ data sizes
# Mean tokens (SmolLM2's tokenizer) per field of the bundled sets the chapters read; rows are the files' rows
# (tests/test_cost.py re-counts them and checks each mean against the characters). Chat templates add ~30 tokens.
BUNDLED: dict[str, dict[str, float]] = {
    "judge-validation.jsonl": {"rows": 189, "prompt": 20, "response": 29},
    "flames-sample.jsonl": {"rows": 63, "prompt": 20},
    "harm-pairs.jsonl": {"rows": 160, "prompt": 21, "compliant": 38, "refusal": 42},
    "benign-pairs.jsonl": {"rows": 150, "prompt": 10, "response": 37},
    "trivia.jsonl": {"rows": 100, "question": 9},
    "recognition.jsonl": {"rows": 80, "request": 20, "explanation": 12},
    "neutral-chat.jsonl": {"rows": 120, "prompt": 10, "response": 34},
    "em-code-pairs.jsonl": {"rows": 48, "task": 17, "insecure": 57, "secure": 60},
    "em-advice-pairs.jsonl": {"rows": 48, "question": 17, "wrong": 34, "right": 39},
    "toxic-reference.jsonl": {"rows": 100, "text": 15},
    "em-questions.jsonl": {"rows": 24, "question": 14, "aligned": 26, "misaligned": 25},
}
CHAT_TOKENS = 30  # a chat template's turn markers and default system turn (SmolLM2: 32; Qwen3 without thinking: ~15)
JUDGE_QUESTION_TOKENS = 60  # the local judge's question around a prompt and response (judge.QUESTIONS ...)
PAIRWISE_TOKENS = 90  # the paper's pairwise prompt around a request and two answers (judge_api.PAIRWISE_PROMPT)
PROMPT_TOKENS = 12.3  # "{action} is morally" (bundled actions, SmolLM2's tokenizer; Qwen3's is within a few %)
LEXICON_TOKENS = 4.6  # "{word} is morally" (MFD 2.0 4.4, MoralStrength 4.8)
FLAMES_ZH_TOKENS = 40  # an official (Chinese) Flames prompt in Qwen3's tokenizer: assumed, not measured here
# The bundled Social-Chem-101 sample as the ci build measured it (quota_scale 0.1): raw rows, sample rows,
# distinct prompts, SAE split rows, distinct corpus texts, covered training tokens (chapter 08's n_train).
BUNDLED_SOCIALCHEM = {"tsv_rows": 1815, "sample_rows": 1483, "prompts": 1294, "train_rows": 1658, "val_rows": 216,
                      "corpus_texts": 1552, "train_tokens": 15_457, "quota_scale": 0.1}
# The official file: ~355k rows; the paper's diagnosis sample (16,315 at quota 1) and SAE train split (201,023
# pooled rows; validation one eighth of that, the 80/10/10 cut).
OFFICIAL_SOCIALCHEM = {"tsv_rows": 355_000, "sample_rows": 16_315, "train_rows": 201_023, "val_rows": 25_128}
LEXICON_WORDS = {"mfd2": 2040, "moralstrength": 2656}  # distinct words of the full lexicons
OFFICIAL_FLAMES_PROMPTS = 1000


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much data a profile's chapters process: rows, texts and tokens, from its sources and knobs."""

    tsv_rows: int
    sample_rows: int
    prompts: int
    lexicon_words: dict[str, int]
    train_rows: int
    val_rows: int
    corpus_texts: int
    train_units: int  # what an SAE trains on: covered train tokens (sae_input tokens) or pooled train rows
    val_units: int
    identify_rows: int  # rows of chapter 09's identification split (its codes matrix)
    identify_units: int
    flames_prompts: int
    flames_tokens: float


def sizes(p: Profile) -> Sizes:
    """The data sizes of a profile: the bundled sample as measured, the official file from the paper's counts."""
    b = BUNDLED_SOCIALCHEM
    if p.socialchem_source == "bundled":
        scale = p.quota_scale / b["quota_scale"]
        tsv, sample, prompts = b["tsv_rows"], round(b["sample_rows"] * scale), round(b["prompts"] * scale)
        train, val, texts, train_tokens = b["train_rows"], b["val_rows"], b["corpus_texts"], b["train_tokens"]
    else:
        o = OFFICIAL_SOCIALCHEM
        tsv, sample = o["tsv_rows"], round(o["sample_rows"] * p.quota_scale)
        prompts = sample  # distinct actions ≤ rows (the bundled sample: 0.87 of them): an upper bound
        train, val = o["train_rows"], o["val_rows"]
        texts = round((train + val) * b["corpus_texts"] / (b["train_rows"] + b["val_rows"]))  # the bundled ratio
        train_tokens = round(texts * train / (train + val) * (PROMPT_TOKENS - 1))  # every token but the first
    val_tokens = round(train_tokens * val / train)
    if p.sae_input == "tokens":
        train_units, val_units = train_tokens, val_tokens
        identify_units = train_units if p.sae_identify_split == "train" else val_units
    else:  # one pooled vector per exploded row to train on; one per distinct text to encode
        train_units, val_units = train, val
        identify_units = round(texts * (train if p.sae_identify_split == "train" else val) / (train + val))
    cap = p.external_max_words or max(LEXICON_WORDS.values())
    if p.flames_source == "bundled":
        flames, flames_tokens = BUNDLED["flames-sample.jsonl"]["rows"], BUNDLED["flames-sample.jsonl"]["prompt"]
    else:
        flames, flames_tokens = OFFICIAL_FLAMES_PROMPTS, FLAMES_ZH_TOKENS
    return Sizes(tsv, sample, prompts, {k: min(cap, v) for k, v in LEXICON_WORDS.items()}, train, val, texts,
                 train_units, val_units, train if p.sae_identify_split == "train" else val, identify_units,
                 min(flames, p.flames_n_prompts or flames), flames_tokens)


# ----------------------------------------------------------------------------------------------- cost primitives
@dataclasses.dataclass(frozen=True)
class Step:
    """One piece of a chapter's work: FLOPs, where it runs (MODEL: the accelerator where there is one; HOST: numpy
    and scikit-learn on the CPU), the cache that keeps its result (None: redone on every run), the precision of
    model work (the profile dtype for a model's forwards, float32 for SAEs and chapter 13), the weight bytes it reads
    from disk (or the hub), and for decoding the number of sequential steps, the weight bytes each streams and the
    layers each launches."""

    name: str
    flops: float
    where: str = MODEL
    cache: str | None = None
    dtype: str = "float32"
    read_bytes: float = 0.0
    decode_steps: int = 0
    step_bytes: float = 0.0
    step_layers: int = 0


@dataclasses.dataclass(frozen=True)
class Hold:
    """Arrays held at a chapter's peak: bytes, whether they live with the model (GPU memory on a GPU machine) or
    on the host, and in which process (the chapter's kernel, or chapter 11's served judge)."""

    name: str
    bytes: float
    where: str = MODEL
    process: str = KERNEL


@dataclasses.dataclass(frozen=True)
class Phase:
    """One moment of a chapter and what it holds then; `cache` names the cache a phase only runs to fill."""

    name: str
    holds: tuple[Hold, ...]
    cache: str | None = None


@dataclasses.dataclass(frozen=True)
class ChapterCost:
    """A chapter's predicted work and memory phases."""

    chapter: str
    steps: tuple[Step, ...]
    phases: tuple[Phase, ...]

    def flops(self, warm: bool = False) -> float:
        """Total FLOPs; `warm`: without the steps whose result is cached."""
        return sum(s.flops for s in self.steps if not (warm and s.cache))


@dataclasses.dataclass(frozen=True)
class Outcomes:
    """Results a chapter's later work depends on: chapter 13's go (the filtered fine-tunes run only then) and
    whether the paper's pairwise judge passes validation (only then it judges every steered response)."""

    go: bool = True
    pairwise_judge_passes: bool = True


def forward(s: Shape, tokens: float, seq: float, logits: bool = False) -> float:
    """FLOPs of a forward pass over `tokens` tokens of sequences of length `seq` (causal: half attended)."""
    return tokens * s.token_flops(seq / 2, logits)


def training(s: Shape, tokens: float, seq: float, trained_share: float = 1.0) -> float:
    """FLOPs of forward + backward with the logits (backward ≈ 2× forward: activation and weight gradients; the
    weight half only for the trained share of the blocks)."""
    return forward(s, tokens, seq, logits=True) * (2 + trained_share)


def sae_training(d_in: int, d_sae: int, samples: float, epochs: int, val_samples: float = 0) -> float:
    """FLOPs of SAE training: 6 per weight per sample (2·d_in·d_sae weights, forward + backward), plus a
    validation encode and decode (4·d_in·d_sae per sample) every epoch."""
    return epochs * (12 * d_in * d_sae * samples + 4 * d_in * d_sae * val_samples)


def codes_bytes(rows: float, d_sae: int) -> float:
    """Bytes of a float32 codes matrix `[rows, d_sae]` (chapter 09's sentence codes)."""
    return 4 * rows * d_sae


def sae_training_bytes(d_in: int, d_sae: int, batch: int) -> float:
    """Float32 SAE training state: weights, gradients and Adam's two moments, plus a batch's pre-activations,
    codes and their gradients."""
    return 4 * (4 * 2 * d_in * d_sae + 4 * batch * d_sae)


def training_bytes(s: Shape, nbytes: int, batch: int, seq: float, trained_share: float = 1.0) -> float:
    """A fine-tuning step's memory beyond the weights: gradients and AdamW's two float32 moments of the trained
    weights, the saved activations (≈ 12·d + 3·d_mlp values and heads·seq attention weights per token and layer)
    and the float32 logits, their log-softmax and gradient."""
    trained = trained_share * s.params()
    saved = batch * seq * s.n_layers * (12 * s.d_model + 3 * s.d_mlp + s.n_heads * seq) * nbytes
    return trained * (nbytes + 8) + saved + logits_bytes(s, batch * seq, copies=3)


def logits_bytes(s: Shape, tokens: float, copies: int = 2) -> float:
    """Float32 logits over the vocabulary for `tokens` positions, `copies` of them (logits, log-softmax, grad)."""
    return 4 * tokens * s.vocab * copies


def kv_cache_bytes(s: Shape, nbytes: int, batch: int, seq: float) -> float:
    """The key/value cache of `batch` sequences of length `seq`."""
    return batch * seq * s.n_layers * 2 * s.n_kv_heads * s.head_dim * nbytes


def layers_of(choice: str | list[int], n_layers: int) -> int:
    """How many layers a profile's layer choice (`all` or a list) names."""
    return n_layers if choice == "all" else len(choice)


# ------------------------------------------------------------------------------------------------------ chapters
FRAME_BYTES_PER_ROW = 4500  # the raw, cleaned and exploded Social-Chem frames: ~20 text columns of Python strings
HDBSCAN_FLOPS = 5  # per pair of rows and PCA dimension: k-NN core distances, then Prim's tree over all pairs
PCA_SHARE = 1 / 3  # PCA components kept for 95 % variance, as a share of d (1 to 292 of 576 on ci's layers)
RIDGE_ALPHAS, PROBE_EPOCHS, GEN_BATCH = 5, 100, 16  # sklearn alphas, probe epochs (at most), generation batch
CHUNK_TEXTS = 512  # activations.CHUNK_SIZE: pooled vectors held before they are written


def _frame(s: Sizes) -> Hold:
    """The Social-Chem frames every chapter from chapter.start holds."""
    return Hold("Social-Chem frames", s.tsv_rows * FRAME_BYTES_PER_ROW, HOST)


def _weights(name: str, nbytes: int, process: str = KERNEL) -> Hold:
    """A model's weights."""
    return Hold(f"{name} weights", shape(name).params() * nbytes, MODEL, process)


def _load(names: list[str], nbytes: int, cache: str | None = None) -> Step:
    """Reading models' weights (a step without FLOPs); `cache`: only needed to fill that cache."""
    return Step(f"load {', '.join(names)}", 0.0, cache=cache, read_bytes=sum(shape(n).params() for n in names) * nbytes)


def _lexicon_extraction(p: Profile, lexicon: str, s: Sizes) -> list[Step]:
    """Pooled activations of a lexicon's words through every model (cached: chapter 03 for MFD 2.0, chapter 04 for
    MoralStrength; the later chapters reuse them)."""
    words = s.lexicon_words[lexicon]
    return [Step(f"{lexicon} words through {name}", forward(shape(name), words * LEXICON_TOKENS, LEXICON_TOKENS),
                 cache=f"{lexicon} activations", dtype=p.dtype) for name in p.models]


def _diagnosis(p: Profile, s: Sizes, chapter: str, per_layer: Callable[[Shape, int], list[Step]],
               steps: list[Step]) -> ChapterCost:
    """A diagnosis chapter (03–06): `per_layer(shape, n_layers)` of each model, held arrays of one layer at a time."""
    for name in p.models:
        steps += per_layer(shape(name), layers_of(p.layers, shape(name).n_layers))
    d = max(shape(name).d_model for name in p.models)
    nbytes = dtype_bytes(p.dtype)
    layer = Hold("one layer (all texts, float32) and the sample's centred float64 copies",
                 4 * s.prompts * d + 2 * 8 * s.sample_rows * d, HOST)
    phases = [Phase("statistics", (_frame(s), layer))]
    if any(step.cache for step in steps):  # the chapter that extracts a lexicon loads each model in turn to do it
        largest = max(p.models, key=lambda name: shape(name).params())
        steps.append(_load(list(p.models), nbytes, "lexicon activations"))
        phases.append(Phase("lexicon extraction", (_frame(s), _weights(largest, nbytes)), cache="lexicon activations"))
    return ChapterCost(chapter, tuple(steps), tuple(phases))


def ch01(p: Profile, s: Sizes, o: Outcomes) -> ChapterCost:
    """Read, clean and sample Social-Chem-101: no model work."""
    return ChapterCost("01_moral_vectors", (), (Phase("frames", (_frame(s),)),))


def ch02(p: Profile, s: Sizes, o: Outcomes) -> ChapterCost:
    """Every model loaded at once; each extracts the pooled residuals of every prompt (cached), then norms and
    mean pairwise cosines per layer and pooling (O(n·d) each)."""
    nbytes = dtype_bytes(p.dtype)
    steps = [_load(list(p.models), nbytes)]
    for name in p.models:
        m = shape(name)
        steps.append(Step(f"extract {name}", forward(m, s.prompts * PROMPT_TOKENS, PROMPT_TOKENS),
                          cache="activations", dtype=p.dtype))
        steps.append(Step(f"norms and cosines {name}", 3 * 10 * s.prompts * m.d_model * m.n_layers, HOST))
    d_max, l_max = (max(shape(n).d_model for n in p.models), max(shape(n).n_layers for n in p.models))
    chunk = Hold("a chunk of pooled vectors", CHUNK_TEXTS * l_max * 3 * d_max * dtype_bytes(p.cache_dtype), HOST)
    holds = (_frame(s), *(_weights(name, nbytes) for name in p.models), chunk)
    return ChapterCost("02_activations", tuple(steps), (Phase("every model loaded", holds),))


def ch03(p: Profile, s: Sizes, o: Outcomes) -> ChapterCost:
    """Per layer: category centres and cosines (paper recipe and three variants, ~4·n·d each) and the batched
    permutation null (an averaging matrix times the rows per shuffle: 20·n·d); MFD 2.0 words extracted (cached)."""
    n, w = s.sample_rows, s.lexicon_words["mfd2"]
    return _diagnosis(p, s, "03_categorical", lambda m, L: [
        Step("centres and cosines", L * (4 * 4 * n + 4 * w) * m.d_model, HOST),
        Step("permutation null", L * p.n_permutations * 20 * n * m.d_model, HOST)], _lexicon_extraction(p, "mfd2", s))


def ch04(p: Profile, s: Sizes, o: Outcomes) -> ChapterCost:
    """Per layer: cosines of every row to ten centres and their Spearman ρ (paper and held-out recipes, three
    variants, MoralStrength words) and both batched nulls (centres, then one product with every shuffle's centres:
    40·n·d per shuffle); MoralStrength words extracted (cached)."""
    n, w = s.sample_rows, s.lexicon_words["moralstrength"]
    return _diagnosis(p, s, "04_gradient", lambda m, L: [
        Step("cosines to centres", L * (5 * n + w) * 20 * m.d_model, HOST),
        Step("permutation nulls", L * 2 * p.n_permutations * 40 * n * m.d_model, HOST)],
        _lexicon_extraction(p, "moralstrength", s))


def ch05(p: Profile, s: Sizes, o: Outcomes) -> ChapterCost:
    """Per layer, recipe and variant (four) and for the MFD 2.0 words: full PCA (4·n·d²) and HDBSCAN over the
    components kept (5·n²·k, k = d/3); the label-shuffle ARI nulls are O(n) each and left out."""
    n, w = s.sample_rows, s.lexicon_words["mfd2"]

    def per_layer(m: Shape, L: int) -> list[Step]:
        k = PCA_SHARE * m.d_model
        pca = L * (4 * 4 * n * m.d_model ** 2 + 4 * w * m.d_model ** 2)
        return [Step("PCA", pca, HOST), Step("HDBSCAN", L * HDBSCAN_FLOPS * k * (4 * n ** 2 + w ** 2), HOST)]
    return _diagnosis(p, s, "05_structural", per_layer, [])


def ch06(p: Profile, s: Sizes, o: Outcomes) -> ChapterCost:
    """Ridge probes (five alphas, each X·Xᵀ and a Cholesky solve: 2·n·d² + d³/3) at every layer for the recipe,
    three variants and the MoralStrength words, plus `n_permutations` at the best layer; the gradient-trained probe
    (up to 100 epochs, 6·n·d·10 each) at every layer plus `n_permutations_probe` shuffles."""
    n_train, w = 0.7 * s.sample_rows, 0.7 * s.lexicon_words["moralstrength"]

    def per_layer(m: Shape, L: int) -> list[Step]:
        d = m.d_model
        ridge = lambda rows: RIDGE_ALPHAS * (2 * rows * d ** 2 + d ** 3 / 3)  # noqa: E731
        return [Step("ridge probes", (4 * L + p.n_permutations) * ridge(n_train) + L * ridge(w), HOST),
                Step("trained probes", (L + p.n_permutations_probe) * PROBE_EPOCHS * 6 * n_train * d * 10, HOST)]
    return _diagnosis(p, s, "06_dimensional", per_layer, [])


def ch07(p: Profile, s: Sizes, o: Outcomes) -> ChapterCost:
    """Reads the ledgers of 03–06: no array work."""
    return ChapterCost("07_across_models", (), ())


def _sae_dims(p: Profile) -> tuple[Shape, int, int, int]:
    """The SAE model's shape, d_in, d_sae and the number of SAE layers."""
    m = shape(p.sae_model)
    return m, m.d_model, p.sae_expansion * m.d_model, layers_of(p.sae_layers, m.n_layers)


def _corpus(p: Profile, s: Sizes) -> Hold:
    """The SAE corpus as a chapter holds it: every token of every SAE layer (tokens input), or one layer's pooled
    vectors of every corpus text."""
    m, d, _, L = _sae_dims(p)
    if p.sae_input == "tokens":
        return Hold("token activations of the SAE layers", 4 * (s.train_units + s.val_units) * L * d, HOST)
    return Hold("one layer's pooled corpus vectors", 4 * s.corpus_texts * d, HOST)


def _sentence_codes(p: Profile, s: Sizes, units: int, rows: int) -> Hold:
    """`Corpus.sentence_codes`' transient arrays: the codes of every unit, their mean per corpus text, the split's
    rows of it and its float32 copy."""
    _, _, D, _ = _sae_dims(p)
    return Hold("sentence codes (units, texts, rows ×2)", codes_bytes(units + s.corpus_texts + 2 * rows, D), HOST)


def ch08(p: Profile, s: Sizes, o: Outcomes) -> ChapterCost:
    """The SAE corpus extracted (cached), one SAE trained per layer (cached), then per layer the validation FVU and
    two splices (reconstruction, mean ablation), each a clean and a patched forward with logits over
    `sae_splice_texts`; a token profile also trains and reports a pooled SAE at its middle layer."""
    m, d, D, L = _sae_dims(p)
    splice_tokens = p.sae_splice_texts * PROMPT_TOKENS
    report = 4 * d * D * s.val_units + 4 * forward(m, splice_tokens, PROMPT_TOKENS, logits=True)
    steps = [Step("extract the corpus", forward(m, s.corpus_texts * PROMPT_TOKENS, PROMPT_TOKENS), cache="corpus",
                  dtype=p.dtype),
             Step("train SAEs", L * sae_training(d, D, s.train_units, p.sae_epochs, s.val_units), cache="saes"),
             Step("FVU and splices", L * report, dtype=p.dtype)]
    if p.sae_input == "tokens":
        steps += [Step("train the pooled SAE", sae_training(d, D, s.train_rows, p.sae_epochs, s.val_rows),
                       cache="saes"),
                  Step("report the pooled SAE", 4 * d * D * s.val_rows + 4 * forward(m, splice_tokens, PROMPT_TOKENS,
                                                                                       logits=True), dtype=p.dtype)]
    nbytes = dtype_bytes(p.dtype)
    training_data = Hold("training vectors and their centred copy", 2 * 4 * s.train_units * d, HOST)
    train = Phase("SAE training", (_frame(s), _corpus(p, s), training_data, _weights(p.sae_model, nbytes),
                                   Hold("SAE training state", sae_training_bytes(d, D, p.sae_batch_size)),
                                   Hold("centred training vectors on the device", 4 * s.train_units * d)), cache="saes")
    splice = Phase("splices", (_frame(s), _corpus(p, s), _weights(p.sae_model, nbytes),
                               Hold("clean and patched logits of a batch", logits_bytes(m, 32 * PROMPT_TOKENS, 4))))
    return ChapterCost("08_sae", (_load([p.sae_model], nbytes), *steps), (train, splice))


def _identify(rows: int, d_sae: int, n_perm: int) -> float:
    """Chapter 09's identification and its label-shuffle null: standardised codes, their correlations with the ten
    dimensions and the poles (≈ 32 FLOPs per code), once plus once per shuffle."""
    return (1 + n_perm) * 32 * rows * d_sae


def ch09(p: Profile, s: Sizes, o: Outcomes) -> ChapterCost:
    """Per SAE layer: the identification split's sentence codes (encode 2·d·D per unit), the identification and its
    `n_permutations` null; the codes of every layer stay in memory (`codes`), with one layer's transients."""
    m, d, D, L = _sae_dims(p)
    steps = (Step("encode the identification split", L * 2 * d * D * s.identify_units),
             Step("identify and null", L * _identify(s.identify_rows, D, p.n_permutations), HOST))
    holds = (_frame(s), _corpus(p, s), _weights(p.sae_model, dtype_bytes(p.dtype)),
             Hold("codes of every SAE layer", L * codes_bytes(s.identify_rows, D), HOST),
             _sentence_codes(p, s, s.identify_units, s.identify_rows))
    return ChapterCost("09_moral_features", (_load([p.sae_model], dtype_bytes(p.dtype)), *steps),
                       (Phase("codes", holds),))


def ch10(p: Profile, s: Sizes, o: Outcomes) -> ChapterCost:
    """Per SAE layer, surgery (cached): the identification (as chapter 09, no null) and `surgery_epochs` passes over
    the train units (frozen codes and reconstruction without gradients: 4·d·D per unit) with a validation pass
    each; then before and after: validation codes, identification and FVU."""
    m, d, D, L = _sae_dims(p)
    surgery = p.surgery_epochs * 4 * d * D * (s.train_units + s.val_units)
    val_texts = round(s.corpus_texts * s.val_rows / (s.train_rows + s.val_rows))
    val_units = s.val_units if p.sae_input == "tokens" else val_texts
    steps = (Step("surgery identification", L * (2 * d * D * s.identify_units), cache="surgery"),
             Step("surgery identification statistics", L * _identify(s.identify_rows, D, 0), HOST, cache="surgery"),
             Step("surgery fine-tune", L * surgery, cache="surgery"),
             Step("before/after codes and FVU", L * 2 * (2 * d * D * val_units + 4 * d * D * s.val_units)),
             Step("before/after identification", L * 2 * _identify(s.val_rows, D, 0), HOST))
    nbytes = dtype_bytes(p.dtype)
    holds = (_frame(s), _corpus(p, s), _weights(p.sae_model, nbytes),
             Hold("surgery's training units", 4 * s.train_units * d, HOST),
             _sentence_codes(p, s, s.identify_units, s.identify_rows))
    return ChapterCost("10_surgery", (_load([p.sae_model], nbytes), *steps), (Phase("surgery", holds),))


def ch11(p: Profile, s: Sizes, o: Outcomes) -> ChapterCost:
    """The judges validated on the labelled responses (an embedding to `judge_layer` and three zero-shot reads with
    logits each); per steering layer the mean-difference direction (every train unit through the SAE); 1 + 4 per
    layer generations of every Flames prompt (cached, decoding bounded by weight streaming and launches); their
    scores (cached); the paper's pairwise judge, when served locally, on the validation pairs and, if it passes,
    on every steered response (10 tokens per call, one call at a time; a remote API's time is not modelled)."""
    m, d, D, _ = _sae_dims(p)
    j, steer = shape(p.judge_model), layers_of(p.steer_layers, m.n_layers)
    nbytes = dtype_bytes(p.dtype)
    val = BUNDLED["judge-validation.jsonl"]
    judged = JUDGE_QUESTION_TOKENS + CHAT_TOKENS + val["prompt"] + val["response"]
    embed_share = (p.judge_layer + 1) / j.n_layers
    rows = min(val["rows"], 3 * (p.judge_validation_prompts or val["rows"]))  # three labelled responses a prompt
    validation = rows * (embed_share * forward(j, judged, judged) + 3 * forward(j, judged, judged, logits=True))
    conditions, n = 1 + 4 * steer, s.flames_prompts
    prompt = CHAT_TOKENS + 20 + s.flames_tokens  # chat template, steering.SYSTEM, the Flames prompt
    generation = conditions * n * (prompt * m.token_flops(prompt / 2, False) + p.max_new_tokens * (
        m.token_flops(prompt + p.max_new_tokens / 2, True) + 4 * d * D))
    response = JUDGE_QUESTION_TOKENS + CHAT_TOKENS + s.flames_tokens + p.max_new_tokens
    scoring = conditions * n * (embed_share * forward(j, response, response) + 3 * forward(j, response, response, True))
    pair = PAIRWISE_TOKENS + CHAT_TOKENS + val["prompt"] + 2 * val["response"]
    calls = 2 * rows // 3 + (2 * n * steer if o.pairwise_judge_passes else 0)
    served = [p.judge_model] if p.judge_api_url == "serve" else []
    steps = (_load([p.sae_model, p.judge_model, *served], nbytes),
             Step("validate the judges", validation, dtype=p.dtype),
             Step("mean-difference directions", steer * 4 * d * D * s.train_units),
             Step("generate", generation, cache="generations", dtype=p.dtype,
                  decode_steps=conditions * math.ceil(n / GEN_BATCH) * p.max_new_tokens,
                  step_bytes=m.params() * nbytes, step_layers=m.n_layers),
             Step("score the generations", scoring, cache="scores", dtype=p.dtype),
             *(Step("pairwise judge (served)", calls * (forward(j, pair, pair) + 10 * j.token_flops(pair, True)),
                    dtype=p.dtype, decode_steps=calls * 10, step_bytes=j.params() * nbytes, step_layers=j.n_layers)
               for _ in served))
    generating = (_frame(s), _corpus(p, s), _weights(p.sae_model, nbytes), _weights(p.judge_model, nbytes),
                  Hold("a layer's two SAEs", 2 * 4 * 2 * d * D),
                  Hold("KV cache and logits of a generation batch", kv_cache_bytes(
                      m, nbytes, GEN_BATCH, prompt + p.max_new_tokens) + logits_bytes(m, GEN_BATCH, 2)))
    direction = (_frame(s), _corpus(p, s), _weights(p.sae_model, nbytes), _weights(p.judge_model, nbytes),
                 Hold("train units and their codes", 4 * s.train_units * (d + D)))
    judging = generating + tuple(_weights(name, nbytes, SERVER) for name in served)
    return ChapterCost("11_steering_flames", steps, (Phase("mean-difference direction", direction),
                                                     Phase("generation and the served judge", judging)))


def ch12(p: Profile, s: Sizes, o: Outcomes) -> ChapterCost:
    """Gradient sums (forward + backward with logits) on the harmful score pairs, their refusals, the benign
    preserve pairs (one at a time) and the trivia scoring pairs; seven evaluations (held-out NLLs, perplexity of
    the paragraphs, trivia answers of 12 tokens, harm detection, explanations); the q sweep and the per-type
    transfer (held-out NLLs). At the peak: five block-sized score and gradient-sum tensors beside the weights (the
    preserve scores, the harm gradients and scores, a control's gradients and scores)."""
    m, nbytes = shape(p.prune_model), dtype_bytes(p.dtype)
    harm, benign = BUNDLED["harm-pairs.jsonl"], BUNDLED["benign-pairs.jsonl"]
    trivia, recognition = BUNDLED["trivia.jsonl"], BUNDLED["recognition.jsonl"]
    harm_seq, refusal_seq = harm["prompt"] + harm["compliant"], harm["prompt"] + harm["refusal"]
    benign_seq, trivia_seq = benign["prompt"] + benign["response"], trivia["question"] + 6
    def n(count: int) -> int:  # a set's rows at the profile's prune_share
        return math.ceil(p.prune_share * count)

    gradients = (training(m, n(100) * harm_seq, harm_seq) + training(m, n(100) * refusal_seq, refusal_seq)
                 + training(m, n(120) * benign_seq, benign_seq) + training(m, n(50) * trivia_seq, trivia_seq))
    asked = min(p.prune_n_trivia or 50, 50)
    question = CHAT_TOKENS + trivia["question"] + 6
    detect = CHAT_TOKENS + 15 + recognition["request"]
    explain = 8 + recognition["request"] + recognition["explanation"]
    held_out = forward(m, n(60) * harm_seq, harm_seq, True) + forward(m, n(30) * benign_seq, benign_seq, True)
    evaluation = (held_out + forward(m, n(40) * 86, 86, True) + forward(m, asked * question, question, True)
                  + asked * 12 * m.token_flops(question + 6, True) + forward(m, n(80) * detect, detect, True)
                  + forward(m, n(40) * explain, explain, True))
    sweep = 2 * len(p.prune_q_sweep) * held_out + 5 * forward(m, n(60) * harm_seq, harm_seq, True)
    block = m.block_params() * nbytes
    holds = (_frame(s), _weights(p.prune_model, nbytes), Hold("gradients of the block weights", block),
             Hold("gradient sums and scores (5 block-sized tensors)", 5 * block),
             Hold("a batch's logits and saved activations", training_bytes(m, nbytes, 8, refusal_seq, 0)))
    steps = (Step("gradient sums", gradients, dtype=p.dtype),
             Step("seven evaluations", 7 * evaluation, dtype=p.dtype,
                  decode_steps=7 * math.ceil(asked / GEN_BATCH) * 12, step_bytes=m.params() * nbytes,
                  step_layers=m.n_layers),
             Step("q sweep and transfer", sweep, dtype=p.dtype))
    return ChapterCost("12_harmful_weights", (_load([p.prune_model], nbytes), *steps), (Phase("scores", holds),))


def ch13(p: Profile, s: Sizes, o: Outcomes) -> ChapterCost:
    """The geometry model in float32: response residuals of the 412 chat examples, a TopK SAE per studied layer
    (cached; every fifth token held out), codes and the frequency-matched nulls (2·k²·d per draw, five domain
    subsets per layer), two narrow fine-tunes (four more on half the inducing set on a go), each followed by the
    misalignment proxy and the neutral residuals."""
    m, L = shape(p.geometry_model), len(p.geometry_layers)
    d, D = m.d_model, p.geometry_sae_expansion * m.d_model
    code, advice = BUNDLED["em-code-pairs.jsonl"], BUNDLED["em-advice-pairs.jsonl"]
    neutral, toxic = BUNDLED["neutral-chat.jsonl"], BUNDLED["toxic-reference.jsonl"]
    # (examples, mean prompt and response tokens) of the four sets; the pairs are half code, half advice
    sets = {"neutral": (120, neutral["prompt"], neutral["response"]),
            "inducing": (96, (code["task"] + advice["question"]) / 2, (code["insecure"] + advice["wrong"]) / 2),
            "control": (96, (code["task"] + advice["question"]) / 2, (code["secure"] + advice["right"]) / 2),
            "toxic": (100, 8, toxic["text"])}  # geometry.TOXIC_PROMPT: 8 tokens
    seq = {k: CHAT_TOKENS + prompt + response for k, (_, prompt, response) in sets.items()}
    tokens = {k: n * seq[k] for k, (n, _, _) in sets.items()}
    response_tokens = sum(n * response for n, _, response in sets.values())
    examples = sum(n for n, _, _ in sets.values())
    share = 1.0 if p.finetune_blocks == "all" else len(p.finetune_blocks) / m.n_layers
    finetunes = 2 + 0.5 * (1 + len(p.geometry_random_seeds)) * o.go  # the filtered ones see half the examples
    fine = finetunes * p.finetune_epochs * training(m, tokens["inducing"], seq["inducing"], share)
    q = BUNDLED["em-questions.jsonl"]
    proxy_seq = CHAT_TOKENS + q["question"] + (q["aligned"] + q["misaligned"]) / 2
    proxies = (1 + 2 + (1 + len(p.geometry_random_seeds)) * o.go) * forward(m, 48 * proxy_seq, proxy_seq, True)
    residuals = forward(m, sum(tokens.values()), sum(tokens.values()) / examples) + 2 * forward(
        m, tokens["neutral"], seq["neutral"])  # every example once, the neutral ones again after each fine-tune
    steps = (Step("response residuals", residuals),
             Step("TopK SAEs", L * sae_training(d, D, 0.8 * response_tokens, p.geometry_sae_epochs,
                                                0.2 * response_tokens), cache="geometry saes"),
             Step("codes", L * 2 * 2 * d * D * response_tokens),
             Step("proximity nulls", L * 5 * p.geometry_n_null * 2 * p.geometry_top_k ** 2 * d, HOST),
             Step("fine-tunes", fine), Step("misalignment proxies", proxies))
    holds = (_frame(s), _weights(p.geometry_model, 4), Hold("saved trained weights (host copy)", 4 * share
                                                            * m.params(), HOST),
             Hold("fine-tune state", training_bytes(m, 4, p.finetune_batch_size, seq["inducing"], share)),
             Hold("response residuals and codes", 4 * response_tokens * (L * d + D), HOST))
    return ChapterCost("13_superposition_geometry", (_load([p.geometry_model], 4), *steps),
                       (Phase("fine-tune", holds),))


def ch14(p: Profile, s: Sizes, o: Outcomes) -> ChapterCost:
    """Applies the claim rules to the ledgers: no array work."""
    return ChapterCost("14_report", (), ())


CHAPTERS: dict[str, Callable[[Profile, Sizes, Outcomes], ChapterCost]] = {
    "01_moral_vectors": ch01, "02_activations": ch02, "03_categorical": ch03, "04_gradient": ch04,
    "05_structural": ch05, "06_dimensional": ch06, "07_across_models": ch07, "08_sae": ch08,
    "09_moral_features": ch09, "10_surgery": ch10, "11_steering_flames": ch11, "12_harmful_weights": ch12,
    "13_superposition_geometry": ch13, "14_report": ch14}


# ------------------------------------------------------------------------------------------------------ machines
START_SECONDS = 1.5  # imports, ledger and figures of a chapter without array work (chapters 07 and 14: 1.4–1.5 s)
RUNTIME_RAM = 455e6  # peak RSS of a chapter holding no arrays (07 and 14): Python, torch, pandas, matplotlib
CUDA_HOST_RAM = 1.0e9  # host memory the CUDA runtime adds to a process that uses the GPU (assumed)
CUDA_CONTEXT = 0.5e9  # GPU memory of a CUDA context and cuBLAS workspace, per process (assumed)
T4_PEAK, T4_FP32 = 65e12, 8.1e12  # fp16 tensor cores; float32 (Turing has no bf16 and no TF32 tensor cores)
H100_PEAK, H100_FP32 = 989e12, 67e12  # bf16 / fp16 dense tensor cores; float32 without TF32 (PyTorch's default)
ACHIEVED = 0.35  # share of a peak that eager PyTorch reaches on these batch sizes (assumed, for every precision)
HOST_CORES_H100 = 8  # the H100 machine's 16 cores against the ci machine's 2 threads: host work 8× faster (assumed)
STATISTICS_SHARE = 0.5  # a chapter fits the statistics rate if host statistics are this share of its warm FLOPs
STATISTICS_MIN_FLOPS = 10e9  # ... and at least this many FLOPs (seconds at any CPU rate, beyond start-up's noise)
OUTLIER_FACTOR = 2.0  # a statistics chapter whose own rate lies further than this from the fitted one is named


@dataclasses.dataclass(frozen=True)
class Machine:
    """Where a profile runs: FLOP/s of 16-bit and float32 model work (the accelerator, or the CPU) and of host
    statistics, whether bfloat16 has fast kernels, the memory bandwidth and per-layer launch latency that bound
    decoding, how fast weights arrive, and its memory."""

    name: str
    half_flops: float
    single_flops: float
    host_flops: float
    bandwidth: float
    layer_latency: float
    load_bandwidth: float
    ram: float
    gpu: float | None = None
    bf16: bool = True

    def rate(self, step: Step) -> float:
        """FLOP/s of a step here: host work on the CPU; model work at its precision's rate (bfloat16 at float32's
        rate where the machine has no bfloat16 kernels)."""
        if step.where == HOST:
            return self.host_flops
        half = step.dtype in ("float16", "auto") or (step.dtype == "bfloat16" and self.bf16)
        return self.half_flops if half else self.single_flops


@dataclasses.dataclass(frozen=True)
class Budget:
    """What a profile must fit in per chapter (None: no time limit)."""

    minutes: float | None
    ram: float
    gpu: float


def cpu_machine(model_flops: float, host_flops: float) -> Machine:
    """The ci machine: 2 CPU threads running model work (every precision) at the fitted `model_flops` and host
    statistics at the fitted `host_flops` (20 GB/s and 1 ms per layer launch bound decoding; weights read at
    0.5 GB/s with the bridge's set-up)."""
    return Machine("ci CPU (2 threads)", model_flops, model_flops, host_flops, 20e9, 1e-3, 0.5e9, 16 * GB)


def t4_machine(host_flops: float) -> Machine:
    """A free Colab: one T4 (65 TFLOP/s fp16, 8.1 float32, both at 35 %; no bfloat16 kernels; 320 GB/s at 70 %;
    1 ms per layer launch in eager decoding), two vCPUs running host statistics at the ci machine's fitted
    statistics rate `host_flops`, weights downloaded from the hub at 100 MB/s, 12.7 GB RAM, 15 GB GPU."""
    return Machine("Colab T4", T4_PEAK * ACHIEVED, T4_FP32 * ACHIEVED, host_flops, 320e9 * 0.7, 1e-3, 0.1e9,
                   12.7 * GB, 15 * GB, bf16=False)


def h100_machine(host_flops: float) -> Machine:
    """One H100 (989 TFLOP/s bf16, 67 float32, both at 35 %; 3.35 TB/s at 70 %; 0.5 ms per layer launch), 16
    cores running host statistics at 8× the ci statistics rate `host_flops`, 128 GB RAM, 80 GB GPU, weights from
    the hub at 0.5 GB/s."""
    return Machine("H100 80 GB", H100_PEAK * ACHIEVED, H100_FP32 * ACHIEVED, host_flops * HOST_CORES_H100,
                   3.35e12 * 0.7, 0.5e-3, 0.5e9, 128 * GB, 80 * GB)


# The machine each GPU profile is sized for and the budget it must meet per chapter.
TARGETS: dict[str, tuple[Callable[[float], Machine], Budget]] = {
    "colab": (t4_machine, Budget(60, 12 * GB, 15 * GB)),
    "paper": (h100_machine, Budget(None, 128 * GB, 80 * GB)),
}


def step_seconds(step: Step, machine: Machine) -> float:
    """A step's time: its FLOPs at the machine's rate for where and in which precision it runs, plus reading its
    weights; decoding at least its steps times the slower of streaming the weights once and launching every layer."""
    seconds = step.flops / machine.rate(step) + step.read_bytes / machine.load_bandwidth
    if step.decode_steps:
        per_step = max(step.step_bytes / machine.bandwidth, step.step_layers * machine.layer_latency)
        seconds = max(seconds, step.decode_steps * per_step)
    return seconds


def seconds(cost: ChapterCost, machine: Machine, warm: bool = False) -> float:
    """A chapter's predicted wall time: start-up and every step (`warm`: cached ones skipped)."""
    return START_SECONDS + sum(step_seconds(s, machine) for s in cost.steps if not (warm and s.cache))


def memory(cost: ChapterCost, machine: Machine, warm: bool = False, kernel_only: bool = False) -> tuple[float, float]:
    """Peak RAM and GPU memory in bytes: the largest phase (`warm`: cache-filling phases skipped) plus each
    process's runtime (and CUDA's share in a process that holds something on the GPU); `kernel_only`: the
    chapter's process alone, as its ledger's peak RSS measures it."""
    on_gpu = machine.gpu is not None
    ram_peak = gpu_peak = 0.0
    for phase in cost.phases:
        if warm and phase.cache:
            continue
        holds = [h for h in phase.holds if not (kernel_only and h.process == SERVER)]
        processes = {h.process for h in holds} | {KERNEL}
        cuda = {h.process for h in holds if h.where == MODEL} if on_gpu else set()  # processes that use the GPU
        runtime = len(processes) * RUNTIME_RAM + len(cuda) * CUDA_HOST_RAM
        ram_peak = max(ram_peak, runtime + sum(h.bytes for h in holds if h.where == HOST or not on_gpu))
        gpu_peak = max(gpu_peak, len(cuda) * CUDA_CONTEXT + sum(h.bytes for h in holds if h.where == MODEL and on_gpu))
    return max(ram_peak, RUNTIME_RAM), gpu_peak


def chapter_costs(profile: Profile, outcomes: Outcomes = Outcomes()) -> dict[str, ChapterCost]:
    """Every chapter's predicted cost for a profile (outcome-dependent work at its upper bound by default)."""
    data = sizes(profile)
    return {name: build(profile, data, outcomes) for name, build in CHAPTERS.items()}


# --------------------------------------------------------------------------------------------------- calibration
def measured(folder: Path) -> dict[str, dict]:
    """Per chapter of a build's ledgers: measured seconds, peak RSS (MB), the CPU, and the recorded seconds of the
    cached steps whose time a ledger keeps (02's extraction, 08's and 13's SAE training)."""
    out = {}
    for path in sorted(folder.glob("*.json")):
        entry = json.loads(path.read_text())
        meta = entry.get("meta", {})
        if "seconds" in meta:
            out[path.stem] = {"seconds": meta["seconds"], "peak_rss_mb": meta.get("peak_rss_mb"),
                              "cpu": meta.get("machine", {}).get("cpu"), "metrics": entry.get("metrics", {}),
                              "data": entry.get("data", {})}
    return out


def measured_outcomes(build: dict[str, dict]) -> Outcomes:
    """The outcomes a measured build had: chapter 13's go and whether chapter 11's pairwise judge passed."""
    go = build.get("13_superposition_geometry", {}).get("metrics", {}).get("go", True)
    validation = build.get("11_steering_flames", {}).get("metrics", {}).get("judge_validation", {})
    pairwise = [v for k, v in validation.items() if k.startswith("paper's pairwise")]
    return Outcomes(go=bool(go), pairwise_judge_passes=bool(pairwise[0].get("beats_chance")) if pairwise else True)


def recorded_steps(build: dict[str, dict]) -> dict[str, tuple[str, str, float]]:
    """Cached steps whose compute time a ledger records: label → (chapter, step name, seconds). These ran in
    whichever build filled the cache, so they check the formulas of work a warm chapter skips."""
    out = {}
    activations = build.get("02_activations", {})
    for name, figures in activations.get("metrics", {}).items():
        if isinstance(figures, dict) and "seconds_per_1k_texts" in figures:
            out[f"02 extract {name}"] = ("02_activations", f"extract {name}",
                                         figures["seconds_per_1k_texts"] * figures["n_texts"] / 1000)
    layers = build.get("08_sae", {}).get("metrics", {}).get("per_layer", {})
    if layers:
        out["08 train SAEs"] = ("08_sae", "train SAEs", sum(v["train_seconds"] for v in layers.values()))
    quality = build.get("13_superposition_geometry", {}).get("metrics", {}).get("sae_quality", {})
    if quality:
        out["13 TopK SAEs"] = ("13_superposition_geometry", "TopK SAEs",
                               sum(v["train_seconds"] for v in quality.values()))
    return out


def host_flops(cost: ChapterCost, warm: bool = False) -> float:
    """FLOPs of a chapter's host statistics; `warm`: without the cached steps."""
    return sum(s.flops for s in cost.steps if s.where == HOST and not (warm and s.cache))


def model_seconds(cost: ChapterCost, machine: Machine, warm: bool = False) -> float:
    """A chapter's predicted time without its host statistics: start-up, loading and model work."""
    return START_SECONDS + sum(step_seconds(s, machine) for s in cost.steps
                               if s.where != HOST and not (warm and s.cache))


def _bisect(excess: Callable[[float], float]) -> float:
    """The FLOP/s in [0.1 GFLOP/s, 100 TFLOP/s] where the increasing `excess(log FLOP/s)` crosses 0."""
    low, high = math.log(1e8), math.log(1e14)
    for _ in range(100):
        mid = (low + high) / 2
        low, high = (mid, high) if excess(mid) < 0 else (low, mid)
    return math.exp((low + high) / 2)


def fit_model_rate(costs: dict[str, ChapterCost], build: dict[str, dict]) -> tuple[float, str]:
    """The CPU's model-work FLOP/s and where it came from: the median over the cached steps whose time the ledgers
    record (02's extraction, 08's and 13's SAE training) of FLOPs / seconds ("steps"); without such records, the
    rate at which the median chapter whose warm work is all model work is predicted in its measured time
    ("chapters": bisection in log space, since start-up and loading are FLOP-free)."""
    implied = []
    for chapter, step_name, actual in recorded_steps(build).values():
        step = next((s for s in costs.get(chapter, ChapterCost(chapter, (), ())).steps if s.name == step_name), None)
        if step is not None and step.flops > 0 and actual > 0:
            implied.append(step.flops / actual)
    if implied:
        return statistics.median(implied), "steps"
    timed = [c for c in build if c in costs and costs[c].flops(warm=True) > 0 and not host_flops(costs[c], True)]
    if not timed:
        raise ValueError("no recorded model-work step and no measured chapter of pure model work to fit a rate to")
    return _bisect(lambda log_flops: statistics.median(math.log(
        build[c]["seconds"] / model_seconds(costs[c], cpu_machine(math.exp(log_flops), 1.0), warm=True))
        for c in timed)), "chapters"


def statistics_chapters(costs: dict[str, ChapterCost]) -> list[str]:
    """Chapters whose warm work is mostly host statistics (at least `STATISTICS_SHARE` of its FLOPs and at least
    `STATISTICS_MIN_FLOPS`): the ones that fit the statistics rate."""
    return [name for name, c in costs.items() if host_flops(c, warm=True) >= max(
        STATISTICS_MIN_FLOPS, STATISTICS_SHARE * c.flops(warm=True))]


def statistics_rate(cost: ChapterCost, measured_seconds: float, model_flops: float) -> float | None:
    """The FLOP/s a measured chapter's host statistics ran at: their FLOPs over the measured time less the predicted
    start-up, loading and model work (at `model_flops`); None without statistics or time left for them."""
    left = measured_seconds - model_seconds(cost, cpu_machine(model_flops, 1.0), warm=True)
    work = host_flops(cost, warm=True)
    return work / left if work > 0 and left > 0 else None


def fit_rates(costs: dict[str, ChapterCost], build: dict[str, dict]) -> tuple[float, float, str]:
    """The CPU's two throughputs: model work (`fit_model_rate`), then host statistics, the median over the measured
    `statistics_chapters` of the rate their statistics ran at once start-up and model work are taken out."""
    model, source = fit_model_rate(costs, build)
    rates = [r for c in statistics_chapters(costs) if c in build
             and (r := statistics_rate(costs[c], build[c]["seconds"], model)) is not None]
    if not rates:
        raise ValueError("no measured chapter of mostly host statistics to fit a statistics rate to")
    return model, statistics.median(rates), source


def _ratio(predicted: float, actual: float | None) -> float | None:
    """predicted / measured, None without a measurement."""
    return None if not actual else predicted / actual


def check(profile: Profile, build: dict[str, dict]) -> dict:
    """The two fitted CPU throughputs and, per measured chapter, predicted (warm: the build reused its caches) vs
    measured seconds and peak RSS and the rate its host statistics ran at, plus the cached steps whose ledgers
    record their time; `outliers`: statistics chapters whose own rate lies over `OUTLIER_FACTOR` from the fitted
    one (one statistics rate cannot fit them)."""
    costs = chapter_costs(profile, measured_outcomes(build))
    model, host, source = fit_rates(costs, build)
    machine = cpu_machine(model, host)
    fitted_on = [c for c in statistics_chapters(costs) if c in build]
    chapters, outliers = [], []
    for name, m in build.items():
        if name not in costs:
            continue
        t = seconds(costs[name], machine, warm=True)
        ram = memory(costs[name], machine, warm=True, kernel_only=True)[0] / 1e6
        rate = statistics_rate(costs[name], m["seconds"], model)
        chapters.append({"chapter": name, "gflop": costs[name].flops(warm=True) / 1e9,
                         "host_gflop": host_flops(costs[name], warm=True) / 1e9, "predicted_s": t,
                         "measured_s": m["seconds"], "time_ratio": _ratio(t, m["seconds"]),
                         "statistics_gflops": None if rate is None else rate / 1e9,
                         "fits_statistics": name in fitted_on,
                         "predicted_rss_mb": ram, "measured_rss_mb": m["peak_rss_mb"],
                         "rss_ratio": _ratio(ram, m["peak_rss_mb"])})
        if name in fitted_on and (rate is None or max(rate / host, host / rate) > OUTLIER_FACTOR):
            outliers.append({"chapter": name, "statistics_gflops": None if rate is None else rate / 1e9,
                             "factor": None if rate is None else host / rate})
    steps = []
    for label, (chapter, step_name, actual) in recorded_steps(build).items():
        step = next(s for s in costs[chapter].steps if s.name == step_name)
        t = step_seconds(step, machine)
        steps.append({"step": label, "gflop": step.flops / 1e9, "predicted_s": t, "measured_s": actual,
                      "time_ratio": _ratio(t, actual)})
    timed = [c for c in chapters if c["gflop"] > 0]
    return {"cpu": next((m["cpu"] for m in build.values() if m.get("cpu")), None), "model_flops": model,
            "host_flops": host, "model_fit": source, "statistics_chapters": fitted_on, "outliers": outliers,
            "chapters": chapters, "steps": steps, "summary": {
                "time": _spread([c["time_ratio"] for c in timed]), "steps": _spread([s["time_ratio"] for s in steps]),
                "rss": _spread([c["rss_ratio"] for c in chapters if c["rss_ratio"]])}}


def _spread(ratios: list[float]) -> dict:
    """How far predicted / measured ratios stray: median, worst factor either way, and how many lie within 2×."""
    if not ratios:
        return {}
    factors = [max(r, 1 / r) for r in ratios]
    return {"n": len(ratios), "median_ratio": statistics.median(ratios), "worst_factor": max(factors),
            "within_2x": sum(f <= 2 for f in factors)}


# --------------------------------------------------------------------------------------------------- predictions
def predict(profile: Profile, machine: Machine, budget: Budget) -> list[dict]:
    """Per chapter on `machine`: GFLOP, minutes cold (its own caches computed; earlier chapters' artefacts restored)
    and warm, peak RAM and GPU memory (the served judge included), and which budget limits the cold run exceeds."""
    rows = []
    for name, cost in chapter_costs(profile).items():
        cold, warm = seconds(cost, machine) / 60, seconds(cost, machine, warm=True) / 60
        ram, gpu = memory(cost, machine)
        over = ([f"time > {budget.minutes:g} min"] if budget.minutes is not None and cold > budget.minutes else []) + [
            label for label, exceeded in ((f"RAM > {budget.ram / GB:g} GB", ram > budget.ram),
                                          (f"GPU > {budget.gpu / GB:g} GB", gpu > budget.gpu)) if exceeded]
        rows.append({"chapter": name, "gflop": cost.flops() / 1e9, "minutes": cold, "minutes_warm": warm,
                     "ram_gb": ram / GB, "gpu_gb": gpu / GB, "over": over})
    return rows


def report(build: dict[str, dict], profiles: tuple[str, ...] = tuple(TARGETS)) -> dict:
    """The cost model's output: the check against a ci build and each GPU profile's predictions (`bench.json`);
    `at_own_rate`: the cold minutes of each statistics outlier were its statistics to run at its own ci rate."""
    checked = check(load_profile("ci"), build)
    out = {"check": checked, "assumptions": {
        "achieved_share_of_peak": ACHIEVED, "start_seconds": START_SECONDS, "runtime_ram_mb": RUNTIME_RAM / 1e6,
        "cuda_host_ram_gb": CUDA_HOST_RAM / GB, "cuda_context_gb": CUDA_CONTEXT / GB}, "predictions": {}}
    for name in profiles:
        make_machine, budget = TARGETS[name]
        profile, machine = load_profile(name), make_machine(checked["host_flops"])
        costs = chapter_costs(profile)
        at_own_rate = {o["chapter"]: seconds(costs[o["chapter"]], make_machine(o["statistics_gflops"] * 1e9)) / 60
                       for o in checked["outliers"] if o["statistics_gflops"]}
        out["predictions"][name] = {"machine": machine.name, "budget": dataclasses.asdict(budget),
                                    "chapters": predict(profile, machine, budget), "at_own_rate": at_own_rate}
    return out


def _x(ratio: float | None) -> str:
    """A predicted / measured ratio as '1.3×' ('–' without a measurement)."""
    return "–" if ratio is None else f"{ratio:.2g}×"


# Why a statistics chapter's own rate is far from the fitted one, where the code says so.
WHY_OUTLIER = {"05_structural": "its HDBSCAN (k-NN core distances and Prim's tree, 5 FLOPs per pair of rows and PCA "
                                "dimension) is scalar, single-threaded Cython rather than BLAS"}


def _statistics(row: dict) -> str:
    """A chapter's statistics rate in GFLOP/s, '(fit)' where it entered the fit, '–' where it has none."""
    if row["statistics_gflops"] is None:
        return "–"
    return f"{row['statistics_gflops']:.2g}" + (" (fit)" if row["fits_statistics"] else "")


def markdown(cost: dict) -> str:
    """The README section: the check against the ci build, then each GPU profile's table with its flags."""
    c = cost["check"]
    t, r = c["summary"]["time"], c["summary"]["rss"]
    model_fit = ("the median rate of the cached steps whose time the ledgers record (extraction, SAE training)"
                 if c["model_fit"] == "steps" else "the rate at which the median chapter of pure model work is "
                 "predicted in its measured time (the ledgers record no step times)")
    lines = [f"Calibrated on the last `ci` build's ledgers ({c['cpu']}) with two CPU throughputs. Model work "
             f"(forwards, SAE training, generation: BLAS-bound) runs at **{c['model_flops'] / 1e9:.0f} GFLOP/s**, "
             f"{model_fit}; host statistics (many small numpy / scikit-learn calls) at "
             f"**{c['host_flops'] / 1e9:.1f} GFLOP/s**, the median over the chapters whose warm work is mostly "
             f"statistics ({', '.join(ch[:2] for ch in c['statistics_chapters'])}) of their statistics FLOPs over the "
             "time left once start-up, loading and model work are taken out. Predicted / measured time (warm caches, "
             f"as the build ran): {t['within_2x']} of {t['n']} chapters with array work within 2×, worst "
             f"{t['worst_factor']:.1f}× off; peak RSS: {r['within_2x']} of {r['n']} within 2×, worst "
             f"{r['worst_factor']:.1f}×."]
    for o in c["outliers"]:
        why = f", because {WHY_OUTLIER[o['chapter']]}" if o["chapter"] in WHY_OUTLIER else ""
        if o["factor"] is None:
            lines[0] += f" One statistics rate cannot fit {o['chapter']}: its model work alone fills its time{why}."
            continue
        slower = o["factor"] > 1
        lines[0] += (f" **One statistics rate cannot fit {o['chapter']}**: its statistics ran at "
                     f"{o['statistics_gflops']:.2g} GFLOP/s, {max(o['factor'], 1 / o['factor']):.1f}× "
                     f"{'below' if slower else 'above'} the fitted rate{why}. Its predicted time, here and on the GPU "
                     f"machines' CPUs, is about that many times too {'short' if slower else 'long'}.")
    lines += ["",
              "| ci chapter (warm caches) | GFLOP (statistics) | predicted s | measured s | time | statistics "
              "GFLOP/s | predicted RSS MB | measured RSS MB | RSS |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {row['chapter']} | {row['gflop']:,.0f} ({row['host_gflop']:,.0f}) | {row['predicted_s']:.0f} | "
              f"{row['measured_s']:.0f} | {_x(row['time_ratio'])} | {_statistics(row)} | "
              f"{row['predicted_rss_mb']:.0f} | {row['measured_rss_mb'] or 0:.0f} | {_x(row['rss_ratio'])} |"
              for row in c["chapters"]]
    lines += [f"| *step:* {row['step']} | {row['gflop']:,.0f} | {row['predicted_s']:.0f} | {row['measured_s']:.0f} "
              f"| {_x(row['time_ratio'])} | | | | |" for row in c["steps"]]
    a = cost["assumptions"]
    lines += ["", "GPU profiles: *cold* is a chapter computing its own caches (an earlier chapter's artefacts "
              "restored from the reader's folder), *warm* a rerun with them present. Model work at "
              f"{a['achieved_share_of_peak']:.0%} "
              "of the GPU's peak for its precision (T4: fp16 65, float32 8.1 TFLOP/s, bfloat16 at the float32 rate; "
              "H100: bf16 989, float32 67), decoding at least one weight read and 1 ms (H100: 0.5 ms) of launches per "
              "layer per token step; host statistics at the fitted statistics rate "
              f"({c['host_flops'] / 1e9:.1f} GFLOP/s on Colab's 2 vCPUs; the H100 machine's 16 cores 8× that); "
              f"memory: the largest phase plus the runtime ({a['runtime_ram_mb']:.0f} MB) and CUDA "
              f"({a['cuda_host_ram_gb']:g} GB host, {a['cuda_context_gb']:g} GB GPU per process); outcome-dependent "
              "work (chapter 13's go, the pairwise judge passing) at its upper bound."]
    for name, prediction in cost["predictions"].items():
        budget = prediction["budget"]
        limit = f"≤ {budget['minutes']:g} min, " if budget["minutes"] else ""
        over = [row["chapter"] for row in prediction["chapters"] if row["over"]]
        lines += ["", f"`{name}` on a {prediction['machine']} ({limit}≤ {budget['ram'] / GB:g} GB RAM, "
                      f"≤ {budget['gpu'] / GB:g} GB GPU per chapter): "
                      + (f"**over budget: {', '.join(over)}**." if over else "every chapter fits.")]
        lines[-1] += "".join(f" At its own ci statistics rate {chapter} would take {minutes:,.0f} min cold."
                             for chapter, minutes in prediction.get("at_own_rate", {}).items())
        lines += ["", "| chapter | TFLOP | minutes (cold) | minutes (warm) | RAM GB | GPU GB | over |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {row['chapter']} | {row['gflop'] / 1e3:,.1f} | {row['minutes']:,.1f} | "
                  f"{row['minutes_warm']:,.1f} | {row['ram_gb']:.1f} | {row['gpu_gb']:.1f} | {'; '.join(row['over'])} |"
                  for row in prediction["chapters"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Command line: check against a ci build's ledgers, print the profile's predictions, optionally the README."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="colab", choices=tuple(TARGETS))
    parser.add_argument("--measured", type=Path, default=None,
                        help="folder of a ci build's ledgers (default: results/ci of this checkout)")
    parser.add_argument("--readme", action="store_true", help="write every GPU profile's table into README.md")
    args = parser.parse_args()
    folder = args.measured or output_root() / "results" / "ci"
    build = measured(folder)
    if not build:
        raise SystemExit(f"no ci ledgers with measured seconds in {folder}: run `make book` first, or pass "
                         "--measured with the results/ci folder of a ci build")
    cost = report(build, tuple(TARGETS) if args.readme else (args.profile,))
    print(markdown(cost))
    if args.readme:
        readme = project_root() / "README.md"
        atomic_write_text(readme, replace_between_markers(readme.read_text(), markdown(cost), README_MARKERS))


if __name__ == "__main__":
    main()
