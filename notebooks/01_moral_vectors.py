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
# # 1. Moral vectors: from crowd judgments to prototypes
#
# **The question.** The paper measures whether a language model's internal representation of an action agrees
# with how *people* judge it. That needs a human ground truth in the same shape for every action: a
# 10-dimensional **moral vector**, one entry per moral-foundation pole, whose size says how *typical* a member of
# that category the action is. This chapter builds those vectors from Social-Chem-101 exactly as the paper does,
# and draws the stratified sample that every later chapter probes.
#
# **You will learn to**
# - compute an action's 10-dimensional moral vector by hand from its judgment $J$, agreement bucket $A$ and
#   tagged foundations, and check it against the book's helper;
# - read the typicality grid: which $(J, A)$ cells make a prototype, which a graded member, which a neutral row;
# - explain how the stratified diagnosis sample is drawn, and what happens to a stratum smaller than its quota;
# - measure what two of the paper's data choices cost: what "neutral" mixes, and how much text a split by row
#   lets cross from training to test.
#
# **Learner time:** about 25 minutes to read and run.
#
# **Prerequisites:** none. **Run time:** under a minute on 2 CPU cores (`ci` profile).

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

from helpers import data, dimensional, plotting, report
from helpers.ledger import Ledger
from helpers.profiles import load_profile

P = load_profile(profile)
ledger = Ledger("01_moral_vectors", P.name, seed=seed)
plotting.set_theme()
print(f"profile {P.name}: Social-Chem-101 source = {P.socialchem_source!r}, quota scale = {P.quota_scale}")

# %% [markdown]
# ## The recipe
#
# Social-Chem-101 {cite}`forbes2020social` asks crowd workers to split a *rule of thumb* ("It's wrong to read
# your partner's messages") into an **action** ("reading your partner's messages") and a judgment of it. Each row
# carries the action's moral judgment $J \in \{-2,\dots,2\}$ (very bad … very good), the share of people expected
# to agree with that judgment as a bucket $A \in \{0,\dots,4\}$ (< 1 %, 5–25 %, 50 %, 75–90 %, > 99 %), and the
# moral foundations the rule touches (care–harm, fairness–cheating, loyalty–betrayal, authority–subversion,
# sanctity–degradation).
#
# The paper turns each row into a virtue and a vice **typicality** and writes them into the poles of every tagged
# foundation:
#
# $$ v = J/2,\quad w = A/4,\qquad m^+ = \max(0, v)\,w,\qquad m^- = \max(0,-v)\,w, $$
# $$ h_{2k} = m^+\,[k \in F],\qquad h_{2k+1} = m^-\,[k \in F]. $$
#
# So a typicality of 1.0 is a *prototype*: judged "very good" or "very bad" by more than 99 % of people. The
# table below is the whole map from a row's $(J, A)$ to its signed typicality ($m^+ - m^-$), computed by the same
# helper that builds the vectors.

# %%
J, A = np.meshgrid(np.arange(-2, 3), np.arange(5), indexing="ij")
m_virtue, m_vice = data.typicality(J.ravel(), A.ravel())
signed = pd.DataFrame((m_virtue - m_vice).reshape(J.shape), index=pd.Index(range(-2, 3), name="judgment J"),
                      columns=pd.Index(range(5), name="agreement bucket A"))


# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(5.5, 3.6))
sns.heatmap(signed, annot=True, fmt="g", cmap=plotting.DIVERGING, center=0, vmin=-1, vmax=1, ax=ax,
            cbar_kws={"label": "signed typicality  m⁺ − m⁻"})
ax.set_title("Typicality of every (J, A) cell")
plotting.save_figure(fig, ledger, "typicality_grid")
plt.show()

