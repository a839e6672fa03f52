"""Profiles (`params/<name>.yaml`): every size knob of a run, validated, one file per profile."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import yaml

from helpers import netguard
from helpers.paths import project_root

PROFILES = ("ci", "colab", "paper", "colab-smoke")


@dataclasses.dataclass(frozen=True)
class Profile:
    """The knobs of one profile; the code path is the same for every profile, only these values differ."""

    name: str
    offline: bool
    models: list[str]
    device: str
    threads: int | None
    dtype: str
    socialchem_source: str
    socialchem_sha256: str | None
    quota_scale: float
    min_per_stratum: int
    sample_seed: int
    template: str
    max_length: int
    batch_size: int
    cache_dtype: str
    layers: str | list[int]
    n_permutations: int
    n_permutations_probe: int
    hdbscan_min_cluster_size: int
    hdbscan_min_samples: int
    external_max_words: int | None
    sae_model: str
    sae_layers: str | list[int]
    sae_input: str
    sae_architecture: str
    sae_expansion: int
    sae_target_l0: int
    sae_l1_init: float
    sae_lr: float
    sae_batch_size: int
    sae_epochs: int
    sae_warmup_epochs: int
    sae_splice_texts: int
    sae_identify_split: str
    surgery_lr: float
    surgery_batch_size: int
    surgery_epochs: int
    flames_source: str
    flames_sha256: str | None
    flames_n_prompts: int | None
    steer_layers: str | list[int]
    steer_alpha: float
    max_new_tokens: int
    judge_model: str
    judge_margin: float
    judge_layer: int
    judge_validation_prompts: int | None
    judge_api_url: str | None
    judge_api_model: str | None
    judge_api_key_env: str | None
    prune_model: str
    prune_q: float
    prune_p: float
    prune_q_sweep: list[float]
    prune_n_trivia: int | None
    prune_share: float
    geometry_model: str
    geometry_layers: str | list[int]
    geometry_sae_architecture: str
    geometry_sae_expansion: int
    geometry_sae_batch_size: int
    geometry_sae_epochs: int
    geometry_top_k: int
    geometry_n_null: int
    geometry_filter_fraction: float
    geometry_random_seeds: list[int]
    finetune_lr: float
    finetune_epochs: int
    finetune_batch_size: int
    finetune_blocks: str | list[int]

    @property
    def workers(self) -> int:
        """Single-threaded processes a step may run at once: the profile's threads, or every CPU this process may
        use."""
        from joblib import cpu_count  # noqa: PLC0415  (affinity and container limits, on every platform)

        return self.threads or cpu_count()


_FIELDS = {f.name: f for f in dataclasses.fields(Profile)}


def params_dir() -> Path:
    """The folder of profile files: $BOOK_PARAMS, else `<root>/params`, else the one beside this package's source."""
    if os.environ.get("BOOK_PARAMS"):
        return Path(os.environ["BOOK_PARAMS"])
    for candidate in (project_root() / "params", Path(__file__).resolve().parents[2] / "params"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("no params/ folder found: set BOOK_ROOT to the book's root or BOOK_PARAMS to params/")


def _check_type(path: Path, key: str, value: Any) -> None:
    """Raise if `value` does not fit the annotated type of profile field `key`."""
    expected = _FIELDS[key].type
    ok = {
        "str": isinstance(value, str),
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "list[str]": isinstance(value, list) and all(isinstance(v, str) for v in value),
        "list[int]": isinstance(value, list) and bool(value)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value),
        "list[float]": isinstance(value, list) and bool(value)
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value),
        "str | None": value is None or isinstance(value, str),
        "int | None": value is None or (isinstance(value, int) and not isinstance(value, bool)),
        "str | list[int]": value == "all" or (isinstance(value, list) and all(isinstance(v, int) for v in value)),
    }[expected]
    if not ok:
        raise ValueError(f"{path}: key '{key}' must be {expected}, got {value!r}")


def load_profile(name_or_path: str | os.PathLike[str] = "ci") -> Profile:
    """Read and validate a profile by name (`ci`, `colab`, `paper`) or by path to a YAML file; an offline profile
    blocks connections off this machine from then on (`netguard`)."""
    path = Path(name_or_path)
    if path.suffix not in {".yaml", ".yml"}:
        if str(name_or_path) not in PROFILES:
            raise ValueError(f"unknown profile {str(name_or_path)!r}; known profiles: {', '.join(PROFILES)}")
        path = params_dir() / f"{name_or_path}.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of profile keys, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        raise ValueError(f"{path}: unknown profile key(s) {unknown}; known keys: {sorted(_FIELDS)}")
    missing = sorted(set(_FIELDS) - set(raw))
    if missing:
        raise ValueError(f"{path}: missing profile key(s) {missing}")
    for key, value in raw.items():
        _check_type(path, key, value)
    if raw["quota_scale"] <= 0:
        raise ValueError(f"{path}: key 'quota_scale' must be > 0, got {raw['quota_scale']}")
    if raw["sae_model"] not in raw["models"]:
        raise ValueError(f"{path}: key 'sae_model' must be one of the profile's models {raw['models']}, "
                         f"got {raw['sae_model']!r}")
    for key, allowed in (("dtype", ("auto", "float32", "bfloat16", "float16")),
                         ("sae_input", ("tokens", "pooled")), ("sae_architecture", ("relu_l1", "topk")),
                         ("geometry_sae_architecture", ("relu_l1", "topk")),
                         ("sae_identify_split", ("train", "val"))):
        if raw[key] not in allowed:
            raise ValueError(f"{path}: key '{key}' must be one of {allowed}, got {raw[key]!r}")
    profile = Profile(**raw)
    if os.environ.get("BOOK_EXPECT_DEVICE"):  # `make gpu-check`: every forward of this process must see that device
        from helpers.models import expect_device  # noqa: PLC0415  (torch only where a check is asked for)

        expect_device(os.environ["BOOK_EXPECT_DEVICE"])
    if profile.offline:  # from here on this process, and every Python process it starts, stays on this machine
        os.environ["HF_HUB_OFFLINE"] = "1"
        netguard.block_remote()
    return profile
