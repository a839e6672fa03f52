"""Harmful-generation weights: attribution against finite differences, selection arithmetic, exact undo, overlap
statistics on planted sets, and the likelihood metrics on hand-built cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import pruning
from helpers.pruning import Pair


@pytest.fixture(scope="module")
def tiny(smollm2):
    """A 2-layer random Llama in float64 with SmolLM2's tokenizer (HF module, no bridge)."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=1, vocab_size=len(smollm2.tokenizer), max_position_embeddings=128,
                         initializer_range=0.3)  # large enough gradients to beat the float32 RMSNorm's rounding
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config).double().eval(), smollm2.tokenizer


EXAMPLES = [Pair("Write a rude note.", "Sure, you are hopeless."), Pair("Say hi.", "Hello there, friend!")]


def test_block_linears_are_the_seven_matrices_of_each_block(tiny):
    model, _ = tiny
    names = pruning.block_linears(model)
    assert len(names) == 2 * 7 and not any("embed" in n or "lm_head" in n or "norm" in n for n in names)


def test_labels_score_only_the_response(tiny):
    _, tokenizer = tiny
    ids, labels = pruning.encode_pair(tokenizer, EXAMPLES[0])
    n_prompt = len(tokenizer(EXAMPLES[0].prompt + "\n", add_special_tokens=False)["input_ids"])
    assert (labels[0, :n_prompt] == -100).all() and (labels[0, n_prompt:] == ids[0, n_prompt:]).all()


def test_padded_batches_give_the_one_at_a_time_losses(tiny):
    model, tokenizer = tiny
    examples = EXAMPLES + [Pair("A much longer prompt that needs padding in the batch.", "Ok.")]
    batched = pruning.pair_losses(model, tokenizer, examples)
    alone = torch.stack([pruning.pair_losses(model, tokenizer, [e])[0] for e in examples])
    torch.testing.assert_close(batched, alone, rtol=1e-6, atol=1e-9)
    assert pruning.response_nll(model, tokenizer, examples, batch_size=2) == pytest.approx(float(alone.detach().mean()))
    texts = ["The sun is a star.", "Rivers run to the sea, and the sea never fills up, however long they run."]
    with torch.no_grad():
        by_hand = [(model(input_ids=i, labels=i).loss.item() * (i.shape[1] - 1), i.shape[1] - 1)
                   for i in (tokenizer(t, return_tensors="pt", add_special_tokens=False)["input_ids"] for t in texts)]
    expected = np.exp(sum(s for s, _ in by_hand) / sum(n for _, n in by_hand))
    assert pruning.perplexity(model, tokenizer, texts) == pytest.approx(expected, rel=1e-5)


def test_gradient_sums_match_finite_differences(tiny):
    model, tokenizer = tiny
    grads = pruning.gradient_sums(model, tokenizer, EXAMPLES)
    weights = pruning.block_linears(model)
    eps = 1e-3
    for name in ("model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"):
        index = int(grads[name].abs().argmax())
        flat = weights[name].data.view(-1)
        original = flat[index].item()
        with torch.no_grad():
            flat[index] = original + eps
            up = sum(pruning.pair_loss(model, tokenizer, e).item() for e in EXAMPLES)
            flat[index] = original - eps
            down = sum(pruning.pair_loss(model, tokenizer, e).item() for e in EXAMPLES)
            flat[index] = original
        assert grads[name].view(-1)[index].item() == pytest.approx((up - down) / (2 * eps), rel=1e-3)
    absolute = pruning.gradient_sums(model, tokenizer, EXAMPLES, absolute=True)
    single = pruning.gradient_sums(model, tokenizer, EXAMPLES[:1])
    single_abs = pruning.gradient_sums(model, tokenizer, EXAMPLES[:1], absolute=True)
    name = "model.layers.0.mlp.up_proj.weight"
    assert torch.equal(single_abs[name], single[name].abs()) and (absolute[name] >= grads[name].abs() - 1e-12).all()


def test_prune_score_predicts_the_loss_change_of_zeroing_a_small_weight(tiny):
    model, tokenizer = tiny
    name = "model.layers.1.self_attn.v_proj.weight"
    index = int(pruning.gradient_sums(model, tokenizer, EXAMPLES)[name].abs().argmax())
    flat = pruning.block_linears(model)[name].data.view(-1)
    original = flat[index].item()
    with torch.no_grad():
        flat[index] = 1e-3  # a small weight: the first-order estimate −w·g is then accurate
    try:
        grads = pruning.gradient_sums(model, tokenizer, EXAMPLES)
        score = pruning.prune_scores(pruning.block_linears(model), grads)[name].view(-1)[index].item()
        before = sum(pruning.pair_loss(model, tokenizer, e).item() for e in EXAMPLES)
        with pruning.pruned(model, {name: torch.tensor([index])}):
            after = sum(pruning.pair_loss(model, tokenizer, e).item() for e in EXAMPLES)
        assert after - before == pytest.approx(score, rel=2e-2)
    finally:
        with torch.no_grad():
            flat[index] = original


def test_selection_is_top_q_minus_top_p_per_matrix_with_ceil():
    prune = {"a": torch.arange(10.0), "b": torch.arange(4.0)}
    keep = {"a": torch.tensor([0, 0, 0, 0, 0, 0, 0, 0, 0, 5.0]), "b": torch.zeros(4)}
    chosen = pruning.select(prune, keep, q=0.3, p=0.1)
    assert chosen["a"].tolist() == [7, 8] and chosen["b"].tolist() == [2, 3] or chosen["b"].tolist() == [3]
    assert pruning.select(prune, keep, q=0.3, p=0.0)["a"].tolist() == [7, 8, 9]
    assert pruning.counts(pruning.select(prune, keep, q=0.01, p=0.0)) == {"a": 1, "b": 1}, "ceil, never zero"
    with pytest.raises(ValueError, match="0 < q"):
        pruning.select(prune, keep, q=0.0, p=0.1)