# %% [markdown]
# Two cells reach 0.25 and two reach 0.5 by different routes (e.g. a mild judgment everyone shares, or a strong
# judgment half share), so the six non-zero levels are {0.125, 0.25, 0.375, 0.5, 0.75, 1}. Note the bottom row:
# with $A = 0$ the typicality is 0 whatever the judgment, so those rows count as **neutral**, as in the paper.
#
# The project page of the paper gives two worked examples. Here they are, run through the same helper
# (`helpers.data.moral_vectors`) rather than typed in:
#
# ```{dropdown} Predict before you run: which entries of the two example vectors are non-zero, and how large?
# Work each row through the formula above on paper first. The sign of $J$ picks the pole, $|J|/2 \cdot A/4$ is
# its size, and the tagged foundations decide which of the ten slots receive it: a row tagged with two
# foundations fills the same pole of both, and every other slot stays 0. The table the next cell prints is the
# check; a slot you got wrong usually means a pole swapped or a foundation missed.
# ```

# %%
examples = pd.DataFrame({
    "action": ["doing something that causes other people to lose trust in you", "cheating on your significant other"],
    "rot-moral-foundations": ["loyalty-betrayal", "care-harm|loyalty-betrayal"],
    "action-moral-judgment": [-1, -2],
    "action-agree": [3, 4],
})
pd.DataFrame(data.moral_vectors(examples), index=examples["action"], columns=data.DIMENSIONS)

# %% [markdown]
# ## Reading and cleaning the data
#
# In the `ci` profile the data is the **project-written sample** bundled with the book: the exact 25-column
# Social-Chem-101 schema, with actions and labels written by this project (see the data card in
# {doc}`../book/data_and_models`). In `colab` and `paper` the same code downloads the official release. The
# reader follows standard CSV quoting, as pandas reads the file. The bundled sample is read strictly: a row that
# breaks the schema stops the run, naming the file, line and column. The official release (355k rows) is read
# leniently: such rows are dropped, counted by reason (printed below and kept in the ledger) and the first few
# shown as file:line. The cleaning is the paper's:
# keep `rot-bad = 0`, keep `m = 1` (single-worker breakdowns), and drop rows missing the action, the foundations,
# the judgment or the agreement.

# %%
moral = data.profile_moral_data(P)
steps = pd.Series(moral.steps, name="rows")
print("rows the reader dropped, by reason:", moral.dropped or "none", *moral.raw.attrs.get("dropped_shown", []),
      sep="\n  ")


# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(6.5, 2.6))
sns.barplot(x=steps.values, y=steps.index, ax=ax, color=sns.color_palette(plotting.PALETTE)[0])
for i, n in enumerate(steps.values):
    ax.text(n, i, f" {n:,}", va="center")
ax.set(xlabel="rows", ylabel="", title="Cleaning, step by step")
plotting.save_figure(fig, ledger, "cleaning")
plt.show()

# %%
cleaned = moral.cleaned
n_multi = int((cleaned["rot-moral-foundations"].str.count(r"\|") > 0).sum())
print(f"{len(cleaned):,} cleaned rows, {n_multi:,} of them tagged with more than one foundation; "
      f"{len(moral.exploded):,} (action, foundation) rows after exploding.")
cleaned[["action", "rot-moral-foundations", "action-moral-judgment", "action-agree", "polarity"]].head(8)

# %% [markdown]
# ## What the vectors look like
#
# Each cleaned row becomes one vector. Exploding by foundation (one row per tagged foundation, each keeping the
# full vector) gives the view every diagnosis works on. The counts per foundation and polarity, and the spread
# of typicality within each pole:

# %%
exploded = moral.exploded
counts = exploded.groupby(["sampled_dimension", "polarity"]).size().unstack(fill_value=0)
counts = counts.reindex(index=list(data.FOUNDATIONS), columns=["virtue", "vice", "neutral"], fill_value=0)
counts

# %% tags=["hide-input"]
polar = exploded[exploded["polarity"] != "neutral"].assign(
    typicality=lambda d: np.maximum(d["m_virtue"], d["m_vice"]))
grid = sns.catplot(data=polar, x="typicality", hue="polarity", col="sampled_dimension", kind="count",
                   col_order=list(data.FOUNDATIONS), order=list(data.TYPICALITY_LEVELS), hue_order=["virtue", "vice"],
                   palette=plotting.POLE_COLORS, height=2.6, aspect=0.95, col_wrap=3)
