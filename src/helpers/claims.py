"""The three papers' claims, each measured from this run's results ledger and judged by a stated rule against every
control the book computes: the random-initialised twin, the chapter's null, its control conditions, the robust
pooling variants and the external lexicons."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler
from scipy import stats

from helpers import ledger, plotting, reference
from helpers.models import REGISTRY
from helpers.report import fmt, parse_comparison_key

REPRODUCED, DIRECTION, NOT_REPRODUCED, NOT_TESTABLE = (
    "reproduced", "direction holds", "not reproduced", "not testable at this scale")
NOT_DISCRIMINATING, INCONCLUSIVE = "not discriminating", "inconclusive"
VERDICTS = (REPRODUCED, DIRECTION, NOT_DISCRIMINATING, INCONCLUSIVE, NOT_REPRODUCED, NOT_TESTABLE)
POSITIVE = (REPRODUCED, DIRECTION)
# what chapter 14's ledger keeps of each report row (the contract of `14_report.claims[i]`)
LEDGER_FIELDS = ("id", "paper_value", "this_value", "rule_verdict", "control", "control_value", "control_verdict",
                 "null", "p_value", "significant", "variants", "verdict", "why", "fragile")
ALPHA = 0.05
# the robust pooling variants (chapter 02) and the external lexicons (chapters 03-06), as the report names them
ROBUST_VARIANTS = ("no_sink", "last_token", "standardised")
LEXICONS = {"mfd2": "MFD 2.0", "moralstrength": "MoralStrength"}
TWIN = "random twin"

Metrics = Mapping[str, Any]


class NotTestable(Exception):
    """Raised by a measurement when this run cannot test the claim; the message says why."""


@dataclasses.dataclass(frozen=True)
class Measurement:
    """What a ledger shows for one claim: its value as text, whether it meets the paper's value or direction, and
    the test of the effect against chance where the ledger holds one (`significant` None: no test applies)."""

    value: str
    reproduced: bool
    direction: bool = False
    significant: bool | None = None
    test: str = ""
    p_value: float | None = None
    null: tuple[float, float] | None = None
    untested: str = ""


def tested(measurement: Measurement, *, p_value: float | None = None, effect: float | None = None,
           null: tuple[float, float] | None = None, what: str = "the effect") -> Measurement:
    """The measurement with its test: significant when p < ALPHA and `effect` lies above its null band `null`."""
    checks, parts = [], []
    if p_value is not None:
        checks.append(p_value < ALPHA)
        parts.append(f"p = {p_value:.3g}")
    if null is not None and effect is not None:
        checks.append(effect > null[1])
        parts.append(f"{what} {fmt(effect)} {'above' if effect > null[1] else 'inside'} null band "
                     f"[{fmt(null[0])}, {fmt(null[1])}]")
    return dataclasses.replace(measurement, significant=all(checks) if checks else None, test="; ".join(parts),
                               p_value=p_value, null=null)


@dataclasses.dataclass(frozen=True)
class Claim:
    """One claim of a paper, the ledger chapter that tests it, the rules that turn a measurement into a verdict, the
    controls the same rule is tried on, and the variant views of the ledger a positive verdict must survive."""

    id: str
    paper: str
    statement: str
    paper_value: str
    source: str
    chapter: str
    reproduced_if: str
    direction_if: str
    measure: Callable[[Metrics], Measurement]
    controls: Callable[[Metrics], dict[str, Measurement]] = lambda m: {}
    variants: Callable[[Metrics], dict[str, Metrics]] = lambda m: {}
    tried_on: str = "—"  # the controls and variant views the same rule is applied to, for the rules table
    chance_test: str = "—"  # how a positive effect is tested against chance, for the rules table


def rule_verdict(measurement: Measurement) -> str:
    """The paper's rule alone: reproduced if its value is met, else direction holds if its direction is, else not."""
    if measurement.reproduced:
        return REPRODUCED
    return DIRECTION if measurement.direction else NOT_REPRODUCED


def verdict(measurement: Measurement, controls: Mapping[str, Measurement] | None = None) -> tuple[str, str]:
    """The verdict and why: a positive rule verdict that a control also earns is not discriminating; one whose test
    fails (p ≥ ALPHA or inside the null band), or that needs a control or test the ledger lacks, is inconclusive."""
    ruled = rule_verdict(measurement)
    if ruled not in POSITIVE:
        return ruled, ""
    earning = [name for name, c in (controls or {}).items()
               if rule_verdict(c) in POSITIVE[:POSITIVE.index(ruled) + 1]]
    if earning:
        return NOT_DISCRIMINATING, f"{', '.join(earning)} {'meets' if len(earning) == 1 else 'meet'} the same rule"
    if measurement.significant is False:
        return INCONCLUSIVE, measurement.test
    if measurement.untested:
        return INCONCLUSIVE, f"untested: {measurement.untested}"
    return ruled, ""


def _judge(claim: Claim, metrics: Metrics) -> tuple[Measurement, dict[str, Measurement], str, str]:
    """A claim's measurement, its controls' measurements, its verdict and why (NotTestable propagates)."""
    measurement = claim.measure(metrics)
    try:
        controls = claim.controls(metrics)
    except NotTestable:
        controls = {}
    return measurement, controls, *verdict(measurement, controls)


def _variant_verdict(claim: Claim, view: Metrics) -> str:
    """The verdict a claim gets on one variant view of its ledger (not testable where the view lacks what it needs)."""
    try:
        return _judge(claim, view)[2]
    except (NotTestable, KeyError):  # KeyError: the view does not store a statistic the rule reads
        return NOT_TESTABLE


def _shown_control(controls: Mapping[str, Measurement]) -> tuple[str | None, Measurement | None]:
    """The control to show beside the trained value: the one whose own rule verdict is strongest (first if tied)."""
    if not controls:
        return None, None
    name = min(controls, key=lambda n: VERDICTS.index(rule_verdict(controls[n])))
    return name, controls[name]


