"""SAE training, saving and evaluation against planted dictionaries and hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sae_lens import SAE, StandardSAE, StandardSAEConfig

from helpers import sae
from helpers.activations import TokenActivations


def planted(n: int, seed: int = 0, d: int = 32, n_atoms: int = 64, k: int = 3, offset: float = 5.0):
    """Samples that are sums of `k` random unit atoms (weights 1–2) plus a constant offset; returns (x, atoms)."""
    rng = np.random.default_rng(seed)
    atoms = rng.normal(size=(n_atoms, d))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    codes = np.zeros((n, n_atoms))
    for row in codes:
        row[rng.choice(n_atoms, k, replace=False)] = rng.uniform(1, 2, k)
    return (codes @ atoms + offset).astype(np.float32), atoms


def max_cosines(atoms: np.ndarray, decoder: np.ndarray) -> np.ndarray:
    """For every true atom, its largest |cosine| with a decoder row."""
    decoder = decoder / np.linalg.norm(decoder, axis=1, keepdims=True)
    return np.abs(atoms @ decoder.T).max(axis=1)


@pytest.fixture(scope="module")
def planted_data():
    x, atoms = planted(9000)
    return x[:8000], x[8000:], atoms


@pytest.fixture(scope="module")
def topk(planted_data):
    x, x_val, _ = planted_data
    settings = sae.SAESettings(architecture="topk", expansion=4, target_l0=3, lr=3e-3, batch_size=256, epochs=15,
                               warmup_epochs=1)
    return sae.train_sae(x, settings, x_val)


def test_topk_sae_recovers_a_planted_dictionary(planted_data, topk):
    x, x_val, atoms = planted_data
    found = max_cosines(atoms, topk.sae.W_dec.detach().numpy())
    chance = max_cosines(atoms, np.random.default_rng(2).normal(size=(4 * 32, 32)))
    assert chance.mean() < 0.6
    assert found.mean() > 0.9, f"mean max-cosine {found.mean():.2f} to the true atoms (chance {chance.mean():.2f})"
    assert sae.evaluate(topk.sae, x_val)["fvu"] < 0.15


def test_relu_l1_sae_recovers_a_planted_dictionary(planted_data):
    x, x_val, atoms = planted_data
    settings = sae.SAESettings(expansion=4, target_l0=3, l1_init=1.0, lr=3e-3, batch_size=256, epochs=20,
                               warmup_epochs=1)
    trained = sae.train_sae(x, settings, x_val)
    # the L1 penalty shrinks activations, so reconstruction is worse than TopK's, but the directions are found
    assert max_cosines(atoms, trained.sae.W_dec.detach().numpy()).mean() > 0.9


def test_adapt_l1_follows_the_paper_rule():
    assert sae.adapt_l1(1.0, 250, 100) == pytest.approx(1.2)
    assert sae.adapt_l1(1.0, 150, 100) == pytest.approx(1.05)
    assert sae.adapt_l1(1.0, 105, 100) == 1.0
    assert sae.adapt_l1(1.0, 50, 100) == pytest.approx(0.95)
    assert sae.adapt_l1(100.0, 1000, 1) == 100.0 and sae.adapt_l1(1e-6, 0, 1) == 1e-6, "clamped to [1e-6, 100]"


@pytest.mark.parametrize(("l1_init", "target", "direction"), [(0.3, 3, "up"), (20.0, 40, "down")])
def test_adaptive_l1_moves_l0_toward_the_target(planted_data, l1_init, target, direction):
    x, x_val, _ = planted_data
    settings = sae.SAESettings(expansion=4, target_l0=target, l1_init=l1_init, lr=3e-3, batch_size=512, epochs=12,
                               warmup_epochs=1)
    history = sae.train_sae(x, settings, x_val).history
    first, last = history.iloc[1], history.iloc[-1]
    if direction == "up":  # L0 far above a small target: λ grows every epoch and L0 falls
        assert (np.diff(history["l1_lambda"]) > 0).all() and last["l0"] < first["l0"]
    else:  # λ so large that L0 collapses far below the target: from then on λ shrinks and L0 recovers
        assert (np.diff(history["l1_lambda"])[1:] < 0).all() and last["l0"] > first["l0"]
    assert abs(last["l0"] - target) < abs(first["l0"] - target)


def test_saved_sae_reloads_with_sae_lens_and_encodes_identically(topk, planted_data, tmp_path):
    x, x_val, _ = planted_data
    directory = sae.save_sae(topk, tmp_path / "layer_001", {"hook_name": "blocks.1.hook_resid_post", "layer": 1})
    assert {p.name for p in directory.iterdir()} >= {"cfg.json", "sae_weights.safetensors", "history.csv"}
    loaded = SAE.load_from_disk(directory, device="cpu")
    assert loaded.cfg.metadata.hook_name == "blocks.1.hook_resid_post" and loaded.cfg.metadata.layer == 1
    np.testing.assert_array_equal(sae.encode(loaded, x_val), sae.encode(topk.sae, x_val))
    again = sae.load_sae(directory)
    pd.testing.assert_frame_equal(again.history, topk.history, check_exact=False)
    assert again.n_train == len(x) and not list(tmp_path.glob(".*tmp*")), "no temporary folder left behind"


def test_load_sae_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="cfg.json"):
        sae.load_sae(tmp_path)


def hand_sae(d: int = 4, **weights) -> StandardSAE:
    """An inference StandardSAE with identity encoder/decoder (d latents) and zero biases, then `weights` set."""
    model = StandardSAE(StandardSAEConfig(d_in=d, d_sae=d, apply_b_dec_to_input=False))
    with torch.no_grad():
        model.W_enc.copy_(torch.eye(d))
        model.W_dec.copy_(torch.eye(d))
        model.b_enc.zero_()
        model.b_dec.zero_()
        for name, value in weights.items():
            getattr(model, name).copy_(torch.as_tensor(value, dtype=torch.float32))
    return model


def test_evaluate_on_hand_built_saes():
    x = np.array([[1.0, 2.0, 0.0, 0.0], [3.0, -2.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    mean_only = hand_sae(W_dec=np.zeros((4, 4)), b_dec=x.mean(0))  # x̂ = x̄ for every row: FVU exactly 1
    assert sae.evaluate(mean_only, x)["fvu"] == pytest.approx(1.0)
    one_latent = hand_sae(W_enc=np.zeros((4, 4)), b_enc=[1.0, 0.0, -1.0, 0.0])  # only latent 0 ever fires
    result = sae.evaluate(one_latent, x)
    assert result["l0"] == 1.0 and result["alive_fraction"] == 0.25
    identity = sae.evaluate(hand_sae(), np.abs(x))  # ReLU of a non-negative input is the input
    assert identity["fvu"] == 0.0 and identity["mse"] == 0.0


def test_settings_and_training_inputs_are_checked():
    with pytest.raises(ValueError, match="architecture"):
        sae.SAESettings(architecture="jumprelu")
    with pytest.raises(ValueError, match="target_l0"):
        sae.SAESettings(target_l0=0)
    with pytest.raises(ValueError, match="fewer than one batch"):
        sae.train_sae(np.ones((10, 4)), sae.SAESettings(batch_size=64))
    with pytest.raises(ValueError, match="width"):
        sae.encode(hand_sae(), np.ones((2, 3)))


def hand_corpus(layer: int = 0) -> sae.Corpus:
    """Two train texts and one val text at one layer; text 1 has a secondary sink (norm ≫ the rest)."""
    acts = np.array([[9, 9, 9, 9], [1, 0, 0, 0], [0, 2, 0, 0],          # text 0: first token, then two tokens
                     [9, 9, 9, 9], [500, 0, 0, 0], [1, 1, 0, 0],        # text 1: first, a sink, one token
                     [9, 9, 9, 9], [0, 0, 3, 0], [0, 0, 1, 1]], np.float32)  # text 2 (val)
    tokens = TokenActivations({layer: acts}, owner=np.repeat([0, 1, 2], 3), position=np.tile([0, 1, 2], 3),
                              n_texts=3)
    rows = pd.DataFrame({"split": ["train", "train", "val", "val"], "text_index": [0, 1, 2, 2],
                         "action": ["a", "b", "c", "c"]})
    return sae.Corpus("hand", None, rows, ["a", "b", "c"], "tokens", 128, tokens=tokens)


def test_token_corpus_leaves_out_first_tokens_and_secondary_sinks():
    corpus = hand_corpus()
    train = corpus.vectors(0, "train")
    assert train.tolist() == [[1, 0, 0, 0], [0, 2, 0, 0], [1, 1, 0, 0]]
    assert corpus.max_token_norm(0) == pytest.approx(10 * np.median([1, 2, 500, np.sqrt(2)]))
    codes = corpus.sentence_codes(hand_sae(), 0, "val")  # identity SAE: code = mean of the tokens' ReLU
    np.testing.assert_allclose(codes, [[0, 0, 2, 0.5], [0, 0, 2, 0.5]])  # one row per exploded val row
    with pytest.raises(ValueError, match="unknown split"):
        corpus.vectors(0, "test")


def test_pooled_corpus_gives_one_vector_per_exploded_row():
    corpus = hand_corpus()
    corpus.input = "pooled"
    np.testing.assert_allclose(corpus.vectors(0, "val"), [[3, 3, 13 / 3, 10 / 3]] * 2)
    assert corpus.max_token_norm(0) is None


def test_splice_kl_is_zero_for_the_identity_and_positive_for_a_bad_reconstruction(tiny_model):
    texts = ["Lying is morally", "Keeping a promise to your little brother is morally"]
    assert sae.splice_kl(tiny_model, texts, 1, lambda x: x) == pytest.approx(0.0, abs=1e-6)
    assert sae.splice_kl(tiny_model, texts, 1, torch.zeros_like) > 1e-3
    passthrough = sae.on_covered_tokens(torch.zeros_like, max_token_norm=0.0)  # covers no token
    assert sae.splice_kl(tiny_model, texts, 1, passthrough) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="out of range"):
        sae.splice_kl(tiny_model, texts, 5, lambda x: x)


def test_splices_sharing_a_clean_forward_equal_each_splice_alone(tiny_model):
    """Several splices at once (one clean forward per batch) give each splice's own KL, bit for bit, in order."""
    texts = ["Lying is morally", "Keeping a promise to your little brother is morally", "Cheating is"]
    half = lambda x: 0.5 * x  # noqa: E731
    together = sae.splice_kls(tiny_model, texts, [(1, torch.zeros_like), (0, half), (1, lambda x: x)], batch_size=2)
    alone = [sae.splice_kl(tiny_model, texts, 1, torch.zeros_like, batch_size=2),
             sae.splice_kl(tiny_model, texts, 0, half, batch_size=2)]
    assert together[:2] == alone and together[0] != together[1]
    assert together[2] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="out of range"):
        sae.splice_kls(tiny_model, texts, [(0, half), (7, half)])


