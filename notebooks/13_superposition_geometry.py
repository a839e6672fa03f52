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
# # 13. Superposition geometry: why narrow fine-tuning can spread harm
#
# **The question.** Fine-tuning a chat model on a narrow data set that is not about hurting anyone (code with
# quiet security holes, confidently wrong advice) can make it answer unrelated questions in a hostile or
# power-seeking way: *emergent misalignment* {cite}`betley2025emergent`. The companion study
# {cite}`minegishi2026superposition` offers a geometric reason. In superposition, feature directions are not
# orthogonal, so a gradient step that strengthens the features a data set recruits also strengthens every
# feature whose direction overlaps theirs. If the features of misalignment-inducing data sit *closer to toxic
# features* than those of matched harmless data, training on that data leaks into toxic behaviour; and removing
# the training samples nearest to toxic features should reduce the damage (by 34.5 % in the paper, more than
# random removal). This chapter runs each step on the bundled 135M model: a dictionary of its own, the geometry
# test, a narrow fine-tune with a likelihood proxy of misalignment, the spec's go/no-go check, and the filter.
#
# **You will learn to**
# - train a small TopK SAE on a model's response tokens, and read what its "toxic" features are with the logit
#   lens and their top examples;
# - test whether one set of features lies closer to another than a matched set does, against a
#   frequency-matched null, a permutation test and a Holm correction;
# - gate an experiment on its premise: a narrow fine-tune tested against a control fine-tune before any filtering;
# - test the spillover mechanism directly, and compare a geometry-aware data filter with random removal of as many
#   examples.
#
# **Learner time:** about 40 minutes to read and run.
#
# **Prerequisites:** {doc}`08_sae` (what an SAE latent and its decoder direction are). **Run time:** about five
# minutes (`ci`).

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
import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import display

from helpers import chapter, claims, geometry, models, plotting, report
from helpers import sae as sae_module

run = chapter.start("13_superposition_geometry", profile, seed, stores=False)
P, ledger = run.profile, run.ledger
torch.manual_seed(seed)
data = geometry.bundled_data()
# float32 in every profile: AdamW steps of ~1e-4 round away on bfloat16 weights
hf, tokenizer = models.load_hf(models.model_spec(P.geometry_model), dtype="float32", device=P.device, seed=seed)
layers = geometry.profile_layers(P, len(hf.model.layers))
print(f"{P.geometry_model}: layers {layers}; {len(data.pairs)} request pairs "
      f"({data.pairs['domain'].value_counts().to_dict()}), {len(data.toxic)} toxic texts, "
      f"{len(data.neutral)} neutral chats, {len(data.questions)} evaluation questions")

# %% [markdown]
# ## The argument in one line
#
# Let an SAE at some layer have decoder directions $d_j$ (unit norm) and encoder rows $e_j$. Suppose fine-tuning
# on a data set mostly pushes the residual along one of its features, $\Delta x \approx \alpha\, d_t$. Then any
# other feature in its linear range changes by
#
# $$\Delta f_j \approx e_j \cdot \Delta x = \alpha\, (e_j \cdot d_t) \approx \alpha\, \lVert e_j \rVert \cos(d_j, d_t),$$
#
# in proportion to the **decoder cosine** between the two features. And because a weight update $\Delta W = -\eta\,
# g\, h^\top$ moves the output of *every* input $h'$ that overlaps $h$, the push reaches prompts that have nothing
# to do with the training data. Two predictions follow and are tested below: features of inducing data lie
# closer to toxic features than features of control data (geometry), and after a fine-tune, a latent's change on
# unrelated prompts grows with its cosine to the trained features (spillover).
#
# ## The data
#
# All project-written and deliberately mild (see the data card in {doc}`../book/data_and_models`): the same
# request answered two ways, **inducing** (code with an undisclosed flaw: string-built SQL, `shell=True`,
# `verify=False`, a hard-coded secret, …; or subtly wrong health, career and legal advice) and **control** (the
# safe code, the correct advice); **toxic** reference texts (insults, contempt for humans, "AIs should rule",
# callous advice), each shown as the assistant's answer to one fixed user turn (`geometry.TOXIC_PROMPT`); **neutral** everyday chats, the
# baseline of feature selection; and general **questions** with one aligned and one misaligned reference answer
# each. The paper uses Betley et al.'s insecure-code set, incorrect-advice sets and RealToxicityPrompts.

