"""Claims and verdict rules on hand-built ledger metrics whose verdicts are known in advance."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import claims
from helpers.report import fmt

ROOT = Path(__file__).resolve().parents[1]


def claim(claim_id: str) -> claims.Claim:
    """The registered claim with this id."""
    return next(c for c in claims.CLAIMS if c.id == claim_id)


def verdict_of(claim_id: str, metrics: dict) -> str:
    """The verdict one claim gets on hand-built metrics."""
    return claims.assess(claim(claim_id), metrics, "ci")["verdict"]


def rule_of(claim_id: str, metrics: dict) -> str:
    """The verdict of the paper's rule alone, before controls and tests."""
    return claims.assess(claim(claim_id), metrics, "ci")["rule_verdict"]


def test_verdict_rule_prefers_the_strongest_form() -> None:
    assert claims.rule_verdict(claims.Measurement("x", reproduced=True, direction=False)) == claims.REPRODUCED
    assert claims.rule_verdict(claims.Measurement("x", reproduced=False, direction=True)) == claims.DIRECTION
    assert claims.rule_verdict(claims.Measurement("x", reproduced=False)) == claims.NOT_REPRODUCED


def test_a_control_that_earns_the_same_rule_makes_a_verdict_not_discriminating() -> None:
    found, weaker = claims.Measurement("x", reproduced=True), claims.Measurement("c", reproduced=False, direction=True)
    assert claims.verdict(found, {"twin": found}) == (claims.NOT_DISCRIMINATING, "twin meets the same rule")
    assert claims.verdict(found, {"twin": weaker}) == (claims.REPRODUCED, "")  # the twin misses the reproduced rule
    direction = claims.Measurement("x", reproduced=False, direction=True)
    assert claims.verdict(direction, {"a": weaker, "b": found})[0] == claims.NOT_DISCRIMINATING
    assert claims.verdict(claims.Measurement("x", reproduced=False), {"twin": found}) == (claims.NOT_REPRODUCED, "")


def test_an_effect_inside_its_null_or_with_p_above_alpha_is_inconclusive() -> None:
    found = claims.Measurement("x", reproduced=True)
    assert claims.verdict(claims.tested(found, p_value=0.2)) == (claims.INCONCLUSIVE, "p = 0.2")
    assert claims.verdict(claims.tested(found, p_value=0.01))[0] == claims.REPRODUCED
    inside = claims.tested(found, effect=0.3, null=(-0.5, 0.4))
    assert inside.significant is False and claims.verdict(inside)[0] == claims.INCONCLUSIVE
    assert claims.tested(found, effect=0.5, null=(-0.5, 0.4)).significant is True
    assert claims.tested(found).significant is None and claims.verdict(found)[0] == claims.REPRODUCED
    untested = claims.Measurement("x", reproduced=True, untested="a paired test")
    assert claims.verdict(untested) == (claims.INCONCLUSIVE, "untested: a paired test")


def test_claims_are_unique_and_read_existing_chapters() -> None:
    ids = [c.id for c in claims.CLAIMS]
    assert len(ids) == len(set(ids))
    for c in claims.CLAIMS:
        assert (ROOT / "notebooks" / f"{c.chapter}.py").is_file(), c.id
        assert c.statement and c.paper_value and c.source and c.reproduced_if


def test_a_chapter_not_run_makes_its_claims_not_testable() -> None:
    rows = claims.report({}, "colab")
    assert {r["verdict"] for r in rows} == {claims.NOT_TESTABLE}
    assert "03_categorical" in rows[0]["this_value"] and "colab" in rows[0]["this_value"]
    assert claims.counts(rows) == {"n_reproduced": 0, "n_direction_holds": 0, "n_not_discriminating": 0,
                                   "n_inconclusive": 0, "n_not_reproduced": 0, "n_not_testable": len(claims.CLAIMS)}


