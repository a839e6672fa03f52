"""The bench: ratio arithmetic, the README table's markers, baselines that compute what the book computes, and
each measurement's shape on a tiny model."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from helpers import bench
from helpers.activations import forward_pooled
from helpers.paths import replace_between_markers

TEXTS = ["Helping a friend move is morally", "Lying to your boss about being sick is morally",
         "Taking the last slice is morally", "Recycling is morally"]


def test_ratio_is_ours_over_baseline_and_rejects_nonsense():
    assert bench.ratio(30.0, 10.0, 5) == {"ratio": 3.0, "ours_per_s": 30.0, "baseline_per_s": 10.0, "n": 5}
    with pytest.raises(ValueError, match="positive"):
        bench.ratio(1.0, 0.0, 5)


@pytest.fixture(scope="module")
def plain_tiny(tiny_model):
    """An unwrapped HF copy of the tiny model (built like the fixture, same seed, so the same weights)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(tiny_model.bridge.original_model.config).eval()  # equality: next test


def test_paper_style_extraction_pools_the_same_vectors_as_ours(tiny_model, plain_tiny):
    ours = forward_pooled(tiny_model, TEXTS, 128, [0, 1])
    paper = bench.paper_style_pooled(plain_tiny, tiny_model.tokenizer, TEXTS, [0])  # the last HF state is normed
    np.testing.assert_allclose(paper["mean.0"].numpy(), ours["mean.0"].numpy(), rtol=1e-4, atol=1e-5)


def test_plain_sae_loop_learns_a_planted_dictionary():
    generator = torch.Generator().manual_seed(0)
    atoms = torch.nn.functional.normalize(torch.randn(8, 16, generator=generator), dim=1)
    codes = torch.relu(torch.randn(4096, 8, generator=generator)) * (torch.rand(4096, 8, generator=generator) < 0.2)
    x = codes @ atoms
    w = bench.plain_sae(x, 32, 256, 400, 3e-3, 1e-4)
    rebuilt = torch.relu((x - w["b_dec"]) @ w["w_enc"] + w["b_enc"]) @ w["w_dec"] + w["b_dec"]
    fvu = float(((rebuilt - x) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())
    assert fvu < 0.1 and torch.allclose(w["w_dec"].norm(dim=1), torch.ones(32), atol=1e-5)
    w = bench.plain_sae(x, 32, 256, 400, 3e-3, 0.0, topk=4)
    z = torch.relu((x - w["b_dec"]) @ w["w_enc"] + w["b_enc"])
    values, index = z.topk(4, dim=1)
    rebuilt = torch.zeros_like(z).scatter(1, index, values) @ w["w_dec"] + w["b_dec"]
    assert float(((rebuilt - x) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()) < 0.2


def test_measurements_have_the_contract_shape(tiny_model, plain_tiny):
    from helpers import sae

    figures = bench.bench_extraction(tiny_model, plain_tiny, TEXTS * 4, [0, 1], batch_size=8, max_length=32, repeats=1)
    figures |= bench.bench_generation(tiny_model, TEXTS[:2], 1, max_new_tokens=4, repeats=1)
    settings = sae.SAESettings(expansion=2, target_l0=4, batch_size=256, epochs=1, warmup_epochs=0)
    figures |= bench.bench_sae(n=1024, d_in=8, settings=dataclasses.asdict(settings))
    for key in ("extract_vs_paper_style", "extract_vs_plain_forward", "steered_vs_unsteered_generation",
                "sae_vs_plain_loop"):
        figure = figures[key]
        assert figure["ratio"] == pytest.approx(figure["ours_per_s"] / figure["baseline_per_s"]) and figure["n"] > 0
    assert figures["sae_vs_plain_loop"]["ours_training_rss_mb"] >= 0


def test_batched_judging_and_generation_are_timed_against_one_item_at_a_time(tiny_model):
    figures = bench.bench_batching(tiny_model, TEXTS[:3], max_new_tokens=3, batch_size=2, repeats=1)
    assert set(figures) == {"batched_vs_per_item_judging", "batched_vs_per_item_generation"}
    for figure in figures.values():
        assert figure["n"] == 3 and figure["ratio"] == pytest.approx(figure["ours_per_s"] / figure["baseline_per_s"])
    # the judge reads the same log-odds with left padding as alone (a padding bug would move them by far more)
    assert figures["batched_vs_per_item_judging"]["max_difference"] < 1e-4


def test_chapter_costs_come_from_the_ledger_meta(tmp_path, monkeypatch):
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path))
    folder = tmp_path / "results" / "ci"
    folder.mkdir(parents=True)
    (folder / "02_activations.json").write_text(json.dumps({"meta": {"seconds": 70.5, "peak_rss_mb": 1200.0}}))
    (folder / "notes.json").write_text(json.dumps({"no": "meta"}))
    assert bench.chapter_costs("ci") == {"02_activations": {"seconds": 70.5, "peak_rss_mb": 1200.0}}


def test_readme_table_goes_between_the_markers_only():
    start, end = bench.README_MARKERS
    text = f"intro\n{start}\nold table\n{end}\nrest\n"
    assert replace_between_markers(text, "| new |\n", bench.README_MARKERS) == f"intro\n{start}\n| new |\n{end}\nrest\n"
    with pytest.raises(ValueError, match="markers"):
        replace_between_markers("no markers here", "x", bench.README_MARKERS)


def test_markdown_marks_missed_targets():
    figure = {"ratio": 0.5, "ours_per_s": 1.0, "baseline_per_s": 2.0, "n": 3}
    table = bench.markdown({"date": "2026-12-02", "machine": "test", "profile": "ci", "chapters": {},
                            **{key: figure for key in bench.TARGETS}})
    assert table.count("| no |") == len(bench.TARGETS) and "0.50" in table


def test_batched_nulls_are_timed_against_the_loop_and_give_its_numbers():
    from synthetic import make_sample

    from helpers.data import FOUNDATIONS

    sample = make_sample()
    category = [2 * FOUNDATIONS.index(f) + k.startswith("vice") for f, k in zip(sample["sampled_dimension"],
                                                                                 sample["sample_type"])]
    sample["moral_vector"] = [np.eye(10)[c] * s for c, s in zip(category, sample["score_stratum"])]
    figures = bench.bench_nulls(sample, d=8, n_perm=12, repeats=1)
    for key in ("gradient_null_vs_loop", "categorical_null_vs_loop"):
        assert key in bench.TARGETS and figures[key]["n"] == 12
        assert figures[key]["ratio"] == pytest.approx(figures[key]["ours_per_s"] / figures[key]["baseline_per_s"])
        assert figures[key]["max_difference"] < 1e-12
