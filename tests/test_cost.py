"""The cost model: FLOPs and memory of hand-computed cases, the shape and data tables against their sources, the
two-throughput fit (model work, host statistics), the budget flags, and the README section written by `make bench`."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from helpers import bench, cost
from helpers.models import REGISTRY
from helpers.paths import replace_between_markers
from helpers.profiles import load_profile

# A 2-layer toy decoder: d 4, MLP 8, vocabulary 10, 2 heads of width 2 sharing 1 key/value head, tied embeddings.
TOY = cost.Shape(n_layers=2, d_model=4, d_mlp=8, vocab=10, n_heads=2, n_kv_heads=1, head_dim=2, tied=True)


def test_toy_model_shapes_and_forward_flops_by_hand():
    # per block: q and o 4·(2·2) = 16 each, k and v 4·(1·2) = 8 each → 48; MLP 3·4·8 = 96 → 144; two blocks 288
    assert TOY.block_params() == 288 and TOY.params() == 288 + 40
    # 10 texts × 8 tokens, causal so each token attends to 4 positions on average:
    # 2·288 = 576 per token for the weights, QKᵀ and AV 4·layers·heads·head_dim·context = 4·2·2·2·4 = 128 → 704
    assert cost.forward(TOY, 10 * 8, 8) == 80 * 704 == 56_320
    # with the logits: + 2·d·vocab = 80 per token
    assert cost.forward(TOY, 80, 8, logits=True) == 80 * 784 == 62_720
    # a training step: forward + backward ≈ 3 forwards; a quarter of the blocks trained: 2.25 forwards
    assert cost.training(TOY, 80, 8) == 3 * 62_720
    assert cost.training(TOY, 80, 8, trained_share=0.25) == 2.25 * 62_720


def test_sae_training_flops_by_hand():
    # 12·d·D per training sample (6 per weight, 2·d·D weights) and 4·d·D per validation sample, every epoch
    assert cost.sae_training(4, 16, 100, 3, val_samples=20) == 3 * (12 * 4 * 16 * 100 + 4 * 4 * 16 * 20) == 245_760


def test_a_made_up_profile_through_chapter_02(monkeypatch):
    """10 texts of 8 tokens through the 2-layer toy model: the extraction step is the hand-computed forward."""
    monkeypatch.setitem(cost.SHAPES, "toy", TOY)
    monkeypatch.setattr(cost, "PROMPT_TOKENS", 8)
    profile = dataclasses.replace(load_profile("ci"), models=["toy"], dtype="float32")
    sizes = dataclasses.replace(cost.sizes(profile), prompts=10)
    chapter = cost.ch02(profile, sizes, cost.Outcomes())
    steps = {step.name: step for step in chapter.steps}
    assert steps["extract toy"].flops == 56_320 and steps["extract toy"].cache == "activations"
    assert steps["norms and cosines toy"].flops == 3 * 10 * 10 * 4 * 2  # 3 poolings × 10 FLOPs × n × d × layers
    assert steps["load toy"].read_bytes == 328 * 4
    assert chapter.flops() == 56_320 + 2400 and chapter.flops(warm=True) == 2400


def test_sentence_codes_matrix_ram():
    assert cost.codes_bytes(1658, 2304) == 1658 * 2304 * 4  # float32 [rows, d_sae]
    ci = load_profile("ci")
    sizes = cost.sizes(ci)
    machine = cost.cpu_machine(1e10, 1e10)
    base, more = (cost.memory(cost.ch09(ci, s, cost.Outcomes()), machine)[0]
                  for s in (sizes, dataclasses.replace(sizes, identify_rows=sizes.identify_rows + 1000)))
    # every SAE layer's codes stay (4 layers), and one layer's transients hold the split's rows twice more
    d_sae = ci.sae_expansion * cost.shape(ci.sae_model).d_model
    assert more - base == pytest.approx((len(ci.sae_layers) + 2) * cost.codes_bytes(1000, d_sae))


def test_every_registry_model_has_a_shape_near_its_published_size():
    assert set(REGISTRY) == set(cost.SHAPES)
    for name, spec in REGISTRY.items():
        size = float(spec.params[:-1]) * {"M": 1e6, "B": 1e9}[spec.params[-1]]
        assert cost.shape(name).params() == pytest.approx(size, rel=0.1), name
    qwen = cost.shape("qwen3-0.6b")
    assert (qwen.n_layers, qwen.d_model, qwen.d_mlp, qwen.vocab) == (28, 1024, 3072, 151_936)
    assert 0.55e9 < qwen.params() < 0.65e9
    with pytest.raises(KeyError, match="no shape for model"):
        cost.shape("qwen9-1t")


def test_ci_shapes_match_the_cached_configs(root):
    checked = 0
    for name in ("smollm2-135m-instruct", "gemma3-270m"):
        path = root / "cache" / "models" / name / "config.json"
        if not path.is_file():
            continue
        config = json.loads(path.read_text())
        config = config.get("text_config", config)
        s = cost.shape(name)
        assert (s.n_layers, s.d_model, s.d_mlp, s.vocab, s.n_heads, s.n_kv_heads, s.head_dim) == (
            config["num_hidden_layers"], config["hidden_size"], config["intermediate_size"], config["vocab_size"],
            config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"])
        checked += 1
    if not checked:
        pytest.skip("no dequantised ci model under cache/models (built by the first `make book`)")


def test_bundled_table_counts_the_files(root):
    files = root / "src" / "helpers" / "data" / "files"
    for name, fields in cost.BUNDLED.items():
        records = [json.loads(line) for line in (files / name).read_text(encoding="utf-8").splitlines() if line]
        assert len(records) == fields["rows"], name
        for field, tokens in fields.items():
            if field != "rows":
                chars = sum(len(r[field]) for r in records) / len(records)
                assert 2.5 < chars / tokens < 6.5, (name, field)  # BPE: ~4–5 characters per token, code ~3


def _planted_build(model: float, host: float, steps: bool = True, slow: dict[str, float] | None = None) -> dict:
    """A ci build whose every chapter took exactly its warm prediction with model work at `model` and host statistics
    at `host` FLOP/s (`slow`: chapters whose statistics ran that many times slower), peak RSS 1 GB; with `steps`,
    its ledgers record the cached model-work steps' times as the real ones do (02, 08, 13) at `model`."""
    costs = cost.chapter_costs(load_profile("ci"))
    build = {}
    for name, c in costs.items():
        machine = cost.cpu_machine(model, host / (slow or {}).get(name, 1.0))
        build[name] = {"seconds": cost.seconds(c, machine, warm=True), "peak_rss_mb": 1000.0, "cpu": "test CPU",
                       "metrics": {}, "data": {}}
    if steps:
        timed = lambda chapter, step: cost.step_seconds(  # noqa: E731
            next(s for s in costs[chapter].steps if s.name == step), cost.cpu_machine(model, host))
        build["02_activations"]["metrics"] = {name: {"n_texts": 1000, "seconds_per_1k_texts": timed(
            "02_activations", f"extract {name}")} for name in load_profile("ci").models}
        build["08_sae"]["metrics"] = {"per_layer": {"all": {"train_seconds": timed("08_sae", "train SAEs")}}}
        build["13_superposition_geometry"]["metrics"] = {"sae_quality": {"all": {"train_seconds": timed(
            "13_superposition_geometry", "TopK SAEs")}}}
    return build


