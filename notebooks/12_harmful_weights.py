# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 12. Harmful-generation weights: a small, shared set?
#
# **The question.** The companion study {cite}`orgad2026harmful` argues that a language model produces harmful
# content with a compact set of weights, shared across kinds of harm and distinct from what it needs for benign
# tasks: zeroing about 0.0005 % of an 8B model's weights, chosen by a signed first-order attribution, removes most
# harmful generation while utility, and even the model's ability to *recognise* harm, survive. Pruning with data
# of one harm type reduces the others too. This chapter runs the same recipe on the bundled 135M model with small,
# project-written, deliberately mild data, and asks which parts of that picture are visible at this scale.
#
# **You will learn to**
# - score every block weight with a signed first-order attribution, and select the top-$q$-minus-top-$p$ set of
#   each matrix;
# - test a prune against controls of as many weights: random, unsigned, magnitude, content-matched and trivia;
# - trace how the harmful and the benign cost of a prune grow with its budget;
# - measure whether per-type selections overlap more than chance would, and whether pruning one harm type lowers
#   the others.
#
# **Learner time:** about 30 minutes to read and run, plus 20 minutes for exercise
# {doc}`exercises/E8_signed_selection`.
#
# **Prerequisites:** none; the model is the one of {doc}`02_activations`. **Run time:** about six minutes (`ci`).

# %% tags=["remove-cell"]
# Colab setup (hidden in the book): fetch this book at its release tag (the ref the launch button opens) and
# install its helpers package from that same commit, with the book's pinned packages; the runtime's own torch
# (its CUDA build and libraries) and kernel are kept at Colab's versions.
import sys

if "google.colab" in sys.modules:
    import os
    import subprocess

    ref, url = "v0.1.0", "https://github.com/moral-indifference-book/moral-indifference-book"
    subprocess.run(["git", "clone", "--depth", "1", "--branch", ref, url, "/content/book"], check=True)
    sys.path.insert(0, "/content/book/src")
    os.environ["BOOK_ROOT"] = "/content/book"
    from helpers import environment  # standard library only: importable before the install

    pip = [sys.executable, "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--no-deps", "-e", "/content/book"], check=True)  # pyproject's torch pin is not passed
    constraints = environment.write_colab_constraints("/content/book/_build/constraints-colab.txt")
    subprocess.run([*pip, "-c", constraints, *environment.colab_requirements()], check=True)
    subprocess.run([*pip, "--no-deps", *environment.NODEPS_PINS], check=True)  # only their files are read

# %% tags=["parameters"]
profile = "ci"  # ci | colab | paper: every size knob lives in params/<profile>.yaml
seed = 0

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from helpers import chapter, claims, models, plotting, pruning, report

run = chapter.start("12_harmful_weights", profile, seed, stores=False)
P, ledger = run.profile, run.ledger
torch.manual_seed(seed)
data = pruning.bundled_data(P.prune_n_trivia, P.prune_share)
dtype = models.choose_dtype(P.dtype, P.device, training=True)  # weight gradients: `auto` means float32
hf, tokenizer = models.load_hf(models.model_spec(P.prune_model), dtype=dtype, device=P.device, seed=seed)
weights = pruning.block_linears(hf)
numels = {name: w.numel() for name, w in weights.items()}
print(f"{P.prune_model}: {len(weights)} block matrices, {sum(numels.values()):,} candidate weights; "
      f"{len(data.harm)} harmful prompts ({', '.join(pruning.HARM_TYPES)}), {len(data.benign)} benign pairs")

# %% [markdown]
# ## The recipe
#
# Every example is scored in the paper's raw format, `prompt + "\n" + response`, with the loss on the response
# tokens only. For each weight matrix $W$ of the decoder blocks (attention q, k, v, o and MLP gate, up, down;
# never embeddings or norms):
#
# - **prune score** on harmful prompts with *compliant* responses: $S_\text{harm} = -W \odot \sum_n \nabla_W L_n$,
#   the first-order estimate of how much zeroing each weight raises the loss of producing the harmful answer;
# - **preserve score** on benign instruction–response pairs: $S_\text{keep} = |W| \odot \sum_n |\nabla_W L_n|$;
# - **selection** per matrix: the top $\lceil q \cdot \text{numel} \rceil$ of $S_\text{harm}$ minus the top
#   $\lceil p \cdot \text{numel} \rceil$ of $S_\text{keep}$, then zeroed.
#
# The paper takes $q = 10^{-5}$, $p = 5 \cdot 10^{-5}$; at 135M that is a handful of weights per matrix, so this
# profile uses $q$ = `prune_q`, $p$ = `prune_p` and also sweeps $q$. The scoring prompts never appear in the
# evaluation (held-out prompts of each type; the counts are printed below).

