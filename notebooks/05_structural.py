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
# # 5. Structural indifference: does unsupervised structure follow moral foundations?
#
# **The question.** Chapters 03–04 told the diagnosis which rows are virtue and which are vice. Here nothing is
# told: the activations are clustered on their own, and the clusters are compared with the human categories
# afterwards. If moral distinctions organise the representation, clusters should line up with virtue / vice /
# neutral (Polarity3), with the five foundations (MFT5), or with both (MFT15). The paper finds at best an
# adjusted Rand index ({term}`ARI`) near 0.5 for Polarity3 and below 0.15 for MFT5, and warns that high ARIs occur in
# layers where most points are declared noise.
#
# **You will learn to**
# - cluster a layer's centred, PCA-reduced activations with HDBSCAN and score the clusters against three human
#   labelings (Polarity3, MFT5, MFT15);
# - read every agreement score beside its {term}`HDBSCAN noise` ratio and number of clusters, and explain why a
#   score computed on the few points that survive as non-noise says little;
# - test an ARI against a label-permutation null on the same non-noise points;
# - check the clusters on a 2-D map of one layer, under other poolings and on MFD 2.0 words.
#
# **Learner time:** about 25 minutes to read and run.
#
# **Prerequisites:** {doc}`02_activations`. **Run time:** a few minutes (`ci`).

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

from helpers import activations, chapter, claims, data, plotting, report, robustness, structural

run = chapter.start("05_structural", profile, seed)
P, ledger, moral, sample, stores = run.profile, run.ledger, run.moral, run.sample, run.stores
print(f"HDBSCAN min_cluster_size={P.hdbscan_min_cluster_size}, min_samples={P.hdbscan_min_samples} "
      "(paper: 100 / 20 on 16k rows)")

# %% [markdown]
# ## The recipe
#
# Per model and layer: centre the mean-pooled activations, keep the principal components that explain 95 % of
# the variance, and run **HDBSCAN**, a density-based clustering that finds clusters of any shape and declares
# points in sparse regions *noise* (label −1). Noise points are dropped; the remaining cluster labels are scored
# against each human labeling with the adjusted Rand index,
#
# $$ \mathrm{ARI} = \frac{\mathrm{RI} - \mathbb{E}[\mathrm{RI}]}{\max \mathrm{RI} - \mathbb{E}[\mathrm{RI}]}, $$
#
# 1 for identical partitions and about 0 for unrelated ones, plus NMI, homogeneity, completeness and V-measure.
# The **noise ratio** and the number of clusters are always shown beside the ARI: an ARI computed on the few
# points that survive as non-noise describes those points, not the representation. The paper's
# `min_cluster_size = 100, min_samples = 20` assume 16k rows; the profile scales them to its sample.
#
# The permutation null here shuffles the human labels against the fixed clustering, so it shows how large an
# ARI chance alone produces on the non-noise points of each layer.
#
# ```{dropdown} Predict before you run: which labeling will the clusters match best, and on how many points?
# Polarity3 asks the clusters to follow three groups, MFT5 five regions, MFT15 fifteen. If valence organises the
# space more than foundation does, Polarity3 should score highest, as in the paper's models. Then predict the
# noise ratio: a density method on a small sample in a high-dimensional space may call much of it noise. The
# ARI is adjusted for chance, so the null should sit around 0, wider where fewer points survive. The first
# figure shows all three ARIs, the noise ratio (dashed) and the null band of Polarity3.
# ```

# %%
layers = {name: structural.sweep(store, sample, P.hdbscan_min_cluster_size, P.hdbscan_min_samples,
                                 n_perm=P.n_permutations, seed=seed, workers=P.workers)
          for name, store in stores.items()}
table = pd.DataFrame([{"model": name, "layer": layer, "relative depth": plotting.relative_depth(layer, len(per_layer)),
                       **{k: v for k, v in result.items() if not isinstance(v, dict)}}
                      for name, per_layer in layers.items() for layer, result in enumerate(per_layer)])
long = table.melt(id_vars=["model", "relative depth"], value_vars=["ari_polarity3", "ari_mft5", "ari_mft15", "noise_ratio"],
                  var_name="statistic", value_name="value")


