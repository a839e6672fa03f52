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
# # E5. An SAE that takes raw activations: folding the centre into its biases
#
# **Teaches:** {doc}`../08_sae`. **Objective:** the book trains each SAE on centred activations $x - c$ and then
# saves one that takes raw $x$; work out how its biases must change. **Time:** 15 minutes. **Prerequisites:** an
# SAE's forward pass (below), matrix products.

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

Markdown(exercises.colab_links("E5_fold_centre"))

# %% [markdown]
# ## The SAE of the book
#
# Codes and reconstruction of activations $x$ (rows of `[n, d_in]`), as sae-lens's `StandardSAE` computes them
# when it does not subtract $b_{dec}$ from its input (the book's setting):
#
# $$ z = \operatorname{ReLU}(x W_{enc} + b_{enc}), \qquad \hat x = z W_{dec} + b_{dec}. $$

# %%
import torch

from helpers.exercises import sae_decode, sae_encode

params = exercises.random_sae()
codes = sae_encode(params["x"] - params["centre"], params["w_enc"], params["b_enc"])
l0 = (codes > 0).sum(1).float().mean()
print(f"{params['x'].shape[0]} rows, {codes.shape[1]} latents; mean L0 on x − c: {l0:.1f}")

# %% [markdown]
# ## The task
#
# The SAE was trained on $x - c$. Return new biases `(b_enc, b_dec)` with which the *same* weights, fed raw $x$,
# give exactly the codes of $x - c$ and a reconstruction of $x$ itself (that of $x - c$, plus $c$).
#
# **Predict first.** Which bias must absorb $c$ for the codes, and which for the reconstruction?
#
# ```{dropdown} Hint 1: the codes
# $(x - c) W_{enc} + b_{enc} = x W_{enc} + (b_{enc} - c W_{enc})$.
# ```
#
# ```{dropdown} Hint 2: the reconstruction
# The SAE reconstructs $x - c$; add $c$ back where it adds a constant.
# ```

# %% tags=["exercise"]
def fold_centre(w_enc: torch.Tensor, b_enc: torch.Tensor, b_dec: torch.Tensor, centre: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The biases with which the SAE trained on x − centre takes raw x."""
    raise NotImplementedError("write fold_centre")


# %% tags=["solution", "hide-input"]
def fold_centre(w_enc: torch.Tensor, b_enc: torch.Tensor, b_dec: torch.Tensor, centre: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The biases with which the SAE trained on x − centre takes raw x."""
    return b_enc - centre @ w_enc, b_dec + centre


# %% [markdown]
# ## Check
#
# The folded SAE runs on the raw rows; its codes must equal the trained SAE's codes of $x - c$, and its
# reconstruction that of $x - c$ plus $c$. (A test also checks that `helpers.sae` folds a real sae-lens SAE the
# same way.)

# %%
exercises.check_fold_centre(fold_centre)
print("E5 passed")

# %% [markdown]
# **What it means.** Chapter 08 also rescales every layer to one mean squared norm before training and folds that
# factor into the weights, so a saved SAE is a plain sae-lens SAE on the model's raw residual stream: chapters
# 09–11 and anyone loading it with `SAE.load_from_disk` need no preprocessing.
