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
# # 9. Moral features: how many latents are moral, and are they graded?
#
# **The question.** If a model had clean moral concepts, an SAE should isolate some of them as single latents:
# one that fires for harm and grows with how harmful an action is, another for fairness, and so on. The paper
# looks for such latents in its Qwen3-8B SAEs and finds very few: the fraction of *monosemantic* moral latents
# is 0.002–0.017 per layer, and even those barely follow typicality (Spearman $\rho < 0.1$). Opposite poles
# also share latents, the SAE-level version of chapter 03's categorical indifference. This chapter repeats the
# identification on chapter 08's SAEs, and adds what a small validation set needs: the same statistics with
# the moral labels shuffled.
#
# **You will learn to**
# - correlate every SAE latent with the ten moral dimensions and sort the latents into monosemantic, polysemantic
#   and weak;
# - test a latent statistic against a label-shuffle null before reading it, and explain why a small sample
#   needs one;
# - measure polarity collapse: whether the latents that respond to a virtue also respond to its vice;
# - read a feature card: the actions a latent fires on most, beside their human labels.
#
# **Learner time:** about 25 minutes to read and run, plus 15 minutes for exercise
# {doc}`exercises/E6_latent_classes`.
#
# **Prerequisites:** {doc}`08_sae` (its SAEs are loaded from the cache, or trained if missing).
# **Run time:** about a minute (`ci`) once chapter 08 has run.

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

from helpers import claims, data, features, plotting, report, sae

run = sae.start_chapter("09_moral_features", profile, seed)
P, ledger, moral = run.chapter.profile, run.chapter.ledger, run.chapter.moral
corpus, settings, layers = run.corpus, run.settings, run.layers
split = P.sae_identify_split
val = corpus.rows[corpus.rows["split"] == split]
h = np.stack(val["moral_vector"].to_numpy())
m_virtue, m_vice = val["m_virtue"].to_numpy(), val["m_vice"].to_numpy()
print(f"identification on the {split} split: {len(val):,} rows ({(h.sum(1) > 0).mean():.0%} with a non-zero "
      f"moral vector), layers {layers}")

# %% [markdown]
# ## The recipe (spec §4.4)
#
# Encode every row of the identification split, $Z \in \mathbb{R}^{N \times m}$ (for a token-level SAE, the
# mean of the codes of the sentence's tokens; the paper encodes the pooled sentence vector). The paper uses the
# validation split (25,170 rows); the profile's `sae_identify_split` names the split, and `ci` uses the
# training split, because its 216 validation rows are too few (below). The SAE was trained on these
# sentences' activations but never saw their moral labels, so the correlations are not fitted to them. Then:
#
# 1. **Correlate** every latent $f$ with every moral dimension $j$: Pearson $r_{fj}$ over all rows, neutral
#    rows (whose $h = 0$) included.
# 2. **Classify** each latent: *weak* if $\max_j |r_{fj}| < 0.05$; *monosemantic* if exactly one $|r_{fj}| >
#    0.1$, or if none or two are and its two largest belong to the same foundation (care and harm, say);
#    *polysemantic* otherwise. The monosemantic ratio is the paper's 0.002–0.017.
# 3. **Prototypicality**: for each dimension, its 20 most positively correlated latents ($r > 0.05$); over the
#    rows with $h_j > 0$, the Spearman $\rho$ between each latent and the typicality $h_j$; averaged.
# 4. **Polarity collapse**: for each foundation, the cosine between the virtue column $r_{\cdot, j}$ and the
#    vice column $r_{\cdot, j'}$ over all latents (the paper reads $> 0.5$ as collapsed), and the number of
#    *distinguishing* latents (point-biserial $|r| > 0.1$, $p < 0.01$ for "virtue more than vice" among moral
#    rows).
#
# With a few hundred rows a correlation of 0.1 is within chance (its standard error is about
# $1/\sqrt{N}$), so every statistic is shown against a **label-shuffle null**: the same computation after
# permuting the rows' moral labels (`n_permutations` times), which keeps the SAE and the label distribution and
# breaks only their link.
#
# ```{dropdown} Predict before you run: will the monosemantic share rise above what shuffled labels give?
# With $N$ rows a chance correlation has a standard error near $1/\sqrt{N}$, and every layer has thousands of
# latents, each with ten chances to cross 0.1: some latents will look monosemantic by luck alone. The paper
# expects a small share; what matters here is whether the share sits above the grey null band, and whether the
# prototypicality ρ clears its own band. The figure "How many latents are moral?" answers it.
# ```
#
# ```{dropdown} Predict before you run: will virtue and vice share their latents?
# Chapter 03 found opposite poles pointing the same way in the residual stream; an SAE built on that stream may
# inherit it (a positive cosine between the virtue and vice profiles, the paper's collapse) or split it into
# bipolar latents (a negative one). The null need not sit at zero: shuffling moves a row's labels together, so any
# correlation between the virtue and vice columns themselves survives it. The pair-cosine figure answers it.
# ```

