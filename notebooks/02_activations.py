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
# # 2. Activations: what the model "sees" for `"{action} is morally"`
#
# **The question.** Every diagnosis in this book compares the human moral vectors of chapter 01 with vectors read
# out of a model. Which vectors, exactly? This chapter extracts the residual stream after every decoder block
# for each sampled action, pools it over tokens, caches it once for all later chapters, and looks at two
# properties that decide how those vectors must be handled: their **norms** (one token dwarfs the rest) and
# their **anisotropy** (all of them point the same way until centred).
#
# **You will learn to**
# - explain which activation is read (the residual stream after each block) and pool it three ways (`mean`,
#   `mean_nosink`, `last`) over the real tokens of a left-padded batch;
# - read a position-by-layer norm map and recognise an attention sink;
# - compute the mean pairwise cosine of a layer before and after {term}`centring`, and explain why every later
#   cosine is taken after it;
# - use the random-initialised twin to tell a property the model learned from one its architecture builds in.
#
# **Learner time:** about 20 minutes to read and run, plus 20 minutes for exercise {doc}`exercises/E1_pooling`.
#
# **Prerequisites:** {doc}`01_moral_vectors`. **Run time:** about 3 minutes on 2 CPU cores (`ci`), most of it
# the one-time extraction; later chapters read the cache.

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

from helpers import activations, data, plotting, report
from helpers.ledger import Ledger
from helpers.models import load_model, model_spec
from helpers.profiles import load_profile

P = load_profile(profile)
ledger = Ledger("02_activations", P.name, seed=seed)
plotting.set_theme()
moral = data.profile_moral_data(P)
texts = activations.prompts(moral.actions, P.template)
print(f"profile {P.name}: models {P.models}; {len(texts):,} distinct prompts, e.g. {texts[0]!r}")

# %% [markdown]
# ## The recipe
#
# Each action is written into the paper's template, `"{action} is morally"`, as raw text (no chat template), so
# the model's last position is poised to complete a moral judgment. For every decoder block $\ell$ we read the
# **residual stream after the block**, $x^{(\ell)}_t \in \mathbb{R}^{d}$ for each token $t$ (TransformerLens
# `blocks.ℓ.hook_resid_post`, which equals Hugging Face's `hidden_states[ℓ+1]`), and pool it three ways:
#
# | pooling | definition | used for |
# |---|---|---|
# | `mean` | $\frac{1}{T}\sum_t x_t$ over all real tokens | the paper's recipe (all cross-model figures) |
# | `mean_nosink` | the same mean without the first token | a robust variant (see below) |
# | `last` | $x_T$, the token "morally" | the paper's second pooling |
#
# Prompts are batched with **left padding and the attention mask** (without the mask, padded rows get different
# activations), and sorted by length so little compute is spent on padding. The vectors are written to an
# on-disk cache keyed by model, exact prompts and truncation, chunk by chunk and atomically, so an interrupted
# run resumes where it stopped.
#
# ### Models of this profile
#
# The `ci` profile probes two real models that ship inside PyPI packages, **SmolLM2-135M-Instruct** (an
# instruction-tuned Llama-style model) and **Gemma-3-270m** (a base model; its tokenizer prepends a BOS token,
# as the paper's Llama models do), plus a **random-initialised twin** of SmolLM2: the same architecture and
# tokenizer with seeded random weights. The paper has no such control; it shows what every later metric looks
# like when nothing has been learned.

# %%
pd.DataFrame([{"model": name, **{k: getattr(model_spec(name), k) for k in ("hf_id", "kind", "group", "params")}}
              for name in P.models]).set_index("model")

# %% [markdown]
# ## One sentence, token by token: the attention sink
#
# Before pooling anything, look at the norm of the residual stream at every position of one prompt, layer by
# layer. The colour scale is logarithmic.
#
# ```{dropdown} Predict before you run: which position carries the largest norm, and in which model?
# A trained model needs somewhere to park attention when no token is relevant; the paper's Llama models use
# the BOS token for this. If each real model has learned such a sink, expect one column far brighter than the
# rest over a band of layers. The random twin has learned nothing: if sinks are learned rather than built into
# the architecture, its columns should look alike. The heatmaps and the printed ratios answer it.
# ```