def assess(claim: Claim, metrics: Metrics | None, profile: str,
           machine: tuple[str, dict[str, str]] | None = None) -> dict[str, Any]:
    """One report row: the claim, the paper's value, this run's value, the control beside it, the test against
    chance, the verdict per variant view, the verdict and whether it is fragile (it flips under a variant, or
    between the reference's two machines, `machine`); metrics None: the chapter has not run."""
    row: dict[str, Any] = {
        "id": claim.id, "paper": claim.paper, "claim": claim.statement, "paper_value": claim.paper_value,
        "source": claim.source, "chapter": claim.chapter, "rule_verdict": NOT_TESTABLE, "control": None,
        "control_value": None, "control_verdict": None, "null": None, "p_value": None, "significant": None,
        "test": "", "variants": {}, "why": "", "fragile": False, "fragile_under": []}
    if metrics is None:
        return {**row, "this_value": f"chapter {claim.chapter} has not been run with profile {profile}",
                "verdict": NOT_TESTABLE}
    try:
        measurement, controls, verdict_, why = _judge(claim, metrics)
    except NotTestable as reason:
        return {**row, "this_value": str(reason), "verdict": NOT_TESTABLE}
    name, control = _shown_control(controls)
    variants = {label: _variant_verdict(claim, view) for label, view in claim.variants(metrics).items()}
    flips = [label for label, v in variants.items() if v not in (verdict_, NOT_TESTABLE)]
    on_machine = machine is not None and any(there != machine[0] for there in machine[1].values())
    fragile_under = (flips + (["another machine"] if on_machine else [])) if verdict_ in POSITIVE else []
    return {**row, "this_value": measurement.value, "rule_verdict": rule_verdict(measurement), "control": name,
            "control_value": None if control is None else control.value,
            "control_verdict": None if control is None else rule_verdict(control),
            "null": None if measurement.null is None else {"lo": measurement.null[0], "hi": measurement.null[1]},
            "p_value": measurement.p_value, "significant": measurement.significant, "test": measurement.test,
            "variants": variants, "verdict": verdict_, "why": why, "fragile": bool(fragile_under),
            "fragile_under": fragile_under}


def counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """How many rows got each verdict, under the ledger's contract names."""
    return {f"n_{v.split(' at ')[0].replace(' ', '_')}": sum(r["verdict"] == v for r in rows) for v in VERDICTS}


# --- shared pieces of the measurements ---------------------------------------------------------------------------

def _named(metrics: Metrics, group: str | None) -> list[str]:
    """The model-keyed entries of a diagnosis ledger: the random-initialised controls (group "Control"), or the rest."""
    return [k for k in metrics if k in REGISTRY and (REGISTRY[k].group == "Control") == (group == "Control")]


def trained_models(metrics: Metrics) -> list[str]:
    """The model-keyed entries of a diagnosis ledger, without random-initialised controls."""
    names = _named(metrics, None)
    if not names:
        raise NotTestable("the ledger holds no trained model")
    return names


def _over_models(rule: Callable[[Metrics, list[str]], Measurement]) -> dict[str, Callable]:
    """A per-model rule as a claim's measure (the trained models), its control (the same rule on the random
    twins, where the ledger has one) and its variant views (each robust pooling variant and external lexicon)."""
    def controls(m: Metrics) -> dict[str, Measurement]:
        twins = _named(m, "Control")
        return {TWIN: rule(m, twins)} if twins else {}
    return {"measure": lambda m: rule(m, trained_models(m)), "controls": controls, "variants": _model_views}


def _model_views(m: Metrics) -> dict[str, Metrics]:
    """The ledger as each robust pooling variant and each external lexicon saw it: every model entry replaced by its
    `variants.<name>` or `external.<lexicon>` block (no fallback to the paper recipe's numbers)."""
    views: dict[str, dict[str, Any]] = {}
    for name, entry in m.items():
        if name not in REGISTRY or not isinstance(entry, Mapping):
            continue
        blocks = {**{v: entry.get("variants", {}).get(v) for v in ROBUST_VARIANTS},
                  **{label: entry.get("external", {}).get(key) for key, label in LEXICONS.items()}}
        for label, block in blocks.items():
            if block is not None:
                views.setdefault(label, {})[name] = block
    return views


def _per_model(values: Mapping[str, Any]) -> str:
    """'model value; model value' for a value per model."""
    return "; ".join(f"{name} {fmt(value)}" for name, value in values.items())


def _effect(effect: float, p_value: float, text: str) -> Measurement:
    """Reproduced if the effect has the paper's sign and p < ALPHA; direction holds on the sign alone; tested by p."""
    return tested(Measurement(text, reproduced=effect > 0 and p_value < ALPHA, direction=effect > 0), p_value=p_value)


def _probe_r2(entry: Metrics, adjusted: str, ridge: str) -> tuple[float, str]:
    """The paper's adjusted R² if defined, else the ridge probe's R² (named in the text)."""
    if entry.get(adjusted) is not None:
        return float(entry[adjusted]), "adjusted R²"
    return float(entry[ridge]), "ridge R² (adjusted R² undefined: fewer rows than dimensions)"


# --- moral indifference (chapters 03-11) ----------------------------------------------------------------------------

def _middle_half(per_layer: Mapping[str, Any]) -> list[str]:
    """The layers of a per-layer mapping at relative depth 0.25-0.75 (chapter 03's intermediate layers)."""
    layers = sorted(per_layer, key=int)
    return [layer for layer in layers if 0.25 <= int(layer) / max(1, len(layers) - 1) <= 0.75]


def _categorical_same_side(m: Metrics, names: list[str]) -> Measurement:
    """Share of middle-half (layer, foundation) virtue-vice cosines above 0.5, per model; tested by whether some
    middle layer holding such a cosine has a mean cosine above its label-permutation null band, in every model."""
    shares, escaped = {}, []
    for name in names:
        cosines = m[name]["virtue_vice_cosine"]
        middle = _middle_half(cosines)
        values = [float(v) for layer in middle for v in cosines[layer].values()]
        shares[name] = float(np.mean([v > 0.5 for v in values])) if values else 0.0
        null = m[name].get("null", {}).get("mean_virtue_vice_cosine")
        if null is not None:
            escaped.append(sum(1 for layer in middle if max(cosines[layer].values()) > 0.5
                               and np.mean(list(cosines[layer].values())) > null[int(layer)]["hi"]))
    measurement = Measurement(f"share above 0.5: {_per_model(shares)}", reproduced=min(shares.values()) >= 0.25,
                              direction=max(shares.values()) > 0)
    if len(escaped) != len(names):
        return measurement
    return dataclasses.replace(measurement, significant=min(escaped) > 0,
                               test=f"middle layers with a cosine > 0.5 whose mean cosine leaves the null band: "
                                    f"{_per_model(dict(zip(names, escaped)))}")


def triples(names: list[str]) -> dict[str, list[str]]:
    """Trained models grouped by family (a Guard family joins its base family) and size, groups of two or more."""
    groups: dict[str, list[str]] = {}
    for name in names:
        spec = REGISTRY[name]
        groups.setdefault(f"{spec.family.removesuffix('Guard')} {spec.params}", []).append(name)
    return {k: v for k, v in groups.items() if len({REGISTRY[n].group for n in v}) > 1}


def _alignment_invariant(m: Metrics) -> Measurement:
    """Largest spread, over layers, of the mean virtue-vice cosine across Base / Instruct / Guard of one model."""
    found = triples(trained_models(m))
    if not found:
        raise NotTestable("no Base / Instruct / Guard models of one family and size in this profile")
    spreads = {}
    for key, names in found.items():
        curves = np.array([[np.mean(list(per_dim.values())) for per_dim in m[n]["virtue_vice_cosine"].values()]
                           for n in names])
        spreads[key] = float((curves.max(0) - curves.min(0)).max())
    worst = max(spreads.values())
    return Measurement(f"largest spread across alignment stages: {_per_model(spreads)}", reproduced=worst <= 0.1,
                       direction=worst <= 0.25)


