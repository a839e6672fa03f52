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
# # E7. The steering hook
#
# **Teaches:** {doc}`../11_steering_flames`. **Objective:** write the TransformerLens hook that edits the residual
# stream while a model generates: every generated token, and every prompt token except padding and each prompt's
# first token (the attention sink). **Time:** 20 minutes. **Prerequisites:** boolean indexing, what a KV cache does
# to the shape of a forward pass.

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

Markdown(exercises.colab_links("E7_steering_hook"))

# %% [markdown]
# ## The task
#
# `steering_hook(edit, skip)` returns `hook(resid, hook)`, which TransformerLens calls on `blocks.L.hook_resid_post`
# at every forward pass of `generate`. `resid` is `[batch, positions, d]`; `skip` is `[batch, prompt_len]` and marks
# padding and each prompt's sink. The first call (the prefill) sees the whole prompt; with a KV cache every later
# call sees one new position. Return the edited residual stream: `edit` applied (to float rows) wherever the
# position is not skipped, every generated position edited, the tensor you were given left unchanged.
#
# **Predict first.** Chapter 11 checks that α = 0 reproduces the unsteered generation token for token. Which
# mistakes above would that check catch, and which would it miss?
#
# ```{dropdown} Hint 1: prefill or generation?
# Compare `resid.shape[1]` with `skip.shape[1]`: only the prefill has the prompt's length.
# ```
#
# ```{dropdown} Hint 2: editing rows
# `edited = resid.clone()`, then `edited[mask] = edit(resid[mask].float()).to(resid.dtype)` edits the `[n, d]` rows a
# boolean `[batch, positions]` mask selects.
# ```

# %% tags=["exercise"]
from collections.abc import Callable

import torch


def steering_hook(edit: Callable[[torch.Tensor], torch.Tensor], skip: torch.Tensor) -> Callable:
    """A hook applying `edit` to every position except, during the prefill, those `skip` marks."""
    raise NotImplementedError("write steering_hook")


# %% tags=["solution", "hide-input"]
def steering_hook(edit: Callable[[torch.Tensor], torch.Tensor], skip: torch.Tensor) -> Callable:
    """A hook applying `edit` to every position except, during the prefill, those `skip` marks."""
    def hook(resid: torch.Tensor, hook=None) -> torch.Tensor:  # noqa: ARG001 - TransformerLens hook signature
        prefill = resid.shape[1] == skip.shape[1]
        keep = skip if prefill else torch.zeros(resid.shape[:2], dtype=torch.bool)
        edited = resid.clone()
        edited[~keep] = edit(resid[~keep].float()).to(resid.dtype)
        return edited
    return hook


# %% [markdown]
# ## Check
#
# A left-padded prefill of two prompts (padding and sinks must come back untouched, every other position edited),
# then one generated position (edited), then an edit that does nothing (the hook must be the identity), each time
# checking that the tensor handed in is unchanged.

# %%
exercises.check_steering_hook(steering_hook)
print("E7 passed")

# %% [markdown]
# **What it means.** Chapter 11 wraps this hook around HF `generate` through `bridge.hooks(...)`, with `edit` the
# SAE reconstruction $x + \alpha(\mathrm{SAE}(x) - x)$ or an added mean-difference vector, and judges the steered
# answers against the unsteered ones.