# %% tags=["hide-input"]
fig, axes = plotting.panels(len(stores), (4.6, 3.6), sharey=True)
for ax, name in zip(axes, stores):
    band = pd.DataFrame([result["null"]["ari_polarity3"] for result in layers[name]])
    depth = [plotting.relative_depth(layer, len(band)) for layer in range(len(band))]
    ax.fill_between(depth, band["lo"], band["hi"], color="0.8", lw=0, label="null 95 % band (Polarity3)")
    sns.lineplot(data=long.query("model == @name"), x="relative depth", y="value", hue="statistic",
                 style="statistic", dashes={"ari_polarity3": "", "ari_mft5": "", "ari_mft15": "", "noise_ratio": (2, 2)},
                 ax=ax, legend=ax is axes[-1])
    ax.set(title=name, ylim=(-0.1, 1.02), ylabel="ARI / noise ratio")
axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
fig.suptitle("Clusters vs human labels (noise excluded)\ndashed: share of points HDBSCAN calls noise")
plotting.save_figure(fig, ledger, "ari_by_layer")
plt.show()

# %% [markdown]
# All five agreement scores at each model's best Polarity3 layer (NaN where fewer than two clusters survive):

# %%
scores = pd.DataFrame([table.query("model == @name").sort_values("ari_polarity3", ascending=False).iloc[0]
                       for name in stores]).set_index(["model", "layer"])
scores[[f"{score}_{labeling}" for labeling in structural.LABELINGS for score in structural.SCORES]
       + ["noise_ratio", "n_clusters"]].T.round(3)

# %% [markdown]
# ## Looking at the space
#
# A 2-D map of one layer (UMAP of the 95 % PCA space when `umap-learn` is installed, otherwise the first two
# principal components), coloured by each labeling and by the clusters found. The layer shown is the one with
# the highest Polarity3 ARI of the first model.
#
# ```{dropdown} Predict before you run: will the colours of the map form regions?
# This is the most favourable layer of the first model. If virtue, vice and neutral are separated there, the
# polarity panel shows colour regions that the HDBSCAN panel also finds; if the clusters follow something else
# (a shared word, sentence length, the template), the polarity colours cut across them. Remember that a 2-D
# map can hide a separation the full space has, and a UMAP map can suggest one it does not.
# ```

# %%
name = next(iter(stores))
layer = int(np.nanargmax(table.query("model == @name")["ari_polarity3"].to_numpy()))
x = robustness.layer_activations(stores[name], sample, layer)
coords, method = structural.embedding_2d(x, seed=seed)
found = structural.cluster_labels(x, P.hdbscan_min_cluster_size, P.hdbscan_min_samples)
view = pd.DataFrame({"dim 1": coords[:, 0], "dim 2": coords[:, 1], "foundation (MFT5)": sample["sampled_dimension"],
                     "polarity (Polarity3)": sample["polarity"],
                     "HDBSCAN cluster": np.where(found < 0, "noise", found.astype(str))})


# %% tags=["hide-input"]
fig, axes = plotting.panels(3, (4.6, 4.2))
for ax, column in zip(axes, ["polarity (Polarity3)", "foundation (MFT5)", "HDBSCAN cluster"]):
    palette = plotting.POLE_COLORS if column.startswith("polarity") else plotting.PALETTE
    sns.scatterplot(data=view, x="dim 1", y="dim 2", hue=column, s=10, alpha=0.7, ax=ax, palette=palette)
    ax.set(title=column, xticks=[], yticks=[])
    ax.legend(fontsize=7, markerscale=1.5, loc="best")
fig.suptitle(f"{name}, layer {layer}:\n{method.upper()} map of the mean-pooled activations")
plotting.save_figure(fig, ledger, "embedding")
plt.show()

