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
# # 14. Reproducibility report: what held up, and on which models
#
# **The question.** After thirteen chapters, which of the three papers' claims does this run reproduce, which only
# point the same way, which would an untrained network, a control condition or noise produce just as well, which
# fail, and which cannot be tested at this scale? A reader comparing a re-run with the book, or the book with the
# papers, needs one page that answers this without anybody typing a verdict by hand.
#
# **Method.** Every row below is one claim of the papers (moral indifference: spec §3.5, §4–§6; harmful-generation
# weights: companion spec §2; emergent-misalignment geometry: companion spec §2). For each claim,
# `helpers.claims` reads one chapter's results ledger, computes this run's value, applies the paper's rule, and then
# tries the same rule on every control the book computes for that claim: the random-initialised twin, the null, the
# control conditions (the SAE before surgery, the mean-difference vector, control fine-tunes, control prunes of as
# many weights), and each robust pooling variant and external lexicon. The first verdict that applies wins:
#
# - **not testable at this scale** — the profile lacks what the test needs (a Base / Instruct / Guard triple, a go
#   for the filtering experiment, a model that detects harm before pruning, …) or the chapter was not run; the row
#   says which;
# - **not discriminating** — the paper's rule is met, but a control meets it too (the row names which): the
#   finding is not about trained moral representations;
# - **inconclusive** — the rule is met, but the effect lies inside its null band or its test has p ≥ 0.05, or the
#   claim needs a control or test that the book does not compute yet (the row says which);
# - **reproduced** — the paper's value or bound is met, and no control meets it;
# - **direction holds** — the paper's value is missed, but the effect points the paper's way (a real direction of
#   the claim, never merely "weaker than the paper"; a bound has no weaker form);
# - **not reproduced** — neither.
#
# A positive verdict is **fragile** when it changes under a pooling variant or an external lexicon, or between
# the builds of the committed reference (this one's machine, an emulated one, and any real other machine).
#
# Every rule is tested on hand-built ledgers whose verdicts are known (`tests/test_claims.py`). Nothing here is
# recomputed from activations: this chapter only reads the ledger.
#
# **You will learn to**
# - read a claim's verdict from its rule, the controls it was tried on and its test against chance;
# - explain why a rule that is met can still be *not discriminating* or *inconclusive*;
# - trace a verdict back to the chapter, control or view of the data that decided it, and tell a fragile verdict
#   from a stable one;
# - compare this run's numbers with the committed reference, and say which departures the book's tests allow.
#
# **Learner time:** about 20 minutes to read and run.
#
# **Prerequisites:** every chapter before this one (a chapter that has not run makes its claims *not testable*).
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
import pandas as pd
import seaborn as sns
from IPython.display import Markdown
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from helpers import claims, plotting, reference
from helpers.ledger import Ledger
from helpers.profiles import PROFILES, load_profile

P = load_profile(profile)
ledger = Ledger("14_report", P.name, seed=seed)
plotting.set_theme()
ledgers = claims.load_ledgers(P.name)
missing = [chapter for chapter, metrics in ledgers.items() if metrics is None]
print(f"profile {P.name}: ledgers of {len(ledgers) - len(missing)} of {len(ledgers)} chapters found"
      + (f"; not run: {', '.join(missing)}" if missing else ""))

# %% [markdown]
# ## The rules
#
# One row per claim: what it says, the paper's value and where it comes from, and what this run must show for each
# verdict. Thresholds that the papers do not give (for example "frequently" read as at least a quarter of the
# cosines) are this book's reading, stated here so a reader can disagree with a rule rather than with a verdict.

# %%
rules = pd.DataFrame([{"id": c.id, "claim": c.statement, "paper": f"{c.paper_value} ({c.source})",
                       "chapter": c.chapter, "reproduced if": c.reproduced_if,
                       "direction holds if": c.direction_if or "— (a bound)", "also tried on": c.tried_on,
                       "tested against chance by": c.chance_test} for c in claims.CLAIMS])
rules.style.hide(axis="index")