grid.set_titles("{col_name}").set_axis_labels("typicality", "rows").tick_params(axis="x", rotation=60)
grid.figure.suptitle("Typicality per foundation and pole", y=1.04)
plotting.save_figure(grid.figure, ledger, "typicality_histograms")
plt.show()

# %% [markdown]
# ## The stratified diagnosis sample
#
# The paper does not probe all 251k vectors. Per foundation it draws up to 300 rows from each of the five
# non-prototypical typicality levels of each pole, up to 150 prototypes (typicality 1.0) per pole, and up to 300
# neutral rows: at most 3,600 per foundation, **16,315** in total. Strata smaller than their quota are taken
# whole. The profile scales the quotas (`quota_scale`) and sets a minimum stratum size below which the sample is
# refused rather than silently thin.
#
# ```{dropdown} Predict before you run: which strata will fall short of their quota?
# Look back at the typicality histograms. A prototype needs a "very good" or "very bad" judgment *and* near-total
# agreement, and some foundations are tagged far less often than others. Which (foundation, pole, typicality)
# cells do you expect to be thin? Those are taken whole, so in the heatmap below they show fewer rows than the
# quota the next cell prints, and every later statistic about them rests on fewer actions.
# ```

# %%
quotas = data.sample_quotas(P.quota_scale)
sample = moral.sample
achieved = sample.groupby(["sampled_dimension", "sample_type", "score_stratum"]).size().rename("rows")
table = achieved.reset_index().assign(
    stratum=lambda d: d["sample_type"].str.replace("_typical", "") + " " + d["score_stratum"].map("{:g}".format))
table = table.pivot(index="sampled_dimension", columns="stratum", values="rows").reindex(list(data.FOUNDATIONS))
print(f"quotas per stratum: {quotas}")


# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(9.5, 3.4), layout="constrained")
sns.heatmap(table, annot=True, fmt="g", cmap=plotting.SEQUENTIAL, ax=ax, cbar_kws={"label": "rows sampled"})
ax.set(xlabel="stratum (pole and typicality)", ylabel="", title=f"Diagnosis sample: {len(sample):,} rows")
plotting.save_figure(fig, ledger, "sample_strata")
plt.show()

# %% [markdown]
# The same action can enter several foundation strata (a multi-foundation row is exploded), so the sample has
# fewer *distinct* actions than rows; chapter 02 extracts each distinct action once.

# %%
print(f"{len(sample):,} sampled rows, {len(moral.actions):,} distinct actions")
sample[["action", "sampled_dimension", "sample_type", "score_stratum"]].sample(8, random_state=seed)

# %% [markdown]
# ## Two of the paper's choices, measured
#
# The book keeps two choices of the original code so that its numbers stay comparable, and measures what they
# cost here (see {doc}`../book/errata`, items 10 and 11).
#
# **"Neutral" mixes two kinds of row.** A row is neutral when its action is judged fine ($J = 0$), but also when
# almost nobody shares its judgment ($A = 0$), however strong that judgment is. The second kind is a contested
# action, not an unremarkable one, yet it gets the same all-zero moral vector.
#
# ```{dropdown} Predict before you run: how many neutral rows are contested rather than judged fine?
# Ask how often a worker would write a judgment that, by their own estimate, almost nobody shares. If that
# kind is rare, "neutral" means what it says; if it is a sizeable share, the neutral rows of chapters 04 and 05
# are partly *disputed* actions scored as morally empty. The table below splits the neutral rows by source. In
# `ci` the rows are project-written, so the split describes this sample, not the real crowd.
# ```

# %%
sources = data.neutral_sources(cleaned)
pd.Series(sources, name="neutral rows").to_frame().assign(
    share=lambda d: d["neutral rows"] / d["neutral rows"].sum()).style.format({"share": "{:.1%}"})