# %% [markdown]
# ## Robustness and an external check
#
# The Polarity3 ARI under the pooling variants, and the same clustering on the MFD 2.0 word lists (whose
# labels have two poles and five foundations, no neutral words).
#
# ```{dropdown} Predict before you run: do words cluster by pole more readily than sentences?
# Without neutral words, Polarity3 on MFD 2.0 asks only for virtue against vice, and each word names its pole
# with no situation around it: if the space separates the poles anywhere, these clusters are the easiest place
# to see it. For the variants, ask what chapter 03 asked: does the curve move when the sink or the dominant
# coordinates are taken out? The figure below shows every recipe on one axis per model.
# ```

# %% tags=["hide-input"]
def sweep(store, frame, variant="paper"):
    """structural_layer at every layer (no null) for one cache and variant."""
    return structural.sweep(store, frame, P.hdbscan_min_cluster_size, P.hdbscan_min_samples, variant,
                            workers=P.workers)


# %%
variants = {variant: {name: sweep(store, sample, variant) for name, store in stores.items()}
            for variant in robustness.VARIANTS if variant != "paper"}
mfd = data.external_sample("mfd2", P.external_max_words, P.sample_seed)
mfd_words, mfd = data.index_actions(mfd)
mfd_stores = activations.profile_stores(P, activations.prompts(mfd_words, P.template))
external = {name: sweep(store, mfd) for name, store in mfd_stores.items()}
rows = [{"model": name, "relative depth": plotting.relative_depth(layer, len(per_layer)), "recipe": recipe,
         "ARI (Polarity3)": result["ari_polarity3"], "ARI (MFT5)": result["ari_mft5"]}
        for recipe, results in [("paper", layers), *variants.items(), ("MFD 2.0 words", external)]
        for name, per_layer in results.items() for layer, result in enumerate(per_layer)]


# %% tags=["hide-input"]
grid = sns.relplot(data=pd.DataFrame(rows), x="relative depth", y="ARI (Polarity3)", hue="recipe", col="model",
                   kind="line", height=3.2, aspect=1.2, col_wrap=2)
grid.set_titles("{col_name}").set(ylim=(-0.1, 1.02))
plotting.save_figure(grid.figure, ledger, "variants_and_external")
plt.show()

# %% [markdown]
# ## Paper vs this run

# %% tags=["hide-input"]
rows = []
for name in stores:
    s = structural.summarise(layers[name])
    best = int(np.nanargmax(s["ari_polarity3"])) if np.isfinite(s["ari_polarity3"]).any() else None
    ledger.record(name, {
        **s,
        "variants": {variant: structural.summarise(results[name]) for variant, results in variants.items()},
        "null": {"ari_polarity3": [result["null"]["ari_polarity3"] for result in layers[name]],
                 "ari_mft5": [result["null"]["ari_mft5"] for result in layers[name]]},
        "top3_variance_share": robustness.top3_by_layer(stores[name], sample),
        "external": {"mfd2": structural.summarise(external[name])},
    })
    noise = f"noise ratio {s['noise_ratio'][best]:.0%} at that layer" if best is not None else "no layer scorable"
    rows += [report.comparison(f"{name}: peak ARI, Polarity3", "≈ 0.5 (best models)", s["peak_ari_polarity3"], noise),
             report.comparison(f"{name}: peak ARI, MFT5", "< 0.15", s["peak_ari_mft5"], "")]
ledger.record_paper("peak_ari_polarity3", 0.5, "spec §3.3, §3.5 [S] (≈, best models)")
ledger.record_paper("peak_ari_mft5", 0.15, "spec §3.3, §3.5 [S] (upper bound)")
ledger.models = list(stores)
ledger.data = {"n": len(sample), "sha256": moral.sha256, "external": {"mfd2": len(mfd)},
               "hdbscan": [P.hdbscan_min_cluster_size, P.hdbscan_min_samples]}
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
# - Compare each peak ARI with the noise ratio at the same layer and with the null band: a high ARI on a layer
#   where most points are noise is the paper's own caveat, and an ARI inside the null band is chance.
# - MFT5 clusters are the stricter test: the foundations would have to be separate regions of the space.
# - The variants show whether the structure belongs to the model or to a few dominant coordinates.
#
# Next: {doc}`06_dimensional` gives the analysis the most help of all: a trained linear probe.