def _gradient_peak(m: Metrics, names: list[str]) -> Measurement:
    """Highest peak Spearman over models and the ten dimensions."""
    peaks = {n: max(float(v) for v in m[n]["peak_spearman"].values()) for n in names}
    return Measurement(f"highest peak: {_per_model(peaks)}", reproduced=max(peaks.values()) < 0.55)


def _gradient_asymmetry(m: Metrics, names: list[str]) -> Measurement:
    """Mean vice peak minus mean virtue peak, per model."""
    asym = {n: float(m[n]["asymmetry"]) for n in names}
    return Measurement(f"vice − virtue peak: {_per_model(asym)}", reproduced=min(asym.values()) > 0,
                       direction=float(np.mean(list(asym.values()))) > 0)


def _structural_polarity(m: Metrics, names: list[str]) -> Measurement:
    """Best peak ARI of the Polarity3 labels over models, tested against the label-permutation null at its layer."""
    peaks = {n: float(m[n]["peak_ari_polarity3"]) for n in names}
    best = max(peaks, key=peaks.get)
    measurement = Measurement(f"peak ARI: {_per_model(peaks)}", reproduced=abs(peaks[best] - 0.5) <= 0.15)
    aris, nulls = m[best]["ari_polarity3"], m[best].get("null", {}).get("ari_polarity3")
    layer = next((i for i, a in enumerate(aris) if a is not None and float(a) == peaks[best]), None)
    if nulls is None or layer is None or nulls[layer].get("hi") is None:
        return measurement
    return tested(measurement, effect=peaks[best], null=(nulls[layer]["lo"], nulls[layer]["hi"]),
                  what=f"{best}'s peak")


def _structural_mft5(m: Metrics, names: list[str]) -> Measurement:
    """Best peak ARI of the five foundations over models."""
    peaks = {n: float(m[n]["peak_ari_mft5"]) for n in names}
    return Measurement(f"peak ARI: {_per_model(peaks)}", reproduced=max(peaks.values()) < 0.15)


def _structural_noise(m: Metrics, names: list[str]) -> Measurement:
    """HDBSCAN noise share at the peak-ARI layer against the median over layers, per model."""
    above, parts = [], []
    for name in names:
        ari = [np.nan if a is None else a for a in m[name]["ari_polarity3"]]
        if np.all(np.isnan(ari)):
            continue
        defined = ~np.isnan(ari)
        noise = np.asarray(m[name]["noise_ratio"], dtype=float)
        at_peak, median = float(noise[int(np.nanargmax(ari))]), float(np.median(noise[defined]))
        above.append(at_peak > median)
        parts.append(f"{name} {fmt(at_peak)} vs median {fmt(median)}")
    if not above:
        raise NotTestable("no layer produced clusters")
    return Measurement("noise at the peak-ARI layer: " + "; ".join(parts), reproduced=all(above), direction=any(above))


def _dimensional_peak(m: Metrics, names: list[str]) -> Measurement:
    """Best probe R² over models (adjusted R² where defined, else ridge R²), tested against the best model's
    shuffled-target null at its best layer."""
    r2 = {n: _probe_r2(m[n], "peak_adj_r2", "peak_r2_ridge") for n in names}
    best = max(r2, key=lambda n: r2[n][0])
    kinds = sorted({kind for _, kind in r2.values()})
    measurement = Measurement(f"{', '.join(kinds)}: {_per_model({n: v for n, (v, _) in r2.items()})}",
                              reproduced=abs(r2[best][0] - 0.26) <= 0.1, direction=r2[best][0] < 0.5)
    null = m[best].get("null", {}).get("r2_ridge")
    if null is None or not r2[best][1].startswith("ridge"):
        return measurement
    return tested(measurement, effect=r2[best][0], null=(null["lo"], null["hi"]), what=f"{best}'s ridge R²")


def _dimensional_collapse(m: Metrics, names: list[str]) -> Measurement:
    """Least final-layer R² of the linear probe over models (no shuffled-target null at the final layer yet)."""
    final = {n: float(m[n]["r2"][-1]) for n in names if m[n]["r2"][-1] is not None}
    if not final:
        raise NotTestable("the probe's final-layer R² is undefined")
    worst = min(final.values())
    return Measurement(f"final-layer R²: {_per_model(final)}", reproduced=worst <= -1000, direction=worst < 0,
                       untested="a shuffled-target null at the final layer (chapter 06 runs it at the best layer only)")


def _across_models(m: Metrics, names: list[str]) -> Measurement:
    """Models in which every diagnosis stays indifferent, and how many sizes they span."""
    if not names:
        raise NotTestable("the ledger holds no such model")
    free = []
    for name in names:
        r2, _ = _probe_r2(m[name], "peak adjusted R²", "peak R² (ridge)")
        if not (m[name]["peak Spearman (paper)"] < 0.55 and m[name]["peak ARI MFT5"] < 0.15 and r2 < 0.5):
            free.append(name)
    sizes = sorted({REGISTRY[n].params for n in names})
    text = (f"{len(names) - len(free)} of {len(names)} models indifferent on all three criteria"
            f"{' (escaped: ' + ', '.join(free) + ')' if free else ''}; sizes {', '.join(sizes)}")
    return Measurement(text, reproduced=not free and len(sizes) >= 3, direction=not free)


def _sae_rule(key: str, rule: Callable[[list[float]], tuple[bool, bool]], describe: Callable[[dict], str]
              ) -> dict[str, Callable]:
    """A rule on one per-layer SAE statistic as a claim's measure (the trained SAE) and its control (the same rule
    on the medians of chapter 09's null, which scores shuffled labels on the same dictionary)."""
    def on(values: dict[str, float]) -> Measurement:
        reproduced, direction = rule(list(values.values()))
        return Measurement(describe(values), reproduced=reproduced, direction=direction)

    def controls(m: Metrics) -> dict[str, Measurement]:
        null = m.get("null") or {}
        medians = {layer: float(v[key]["median"]) for layer, v in null.items() if key in v}
        return {"null (median)": on(medians)} if medians else {}
    return {"measure": lambda m: on({layer: float(v[key]) for layer, v in m["per_layer"].items()}),
            "controls": controls}


def _range(values: dict[str, float]) -> str:
    """'lo–hi over n layers'."""
    return f"{fmt(min(values.values()))}–{fmt(max(values.values()))} over {len(values)} layers"


def _highest(values: dict[str, float]) -> str:
    """'layer L: v (highest of n layers)'."""
    return f"layer {max(values, key=values.get)}: {fmt(max(values.values()))} (highest of {len(values)} layers)"