# %% [markdown]
# **Splits by row let near-copies cross.** The SAE chapters cut the cleaned rows 80/10/10 by row, as the paper
# does; Social-Chem-101 itself splits by situation, and one situation yields several rows. The probe of chapter 06
# splits the diagnosis sample, where a multi-foundation action appears once per foundation. The table gives, for
# each held-out part, the share of its rows whose action text or situation also occurs in its training part;
# `data.sae_splits(by="situation")` is the grouped alternative, shown beside the paper's split.

# %% tags=["hide-input"]
leaks = []
for by in data.SPLIT_UNITS:
    parts = data.sae_splits(cleaned, seed=P.sample_seed, by=by).drop_duplicates("id")
    for key in ("action", "situation-short-id"):
        leaks += [{"split": f"SAE rows, by {by}", "shared key": key, "part": part, "share in train": share}
                  for part, share in data.leakage(parts[key], parts["split"]).items()]
probe_parts = np.empty(len(sample), dtype=object)
for name, rows in zip(("train", "val", "test"), dimensional.probe_split(len(sample))):
    probe_parts[rows] = name
leaks += [{"split": "probe rows (chapter 06), by row", "shared key": "action", "part": part, "share in train": share}
          for part, share in data.leakage(sample["action"], probe_parts).items()]
leakage = pd.DataFrame(leaks)
leakage.pivot(index=["split", "shared key"], columns="part", values="share in train")[["val", "test"]].style.format(
    "{:.1%}")

# %% [markdown]
# A share above zero on the probe's test rows means the probe is scored partly on sentences it was trained on
# (with the same moral vector); the book keeps the paper's split so that chapter 06 measures the paper's
# recipe, and reads any such share as an optimistic bias of the probe's $R^2$.

# %% [markdown]
# ## Paper vs this run

# %% tags=["hide-input"]
ledger.models = []
ledger.data = {"n": len(moral.raw), "sha256": moral.sha256, "source": P.socialchem_source,
               "rows_dropped": moral.dropped}
ledger.record("n_rows_raw", len(moral.raw))
ledger.record("n_rows_clean", len(cleaned))
ledger.record("n_vectors_exploded", len(exploded))
ledger.record("n_sample", len(sample))
ledger.record("counts", {f: {p: int(counts.loc[f, p]) for p in counts.columns} for f in counts.index})
levels = sorted(set(np.round(np.concatenate([cleaned["m_virtue"], cleaned["m_vice"]]), 6)) - {0.0})
ledger.record("typicality_levels", levels)
ledger.record("neutral_sources", sources)
ledger.record("split_leakage", {f"{r['split']} | {r['shared key']} | {r['part']}": r["share in train"]
                                for r in leaks})
ledger.record_paper("n_rows_raw", 355923, "spec §1.1 [B]")
ledger.record_paper("n_vectors_exploded", 251514, "spec §1.1, §1.5 [B] (our reading: exploded rows)")
ledger.record_paper("n_sample", 16315, "spec §1.6 [W]")
ledger.save()

report.paper_vs_run([
    report.comparison("rows before cleaning", 355923, len(moral.raw),
                      "ci uses the project-written sample; colab/paper download the real file"),
    report.comparison("vectors (exploded rows)", 251514, len(exploded),
                      "the paper's 251,514 most likely counts exploded rows (spec §1.5)"),
    report.comparison("diagnosis sample", 16315, len(sample), f"quotas scaled by {P.quota_scale}"),
    report.comparison("distinct typicality levels", 6, len(levels), "same formula, same six levels"),
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
# - The moral vector is a **graded** target: six typicality levels per pole, from 0.125 to the 1.0 prototypes.
#   Chapters 03–06 ask whether a model's activations respect its categories (virtue vs vice), its grades
#   (typicality) and its geometry (a linear map).
# - "Neutral" means *judged OK or judged by almost nobody*, not "no foundation": every cleaned row has a
#   foundation.
# - In `ci` the numbers are those of a small project-written sample, so they differ from the paper's counts by
#   design; the pipeline and the rules are the same. Run `make book PROFILE=colab` for the real data.
#
# Next: {doc}`02_activations` feeds each sampled action to the model as `"{action} is morally"`.
