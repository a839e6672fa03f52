"""Surgery losses, sampler and frozen weights, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig

from helpers import surgery
from synthetic import planted_row_tokens


def test_sample_weights_use_the_intended_weight_for_prototypes_and_balance_poles():
    m_virtue = np.array([0.8, 0.6, 0.3, 0.0, 0.2, 0.0])
    m_vice = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.9])
    # t = 0.8 → 3 (the original overwrote this with 2), 0.6 → 2, 0.3 → 1.5, 0 → 0.3, 0.2 → 1, 0.9 → 3;
    # 4 virtue rows vs 1 vice row: ratio 4 > 1.5, so the vice row × min(4, 3)
    np.testing.assert_allclose(surgery.sample_weights(m_virtue, m_vice), [3, 2, 1.5, 0.3, 1, 9])
    balanced = surgery.sample_weights(np.array([0.5, 0.0]), np.array([0.0, 0.5]))
    np.testing.assert_allclose(balanced, [1.5, 1.5])  # t = 0.5 lies in (0.25, 0.5]; one row per pole: no balancing


def test_alignment_loss_only_counts_positive_entries():
    s = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    h = torch.tensor([[0.5, 0.0], [0.0, 0.25]])
    assert float(surgery.alignment_loss(s, h)) == pytest.approx((0.0 + 0.25 ** 2) / 2)
    assert float(surgery.alignment_loss(s, torch.zeros_like(h))) == 0.0


POLE = torch.tensor([[0], [1], [2], [3], [2], [3], [2], [3], [2], [3]])  # care → latent 0, harm → 1, others 2 / 3


def test_polarity_loss_on_a_hand_batch():
    z = torch.tensor([[1.0, 0, 0, 0]] * 4 + [[0, 1.0, 0, 0]] * 4)
    m_virtue = torch.tensor([1.0] * 4 + [0.0] * 4)
    m_vice = 1 - m_virtue
    # care/harm separated by 1 > margin: 0; the four other pairs are silent: 0.5 on V and 0.5 on C each
    assert float(surgery.polarity_loss(z, m_virtue, m_vice, POLE)) == pytest.approx(4 * 1.0 / 10)
    assert float(surgery.polarity_loss(z[1:], m_virtue[1:], m_vice[1:], POLE)) == 0.0, "3 virtue rows: skipped"


def test_prototype_loss_rewards_the_human_order():
    h = torch.zeros(20, 10)
    h[:16, 0] = torch.linspace(0.1, 3.1, 16)  # 16 graded rows on dimension 0, steps of 0.2
    h[:5, 1] = 0.5                            # too few rows for dimension 1: ignored
    gen = torch.Generator().manual_seed(0)
    assert float(surgery.prototype_loss(10 * h, h, gen)) == 0.0, "Δh·Δs ≥ 10·0.2² > margin"
    assert float(surgery.prototype_loss(-10 * h, h, gen)) > surgery.PROTOTYPE_MARGIN
    assert float(surgery.prototype_loss(h, torch.zeros(20, 10), gen)) == 0.0


def test_rank_pairs_sizes():
    gen = torch.Generator().manual_seed(0)
    i, k = surgery.rank_pairs(300, gen)
    assert len(i) == len(k) == 100 and not set(i.tolist()) & set(k.tolist()), "disjoint halves of a permutation"
    i, k = surgery.rank_pairs(16, gen)
    assert len(i) == 16 and (i != k).all(), "a roll of the permutation when n < 200"


def test_monosemantic_loss_on_a_hand_batch():
    h = torch.tensor([[0.9, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0.5, 0, 0, 0, 0, 0, 0], [0.0] * 10])
    z = torch.tensor([[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]])
    # latent 0 (care) is off on rows 1 and 2 (2², 3²); latent 1 (harm... dim 3) on rows 0 and 2 (4², 6²)
    loss = surgery.monosemantic_loss(z, h, torch.tensor([0, 1]), torch.tensor([0, 3]))
    assert float(loss) == pytest.approx((4 + 9 + 16 + 36) / 4)


def test_latent_sets_on_hand_correlations():
    r = np.zeros((6, 10))
    r[0, 0] = 0.4               # strictly monosemantic care latent
    r[1, 3], r[1, 2] = 0.3, 0.25  # two significant dimensions: readout of 2 and 3, not strictly monosemantic
    r[2, 5] = 0.07              # only a pole latent (0.05 < r ≤ 0.1)
    r[3, 0] = -0.5              # negative: never chosen for readout or pole, but strictly monosemantic
    sets = surgery.latent_sets(r)
    assert sets.tuned.tolist() == [0, 1, 2, 3]
    assert sets.mono.tolist() == [0, 3] and sets.mono_dim.tolist() == [0, 0]
    np.testing.assert_allclose(sets.readout.sum(1), [1, 0, 1, 1, 0, 0, 0, 0, 0, 0])
    assert sets.pole[5, 0] == 2 and (sets.pole[5, 1:] == -1).all()


def random_sae(d: int = 4, d_sae: int = 6) -> StandardSAE:
    """A small random inference SAE."""
    torch.manual_seed(0)
    model = StandardSAE(StandardSAEConfig(d_in=d, d_sae=d_sae, apply_b_dec_to_input=False))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p))
    return model


def test_fine_tuning_changes_only_the_tuned_slices():
    base = random_sae()
    tokens = planted_row_tokens(64)
    r = np.zeros((6, 10))
    r[1, 0], r[4, 3] = 0.5, 0.4
    sets = surgery.latent_sets(r)
    tuned, history = surgery.fine_tune(base, sets, tokens, tokens,
                                       surgery.SurgerySettings(lr=1e-2, batch_size=16, epochs=3, patience=5))
    frozen = [i for i in range(6) if i not in sets.tuned]
    assert sets.tuned.tolist() == [1, 4] and len(history) == 3
    torch.testing.assert_close(tuned.W_enc[:, frozen], base.W_enc[:, frozen], rtol=0, atol=0)
    torch.testing.assert_close(tuned.b_enc[frozen], base.b_enc[frozen], rtol=0, atol=0)
    torch.testing.assert_close(tuned.W_dec[frozen], base.W_dec[frozen], rtol=0, atol=0)
    torch.testing.assert_close(tuned.b_dec, base.b_dec, rtol=0, atol=0)
    assert not torch.equal(tuned.W_enc[:, sets.tuned], base.W_enc[:, sets.tuned])
    torch.testing.assert_close(tuned.W_dec[sets.tuned].norm(dim=1), base.W_dec[sets.tuned].norm(dim=1))
    assert set(history.columns) >= set(surgery.WEIGHTS) | {"total", "val_total"}


def test_frozen_fraction_by_hand():
    # W_enc 24 + b_enc 6 + W_dec 24 + b_dec 4 = 58 parameters; 2 latents own 2 × (4 + 1 + 4) = 18
    assert surgery.frozen_fraction(random_sae(), 2) == pytest.approx(1 - 18 / 58)


def test_row_tokens_reject_rows_without_tokens():
    with pytest.raises(ValueError, match="1 row"):
        surgery.RowTokens(np.ones((2, 4)), np.array([0, 0]), np.array([0, 1]), np.zeros((2, 10)), np.zeros(2),
                          np.zeros(2))


def test_losses_within_the_tuned_set_equal_the_full_computation():
    base = random_sae(d=4, d_sae=8)
    r = np.zeros((8, 10))
    r[1, 0], r[6, 1], r[3, 2], r[5, 3] = 0.5, 0.3, 0.2, 0.12
    sets = surgery.latent_sets(r)
    rng = np.random.default_rng(1)
    h = np.zeros((12, 10))
    h[:6, 0], h[6:, 1] = rng.uniform(0.4, 1, 6), rng.uniform(0.4, 1, 6)
    batch = surgery.RowTokens(rng.normal(size=(24, 4)), np.repeat(np.arange(12), 2), np.arange(12), h, h[:, 0],
                              h[:, 1]).batch(np.arange(12))
    with torch.no_grad():
        terms = surgery.surgery_losses(surgery.TunedSAE(base, sets.tuned), batch, surgery.local_sets(sets), 2.0,
                                       torch.Generator().manual_seed(0))
    with torch.no_grad():
        z = torch.relu(batch.x @ base.W_enc + base.b_enc)
        x_hat = z @ base.W_dec + base.b_dec
        z_rows = torch.stack([z[batch.row == i].mean(0) for i in range(12)])
        s = z_rows @ torch.as_tensor(sets.readout, dtype=torch.float32).T
    assert float(terms["reconstruction"]) == pytest.approx(float(((x_hat - batch.x) ** 2).mean() / 2.0), rel=1e-5)
    assert float(terms["sparsity"]) == pytest.approx(float(z.abs().mean()), rel=1e-5)
    assert float(terms["alignment"]) == pytest.approx(float(surgery.alignment_loss(s, batch.h)), rel=1e-5)
    full_polarity = surgery.polarity_loss(z_rows, batch.m_virtue, batch.m_vice, torch.as_tensor(sets.pole))
    assert float(terms["polarity"]) == pytest.approx(float(full_polarity), rel=1e-5)
    full_mono = surgery.monosemantic_loss(z_rows, batch.h, torch.as_tensor(sets.mono), torch.as_tensor(sets.mono_dim))
    assert float(terms["monosemantic"]) == pytest.approx(float(full_mono), rel=1e-5)
