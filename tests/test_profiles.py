"""Profiles: every file has the same keys, validated; bad files fail naming the file and the key."""

from __future__ import annotations

import pytest
import yaml

from helpers.models import REGISTRY
from helpers.profiles import PROFILES, load_profile


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_loads_and_names_known_models(name):
    profile = load_profile(name)
    assert profile.name == name
    assert set(profile.models) <= set(REGISTRY)


def test_ci_is_offline_and_bundled():
    profile = load_profile("ci")
    assert profile.offline and profile.socialchem_source == "bundled"
    assert profile.models[:2] == ["smollm2-135m-instruct", "smollm2-135m-random-init"]


def _write(tmp_path, **changes):
    raw = yaml.safe_load(open(load_profile.__globals__["params_dir"]() / "ci.yaml"))
    raw.update(changes)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_unknown_key_is_rejected_naming_file_and_key(tmp_path):
    path = _write(tmp_path, sae_widht=16)
    with pytest.raises(ValueError, match=r"bad\.yaml.*unknown profile key.*sae_widht"):
        load_profile(path)


def test_wrong_type_is_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"bad\.yaml.*'batch_size'"):
        load_profile(_write(tmp_path, batch_size="64"))


def test_unknown_profile_name_lists_known_ones():
    with pytest.raises(ValueError, match="known profiles: ci, colab, paper"):
        load_profile("laptop")


def test_sae_keys_are_checked(tmp_path):
    with pytest.raises(ValueError, match=r"'sae_model' must be one of the profile's models"):
        load_profile(_write(tmp_path, sae_model="gemma3-270m-x"))
    with pytest.raises(ValueError, match=r"'sae_input' must be one of"):
        load_profile(_write(tmp_path, sae_input="sentences"))
    with pytest.raises(ValueError, match=r"'sae_layers'"):
        load_profile(_write(tmp_path, sae_layers="some"))


def test_dtype_is_checked_and_colab_picks_device_and_dtype_by_capability(tmp_path):
    with pytest.raises(ValueError, match=r"'dtype' must be one of \('auto', 'float32', 'bfloat16', 'float16'\)"):
        load_profile(_write(tmp_path, dtype="half"))
    colab = load_profile("colab")
    assert (colab.device, colab.dtype) == ("auto", "auto"), "a T4 has no bfloat16 arithmetic: dtype auto"


FLAMES_ROOT = "https://raw.githubusercontent.com/AIFlames/Flames/main/Flames_1k_Chinese.jsonl"
FLAMES_SHA256 = "f53400dcbb8795fb262993bda0615afdc77de1c4685e7c94d2df2a3cd47613fa"


@pytest.mark.parametrize("name", ["colab", "paper"])
def test_official_flames_source_is_the_root_file_with_its_checksum_pinned(name):
    profile = load_profile(name)
    assert (profile.flames_source, profile.flames_sha256) == (FLAMES_ROOT, FLAMES_SHA256)


def test_workers_are_the_profiles_threads_or_the_cpus_this_process_may_use():
    import dataclasses

    from joblib import cpu_count

    ci = load_profile("ci")
    assert ci.workers == ci.threads == 2
    assert dataclasses.replace(ci, threads=None).workers == cpu_count() >= 1