def _surgery_frozen(m: Metrics) -> Measurement:
    """Smallest frozen share of the SAE weights over layers."""
    frozen = min(float(v["frozen_fraction"]) for v in m["per_layer"].values())
    return Measurement(f"at least {fmt(frozen)} frozen", reproduced=frozen >= 0.99)


def _surgery_effect(m: Metrics) -> Measurement:
    """Layers where surgery raised prototypicality ρ and lowered the opposite-pole cosine."""
    both = [layer for layer, v in m["per_layer"].items()
            if v["mean_prototypicality_spearman_after"] > v["mean_prototypicality_spearman_before"]
            and v["mean_pair_cosine_after"] < v["mean_pair_cosine_before"]]
    n = len(m["per_layer"])
    return Measurement(f"{len(both)} of {n} layers (held-out rows)", reproduced=len(both) == n,
                       direction=len(both) > n / 2,
                       untested="a shuffled-label or multi-seed surgery (chapter 10 trains one, on the true labels)")


def _sign_test_p(wins: int, losses: int) -> float:
    """One-sided sign test of wins against losses (ties dropped): p of at least this many wins by chance."""
    return 1.0 if wins + losses == 0 else float(stats.binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue)


def _flames_cells(m: Metrics, condition: str) -> dict[str, tuple[float, int, int, float]]:
    """Per judge and layer, one steering condition's win rate, wins, losses (both orders) and the larger of the two
    orders' sign-test p."""
    cells = {}
    for key, value in m["comparisons"].items():
        parsed = parse_comparison_key(key)
        if parsed["condition"] == condition:
            orders = (value["order_ab"], value["order_ba"])
            p = max(_sign_test_p(o["win"], o["loss"]) for o in orders)
            cells[f"{parsed['judge']} @ {parsed['layer']}"] = (float(value["win_rate"]), sum(o["win"] for o in orders),
                                                              sum(o["loss"] for o in orders), p)
    return cells


def _flames_measure(cells: dict[str, tuple[float, int, int, float]]) -> Measurement:
    """Win rate > 0.6 in every cell (reproduced) or wins outnumbering losses in every cell (direction), tested by
    each cell's sign test."""
    text = "; ".join(f"{k}: {fmt(w)} ({wins} wins, {losses} losses)" for k, (w, wins, losses, _) in cells.items())
    measurement = Measurement(text, reproduced=min(w for w, *_ in cells.values()) > 0.6,
                              direction=all(wins > losses for _, wins, losses, _ in cells.values()))
    return tested(measurement, p_value=max(p for *_, p in cells.values()))


STEERING_CONTROLS = ("pre-surgery SAE", "mean difference")


def _flames_win_rate(m: Metrics) -> Measurement:
    """Win rate of the post-surgery steered model over the baseline, per validated judge and layer (both orders)."""
    cells = _flames_cells(m, "post-surgery SAE")
    if not cells:
        raise NotTestable("no judge passed validation, so no steered comparison was judged")
    return _flames_measure(cells)


def _flames_controls(m: Metrics) -> dict[str, Measurement]:
    """The same win-rate rule on steering with the pre-surgery SAE and with the mean-difference vector."""
    return {c: _flames_measure(cells) for c in STEERING_CONTROLS if (cells := _flames_cells(m, c))}


def _psc_counts(m: Metrics, key: str, condition: str) -> dict[str, tuple[int, dict[str, int]]]:
    """Per reader that scored `key` (passed validation on it): the baseline's perfect-score count and one condition's
    count per steered layer."""
    psc = {tuple(k.split(" | ")): v.get(key) for k, v in m["psc"].items()}
    counts = {}
    for reader in dict.fromkeys(r for _, _, r in psc):
        base = [v for (layer, _, r), v in psc.items() if layer == "baseline" and r == reader and not pd.isna(v)]
        steered = {layer: v for (layer, c, r), v in psc.items() if c == condition and r == reader and not pd.isna(v)}
        if len(base) == 1 and steered:
            counts[reader] = (base[0], steered)
    if not counts:
        raise NotTestable(f"no scorer passed validation on {key.removeprefix('psc_')}, so no perfect-score counts "
                          "were taken")
    return counts


def _psc_measure(counts: dict[str, tuple[int, dict[str, int]]], n: int) -> Measurement:
    """A steered count above the baseline's at every layer, for every reader that took counts (at most a direction:
    no paired test is stored)."""
    texts = [f"baseline {base} → " + ", ".join(f"{v} (layer {layer})" for layer, v in steered.items()) + f" of {n}"
             + (f" ({reader})" if len(counts) > 1 else "") for reader, (base, steered) in counts.items()]
    return Measurement("; ".join(texts), reproduced=False,
                       direction=all(v > base for base, steered in counts.values() for v in steered.values()),
                       untested="a paired per-prompt test (chapter 11 stores the counts only)")


def _psc(key: str) -> dict[str, Callable]:
    """Perfect-score count of the baseline against each post-surgery steered layer, with the pre-surgery SAE and
    the mean-difference vector as controls."""
    def measure(m: Metrics) -> Measurement:
        return _psc_measure(_psc_counts(m, key, "post-surgery SAE"), m["n_prompts"])

    def controls(m: Metrics) -> dict[str, Measurement]:
        return {c: _psc_measure(_psc_counts(m, key, c), m["n_prompts"]) for c in STEERING_CONTROLS
                if any(k.split(" | ")[1] == c for k in m["psc"])}
    return {"measure": measure, "controls": controls}


# --- harmful-generation weights (chapter 12) ------------------------------------------------------------------------

PRUNE_CONTROLS = ("trivia prune", "content-matched (refusals)")  # gradient-selected prunes at the same counts


def _mean_rise(m: Metrics, before: str, after: str) -> float:
    """Mean over harm types of an NLL's rise after pruning."""
    return float(np.mean([m[after][t] - m[before][t] for t in m[before]]))


def _as_pruned_by(m: Metrics, control: str) -> Metrics:
    """Chapter 12's ledger as if its prune had been the control prune `control` (same counts)."""
    b = m["baselines"][control]
    return {**m, "harm_nll_after": b["harm_nll"], "benign_nll_after": b["benign_nll"],
            "trivia_acc_after": b["trivia_acc"], "detection_auc_after": b["detection_auc"],
            "explanation_nll_after": b["explanation_nll"]}


def _against_prunes(measure: Callable[[Metrics], Measurement]) -> dict[str, Callable]:
    """A chapter 12 rule as a claim's measure and its controls: the same rule on the trivia-gradient and the
    refusal-gradient prunes of as many weights."""
    def controls(m: Metrics) -> dict[str, Measurement]:
        return {c: measure(_as_pruned_by(m, c)) for c in PRUNE_CONTROLS if c in m.get("baselines", {})}
    return {"measure": measure, "controls": controls}


