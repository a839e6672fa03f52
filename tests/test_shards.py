"""Sharded stages: shard arithmetic, command-line errors, two extraction shards plus a merge giving the very cache a
single run gives, and the same for generation and judging (judging refuses to run without the generations)."""

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

    monkeypatch.setattr(activations, "forward_pooled", no_forward)
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

    monkeypatch.setattr(sae, "split_corpus", lambda profile, cleaned, extract: type("C", (), {"model": tiny_model})())
    monkeypatch.setattr(steering, "profile_conditions", conditions)
    monkeypatch.setattr(flames, "profile_prompts", lambda profile: pd.DataFrame({"prompt": ["Be kind?", "Lie?"]}))
    monkeypatch.setattr(steering, "flames_generation", lambda model, profile, prompts, seed: (
        prompts, steering.Decoding(max_new_tokens=3, do_sample=False, seed=seed)))

    def cached(name: str) -> dict[str, str]:
        return _cached_files(tmp_path / name, "generations")

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


def _stand_in_chapter_11(monkeypatch, tiny_model, judges=None) -> None:
    """Chapter 11's commands on the tiny model: two prompts, a baseline plus one added vector per layer (large
    enough to change the answers), greedy decoding of three tokens, cached SAEs, and (if given) stand-in judges."""
    import pandas as pd
    import torch

    from helpers import judge, sae, steering
    from helpers.data import flames

    def conditions(corpus, profile, layers, seed):
        vectors = {layer: 5 * torch.randn(32, generator=torch.Generator().manual_seed(layer)) for layer in layers}
        return [steering.Condition("baseline")] + [
            steering.Condition("added", layer, steering.vector_edit(vectors[layer], 1.0),
                               steering.tensor_fingerprint(vectors[layer])) for layer in layers]

    monkeypatch.setattr(sae, "split_corpus", lambda profile, cleaned, extract: type("C", (), {"model": tiny_model})())
    monkeypatch.setattr(steering, "profile_conditions", conditions)
    monkeypatch.setattr(steering, "missing_saes", lambda corpus, profile, layers, seed: [])
    monkeypatch.setattr(flames, "profile_prompts", lambda profile: pd.DataFrame(
        {"prompt": ["Be kind?", "Lie?"], "dimension": ["Morality", "Legality"]}))
    monkeypatch.setattr(steering, "flames_generation", lambda model, profile, prompts, seed: (
        prompts, steering.Decoding(max_new_tokens=3, do_sample=False, seed=seed)))

    def no_judges(profile, seed, language="en"):
        raise AssertionError("the judges were loaded before every generation was found")

    def english_judges(profile, seed, language="en"):
        assert language == "en"  # the stand-in prompts are English: the English questions and validation set
        return judges

    monkeypatch.setattr(judge, "flames_judges", english_judges if judges else no_judges)


def test_two_judge_shards_fill_the_cache_a_single_run_fills(tiny_model, tiny_judges, tmp_path, monkeypatch):
    import json
    import shutil

    from helpers import judge

    _stand_in_chapter_11(monkeypatch, tiny_model, tiny_judges)

    def cached(name: str) -> dict[str, str]:
        return _cached_files(tmp_path / name, "scores")

    monkeypatch.setenv("BOOK_ROOT", str(tmp_path / "single"))
    main(["generate", "--profile", "ci", "--layers", "0,1"])
    shutil.copytree(tmp_path / "single" / "cache" / "generations", tmp_path / "sharded" / "cache" / "generations")
    main(["judge", "--profile", "ci", "--layers", "0,1"])
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path / "sharded"))
    main(["judge", "--profile", "ci", "--layers", "0,1", "--shard", "1/2"])
    assert len(cached("sharded")) == 1, "shard 1 scores layer 1 only, not the baseline"
    main(["judge", "--profile", "ci", "--layers", "0,1", "--shard", "0/2"])
    assert len(cached("single")) == 3 and cached("sharded") == cached("single")
    generations = [json.loads(p.read_text()) for p in (tmp_path / "single" / "cache" / "generations").rglob("*.json")]
    layer_1 = next(g["responses"] for g in generations if g["layer"] == 1)
    expected = judge.score_responses(tiny_judges, ["Be kind?", "Lie?"], ["Morality", "Legality"], layer_1)
    assert len({g["responses"][0] for g in generations}) == 3, "three conditions, three different answers"
    assert json.dumps(judge._encode_scores(expected)) in [json.dumps(json.loads(text)["scores"])
                                                          for text in cached("single").values()]


