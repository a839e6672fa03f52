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
# # 8. Sparse autoencoders: decomposing the residual stream
#
# **The question.** Chapters 03–06 found that moral structure is weak and entangled in the residual stream. One
# explanation is *superposition*: a layer of width $d$ stores many more features than $d$ by overlapping them.
# A sparse autoencoder (SAE) tries to undo this by rewriting every activation as a sparse, non-negative
# combination of many more directions than the layer has dimensions. The paper trains one SAE per layer of
# Qwen3-8B and then (chapter 09) asks which of its latents are *moral*. This chapter trains the SAEs and checks
# that they are good enough to be read: how much variance they leave unexplained, how many latents fire, how
# many never do, and how much the model's predictions change when their reconstruction replaces the real
# activation.
#
# **You will learn to**
# - train one sparse autoencoder per layer with an adaptive L1 penalty, and explain why the activations are
#   centred, rescaled and cleared of attention-sink tokens first;
# - read an SAE's quality from its {term}`FVU`, its {term}`L0` and the share of its latents that are alive;
# - measure what the model loses when the reconstruction replaces the activation (the {term}`splice KL`), and
#   judge it against the control of erasing the layer altogether (mean ablation);
# - compare token-level training with the paper's one pooled vector per sentence at this profile's scale.
#
# **Learner time:** about 30 minutes to read and run, plus 15 minutes for exercise {doc}`exercises/E5_fold_centre`.
#
# **Prerequisites:** {doc}`01_moral_vectors`, {doc}`02_activations`. **Run time:** about three minutes (`ci`);
# the trained SAEs are cached and reused by chapters 09–11.

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
import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from helpers import plotting, report, sae

run = sae.start_chapter("08_sae", profile, seed)
P, ledger, moral = run.chapter.profile, run.chapter.ledger, run.chapter.moral
corpus, settings, layers = run.corpus, run.settings, run.layers
rows, d_model = corpus.rows, corpus.model.d_model

# %% [markdown]
# ## The recipe
#
# For a residual vector $x$ of block $\ell$, with the training mean $c$ subtracted, the paper's SAE computes
#
# $$ z = \mathrm{ReLU}\big(W_e (x - c) + b_e\big), \qquad \hat x = W_d z + b_d + c, $$
#
# with $W_e \in \mathbb{R}^{m \times d}$, $W_d \in \mathbb{R}^{d \times m}$, $m = 16d$ latents, and every column
# of $W_d$ (one latent's direction) renormalised to unit length after each step. The loss is
#
# $$ \mathcal{L} = \operatorname{MSE}(\hat x, x) + \lambda \cdot \operatorname{mean}|z|, $$
#
# and $\lambda$ is adapted once per epoch toward a target number of active latents $L_0$: with
# $r = L_0 / L_0^{\text{target}}$, $\lambda \leftarrow 1.2\lambda$ if $r > 2$, $1.05\lambda$ if $r > 1.1$,
# $0.95\lambda$ if $r < 0.9$ (clamped to $[10^{-6}, 100]$). Training uses sae-lens's `StandardTrainingSAE`
# and `SAETrainer` (Adam, gradient clipping at 1, linear warm-up then cosine decay to 1 % of the learning rate),
# fed batch by batch so the $\lambda$ rule and the unit-norm decoder can run between steps; a TopK SAE is the
# profile's alternative (`sae_architecture: topk`). Two choices of this book:
#
# - **Scale.** The centred vectors are rescaled so their mean squared norm is $d$ (sae-lens's
#   `expected_average_only_in`), so one $\lambda$ means the same at every layer, whose norms differ by orders of
#   magnitude. Centre and scale are folded into the saved weights: the SAE on disk takes raw activations and is
#   an ordinary sae-lens `StandardSAE` (`SAE.load_from_disk` opens it; the hook name is set).
# - **What the SAE sees.** The paper trains on one mean-pooled vector per sentence (201,023 of them). The
#   profile decides: `sae_input` says which; the cell above printed it. A few thousand sentences are far too few for a
#   dictionary wider than the layer, so `ci` trains on every token of the training sentences instead, except
#   each sentence's first token (the attention sink of chapter 02, ~100× the norm of the others) and any other
#   token whose norm marks it as a sink (below).
#
# Quality is measured on the validation split (spec §1.5: the cleaned rows are shuffled with seed 42 and cut
# 80 / 10 / 10 by row, so both copies of a multi-foundation action stay in one split):
#
# - **FVU**, the fraction of variance unexplained, $\sum \lVert x - \hat x \rVert^2 / \sum \lVert x - \bar x
#   \rVert^2$ (0 is perfect, 1 is no better than the mean);
# - **$L_0$**, the mean number of active latents, and the **alive fraction**, latents that fire at least once;
# - **splice KL**, the mean $\mathrm{KL}(p \,\Vert\, p')$ between the model's next-token distributions without
#   and with the SAE's reconstruction written back into block $\ell$'s output at every covered token. It is the
#   number that matters for chapters 10–11, which steer the model *through* these SAEs. For scale, the same
#   KL for **mean ablation** (every covered token replaced by the training mean) is the cost of erasing the
#   layer's information altogether.