def _harm_compact(m: Metrics) -> Measurement:
    """Pruned share, harmful-NLL rise against benign-NLL rise and against random pruning of as many weights."""
    harm, benign = _mean_rise(m, "harm_nll_before", "harm_nll_after"), m["benign_nll_after"] - m["benign_nll_before"]
    random_rise = float(np.mean([m["baselines"]["random"]["harm_nll"][t] - m["harm_nll_before"][t]
                                 for t in m["harm_nll_before"]]))
    text = (f"{fmt(100 * m['pruned_fraction'])} % pruned; harmful NLL +{fmt(harm)} vs benign +{fmt(benign)} "
            f"(random pruning: +{fmt(random_rise)})")
    compact = m["pruned_fraction"] <= 1e-5 and harm >= 2 * benign and harm - random_rise >= 0.5
    return Measurement(text, reproduced=compact, direction=harm > benign)


def _harm_shared(m: Metrics) -> Measurement:
    """Cross-type transfer of pruning and the weight sets' overlap against chance."""
    cross = [v for k, v in m["transfer_delta_nll"].items() if k.split(" -> ")[0] != k.split(" -> ")[1]]
    lift = float(np.mean([m["overlap_jaccard"][k] / m["overlap_chance"][k] for k in m["overlap_jaccard"]]))
    text = f"cross-type NLL rise {fmt(min(cross))}–{fmt(max(cross))}; Jaccard overlap {fmt(lift)}× chance"
    return Measurement(text, reproduced=min(cross) > 0 and lift >= 10, direction=float(np.mean(cross)) > 0,
                       untested="the weight sets' overlap against gradient-selected control sets (the ledger "
                                "compares it with random chance only)")


def _harm_shared_controls(m: Metrics) -> dict[str, Measurement]:
    """The transfer rule on each control prune: its NLL rise on every harm type (one set for all types, so every
    rise is a transfer; no overlap is stored for it, so it can show a direction at most)."""
    out = {}
    for control in PRUNE_CONTROLS:
        if control in m.get("baselines", {}):
            rises = [m["baselines"][control]["harm_nll"][t] - m["harm_nll_before"][t] for t in m["harm_nll_before"]]
            out[control] = Measurement(f"NLL rise on every harm type {fmt(min(rises))}–{fmt(max(rises))}",
                                       reproduced=False, direction=float(np.mean(rises)) > 0)
    return out


def _harm_distinct(m: Metrics) -> Measurement:
    """Trivia accuracy and benign NLL after pruning, against the harmful-NLL rise."""
    harm, benign = _mean_rise(m, "harm_nll_before", "harm_nll_after"), m["benign_nll_after"] - m["benign_nll_before"]
    drop = m["trivia_acc_before"] - m["trivia_acc_after"]
    text = (f"trivia accuracy {fmt(m['trivia_acc_before'])} → {fmt(m['trivia_acc_after'])}; "
            f"benign NLL +{fmt(benign)} vs harmful +{fmt(harm)}")
    return Measurement(text, reproduced=drop <= 0.05 and benign < harm / 2, direction=drop <= 0.1 and benign < harm)


def _scope(reason: str) -> Callable[[Metrics], Measurement]:
    """A measurement for a claim the chapter does not run (the reason names what is missing)."""
    def measure(m: Metrics) -> Measurement:
        raise NotTestable(reason)
    return measure


def _harm_recognition(m: Metrics) -> Measurement:
    """Harm detection (AUC) and explanation NLL before and after pruning."""
    before, after = m["detection_auc_before"], m["detection_auc_after"]
    if before < 0.6:
        raise NotTestable(f"the unpruned model does not detect harm (AUC {fmt(before)} < 0.6): nothing to retain")
    explain = m["explanation_nll_after"] - m["explanation_nll_before"]
    harm = _mean_rise(m, "harm_nll_before", "harm_nll_after")
    text = f"detection AUC {fmt(before)} → {fmt(after)}; explanation NLL +{fmt(explain)} vs harmful +{fmt(harm)}"
    return Measurement(text, reproduced=after >= before - 0.05 and explain < harm / 2, direction=explain < harm)


# --- emergent misalignment geometry (chapter 13) ---------------------------------------------------------------------

def _proximity(m: Metrics) -> dict[tuple[int, str], Metrics]:
    """The proximity tests keyed by (layer, domain)."""
    out = {}
    for key, value in m["proximity"].items():
        layer, domain = key.split(" | ")
        out[(int(layer.removeprefix("layer ")), domain)] = value
    return out


def _gap(test: Metrics) -> float:
    """Inducing-only minus control-only mean decoder cosine with the toxic features."""
    return float(test["mean_cos_inducing_toxic"] - test["mean_cos_control_toxic"])


def _spillover(run: str) -> Callable[[Metrics], Measurement]:
    """Spearman between a feature's change after one fine-tune and its cosine to the trained features."""
    def measure(m: Metrics) -> Measurement:
        s = m["spillover"][run]
        return _effect(s["spearman"], s["p_value"], f"Spearman {fmt(s['spearman'])} over {s['n']} features")
    return measure


def _spillover_control(m: Metrics) -> dict[str, Measurement]:
    """The spillover rule on the control fine-tune."""
    return {"control fine-tune": _spillover("control")(m)} if "control" in m["spillover"] else {}


def _geometry_closer(m: Metrics) -> Measurement:
    """Inducing-only vs control-only cosine with toxic features over all domains, at the first studied layer."""
    gap = m["mean_cos_inducing_toxic"] - m["mean_cos_control_toxic"]
    return _effect(gap, m["p_value"], f"{fmt(m['mean_cos_inducing_toxic'])} vs {fmt(m['mean_cos_control_toxic'])}")


def _geometry_domains(m: Metrics) -> Measurement:
    """Domains where inducing features are significantly closer (Holm) at some layer, and cells with the sign."""
    tests = {k: v for k, v in _proximity(m).items() if k[1] != "all"}
    domains = sorted({d for _, d in tests})
    significant = sorted({d for (_, d), t in tests.items() if _gap(t) > 0 and t["p_holm"] < ALPHA})
    positive = sum(_gap(t) > 0 for t in tests.values())
    text = (f"significant after Holm: {', '.join(significant) or 'none'} of {len(domains)} domains; "
            f"closer in {positive} of {len(tests)} (layer, domain) cells")
    measurement = Measurement(text, reproduced=significant == domains, direction=positive > len(tests) / 2)
    if measurement.reproduced:  # every domain passed its own Holm-adjusted test
        return dataclasses.replace(measurement, significant=True, test="every domain Holm-significant")
    return tested(measurement, p_value=_sign_test_p(positive, len(tests) - positive))


