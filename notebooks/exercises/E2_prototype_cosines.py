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
# # E2. Prototype cosines after centring
#
# **Teaches:** {doc}`../03_categorical`. **Objective:** compute the `[10, 10]` matrix of cosines between the
# ten category prototypes of one layer, after removing the direction every activation shares.
# **Time:** 15 minutes. **Prerequisites:** numpy boolean masks, the sample columns `sampled_dimension` and
# `sample_type` (chapter 01).

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

Markdown(exercises.colab_links("E2_prototype_cosines"))

# %% [markdown]
# ## The task
#
# A prototype $c_j$ is the mean of the **centred** activations $\tilde x_i = x_i - \bar x$ of category $j$'s
# *typical* rows (`sample_type` `virtue_typical` or `vice_typical` in its foundation; category $2k$ is
# foundation $k$'s virtue pole, $2k + 1$ its vice pole, foundations in `helpers.data.FOUNDATIONS` order). Return
# $\cos(c_j, c_k)$ for every pair.
#
# **Predict first.** Residual streams share one large direction (chapter 02). Without centring, what would
# every virtue–vice cosine be, whatever the model has learned?
#
# ```{dropdown} Hint 1: the rows of a category
# `(sample["sampled_dimension"] == foundation) & (sample["sample_type"] == f"{pole}_typical")` is a boolean mask.
# ```
#
# ```{dropdown} Hint 2: all cosines at once
# Stack the ten prototypes as rows of `C`, divide each row by its norm, then `C @ C.T`.
# ```

# %% tags=["exercise"]
import numpy as np
import pandas as pd

from helpers.data import FOUNDATIONS


def prototype_cosines(x: np.ndarray, sample: pd.DataFrame) -> np.ndarray:
    """[10, 10] cosines between the centred typical-row means of each (foundation, pole)."""
    raise NotImplementedError("write prototype_cosines")


# %% tags=["solution", "hide-input"]
def prototype_cosines(x: np.ndarray, sample: pd.DataFrame) -> np.ndarray:
    """[10, 10] cosines between the centred typical-row means of each (foundation, pole)."""
    centred = x - x.mean(axis=0, keepdims=True)
    foundation, kind = sample["sampled_dimension"].to_numpy(), sample["sample_type"].to_numpy()
    centres = np.stack([centred[(foundation == f) & (kind == f"{pole}_typical")].mean(axis=0)
                        for f in FOUNDATIONS for pole in ("virtue", "vice")])
    unit = centres / np.linalg.norm(centres, axis=1, keepdims=True)
    return unit @ unit.T


# %% [markdown]
# ## Check
#
# The check first runs your function on a planted sample whose virtue and vice prototypes point in opposite
# directions on top of a large shared offset (so every virtue–vice cosine must be −1), then on random rows against
# the book's `helpers.categorical`. A wrong answer that matches a known mistake is named.

# %%
exercises.check_prototype_cosines(prototype_cosines)
print("E2 passed")

# %% [markdown]
# **What it means.** Chapter 03 reads the same matrix off real activations: a virtue–vice cosine near +1 after
# centring is the paper's *categorical indifference*; near −1 would be a model that separates the poles.