def test_layer_reports_pair_each_layers_splice_and_mean_ablation_kl_in_layer_order(monkeypatch):
    """Two layers, one shared splice pass: each report takes its own layer's two KLs, the mean-ablation splice puts
    the train mean on covered tokens, and quality comes from the layer's validation vectors."""
    base = hand_corpus()
    acts = base.tokens.acts[0]
    corpus = hand_corpus()
    corpus.tokens = TokenActivations({0: acts, 3: 2 * acts}, owner=base.tokens.owner, position=base.tokens.position,
                                     n_texts=3)
    seen = {}

    def splice_kls(model, texts, splices, max_length):  # stands in for the forwards: planted KLs, splices kept
        seen.update(texts=texts, splices=splices)
        return [0.1, 0.9, 0.2, 1.8]

    monkeypatch.setattr(sae, "splice_kls", splice_kls)
    trained = {3: sae.TrainedSAE(hand_sae(), pd.DataFrame(), 7, 1.5),
               0: sae.TrainedSAE(hand_sae(), pd.DataFrame(), 5, 0.5)}
    reports = sae.layer_reports(corpus, trained, n_splice_texts=1)
    assert seen["texts"] == ["c"] and [layer for layer, _ in seen["splices"]] == [3, 3, 0, 0]
    assert (reports[3]["splice_kl"], reports[3]["mean_ablation_kl"]) == (0.1, 0.9)
    assert (reports[0]["splice_kl"], reports[0]["mean_ablation_kl"]) == (0.2, 1.8)
    assert (reports[3]["n_train"], reports[0]["train_seconds"]) == (7, 0.5)
    tokens = torch.tensor([[1.0, 0.0, 0.0, 0.0], [5000.0, 0.0, 0.0, 0.0]])  # a covered token, a secondary sink
    np.testing.assert_allclose(seen["splices"][3][1](tokens).numpy(), [[2 / 3, 1, 0, 0], [5000, 0, 0, 0]])
    assert reports[0]["fvu_val"] == sae.evaluate(hand_sae(), corpus.vectors(0, "val"))["fvu"]


def test_segment_mean_by_hand_in_numpy_and_torch():
    x = np.array([[1.0, 2.0], [3.0, 4.0], [10.0, 0.0]])
    owner = np.array([0, 0, 2])
    expected = np.array([[2.0, 3.0], [0.0, 0.0], [10.0, 0.0]])
    np.testing.assert_allclose(sae.segment_mean(x, owner, 3), expected)
    xt = torch.tensor(x, requires_grad=True)
    mean = sae.segment_mean(xt, torch.tensor(owner), 3)
    mean.sum().backward()
    np.testing.assert_allclose(xt.grad.numpy(), [[0.5, 0.5], [0.5, 0.5], [1.0, 1.0]])