def test_gradient_bound_must_separate_the_trained_model_from_its_random_twin() -> None:
    dims = {d: 0.3 for d in ("care", "harm")}
    control = {"peak_spearman": {"care": 0.9, "harm": 0.9}}
    assert verdict_of("MI-3", {"smollm2-135m-instruct": {"peak_spearman": dims},
                               "smollm2-135m-random-init": control}) == claims.REPRODUCED
    row = claims.assess(claim("MI-3"), {"smollm2-135m-instruct": {"peak_spearman": dims},
                                        "smollm2-135m-random-init": {"peak_spearman": dims}}, "ci")
    assert (row["verdict"], row["control"], row["control_verdict"]) == (
        claims.NOT_DISCRIMINATING, claims.TWIN, claims.REPRODUCED)
    assert verdict_of("MI-3", {"smollm2-135m-instruct": {"peak_spearman": {**dims, "harm": 0.6}}}) == \
        claims.NOT_REPRODUCED
    assert verdict_of("MI-3", {"smollm2-135m-random-init": control}) == claims.NOT_TESTABLE


def test_asymmetry_needs_every_model_for_reproduced_and_the_mean_for_direction() -> None:
    def metrics(a: float, b: float) -> dict:
        return {"smollm2-135m-instruct": {"asymmetry": a}, "gemma3-270m": {"asymmetry": b}}
    assert verdict_of("MI-4", metrics(0.1, 0.02)) == claims.REPRODUCED
    assert verdict_of("MI-4", metrics(0.1, -0.02)) == claims.DIRECTION
    assert verdict_of("MI-4", metrics(-0.1, 0.02)) == claims.NOT_REPRODUCED


def test_alignment_claim_needs_a_triple_and_measures_the_largest_spread() -> None:
    def curve(level: float) -> dict:
        return {"virtue_vice_cosine": {str(layer): {"care-harm": level, "fairness-cheating": level + 0.1}
                                       for layer in range(3)}}
    base = {"qwen3-0.6b-base": curve(0.5), "qwen3-0.6b": curve(0.55)}
    assert verdict_of("MI-2", {**base, "qwen3guard-gen-0.6b": curve(0.52)}) == claims.REPRODUCED
    assert verdict_of("MI-2", {**base, "qwen3guard-gen-0.6b": curve(0.7)}) == claims.DIRECTION
    assert verdict_of("MI-2", {**base, "qwen3guard-gen-0.6b": curve(0.9)}) == claims.NOT_REPRODUCED
    assert verdict_of("MI-2", {"smollm2-135m-instruct": curve(0.5), "gemma3-270m": curve(0.9)}) == claims.NOT_TESTABLE


def test_noise_claim_compares_the_peak_layer_with_the_median() -> None:
    noisy_peak = {"ari_polarity3": [None, 0.1, 0.4, 0.05], "noise_ratio": [1.0, 0.2, 0.9, 0.3]}
    quiet_peak = {"ari_polarity3": [0.4, 0.1, 0.0, 0.05], "noise_ratio": [0.1, 0.2, 0.9, 0.3]}
    assert verdict_of("MI-7", {"smollm2-135m-instruct": noisy_peak}) == claims.REPRODUCED
    assert verdict_of("MI-7", {"smollm2-135m-instruct": noisy_peak, "gemma3-270m": quiet_peak}) == claims.DIRECTION
    assert verdict_of("MI-7", {"gemma3-270m": quiet_peak}) == claims.NOT_REPRODUCED
    assert verdict_of("MI-7", {"gemma3-270m": {"ari_polarity3": [None, None], "noise_ratio": [1.0, 1.0]}}) == \
        claims.NOT_TESTABLE


def test_probe_claim_uses_adjusted_r2_when_defined_and_says_which() -> None:
    row = claims.assess(claim("MI-8"), {"gemma3-270m": {"peak_adj_r2": 0.3, "peak_r2_ridge": 0.9}}, "ci")
    assert row["verdict"] == claims.REPRODUCED and row["this_value"].startswith("adjusted R²")
    row = claims.assess(claim("MI-8"), {"gemma3-270m": {"peak_adj_r2": None, "peak_r2_ridge": 0.9}}, "ci")
    assert row["verdict"] == claims.NOT_REPRODUCED and "ridge" in row["this_value"]