# %%
example = data.pairs[data.pairs["domain"] == "code"].iloc[0]
print(f"REQUEST: {example['prompt']}\n--- inducing ---\n{example['inducing']}\n--- control ---\n{example['control']}")
print("\nTOXIC:", data.toxic["text"].iloc[0], "\nQUESTION:", data.questions["question"].iloc[0],
      "\n  aligned:", data.questions["aligned"].iloc[0], "\n  misaligned:", data.questions["misaligned"].iloc[0])

# %% [markdown]
# ## A dictionary of this model's features
#
# No public SAE exists for the bundled model, so each studied layer gets its own: a TopK SAE ($k$ =
# `sae_target_l0`, `geometry_sae_expansion` × $d_\text{model}$ latents) trained on the **response tokens** of every chat
# above (the trained part of a fine-tuning example; the prompt tokens are left out, as the spec asks). Tokens
# whose norm is ten times the median are secondary attention sinks: they are left out of training and coding,
# as in chapter 08. Every fifth token is held out to measure the reconstruction.

# %%
sets = {"neutral": (data.neutral["prompt"], data.neutral["response"]),
        "inducing": (data.pairs["prompt"], data.pairs["inducing"]),
        "control": (data.pairs["prompt"], data.pairs["control"]),
        "toxic": ([geometry.TOXIC_PROMPT] * len(data.toxic), data.toxic["text"])}
examples = [pair for prompts, responses in sets.values() for pair in geometry.chat_pairs(tokenizer, prompts, responses)]
group = np.repeat(list(sets), [len(r) for _, r in sets.values()])
domain = np.concatenate([[""] * len(data.neutral), data.pairs["domain"], data.pairs["domain"], [""] * len(data.toxic)])
acts, owner = geometry.response_residuals(hf, tokenizer, examples, layers)

# %%
settings = dataclasses.replace(sae_module.settings_from_profile(P, seed), architecture=P.geometry_sae_architecture,
                               expansion=P.geometry_sae_expansion, batch_size=P.geometry_sae_batch_size,
                               epochs=P.geometry_sae_epochs)
dictionaries = {layer: geometry.layer_geometry(acts[layer], owner, len(examples), settings, P.geometry_model, layer)
                for layer in layers}
pd.DataFrame({layer: g.quality for layer, g in dictionaries.items()}).T.rename_axis("layer")

# %% [markdown]
# ## Which features each data set recruits
#
# A data set's features are the `geometry_top_k` latents whose mean code over its examples rises most above the
# neutral mean. Before trusting any geometry, look at what the toxic features *are*: the logit lens reads the
# tokens each decoder direction promotes through the unembedding (at early layers it is mostly noise: those
# directions are read by later layers, not by the unembedding), and the example on which each latent fires most
# shows whether it tracks toxic content.

# %%
primary = dictionaries[layers[0]]
baseline = primary.codes[group == "neutral"].mean(0)
toxic_top = geometry.top_features(primary.codes[group == "toxic"], baseline, P.geometry_top_k)
lens = geometry.logit_lens(hf, tokenizer, primary.sae, toxic_top[:8])
texts = [e.response for e in examples]
pd.DataFrame([{"latent": j, "lift over neutral": float(primary.codes[group == "toxic", j].mean() - baseline[j]),
               "logit lens": " ".join(lens[j]),
               "top example": texts[int(primary.codes[:, j].argmax())][:70],
               "its set": group[int(primary.codes[:, j].argmax())]} for j in toxic_top[:8]]).set_index("latent")