def test_statistics_chapters_are_03_to_06_on_ci():
    costs = cost.chapter_costs(load_profile("ci"))
    assert cost.statistics_chapters(costs) == ["03_categorical", "04_gradient", "05_structural", "06_dimensional"]
    # the SAE and fine-tuning chapters hold no host statistics (or a sliver of their FLOPs)
    for name in ("08_sae", "11_steering_flames", "12_harmful_weights", "13_superposition_geometry"):
        assert cost.host_flops(costs[name], warm=True) < 0.01 * costs[name].flops(warm=True)


def test_the_fit_recovers_both_planted_throughputs():
    checked = cost.check(load_profile("ci"), _planted_build(1e11, 5e9))
    assert checked["model_fit"] == "steps"
    assert checked["model_flops"] == pytest.approx(1e11, rel=1e-9)
    assert checked["host_flops"] == pytest.approx(5e9, rel=1e-9)
    assert all(row["time_ratio"] == pytest.approx(1, rel=1e-6) for row in checked["chapters"])
    assert checked["steps"] and all(row["time_ratio"] == pytest.approx(1, rel=1e-9) for row in checked["steps"])
    assert all(row["statistics_gflops"] == pytest.approx(5) for row in checked["chapters"] if row["fits_statistics"])
    assert checked["summary"]["time"]["within_2x"] == checked["summary"]["time"]["n"] == 11  # 01, 07, 14: no work
    assert checked["outliers"] == []


