"""Steering hooks: the edit is exactly α·(SAE(x) − x) where it should be, and nothing remains after the call."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from helpers import steering


class Doubler(torch.nn.Module):
    """A stand-in SAE (a module, as sae-lens SAEs are) whose reconstruction is 2x, so α·(SAE(x) − x) = α·x."""

    def encode(self, x):
        return x

    def decode(self, z):
        return 2 * z


def test_sae_edit_adds_alpha_times_the_reconstruction_error_on_covered_tokens():
    x = torch.tensor([[1.0, 2.0], [30.0, 40.0]])  # norms √5 and 50
    edited = steering.sae_edit(Doubler(), alpha=0.1, max_token_norm=10.0)(x)
    torch.testing.assert_close(edited, torch.tensor([[1.1, 2.2], [30.0, 40.0]]))


def test_hook_skips_padding_and_the_first_token_in_the_prefill_only():
    resid = torch.ones(2, 4, 3)
    skip = torch.tensor([[True, True, False, False], [True, False, False, False]])  # one pad, then the first token
    hook = steering.steering_hook(steering.vector_edit(torch.ones(3), alpha=2.0), skip)
    out = hook(resid, None)
    assert (out[0, :2] == 1).all() and (out[0, 2:] == 3).all() and (out[1, 0] == 1).all() and (out[1, 1:] == 3).all()
    assert (hook(torch.ones(2, 1, 3), None) == 3).all(), "a generated token (one position) is always edited"


def test_steered_forward_changes_by_exactly_the_edit_and_the_hook_is_gone_afterwards(tiny_model):
    enc = tiny_model.tokenizer(["Lying is morally"], return_tensors="pt")
    name = "blocks.0.hook_resid_post"
    seen = {}

    def record(resid, hook):  # runs after the steering hook on the same point: sees the edited residual
        seen["edited"] = resid.detach().clone()

    clean_logits, cache = tiny_model.bridge.run_with_cache(enc["input_ids"], names_filter=[name])
    skip = torch.zeros_like(enc["input_ids"], dtype=torch.bool)
    skip[0, 0] = True
    with tiny_model.bridge.hooks(fwd_hooks=[(name, steering.steering_hook(steering.sae_edit(Doubler(), 0.25), skip)),
                                            (name, record)]):
        steered_logits = tiny_model.bridge(enc["input_ids"])
    expected = cache[name].clone()
    expected[0, 1:] *= 1.25
    torch.testing.assert_close(seen["edited"], expected)
    assert not torch.allclose(steered_logits, clean_logits)
    torch.testing.assert_close(tiny_model.bridge(enc["input_ids"]), clean_logits)


def test_generation_with_a_zero_edit_is_token_identical_to_the_baseline(tiny_model):
    texts = ["Helping a friend is", "Lying to a friend is"]
    greedy = steering.Decoding(max_new_tokens=6, do_sample=False)
    base = steering.generate(tiny_model, texts, greedy)
    assert steering.generate(tiny_model, texts, greedy, layer=1, edit=steering.sae_edit(Doubler(), 0.0)) == base
    sampled = steering.Decoding(max_new_tokens=6, seed=3)
    assert steering.generate(tiny_model, texts, sampled) == steering.generate(tiny_model, texts, sampled), "seeded"
    assert steering.generate(tiny_model, texts, greedy) == base, "no hook left behind"
    with pytest.raises(ValueError, match="both layer and edit"):
        steering.generate(tiny_model, texts, greedy, layer=1)


def test_mean_difference_by_hand():
    x = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    v = steering.mean_difference(x, [True, True, False], [False, False, True])
    torch.testing.assert_close(v, torch.tensor([2.0, -2.0]))
    with pytest.raises(ValueError, match="at least one virtue"):
        steering.mean_difference(x, [False] * 3, [True] * 3)


def test_generations_are_cached_per_condition_and_a_broken_cache_file_is_regenerated(tiny_model, tmp_path,
                                                                                       monkeypatch):
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path))
    texts = ["Helping a friend is", "Lying to a friend is"]
    greedy = steering.Decoding(max_new_tokens=4, do_sample=False)
    real, calls = steering.generate, []
    monkeypatch.setattr(steering, "generate", lambda *a, **k: calls.append(a[3]) or real(*a, **k))
    edit = steering.sae_edit(Doubler(), 0.5)
    steered = steering.Condition("doubled", 1, edit, steering.tensor_fingerprint(torch.ones(2), 0.5))
    with pytest.raises(steering.MissingGenerations, match="'doubled' responses at layer 1: not cached"):
        steering.cached_generations(tiny_model, texts, greedy, steered)
    first = steering.ensure_generations(tiny_model, texts, greedy, steered)
    assert first == real(tiny_model, texts, greedy, 1, edit) and calls == [1]
    assert steering.cached_generations(tiny_model, texts, greedy, steered) == first, "looked up, not generated"
    [path] = (tmp_path / "cache" / "generations" / "tiny").glob("*.json")
    assert steering.ensure_generations(tiny_model, texts, greedy, steered) == first and calls == [1], "cached"
    other = dataclasses.replace(steered, fingerprint=steering.tensor_fingerprint(torch.ones(2), 0.6))
    steering.ensure_generations(tiny_model, texts, greedy, other)
    assert len(calls) == 2, "another edit is another cache entry"
    path.write_text(path.read_text()[:10])  # a truncated file
    with pytest.raises(steering.MissingGenerations, match="unreadable"):
        steering.cached_generations(tiny_model, texts, greedy, steered)
    assert steering.ensure_generations(tiny_model, texts, greedy, steered) == first and len(calls) == 3
    assert steering.ensure_generations(tiny_model, texts, greedy, steered) == first and len(calls) == 3