# %%
example = texts[0]


# %% tags=["hide-input"]
fig, axes = plotting.panels(len(P.models), (4.8, 4.2))
loaded = {}
for ax, name in zip(axes, P.models):
    loaded[name] = load_model(name, dtype=P.dtype, device=P.device, seed=seed)
    tokens, norms = activations.position_norms(loaded[name], example)
    sns.heatmap(np.log10(norms), ax=ax, cmap=plotting.SEQUENTIAL, xticklabels=tokens, yticklabels=5,
                cbar_kws={"label": "log₁₀ ‖x‖"})
    ax.set(xlabel="token", ylabel="layer", title=name)
    ax.tick_params(axis="x", rotation=60)
    ratio = norms[:, 0] / np.median(norms[:, 1:], axis=1)
    print(f"{name}: ‖x₀‖ / median ‖x_t‖ ranges {ratio.min():.1f}–{ratio.max():.1f}; "
          f"layers where it exceeds 10: {np.flatnonzero(ratio > 10).tolist()}")
fig.suptitle(f"Residual-stream norm per position: {example!r}")
plotting.save_figure(fig, ledger, "position_norms")
plt.show()

# %% [markdown]
# In a trained model the **first token** can carry a residual norm one to two orders of magnitude larger than
# the others over a range of layers (the ratios printed above): the *attention sink*, a position the model parks
# attention on. It carries
# almost no information about the action, yet in a plain mean over a 6-token prompt it contributes most of the
# vector. The paper's mean pooling includes it (and, for Llama, the BOS token that plays this role). This book
# keeps the paper's `mean` as the headline recipe and also caches `mean_nosink`, so later chapters can report
# which conclusions survive without the sink. Compare the random twin: a sink, where there is one, is learned,
# not built into the architecture.
#
# ## Extracting the whole sample

# %%
stores = {}
for name in P.models:
    stores[name] = activations.ensure_activations(name, texts, P, model=loaded[name])
    m = stores[name].manifest
    print(f"{name}: {m['n_texts']:,} texts × {len(m['layers'])} layers × d={m['d_model']} "
          f"in {m['extract_seconds']:.0f} s (cache {stores[name].directory.name})")
del loaded

# %% [markdown]
# ## Norms by layer and pooling

# %% tags=["hide-input"]
rows = []
for name, store in stores.items():
    for layer in range(store.n_layers):
        for pooling in activations.POOLINGS:
            x = store.load(layer, pooling)
            rows.append({"model": name, "layer": layer, "pooling": pooling,
                         "relative depth": plotting.relative_depth(layer, store.n_layers),
                         "mean norm": float(np.linalg.norm(x, axis=1).mean())})
norms = pd.DataFrame(rows)
grid = sns.relplot(data=norms, x="layer", y="mean norm", hue="pooling", col="model", kind="line", marker="o",
                   height=3.2, aspect=1.25, col_wrap=2, facet_kws={"sharey": False})
grid.set(yscale="log").set_titles("{col_name}").set_axis_labels("layer", "mean ‖pooled vector‖ (log)")
plotting.save_figure(grid.figure, ledger, "norms_by_layer")
plt.show()

# %% [markdown]
# Wherever `mean` jumps far above the other two poolings, the sink dominates the average: the pooled vector is
# then mostly the sink's vector, nearly the same for every prompt. That is the first hint of the next property.
#
# ## Anisotropy: why the paper centres
#
# If all vectors share one large common component, every pair has a cosine near 1 whatever the actions mean.
# The paper therefore subtracts, per model and layer, the mean over all samples before any cosine. We measure
# the mean pairwise cosine over all $n$ prompts exactly and cheaply with
# $\overline{\cos} = \big(\lVert\sum_i u_i\rVert^2 - n\big) / \big(n(n-1)\big)$, $u_i = x_i/\lVert x_i\rVert$.
#
# ```{dropdown} Predict before you run: how parallel are the pooled vectors, before and after centring?
# Before centring, any direction every prompt shares (the sink's vector inside `mean`, a few outlier channels)
# pulls every pair's cosine towards 1. Given the norms above, which pooling should be most affected? Centring
# removes the shared part, leaving only what tells prompts apart, so the mean cosine should fall towards 0.
# Ask too whether the random twin's vectors share a direction without any training. The figure below shows
# each pooling with and without centring (the line style).
# ```