# %%
split_table = rows.groupby("split").agg(rows=("id", "size"), distinct_sentences=("action", "nunique"))
if corpus.tokens is not None:
    for split in ("train", "val"):
        covered = sum(len(corpus.token_vectors(layer, split)[0]) for layer in layers) // len(layers)
        split_table.loc[split, "covered tokens (mean over layers)"] = covered
split_table

# %% [markdown]
# ## The attention sink is not always the first token
#
# Chapter 02 showed that the first token's residual is about 100× larger than the others. Token-level SAE
# training must leave it out (an SAE trained with it reconstructs nothing else well). Looking at every token's
# norm shows a second hazard: in a few sentences a **later** token takes over the sink's role, with a norm in
# the thousands. This book leaves out any token whose norm exceeds ten times the median (dashed line) and
# reports how many it drops (the isolated bars right of the line among the later tokens); the same tokens are
# left untouched when the reconstruction is spliced back in.

# %% tags=["hide-input"]
if corpus.tokens is not None:
    norms = pd.concat([pd.DataFrame({"layer": layer, "norm": np.linalg.norm(corpus.tokens.acts[layer], axis=1),
                                     "token": np.where(corpus.tokens.position == 0, "first token", "later tokens")})
                       for layer in layers], ignore_index=True)
    grid = sns.displot(data=norms, x="norm", hue="token", col="layer", log_scale=True, bins=60, height=2.8,
                       aspect=1.3, col_wrap=2, facet_kws={"sharex": False})
    grid.set(yscale="log", ylabel="tokens (log scale)")  # a log count shows the handful of secondary sinks
    for ax, layer in zip(grid.axes.flat, layers):
        ax.axvline(corpus.max_token_norm(layer), ls="--", color="0.3", lw=1)
    grid.figure.suptitle("Residual norm of every token, by layer\n(dashed: the secondary-sink threshold)", y=1.06)
    plotting.save_figure(grid.figure, ledger, "token_norms")
    plt.show()
    sinks = {layer: int(((norms["layer"] == layer) & (norms["token"] == "later tokens")
                         & (norms["norm"] > corpus.max_token_norm(layer))).sum()) for layer in layers}
    print("later tokens left out as secondary sinks, per layer:", sinks)
else:
    sinks = {}
    print("This profile trains on pooled sentence vectors (the paper's recipe): no token is left out.")

# %% [markdown]
# ## Training
#
# One SAE per layer; a finished SAE is loaded from the cache instead of retrained. Each row of the log below is
# one epoch.
#
# ```{dropdown} Predict before you run: how do L0, λ and the FVU pull against each other during training?
# The λ rule (ReLU SAEs only; TopK fixes $L_0$ by construction) reacts to $L_0$ alone: it raises λ while too many
# latents fire and lowers it while too few do. Decide which way λ must move from where $L_0$ starts, and what a
# larger λ does to the reconstruction. A settled run ends with $L_0$ near its target and λ flat; an $L_0$ still far
# off, or a λ still moving, means the epochs ran out first. The training curves below answer it.
# ```

