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
# # 4. Gradient indifference: does the model grade minor vs heinous?
#
# **The question.** People do not only sort actions into virtue and vice; they grade them. "Taking the last
# biscuit" and "poisoning a neighbour's dog" are both harm, one barely and one prototypically. If a model's
# representation follows human prototype structure, an action should sit *closer to its category's prototype
# the more typical people find it*. The paper reports that this gradient is weak: the peak {term}`Spearman correlation`
# stays below 0.55 for every model and category, and vice categories are graded more than virtue ones.
#
# **You will learn to**
# - compute, per layer and category, the rank correlation between human typicality and the cosine to the
#   category's prototype;
# - explain why prototypes that score themselves inflate that correlation, and compute the held-out variant that
#   removes the inflation;
# - test a peak against its own permutation null band, and read the vice − virtue asymmetry;
# - read Pearson $r$ with its Fisher-$z$ interval as a measure of how uncertain one correlation is.
#
# **Learner time:** about 25 minutes to read and run, plus 10 minutes for exercise
# {doc}`exercises/E3_typicality_rho`.
#
# **Prerequisites:** {doc}`03_categorical` (prototypes). **Run time:** a few minutes (`ci`).

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

from helpers import activations, chapter, claims, data, gradient, plotting, report, robustness

run = chapter.start("04_gradient", profile, seed)
P, ledger, moral, sample, stores = run.profile, run.ledger, run.moral, run.sample, run.stores

# %% [markdown]
# ## The recipe
#
# For each of the ten categories (a foundation's virtue or vice pole) take its rows of that pole, at every
# typicality level, plus the neutral rows of the same foundation. The human label of a row is its typicality
# $h_j \in \{0.125, \dots, 1\}$ for the category ($0$ for neutral rows). The model's score is the cosine of the
# centred activation to the category's prototype $c_j$ from chapter 03:
#
# $$ s_i = \cos(\tilde x_i, c_j), \qquad \rho_j = \operatorname{Spearman}(h_{ij}, s_i), $$
#
# per layer, with Pearson $r$ and its Fisher-$z$ 95 % interval $\tanh(\operatorname{atanh} r \pm 1.96/\sqrt{n-3})$
# beside it. "Overall" pools all ten categories. The **peak** is the maximum over layers.
#
# **A flaw worth measuring.** The prototype $c_j$ is the mean of the typicality-1.0 rows, and those same rows
# are then scored against it, carrying the highest label. They are close to their own mean by construction, so
# the correlation is inflated even when the rest of the category carries no gradient at all. The book therefore
# also computes a **held-out** variant: prototypes from a random half of the typicality-1.0 rows, correlation on
# all other rows.
#
# ```{dropdown} Predict before you run: how far apart will the paper's recipe and the held-out recipe be?
# In the paper's recipe the rows with the top label also built the prototype, so they score high whatever the
# rest of the category does. Does that survive a shuffle of the labels, and where should each recipe's null
# band sit? A reader who expects the paper's finding predicts a weak gradient, under its 0.55 ceiling; a
# category with no gradient at all (or the random twin) puts the held-out curve inside its own band. The first
# figure shows both recipes against their nulls.
# ```

# %% tags=["hide-input"]
def curves(results: dict, label: str) -> pd.DataFrame:
    """Long table of Spearman ρ per model, layer, relative depth and category (incl. 'overall')."""
    return pd.DataFrame([
        {"model": name, "layer": layer, "relative depth": plotting.relative_depth(layer, len(per_layer)),
         "category": category, "Spearman ρ": value["spearman"], "recipe": label}
        for name, per_layer in results.items() for layer, result in enumerate(per_layer)
        for category, value in result.items()])


# %%
tasks = {"paper": gradient.prepare(sample), "held-out": gradient.prepare(sample, heldout=True, seed=seed)}
paper, heldout = ({name: robustness.sweep_layers(store, sample, lambda x, s, t=task: gradient.score(x, t))
                   for name, store in stores.items()} for task in tasks.values())
nulls, heldout_nulls = (
    {name: robustness.sweep_layers(store, sample,
                                   lambda x, s, t=task: gradient.null_overall(x, t, P.n_permutations, seed))
     for name, store in stores.items()}
    for task in tasks.values())

rho = pd.concat([curves(paper, "paper (prototypes score themselves)"), curves(heldout, "held-out prototypes")],
                ignore_index=True)