# %%
rows = []
for name, store in stores.items():
    for layer in range(store.n_layers):
        for pooling in ("mean", "mean_nosink", "last"):
            x = store.load(layer, pooling)
            rows += [{"model": name, "layer": layer, "pooling": pooling, "centred": centred,
                      "mean pairwise cosine": activations.mean_pairwise_cosine(activations.center(x) if centred else x)}
                     for centred in (False, True)]
aniso = pd.DataFrame(rows)


# %% tags=["hide-input"]
grid = sns.relplot(data=aniso, x="layer", y="mean pairwise cosine", hue="pooling", style="centred", col="model",
                   kind="line", height=3.2, aspect=1.25, col_wrap=2)
grid.set_titles("{col_name}").set(ylim=(-0.1, 1.02))
for ax in grid.axes.flat:
    ax.axhline(0, color="0.3", lw=0.8)
plotting.save_figure(grid.figure, ledger, "anisotropy")
plt.show()

# %% [markdown]
# Before centring, the pooled vectors of a trained model are nearly parallel when their mean cosine is close to
# 1; after centring (the mean vector removed) it falls close to 0, and the differences between actions become
# visible to a cosine. The random twin shows how much of the anisotropy is learned. Every diagnosis in chapters 03–05 therefore centres per layer, as the paper does.

# %% tags=["hide-input"]
for name, store in stores.items():
    before = aniso.query("model == @name and pooling == 'mean' and not centred")["mean pairwise cosine"].to_list()
    after = aniso.query("model == @name and pooling == 'mean' and centred")["mean pairwise cosine"].to_list()
    mean_norm = norms.query("model == @name and pooling == 'mean'")["mean norm"].to_list()
    ledger.record(name, {
        "n_layers": store.n_layers, "d_model": store.d_model, "n_texts": store.n_texts,
        "mean_norm_by_layer": mean_norm, "mean_cosine_before_centering": before,
        "mean_cosine_after_centering": after,
        "seconds_per_1k_texts": 1000 * store.manifest["extract_seconds"] / store.n_texts,
    })
ledger.models = list(P.models)
ledger.data = {"n": len(texts), "sha256": moral.sha256, "template": P.template}
ledger.save()

trained = P.models[0]
report.paper_vs_run([
    report.comparison("models", "23 (0.6B–235B)", ", ".join(P.models), "ci: two small real models + a random twin"),
    report.comparison("prompts", 16315, len(texts), "distinct actions of the scaled sample"),
    report.comparison("layers × pooling", "all × {mean, last}", f"all × {activations.POOLINGS}",
                      "mean without the sink added as a robust variant"),
    report.comparison("weights / batch", "bf16, batch 8, pad to 128", f"{P.dtype}, batch {P.batch_size}, "
                      "length-sorted", "CPU run; padding does not change masked results"),
    report.comparison(f"mean cosine before centring, mean pooling ({trained})", "not reported",
                      float(np.mean(ledger.metrics[trained]["mean_cosine_before_centering"])), "averaged over layers"),
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
# ## What this means, and what comes next
#
# - One cached file per model and layer holds every prompt's `mean`, `mean_nosink` and `last` vectors; chapters
#   03–07 read it and never re-run a model.
# - In a trained model the first token's residual can be huge (the attention sink) and pooled vectors can point
#   in nearly one direction. Both make raw cosines meaningless, which is why the paper centres and why this book
#   also reports a sink-free pooling.
# - The random twin is the reference for what the architecture alone produces.
#
# Next: the four diagnoses ask whether, after centring, virtue and vice are separated (chapter 03), graded
# (04), clustered (05) and linearly decodable (06).