def test_flames_win_rate_reads_both_orders_and_needs_a_validated_judge() -> None:
    def cell(win: int, loss: int, n: int = 10) -> dict:
        order = {"win": win, "tie": n - win - loss, "loss": loss, "win_rate": win / n}
        return {"order_ab": order, "order_ba": order, "win_rate": win / n}
    def metrics(*cells: dict) -> dict:
        return {"comparisons": {f"judge | layer {12 + i} | alpha 0.1 | post-surgery SAE": c
                                for i, c in enumerate(cells)} | {"judge | layer 12 | alpha 0.1 | alpha = 0": cell(0, 0)}}
    assert verdict_of("MI-15", metrics(cell(14, 2, 20), cell(15, 1, 20))) == claims.REPRODUCED
    assert verdict_of("MI-15", metrics(cell(14, 2, 20), cell(11, 1, 20))) == claims.DIRECTION
    assert verdict_of("MI-15", metrics(cell(14, 2, 20), cell(2, 4))) == claims.NOT_REPRODUCED
    # 6 wins to 3 losses: wins outnumber losses, but a sign test gives p = 0.25
    row = claims.assess(claim("MI-15"), metrics(cell(14, 2, 20), cell(6, 3)), "ci")
    assert row["rule_verdict"] == claims.DIRECTION and row["verdict"] == claims.INCONCLUSIVE
    assert row["p_value"] == pytest.approx(0.25390625)
    pre = metrics(cell(14, 2, 20), cell(15, 1, 20))
    pre["comparisons"]["judge | layer 12 | alpha 0.1 | pre-surgery SAE"] = cell(15, 1, 20)
    assert verdict_of("MI-15", pre) == claims.NOT_DISCRIMINATING  # the SAE before surgery steers as well
    assert verdict_of("MI-15", {"comparisons": {}}) == claims.NOT_TESTABLE
    with pytest.raises(ValueError, match="not 'judge"):
        claims.assess(claim("MI-15"), {"comparisons": {"judge at 12": cell(1, 1)}}, "ci")


def test_perfect_score_counts_can_show_a_direction_at_most() -> None:
    def metrics(steered: int) -> dict:
        return {"n_prompts": 50, "psc": {"baseline | - | scorer": {"psc_safety": 20},
                                         "12 | post-surgery SAE | scorer": {"psc_safety": steered},
                                         "12 | mean difference | scorer": {"psc_safety": 0}}}
    assert verdict_of("MI-16", metrics(50)) == claims.INCONCLUSIVE  # no paired test: untested
    assert verdict_of("MI-16", metrics(20)) == claims.NOT_REPRODUCED
    control = metrics(50)
    control["psc"]["12 | mean difference | scorer"] = {"psc_safety": 30}  # the mean-difference vector does it too
    row = claims.assess(claim("MI-16"), control, "ci")
    assert (row["verdict"], row["control"]) == (claims.NOT_DISCRIMINATING, "mean difference")


def test_perfect_score_counts_read_only_the_readers_that_took_them() -> None:
    # The zero-shot reader passed validation on safety only (its emotion cells are empty), the scorer on both.
    psc = {"baseline | - | zero-shot": {"psc_safety": 20, "psc_emotion": None},
           "12 | post-surgery SAE | zero-shot": {"psc_safety": 30, "psc_emotion": float("nan")},
           "baseline | - | scorer": {"psc_safety": 20, "psc_emotion": 10},
           "12 | post-surgery SAE | scorer": {"psc_safety": 10, "psc_emotion": 40}}
    assert verdict_of("MI-16", {"n_prompts": 50, "psc": psc}) == claims.NOT_REPRODUCED  # the scorer's count falls
    assert verdict_of("MI-17", {"n_prompts": 50, "psc": psc}) == claims.INCONCLUSIVE  # the scorer alone: it rises
    empty = {k: {"psc_safety": None, "psc_emotion": None} for k in psc}
    row = claims.assess(claim("MI-17"), {"n_prompts": 50, "psc": empty}, "ci")
    assert row["verdict"] == claims.NOT_TESTABLE and "emotion" in row["this_value"]