def _geometry_early(m: Metrics) -> Measurement:
    """The all-domain gap at the earliest against the latest studied layer."""
    tests = {layer: t for (layer, d), t in _proximity(m).items() if d == "all"}
    if len(tests) < 2:
        raise NotTestable("only one layer studied")
    first, last = min(tests), max(tests)
    text = f"gap layer {first}: {fmt(_gap(tests[first]))}, layer {last}: {fmt(_gap(tests[last]))}"
    earlier = _gap(tests[first]) > _gap(tests[last])
    measurement = Measurement(text, reproduced=earlier and tests[first]["p_value"] < ALPHA, direction=earlier)
    return tested(measurement, p_value=float(tests[first]["p_value"]))


def _geometry_em(m: Metrics) -> Measurement:
    """The misalignment proxy's rise after the inducing fine-tune, against a control fine-tune (the go rule)."""
    g = m["go_check"]
    text = (f"rise {fmt(g['mean_rise_inducing'])} (p = {g['p_rise']:.3g}) vs control {fmt(g['mean_rise_control'])} "
            f"nats/token")
    rises = g["mean_rise_inducing"] > 0 and g["mean_rise_inducing"] > g["mean_rise_control"]
    measurement = Measurement(text, reproduced=bool(g["go"]), direction=rises)
    return tested(measurement, p_value=max(float(g["p_rise"]), float(g["p_value"])))


def _geometry_filter(m: Metrics) -> Measurement:
    """Reduction of the proxy's rise by the geometry filter against random removal of as many samples."""
    reduction = m["filter_reduction"]
    if reduction is None:
        raise NotTestable("no go: the fine-tune induced no measurable misalignment, so nothing was filtered")
    random_ = [v for k, v in reduction.items() if k != "geometry"]
    geo = reduction["geometry"]
    text = f"geometry {fmt(geo)} vs random {fmt(min(random_))}–{fmt(max(random_))}"
    return Measurement(text, reproduced=geo >= 0.345 / 2 and geo > max(random_),
                       direction=geo > float(np.mean(random_)))


MORAL, HARM, GEOMETRY = "Moral indifference", "Harmful weights", "EM geometry"
_BOUND = ""  # a bound has no weaker form: either it holds or it does not

# what the rules table says each rule is also tried on
_VIEWS = f"{TWIN}; pooling variants ({', '.join(ROBUST_VARIANTS)})"
_VIEWS_MFD2, _VIEWS_MORALSTRENGTH = f"{_VIEWS}; MFD 2.0", f"{_VIEWS}; MoralStrength"
_STEERING = "steering with the pre-surgery SAE and with the mean-difference vector"
_PRUNES = "trivia-gradient and refusal-gradient prunes of as many weights"
_NULL_DICTIONARY = "the same dictionary scored on shuffled labels (null median per layer)"
_INSIDE_RULE = "— (the rule compares with control-only features)"