# %% [markdown]
# ## The report
#
# One row per claim: this run's value on the trained models beside the control that came closest to earning the
# same verdict (and that control's own verdict under the paper's rule), the test against chance, the verdict with
# its reason, and the pooling variants, lexicons or machine under which a positive verdict changes.
#
# ```{dropdown} Predict before you run: which claims of chapters 03–07 can an untrained twin meet too?
# Sort the rules above into bounds ("weakly encoded", a peak {term}`ARI` below 0.15) and claims that something is
# present (opposite poles alike, clusters above their null). If the random-initialised twin encodes no moral
# structure, which sort does it meet as easily as a trained model? If it shares one large direction across all
# texts, which sort is at risk then? The report's control column right below, and the twin column of the figure
# after it, answer it.
# ```
#
# ```{dropdown} Predict before you run: which control must the SAE, steering, pruning and geometry claims beat?
# Name it for each family: the shuffled-label null (chapter 09), the pre-surgery SAE and the mean-difference vector
# (chapter 11), the refusal and trivia prunes of as many weights (chapter 12), the control fine-tune and random
# removal (chapter 13). Then decide which family you expect to clear its control, and which claims the rules table
# already says this profile cannot test. The report right below answers it.
# ```

# %%
both = claims.reference_verdicts(P.name)  # per claim: the reference build's verdict, the other machine's (or None)
rows = claims.report(ledgers, P.name, machines=both)
claims.evidence(rows, P.name)

# %% [markdown]
# ### Every verdict under every view of the data
#
# The same rule, controls and tests applied to the ledger as each pooling variant and external lexicon saw it, and
# the paper's rule alone applied to the random-initialised twin. A blank cell: this view was not computed for that
# claim (a claim outside chapters 03–07, or a variant that does not store what the rule reads).

# %% tags=["hide-input"]
views = ["paper recipe", *claims.ROBUST_VARIANTS, *claims.LEXICONS.values(), claims.TWIN]
grid = pd.DataFrame([{"id": r["id"], "paper recipe": r["verdict"], **r["variants"],
                      claims.TWIN: r["control_verdict"] if r["control"] == claims.TWIN else None} for r in rows]
                    ).set_index("id").reindex(columns=views)
codes = grid.apply(lambda col: col.map(lambda v: claims.VERDICTS.index(v) if v in claims.VERDICTS else None))
fig, ax = plt.subplots(figsize=(8.5, 9))
sns.heatmap(codes.astype(float), cmap=ListedColormap(list(plotting.VERDICT_COLORS.values())), vmin=-0.5,
            vmax=len(claims.VERDICTS) - 0.5, cbar=False, linewidths=0.5, linecolor="white", ax=ax)
ax.set(xlabel="view of the data", ylabel="claim", title=f"Verdict per claim and view ({P.name} profile)")
ax.tick_params(axis="x", rotation=30)
ax.grid(False)
ax.legend(handles=[Patch(color=c, label=v) for v, c in plotting.VERDICT_COLORS.items()], title="verdict",
          bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False)
plotting.save_figure(fig, ledger, "verdicts_by_view")
plt.show()

# %%
summary = pd.DataFrame(rows)


# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(8, 3.2))
order = [claims.MORAL, claims.HARM, claims.GEOMETRY]
counts = (summary.groupby(["paper", "verdict"]).size().unstack(fill_value=0)
          .reindex(index=order, columns=list(claims.VERDICTS), fill_value=0))
counts.plot.barh(stacked=True, ax=ax, color=[plotting.VERDICT_COLORS[v] for v in counts.columns], width=0.7)
ax.invert_yaxis()
ax.set(xlabel="claims", ylabel="", title=f"Verdicts per paper ({P.name} profile)")
ax.legend(title="verdict", bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False)
plotting.save_figure(fig, ledger, "verdicts")
plt.show()
totals = claims.counts(rows)
print(", ".join(f"{v.removeprefix('n_').replace('_', ' ')}: {n}" for v, n in totals.items()),
      f"(of {len(rows)} claims)")

# %% [markdown]
# ### What this profile can and cannot separate
#
# Generated from the rows above: which of the papers' findings stand against every control the book has, and which
# this profile cannot tell apart from an untrained network, a control condition or noise.

# %%
Markdown(claims.account(rows))

