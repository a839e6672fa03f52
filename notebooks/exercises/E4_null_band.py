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
# # E4. A label-permutation null band for any statistic
#
# **Teaches:** {doc}`../03_categorical` to {doc}`../06_dimensional`. **Objective:** tell a number that
# reflects moral structure from one that any arrangement of the same rows would give. **Time:** 15 minutes.
# **Prerequisites:** numpy's `Generator`, percentiles.

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

Markdown(exercises.colab_links("E4_null_band"))

# %% [markdown]
# ## The task
#
# `statistic(x)` scores activations `x` (`[n, d]`) against labels it holds fixed. Return the central 95 % interval
# `(lo, hi)` of the statistic over `n_perm` shuffles of the **rows** of `x`, drawn as the book draws them: one
# `rng = np.random.default_rng(seed)`, then `x[rng.permutation(len(x))]` for each draw.
#
# **Predict first.** With 1.5k rows and 10 categories, how large can a cosine or an ARI get by chance alone?
# Chapter 05's answer surprised its authors.
#
# ```{dropdown} Hint 1: what to shuffle
# Shuffling rows keeps every activation and every label but breaks which label belongs to which activation.
# ```
#
# ```{dropdown} Hint 2: the interval
# `np.percentile(values, 2.5)` and `np.percentile(values, 97.5)`.
# ```

# %% tags=["exercise"]
from collections.abc import Callable

import numpy as np


def null_band(statistic: Callable[[np.ndarray], float], x: np.ndarray, n_perm: int, seed: int) -> tuple[float, float]:
    """Central 95 % interval of statistic(x with its rows shuffled), over n_perm seeded shuffles."""
    raise NotImplementedError("write null_band")


# %% tags=["solution", "hide-input"]
def null_band(statistic: Callable[[np.ndarray], float], x: np.ndarray, n_perm: int, seed: int) -> tuple[float, float]:
    """Central 95 % interval of statistic(x with its rows shuffled), over n_perm seeded shuffles."""
    rng = np.random.default_rng(seed)
    values = [statistic(x[rng.permutation(len(x))]) for _ in range(n_perm)]
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


# %% [markdown]
# ## Check
#
# A planted association (the first column follows the labels, r ≈ 0.85): your band must straddle 0, lie far below
# it, and equal the band of `helpers.robustness.permutation_null` with the same seed (the same draws).

# %%
exercises.check_null_band(null_band)
print("E4 passed")

# %% [markdown]
# **What it means.** Every diagnosis chapter draws such a band per layer. Chapter 14 calls a claim *inconclusive*
# when the trained model's value sits inside it: the number is what shuffled labels give.
