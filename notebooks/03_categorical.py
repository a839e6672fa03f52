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
# # 3. Categorical indifference: are virtue and vice separated?
#
# **The question.** If a model represents morality, the prototypes of a virtue and of its opposing vice (care
# vs harm, fairness vs cheating, …) should point in *different* directions of its residual stream. The paper
# finds the opposite: after {term}`centring`, the cosine between opposing prototypes "frequently exceeds 0.5" in
# intermediate layers, so virtue and vice sit on the same side. This chapter measures that cosine for every
# model and layer, and asks how much of it a null reference, a random network, the pooling choice and a
# different source of human data would also produce.
#
# **You will learn to**
# - compute the ten category prototypes of a layer after centring, and the cosine between each virtue prototype
#   and its opposing vice;
# - test that cosine against a label-permutation null band and against a random-initialised twin before reading
#   it as indifference;
# - explain how a few dominant coordinates can decide a cosine of means, and check a conclusion under other
#   poolings (`no_sink`, `last_token`, `standardised`);
# - repeat the diagnosis on real human word lists (MFD 2.0).
#
# **Learner time:** about 30 minutes to read and run, plus 15 minutes for exercise
# {doc}`exercises/E2_prototype_cosines` and 15 for exercise {doc}`exercises/E4_null_band`.
#
# **Prerequisites:** {doc}`01_moral_vectors`, {doc}`02_activations`. **Run time:** a few minutes (`ci`); the
# activations are read from chapter 02's cache (external word lists are extracted on first use).

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

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from helpers import activations, categorical, chapter, claims, data, plotting, report, robustness

run = chapter.start("03_categorical", profile, seed)
P, ledger, moral, sample, stores = run.profile, run.ledger, run.moral, run.sample, run.stores

# %% [markdown]
# ## The recipe
#
# For one model and layer let $x_i$ be the mean-pooled activation of sample row $i$ and
# $\tilde x_i = x_i - \bar x$ its centred version (chapter 02 showed why centring is needed). The **prototype**
# of a category (a foundation's virtue or vice pole) is the mean of the centred vectors of its typicality-1.0
# rows, the actions nearly everyone judges very good or very bad:
#
# $$ c_{k}^{+} = \operatorname{mean}\{\tilde x_i : i \text{ a virtue prototype of foundation } k\},\qquad
#    c_{k}^{-} = \operatorname{mean}\{\tilde x_i : i \text{ a vice prototype of } k\}. $$
#
# The headline statistic is $\cos(c_k^+, c_k^-)$ per foundation: near $-1$ means opposite directions, near 0
# unrelated, near $+1$ the model does not tell the poles apart. The paper also computes the full $10 \times 10$
# matrix of prototype cosines and calls the layer with the lowest mean off-diagonal cosine the **optimal layer**.
#
# Two references the paper does not have are computed alongside:
# - a **label-permutation null**: the same statistic after shuffling which activation belongs to which row
#   (`n_permutations` shuffles per layer, set in the profile), i.e. what "no moral structure" scores;
# - the **random-initialised twin** of chapter 02: what an untrained network of the same shape scores.
#
# ```{dropdown} Predict before you run: where do opposing prototypes point, and where does chance put them?
# A model that separates virtue from vice gives $\cos(c_k^+, c_k^-)$ below 0; the paper's finding predicts values
# above 0.5 in the middle layers. For the null, ask what a prototype becomes when labels are shuffled: the mean
# of a random handful of centred rows. Where would two such means point relative to each other, and how should
# the band's width depend on how many prototype rows each pole has? The random twin shows what an untrained
# network of the same shape gives. The first figure answers all three: curves, grey band, twin panel.
# ```

# %% tags=["hide-input"]
def curves(results: dict, label: str = "") -> pd.DataFrame:
    """Long table of virtue–vice cosines: model, layer, relative depth, foundation (and the mean), value."""
    rows = []
    for name, per_layer in results.items():
        for layer, result in enumerate(per_layer):
            depth = plotting.relative_depth(layer, len(per_layer))
            for foundation, value in {**result["virtue_vice"], "mean": result["mean_virtue_vice"]}.items():
                rows.append({"model": name, "layer": layer, "relative depth": depth, "foundation": foundation,
                             "virtue–vice cosine": value, "data": label})
    return pd.DataFrame(rows)


# %%
paper = {name: robustness.sweep_layers(store, sample, categorical.categorical_layer) for name, store in stores.items()}
nulls = {name: robustness.sweep_layers(store, sample, lambda x, s: categorical.null_mean_virtue_vice(
             x, s, P.n_permutations, seed)) for name, store in stores.items()}
vv = curves(paper)