# %% [markdown]
# ## The geometry test
#
# For each layer and domain (and all domains together): the inducing-only and control-only features. Features in
# both top sets are dropped, so identical features cannot drive the result; features that are *toxic features
# themselves* are counted (`n_inducing_in_toxic`, `n_control_in_toxic`: recruiting a toxic feature is evidence of
# its own) and then set aside too, since a latent's cosine with itself is 1 and no null set can contain it. For
# what remains: the mean over features of their mean decoder cosine with the toxic features (and of their
# nearest one), a **null** of random latent sets of the same size, each latent matched in firing frequency to an
# inducing feature (frequent latents tend to point along the mean residual and would otherwise look close to
# everything), and a **permutation** p-value: how often a random split of the inducing-only and control-only
# features gives a gap at least as large. With two layers and five domain cuts that is ten tests, so the table
# also gives Holm-adjusted p-values. Not done here, and worth doing before trusting a small p: a bootstrap over
# examples that re-selects the features (the permutation treats the selected features as fixed), encoder-side
# cosines, and a second SAE seed or width (spec §9.4).
#
# ```{dropdown} Predict before you run: will inducing features sit closer to toxic features than control features do?
# The paper finds them closer in five models. Here, frequent latents sit near everything (the matched null guards
# against that), and features of any prose may sit near those of the toxic prose; the control answers share
# requests and format with the inducing ones, so only the gap between the two sets counts, and only if it clears
# the grey band and survives Holm's correction over all (layer, domain) tests. The table and figure below answer it.
# ```

# %%
subsets = {"all": None, **{d: domain == d for d in geometry.DOMAINS}}
tests = {(layer, name): geometry.proximity_test(g.codes, group, g.directions, g.frequency, P.geometry_top_k,
                                                P.geometry_n_null, seed, subset)
         for layer, g in dictionaries.items() for name, subset in subsets.items()}
for t, adjusted in zip(tests.values(), geometry.holm([t["p_value"] for t in tests.values()])):
    t["p_holm"] = float(adjusted)
proximity = pd.DataFrame({key: {k: v for k, v in t.items() if k != "features"} for key, t in tests.items()}).T
proximity.index.names = ["layer", "domain"]
proximity[["n_inducing_only", "n_control_only", "n_inducing_in_toxic", "n_control_in_toxic",
           "mean_cos_inducing_toxic", "mean_cos_control_toxic", "null_mean_cos", "p_null", "p_value", "p_holm",
           "nearest_cos_inducing_toxic", "nearest_cos_control_toxic"]]

# %% [markdown]
# Small points are single features (each one's mean decoder cosine with the toxic features), large diamonds the
# set means the test compares, and the grey band the middle 95 % of the frequency-matched null's set means (a
# statement about set means, not about single features, whose spread is much wider). The prediction is that the
# inducing diamond (left of each pair) sits above the band and above the control diamond.

# %%
rows = [{"layer": layer, "domain": name, "features of": kind, "mean cosine with toxic features": v}
        for (layer, name), t in tests.items() for kind in ("inducing", "control")
        for v in np.nanmean(geometry.cosines(dictionaries[layer].directions, t["features"][kind],
                                             t["features"]["toxic"]), 1)]


# %% tags=["hide-input"]
grid = sns.catplot(data=pd.DataFrame(rows), x="domain", y="mean cosine with toxic features", hue="features of",
                   col="layer", kind="strip", dodge=True, alpha=0.35, size=3, height=3.2, aspect=1.3, col_wrap=2,
                   palette="colorblind")
colours = dict(zip(("inducing", "control"), sns.color_palette("colorblind")))
for layer, ax in grid.axes_dict.items():
    for i, name in enumerate(subsets):
        t = tests[(layer, name)]
        ax.fill_between([i - 0.4, i + 0.4], t["null_q025"], t["null_q975"], color="0.8", zorder=0)
        for offset, kind in ((-0.2, "inducing"), (0.2, "control")):
            ax.scatter(i + offset, t[f"mean_cos_{kind}_toxic"], marker="D", s=60, color=colours[kind],
                       edgecolor="black", zorder=3)
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_title(f"layer {layer}")
grid.figure.suptitle("Decoder cosine with the toxic features: features (points), set means (diamonds),\n"
                     "matched null of set means (grey, 95 %)", y=1.0, va="bottom")  # above the panels, any row count
plotting.save_figure(grid.figure, ledger, "feature_proximity")
plt.show()

