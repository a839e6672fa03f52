"""Measured speed: every figure is a ratio of this book's code to a baseline, timed in one run on the same inputs
(absolute times on shared machines are noisy; ratios much less so).

Usage: `python -m helpers.bench --profile ci [--readme]` (what `make bench` runs) writes `results/bench.json`
(with the cost model, `helpers.cost`, calibrated on the last ci build, under `cost_model`) and `results/bench.md`,
and with `--readme` puts the table between the bench markers of `README.md` and the cost model's tables between
its own markers.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import multiprocessing
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from helpers import cost
from helpers.ledger import peak_rss_mb
from helpers.paths import atomic_write_text, project_root, replace_between_markers, results_dir

README_MARKERS = ("<!-- bench:start -->", "<!-- bench:end -->")
PAPER_BATCH, PAPER_PAD = 8, 128  # the paper's extraction: batch 8, every text padded to 128 tokens


def ratio(ours_per_s: float, baseline_per_s: float, n: int) -> dict[str, float]:
    """One bench figure: ours / baseline throughput, both throughputs and how many items each timing covered."""
    if ours_per_s <= 0 or baseline_per_s <= 0:
        raise ValueError(f"throughputs must be positive, got {ours_per_s} and {baseline_per_s}")
    return {"ratio": ours_per_s / baseline_per_s, "ours_per_s": ours_per_s, "baseline_per_s": baseline_per_s, "n": n}


def best_rate(run: Callable[[], int], repeats: int) -> float:
    """Items per second of `run` (which returns how many items it processed), the best of `repeats` timings."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        items = run()
        rates.append(items / (time.perf_counter() - start))
    return max(rates)


def _batches(items: Sequence, size: int) -> list[Sequence]:
    """Consecutive slices of at most `size` items."""
    return [items[i:i + size] for i in range(0, len(items), size)]


@torch.no_grad()
def paper_style_pooled(hf, tokenizer, batch: Sequence[str], layers: Sequence[int]) -> dict[str, torch.Tensor]:
    """The paper's extraction of one batch on a plain HF model: padded to a fixed 128 tokens, a full forward with
    `output_hidden_states`, then the mean over real tokens of the requested hidden states (block `l`'s output is
    entry `l + 1`; the last entry is after the final norm)."""
    from helpers.models import model_device, to_device

    enc = to_device(tokenizer(list(batch), return_tensors="pt", padding="max_length", truncation=True,
                              max_length=PAPER_PAD), model_device(hf))
    hidden = hf(**enc, output_hidden_states=True).hidden_states
    weights = enc["attention_mask"].float()[..., None]
    return {f"mean.{layer}": (hidden[layer + 1] * weights).sum(1) / weights.sum(1) for layer in layers}


@torch.no_grad()
def plain_forward(hf, tokenizer, batch: Sequence[str], max_length: int) -> None:
    """One forward of a plain HF model's decoder body over a dynamically padded batch (no hooks, no pooling)."""
    from helpers.models import model_device, to_device

    enc = tokenizer(list(batch), return_tensors="pt", padding=True, padding_side="left", truncation=True,
                    max_length=max_length)
    hf.base_model(**to_device(enc, model_device(hf)))


def bench_extraction(model, hf, texts: Sequence[str], layers: Sequence[int], batch_size: int, max_length: int,
                     repeats: int = 2) -> dict[str, dict]:
    """Texts per second of the book's extraction (length-sorted batches, hooks on the layers, both poolings, no
    unembedding; `model` is the book's loaded model, whose eager-attention twin runs) vs the paper's recipe and vs
    a plain forward over the book's own batches, both on `hf`, a separate HF copy as loaded (default attention)."""
    from helpers.activations import forward_pooled

    lengths = [len(i) for i in model.tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]]
    ordered = [texts[i] for i in np.argsort(lengths, kind="stable")]
    ours = _batches(ordered, batch_size)

    def run_ours() -> int:
        for batch in ours:
            forward_pooled(model, list(batch), max_length, layers)
        return len(texts)

    def run_paper() -> int:
        for batch in _batches(list(texts), PAPER_BATCH):
            paper_style_pooled(hf, model.tokenizer, batch, layers)
        return len(texts)

    def run_plain() -> int:
        for batch in ours:
            plain_forward(hf, model.tokenizer, batch, max_length)
        return len(texts)

    run_ours()  # warm-up: first-call allocations and kernel selection
    rates = {name: best_rate(run, repeats) for name, run in
             (("ours", run_ours), ("paper", run_paper), ("plain", run_plain))}
    return {"extract_vs_paper_style": ratio(rates["ours"], rates["paper"], len(texts)),
            "extract_vs_plain_forward": ratio(rates["ours"], rates["plain"], len(texts))}