# %% tags=["hide-input"]
fig, axes = plotting.panels(len(stores), (4.6, 3.6), sharey=True)
for ax, name in zip(axes, stores):
    band = pd.DataFrame(nulls[name])
    depth = [plotting.relative_depth(layer, len(band)) for layer in range(len(band))]
    ax.fill_between(depth, band["lo"], band["hi"], color="0.8", label="null 95 % band (mean)")
    sns.lineplot(data=vv.query("model == @name and foundation != 'mean'"), x="relative depth",
                 y="virtue–vice cosine", hue="foundation", ax=ax, legend=ax is axes[-1], lw=1.2)
    sns.lineplot(data=vv.query("model == @name and foundation == 'mean'"), x="relative depth",
                 y="virtue–vice cosine", color="black", lw=2.4, ax=ax, label="mean of the 5")
    ax.axhline(0.5, ls="--", color="0.4", lw=0.8)
    ax.axhline(0, color="0.4", lw=0.6)
    ax.set(title=name, ylim=(-1.05, 1.05))
    if ax is not axes[-1]:
        ax.get_legend().remove()
axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
fig.suptitle("Cosine between opposing prototypes (mean pooling, centred); dashed line = 0.5")
plotting.save_figure(fig, ledger, "virtue_vice_by_layer")
plt.show()

# %% [markdown]
# Read each panel against two references: the grey band is where the mean over the five foundations falls
# when the labels carry no information (prototypes are then averages of random rows), and the panel of the
# random twin shows an untrained network. A curve above 0.5 in the middle of the network is the paper's
# finding; it only means *indifference* if it is also clearly outside what the references produce.

# %%
summary = {name: categorical.summarise(per_layer) for name, per_layer in paper.items()}


# %% tags=["hide-input"]
fig, axes = plotting.panels(len(stores), (4.6, 4.4))
for ax, name in zip(axes, stores):
    best = summary[name]["optimal_layer"]
    matrix = pd.DataFrame(paper[name][best]["matrix"], index=data.DIMENSIONS, columns=data.DIMENSIONS)
    sns.heatmap(matrix, cmap=plotting.DIVERGING, center=0, vmin=-1, vmax=1, square=True, ax=ax,
                cbar_kws={"label": "cosine"})
    ax.set(title=f"{name}\noptimal layer {best}")
fig.suptitle("Prototype cosines at each model's optimal layer\n(lowest mean off-diagonal cosine)")
plotting.save_figure(fig, ledger, "prototype_matrix_at_optimal")
plt.show()

# %% [markdown]
# ## Does it survive other choices?
#
# Chapter 02 showed that a few coordinates can dominate the pooled vectors: the first token (attention sink) and
# a handful of outlier channels. A cosine between two averages of such vectors can then be decided by those
# coordinates alone. Two checks:
#
# 1. how much of the variance the **three largest dimensions** carry at each layer;
# 2. the same diagnosis with the sink left out (`no_sink`), on the **last token** (`last_token`), and with every
#    dimension **standardised** to unit variance (`standardised`).
#
# ```{dropdown} Predict before you run: which variant should move the cosine most, and why?
# If three dimensions carry most of the variance, the cosine of two prototypes is mostly the cosine of those
# three coordinates. `standardised` takes their weight away, `no_sink` removes the first token from the mean,
# and `last_token` reads one position only. A conclusion that belongs to the model holds under all of them.
# Compare the top-3 share in the left panel of the figure below with how far the curves move in the right one.
# ```

# %%
share = pd.DataFrame([
    {"model": name, "relative depth": plotting.relative_depth(layer, store.n_layers), "pooling": variant,
     "top-3 variance share": value}
    for name, store in stores.items() for variant in ("paper", "no_sink")
    for layer, value in enumerate(robustness.top3_by_layer(store, sample, variant))])
variants = {variant: {name: robustness.sweep_layers(store, sample, categorical.categorical_layer, variant)
                      for name, store in stores.items()} for variant in robustness.VARIANTS if variant != "paper"}
by_variant = pd.concat([curves(paper, "paper")] + [curves(results, variant) for variant, results in variants.items()],
                       ignore_index=True)
by_variant = by_variant.query("foundation == 'mean'")