def test_without_step_times_the_model_rate_comes_from_pure_model_chapters():
    checked = cost.check(load_profile("ci"), _planted_build(8e10, 3e9, steps=False))
    assert checked["model_fit"] == "chapters" and checked["steps"] == []
    assert checked["model_flops"] == pytest.approx(8e10, rel=1e-6)
    assert checked["host_flops"] == pytest.approx(3e9, rel=1e-6)


def test_a_chapter_one_statistics_rate_cannot_fit_is_named():
    report = cost.report(_planted_build(1e11, 1e10, slow={"05_structural": 6.0}), ("colab",))
    checked = report["check"]
    assert checked["host_flops"] == pytest.approx(1e10, rel=1e-6)  # the median of 03–06 ignores the one slow one
    [outlier] = checked["outliers"]
    assert outlier["chapter"] == "05_structural" and outlier["factor"] == pytest.approx(6.0, rel=1e-6)
    assert next(r for r in checked["chapters"] if r["chapter"] == "05_structural")["time_ratio"] < 0.5
    own = report["predictions"]["colab"]["at_own_rate"]["05_structural"]
    fitted = next(r for r in report["predictions"]["colab"]["chapters"] if r["chapter"] == "05_structural")
    assert own > 5 * fitted["minutes"]
    text = cost.markdown(report)
    assert "One statistics rate cannot fit 05_structural" in text and "HDBSCAN" in text and "6.0× below" in text


def test_measured_reads_a_builds_ledgers(tmp_path):
    def ledger(name: str, seconds: float, metrics: dict) -> None:
        entry = {"metrics": metrics, "meta": {"seconds": seconds, "peak_rss_mb": 900.0, "machine": {"cpu": "X"}}}
        (tmp_path / f"{name}.json").write_text(json.dumps(entry))

    ledger("02_activations", 20.0, {"smollm2-135m-instruct": {"n_texts": 1000, "seconds_per_1k_texts": 30.0}})
    ledger("08_sae", 150.0, {"per_layer": {"6": {"train_seconds": 70.0}, "12": {"train_seconds": 80.0}}})
    ledger("11_steering_flames", 300.0, {"judge_validation": {"paper's pairwise prompt (api:x)": {
        "beats_chance": False}}})
    ledger("13_superposition_geometry", 400.0, {"go": False, "sae_quality": {"6": {"train_seconds": 20.0}}})
    (tmp_path / "notes.json").write_text(json.dumps({"no": "meta"}))
    build = cost.measured(tmp_path)
    assert set(build) == {"02_activations", "08_sae", "11_steering_flames", "13_superposition_geometry"}
    assert build["08_sae"]["seconds"] == 150.0 and build["08_sae"]["cpu"] == "X"
    assert cost.measured_outcomes(build) == cost.Outcomes(go=False, pairwise_judge_passes=False)
    assert cost.recorded_steps(build) == {
        "02 extract smollm2-135m-instruct": ("02_activations", "extract smollm2-135m-instruct", 30.0),
        "08 train SAEs": ("08_sae", "train SAEs", 150.0),
        "13 TopK SAEs": ("13_superposition_geometry", "TopK SAEs", 20.0)}
    # the outcome changes the predicted work: no go, no filtered fine-tunes
    ci = load_profile("ci")
    go, no_go = (cost.ch13(ci, cost.sizes(ci), cost.Outcomes(go=g)).flops() for g in (True, False))
    assert go > no_go