# %%
codes, results, nulls = {}, {}, {}
for layer in layers:
    trained = sae.ensure_sae(corpus, layer, settings)
    codes[layer] = corpus.sentence_codes(trained.sae, layer, split)
    results[layer] = features.identify(codes[layer], h, m_virtue, m_vice)
    nulls[layer] = features.identify_null(codes[layer], h, m_virtue, m_vice, P.n_permutations, seed)
summary = pd.DataFrame({layer: {k: v for k, v in r.items() if not isinstance(v, (dict, np.ndarray))}
                        for layer, r in results.items()}).T.rename_axis("layer")
summary

# %% [markdown]
# ## How many latents are moral?
#
# Left: the share of latents in each class per layer, with the shuffled-label null of the monosemantic share
# (grey band, 95 %) and the paper's range (green band). Right: the mean prototypicality $\rho$ of the top
# latents, with its null band and the paper's 0.1.

# %% tags=["hide-input"]
def band(ax, layer_values, key, **style):
    """Shade the null's 2.5–97.5 % range of one statistic across layers."""
    ax.fill_between(layer_values, [nulls[l][key]["lo"] for l in layer_values],
                    [nulls[l][key]["hi"] for l in layer_values], color="0.6", alpha=0.3, lw=0, **style)


ratios = summary[["monosemantic_ratio", "polysemantic_ratio", "weak_ratio"]].reset_index().melt(
    id_vars="layer", var_name="class", value_name="share of latents")
ratios["class"] = ratios["class"].str.removesuffix("_ratio")
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
sns.lineplot(data=ratios, x="layer", y="share of latents", hue="class", marker="o", ax=axes[0])
band(axes[0], layers, "monosemantic_ratio", label="null (monosemantic)")
axes[0].axhspan(0.002, 0.017, color=sns.color_palette("colorblind")[2], alpha=0.25, lw=0,
                label="paper (monosemantic)")
axes[0].set_yscale("symlog", linthresh=1e-3)  # linear below 0.001, logarithmic above: the paper's band shows
axes[0].set(ylim=(0, 1), title="Latent classes")
axes[0].legend(fontsize=8)
rho = summary["mean_prototypicality_spearman"]
sns.lineplot(x=layers, y=rho.to_numpy(float), marker="o", ax=axes[1], label="this run")
band(axes[1], layers, "mean_prototypicality_spearman", label="null")
axes[1].axhline(0.1, ls="--", color="0.3", lw=1, label="paper: < 0.1")
axes[1].set(xlabel="layer", ylabel="mean Spearman ρ", title="Do moral latents follow typicality?")
axes[1].legend(fontsize=8)
for ax in axes:
    ax.set_xticks(layers)
plotting.save_figure(fig, ledger, "ratios_and_rho")
plt.show()

# %% [markdown]
# ## Are virtue and vice separated?
#
# The cosine between the virtue and the vice correlation profiles of each foundation, per layer. Above the
# dashed 0.5 line the paper calls the pair collapsed: the same latents carry both poles with the same sign.

# %% tags=["hide-input"]
pairs = pd.DataFrame([{"layer": layer, "foundation": f, "cosine": results[layer]["pair_cosine"][f]}
                      for layer in layers for f in data.FOUNDATIONS])
fig, ax = plt.subplots(figsize=(6.5, 3.6))
sns.lineplot(data=pairs, x="layer", y="cosine", hue="foundation", marker="o", ax=ax)
band(ax, layers, "mean_pair_cosine")
ax.axhline(0.5, ls="--", color="0.3", lw=1)
ax.axhline(0, color="0.4", lw=0.6)
ax.set(ylim=(-1, 1), ylabel="cosine of virtue / vice r-profiles",
       title="Opposite poles share latents (grey: null of the mean)")
ax.legend(fontsize=8, loc="lower right")
ax.set_xticks(layers)
plotting.save_figure(fig, ledger, "pair_cosine")
plt.show()

# %% [markdown]
# The same question latent by latent: of the 100 latents most correlated (in $|r|$) with each pole, how many
# are shared with the opposite pole, and do the shared ones carry both poles with the same sign (collapse) or
# with opposite signs (a bipolar latent, which separates them)? Across all latents, the number whose mean
# activation on clear virtue rows and on clear vice rows both exceed the overall mean by 0.1 (co-activated).

# %%
overlap = pd.DataFrame([{"layer": layer, "foundation": f, **results[layer]["pair_overlap"][f],
                         "co-activated (all foundations)": results[layer]["coactivated"]}
                        for layer in layers for f in data.FOUNDATIONS]).set_index(["layer", "foundation"])
overlap.rename(columns={"overlap": "shared of top 100", "same_sign": "same sign", "opposite_sign": "opposite sign"})

# %% [markdown]
# ## The moral latents at the best layer
#
# The paper's composite picks a best layer: $0.3\cdot$mono ratio $+ 0.3\cdot\rho + 0.2\,(1 -$ pair cosine$) +
# 0.2\cdot$ distinguishing latents / width. The heatmap shows the 30 latents with the largest $|r|$ there, one
# row each, against the ten dimensions (diverging colours centred at zero).