def test_judge_without_generations_fails_naming_the_generate_command(tiny_model, tmp_path, monkeypatch):
    from helpers import steering

    _stand_in_chapter_11(monkeypatch, tiny_model)
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path))
    with pytest.raises(steering.MissingGenerations, match=r"'baseline' responses: not cached .*"
                       r"run `python -m helpers generate --profile ci --layers 0,1` first"):
        main(["judge", "--profile", "ci", "--layers", "0,1"])
    main(["generate", "--profile", "ci", "--layers", "0,1", "--shard", "0/2"])
    with pytest.raises(steering.MissingGenerations, match=r"'added' responses at layer 1: not cached .*"
                       r"`python -m helpers generate --profile ci --layers 0,1 --shard 1/2 --seed 3` first"):
        main(["judge", "--profile", "ci", "--layers", "0,1", "--shard", "1/2", "--seed", "3"])
    monkeypatch.setattr(steering, "missing_saes", lambda corpus, profile, layers, seed: [1])
    with pytest.raises(steering.MissingGenerations, match=r"no SAE or surgery SAE cached at layer\(s\) \[1\]"):
        main(["judge", "--profile", "ci", "--layers", "0,1", "--shard", "1/2"])


def test_missing_saes_names_layers_without_a_pre_or_post_surgery_sae(tmp_path, monkeypatch):
    from helpers import sae, steering, surgery
    from helpers.profiles import load_profile

    profile = load_profile("ci")
    monkeypatch.setattr(sae, "sae_dir", lambda corpus, layer, settings: tmp_path / f"layer_{layer}")
    post = surgery.surgery_dir(None, 12, sae.settings_from_profile(profile), surgery.settings_from_profile(profile),
                               profile.sae_identify_split)
    assert post.parent == tmp_path / "layer_12" and post.name.startswith("surgery-")
    for directory in (tmp_path / "layer_12", post, tmp_path / "layer_18"):
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "training.json").write_text("{}")
    assert steering.missing_saes(None, profile, [6, 12, 18]) == [6, 18], "layer 18 has no surgery SAE"


def test_two_sae_corpus_shards_then_a_merge_equal_one_run(tiny_model, tmp_path, monkeypatch):
    """The `corpus` stage on the bundled data, with pooled input (the colab and paper recipe), through the tiny
    model: 1,552 texts in four chunks, two shards, a merge that neither loads the model nor runs it."""
    import yaml

    from helpers import models, sae
    from helpers.profiles import load_profile, params_dir

    raw = yaml.safe_load((params_dir() / "ci.yaml").read_text())
    raw.update(sae_input="pooled", sae_layers=[0, 1], steer_layers=[1])
    path = tmp_path / "pooled.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setattr(sae, "load_model", lambda *args, **kwargs: tiny_model)
    monkeypatch.setattr(models, "load_model", lambda *args, **kwargs: tiny_model)

    monkeypatch.setenv("BOOK_ROOT", str(tmp_path / "single"))
    main(["corpus", "--profile", str(path)])
    single = sae.split_corpus(load_profile(path), _cleaned(), extract=False)

    monkeypatch.setenv("BOOK_ROOT", str(tmp_path / "sharded"))
    with pytest.raises(sae.MissingCorpus, match=r"run `python -m helpers corpus --profile ci` first"):
        main(["train-sae", "--profile", str(path), "--shard", "1/2"])
    main(["corpus", "--profile", str(path), "--shard", "0/2"])
    with pytest.raises(sae.MissingCorpus):  # half the chunks: still not a corpus
        sae.split_corpus(load_profile(path), _cleaned(), extract=False)
    main(["corpus", "--profile", str(path), "--shard", "1/2"])

    def no_model(*args, **kwargs):
        raise AssertionError("the merge loaded or ran the model")

    monkeypatch.setattr(models, "load_model", no_model)
    monkeypatch.setattr(activations, "forward_hooked", no_model)
    main(["corpus", "--profile", str(path)])
    merged = sae.split_corpus(load_profile(path), _cleaned(), extract=False)
    assert merged.store.n_texts == single.store.n_texts == 1552 and merged.key() == single.key()
    for layer in (0, 1):
        np.testing.assert_array_equal(merged.pooled(layer), single.pooled(layer))
        np.testing.assert_array_equal(merged.vectors(layer, "train"), single.vectors(layer, "train"))


def test_a_token_level_corpus_is_not_sharded():
    with pytest.raises(ValueError, match="sae_input: tokens.*run `corpus` without --shard"):
        main(["corpus", "--profile", "ci", "--shard", "0/2"])
    with pytest.raises(ValueError, match="--layers does not apply to corpus"):
        main(["corpus", "--profile", "ci", "--layers", "6"])


def _cleaned():
    """The bundled sample's cleaned rows (chapter 01's), what the SAE stages split."""
    from helpers.data import profile_moral_data
    from helpers.profiles import load_profile

    return profile_moral_data(load_profile("ci")).cleaned


def _cached_files(root, kind: str) -> dict[str, str]:
    """The tiny model's cache files of one kind (generations, scores) under a book root, by name."""
    return {p.name: p.read_text() for p in (root / "cache" / kind / "tiny").glob("*.json")}