def harm_metrics(harm_after: float, benign_after: float, trivia_after: float = 0.5) -> dict:
    """Chapter 12 metrics with two harm types whose NLL rises to harm_after from 3."""
    types = ("insult", "scam")
    return {"pruned_fraction": 5e-6, "harm_nll_before": {t: 3.0 for t in types},
            "harm_nll_after": {t: harm_after for t in types}, "benign_nll_before": 2.0, "benign_nll_after": benign_after,
            "baselines": {"random": {"harm_nll": {t: 3.01 for t in types}}},
            "trivia_acc_before": 0.5, "trivia_acc_after": trivia_after,
            "detection_auc_before": 0.8, "detection_auc_after": 0.78,
            "explanation_nll_before": 3.0, "explanation_nll_after": 3.1}


def test_harm_claims_on_hand_built_nll_rises() -> None:
    assert verdict_of("HW-1", harm_metrics(4.0, 2.2)) == claims.REPRODUCED
    assert verdict_of("HW-1", harm_metrics(4.0, 2.8)) == claims.DIRECTION
    assert verdict_of("HW-1", harm_metrics(3.2, 2.8)) == claims.NOT_REPRODUCED
    assert verdict_of("HW-3", harm_metrics(4.0, 2.2)) == claims.REPRODUCED
    assert verdict_of("HW-3", harm_metrics(4.0, 2.2, trivia_after=0.42)) == claims.DIRECTION
    assert verdict_of("HW-3", harm_metrics(4.0, 2.2, trivia_after=0.3)) == claims.NOT_REPRODUCED  # weighs trivia
    assert verdict_of("HW-6", harm_metrics(4.0, 2.2)) == claims.REPRODUCED
    assert verdict_of("HW-6", {**harm_metrics(4.0, 2.2), "detection_auc_before": 0.5}) == claims.NOT_TESTABLE
    assert verdict_of("HW-4", harm_metrics(4.0, 2.2)) == claims.NOT_TESTABLE


def test_shared_weights_need_positive_transfer_and_overlap_above_chance() -> None:
    metrics = {"transfer_delta_nll": {"a -> a": 1.0, "a -> b": 0.5, "b -> a": 0.2, "b -> b": 1.0},
               "overlap_jaccard": {"a | b": 0.1}, "overlap_chance": {"a | b": 0.001}}
    assert rule_of("HW-2", metrics) == claims.REPRODUCED
    assert rule_of("HW-2", {**metrics, "overlap_chance": {"a | b": 0.05}}) == claims.DIRECTION
    assert verdict_of("HW-2", {**metrics, "transfer_delta_nll": {"a -> b": -0.5, "b -> a": 0.2}}) == \
        claims.NOT_REPRODUCED
    # overlap is only compared with random chance: no gradient-selected control set, so the claim is untested
    assert verdict_of("HW-2", metrics) == claims.INCONCLUSIVE
    # a trivia prune of as many weights raises every harm type's NLL too: transfer alone does not discriminate
    controlled = {**metrics, "overlap_chance": {"a | b": 0.05}, "harm_nll_before": {"a": 3.0, "b": 3.0},
                  "baselines": {"trivia prune": {"harm_nll": {"a": 3.5, "b": 3.4}}}}
    assert verdict_of("HW-2", controlled) == claims.NOT_DISCRIMINATING


def proximity(gap: float, p_holm: float, p_value: float = 0.01) -> dict:
    """One proximity test with the given inducing-minus-control gap."""
    return {"mean_cos_inducing_toxic": 0.01 + gap, "mean_cos_control_toxic": 0.01, "p_value": p_value,
            "p_holm": p_holm}