# %% tags=["hide-input"]
fig, axes = plotting.panels(2, (4.4, 3.6))
sns.lineplot(data=share, x="relative depth", y="top-3 variance share", hue="model", style="pooling", ax=axes[0])
axes[0].set(title="Variance in the 3 largest dimensions", ylim=(0, 1.02))
axes[0].get_legend().remove()  # the same models as the right panel's legend
sns.lineplot(data=by_variant, x="relative depth", y="virtue–vice cosine", hue="model", style="data", ax=axes[1])
axes[1].axhline(0.5, ls="--", color="0.4", lw=0.8)
axes[1].set(title="Mean virtue–vice cosine by variant", ylim=(-1.05, 1.05))
axes[1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
plotting.save_figure(fig, ledger, "variants")
plt.show()

# %% [markdown]
# ## External check: real human word lists
#
# The bundled sentences are project-written, so the same diagnosis runs on real human data that installs
# offline: the **Moral Foundations Dictionary 2.0** word lists (five foundations × virtue / vice, the paper's
# ten categories exactly; via the `moralizer` package). Each word is treated as a prototype of its pole and
# probed with the same template, `"{word} is morally"`.
#
# ```{dropdown} Predict before you run: do single words behave like the sentences?
# A dictionary word names its pole directly, with no situation around it to blur the judgment. If the model
# represents virtue and vice as different directions, word prototypes are the easiest place for that to show,
# and their curve should fall below the sentence curve. If the high cosine comes from the template or from what
# all short prompts share, the two curves should look alike. The figure below puts both on one axis per model.
# ```

# %%
mfd = data.external_sample("mfd2", P.external_max_words, P.sample_seed)
mfd_words, mfd = data.index_actions(mfd)
mfd_stores = activations.profile_stores(P, activations.prompts(mfd_words, P.template))
external = {name: robustness.sweep_layers(store, mfd, categorical.categorical_layer) for name, store in mfd_stores.items()}
both = pd.concat([vv.assign(data="Social-Chem sample"), curves(external, "MFD 2.0 words")],
                 ignore_index=True).query("foundation == 'mean'")


# %% tags=["hide-input"]
grid = sns.relplot(data=both, x="relative depth", y="virtue–vice cosine", hue="data", col="model", kind="line",
                   height=3.2, aspect=1.2, col_wrap=2)
grid.set_titles("{col_name}").set(ylim=(-1.05, 1.05))
for ax in grid.axes.flat:
    ax.axhline(0.5, ls="--", color="0.4", lw=0.8)
plotting.save_figure(grid.figure, ledger, "external_mfd2")
plt.show()
print(f"MFD 2.0: {len(mfd):,} (word, foundation) rows, {len(mfd_words):,} distinct words")

# %% [markdown]
# ## Paper vs this run

# %% tags=["hide-input"]
intermediate = vv.query("0.25 <= `relative depth` <= 0.75 and foundation != 'mean'")
rows = []
for name, store in stores.items():
    cut = intermediate.query("model == @name")["virtue–vice cosine"]
    band = pd.DataFrame(nulls[name])
    ledger.record(name, {
        **summary[name],
        "variants": {variant: categorical.summarise(results[name]) for variant, results in variants.items()},
        "null": {"mean_virtue_vice_cosine": nulls[name]},
        "top3_variance_share": share.query("model == @name and pooling == 'paper'")["top-3 variance share"].to_list(),
        "external": {"mfd2": categorical.summarise(external[name])},
        "share_intermediate_above_0.5": float((cut > 0.5).mean()),
    })
    rows.append(report.comparison(
        f"{name}: (layer, foundation) pairs > 0.5 in the middle half of the network", "frequently",
        f"{(cut > 0.5).mean():.0%} (max {cut.max():.2f})",
        f"null band of the mean: [{band['lo'].min():.2f}, {band['hi'].max():.2f}] across layers"))
ledger.record_paper("virtue_vice_cosine", "frequently > 0.5 in intermediate layers", "spec §3.1, §3.5 [W][S]")
ledger.models = list(stores)
ledger.data = {"n": len(sample), "sha256": moral.sha256, "external": {"mfd2": len(mfd)}}
ledger.save()
rows.append(report.comparison("Base ≈ Instruct ≈ Guard", "nearly identical curves", "not testable in ci",
                              "needs the colab profile (Qwen3-0.6B Base / Instruct / Guard)"))
report.paper_vs_run(rows, P.name)

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
# - The numbers above decide the paper's claim for this run: a large share of intermediate-layer pairs above
#   0.5, *and* far outside the null band, reproduces categorical indifference; values inside the band, or equal
#   to the random twin's, mean the statistic cannot tell indifference from noise at this sample size.
# - The variants panel says whether the conclusion is a property of the model or of the pooling: if the curves
#   move a lot between `paper`, `no_sink` and `standardised`, a few massive coordinates are driving the cosine.
# - The MFD 2.0 panel repeats the test on real human word lists rather than project-written sentences.
#
# Next: {doc}`04_gradient` asks whether, within one pole, the model grades minor and heinous actions.