# %%
trained = {}
for layer in layers:
    trained[layer] = sae.ensure_sae(corpus, layer, settings)
    last = trained[layer].history.iloc[-1]
    print(f"layer {layer:2d}: {len(trained[layer].history)} epochs, λ = {last['l1_lambda']:.3g}, "
          f"train L0 {last['l0']:.1f}, val FVU {last['val_fvu']:.3f}, {trained[layer].train_seconds:.0f} s")

# %% [markdown]
# Training curves: validation FVU, training $L_0$ against its target (dashed), the L1 coefficient $\lambda$
# set by the adaptive rule, and the fraction of latents alive in each epoch.

# %% tags=["hide-input"]
history = pd.concat([t.history.assign(layer=str(layer)) for layer, t in trained.items()], ignore_index=True)
curves = history.melt(id_vars=["epoch", "layer"], value_vars=["val_fvu", "l0", "l1_lambda", "alive_fraction"],
                      var_name="metric")
labels = {"val_fvu": "validation FVU", "l0": "L0 (train)", "l1_lambda": "λ (L1 coefficient)",
          "alive_fraction": "alive fraction (train)"}
curves["metric"] = curves["metric"].map(labels)
grid = sns.relplot(data=curves, x="epoch", y="value", hue="layer", col="metric", kind="line", col_wrap=3,
                   height=2.8, aspect=1.05, facet_kws={"sharey": False}, palette="colorblind")
grid.set_titles("{col_name}")
grid.axes_dict[labels["l0"]].axhline(settings.target_l0, ls="--", color="0.3", lw=1)
if settings.architecture == "relu_l1":
    grid.axes_dict[labels["l1_lambda"]].set_yscale("log")
grid.figure.suptitle(f"SAE training on {P.sae_model}, {settings.expansion}× = {settings.expansion * d_model:,} "
                     f"latents", y=1.05)
plotting.save_figure(grid.figure, ledger, "training_curves")
plt.show()

# %% [markdown]
# ## How good are the SAEs?
#
# ```{dropdown} Predict before you run: does a low FVU guarantee a small splice KL?
# The FVU weighs every direction of the residual by its variance; the model weighs it by how much later layers
# read it, and a low-variance direction can matter a great deal. Mean ablation is the control: it erases everything
# the layer adds beyond its mean, so an SAE worth reading must sit far below it. Think also about which layers
# should be hardest to reconstruct. The table and the bar chart below answer it.
# ```

# %%
quality = sae.layer_reports(corpus, trained, P.sae_splice_texts)
table = pd.DataFrame(quality).T.rename_axis("layer")
table[["fvu_val", "l0_val", "alive_fraction", "splice_kl", "mean_ablation_kl", "n_train"]]

# %% tags=["hide-input"]
long = table.reset_index().melt(id_vars="layer", value_vars=["splice_kl", "mean_ablation_kl"], var_name="splice",
                                value_name="KL (nats per token)")
long["splice"] = long["splice"].map({"splice_kl": "SAE reconstruction", "mean_ablation_kl": "mean ablation"})
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
sns.barplot(data=table.reset_index(), x="layer", y="fvu_val", color=sns.color_palette("colorblind")[0], ax=axes[0])
axes[0].set(ylabel="validation FVU", title="Variance left unexplained")
sns.barplot(data=long, x="layer", y="KL (nats per token)", hue="splice", ax=axes[1])
axes[1].set(yscale="log", title="Next-token KL when spliced in")
plotting.save_figure(fig, ledger, "quality_by_layer")
plt.show()

# %% [markdown]
# ## Sentences or tokens? The paper's input at this scale
#
# The paper's SAE sees one mean-pooled vector per sentence, first token included. At one layer, the same
# recipe trained on this profile's pooled training vectors (one per exploded row) shows what the choice costs:
# its reconstruction of the pooled validation vectors, and its splice KL when, as in the paper's steering, it
# is applied to every token (an input it never saw).
#
# ```{dropdown} Predict before you run: will the paper's pooled-sentence recipe do better or worse here?
# Count the training vectors: one per sentence against one per token, for a dictionary wider than the layer. Few
# vectors let an SAE fit its training set and generalise poorly; and a mean over a sentence's tokens is a smoother
# input than any single token, so ask what happens when it is applied token by token. Predict its held-out FVU
# and its splice KL separately; the printed comparison below answers both.
# ```