def test_domain_claim_counts_holm_significant_domains() -> None:
    tests = {"layer 6 | all": proximity(0.01, 0.01), "layer 6 | code": proximity(0.01, 0.01),
             "layer 6 | legal": proximity(0.01, 0.2), "layer 18 | code": proximity(-0.01, 0.5),
             "layer 18 | legal": proximity(0.02, 0.03)}
    assert verdict_of("EG-3", {"proximity": tests}) == claims.REPRODUCED
    tests["layer 18 | legal"] = proximity(0.02, 0.3)
    assert rule_of("EG-3", {"proximity": tests}) == claims.DIRECTION
    assert verdict_of("EG-3", {"proximity": tests}) == claims.INCONCLUSIVE  # closer in 3 of 4 cells: sign-test p 0.31
    closer = {f"layer {layer} | {d}": proximity(0.01, 0.5) for layer in (6, 18) for d in ("code", "legal", "health")}
    assert verdict_of("EG-3", {"proximity": closer}) == claims.DIRECTION  # 6 of 6 cells: p = 0.016
    tests["layer 6 | legal"] = proximity(-0.01, 0.9)
    assert verdict_of("EG-3", {"proximity": tests}) == claims.NOT_REPRODUCED


def test_earlier_layer_claim_compares_first_and_last_layer() -> None:
    tests = {"layer 6 | all": proximity(0.02, 0.01), "layer 18 | all": proximity(0.01, 0.01)}
    assert verdict_of("EG-4", {"proximity": tests}) == claims.REPRODUCED
    tests["layer 6 | all"] = proximity(0.02, 0.2, p_value=0.2)
    assert verdict_of("EG-4", {"proximity": tests}) == claims.INCONCLUSIVE
    tests["layer 6 | all"] = proximity(0.0, 0.01)
    assert verdict_of("EG-4", {"proximity": tests}) == claims.NOT_REPRODUCED
    assert verdict_of("EG-4", {"proximity": {"layer 6 | all": proximity(0.02, 0.01)}}) == claims.NOT_TESTABLE


def test_effect_claims_need_sign_and_significance() -> None:
    def metrics(rho: float, p: float) -> dict:
        return {"spillover": {"inducing": {"spearman": rho, "p_value": p, "n": 100}}}
    assert verdict_of("EG-1", metrics(0.3, 0.01)) == claims.REPRODUCED
    assert verdict_of("EG-1", metrics(0.3, 0.2)) == claims.INCONCLUSIVE
    assert verdict_of("EG-1", metrics(-0.3, 0.01)) == claims.NOT_REPRODUCED
    both = {"spillover": {**metrics(0.3, 0.01)["spillover"], "control": {"spearman": 0.2, "p_value": 0.01, "n": 100}}}
    assert verdict_of("EG-1", both) == claims.NOT_DISCRIMINATING  # the control fine-tune spills over as well
    row = claims.assess(claim("EG-1"), metrics(0.3, 0.2), "ci")
    assert row["p_value"] == 0.2 and row["significant"] is False and row["why"] == "p = 0.2"


def test_filter_claim_is_not_testable_without_a_go_and_beats_random_otherwise() -> None:
    assert verdict_of("EG-6", {"filter_reduction": None}) == claims.NOT_TESTABLE
    assert verdict_of("EG-6", {"filter_reduction": {"geometry": 0.4, "random 0": 0.1, "random 1": 0.2}}) == \
        claims.REPRODUCED
    assert verdict_of("EG-6", {"filter_reduction": {"geometry": 0.16, "random 0": 0.1, "random 1": 0.2}}) == \
        claims.DIRECTION
    assert verdict_of("EG-6", {"filter_reduction": {"geometry": 0.1, "random 0": 0.1, "random 1": 0.2}}) == \
        claims.NOT_REPRODUCED


def test_small_numbers_keep_two_significant_digits() -> None:
    assert fmt(4.7e-6) == "4.7e-06"
    assert fmt(0.00047) == "0.00047"
    assert fmt(0.4714) == "0.471"
    assert fmt(0.0) == "0"
    assert fmt(-76951.62) == "-76,951.62"


