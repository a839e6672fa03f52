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
# # E3. The typicality gradient as a rank correlation
#
# **Teaches:** {doc}`../04_gradient`. **Objective:** measure whether actions people find more typical of a
# category sit closer to its prototype. **Time:** 10 minutes. **Prerequisites:** E2 (prototypes), Spearman's ρ.

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

Markdown(exercises.colab_links("E3_typicality_rho"))

# %% [markdown]
# ## The task
#
# Given centred activations `x_centred` (`[n, d]`), one category's prototype `centre` (`[d]`) and the human
# typicality of each row (`[n]`), return Spearman's ρ between the typicality and each row's **cosine** to the
# prototype.
#
# **Predict first.** Two rows point in exactly the same direction, one twice as long. Should the more typical
# one be allowed to win only because it is longer?
#
# ```{dropdown} Hint 1: cosine
# `x_centred @ centre / (np.linalg.norm(x_centred, axis=1) * np.linalg.norm(centre))`
# ```
#
# ```{dropdown} Hint 2: ranks
# `scipy.stats.spearmanr(a, b).statistic`, or the Pearson correlation of `scipy.stats.rankdata` of each (ties get
# their average rank, which matters: typicality takes only five values).
# ```

# %% tags=["exercise"]
import numpy as np
from scipy.stats import spearmanr


def typicality_rho(x_centred: np.ndarray, centre: np.ndarray, typicality: np.ndarray) -> float:
    """Spearman ρ between human typicality and each row's cosine to the prototype."""
    raise NotImplementedError("write typicality_rho")


# %% tags=["solution", "hide-input"]
def typicality_rho(x_centred: np.ndarray, centre: np.ndarray, typicality: np.ndarray) -> float:
    """Spearman ρ between human typicality and each row's cosine to the prototype."""
    cosines = x_centred @ centre / (np.linalg.norm(x_centred, axis=1) * np.linalg.norm(centre))
    return float(spearmanr(typicality, cosines).statistic)


# %% [markdown]
# ## Check
#
# A planted case first: rows whose angle to the prototype shrinks as typicality grows, each with a random length
# (ρ must be exactly 1, whatever the lengths); then random rows with tied typicality against `helpers.gradient`.

# %%
exercises.check_typicality_rho(typicality_rho)
print("E3 passed")

# %% [markdown]
# **What it means.** Chapter 04 computes this ρ for every category and layer. Its paper recipe builds the
# prototype from the typicality-1.0 rows and then scores those same rows, which inflates ρ: the chapter's held-out
# variant and its permutation null (E4) show by how much.