CLAIMS: tuple[Claim, ...] = (
    Claim("MI-1", MORAL, "Virtue and vice prototypes point the same way (centred cosine) in intermediate layers",
          "frequently > 0.5", "spec §3.1, §3.5 [W][S]", "03_categorical",
          "every trained model has ≥ 25 % of middle-half (layer, foundation) cosines above 0.5",
          "some trained model has middle-half cosines above 0.5", **_over_models(_categorical_same_side),
          tried_on=_VIEWS_MFD2,
          chance_test=("in every trained model, some middle layer holding a cosine > 0.5 has a mean cosine above"
                       " its label-permutation null band")),
    Claim("MI-2", MORAL, "Alignment leaves the representation unchanged: Base ≈ Instruct ≈ Guard",
          "nearly identical", "spec §3.5 [S]", "03_categorical",
          "the mean virtue–vice cosine curves of one model's alignment stages differ by ≤ 0.1 at every layer",
          "they differ by ≤ 0.25", _alignment_invariant),
    Claim("MI-3", MORAL, "Typicality is weakly encoded: peak Spearman(typicality, cosine to prototype)",
          "< 0.55 for every model and dimension", "spec §3.2, §3.5 [S]", "04_gradient",
          "every trained model's peak is below 0.55 in every dimension", _BOUND, **_over_models(_gradient_peak),
          tried_on=_VIEWS_MORALSTRENGTH, chance_test="— (a bound: the random twin must miss it)"),
    Claim("MI-4", MORAL, "Vice categories are more graded than virtue categories",
          "vice > virtue", "spec §3.2 [S]", "04_gradient",
          "mean vice peak exceeds mean virtue peak in every trained model",
          "it does on average over trained models", **_over_models(_gradient_asymmetry),
          tried_on=_VIEWS_MORALSTRENGTH, chance_test="—"),
    Claim("MI-5", MORAL, "Unsupervised clusters match virtue / vice / neutral only moderately: peak ARI Polarity3",
          "≈ 0.5 (best models)", "spec §3.3, §3.5 [S]", "05_structural",
          "the best trained model's peak is within 0.15 of 0.5",
          _BOUND, **_over_models(_structural_polarity),
          tried_on=_VIEWS_MFD2,
          chance_test="the best peak ARI lies above its label-permutation null band at that layer"),
    Claim("MI-6", MORAL, "Clusters do not match the five foundations: peak ARI MFT5",
          "< 0.15", "spec §3.3, §3.5 [S]", "05_structural",
          "every trained model's peak is below 0.15", _BOUND, **_over_models(_structural_mft5),
          tried_on=_VIEWS_MFD2, chance_test="— (a bound: the random twin must miss it)"),
    Claim("MI-7", MORAL, "High ARI occurs in high-noise layers (outlier-driven)",
          "peak in high-noise layers", "spec §3.3, §3.5 [S]", "05_structural",
          "in every trained model the noise share at the peak-ARI layer exceeds its median over layers",
          "in some trained model it does", **_over_models(_structural_noise),
          tried_on=_VIEWS_MFD2, chance_test="—"),
    Claim("MI-8", MORAL, "A linear probe explains little of the ten-dimensional moral vector: best peak adjusted R²",
          "0.26", "spec §3.4, §3.5 [S]", "06_dimensional",
          "the best trained model's peak is within 0.1 of 0.26",
          "it is below 0.5 (most variance unexplained)", **_over_models(_dimensional_peak),
          tried_on=_VIEWS_MORALSTRENGTH,
          chance_test="the best ridge R² lies above its shuffled-target null band (best layer)"),
    Claim("MI-9", MORAL, "The probe collapses at the final layer",
          "adjusted R² ≈ −50,000 (gpt-oss-120b)", "spec §3.4 [B]", "06_dimensional",
          "some trained model's final-layer R² is ≤ −1,000", "it is below 0",
          **_over_models(_dimensional_collapse),
          tried_on=_VIEWS_MORALSTRENGTH,
          chance_test="needs a shuffled-target null at the final layer, not yet computed: untested"),
    Claim("MI-10", MORAL, "Neither scale, architecture nor alignment removes the indifference",
          "none removes it (0.6B–235B, dense and MoE, Base/Instruct/Guard)", "spec §3.5 [P][S]", "07_across_models",
          "every trained model stays indifferent (peak Spearman < 0.55, ARI MFT5 < 0.15, probe R² < 0.5) "
          "across ≥ 3 model sizes", "every trained model stays indifferent, over fewer sizes",
          **_over_models(_across_models),
          tried_on="random twin", chance_test="—"),
    Claim("MI-11", MORAL, "Even a 16× SAE isolates few clean moral features: monosemantic share per layer",
          "0.002–0.017", "spec §4.4 step 3 [B][I]", "09_moral_features",
          "every layer's share lies in 0.001–0.034 (the paper's range, a factor 2 wide)",
          _BOUND, **_sae_rule("monosemantic_ratio", lambda v: (0.001 <= min(v) and max(v) <= 0.034, False), _range),
          tried_on=_NULL_DICTIONARY, chance_test="—"),
    Claim("MI-12", MORAL, "Moral latents do not track typicality: mean prototypicality Spearman",
          "< 0.1", "spec §4.4 step 4 [B][I]", "09_moral_features",
          "every layer's mean is below 0.1", _BOUND,
          **_sae_rule("mean_prototypicality_spearman", lambda v: (max(v) < 0.1, False), _highest),
          tried_on=_NULL_DICTIONARY, chance_test="— (a bound: the null must miss it)"),
    Claim("MI-13", MORAL, "Surgery trains few weights: share of SAE weights frozen",
          "> 0.99", "spec §5.1 [B][W]", "10_surgery",
          "every layer freezes ≥ 99 %", _BOUND, _surgery_frozen,
          tried_on="—", chance_test="— (a share the method configures)"),
    Claim("MI-14", MORAL, "After surgery, latents track typicality and opposite poles separate",
          "ρ rises, opposite-pole cosine falls", "spec §5.3 [W]", "10_surgery",
          "both happen at every layer", "both happen at more than half of the layers", _surgery_effect,
          tried_on="—", chance_test="needs a shuffled-label or multi-seed surgery, not yet run: untested"),
    Claim("MI-15", MORAL, "Steering with the post-surgery SAE beats the baseline on Flames at every layer",
          "win rate > 0.6 at every layer, peak 0.754", "spec §6.2 [W][P]", "11_steering_flames",
          "every validated judge gives a win rate > 0.6 at every steered layer (ties count, both orders)",
          "wins outnumber losses for every judge and layer", _flames_win_rate, controls=_flames_controls,
          tried_on=_STEERING,
          chance_test=("a one-sided sign test of wins against losses in every cell (the larger p of the two "
                       "orders)")),
    Claim("MI-16", MORAL, "Steering raises the count of perfect safety scores",
          "908 → 953 of 1,000", "spec §6.3 [W]", "11_steering_flames",
          "needs a paired per-prompt test the paper does not give: a count can at most show the direction",
          "the steered count exceeds the baseline's at every steered layer", **_psc("psc_safety"),
          tried_on=_STEERING, chance_test="needs a paired per-prompt test, not stored: untested"),
    Claim("MI-17", MORAL, "Steering raises the count of perfect emotion scores",
          "867 → 930 of 1,000", "spec §6.3 [W]", "11_steering_flames",
          "needs a paired per-prompt test the paper does not give: a count can at most show the direction",
          "the steered count exceeds the baseline's at every steered layer", **_psc("psc_emotion"),
          tried_on=_STEERING, chance_test="needs a paired per-prompt test, not stored: untested"),
    Claim("HW-1", HARM, "Pruning a tiny share of weights lesions harmful generation, not general ability (C1)",
          "0.0005–0.001 % of parameters", "harm spec §2 C1, §3.3", "12_harmful_weights",
          "≤ 0.001 % pruned, harmful-NLL rise ≥ 2× the benign rise and ≥ 0.5 nats above random pruning",
          "harmful NLL rises more than benign NLL", **_against_prunes(_harm_compact),
          tried_on=_PRUNES, chance_test="—"),
    Claim("HW-2", HARM, "The weights are shared across harm types (C2)",
          "cross-category suppression, heavy overlap", "harm spec §2 C2", "12_harmful_weights",
          "pruning each type raises every other type's NLL and the sets overlap ≥ 10× chance",
          "cross-type rises are positive on average", _harm_shared, controls=_harm_shared_controls,
          tried_on=_PRUNES,
          chance_test="needs the overlap against gradient-selected control sets, not computed: untested"),
    Claim("HW-3", HARM, "They are distinct from benign capabilities (C3)",
          "TriviaQA and general ability preserved", "harm spec §2 C3", "12_harmful_weights",
          "trivia accuracy drops ≤ 0.05 and the benign-NLL rise is < half the harmful rise",
          "the benign-NLL rise is smaller than the harmful rise and trivia accuracy drops ≤ 0.1",
          **_against_prunes(_harm_distinct),
          tried_on=_PRUNES, chance_test="—"),
    Claim("HW-4", HARM, "Alignment compresses the mechanism: instruct ≫ pretrained separability (C4)",
          "grows along base → SFT → DPO → RL", "harm spec §2 C4", "12_harmful_weights",
          "chapter 12 would need a pretrained counterpart or checkpoint ladder", _BOUND,
          _scope("chapter 12 prunes one instruct model; no pretrained counterpart or checkpoint ladder is run")),
    Claim("HW-5", HARM, "Pruning before a narrow fine-tune lowers emergent misalignment (C5)",
          "markedly lower EM", "harm spec §2 C5", "12_harmful_weights",
          "chapter 12 would need an EM fine-tune after pruning", _BOUND,
          _scope("chapter 12 runs no emergent-misalignment fine-tune after pruning")),
    Claim("HW-6", HARM, "Generation ≠ recognition: pruned models still detect and explain harm (C6)",
          "recognition nearly fully retained", "harm spec §2 C6", "12_harmful_weights",
          "the unpruned model detects harm (AUC ≥ 0.6), AUC drops ≤ 0.05 and the explanation-NLL rise is "
          "< half the harmful rise", "the explanation-NLL rise is smaller than the harmful rise",
          **_against_prunes(_harm_recognition),
          tried_on=_PRUNES, chance_test="—"),
    Claim("EG-1", GEOMETRY, "Fine-tuning spills over to features in proportion to their decoder similarity (B1)",
          "Δf_j ∝ ⟨d_j, d_target⟩", "geometry spec §2 B1", "13_superposition_geometry",
          "Spearman > 0 with p < 0.05", "Spearman > 0", _spillover("inducing"), controls=_spillover_control,
          tried_on="the control fine-tune", chance_test="Spearman's p"),
    Claim("EG-2", GEOMETRY, "Misalignment-inducing features lie closer to toxic features than control features (B2)",
          "closer (five models)", "geometry spec §2 B2", "13_superposition_geometry",
          "inducing-only mean cosine > control-only with permutation p < 0.05", "inducing-only > control-only",
          _geometry_closer,
          tried_on=_INSIDE_RULE, chance_test="permutation p"),
    Claim("EG-3", GEOMETRY, "The effect holds in every domain (B3)",
          "health, career, legal and code", "geometry spec §2 B3", "13_superposition_geometry",
          "every domain is significantly closer (Holm-adjusted p < 0.05) at some layer",
          "closer in more than half of the (layer, domain) cells", _geometry_domains,
          tried_on=_INSIDE_RULE,
          chance_test=("Holm-adjusted p per domain; for the direction, a sign test over the (layer, domain) "
                       "cells")),
    Claim("EG-4", GEOMETRY, "The effect is strongest in earlier layers (B3)",
          "earlier > later", "geometry spec §2 B3", "13_superposition_geometry",
          "the all-domain gap is larger at the earliest studied layer and significant there",
          "it is larger at the earliest studied layer", _geometry_early,
          tried_on=_INSIDE_RULE, chance_test="permutation p at the earliest layer"),
    Claim("EG-5", GEOMETRY, "A narrow fine-tune induces broad misalignment (the premise of B3–B4)",
          "emergent misalignment", "geometry spec §2, §9", "13_superposition_geometry",
          "the go rule: the proxy rises (p < 0.05) and more than after a control fine-tune (p < 0.05)",
          "it rises and more than after the control fine-tune", _geometry_em,
          tried_on="the control fine-tune (inside the rule)",
          chance_test="the rise's p and the difference-from-control's p, both"),
    Claim("EG-6", GEOMETRY, "Removing the samples nearest toxic features cuts misalignment, beating random removal (B4)",
          "−34.5 % (50 % removed)", "geometry spec §2 B4, §7", "13_superposition_geometry",
          "the geometry filter cuts the proxy's rise by ≥ 17 % (half the paper's) and more than every random removal",
          "it cuts more than random removal on average", _geometry_filter,
          tried_on="random removal of as many samples (inside the rule)", chance_test="—"),
)