def test_precision_and_decoding_bounds():
    t4 = cost.t4_machine(1e10)
    assert t4.rate(cost.Step("x", 1.0, dtype="float16")) == cost.T4_PEAK * cost.ACHIEVED
    assert t4.rate(cost.Step("x", 1.0, dtype="bfloat16")) == cost.T4_FP32 * cost.ACHIEVED  # no bf16 on a T4
    assert t4.rate(cost.Step("x", 1.0, cost.HOST)) == 1e10
    # 1000 token steps of a 28-layer model: the launches (28 ms) outweigh reading 1.2 GB at 224 GB/s (5.4 ms)
    decode = cost.Step("decode", 1.0, dtype="float16", decode_steps=1000, step_bytes=1.2e9, step_layers=28)
    assert cost.step_seconds(decode, t4) == pytest.approx(1000 * 28e-3)


def test_budget_flags_follow_the_predictions():
    colab = load_profile("colab")
    make_machine, budget = cost.TARGETS["colab"]
    rows = cost.predict(colab, make_machine(1e10), budget)
    assert [row["chapter"] for row in rows] == list(cost.CHAPTERS)
    for row in rows:
        assert row["minutes_warm"] <= row["minutes"]
        assert ("time > 60 min" in row["over"]) == (row["minutes"] > 60)
        assert ("RAM > 12 GB" in row["over"]) == (row["ram_gb"] > 12)
        assert ("GPU > 15 GB" in row["over"]) == (row["gpu_gb"] > 15)
    tiny = cost.Budget(minutes=None, ram=1e30, gpu=1e30)
    assert not any(row["over"] for row in cost.predict(colab, make_machine(1e10), tiny))


def test_bench_writes_the_cost_section_between_its_markers(tmp_path, monkeypatch, root):
    readme = root / "README.md"
    assert readme.read_text().count(cost.README_MARKERS[0]) == 1 == readme.read_text().count(cost.README_MARKERS[1])
    report = cost.report(_planted_build(1e11, 2e10))
    table = cost.markdown(report)
    assert "**100 GFLOP/s**" in table and "**20.0 GFLOP/s**" in table
    assert "`colab` on a Colab T4" in table and "`paper` on a H100" in table
    assert len(re.findall(r"^\| \d\d_\w+ \|", table, flags=re.M)) == 3 * len(cost.CHAPTERS)
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path))
    (tmp_path / "README.md").write_text("\n".join(["a", *bench.README_MARKERS, "b", *cost.README_MARKERS, "c"]))
    bench.write_readme({"date": "2026-12-07", "machine": "test", "profile": "ci", "chapters": {},
                        **{key: bench.ratio(2.0, 1.0, 3) for key in bench.TARGETS}, "cost_model": report})
    written = (tmp_path / "README.md").read_text()
    assert written == replace_between_markers(replace_between_markers(
        "\n".join(["a", *bench.README_MARKERS, "b", *cost.README_MARKERS, "c"]),
        bench.markdown({"date": "2026-12-07", "machine": "test", "profile": "ci", "chapters": {},
                        **{key: bench.ratio(2.0, 1.0, 3) for key in bench.TARGETS}}), bench.README_MARKERS),
        table, cost.README_MARKERS)
