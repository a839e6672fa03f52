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
# # E8. Signed weight scores and the top-q-minus-top-p selection
#
# **Teaches:** {doc}`../12_harmful_weights`. **Objective:** pick the weights whose removal should hurt harmful
# answers most while sparing the weights benign answers need. **Time:** 20 minutes. **Prerequisites:** a
# first-order Taylor expansion; `torch.topk`.

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

Markdown(exercises.colab_links("E8_signed_selection"))

# %% [markdown]
# ## The task
#
# For each matrix `W` with summed gradient `G` of the loss on harmful answers, zeroing weight $w$ changes the loss
# by about $-w\,g$. Score every weight by $-W \odot G$, take the top $\lceil q \cdot \text{numel} \rceil$ as
# candidates, and remove those among the top $\lceil p \cdot \text{numel} \rceil$ of the **keep** scores (how much
# benign answers need each weight). Return, per matrix name, the flat indices that remain.
#
# **Predict first.** Would $|W \odot G|$ pick the same weights? What does its sign tell you that its size does not?
#
# ```{dropdown} Hint 1: flat indices
# `torch.topk(scores.flatten(), k).indices`; `torch.isin(a, b)` tells which of `a` are in `b`.
# ```
#
# ```{dropdown} Hint 2: small matrices
# `math.ceil`, not `int`: a matrix of 6 weights with q = 0.3 still has ⌈1.8⌉ = 2 candidates.
# ```

# %% tags=["exercise"]
import math

import torch


def select(weights: dict[str, torch.Tensor], grads: dict[str, torch.Tensor], keep: dict[str, torch.Tensor],
           q: float, p: float) -> dict[str, torch.Tensor]:
    """Per matrix: flat indices of the top-q scores −W⊙G that are not among the top-p keep scores."""
    raise NotImplementedError("write select")


# %% tags=["solution", "hide-input"]
def select(weights: dict[str, torch.Tensor], grads: dict[str, torch.Tensor], keep: dict[str, torch.Tensor],
           q: float, p: float) -> dict[str, torch.Tensor]:
    """Per matrix: flat indices of the top-q scores −W⊙G that are not among the top-p keep scores."""
    chosen = {}
    for name, w in weights.items():
        n = w.numel()
        candidates = torch.topk((-(w * grads[name])).flatten(), math.ceil(q * n)).indices
        protected = torch.topk(keep[name].flatten(), math.ceil(p * n)).indices
        chosen[name] = candidates[~torch.isin(candidates, protected)]
    return chosen


# %% [markdown]
# ## Check
#
# Two planted matrices whose answer is worked out by hand (`helpers.exercises.planted_weights`), then random ones
# against `helpers.pruning.select`.

# %%
exercises.check_selection(select)
print("E8 passed")

# %% [markdown]
# **What it means.** Chapter 12 zeroes these weights in SmolLM2 and asks whether harmful answers get less likely
# than after zeroing as many random, trivia-selected or refusal-selected weights: a selection only counts when it
# beats those controls.