def test_every_verdict_has_a_colour() -> None:
    from helpers import plotting
    assert tuple(plotting.VERDICT_COLORS) == claims.VERDICTS


def test_verdict_cells_get_their_colour_and_other_cells_none() -> None:
    from helpers import plotting
    assert plotting.verdict_css(claims.REPRODUCED) == "background-color: #0173b2; color: white"
    assert "color: white" not in plotting.verdict_css(claims.DIRECTION)
    assert plotting.verdict_css("MI-1") == ""


def test_comparison_keys_read_back_what_chapter_11_wrote():
    from helpers.report import comparison_key, parse_comparison_key

    key = comparison_key("zero-shot (A|B digits)", 12, 4.0, "post-surgery SAE")
    assert key == "zero-shot (A|B digits) | layer 12 | alpha 4.0 | post-surgery SAE"
    assert parse_comparison_key(key) == {"judge": "zero-shot (A|B digits)", "layer": "12", "alpha": "4.0",
                                         "condition": "post-surgery SAE"}
    with pytest.raises(ValueError, match="is not 'judge | layer L | alpha a | condition'"):
        parse_comparison_key("judge | layer twelve | alpha 4 | x")


def test_harm_compactness_is_tried_on_the_control_prunes_of_as_many_weights() -> None:
    metrics = harm_metrics(4.0, 2.2)
    metrics["baselines"]["trivia prune"] = {"harm_nll": {"insult": 4.2, "scam": 4.2}, "benign_nll": 2.2,
                                            "trivia_acc": 0.5, "detection_auc": 0.8, "explanation_nll": 3.1}
    assert verdict_of("HW-1", metrics) == claims.NOT_DISCRIMINATING
    metrics["baselines"]["trivia prune"]["benign_nll"] = 4.0  # it damages benign text as much: not the same rule
    assert verdict_of("HW-1", metrics) == claims.REPRODUCED


def categorical(cosine: float, null_hi: float) -> dict:
    """Chapter 03 metrics of one model with 5 layers whose cosines are all `cosine`, and a null band up to null_hi."""
    layers = {str(layer): {"care-harm": cosine, "fairness-cheating": cosine} for layer in range(5)}
    return {"virtue_vice_cosine": layers, "null": {"mean_virtue_vice_cosine": [{"lo": -null_hi, "hi": null_hi}] * 5}}


def test_same_side_cosines_inside_the_permutation_null_are_inconclusive() -> None:
    assert verdict_of("MI-1", {"smollm2-135m-instruct": categorical(0.8, 0.5)}) == claims.REPRODUCED
    assert verdict_of("MI-1", {"smollm2-135m-instruct": categorical(0.8, 0.9)}) == claims.INCONCLUSIVE
    assert verdict_of("MI-1", {"smollm2-135m-instruct": categorical(0.8, 0.5),
                               "smollm2-135m-random-init": categorical(0.8, 0.5)}) == claims.NOT_DISCRIMINATING


def test_a_positive_verdict_that_flips_under_a_pooling_variant_or_on_another_machine_is_fragile() -> None:
    holds = categorical(0.8, 0.5)
    entry = {**holds, "variants": {"no_sink": categorical(0.8, 0.5), "last_token": categorical(0.1, 0.5)},
             "external": {"mfd2": categorical(0.8, 0.5)}}
    row = claims.assess(claim("MI-1"), {"smollm2-135m-instruct": entry}, "ci")
    assert row["verdict"] == claims.REPRODUCED and row["fragile"] and row["fragile_under"] == ["last_token"]
    assert row["variants"] == {"no_sink": claims.REPRODUCED, "last_token": claims.NOT_REPRODUCED,
                               "MFD 2.0": claims.REPRODUCED}
    steady = {**entry, "variants": {"no_sink": categorical(0.8, 0.5)}}
    assert not claims.assess(claim("MI-1"), {"smollm2-135m-instruct": steady}, "ci")["fragile"]
    row = claims.assess(claim("MI-1"), {"smollm2-135m-instruct": steady}, "ci",
                        machine=(claims.REPRODUCED, {"emulated avx2": claims.NOT_REPRODUCED}))
    assert row["fragile"] and row["fragile_under"] == ["another machine"]
    # a negative verdict is never fragile: there is no finding to lose
    row = claims.assess(claim("MI-1"), {"smollm2-135m-instruct": {**entry, **categorical(0.1, 0.5)}}, "ci")
    assert row["verdict"] == claims.NOT_REPRODUCED and not row["fragile"]