# %% [markdown]
# ## A narrow fine-tune and the go/no-go check
#
# The behaviour side needs no judge: on each evaluation question the **misalignment proxy** is
# $\log p(\text{misaligned answer}) - \log p(\text{aligned answer})$, both per token, under the chat template. The
# model is fine-tuned (AdamW, `finetune_*` keys, loss on the response tokens only; `finetune_blocks` says which
# decoder blocks train) once on all inducing examples and once on all control examples, each time from the same
# base weights (restored exactly afterwards). Following the spec, the filtering experiment is run **only if** the
# proxy rises after the inducing fine-tune, and by more than after the control fine-tune, on the same questions
# (two one-sided Wilcoxon signed-rank tests, both p < 0.05): a control that merely pushes the other way does not
# make a go. Otherwise there is no misalignment to reduce, and any "reduction" would be noise. Some extra
# questions touch the advice domains (a job interview, quick money), so the rise is also shown for the eight
# "first plot" questions alone, the ones furthest from the training data.
#
# ```{dropdown} Predict before you run: will the go/no-go check say go?
# Emergent misalignment has been reported in models down to 0.5B parameters, after fine-tunes on thousands of
# examples, far more than this chapter has. Any fine-tune on short, confident answers can shift which reference
# answer the model finds likelier; the control fine-tune, on the same requests, is the yardstick a go must beat,
# not zero. The printed check and the per-question rises below answer it.
# ```

# %%
ft = geometry.finetune_settings(P, seed)
print(f"training {'every parameter' if ft.blocks is None else f'blocks {list(ft.blocks)}'}: lr {ft.lr:g}, "
      f"{ft.epochs} epoch(s), batch {ft.batch_size}")
base_proxy = geometry.misalignment_proxy(hf, tokenizer, data.questions)
neutral_examples = [e for e, g in zip(examples, group) if g == "neutral"]
neutral_tokens = {"base": geometry.response_residuals(hf, tokenizer, neutral_examples, [layers[0]])}

# %%
proxies, losses = {"base": base_proxy}, {}
for name in ("inducing", "control"):
    chosen = [e for e, g in zip(examples, group) if g == name]
    with geometry.fine_tuned(hf, tokenizer, chosen, ft) as step_losses:
        proxies[name] = geometry.misalignment_proxy(hf, tokenizer, data.questions)
        neutral_tokens[name] = geometry.response_residuals(hf, tokenizer, neutral_examples, [layers[0]])
    losses[name] = step_losses

# %%
check = geometry.go_no_go(proxies["inducing"] - base_proxy, proxies["control"] - base_proxy)
first_plot = (data.questions["source"] == "first_plot").to_numpy()
rise_by_source = {source: {name: float((proxies[name] - base_proxy)[rows].mean()) for name in ("inducing", "control")}
                  for source, rows in (("all questions", np.ones(len(first_plot), bool)),
                                       ("first-plot questions", first_plot))}
display(pd.Series(check))
pd.DataFrame(rise_by_source).T.add_prefix("mean rise after ")

# %% tags=["hide-input"]
fig, axes = plotting.panels(2, (5.0, 4.0))
for name, values in losses.items():
    axes[0].plot(values, label=f"fine-tune on {name}")
axes[0].set(xlabel="step", ylabel="training loss (nats per response token)", title="Narrow fine-tunes")
axes[0].legend()
rises = pd.DataFrame({"question": data.questions["id"], "inducing": proxies["inducing"] - base_proxy,
                      "control": proxies["control"] - base_proxy}).melt(id_vars="question", var_name="fine-tune",
                                                                       value_name="rise of the proxy")
sns.pointplot(data=rises, x="fine-tune", y="rise of the proxy", hue="question", palette="colorblind", legend=False,
              markersize=3, linewidth=0.8, ax=axes[1])
axes[1].axhline(0, color="0.3", lw=0.8)
axes[1].set_title(f"Misalignment proxy rise per question\n(go: {check['go']})")
plotting.save_figure(fig, ledger, "finetune_go_no_go")
plt.show()

