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
# # 7. Across models: do scale, architecture or alignment fix it?
#
# **The question.** The paper's central claim is that moral indifference is not a quirk of one model: across 23
# models from 0.6B to 235B parameters, dense and mixture-of-experts, base, instruction-tuned and safety-tuned
# ("Guard"), all four diagnoses look alike. This chapter puts the four diagnoses of chapters 03–06 side by side
# for every model of the profile, on a relative-depth axis so that models of different depth line up.
#
# **You will learn to**
# - read four diagnoses on one relative-depth axis, knowing for each which direction means "more moral
#   structure";
# - set each model's peak against the chance level of its own null and against the paper's reference;
# - tell a conclusion about the model from one about the pooling, by checking it across input variants;
# - use the random-initialised twin as the floor a trained model has to beat.
#
# **Learner time:** about 15 minutes to read and run.
#
# **Prerequisites:** chapters 03–06 (this chapter reads their results ledger; it recomputes nothing).
# **Run time:** seconds.

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

from helpers import ledger as results
from helpers import claims, plotting, report
from helpers.ledger import Ledger
from helpers.models import model_spec
from helpers.profiles import load_profile

P = load_profile(profile)
ledger = Ledger("07_across_models", P.name, seed=seed)
plotting.set_theme()
entries = {chapter: results.load(chapter, P.name)
           for chapter in ("03_categorical", "04_gradient", "05_structural", "06_dimensional")}
models = entries["03_categorical"]["models"]
pd.DataFrame([{"model": m, **{k: getattr(model_spec(m), k) for k in ("family", "params", "group")}} for m in models])

# %% [markdown]
# ## Four diagnoses, one axis
#
# Each panel is one diagnosis under the paper's recipe (mean pooling), one line per model:
# the mean virtue–vice prototype cosine (03; lower is better separated), the overall typicality Spearman with
# held-out prototypes (04; higher is more graded), the Polarity3 ARI of the unsupervised clusters (05; the
# dotted line is the share of points declared noise), and the test $R^2$ of the standardised ridge probe (06).
#
# ```{dropdown} Predict before you run: will the random twin stand apart from the trained models?
# The paper's claim predicts that the trained models look alike whatever their family, size or tuning. The
# sharper question is the twin: on any diagnosis where its curve overlaps the trained ones, that diagnosis
# measures the architecture and the prompts, not what training taught. Note also where along the depth axis
# each curve peaks; the paper reports its high cosines in intermediate layers. The four panels below answer it.
# ```

# %% tags=["hide-input"]
def per_layer(values: list) -> pd.DataFrame:
    """A per-layer list as a frame with layer and relative depth."""
    return pd.DataFrame({"layer": range(len(values)), "value": values,
                         "relative depth": [plotting.relative_depth(i, len(values)) for i in range(len(values))]})


panels = {
    "virtue–vice cosine (03)": lambda m: [np.mean(list(v.values()))
                                          for v in entries["03_categorical"]["metrics"][m]["virtue_vice_cosine"].values()],
    "overall Spearman ρ, held-out (04)": lambda m: entries["04_gradient"]["metrics"][m]["spearman_heldout_overall"],
    "ARI Polarity3 (05)": lambda m: entries["05_structural"]["metrics"][m]["ari_polarity3"],
    "ridge probe R² (06)": lambda m: entries["06_dimensional"]["metrics"][m]["r2_ridge"],
}
frames = [per_layer(get(m)).assign(model=m, diagnosis=title) for title, get in panels.items() for m in models]
noise = pd.concat([per_layer(entries["05_structural"]["metrics"][m]["noise_ratio"]).assign(model=m) for m in models],
                  ignore_index=True)
table = pd.concat(frames, ignore_index=True)
fig, axes = plotting.panels(4, (4.6, 3.4))
for ax, title in zip(axes, panels):
    sns.lineplot(data=table.query("diagnosis == @title"), x="relative depth", y="value", hue="model", ax=ax,
                 legend=ax is axes[-1])
    if title.startswith("ARI"):
        sns.lineplot(data=noise, x="relative depth", y="value", hue="model", ls=":", ax=ax, legend=False)
    ax.axhline(0, color="0.4", lw=0.6)
    ax.set(title=title, ylabel="")
axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
plotting.save_figure(fig, ledger, "four_diagnoses")
plt.show()

# %% [markdown]
# ## Peaks, one row per model
#
# The headline number of each diagnosis for each model (best layer), each followed by the chance level its
# permutation null reaches, and the paper's reference in the last column.
#
# ```{dropdown} Predict before you run: which peaks will clear their chance level?
# A peak is the best of many layers, so it is biased upwards: for chapters 04 and 05 the table sets it against
# the highest upper end of the null over all layers, the fair match for a maximum (chapter 03's cosine is shown
# beside the band at its optimal layer, chapter 06's ridge $R^2$ beside the band at its best layer). For each
# diagnosis, predict whether the trained models clear chance and the twin does not. A peak that both clear by
# the same margin says little about training.
# ```