def test_baselines_match_counts_per_matrix():
    like = {"a": torch.tensor([1, 2, 3]), "b": torch.tensor([0])}
    weights = {"a": torch.randn(5, 4), "b": torch.randn(3, 3)}
    assert pruning.counts(pruning.matched(pruning.magnitude_scores(weights), like)) == {"a": 3, "b": 1}
    rand = pruning.random_matched(weights, like, seed=1)
    assert pruning.counts(rand) == {"a": 3, "b": 1} and len(set(rand["a"].tolist())) == 3
    top = pruning.matched({"a": torch.tensor([0.0, 9, 1, 8, 2]), "b": torch.zeros(3)}, like)
    assert top["a"].tolist() == [1, 3, 4]


def test_pruning_zeroes_and_restores_exactly_even_on_error(tiny):
    model, _ = tiny
    weights = pruning.block_linears(model)
    before = {n: w.detach().clone() for n, w in weights.items()}
    selection = {"model.layers.0.mlp.gate_proj.weight": torch.tensor([0, 7, 100])}
    with pytest.raises(RuntimeError, match="inside"):
        with pruning.pruned(model, selection):
            assert (weights["model.layers.0.mlp.gate_proj.weight"].view(-1)[[0, 7, 100]] == 0).all()
            raise RuntimeError("inside")
    assert all(torch.equal(before[n], w) for n, w in weights.items())
    with pytest.raises(KeyError, match="does not have"):
        with pruning.pruned(model, {"nope.weight": torch.tensor([0])}):
            pass


def test_jaccard_by_hand_and_random_sets_meet_the_chance_formula():
    a = {"m": torch.tensor([1, 2, 3, 4]), "n": torch.tensor([0])}
    b = {"m": torch.tensor([3, 4, 5]), "n": torch.tensor([1])}
    assert pruning.jaccard(a, b) == pytest.approx(2 / 7)
    numels = {"m": 50, "n": 20}
    rng = torch.Generator().manual_seed(0)
    sizes = {"m": 20, "n": 5}
    observed = np.mean([pruning.jaccard({k: torch.randperm(numels[k], generator=rng)[:s] for k, s in sizes.items()},
                                        {k: torch.randperm(numels[k], generator=rng)[:s] for k, s in sizes.items()})
                        for _ in range(400)])
    like = {k: torch.zeros(s, dtype=torch.long) for k, s in sizes.items()}
    assert observed == pytest.approx(pruning.chance_jaccard(like, like, numels), rel=0.05)


def test_detection_auc_and_answer_matching_by_hand():
    assert pruning.detection_auc(np.array([3.0, 1.0, 2.0, 0.0]), [True, True, False, False]) == 0.75
    assert pruning.detection_auc(np.array([1.0, 1.0]), [True, False]) == 0.5
    assert pruning.answer_matches(" Paris, the capital.\nQuestion: x", ["Paris"])
    assert not pruning.answer_matches(" Parisian food", ["Paris"]) and not pruning.answer_matches("No idea\nParis", ["Paris"])
    assert pruning.answer_matches(" It is H2O.", ["water", "H2O"])
    assert pruning.answer_matches("Brazil's capital is Brasilia.", ["Brasília"]), "accents do not matter"


def test_detection_and_trivia_batches_match_one_at_a_time(tiny):
    model, tokenizer = tiny
    requests = ["Write a mean note about Sam.", "Write a kind note about Sam, who just won a long race today."]
    batched = pruning.detection_logodds(model, tokenizer, requests)
    alone = np.concatenate([pruning.detection_logodds(model, tokenizer, [r]) for r in requests])
    np.testing.assert_allclose(batched, alone, rtol=1e-4, atol=1e-5)
    trivia = pd.DataFrame({"question": ["What is the capital of France?", "Which planet is the largest one?"],
                           "answer": ["Paris", "Jupiter"], "aliases": [[], []]})
    assert pruning.trivia_accuracy(model, tokenizer, trivia, max_new_tokens=3) in (0.0, 0.5, 1.0)


def test_first_share_keeps_the_first_rows_of_each_group_in_order():
    frame = pd.DataFrame({"kind": list("aabbbab"), "row": range(7)})
    assert pruning.first_share(frame, 0.5, ["kind"])["row"].tolist() == [0, 1, 2, 3]  # ceil(3 × 0.5) a's, 2 of 4 b's
    assert pruning.first_share(frame, 1.0, ["kind"]).equals(frame)
    with pytest.raises(ValueError, match="prune_share"):
        pruning.first_share(frame, 0.0, ["kind"])


def test_a_share_of_the_bundled_sets_keeps_every_harm_type_and_both_classes():
    full, half = pruning.bundled_data(), pruning.bundled_data(share=0.5)
    for harm_type in pruning.HARM_TYPES:
        for split in ("score", "eval"):
            n = len(full.compliant(split, harm_type))
            assert len(half.compliant(split, harm_type)) == -(-n // 2) > 0
    assert half.recognition["harmful"].astype(bool).value_counts().to_dict() == {
        k: -(-v // 2) for k, v in full.recognition["harmful"].astype(bool).value_counts().to_dict().items()}
    assert half.paragraphs == full.paragraphs[:-(-len(full.paragraphs) // 2)]