# %% tags=["hide-input"]
best = int(summary["best_layer_score"].astype(float).idxmax())
r_best = results[best]["r"]
top = np.argsort(-np.abs(r_best).max(axis=1), kind="stable")[:30]
heat = pd.DataFrame(r_best[top], index=[f"latent {i} ({results[best]['classes'][i][:4]})" for i in top],
                    columns=data.DIMENSIONS)
limit = float(np.abs(heat.to_numpy()).max())
fig, ax = plt.subplots(figsize=(7.5, 8))
sns.heatmap(heat, cmap=plotting.DIVERGING, center=0, vmin=-limit, vmax=limit, ax=ax,
            cbar_kws={"label": "Pearson r with the moral dimension"})
ax.set(title=f"Top latents × moral dimensions, layer {best}")
plotting.save_figure(fig, ledger, "top_latents_heatmap")
plt.show()

# %% [markdown]
# ## Feature cards
#
# What do these latents respond to? For the three latents with the largest $|r|$ at the best layer, the
# actions that activate them most, with their human labels: a latent that is really about harm
# should list harmful actions, graded by how harmful they are.
#
# ```{dropdown} Predict before you run: will the top latents' strongest actions share one moral dimension?
# A latent whose correlation is real should list actions of its dimension and polarity, the strongest first. A
# latent picked by chance, or by surface form (length, a shared word, a sentence template), lists actions of mixed
# polarity and foundation. Compare each card's `polarity`, `m_virtue`, `m_vice` and `rot-moral-foundations`
# columns with the dimension named in its header, and how often it fires with how specific it claims to be.
# ```

# %%
for latent in top[:3]:
    dim = int(np.argmax(np.abs(r_best[latent])))
    order = np.argsort(-codes[best][:, latent], kind="stable")
    card = val.iloc[order].assign(activation=codes[best][order, latent]).drop_duplicates("action").head(6)
    print(f"latent {latent} at layer {best}: strongest r = {r_best[latent, dim]:+.2f} with "
          f"{data.DIMENSIONS[dim]} ({results[best]['classes'][latent]}); fires on "
          f"{(codes[best][:, latent] > 0).mean():.0%} of {split} rows")
    print(card[["action", "activation", "polarity", "m_virtue", "m_vice", "rot-moral-foundations"]]
          .to_string(index=False), end="\n\n")

# %% [markdown]
# ## Paper vs this run

# %% tags=["hide-input"]
keys = ("monosemantic_ratio", "polysemantic_ratio", "weak_ratio", "mean_prototypicality_spearman",
        "mean_pair_cosine", "n_distinguishing")
ledger.record("per_layer", {str(layer): {k: results[layer][k] for k in keys} for layer in layers})
ledger.record("best_layer", best)
ledger.record("null", {str(layer): nulls[layer] for layer in layers})
ledger.record("pair_cosine", {str(layer): results[layer]["pair_cosine"] for layer in layers})
ledger.record("pair_overlap", {str(layer): results[layer]["pair_overlap"] for layer in layers})
ledger.record("coactivated", {str(layer): results[layer]["coactivated"] for layer in layers})
ledger.record_paper("monosemantic_ratio", [0.002, 0.017], "spec §4.4 step 3 [B][I] (per layer, Qwen3-8B)")
ledger.record_paper("mean_prototypicality_spearman", "< 0.1", "spec §4.4 step 4 [B][I]")
ledger.models = [P.sae_model]
ledger.data = {"split": split, "rows": len(val), "sha256": moral.sha256}
ledger.save()
mono = summary["monosemantic_ratio"].astype(float)
null_hi = max(nulls[layer]["monosemantic_ratio"]["hi"] for layer in layers)
report.paper_vs_run([
    report.comparison("monosemantic ratio per layer", "0.002 – 0.017", f"{mono.min():.3f} – {mono.max():.3f}",
                      f"shuffled labels reach up to {null_hi:.3f} ({len(val)} {split} rows)"),
    report.comparison("mean prototypicality ρ", "< 0.1", f"{rho.astype(float).min():.3f} – "
                      f"{rho.astype(float).max():.3f}", ""),
    report.comparison("mean virtue/vice cosine", "not reported",
                      f"{summary['mean_pair_cosine'].astype(float).min():.2f} – "
                      f"{summary['mean_pair_cosine'].astype(float).max():.2f}", "> 0.5 = collapsed"),
    report.comparison("best layer (composite)", "not reported", best, f"of {layers}"),
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
# - Compare the monosemantic share with its null before reading it: where the two overlap, "moral latents"
#   at this sample size are what chance correlations alone produce, and the paper's small ratio would be
#   indistinguishable from zero. Where the run's share clears the null, the SAE has found some latents that
#   single out one moral dimension.
# - A prototypicality $\rho$ near zero, as in the paper, means that even the latents most correlated with a
#   dimension do not grade *how* moral an action is: they flag the topic, not the degree.
# - Pair cosines above zero are the SAE-level face of chapter 03: the latents that respond to a virtue also
#   respond to its vice.
#
# Next: chapter 10 fine-tunes only these moral latents to separate the poles and grade typicality.