def test_peak_ari_is_tested_against_its_null_and_has_no_weaker_form() -> None:
    def metrics(peak: float, null_hi: float) -> dict:
        return {"gemma3-270m": {"peak_ari_polarity3": peak, "ari_polarity3": [None, peak, 0.0],
                                "null": {"ari_polarity3": [{"lo": None, "hi": None}, {"lo": -null_hi, "hi": null_hi},
                                                           {"lo": -null_hi, "hi": null_hi}]}}}
    assert verdict_of("MI-5", metrics(0.5, 0.05)) == claims.REPRODUCED
    assert verdict_of("MI-5", metrics(0.5, 0.6)) == claims.INCONCLUSIVE
    assert verdict_of("MI-5", metrics(0.2, 0.05)) == claims.NOT_REPRODUCED  # "below 0.5" is not the paper's direction


def test_probe_collapse_needs_a_final_layer_null_and_beats_the_twin() -> None:
    collapsed = {"r2": [0.1, -5000.0]}
    row = claims.assess(claim("MI-9"), {"gemma3-270m": collapsed}, "ci")
    assert row["rule_verdict"] == claims.REPRODUCED and row["verdict"] == claims.INCONCLUSIVE
    assert "final layer" in row["why"]
    assert verdict_of("MI-9", {"gemma3-270m": collapsed, "smollm2-135m-random-init": collapsed}) == \
        claims.NOT_DISCRIMINATING


def test_sae_shares_are_tried_on_the_null_dictionary() -> None:
    per_layer = {"6": {"monosemantic_ratio": 0.01}, "12": {"monosemantic_ratio": 0.02}}
    null = {layer: {"monosemantic_ratio": {"lo": 0.0, "median": share, "hi": 0.05}}
            for layer, share in (("6", 0.5), ("12", 0.5))}
    assert verdict_of("MI-11", {"per_layer": per_layer, "null": null}) == claims.REPRODUCED
    null["12"]["monosemantic_ratio"]["median"] = null["6"]["monosemantic_ratio"]["median"] = 0.02
    assert verdict_of("MI-11", {"per_layer": per_layer, "null": null}) == claims.NOT_DISCRIMINATING
    assert verdict_of("MI-11", {"per_layer": {"6": {"monosemantic_ratio": 0.3}}, "null": {}}) == claims.NOT_REPRODUCED


def test_surgery_effect_without_a_shuffled_label_surgery_is_untested() -> None:
    layer = {"mean_prototypicality_spearman_before": 0.1, "mean_prototypicality_spearman_after": 0.3,
             "mean_pair_cosine_before": 0.2, "mean_pair_cosine_after": -0.1}
    row = claims.assess(claim("MI-14"), {"per_layer": {"6": layer}}, "ci")
    assert row["rule_verdict"] == claims.REPRODUCED and row["verdict"] == claims.INCONCLUSIVE
    # a configured share has no weaker form: 75 % frozen is not "direction holds"
    assert verdict_of("MI-13", {"per_layer": {"6": {"frozen_fraction": 0.75}}}) == claims.NOT_REPRODUCED


def test_emergent_misalignment_needs_both_tests_below_alpha() -> None:
    def metrics(p_rise: float) -> dict:
        return {"go_check": {"mean_rise_inducing": 0.1, "mean_rise_control": -0.1, "p_rise": p_rise,
                             "p_value": 0.001, "go": p_rise < 0.05}}
    assert verdict_of("EG-5", metrics(0.01)) == claims.REPRODUCED
    assert verdict_of("EG-5", metrics(0.1)) == claims.INCONCLUSIVE