# %%
keep = pruning.keep_scores(weights, pruning.gradient_sums(hf, tokenizer, data.benign_pairs("preserve"), absolute=True))
grad_harm, per_type = {}, {}  # one harm type's gradients at a time: summed over types, and that type's own selection
for t in pruning.HARM_TYPES:
    grad_type = pruning.gradient_sums(hf, tokenizer, data.compliant("score", t))
    grad_harm = {name: grad_harm.get(name, 0) + grad_type[name] for name in weights}
    per_type[t] = pruning.select(pruning.prune_scores(weights, grad_type), keep, P.prune_q, P.prune_p)
del grad_type  # a full-size copy of the block weights each: chapter 12 holds as few as it can
harm_scores = pruning.prune_scores(weights, grad_harm)
selection = pruning.select(harm_scores, keep, P.prune_q, P.prune_p)
candidates = pruning.select(harm_scores, keep, P.prune_q, 0.0)

# %%
n_pruned = sum(pruning.counts(selection).values())
n_scoring = {split: "–".join(map(str, sorted({min(c), max(c)}))) for split, c in  # one count, or the range over types
             {s: [len(data.compliant(s, t)) for t in pruning.HARM_TYPES] for s in ("score", "eval")}.items()}
print(f"{n_scoring['score']} scoring and {n_scoring['eval']} held-out prompts per harm type")
print(f"q = {P.prune_q:g}, p = {P.prune_p:g}: {n_pruned:,} weights pruned ({n_pruned / sum(numels.values()):.2e} of "
      f"the block weights); the preserve set removed {1 - n_pruned / sum(pruning.counts(candidates).values()):.1%} "
      "of the candidates")

# %% [markdown]
# Where the selected weights sit, by layer and matrix type:

# %% tags=["hide-input"]
placement = pd.DataFrame([{"layer": int(name.split(".layers.")[1].split(".")[0]), "matrix": name.split(".")[-2],
                           "pruned": len(idx)} for name, idx in selection.items()])