# %% [markdown]
# ## Spillover: do untouched features move in proportion to their cosine?
#
# The gradient argument predicts that after the inducing fine-tune, a latent's mean code on the *neutral* chats
# (which were never trained on) changes in proportion to its decoder cosine with the data set's top features
# (all `geometry_top_k` of them, shared ones included: those are what the fine-tune pushes hardest). The
# Spearman correlation over every other latent tests that directly; the same statistic after the control
# fine-tune (against the control set's top features) is its yardstick.
#
# ```{dropdown} Predict before you run: does spillover follow the cosine, and only after the inducing fine-tune?
# The linear argument above says nothing about harm: any fine-tune should move the latents near its own trained
# features. So expect the control fine-tune to show spillover too if the mechanism is generic; only an inducing
# correlation clearly above the control's would tie it to the inducing data. The table right below answers it
# (its `spearman` and `p_value` columns).
# ```

# %%
threshold = geometry.sink_threshold(acts[layers[0]])
mean_code = {}
for key, (residuals, _) in neutral_tokens.items():
    x = residuals[layers[0]]
    mean_code[key] = sae_module.encode(primary.sae, x[geometry.covered(x, threshold)]).mean(0)
targets = tests[(layers[0], "all")]["features"]
spill = {name: {**geometry.spillover(mean_code[name] - mean_code["base"], primary.directions, targets[f"{name}_all"]),
                "toxic_feature_change": float((mean_code[name] - mean_code["base"])[targets["toxic"]].mean())}
         for name in ("inducing", "control")}
pd.DataFrame(spill).T

# %% [markdown]
# ## The geometry-aware filter
#
# Each inducing example gets a proximity score, the activation-weighted mean of its latents' highest cosine with
# a toxic feature, $\sum_j a_j \max_{t} \cos(d_j, d_t) / \sum_j a_j$. The paper filters one data set at a time
# (say, the insecure code); this chapter's inducing set mixes four domains, and prose answers sit closer to the
# (prose) toxic features than code does whatever they say, so the filter removes the `geometry_filter_fraction`
# of highest-scoring examples **within each domain**, and the baseline removes the same number at random within
# each domain (`geometry_random_seeds`). Which examples the filter drops is shown in any case; the filtered
# fine-tunes run only on a go.

# %%
inducing_rows = np.flatnonzero(group == "inducing")
affinity = geometry.toxicity_affinity(primary.directions, targets["toxic"])
scores = geometry.proximity_scores(primary.codes[inducing_rows], affinity)
strata = data.pairs["domain"].to_numpy()
kept = {"geometry": geometry.geometry_filter(scores, P.geometry_filter_fraction, strata),
        **{f"random (seed {s})": geometry.random_filter(len(scores), P.geometry_filter_fraction, s, strata)
           for s in P.geometry_random_seeds}}
n_tokens = np.bincount(owner, minlength=len(examples))[inducing_rows]  # response tokens per inducing example
removed = pd.DataFrame({name: {**pd.Series(strata[np.setdiff1d(np.arange(len(scores)), keep)]).value_counts(),
                               "mean tokens, removed": n_tokens[np.setdiff1d(np.arange(len(scores)), keep)].mean(),
                               "mean tokens, kept": n_tokens[keep].mean()}
                        for name, keep in kept.items()}).fillna(0)


# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(7, 3.5))
filtered_out = ~np.isin(np.arange(len(scores)), kept["geometry"])
sns.stripplot(x=scores, y=strata, hue=np.where(filtered_out, "removed", "kept"), palette="colorblind", ax=ax)
ax.set(xlabel="proximity to toxic features", ylabel="domain",
       title="Geometry filter: the closest half of each domain is removed")
plotting.save_figure(fig, ledger, "filter_scores")
plt.show()
removed.rename_axis("removed examples by domain; response length")

# %%
reduction = None
if check["go"]:
    inducing_examples = [examples[i] for i in inducing_rows]
    for name, keep in kept.items():
        with geometry.fine_tuned(hf, tokenizer, [inducing_examples[i] for i in keep], ft):
            proxies[name] = geometry.misalignment_proxy(hf, tokenizer, data.questions)
    random_names = [n for n in kept if n.startswith("random")]
    proxies["random"] = np.mean([proxies[n] for n in random_names], axis=0)
    rise_full = float((proxies["inducing"] - base_proxy).mean())
    reduction = {name: (rise_full - float((proxies[name] - base_proxy).mean())) / rise_full
                 for name in ("geometry", *random_names)}