def report(ledgers: Mapping[str, Metrics | None], profile: str,
           machines: Mapping[str, tuple[str, dict[str, str]]] | None = None) -> list[dict[str, Any]]:
    """Every claim assessed against the ledger metrics of its chapter (None or absent: chapter not run); `machines`
    (`reference_verdicts`) marks a positive verdict that differs between the reference's builds as fragile."""
    return [assess(claim, ledgers.get(claim.chapter), profile, (machines or {}).get(claim.id)) for claim in CLAIMS]


def load_ledgers(profile: str) -> dict[str, Metrics | None]:
    """The ledger metrics of every chapter a claim reads (None for a chapter not run with this profile)."""
    out: dict[str, Metrics | None] = {}
    for chapter in dict.fromkeys(c.chapter for c in CLAIMS):
        entry = ledger.read(chapter, profile)
        out[chapter] = None if entry is None else entry["metrics"]
    return out


def reference_verdicts(profile: str) -> dict[str, tuple[str, dict[str, str]]]:
    """Per claim, its verdict on the committed reference build and on each other machine's build that measured its
    chapter (none: not measured); empty without a reference. A claim whose verdicts differ is machine-sensitive
    (fragile) at this profile's size."""
    first, others = reference.builds(profile)
    if not first:
        return {}
    there = [(label, {row["id"]: row["verdict"] for row in report(build, profile)}, build) for label, build in others]
    return {row["id"]: (row["verdict"], {label: v[row["id"]] for label, v, build in there if claim.chapter in build})
            for claim, row in zip(CLAIMS, report(first, profile))}


def account(rows: list[dict[str, Any]]) -> str:
    """What the report's rows let a reader conclude, as Markdown bullets: which findings stand against every control,
    which hang on a variant or the CPU, which an untrained network or a control earns too, which noise could
    produce, and which are untested."""
    def ids(selected: list[dict[str, Any]], detail: Callable[[dict[str, Any]], str]) -> str:
        return "; ".join(f"{r['id']} ({detail(r)})" for r in selected) or "none"
    standing = [r for r in rows if r["verdict"] in POSITIVE and not r["fragile"]]
    fragile = [r for r in rows if r["verdict"] in POSITIVE and r["fragile"]]
    same = [r for r in rows if r["verdict"] == NOT_DISCRIMINATING]
    noise = [r for r in rows if r["verdict"] == INCONCLUSIVE and r["significant"] is False]
    untested = [r for r in rows if r["verdict"] == INCONCLUSIVE and r["significant"] is not False]
    return "\n".join([
        f"- **Stand against every control this profile has:** {ids(standing, lambda r: r['verdict'])}.",
        f"- **Positive but fragile** (the verdict changes under a pooling variant, a lexicon or another machine): "
        f"{ids(fragile, lambda r: 'flips under ' + ', '.join(r['fragile_under']))}.",
        f"- **Not separable from an untrained network or a control** (it meets the same rule): "
        f"{ids(same, lambda r: r['why'])}.",
        f"- **Not separable from noise** (inside the null band, or p ≥ {ALPHA}): {ids(noise, lambda r: r['test'])}.",
        f"- **Not yet tested against what it needs:** {ids(untested, lambda r: r['why'].removeprefix('untested: '))}.",
        f"- Not reproduced: {sum(r['verdict'] == NOT_REPRODUCED for r in rows)}; not testable at this scale: "
        f"{sum(r['verdict'] == NOT_TESTABLE for r in rows)} (each row says why)."])


def evidence(rows: list[dict[str, Any]], profile: str) -> Styler:
    """Report rows as the evidence table chapter 14 and every chapter's own box show: value, control and its rule
    verdict, test against chance, verdict (coloured) and why, and what a positive verdict is fragile under."""
    def row(r: dict[str, Any]) -> dict[str, str]:
        control = "—" if r["control"] is None else f"{r['control']}: {r['control_value']} → {r['control_verdict']}"
        return {"id": r["id"], "paper": r["paper_value"], f"this run ({profile})": r["this_value"],
                "control (its rule verdict)": control, "null band or p": r["test"] or "—", "verdict": r["verdict"],
                "why": r["why"] or "—", "fragile under": ", ".join(r["fragile_under"]) or "—"}
    return pd.DataFrame([row(r) for r in rows]).style.hide(axis="index").map(plotting.verdict_css, subset=["verdict"])


def chapter_verdicts(chapter: str, profile: str) -> Styler:
    """The verdicts of one chapter's claims exactly as chapter 14 gives them (same rules, controls and fragility),
    from the ledger the chapter has just saved."""
    entry, machines = ledger.read(chapter, profile), reference_verdicts(profile)
    metrics = None if entry is None else entry["metrics"]
    return evidence([assess(c, metrics, profile, machines.get(c.id)) for c in CLAIMS if c.chapter == chapter], profile)
