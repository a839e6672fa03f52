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
# # E6. Monosemantic, polysemantic and weak latents
#
# **Teaches:** {doc}`../09_moral_features`. **Objective:** sort an SAE's latents by how they correlate with the
# ten moral dimensions, the paper's test of whether a dictionary isolates clean moral features. **Time:** 15
# minutes. **Prerequisites:** Pearson correlation; the ten dimensions (chapter 01: column $2k$ is foundation $k$'s
# virtue, $2k + 1$ its vice).

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
profile = "ci"  # every page takes the profile; this exercise runs on planted data only

# %% tags=["remove-input"]
from IPython.display import Markdown

from helpers import exercises

Markdown(exercises.colab_links("E6_latent_classes"))

# %% [markdown]
# ## The task
#
# `r` is `[n_latents, 10]`: each latent's Pearson correlation, over the sentences, with each moral dimension.
# Classify every latent (spec §4.4, step 3), by the absolute values $|r|$:
#
# - **weak**: its largest $|r|$ is below 0.05;
# - otherwise **monosemantic**: exactly one $|r|$ exceeds 0.1, or none or two do and its two largest $|r|$ belong
#   to the same foundation (that foundation's virtue and vice: one concept);
# - otherwise **polysemantic**.
#
# **Predict first.** The paper finds 0.2–1.7 % of latents monosemantic. With about 200 sentences, how large is
# $|r|$ for a latent that has nothing to do with morality? (Chapter 09's label-shuffle null answers it.)
#
# ```{dropdown} Hint 1: the two largest
# `np.argsort(-np.abs(r), axis=1)[:, :2]` gives each latent's two strongest dimensions; integer division by 2
# gives their foundation.
# ```
#
# ```{dropdown} Hint 2: one expression per class
# Count `(np.abs(r) > 0.1).sum(1)`, build the monosemantic mask, then `np.where` twice.
# ```

# %% tags=["exercise"]
import numpy as np


def classify(r: np.ndarray) -> np.ndarray:
    """Per latent "weak", "monosemantic" or "polysemantic" from its correlations with the 10 dimensions."""
    raise NotImplementedError("write classify")


# %% tags=["solution", "hide-input"]
def classify(r: np.ndarray) -> np.ndarray:
    """Per latent "weak", "monosemantic" or "polysemantic" from its correlations with the 10 dimensions."""
    strength = np.abs(r)
    top = np.argsort(-strength, axis=1, kind="stable")[:, :2]
    n_significant = (strength > 0.1).sum(axis=1)
    one_foundation = top[:, 0] // 2 == top[:, 1] // 2
    mono = (n_significant == 1) | (np.isin(n_significant, (0, 2)) & one_foundation)
    return np.where(strength.max(axis=1) < 0.05, "weak", np.where(mono, "monosemantic", "polysemantic"))


# %% [markdown]
# ## Check
#
# Six latents classified by hand (`helpers.exercises.planted_correlations`: one strong dimension, care's virtue and
# vice together, care with a second foundation, nothing above 0.05, one strong negative correlation, three
# foundations), then 200 random latents against `helpers.features.classify`.

# %%
exercises.check_classify(classify)
print("E6 passed")

# %% [markdown]
# **What it means.** Chapter 09 reports these shares per layer beside the same shares after shuffling the labels:
# a monosemantic share that the shuffle also reaches is not evidence of moral features.