# %% tags=["hide-input"]
fig, axes = plotting.panels(len(stores), (4.6, 3.6), sharey=True)
for ax, name in zip(axes, stores):
    for band, colour in ((nulls[name], "0.75"), (heldout_nulls[name], "0.9")):
        band = pd.DataFrame(band)
        depth = [plotting.relative_depth(layer, len(band)) for layer in range(len(band))]
        ax.fill_between(depth, band["lo"], band["hi"], color=colour, alpha=0.8, lw=0)
    overall = rho.query("model == @name and category == 'overall'")
    sns.lineplot(data=overall, x="relative depth", y="Spearman ρ", style="recipe", color="black", ax=ax,
                 legend=ax is axes[-1])
    ax.axhline(0.55, ls="--", color="0.4", lw=0.8)
    ax.set(title=name, ylim=(-0.3, 1.0))
axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
fig.suptitle("Overall typicality gradient; grey bands: permutation nulls\n(dark: paper recipe, light: held-out); "
             "dashed: the paper's 0.55 ceiling")
plotting.save_figure(fig, ledger, "overall_by_layer")
plt.show()

# %% [markdown]
# The dark band is the paper's recipe on *shuffled* labels: it does not sit at zero, because the shuffled
# "prototypes" still score themselves. The held-out recipe's null (light band) is centred on zero. Comparing
# each curve with its own band separates a real gradient from self-scoring.
#
# ## Per category, and the virtue–vice asymmetry
#
# ```{dropdown} Predict before you run: are the vice categories graded more than the virtue ones?
# The paper says they are, so it predicts a positive "vice − virtue" difference in the table below. Ask whether
# the sign should survive the held-out recipe, where it can no longer come from self-scoring. Each peak is a
# maximum over layers of a correlation on few rows, so before trusting a difference between two peaks, check
# how wide one correlation's Fisher-$z$ interval is in the Pearson table that follows.
# ```

# %%
summary = {name: gradient.summarise(paper[name], heldout[name]) for name in stores}
peaks = pd.DataFrame([
    {"model": name, "category": category, "peak Spearman ρ": value, "recipe": recipe}
    for name in stores
    for recipe, key in (("paper", "peak_spearman"), ("held-out", "peak_spearman_heldout"))
    for category, value in summary[name][key].items()])


# %% tags=["hide-input"]
grid = sns.catplot(data=peaks, x="category", y="peak Spearman ρ", hue="model", col="recipe", kind="bar",
                   order=list(data.DIMENSIONS), height=3.2, aspect=2.4, col_wrap=1)
grid.set_titles("{col_name} recipe").tick_params(axis="x", rotation=45)
for ax in grid.axes.flat:
    ax.axhline(0.55, ls="--", color="0.4", lw=0.8)
plotting.save_figure(grid.figure, ledger, "peak_by_category")
plt.show()
pd.DataFrame({name: {"vice − virtue (paper)": s["asymmetry"], "vice − virtue (held-out)": s["asymmetry_heldout"]}
              for name, s in summary.items()}).round(3)

# %% [markdown]
# Spearman is the paper's headline; Pearson $r$ with its Fisher-$z$ interval shows how uncertain a single value
# is at this sample size. For each model at its best layer (paper recipe, overall ρ):

# %%
pd.concat({name: pd.DataFrame(paper[name][int(np.nanargmax(summary[name]["spearman_overall"]))]).T
           for name in stores}, names=["model", "category"]).round(3)

# %% [markdown]
# ## What one correlation looks like
#
# For the first model of the profile, at its peak layer for the `harm` category: each dot is a row, its
# typicality on the x-axis and its cosine to the harm prototype on the y-axis. Prototypes (typicality 1) that
# built the centre are marked.
#
# ```{dropdown} Predict before you run: where will the marked prototype rows sit?
# The centre is the mean of the marked rows, so each of them shares part of its own vector with it: if
# self-scoring matters, they stand above the rest as a group. The gradient the paper asks about lives in the
# other columns: do the unmarked rows' cosines rise from the neutral rows (typicality 0) through the graded
# levels? The layer is the one with the highest ρ on harm, so the scatter below is the best case, not a
# typical one.
# ```

# %%
name = next(iter(stores))
category = "harm"
layer = int(np.nanargmax([result[category]["spearman"] for result in paper[name]]))
x = activations.center(robustness.layer_activations(stores[name], sample, layer))
members = gradient.category_sets(sample)[category]
centre = x[members & (sample["sample_type"] == "vice_typical").to_numpy()].mean(axis=0)
points = pd.DataFrame({
    "typicality": gradient.human_labels(sample, category)[members],
    "cosine to prototype": x[members] @ centre / (np.linalg.norm(x[members], axis=1) * np.linalg.norm(centre)),
    "row": np.where(sample["sample_type"].to_numpy()[members] == "vice_typical", "prototype (builds the centre)",
                    "other")})


# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(6.5, 3.8))
sns.stripplot(data=points, x="typicality", y="cosine to prototype", hue="row", dodge=False, alpha=0.6, ax=ax,
              palette=[plotting.POLE_COLORS["vice"], plotting.POLE_COLORS["neutral"]], hue_order=["prototype (builds the centre)", "other"])
ax.set(title=f"{name}, layer {layer}, category '{category}': ρ = {paper[name][layer][category]['spearman']:.2f}")
plotting.save_figure(fig, ledger, "worked_example")
plt.show()

# %% [markdown]
# ## Robustness and an external check
#
# The same diagnosis under the pooling variants of chapter 03, and on a second source of graded human
# judgments: **MoralStrength** (via the `moralstrength` package), where annotators rated how strongly each of
# ~2.8k words expresses a foundation's virtue (9) or vice (1); typicality is $|score - 5| / 4$.

# %%
variants = {variant: {name: robustness.sweep_layers(store, sample, lambda x, s: gradient.score(x, tasks["paper"]),
                                                    variant)
                      for name, store in stores.items()} for variant in robustness.VARIANTS if variant != "paper"}
strength = data.external_sample("moralstrength", P.external_max_words, P.sample_seed)
strength_words, strength = data.index_actions(strength)
strength_stores = activations.profile_stores(P, activations.prompts(strength_words, P.template))
strength_task = gradient.prepare(strength, heldout=True, seed=seed)
external = {name: robustness.sweep_layers(store, strength, lambda x, s: gradient.score(x, strength_task))
            for name, store in strength_stores.items()}
table = pd.concat([curves(paper, "paper")] + [curves(results, variant) for variant, results in variants.items()]
                  + [curves(external, "MoralStrength words (held-out)")], ignore_index=True).query("category == 'overall'")


# %% tags=["hide-input"]
grid = sns.relplot(data=table, x="relative depth", y="Spearman ρ", hue="recipe", col="model", kind="line",
                   height=3.2, aspect=1.2, col_wrap=2)
grid.set_titles("{col_name}").set(ylim=(-0.3, 1.0))
plotting.save_figure(grid.figure, ledger, "variants_and_external")
plt.show()
print(f"MoralStrength: {len(strength):,} rows, {len(strength_words):,} distinct words")

# %% [markdown]
# ## Paper vs this run

# %% tags=["hide-input"]
rows = []
for name in stores:
    s = summary[name]
    band = pd.DataFrame(nulls[name])
    band_heldout = pd.DataFrame(heldout_nulls[name])
    ledger.record(name, {
        **s,
        "variants": {variant: gradient.summarise(results[name]) for variant, results in variants.items()},
        "null": {"overall_spearman": nulls[name], "overall_spearman_heldout": heldout_nulls[name]},
        "top3_variance_share": robustness.top3_by_layer(stores[name], sample),
        "external": {"moralstrength": gradient.summarise(external[name])},
    })
    rows += [
        report.comparison(f"{name}: peak ρ, best category (paper recipe)", "< 0.55 (all models)",
                          f"{max(s['peak_spearman'].values()):.2f}",
                          f"null of the overall ρ reaches {band['hi'].max():.2f} (self-scoring)"),
        report.comparison(f"{name}: peak ρ, best category (held-out)", "not computed",
                          f"{max(s['peak_spearman_heldout'].values()):.2f}",
                          f"held-out null reaches {band_heldout['hi'].max():.2f}"),
        report.comparison(f"{name}: vice − virtue peak ρ", "> 0 (vice more graded)", f"{s['asymmetry']:+.2f}", ""),
    ]
ledger.record_paper("peak_spearman", "< 0.55 for all 23 models and dimensions", "spec §3.2, §3.5 [S]")
ledger.record_paper("asymmetry", "vice categories more graded than virtue", "spec §3.2 [S]")
ledger.models = list(stores)
ledger.data = {"n": len(sample), "sha256": moral.sha256, "external": {"moralstrength": len(strength)}}
ledger.save()
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
# - A peak below 0.55 is the paper's evidence of weak grading. Whether it also holds here, and how much of any
#   gradient survives once prototypes stop scoring themselves, is read off the table: the held-out peak, set
#   against its own null band, is the honest measure of grading.
# - The sign of "vice − virtue" tests the asymmetry the paper reports.
# - The random twin and the permutation nulls give the floor; the MoralStrength curves test the same question
#   on real human ratings.
#
# Next: {doc}`05_structural` drops the labels altogether and asks what structure the activations have on their own.
