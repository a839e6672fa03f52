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
# # E1. Pooling a padded batch
#
# **Teaches:** {doc}`../02_activations`. **Objective:** turn a padded batch of residual streams into one vector
# per text, three ways: the mean over real tokens (the paper's recipe), the mean without the first real token (the
# attention sink), and the last real token. **Time:** 20 minutes. **Prerequisites:** tensor broadcasting, attention
# masks.

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

Markdown(exercises.colab_links("E1_pooling"))

# %% [markdown]
# ## The task
#
# `resid` is `[batch, positions, d]`, `mask` is `[batch, positions]` with 1 on real tokens and 0 on padding.
# Padding may sit on the left (as the book's extraction pads) or on the right (as most training code pads). Return
# `{"mean": ..., "mean_nosink": ..., "last": ...}`, each `[batch, d]`. A text of one token has nothing left without
# its sink: its `mean_nosink` is its `mean`.
#
# **Predict first.** Chapter 02 shows the first token's residual norm is about 100× the others. Which of the three
# poolings will that one token dominate?
#
# ```{dropdown} Hint 1: a masked mean
# `(resid * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)`, with the mask as a float.
# ```
#
# ```{dropdown} Hint 2: first and last real positions
# `mask.int().argmax(1)` is the first 1 of each row; flip the mask along positions for the last.
# ```

# %% tags=["exercise"]
import torch


def pool(resid: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean over real tokens, mean without the first real token, and the last real token, per text."""
    raise NotImplementedError("write pool")


# %% tags=["solution", "hide-input"]
def pool(resid: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean over real tokens, mean without the first real token, and the last real token, per text."""
    weights = mask.to(resid.dtype)
    rows = torch.arange(len(mask))
    first = mask.int().argmax(1)
    last = mask.shape[1] - 1 - mask.int().flip(1).argmax(1)
    without_sink = weights.clone()
    without_sink[rows, first] = 0.0
    single = weights.sum(1) == 1
    without_sink[single] = weights[single]  # one token: nothing left without the sink
    return {"mean": (resid * weights[..., None]).sum(1) / weights.sum(1, keepdim=True),
            "mean_nosink": (resid * without_sink[..., None]).sum(1) / without_sink.sum(1, keepdim=True),
            "last": resid[rows, last]}


# %% [markdown]
# ## Check
#
# A batch worked out by hand (a left-padded text of three tokens, a right-padded text of two, a text of one; real
# tokens hold 10 × position + 1, padding holds 99), then a random batch mixing both paddings against
# `helpers.activations.pool`.

# %%
exercises.check_pool(pool)
print("E1 passed")

# %% [markdown]
# **What it means.** Every diagnosis of chapters 03–07 reads these three poolings: the paper's recipe is `mean`,
# and the *no_sink* and *last_token* variants of chapter 14's evidence table are the other two.