# %% [markdown]
# ### Verdicts that hang on the CPU
#
# The committed reference holds builds of the same sources on several machines whose float32 kernels round
# differently: the reference build, one under an emulated other machine (`make reference`), and any real other
# machine added beside them; the rules were applied to every build. A claim whose verdict differs between them is
# decided by rounding at this profile's size; a positive one is flagged fragile above.
#
# ```{dropdown} Predict before you run: which verdicts would you expect to flip on another machine?
# Rounding moves a float32 result in its last digits; that decides a verdict only where a value sits on the edge
# of its rule (a threshold, the edge of a null band, a p-value near 0.05), or where a long chain of training steps
# or sampled tokens amplifies it (SAE training, surgery, fine-tunes, generations). Statistics computed directly
# from the activations, with no training in between, are less exposed. The count and table right below answer it.
# ```

# %%
fragile, unmeasured = reference.fragile_and_unmeasured(both)
print(f"{len(fragile)} of {len(both) - len(unmeasured)} verdicts measured on another machine differ there"
      + (f"; not measured: {', '.join(unmeasured)}" if unmeasured else ""))
pd.DataFrame([{"id": claim, "reference build": mine, **theirs} for claim, (mine, theirs) in fragile.items()])

# %% [markdown]
# **What it means.** Read the report by paper and by verdict, not as a score. A *not discriminating* row is a
# measurement that an untrained network or a control condition also passes, so at this profile it says nothing
# about trained moral representations; an *inconclusive* row is one that noise could produce, or one whose missing
# control the row names (work for the book, not for the reader). A *not reproduced* row is a finding, with its
# chapter explaining what was measured; several are traced there to a property of the small model (the outlier
# dimensions of chapter 02, a judge that cannot judge in chapter 11). A larger profile (`colab`, `paper`) supplies
# the Base / Instruct / Guard triple, real Social-Chem-101 and Flames, and wider dictionaries.
#
# ## What each profile measures
#
# The code path is the same for every profile; only these parameters differ. The verdicts above are this
# profile's; re-running the book with `profile="colab"` or `"paper"` regenerates the whole report from that run's
# ledger.

# %%
def describe(name: str) -> dict:
    """The knobs of a profile that decide what its report can test."""
    p = load_profile(name)
    return {"profile": name, "models (diagnoses)": ", ".join(p.models), "Social-Chem-101": p.socialchem_source,
            "quota scale": p.quota_scale, "SAE model": p.sae_model, "SAE width": f"{p.sae_expansion}× d_model",
            "Flames": p.flames_source, "judge": p.judge_model, "max new tokens": p.max_new_tokens,
            "pruned model": p.prune_model, "geometry model": p.geometry_model}


pd.DataFrame([describe(name) for name in PROFILES]).set_index("profile").T

# %%
ledger.models = sorted({*P.models, P.sae_model, P.judge_model, P.prune_model, P.geometry_model})
# the ledger keeps this build's own evidence; a flip between the reference's two machines is shown above, not stored
# (it depends on the committed reference, which this ledger is itself part of)
own = claims.report(ledgers, P.name)
ledger.record("claims", [{k: r[k] for k in claims.LEDGER_FIELDS} for r in own])
for key, value in totals.items():
    ledger.record(key, value)
ledger.save()

# %% [markdown]
# ## Tested numbers: this run against the committed reference
#
# `reference/<profile>/` holds the comparable ledger metrics of clean builds of the same sources: the reference
# build, one under an emulated other machine, and any real other machine added beside them (committed;
# `make reference` rewrites them deliberately). The book's tests fail when a fresh build moves a number further than
# its family or its chapter moved between the reference build and any other (three times that drift, plus a floor
# of 1e-4 relative), or changes anything else that all builds agreed on; this chapter's own ledger, saved above, is
# compared too. "Differences at all" counts departures of any size: zero everywhere means this build and
# the reference build computed identical numbers, which can only be expected on the reference's own machine
# fingerprint. The last column counts each chapter's metrics that another machine may not reproduce to three
# significant digits (each chapter lists them).

# %%
comparison = pd.DataFrame(reference.compare_run(P.name))
if comparison.empty:
    print(f"no reference ledger is committed for profile {P.name}")
comparison