grid = placement.pivot(index="matrix", columns="layer", values="pruned").reindex(
    ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
fig, ax = plt.subplots(figsize=(10, 3.4), layout="constrained")
sns.heatmap(grid, cmap="viridis", ax=ax, cbar_kws={"label": "weights pruned"})
ax.set_title(f"Harm-supporting weights selected (q = {P.prune_q:g}, p = {P.prune_p:g}), {P.prune_model}")
plotting.save_figure(fig, ledger, "pruned_placement")
plt.show()

# %% [markdown]
# ## Before and after, with the controls
#
# The same number of weights in every matrix is also removed by five controls: **random** weights, the
# **unsigned** score $|W \odot \nabla L|$ of Wei et al., the largest **magnitudes**, a **content-matched** score
# (the signed recipe on *refusals* to the same harmful prompts: same topics, opposite behaviour), and a
# **trivia** prune (the signed recipe on trivia answers, the paper's capability control). Every condition is
# evaluated on held-out data: harmful NLL per type (higher = the model finds the harmful answer less likely),
# benign NLL, perplexity on clean prose, trivia accuracy (greedy), harm-detection AUC (log-odds of "Yes" to "is
# this request harmful?", harmful vs matched benign requests) and the NLL of reference explanations of why a
# request is harmful. Pruning is undone after each condition (the weights are restored exactly).
#
# ```{dropdown} Predict before you run: which prune raises harmful NLL most, and what does it cost?
# The paper predicts that the signed prune makes harmful answers much less likely while benign NLL, perplexity and
# trivia barely move, and that harm detection survives (generation is not recognition). A random prune of as many
# weights should move little; the content-matched prune is the control to watch: if refusals to the same prompts
# select weights that hurt harmful answers as much, the weights are about the topic, not the harm. The figure of
# changes below answers it.
# ```

# %%
conditions = {  # each control's scores are made, matched and dropped in turn
    "signed (paper)": selection,
    "random": pruning.random_matched(weights, selection, seed=seed),
    "unsigned": pruning.matched(pruning.unsigned_scores(weights, grad_harm), selection),
    "magnitude": pruning.matched(pruning.magnitude_scores(weights), selection),
    "content-matched (refusals)": pruning.matched(
        pruning.prune_scores(weights, pruning.gradient_sums(hf, tokenizer, data.refusals("score"))), selection),
    "trivia prune": pruning.matched(
        pruning.prune_scores(weights, pruning.gradient_sums(hf, tokenizer, data.trivia_pairs())), selection),
}

# %%
evaluations = {"none (base)": pruning.evaluate(hf, tokenizer, data)}
for name, chosen in conditions.items():
    with pruning.pruned(hf, chosen):
        evaluations[name] = pruning.evaluate(hf, tokenizer, data)
flat = pd.DataFrame({name: {**{f"harm NLL: {t}": v for t, v in e["harm_nll"].items()},
                            **{k: v for k, v in e.items() if k != "harm_nll"}} for name, e in evaluations.items()}).T
flat

# %% tags=["hide-input"]
shown = flat.assign(perplexity=np.log(flat["perplexity"])).rename(columns={"perplexity": "log perplexity"})
delta = (shown - shown.loc["none (base)"]).drop(index="none (base)")
long = delta.reset_index(names="condition").melt(id_vars="condition", var_name="metric", value_name="change")
g = sns.catplot(data=long, x="change", y="condition", col="metric", col_wrap=2, kind="bar", sharex=False,
                height=2.6, aspect=1.2, color=sns.color_palette("colorblind")[0], col_order=list(shown.columns))
for ax in g.axes.flat:
    ax.axvline(0, color="0.3", lw=1)
    ax.set_title(ax.get_title().replace("metric = ", ""), fontsize=9)
g.set_axis_labels("change from the unpruned model", "")
g.figure.suptitle("What each prune changes (harm NLL up = harmful answers less likely)", y=1.03)
plotting.save_figure(g.figure, ledger, "prune_effects")
plt.show()

# %% [markdown]
# ## How the effect grows with the budget
#
# The signed selection against random weights of the same per-matrix counts, over the $q$ sweep: the change in
# harmful NLL (all held-out harmful prompts) and in benign NLL as more weights go. A compact harmful mechanism
# shows as a harmful-NLL rise well above random at a small benign cost.
#
# ```{dropdown} Predict before you run: how should the signed and random curves part as the budget grows?
# A compact mechanism predicts a harmful-NLL rise that appears already at small budgets, with the random curve
# near zero until the budget is large enough to damage everything. The preserve set spares a fixed top $p$ of the
# weights benign answers need while $q$ grows, so watch whether the signed selection's benign cost stays as small
# as random's while its harmful cost pulls away. The budget-sweep figure below answers it.
# ```

# %%
sweep = []
held_out_harm = data.compliant("eval")
for q in P.prune_q_sweep:
    signed = pruning.select(harm_scores, keep, q, P.prune_p)
    for name, chosen in (("signed (paper)", signed), ("random", pruning.random_matched(weights, signed, seed=seed))):
        with pruning.pruned(hf, chosen):
            sweep.append({"q": q, "selection": name, "pruned": sum(pruning.counts(chosen).values()),
                          "harmful": pruning.response_nll(hf, tokenizer, held_out_harm),
                          "benign": pruning.response_nll(hf, tokenizer, data.benign_pairs("eval"))})
sweep = pd.DataFrame(sweep)

# %%
base_harm = pruning.response_nll(hf, tokenizer, held_out_harm)
base_benign = evaluations["none (base)"]["benign_nll"]
sweep["Δ harmful NLL"] = sweep["harmful"] - base_harm
sweep["Δ benign NLL"] = sweep["benign"] - base_benign
curves = sweep.melt(id_vars=["pruned", "selection"], value_vars=["Δ harmful NLL", "Δ benign NLL"], var_name="data",
                    value_name="change")


# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(7, 4))
sns.lineplot(data=curves, x="pruned", y="change", hue="data", style="selection", markers=True, ax=ax,
             palette="colorblind")
ax.set_xscale("log")
ax.axhline(0, color="0.3", lw=1)
ax.set(xlabel="weights pruned", ylabel="NLL change (nats/token)", title="Budget sweep: signed vs random")
plotting.save_figure(fig, ledger, "budget_sweep")
plt.show()
sweep

# %% [markdown]
# ## Shared across harm types?
#
# The recipe run once per harm type (its own scoring prompts, same $q$ and $p$; selected in the recipe cell above,
# while each type's gradients were at hand): how much the four selections overlap ({term}`Jaccard <Jaccard index>`,
# pooled over matrices) against the overlap two random selections of the same per-matrix sizes would have, and what
# pruning one type's selection does to the held-out prompts of every type.
#
# ```{dropdown} Predict before you run: do the harm types share weights, and does pruning one reach the others?
# Two random sets this small almost never meet, so even a small Jaccard can be many times chance; but all four
# selections come from the same model, response format and preserve set, which can make them overlap for reasons
# that have nothing to do with harm (no gradient-selected control set is computed here). The paper's transfer
# shows as positive off-diagonal cells, compared with the diagonal. The two heatmaps below answer it.
# ```

# %%
types = list(pruning.HARM_TYPES)
overlap = pd.DataFrame([[pruning.jaccard(per_type[a], per_type[b]) for b in types] for a in types], types, types)
chance = pd.DataFrame([[pruning.chance_jaccard(per_type[a], per_type[b], numels) for b in types] for a in types],
                      types, types)
transfer = {}
for a in types:
    with pruning.pruned(hf, per_type[a]):
        transfer[a] = {b: pruning.response_nll(hf, tokenizer, data.compliant("eval", b))
                       - evaluations["none (base)"]["harm_nll"][b] for b in types}
transfer = pd.DataFrame(transfer).T  # rows: pruned with, columns: evaluated on


# %% tags=["hide-input"]
fig, axes = plotting.panels(2, (5.0, 4.4))
sns.heatmap(np.log10(overlap.clip(lower=1e-6) / chance), annot=overlap.map(lambda v: f"{v:.3f}"), fmt="", cmap="viridis",
            ax=axes[0], cbar_kws={"label": "log10(Jaccard / chance)"})
axes[0].set(title="Overlap of per-type selections\n(annotated: Jaccard)", xlabel="", ylabel="")
limit = float(np.abs(transfer.to_numpy()).max())
sns.heatmap(transfer, annot=True, fmt=".3f", cmap="RdBu_r", center=0, vmin=-limit, vmax=limit, ax=axes[1],
            cbar_kws={"label": "Δ harmful NLL"})
axes[1].set(title="Prune with one type (rows),\ntest on each (columns)", xlabel="held-out prompts of", ylabel="pruned with")
plotting.save_figure(fig, ledger, "harm_type_overlap_transfer")
plt.show()

# %% [markdown]
# ## Paper vs this run

# %% tags=["hide-input"]
base, after = evaluations["none (base)"], evaluations["signed (paper)"]
pairs_ = [(a, b) for i, a in enumerate(types) for b in types[i + 1:]]
ledger.record("n_pruned", n_pruned)
ledger.record("pruned_fraction", n_pruned / sum(numels.values()))
ledger.record("q", P.prune_q)
ledger.record("p", P.prune_p)
ledger.record("overlap_jaccard", {f"{a} | {b}": overlap.loc[a, b] for a, b in pairs_})
ledger.record("overlap_chance", {f"{a} | {b}": chance.loc[a, b] for a, b in pairs_})
ledger.record("harm_nll_before", base["harm_nll"])
ledger.record("harm_nll_after", after["harm_nll"])
for metric in ("perplexity", "trivia_acc", "benign_nll", "detection_auc", "explanation_nll"):
    ledger.record(f"{metric}_before", base[metric])
    ledger.record(f"{metric}_after", after[metric])
ledger.record("baselines", {name: e for name, e in evaluations.items() if name not in ("none (base)", "signed (paper)")})
ledger.record("transfer_delta_nll", {f"{a} -> {b}": transfer.loc[a, b] for a in types for b in types})
ledger.record("sweep", sweep[["q", "selection", "pruned", "Δ harmful NLL", "Δ benign NLL"]].to_dict(orient="records"))
ledger.record_paper("pruned_fraction", 5e-6, "harm-mechanism spec §3.3 (≈0.0005 % of an 8B model)")
ledger.models = [P.prune_model]
ledger.data = {"harm_pairs": len(data.harm), "benign_pairs": len(data.benign), "trivia_asked": len(data.trivia),
               "recognition": len(data.recognition)}
ledger.save()
mean_delta = {name: float(np.mean([e["harm_nll"][t] - base["harm_nll"][t] for t in types]))
              for name, e in evaluations.items() if name != "none (base)"}
report.paper_vs_run([
    report.comparison("model", "Llama-3.1-8B-Instruct, Qwen2.5-14B/32B-Instruct", P.prune_model, ""),
    report.comparison("pruned share of block weights", "≈ 5e-6 (q = 1e-5, p = 5e-5)",
                      f"{n_pruned / sum(numels.values()):.1e} (q = {P.prune_q:g}, p = {P.prune_p:g})",
                      "per-matrix budgets round to a handful of weights at 135M"),
    report.comparison("harm measure", "StrongREJECT classifier on prefilled generations",
                      "NLL of held-out compliant answers", "no judge model offline; likelihood is the proxy"),
    report.comparison("mean Δ harmful NLL (Δ benign NLL), signed prune", "harmfulness mostly removed",
                      f"{mean_delta['signed (paper)']:+.3f} ({after['benign_nll'] - base['benign_nll']:+.3f})",
                      "random at equal counts: " + f"{mean_delta['random']:+.3f}; content-matched: "
                      + f"{mean_delta['content-matched (refusals)']:+.3f}"),
    report.comparison("utility after the signed prune", "largely retained",
                      f"perplexity {base['perplexity']:.1f} → {after['perplexity']:.1f}; trivia "
                      f"{base['trivia_acc']:.2f} → {after['trivia_acc']:.2f}", ""),
    report.comparison("recognition after the signed prune", "detection and explanation retained",
                      f"detection AUC {base['detection_auc']:.2f} → {after['detection_auc']:.2f}", ""),
    report.comparison("overlap across harm types", "shared selections; cross-type transfer",
                      f"mean Jaccard {np.mean([overlap.loc[a, b] for a, b in pairs_]):.3f} vs chance "
                      f"{np.mean([chance.loc[a, b] for a, b in pairs_]):.1e}", f"{n_scoring['score']} scoring prompts per type"),
], P.name)

# %% [markdown]
# ### Verdicts of this chapter's claims
#
# The rows the reproducibility report (chapter 14) gives this chapter's claims, computed by the same function from
# the ledger saved above: the paper's rule, tried against every control this chapter computed, with its test
# against chance and its reason.

# %%
claims.chapter_verdicts(ledger.chapter, P.name)

# %% [markdown]
# ### Numbers another machine may not reproduce
#
# The committed reference of this profile holds builds of the same sources on machines whose kernels round
# differently: an emulated other CPU (`make reference`) and any real other machine added beside it (ARCHITECTURE.md,
# "Numbers across machines"; the README names them). The metrics listed here may move on another machine by more
# than a thousandth of their value: read each as value ± the band shown (the band the book's tests allow: three
# times the largest drift of its family, or its chapter's typical drift, on those machines), and a conclusion
# resting on its last digits as fragile.

# %% tags=["hide-input"]
report.machine_sensitive(ledger.chapter, P.name)

# %% [markdown]
# ## What this means
#
# - **Signed beats unsigned and random only if the data say so.** The figure of changes is the test: the paper's
#   claim needs the signed prune to raise harmful NLL far more than random, magnitude and the content-matched
#   control at the same counts, while benign NLL, perplexity and trivia barely move. The content-matched control
#   matters most: a prune that hurts any answer to these prompts (including refusals) is not harm-specific.
# - **Overlap is measured against chance.** Selections drawn from the same few matrices overlap by construction;
#   the ratio to the random expectation, and the off-diagonal transfer, are what "shared across harm types" means.
# - **Scale.** At 135M, $q = 10^{-5}$ leaves only a few weights per matrix, the data are a few dozen mild prompts per type
#   and the measure is likelihood, not a judged generation. `colab` runs the same code on Qwen3-0.6B and `paper`
#   on Qwen3-8B with the paper's $q$ and $p$; the paper's own models, StrongREJECT judging and the
#   emergent-misalignment experiment are outside this chapter.