# %%
mid = layers[len(layers) // 2]
if corpus.tokens is not None:
    pooled_corpus = dataclasses.replace(corpus, input="pooled")
    pooled = sae.ensure_sae(pooled_corpus, mid, settings)
    comparison = {"tokens (this profile)": quality[mid],
                  "pooled sentences (paper)": sae.layer_reports(pooled_corpus, {mid: pooled},
                                                                      P.sae_splice_texts)[mid]}
    print(pd.DataFrame(comparison).T[["n_train", "fvu_val", "l0_val", "alive_fraction", "splice_kl"]])
else:
    comparison = {}
    print("This profile already trains on pooled sentence vectors, as the paper does; the token-level "
          "comparison needs the per-token cache that token profiles (ci) build.")

# %% [markdown]
# ## Paper vs this run

# %% tags=["hide-input"]
ledger.record("per_layer", {str(layer): {k: quality[layer][k] for k in ("fvu_val", "l0_val", "alive_fraction",
                                                                         "splice_kl", "d_sae", "n_train",
                                                                         "train_seconds")}
                            for layer in layers})
ledger.record("mean_ablation_kl", {str(layer): quality[layer]["mean_ablation_kl"] for layer in layers})
ledger.record("secondary_sinks", {str(k): v for k, v in sinks.items()})
ledger.record("input_comparison", {name: {k: v for k, v in q.items() if k != "train_seconds"}
                                   for name, q in comparison.items()})
ledger.record("settings", {**dataclasses.asdict(settings), "input": corpus.input, "model": P.sae_model})
ledger.record_paper("d_sae", 65536, "spec §4.2 [W][B] (16 × 4096)")
ledger.record_paper("n_train", 201023, "spec §1.5, §4.1 [C] (pooled vectors per layer)")
ledger.record_paper("target_l0", 100, "spec §4.2 [I] (output folder name)")
ledger.models = [P.sae_model]
ledger.data = {"rows": rows["split"].value_counts().to_dict(), "sha256": moral.sha256}
ledger.save()
fvu = table["fvu_val"]
report.paper_vs_run([
    report.comparison("model, layers", "Qwen3-8B, all 36", f"{P.sae_model}, {layers}", "profile"),
    report.comparison("latents per SAE", "65,536 (16 × 4096)", f"{int(table['d_sae'].iloc[0]):,} "
                      f"({settings.expansion} × {d_model})", "sae_expansion of the profile"),
    report.comparison("training examples per layer", "201,023 pooled sentences",
                      f"{int(table['n_train'].iloc[0]):,} {corpus.input}", "data set and sae_input of the profile"),
    report.comparison("target L0 / epochs", "100 / 200 (inferred)", f"{settings.target_l0} / {settings.epochs}", ""),
    report.comparison("validation FVU", "not reported", f"{fvu.min():.3f} – {fvu.max():.3f}", ""),
    report.comparison("splice KL", "not reported", f"{table['splice_kl'].min():.3g} – {table['splice_kl'].max():.3g}",
                      f"mean ablation: {table['mean_ablation_kl'].min():.3g} – {table['mean_ablation_kl'].max():.3g}"),
], P.name)

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
# - An SAE is only worth reading if it reconstructs the layer: the FVU column says how much of the validation
#   variance each one misses, and the splice KL says how much of that miss the model notices. A splice KL far
#   below the mean-ablation KL means the SAE keeps most of what the model uses at that layer.
# - The paper reports neither number; its conclusions in chapter 09 rest on SAEs whose quality we cannot check.
#   Here every chapter that uses an SAE can point back to this table.
# - At `ci` scale the pooled-sentence recipe has only as many training vectors as sentences. Compare its two
#   rows above: reconstruction of held-out pooled vectors, and the splice KL when it is applied token by token
#   as the paper's steering does.
#
# Next: {doc}`09_moral_features` asks which of these latents are moral.