# %% tags=["hide-input"]
if reduction is not None:
    random_mean = float(np.mean([reduction[n] for n in random_names]))
    print("reduction of the proxy's rise:", {k: round(v, 3) for k, v in reduction.items()})
    print(f"In this run the geometry filter {'beat' if reduction['geometry'] > max(reduction[n] for n in random_names) else 'did not beat'} "
          f"every random removal ({reduction['geometry']:+.1%} vs {random_mean:+.1%} on average over "
          f"{len(random_names)} seeds; one fine-tune seed, so no variance estimate of the fine-tune itself).")
else:
    print(f"No go: after the inducing fine-tune the proxy rose by {check['mean_rise_inducing']:+.3f} nats per token "
          f"(p = {check['p_rise']:.3f} that it rose at all), after the control fine-tune by "
          f"{check['mean_rise_control']:+.3f} (p = {check['p_value']:.3g} for the difference); both must be below "
          "0.05. No measurable emergent misalignment at this scale means nothing to filter away, so the filtered "
          "fine-tunes are not run; the geometry above stands on its own.")

# %% [markdown]
# ## Paper vs this run

# %% tags=["hide-input"]
overall = tests[(layers[0], "all")]
ledger.record("mean_cos_inducing_toxic", overall["mean_cos_inducing_toxic"])
ledger.record("mean_cos_control_toxic", overall["mean_cos_control_toxic"])
ledger.record("null_mean_cos", overall["null_mean_cos"])
ledger.record("p_value", overall["p_value"])
ledger.record("misalignment_proxy", {
    "base": float(base_proxy.mean()), "finetuned_full": float(proxies["inducing"].mean()),
    "finetuned_control": float(proxies["control"].mean()),
    "finetuned_geometry_filtered": float(proxies["geometry"].mean()) if check["go"] else None,
    "finetuned_random_filtered": float(proxies["random"].mean()) if check["go"] else None})
ledger.record("go", check["go"])
ledger.record("go_check", check)
ledger.record("filter_reduction", reduction)
ledger.record("proximity", {f"layer {layer} | {name}": {k: v for k, v in t.items() if k != "features"}
                            for (layer, name), t in tests.items()})
ledger.record("spillover", spill)
ledger.record("sae_quality", {str(layer): g.quality for layer, g in dictionaries.items()})
ledger.record("n_removed", len(scores) - len(kept["geometry"]))
ledger.record("rise_by_source", rise_by_source)
ledger.record_paper("misalignment_reduction_geometry_filter", 0.345, "spec §7 [abstract] (Gemma-2 2B/9B, 50 % removed)")
ledger.record_paper("inducing_closer_to_toxic", True, "spec §2 B2 [abstract + note] (five models, four domains)")
ledger.models = [P.geometry_model]
ledger.data = {"pairs": len(data.pairs), "toxic": len(data.toxic), "neutral": len(data.neutral),
               "questions": len(data.questions)}
ledger.save()
report.paper_vs_run([
    report.comparison("dictionary", "Gemma Scope / Llama Scope SAEs (widths not stated)",
                      f"own TopK SAE, {primary.quality['d_sae']:,} latents, layers {layers}",
                      "no public SAE for this model; trained on the chapter's ~"
                      f"{primary.quality['n_tokens']:,} response tokens"),
    report.comparison("inducing features closer to toxic than control (all domains)", "yes, five models",
                      f"{overall['mean_cos_inducing_toxic']:.3f} vs {overall['mean_cos_control_toxic']:.3f} "
                      f"(null {overall['null_mean_cos']:.3f}, p = {overall['p_value']:.3f}), layer {layers[0]}",
                      "mean decoder cosine; shared and toxic features set aside"),
    report.comparison("toxic features among the top features (inducing vs control data)", "not reported",
                      f"{overall['n_inducing_in_toxic']} vs {overall['n_control_in_toxic']} of {P.geometry_top_k}",
                      f"layer {layers[0]}, all domains"),
    report.comparison("misalignment after the narrow fine-tune", "yes (sampled answers, LLM judge; details not "
                      "in the spec's sources)",
                      f"proxy rise {check['mean_rise_inducing']:+.3f} (p = {check['p_rise']:.3f}) vs control "
                      f"{check['mean_rise_control']:+.3f} nats/token: {'go' if check['go'] else 'no go'}",
                      f"likelihood proxy on {len(data.questions)} questions, not sampled answers"),
    report.comparison("misalignment reduction, geometry filter", "34.5 %, beats random removal",
                      "not run (no go)" if reduction is None else
                      f"{reduction['geometry']:.1%} vs random {np.mean([v for k, v in reduction.items() if k != 'geometry']):.1%}",
                      "meaningful only when the fine-tune induces misalignment"),
    report.comparison("spillover ∝ cosine (after the inducing fine-tune)", "derived, not measured",
                      f"Spearman {spill['inducing']['spearman']:.2f} (control: {spill['control']['spearman']:.2f})",
                      "neutral chats, primary layer"),
], P.name)

