"""Pooling, left padding, the on-disk cache (resume, truncation) and the anisotropy statistic."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import torch

from helpers import activations as act
from helpers.shards import Shard

TEXTS = ["Helping a friend move house is morally", "Lying is morally", "Stealing a bike is morally",
         "Keeping a promise to your little brother even when it costs you is morally", "Cheating is morally"]


def test_pool_on_hand_computed_left_padded_batch():
    resid = torch.tensor([[[9.0, 9.0], [1.0, 2.0], [3.0, 4.0], [5.0, 0.0]],      # one pad, then 3 tokens
                          [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [6.0, 6.0]]])    # no pad
    mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    pooled = act.pool(resid, mask)
    torch.testing.assert_close(pooled["mean"], torch.tensor([[3.0, 2.0], [3.0, 3.0]]))
    torch.testing.assert_close(pooled["mean_nosink"], torch.tensor([[4.0, 2.0], [11 / 3, 11 / 3]]))
    torch.testing.assert_close(pooled["last"], torch.tensor([[5.0, 0.0], [6.0, 6.0]]))


def test_pool_right_padding_and_single_token():
    resid = torch.tensor([[[1.0], [3.0], [0.0]], [[7.0], [0.0], [0.0]]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    pooled = act.pool(resid, mask)
    torch.testing.assert_close(pooled["mean"], torch.tensor([[2.0], [7.0]]))
    torch.testing.assert_close(pooled["mean_nosink"], torch.tensor([[3.0], [7.0]]))
    torch.testing.assert_close(pooled["last"], torch.tensor([[3.0], [7.0]]))


def test_padded_batch_equals_each_text_alone(smollm2):
    """Left padding with the attention mask: batched pooled vectors equal the unpadded single-text ones."""
    batched = act.forward_pooled(smollm2, TEXTS, max_length=128, layers=range(smollm2.n_layers))
    for i, text in enumerate(TEXTS):
        alone = act.forward_pooled(smollm2, [text], max_length=128, layers=range(smollm2.n_layers))
        for key, value in alone.items():
            scale = value[0].norm()
            assert float((batched[key][i] - value[0]).norm() / scale) < 1e-5, key


def test_layers_match_hugging_face_hidden_states(smollm2):
    enc = smollm2.tokenizer(TEXTS[:2], return_tensors="pt", padding=True, padding_side="left")
    with torch.no_grad():
        hidden = smollm2.bridge.original_model(**enc, output_hidden_states=True).hidden_states
    pooled = act.forward_pooled(smollm2, TEXTS[:2], max_length=128, layers=range(smollm2.n_layers))
    for layer in (0, 12, 28):  # hidden_states[l + 1] is block l's output (the last entry is after the final norm)
        expected = act.pool(hidden[layer + 1], enc["attention_mask"])["last"]
        torch.testing.assert_close(pooled[f"last.{layer}"], expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("fixture", ["smollm2", "tiny_model"])
def test_extraction_equals_the_bridge_hook_bit_for_bit_on_shared_weights(fixture, request):
    """Extraction runs the unwrapped twin with plain forward hooks; its block outputs must be exactly the bridge's
    `hook_resid_post` (so caches and reference numbers do not depend on which one runs), on the same tensors."""
    model = request.getfixturevalue(fixture)
    layers = list(range(model.n_layers))
    mine, mask = act.forward_hooked(model, TEXTS, 128, layers, lambda resid, mask: {"resid": resid})
    seen = {}
    hooks = [(f"blocks.{layer}.hook_resid_post", lambda resid, hook, layer=layer: seen.__setitem__(layer, resid.float()))
             for layer in layers]
    enc = model.tokenizer(TEXTS, return_tensors="pt", padding=True, padding_side="left")
    with torch.no_grad(), model.bridge.hooks(fwd_hooks=hooks):
        model.bridge.original_model.base_model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    for layer in layers:
        assert torch.equal(mine[f"resid.{layer}"][mask.bool()], seen[layer][mask.bool()]), layer
    bridge_tensors = {t.data_ptr() for t in model.bridge.original_model.parameters()}
    assert {t.data_ptr() for t in model.plain.parameters()} <= bridge_tensors, "the twin must not copy the weights"
    bridge_buffers = {id(t) for t in model.bridge.original_model.buffers()}
    assert all(id(t) in bridge_buffers for t in model.plain.buffers()), "the twin shares every buffer object"
    assert not any(type(m).__name__.endswith("Bridge") for m in model.plain.modules()), "the twin is unwrapped"


def test_prompts_use_the_template_and_reject_bad_input():
    assert act.prompts(["lying"], "{action} is morally") == ["lying is morally"]
    with pytest.raises(ValueError, match="placeholder"):
        act.prompts(["lying"], "{text} is morally")
    with pytest.raises(ValueError, match="empty"):
        act.prompts([], "{action} is morally")


def _extract(model, tmp_path, monkeypatch, **kwargs):
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path))
    return act.extract(model, "tiny", TEXTS, batch_size=2, chunk_size=2, progress=False, **kwargs)


def test_cache_resumes_after_an_interruption(tiny_model, tmp_path, monkeypatch):
    reference = _extract(tiny_model, tmp_path / "a", monkeypatch)
    calls = {"n": 0}
    real = act.forward_pooled

    def flaky(model, batch, max_length, layers):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed while the second chunk runs
        return real(model, batch, max_length, layers)

    monkeypatch.setattr(act, "forward_pooled", flaky)
    with pytest.raises(KeyboardInterrupt):
        _extract(tiny_model, tmp_path / "b", monkeypatch)
    chunks = sorted((act.store_dir("tiny", TEXTS, 128) / "chunks").iterdir())
    assert [p.name for p in chunks] == ["chunk_00000.safetensors"], "only the finished chunk is on disk"

    calls["n"] = 10  # no more failures; count the batches the resumed run computes
    resumed = _extract(tiny_model, tmp_path / "b", monkeypatch)
    assert calls["n"] == 10 + 2, "the finished chunk (2 of 5 texts) is not recomputed; 3 texts = 2 batches"
    for layer in range(2):
        for pooling in act.POOLINGS:
            np.testing.assert_array_equal(resumed.load(layer, pooling), reference.load(layer, pooling))
    assert not (resumed.directory / "chunks").exists()


def test_rows_follow_text_order_despite_length_sorting(tiny_model, tmp_path, monkeypatch):
    store = _extract(tiny_model, tmp_path, monkeypatch)
    single = act.forward_pooled(tiny_model, [TEXTS[3]], max_length=128, layers=[1])
    np.testing.assert_allclose(store.load(1, "last")[3], single["last.1"][0].numpy(), rtol=1e-5, atol=1e-5)


def _halve(path):
    """Cut a file to its first half, as a full disk or an interrupted copy would."""
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


@pytest.mark.parametrize(("damaged", "recomputed"), [("chunk_00000.safetensors", 4), ("layer_000.safetensors", 5),
                                                     ("manifest.json", 5)])
def test_truncated_cache_file_is_detected_logged_and_rebuilt(damaged, recomputed, tiny_model, tmp_path, monkeypatch,
                                                             caplog):
    reference = _extract(tiny_model, tmp_path / "reference", monkeypatch)
    if damaged.startswith("chunk"):  # shard 0/2 leaves chunks 0 and 2 (of 3) unmerged; chunk 2 (1 text) stays whole
        assert _extract(tiny_model, tmp_path / "damaged", monkeypatch, shard=Shard(0, 2)) is None
        path = act.store_dir("tiny", TEXTS, 128) / "chunks" / damaged
    else:
        path = _extract(tiny_model, tmp_path / "damaged", monkeypatch).directory / damaged
    _halve(path)
    if not damaged.startswith("chunk"):
        with pytest.raises(act.CacheError, match=f"{damaged}: (missing or truncated|unreadable)"):
            act.open_store(path.parent)
    forwarded = []
    real = act.forward_pooled

    def counting(model, batch, max_length, layers):
        forwarded.extend(batch)
        return real(model, batch, max_length, layers)

    monkeypatch.setattr(act, "forward_pooled", counting)
    with caplog.at_level(logging.WARNING, logger="helpers.activations"):
        rebuilt = _extract(tiny_model, tmp_path / "damaged", monkeypatch)
    assert re.search(f"{damaged}: (truncated or unreadable .*computing it again|.*rebuilding the cache)", caplog.text)
    assert len(forwarded) == recomputed, "only the damaged file's texts are computed again"
    for layer in range(2):
        for pooling in act.POOLINGS:
            np.testing.assert_array_equal(rebuilt.load(layer, pooling), reference.load(layer, pooling))


def test_truncated_token_cache_is_detected_and_rebuilt(tiny_model, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path))
    tokens = act.token_activations(tiny_model, "tiny", TEXTS, layers=[0, 1], batch_size=2, progress=False)
    (path,) = (tmp_path / "cache" / "tokens" / "tiny").glob("*.safetensors")
    _halve(path)
    with caplog.at_level(logging.WARNING, logger="helpers.activations"):
        again = act.token_activations(tiny_model, "tiny", TEXTS, layers=[0, 1], batch_size=2, progress=False)
    assert f"{path.name}: truncated or unreadable" in caplog.text
    np.testing.assert_array_equal(again.owner, tokens.owner)
    np.testing.assert_array_equal(again.acts[1], tokens.acts[1])


def test_store_rejects_unknown_layer_and_pooling(tiny_model, tmp_path, monkeypatch):
    store = _extract(tiny_model, tmp_path, monkeypatch, cache_dtype="float16")
    assert store.load(0, "last").dtype == np.float32
    with pytest.raises(ValueError, match="layer 7 out of range"):
        store.load(7)
    with pytest.raises(ValueError, match="unknown pooling"):
        store.load(0, "max")


def test_mean_pairwise_cosine_matches_brute_force():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)) + 3.0
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = u @ u.T
    brute = (cos.sum() - np.trace(cos)) / (40 * 39)
    assert act.mean_pairwise_cosine(x) == pytest.approx(brute)
    assert act.mean_pairwise_cosine(np.ones((5, 3))) == pytest.approx(1.0)
    assert act.mean_pairwise_cosine(act.center(x)) == pytest.approx(
        (np.sum((act.center(x) / np.linalg.norm(act.center(x), axis=1, keepdims=True)).sum(0) ** 2) - 40) / (40 * 39))


def test_layer_subset_matches_the_full_extraction(tiny_model, tmp_path, monkeypatch):
    full = _extract(tiny_model, tmp_path, monkeypatch)
    subset = _extract(tiny_model, tmp_path, monkeypatch, layers=[1])
    assert subset.directory != full.directory and subset.manifest["layers"] == [1]
    np.testing.assert_array_equal(subset.load(1, "mean"), full.load(1, "mean"))
    with pytest.raises(ValueError, match="layer 0 out of range"):
        subset.load(0)
    with pytest.raises(ValueError, match="non-empty subset"):
        _extract(tiny_model, tmp_path, monkeypatch, layers=[2])


def test_token_activations_hold_every_real_token_with_its_position(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path))
    tokens = act.token_activations(tiny_model, "tiny", TEXTS, layers=[0, 1], batch_size=2, progress=False)
    lengths = [len(ids) for ids in tiny_model.tokenizer(TEXTS)["input_ids"]]
    assert len(tokens.owner) == sum(lengths)
    for i, n in enumerate(lengths):
        assert tokens.position[tokens.owner == i].tolist() == list(range(n)), "positions count from the first real token"
    x, owner = tokens.tokens(1)
    assert len(x) == sum(lengths) - len(TEXTS) and set(owner) == set(range(len(TEXTS))), "first token of each text left out"
    pooled = act.forward_pooled(tiny_model, TEXTS, max_length=128, layers=[1])
    np.testing.assert_allclose(tokens.pooled_mean(1), pooled["mean.1"].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tokens.pooled_mean(1, skip_first=True), pooled["mean_nosink.1"].numpy(), rtol=1e-5,
                               atol=1e-5)
    again = act.token_activations(tiny_model, "tiny", TEXTS, layers=[0, 1], batch_size=5, progress=False)
    np.testing.assert_array_equal(again.acts[0], tokens.acts[0])  # read from the cache
    with pytest.raises(ValueError, match="was not extracted"):
        tokens.tokens(2)
