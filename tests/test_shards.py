"""Sharded stages: shard arithmetic, command-line errors, and two extraction shards plus a merge giving the very
cache a single run gives."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import activations
from helpers.__main__ import main, parse_layers
from helpers.shards import Shard, parse_shard


def test_shards_split_work_round_robin_without_overlap():
    shards = [Shard(i, 3) for i in range(3)]
    picks = [s.pick(list(range(10))) for s in shards]
    assert picks[0] == [0, 3, 6, 9] and sorted(sum(picks, [])) == list(range(10))
    assert parse_shard("2/4") == Shard(2, 4)
    for bad in ("4/4", "-1/2", "1/0"):
        with pytest.raises(ValueError, match="--shard must be i/n"):
            parse_shard(bad)
    with pytest.raises(ValueError, match="--shard must look like i/n"):
        parse_shard("half")


def test_layers_option_is_checked():
    assert parse_layers("5,1,5", 30) == [1, 5] and parse_layers("all", 30) is None and parse_layers(None, 30) is None
    with pytest.raises(ValueError, match=r"--layers \[30\] out of range 0..29"):
        parse_layers("2,30", 30)
    with pytest.raises(ValueError, match="comma-separated"):
        parse_layers("2-4", 30)
    assert parse_layers("3,40") == [3, 40], "without a depth only the syntax is checked"
    with pytest.raises(ValueError, match=r"--layers \[-1\] out of range"):
        parse_layers("-1,2")


def test_command_line_rejects_unknown_models_and_bad_shards():
    with pytest.raises(ValueError, match="not in profile ci's models"):
        main(["extract", "--profile", "ci", "--model", "gpt-9"])
    with pytest.raises(ValueError, match="--shard"):
        main(["extract", "--profile", "ci", "--shard", "3/2"])
    with pytest.raises(ValueError, match="--model applies to extract only"):
        main(["train-sae", "--profile", "ci", "--model", "smollm2-135m-instruct"])


def test_two_shards_then_a_merge_equal_one_run(tiny_model, tmp_path, monkeypatch):
    texts = [f"Action number {i} {'and more ' * (i % 7)}is morally" for i in range(150)]
    kwargs = {"max_length": 32, "batch_size": 16, "chunk_size": 40, "progress": False, "layers": [0, 1]}
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path / "single"))
    single = activations.extract(tiny_model, "tiny", texts, **kwargs)
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path / "sharded"))
    assert activations.extract(tiny_model, "tiny", texts, shard=Shard(0, 2), **kwargs) is None
    assert activations.extract(tiny_model, "tiny", texts, shard=Shard(1, 2), **kwargs) is None

    def no_forward(*args, **kw):
        raise AssertionError("the merge recomputed a chunk a shard had finished")

    monkeypatch.setattr(activations, "_forward_pooled", no_forward)
    merged = activations.extract(tiny_model, "tiny", texts, **kwargs)
    assert merged.manifest["layers"] == single.manifest["layers"] == [0, 1]
    for layer in (0, 1):
        for pooling in activations.POOLINGS:
            np.testing.assert_array_equal(merged.load(layer, pooling), single.load(layer, pooling))


def test_chunks_from_another_chunk_size_are_refused_not_merged(tiny_model, tmp_path, monkeypatch):
    texts = [f"Action {i} is morally" for i in range(30)]
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path))
    kwargs = {"max_length": 16, "batch_size": 8, "progress": False, "layers": [0]}
    assert activations.extract(tiny_model, "tiny", texts, chunk_size=10, shard=Shard(0, 2), **kwargs) is None
    assert activations.extract(tiny_model, "tiny", texts, chunk_size=20, shard=Shard(1, 2), **kwargs) is None
    with pytest.raises(activations.CacheError, match="do not cover the 30 texts exactly once"):
        activations.extract(tiny_model, "tiny", texts, chunk_size=10, **kwargs)


def test_two_generate_shards_fill_the_cache_a_single_run_fills(tiny_model, tmp_path, monkeypatch):
    import json

    import pandas as pd

    from helpers import sae, steering
    from helpers.data import flames

    def conditions(corpus, profile, layers, seed):
        """Baseline plus a layer-specific scaling edit (stands in for the SAE conditions)."""
        return [steering.Condition("baseline")] + [
            steering.Condition("scaled", layer, lambda x, s=1.0 + layer: x * s, steering.tensor_fingerprint(layer))
            for layer in layers]

    monkeypatch.setattr(sae, "split_corpus", lambda profile, cleaned: type("C", (), {"model": tiny_model})())
    monkeypatch.setattr(steering, "profile_conditions", conditions)
    monkeypatch.setattr(flames, "profile_prompts", lambda profile: pd.DataFrame({"prompt": ["Be kind?", "Lie?"]}))
    monkeypatch.setattr(steering, "flames_generation", lambda model, profile, prompts, seed: (
        prompts, steering.Decoding(max_new_tokens=3, do_sample=False, seed=seed)))

    def cached(name: str) -> dict[str, str]:
        folder = tmp_path / name / "cache" / "generations" / "tiny"
        return {p.name: p.read_text() for p in folder.glob("*.json")}

    monkeypatch.setenv("BOOK_ROOT", str(tmp_path / "single"))
    main(["generate", "--profile", "ci", "--layers", "0,1"])
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path / "sharded"))
    main(["generate", "--profile", "ci", "--layers", "0,1", "--shard", "1/2"])
    assert len(cached("sharded")) == 1, "shard 1 takes layer 1 only, not the baseline"
    main(["generate", "--profile", "ci", "--layers", "0,1", "--shard", "0/2"])
    assert len(cached("single")) == 3 and cached("sharded") == cached("single")
    layer_1 = steering.generate(tiny_model, ["Be kind?", "Lie?"], steering.Decoding(max_new_tokens=3, do_sample=False),
                                1, lambda x: x * 2.0)
    assert layer_1 in [json.loads(text)["responses"] for text in cached("single").values()]


def test_the_merge_after_shards_loads_no_model(tiny_model, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from helpers import models

    texts = [f"Action {i} {'and more ' * (i % 5)}is morally" for i in range(2 * activations.CHUNK_SIZE + 7)]
    profile = SimpleNamespace(max_length=16, batch_size=64, cache_dtype="float32", dtype="float32", device="cpu")
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path / "single"))
    single = activations.ensure_activations("tiny", texts, profile, model=tiny_model, progress=False)
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path / "sharded"))
    for index in range(2):
        assert activations.ensure_activations("tiny", texts, profile, model=tiny_model, progress=False,
                                              shard=Shard(index, 2)) is None
    assert activations.merge_finished("tiny", texts[:-1], profile) is None, "other texts: no chunks to merge"

    def no_model(*args, **kwargs):
        raise AssertionError("a merge of finished chunks loaded the model")

    monkeypatch.setattr(models, "load_model", no_model)
    merged = activations.ensure_activations("tiny", texts, profile, progress=False)
    assert merged.manifest["layers"] == single.manifest["layers"] and merged.d_model == single.d_model
    for pooling in activations.POOLINGS:
        np.testing.assert_array_equal(merged.load(1, pooling), single.load(1, pooling))