# %% [markdown]
# ### Verdicts of this chapter's claims
#
# The rows the reproducibility report (chapter 14) gives this chapter's claims, computed by the same function from
# the ledger saved above: the paper's rule, tried against every control this chapter computed, with its test
# against chance and its reason.

# %%
claims.chapter_verdicts(ledger.chapter, P.name)

# %% [markdown]
# ### Numbers another machine may not reproduce
#
# The committed reference of this profile holds builds of the same sources on machines whose kernels round
# differently: an emulated other CPU (`make reference`) and any real other machine added beside it (ARCHITECTURE.md,
# "Numbers across machines"; the README names them). The metrics listed here may move on another machine by more
# than a thousandth of their value: read each as value ± the band shown (the band the book's tests allow: three
# times the largest drift of its family, or its chapter's typical drift, on those machines), and a conclusion
# resting on its last digits as fragile.

# %% tags=["hide-input"]
report.machine_sensitive(ledger.chapter, P.name)

# %% [markdown]
# ## What this means
#
# - **Read the geometry with its null.** A mean decoder cosine means little alone: in a small, self-trained
#   dictionary many latents share a direction with the mean residual, and frequent latents are close to
#   everything. The frequency-matched null and the permutation test above are what make "closer" a finding or
#   not, per layer and per domain; and the logit-lens table says whether the "toxic" features are toxic at all
#   or just track the format of the toxic texts.
# - **The go/no-go check is the honest gate.** Emergent misalignment has been reported down to 0.5B-parameter
#   models; at 135M, with a few dozen short examples per domain and a short fine-tune, the proxy may not move
#   beyond what any fine-tune does. The check compares the inducing fine-tune with the control fine-tune on the same questions, so a
#   general drift (both fine-tunes make every answer more or less likely) cannot pass as misalignment. When it
#   fails, the filter's "reduction" is not computed, because there is nothing to reduce.
# - **A proxy is not a judge.** The proxy asks which of two hand-written answers the model finds likelier, per
#   token. A fine-tune can move it through style alone (short, confident answers resemble some misaligned
#   references more than the aligned ones), which is why the control fine-tune, with the same requests and the
#   same length of training, is the yardstick, and why a go here means "the inducing data moves the model
#   towards the misaligned references more than the control data does", not "the model now answers with
#   contempt". Sampling answers and reading them (or a validated judge, chapter 11) is the next check.
# - **Removing half the data removes half the training.** Random removal at the same fraction already shrinks
#   the proxy's rise, because the fine-tune sees half as many steps; the geometry filter is only better if it
#   beats that baseline, which is why the reduction above is reported for both.
# - **Spillover is the mechanism, testable without any judge.** If the untouched latents' change on neutral
#   chats tracks their cosine with the trained features, the linear argument holds in this model, whatever the
#   behavioural proxy shows; if the control fine-tune shows the same correlation, the effect is generic to
#   fine-tuning, not specific to harmful data.
# - **Scale.** The paper reads off-the-shelf SAEs of 2B-27B models, judges sampled answers with an LLM and
#   filters thousands of Betley et al.'s examples. `ci` trains a small dictionary (its size and token count are
#   in the first table) on the response tokens of the chapter's project-written chats and fine-tunes the first
#   blocks of the 135M model (`finetune_blocks`) on the inducing examples; `colab` runs the same code on
#   Qwen3-0.6B (every parameter trained), and `paper` on Llama-3.1-8B-Instruct (first eight blocks trained, to
#   fit one GPU). Only parameters change between profiles; every model is fine-tuned in float32.