# %% tags=["hide-input"]
def null_hi(bands: list) -> float:
    """The highest upper end of a list of per-layer null bands (a conservative chance level for a peak)."""
    return float(np.nanmax([np.nan if b is None or b["hi"] is None else b["hi"] for b in bands]))


def peaks(m: str) -> dict:
    """The peak values of chapters 03–06 for one model, each beside the chance level of its null."""
    cat, grad = entries["03_categorical"]["metrics"][m], entries["04_gradient"]["metrics"][m]
    struct, dim = entries["05_structural"]["metrics"][m], entries["06_dimensional"]["metrics"][m]
    optimal = cat["optimal_layer"]
    return {"group": model_spec(m).group,
            "virtue–vice cosine at optimal layer": float(np.mean(list(cat["virtue_vice_cosine_at_optimal"].values()))),
            "  null 95 % band there": "[{lo:.2f}, {hi:.2f}]".format(**cat["null"]["mean_virtue_vice_cosine"][optimal]),
            "peak Spearman (paper)": grad["peak_spearman_overall"],
            "peak Spearman (held-out)": grad["peak_spearman_heldout_overall"],
            "  held-out null, max hi": null_hi(grad["null"]["overall_spearman_heldout"]),
            "peak ARI Polarity3": struct["peak_ari_polarity3"],
            "  null, max hi": null_hi(struct["null"]["ari_polarity3"]),
            "peak ARI MFT5": struct["peak_ari_mft5"],
            "peak R² (probe)": dim["peak_r2"], "peak adjusted R²": dim["peak_adj_r2"],
            "peak R² (ridge)": dim["peak_r2_ridge"], "  ridge null hi": dim["null"]["r2_ridge"]["hi"]}


summary = pd.DataFrame({m: peaks(m) for m in models}).T
paper_row = pd.DataFrame([{"group": "paper (23 models)", "virtue–vice cosine at optimal layer": "> 0.5 often",
                           "peak Spearman (paper)": "< 0.55", "peak ARI Polarity3": "≈ 0.5", "peak ARI MFT5": "< 0.15",
                           "peak adjusted R²": "0.26"}], index=["paper"])
display_table = pd.concat([summary.apply(lambda c: c.map(lambda v: f"{v:.3f}" if isinstance(v, float) else v)),
                           paper_row]).fillna("—")
display_table.T

# %% [markdown]
# ## Which conclusions survive every input variant?
#
# Each diagnosis was also run on the sink-free mean, the last token and standardised dimensions (chapter 03
# explains why). One headline number per diagnosis and variant; a conclusion that flips between columns belongs
# to the pooling, not to the model.
#
# ```{dropdown} Predict before you run: which diagnosis depends most on the input variant?
# Recall what each statistic is built from. Those built on prototypes (03, 04) can be decided by a few dominant
# coordinates, so `standardised` and `no_sink` may move them. The ridge probe (06) standardises its features on
# the training rows itself, so the `standardised` column should barely change it. HDBSCAN (05) works on the
# principal components, which rescaling reshapes. The table the next cell prints answers it.
# ```

# %%
headline = {
    "03 virtue–vice cosine at optimal layer": ("03_categorical", lambda v: float(np.mean(list(v["virtue_vice_cosine_at_optimal"].values())))),
    "04 peak overall Spearman (paper recipe)": ("04_gradient", lambda v: v["peak_spearman_overall"]),
    "05 peak ARI Polarity3": ("05_structural", lambda v: v["peak_ari_polarity3"]),
    "06 peak ridge R²": ("06_dimensional", lambda v: v["peak_r2_ridge"]),
}
survival = pd.DataFrame([
    {"model": m, "diagnosis": title,
     **{variant: get(metrics) for variant, metrics in
        {"paper": entries[chapter]["metrics"][m], **entries[chapter]["metrics"][m]["variants"]}.items()}}
    for m in models for title, (chapter, get) in headline.items()]).set_index(["model", "diagnosis"])
survival.round(3)

# %% tags=["hide-input"]
for m in models:
    ledger.record(m, {k.strip(): v for k, v in peaks(m).items() if k != "group"})
ledger.record("variants", {f"{m} | {d}": row.to_dict() for (m, d), row in survival.iterrows()})
ledger.models = models
ledger.data = {name: entry["data"] for name, entry in entries.items()}
ledger.record_paper("scaling_alignment_architecture", "none removes the indifference", "spec §3.5 [P][S]")
ledger.save()

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
# - **Learned vs not learned.** The random-initialised twin is the floor: a diagnosis on which a trained model
#   scores no better than its random twin cannot say anything about what training taught.
# - **Scale, architecture, alignment.** The `ci` profile has two small real models of different families, one
#   base and one instruction-tuned, so it can only hint at the paper's comparison; `make book PROFILE=colab`
#   runs the paper's Base / Instruct / Guard triple (Qwen3-0.6B) through exactly this chapter, and `paper` all
#   23 models.