def plain_sae(x: torch.Tensor, d_sae: int, batch_size: int, steps: int, lr: float, l1: float,
              seed: int = 0, topk: int | None = None) -> dict[str, torch.Tensor]:
    """The baseline: a hand-written SAE loop in plain PyTorch, ReLU + L1 (or TopK with `topk` set, no L1), Adam,
    unit-norm decoder each step; returns the trained `w_enc`, `b_enc`, `w_dec`, `b_dec`."""
    generator = torch.Generator().manual_seed(seed)
    d_in = x.shape[1]
    w_enc = (torch.randn(d_in, d_sae, generator=generator) / d_in ** 0.5).requires_grad_()
    w_dec = w_enc.detach().T.clone().requires_grad_()
    b_enc = torch.zeros(d_sae, requires_grad=True)
    b_dec = torch.zeros(d_in, requires_grad=True)
    optimizer = torch.optim.Adam([w_enc, w_dec, b_enc, b_dec], lr=lr)
    for step in range(steps):
        batch = x[(step * batch_size) % max(1, len(x) - batch_size + 1):][:batch_size]
        z = torch.relu((batch - b_dec) @ w_enc + b_enc)
        if topk is not None:
            values, index = z.topk(topk, dim=1)
            z = torch.zeros_like(z).scatter(1, index, values)
        loss = ((z @ w_dec + b_dec - batch) ** 2).mean()
        if topk is None:
            loss = loss + l1 * (z * w_dec.norm(dim=1)).sum(1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            w_dec /= w_dec.norm(dim=1, keepdim=True)
    return {"w_enc": w_enc.detach(), "b_enc": b_enc.detach(), "w_dec": w_dec.detach(), "b_dec": b_dec.detach()}


def _sae_worker(kind: str, n: int, d_in: int, settings: dict) -> tuple[float, float]:
    """In a fresh process: steps per second of one SAE trainer on seeded Gaussian data (the whole call timed,
    set-up included) and how far training raised the process's peak RSS, in MB (imports excluded)."""
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if kind == "ours":
        from helpers import sae  # sae-lens and TransformerLens load only in this process
    x = torch.randn(n, d_in, generator=torch.Generator().manual_seed(settings["seed"]))
    steps = settings["epochs"] * (n // settings["batch_size"])
    before = peak_rss_mb()
    start = time.perf_counter()
    if kind == "ours":
        sae.train_sae(x.numpy(), sae.SAESettings(**settings))
    else:
        plain_sae(x, settings["expansion"] * d_in, settings["batch_size"], steps, settings["lr"], 1e-3, settings["seed"],
                  topk=settings["target_l0"] if settings["architecture"] == "topk" else None)
    return steps / (time.perf_counter() - start), peak_rss_mb() - before


def bench_sae(n: int, d_in: int, settings: dict) -> dict[str, dict]:
    """SAE training steps per second of the book's trainer (sae-lens, the profile's `settings` as a dict of
    `sae.SAESettings` fields) vs the plain loop, each in its own process, with the memory each training added."""
    context = multiprocessing.get_context("spawn")
    results = {}
    for kind in ("ours", "plain"):
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            results[kind] = pool.submit(_sae_worker, kind, n, d_in, settings).result()
    figure = ratio(results["ours"][0], results["plain"][0], settings["epochs"] * (n // settings["batch_size"]))
    return {"sae_vs_plain_loop": {**figure, "ours_training_rss_mb": results["ours"][1],
                                  "baseline_training_rss_mb": results["plain"][1]}}


def bench_generation(model, prompts: Sequence[str], layer: int, max_new_tokens: int, repeats: int = 2
                     ) -> dict[str, dict]:
    """Generated tokens per second with a steering hook (activation addition at `layer`) vs without, same
    prompts, decoding and seeds."""
    from helpers import steering

    texts = steering.chat_texts(model, prompts)
    decoding = steering.Decoding(max_new_tokens=max_new_tokens)
    vector = torch.randn(model.d_model, generator=torch.Generator().manual_seed(0))
    edit = steering.vector_edit(vector / vector.norm(), 1.0)

    def tokens(outputs: list[str]) -> int:
        return sum(len(ids) for ids in model.tokenizer(outputs, add_special_tokens=False)["input_ids"])

    def run_steered() -> int:
        return tokens(steering.generate(model, texts, decoding, layer=layer, edit=edit))

    def run_plain() -> int:
        return tokens(steering.generate(model, texts, decoding))

    counted = run_plain()  # warm-up; also the token count of one unsteered pass
    rates = {"steered": best_rate(run_steered, repeats), "plain": best_rate(run_plain, repeats)}
    return {"steered_vs_unsteered_generation": ratio(rates["steered"], rates["plain"], counted)}


def bench_batching(model, prompts: Sequence[str], max_new_tokens: int, batch_size: int = 16, repeats: int = 2
                   ) -> dict[str, dict]:
    """Items per second of chapter 11's batched paths (`batch_size` items per forward) vs one item at a time, same
    items: the zero-shot judge's yes/no read of (prompt, response) pairs, and steered-free generation."""
    from helpers import judge, steering

    texts = steering.chat_texts(model, prompts)
    # greedy: both runs write the same answers (up to padding's rounding), so items per second compare like work
    decoding = steering.Decoding(max_new_tokens=max_new_tokens, do_sample=False)
    responses = steering.generate(model, texts, decoding, batch_size=batch_size)  # warm-up; the judged answers
    read: dict[int, np.ndarray] = {}

    def judge_all(size: int) -> int:
        read[size] = judge.LocalJudge(model, "bench", size).safety_logodds(prompts, responses)
        return len(read[size])

    def generate_all(size: int) -> int:
        return len(steering.generate(model, texts, decoding, batch_size=size))

    out = {}
    for name, run in (("judging", judge_all), ("generation", generate_all)):
        rates = {"batched": best_rate(lambda run=run: run(batch_size), repeats),
                 "per_item": best_rate(lambda run=run: run(1), repeats)}
        out[f"batched_vs_per_item_{name}"] = ratio(rates["batched"], rates["per_item"], len(prompts))
    # left padding must not change a judge's read: the batched log-odds against the one-at-a-time ones
    out["batched_vs_per_item_judging"]["max_difference"] = float(np.abs(read[batch_size] - read[1]).max())
    return out


def bench_nulls(sample, d: int, n_perm: int, seed: int = 0, repeats: int = 2) -> dict[str, dict]:
    """Permutations per second of the batched label-permutation nulls of chapters 03 and 04 vs the per-permutation
    loop (`robustness.permutation_null` around the full statistic), on the profile's sample with seeded Gaussian
    activations of width `d`; each figure records the largest difference between the two bands (same numbers)."""
    from helpers import categorical, gradient
    from helpers.robustness import permutation_null

    x = np.random.default_rng(seed).normal(size=(len(sample), d))
    task = gradient.prepare(sample)
    pairs = {"gradient_null_vs_loop": (lambda: gradient.null_overall(x, task, n_perm, seed),
                                       lambda: permutation_null(lambda xs: gradient.score(xs, task)[gradient.OVERALL][
                                           "spearman"], x, n_perm, seed)),
             "categorical_null_vs_loop": (lambda: categorical.null_mean_virtue_vice(x, sample, n_perm, seed),
                                          lambda: permutation_null(lambda xs: categorical.categorical_layer(
                                              xs, sample)["mean_virtue_vice"], x, n_perm, seed))}
    out = {}
    for name, (ours, loop) in pairs.items():
        bands, rates = {}, {}
        for kind, run in (("ours", ours), ("loop", loop)):
            def timed(run: Callable[[], dict] = run, kind: str = kind) -> int:
                bands[kind] = run()  # the band of the timed runs themselves: no extra untimed run
                return n_perm

            rates[kind] = best_rate(timed, repeats)
        out[name] = {**ratio(rates["ours"], rates["loop"], n_perm),
                     "max_difference": max(abs(bands["ours"][k] - bands["loop"][k]) for k in bands["ours"])}
    return out


def chapter_costs(profile: str) -> dict[str, dict[str, float]]:
    """Wall time and peak RSS of each chapter of the last `make book` of a profile, from the ledgers' meta."""
    costs = {}
    for path in sorted(results_dir(profile).glob("*.json")):
        meta = json.loads(path.read_text()).get("meta", {})
        if "seconds" in meta:
            costs[path.stem] = {"seconds": meta["seconds"], "peak_rss_mb": meta.get("peak_rss_mb")}
    return costs


TARGETS = {"extract_vs_paper_style": 3.0, "extract_vs_plain_forward": 0.9, "sae_vs_plain_loop": 1.0,
           "steered_vs_unsteered_generation": 0.9, "gradient_null_vs_loop": 5.0, "categorical_null_vs_loop": 5.0,
           "batched_vs_per_item_judging": 2.0, "batched_vs_per_item_generation": 2.0}


def markdown(bench: dict) -> str:
    """The README table: each ratio against its target, then the chapters' cost."""
    lines = [f"Measured {bench['date']} on {bench['machine']} ({bench['profile']} inputs).", "",
             "| measure | ours / s | baseline / s | ratio | target | met |", "|---|---|---|---|---|---|"]
    for key, target in TARGETS.items():
        figure = bench[key]
        lines.append(f"| {key} | {figure['ours_per_s']:.1f} | {figure['baseline_per_s']:.1f} | "
                     f"{figure['ratio']:.2f} | ≥ {target} | {'yes' if figure['ratio'] >= target else 'no'} |")
    if bench["chapters"]:
        lines += ["", f"| chapter (`make book`, {bench['profile']}) | seconds | peak RSS (MB) |", "|---|---|---|"]
        lines += [f"| {name} | {cost['seconds']:.0f} | "
                  f"{'?' if cost.get('peak_rss_mb') is None else round(cost['peak_rss_mb'])} |"
                  for name, cost in bench["chapters"].items()]
    else:
        lines += ["", f"(No chapter costs: run `make book PROFILE={bench['profile']}` before `make bench`.)"]
    return "\n".join(lines) + "\n"


@dataclasses.dataclass(frozen=True)
class BenchSizes:
    """How much each measurement processes (small enough for `make bench` to finish in minutes on a laptop)."""

    n_texts: int = 192
    sae_rows: int = 16384
    sae_epochs: int = 3
    n_prompts: int = 16
    max_new_tokens: int = 32
    n_permutations: int = 100


def run(profile_name: str, sizes: BenchSizes = BenchSizes()) -> dict:
    """Every measurement on the profile's SAE model and data; the `results/bench.json` content."""
    from helpers import sae
    from helpers.data import profile_moral_data
    from helpers.models import load_hf, load_model, model_spec
    from helpers.profiles import load_profile

    profile = load_profile(profile_name)
    model = load_model(profile.sae_model, dtype=profile.dtype, device=profile.device)
    hf, _ = load_hf(model_spec(profile.sae_model), dtype=profile.dtype, device=profile.device)
    texts = bench_texts(profile, sizes.n_texts)
    layers = list(range(model.n_layers))
    bench = {"date": time.strftime("%Y-%m-%d"), "profile": profile.name,
             "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
             "sizes": dataclasses.asdict(sizes)}
    bench |= bench_extraction(model, hf, texts, layers, profile.batch_size, profile.max_length)
    settings = dataclasses.replace(sae.settings_from_profile(profile), epochs=sizes.sae_epochs, warmup_epochs=0)
    bench |= bench_sae(sizes.sae_rows, model.d_model, dataclasses.asdict(settings))
    bench |= bench_generation(model, texts[:sizes.n_prompts], model.n_layers // 2, sizes.max_new_tokens)
    bench |= bench_batching(model, texts[:sizes.n_prompts], sizes.max_new_tokens)
    bench |= bench_nulls(profile_moral_data(profile).sample, model.d_model, sizes.n_permutations)
    bench["chapters"] = chapter_costs(profile.name)
    build = cost.measured(results_dir("ci"))
    bench["cost_model"] = cost.report(build) if build else None
    return bench


def bench_texts(profile, n: int) -> list[str]:
    """The first `n` probing prompts of the profile's moral-action sample (what chapter 02 extracts)."""
    from helpers import activations
    from helpers.data import profile_moral_data

    return activations.prompts(profile_moral_data(profile).actions[:n], profile.template)


def main() -> None:
    """Command line: measure, write results/bench.json and bench.md, optionally update the README table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--readme", action="store_true", help="write the table into README.md between its markers")
    args = parser.parse_args()
    bench = run(args.profile)
    out = results_dir(args.profile).parent
    atomic_write_text(out / "bench.json", json.dumps(bench, indent=1) + "\n")
    table = markdown(bench)
    atomic_write_text(out / "bench.md", table)
    print(table)
    if bench["cost_model"]:
        print(cost.markdown(bench["cost_model"]))
    if args.readme:
        write_readme(bench)


def write_readme(bench: dict) -> None:
    """Put the bench table, and the cost model's tables when a ci build calibrated it, between their README markers."""
    readme = project_root() / "README.md"
    text = replace_between_markers(readme.read_text(), markdown(bench), README_MARKERS)
    if bench["cost_model"]:
        text = replace_between_markers(text, cost.markdown(bench["cost_model"]), cost.README_MARKERS)
    atomic_write_text(readme, text)


if __name__ == "__main__":
    main()
