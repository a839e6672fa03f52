"""The reference comparison on hand-built ledgers: tolerances measured from two builds, families, texts, places where
the two builds disagree, the machine-sensitive listing, and verdicts that differ between builds."""

from __future__ import annotations

import json

import pytest

from helpers import claims, reference
from helpers.reference import FLOOR_ATOL, FLOOR_RTOL, MARGIN


def test_without_a_measured_drift_only_the_floor_is_allowed():
    assert reference.differences({"r": 0.5 + 0.5 * FLOOR_RTOL}, {"r": 0.5}) == []
    assert reference.differences({"r": 0.5001}, {"r": 0.5}) == [
        "metrics.r: 0.5001 differs from 0.5 by more than 5.1e-05"]
    assert reference.differences({"n": 1001}, {"n": 1000}) != []  # the old 5 % would have let a count move by 50


def test_a_number_inside_its_measured_spread_passes_and_one_outside_fails():
    expected, other = {"ari": 0.066}, {"ari": 0.070}  # the emulated machine moved it by 0.004
    allowed = FLOOR_ATOL + FLOOR_RTOL * 0.066 + MARGIN * 0.004
    assert reference.differences({"ari": 0.066 + 0.99 * allowed}, expected, [other]) == []
    assert reference.differences({"ari": 0.066 - 0.99 * allowed}, expected, [other]) == []
    assert reference.differences({"ari": 0.066 + 1.01 * allowed}, expected, [other]) != []
    assert reference.differences({"ari": 0.094}, expected, [other]) != []  # the drift issue 16 saw: beyond 3 × 0.004


NOISE = {"noise": [1.0] * 30}  # a chapter's many numbers that float rounding moves by 1e-6 relative
MOVED = {"noise": [1.000001] * 30}


def test_a_family_shares_its_largest_drift_across_layers_but_not_across_metrics():
    expected = {"by_layer": [0.5, 0.2, 0.1], "by_layer_key": {"3": 0.5, "4": 0.2}, "other_metric": [0.5], **NOISE}
    other = {"by_layer": [0.5, 0.21, 0.1], "by_layer_key": {"3": 0.5, "4": 0.21}, "other_metric": [0.5], **MOVED}
    fine = {"by_layer": [0.52, 0.2, 0.08], "by_layer_key": {"3": 0.52, "4": 0.2}, "other_metric": [0.5], **NOISE}
    assert reference.differences(fine, expected, [other]) == []
    assert reference.differences({**fine, "other_metric": [0.52]}, expected, [other]) != []
    assert reference.drifts(expected, [other]) == {
        "metrics.by_layer[]": pytest.approx(0.01), "metrics.by_layer_key.[]": pytest.approx(0.01),
        "metrics.other_metric[]": 0.0, "metrics.noise[]": pytest.approx(1e-6), "": pytest.approx(1e-6)}


def test_a_family_is_one_metric_across_layers_models_variants_and_lexicons():
    assert reference.family("metrics.gemma3-270m.variants.no_sink.spearman.8.care") == "metrics.*.spearman.[].care"
    assert reference.family("metrics.smollm2-135m-instruct.spearman.12.care") == "metrics.*.spearman.[].care"
    assert reference.family("metrics.smollm2-135m-random-init.external.mfd2.ari[3]") == "metrics.*.ari[]"
    assert reference.family("metrics.claims[2].this_value") == "metrics.claims[].this_value"
    assert reference.family("metrics.variants.gemma3-270m | 05 peak ARI.no_sink") == (
        "metrics.variants.gemma3-270m | 05 peak ARI.no_sink")  # a described row is not a variant name


def test_a_chaotic_chapter_allows_every_number_the_largest_relative_drift_of_any_family():
    expected = {"ari": [0.02, 0.2], "counts": [10.0] * 20, "summary_peak_ari": 0.2}
    other = {"ari": [0.03, 0.2], "counts": [10.2] * 18 + [10.0] * 2, "summary_peak_ari": 0.2}  # counts: 2 %
    assert reference.drifts(expected, [other])[""] == pytest.approx(0.05)  # ari family: 0.01 / 0.2
    assert reference.differences({**expected, "summary_peak_ari": 0.23}, expected, [other]) == []
    assert reference.differences({**expected, "summary_peak_ari": 0.26}, expected, [other]) != []


def test_a_value_undefined_on_one_machine_passes_only_in_a_chaotic_chapter():
    expected = {"ari": [None, 0.05, 0.1, 0.2], "n_clusters": [0, 3, 4, 5]}
    chaotic = {"ari": [None, 0.06, 0.09, 0.25], "n_clusters": [0, 3, 5, 6]}  # moved by 10-25 %
    calm = {"ari": [None, 0.05, 0.1, 0.2000001], "n_clusters": [0, 3, 4, 5]}
    elsewhere = {"ari": [0.03, 0.05, 0.1, 0.2], "n_clusters": [2, 3, 4, 5]}
    assert reference.differences(elsewhere, expected, [chaotic]) == []
    assert reference.differences(elsewhere, expected, [calm]) != []
    assert reference.differences({**elsewhere, "ari": ["n/a", 0.05, 0.1, 0.2]}, expected, [chaotic]) != []


def test_a_chaotic_chapter_lets_every_number_move_by_its_typical_relative_drift():
    expected = {"clusters_by_layer": [18, 20, 22, 24], "n_noise": 300}
    other = {"clusters_by_layer": [19, 21, 22, 24], "n_noise": 300}  # half the numbers moved by about 5 %
    assert reference.differences({"clusters_by_layer": [18, 20, 22, 24], "n_noise": 320}, expected, [other]) == []
    assert reference.differences({"clusters_by_layer": [18, 20, 22, 24], "n_noise": 400}, expected, [other]) != []


def test_exact_comparison_allows_nothing():
    assert reference.differences({"r": 0.5}, {"r": 0.5}, exact=True) == []
    assert reference.differences({"r": 0.5000001}, {"r": 0.5}, [{"r": 0.6}], exact=True) != []
    assert reference.differences({"v": "peak 0.476"}, {"v": "peak 0.4760001"}, exact=True) != []


def test_where_the_two_builds_disagree_in_shape_either_outcome_passes():
    expected = {"verdict": "direction holds (p = 0.04)", "clusters": [3, 4], "go": True}
    other = {"verdict": "not reproduced (p = 0.07)", "clusters": [3, 4, 5], "go": False}
    for actual in (expected, other):
        assert reference.differences(actual, expected, [other]) == []
    assert reference.differences({**expected, "verdict": "reproduced (p = 0.04)"}, expected, [other]) != []
    assert reference.differences({**expected, "clusters": [3]}, expected, [other]) != []
    assert reference.differences({**expected, "clusters": [3, 9]}, expected, [other]) != []


def test_numbers_inside_texts_get_their_texts_measured_drift():
    expected, other = {"v": "peak 0.476 at layer 12"}, {"v": "peak 0.480 at layer 12"}
    assert reference.differences({"v": "peak 0.47 at layer 12"}, expected, [other]) == []
    assert reference.differences({"v": "peak 0.50 at layer 12"}, expected, [other]) != []
    assert reference.differences({"v": "peak 0.476 at layer 13"}, expected, [other]) != []  # 12 never moved
    assert reference.differences({"v": "top 0.476 at layer 12"}, expected, [other]) != []


def test_structure_and_exact_values_are_checked_with_their_paths():
    expected = {"go": False, "layers": [1, 2], "by": {"a": {"x": 1.0}}, "name": "ci", "none": None}
    actual = {"go": True, "layers": [1], "by": {"a": {}, "b": 2}, "name": "ci", "none": 0.0}
    assert sorted(reference.differences(actual, expected, [expected])) == sorted([
        "metrics.go: True != False", "metrics.layers: 1 items, the reference has 2", "metrics.by.a.x: missing",
        "metrics.by.b: not in the reference", "metrics.none: 0.0 != None"])


def test_machine_sensitive_lists_families_beyond_a_thousandth_and_shape_disagreements():
    expected = {"cos": [0.5, 0.6], "ari": [0.066, 0.08], "n_clusters": 18, "verdict": "holds", **NOISE}
    other = {"cos": [0.5000002, 0.6], "ari": [0.07, 0.08], "n_clusters": 18, "verdict": "fails", **MOVED}
    rows = {row["metric"]: row for row in reference.machine_sensitive(expected, [other])}
    assert set(rows) == {"ari[]", "verdict"}  # 2e-7 on a cosine is not; an unmoved count is not
    assert rows["ari[]"]["numbers"] == 2 and rows["ari[]"]["largest drift"] == pytest.approx(0.004)
    assert rows["verdict"]["±"] == 'either "holds" or "fails"'
    assert reference.machine_sensitive(expected, []) == []
    chaotic = reference.machine_sensitive({"ari": [0.02, 0.2], "n_prompts": 63}, [{"ari": [0.03, 0.2], "n_prompts": 63}])
    assert [r["metric"] for r in chaotic] == ["ari[]"]  # a count no machine moved is tested, not listed


def _write(folder, name, entry):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(entry))


def test_save_reference_keeps_every_build_without_timings_and_with_its_fingerprint(tmp_path, monkeypatch):
    from helpers import graph
    from helpers.machine import emulation_env as machine_env

    monkeypatch.setenv("BOOK_ROOT", str(tmp_path))
    monkeypatch.setattr(graph, "source_digests", lambda root, profile: {"02_x": "d1", "03_y": "d1"})
    machine = {"cpu": "x", "torch_capability": "AVX512"}
    _write(tmp_path / "results" / "ci", "02_x", {"chapter": "02_x", "metrics": {"a": 1, "train_seconds": 3.0},
                                                 "meta": {"seconds": 9, "machine": machine}})
    _write(tmp_path / "results" / "ci", "03_y", {"chapter": "03_y", "metrics": {"b": 1}, "meta": {"machine": machine}})
    with pytest.raises(FileNotFoundError, match="SPREAD_CHAPTERS=02-03"):
        reference.save_reference("ci")
    assert not (tmp_path / "reference").exists()  # nothing half written
    emulated = {"cpu": "x", "dispatch": machine_env("avx2")}
    elsewhere = reference.other_machine_dir() / "results" / "ci"

    def emulated_build(name: str, value: float, sources: str) -> None:  # as helpers.book records it
        _write(elsewhere, name, {"chapter": name, "metrics": {"a": value, "train_seconds": 5.0},
                                 "meta": {"machine": emulated}})
        graph.sources_file(elsewhere, name).write_text(sources)

    emulated_build("02_x", 2, "d1")
    emulated_build("03_y", 2, "d1")
    _write(tmp_path / "amd", "02_x", {"chapter": "02_x", "metrics": {"a": 3}, "meta": {"machine": {"cpu": "z"}}})
    first, second = reference.save_reference("ci", also={"a real EPYC": tmp_path / "amd"})
    assert json.loads(first.read_text()) == {
        "chapter": "02_x", "label": "x, native", "machine": machine, "sources": "d1", "metrics": {"a": 1},
        "other_machines": [
            {"label": "emulated avx2", "emulation": "avx2", "machine": emulated, "sources": "d1",
             "metrics": {"a": 2}},
            {"label": "a real EPYC", "emulation": None, "machine": {"cpu": "z"}, "sources": "d1", "metrics": {"a": 3}}]}
    assert [o["label"] for o in json.loads(second.read_text())["other_machines"]] == ["emulated avx2"]
    # the real machine is kept by the next `make reference` while the chapter's sources stay the same …
    reference.save_reference("ci")
    assert [o["label"] for o in json.loads(first.read_text())["other_machines"]] == ["emulated avx2", "a real EPYC"]
    # … and when they change but compute the same numbers on the reference build's machine (within the measured
    # tolerances: carried over to the new sources) …
    monkeypatch.setattr(graph, "source_digests", lambda root, profile: {"02_x": "d2", "03_y": "d1"})
    _write(tmp_path / "results" / "ci", "02_x", {"chapter": "02_x", "metrics": {"a": 1.5},
                                                 "meta": {"seconds": 9, "machine": machine}})
    reference.save_reference("ci")
    carried = json.loads(first.read_text())["other_machines"]
    assert [(o["label"], o["sources"]) for o in carried] == [("emulated avx2", "d2"), ("a real EPYC", "d2")]
    # … but dropped once a change moves the reference build's numbers beyond them: its numbers no longer describe
    # this code (the other builds measured a drift of 2, so a tolerance of about 6)
    monkeypatch.setattr(graph, "source_digests", lambda root, profile: {"02_x": "d3", "03_y": "d1"})
    _write(tmp_path / "results" / "ci", "02_x", {"chapter": "02_x", "metrics": {"a": 9},
                                                 "meta": {"seconds": 9, "machine": machine}})
    with pytest.raises(FileNotFoundError, match="for 02_x .*SPREAD_CHAPTERS=02-03"):
        reference.save_reference("ci")  # the emulated ledger in its folder is of d1: stale, never taken
    emulated_build("02_x", 2, "d3")
    reference.save_reference("ci")
    assert [o["label"] for o in json.loads(first.read_text())["other_machines"]] == ["emulated avx2"]
    # the reference build may be another folder's, with no emulated build beside it: the builds already in the
    # reference from the same sources, its former reference build included, stay as other machines
    reference.save_reference("ci", emulation=None, build=tmp_path / "amd")
    entry = json.loads(first.read_text())
    assert entry["metrics"] == {"a": 3} and entry["label"] == "z, native"
    assert [(o["label"], o["emulation"], o["metrics"]) for o in entry["other_machines"]] == [
        ("x, native", None, {"a": 9}), ("emulated avx2", "avx2", {"a": 2})]


def test_an_emulated_build_of_some_chapters_replaces_only_those_of_the_current_sources(tmp_path, monkeypatch):
    """`make reference SPREAD_CHAPTERS=03-03`: chapter 03 changed and was built again under emulation; 02 did not
    change and keeps the emulated build already in the reference; without a build of 03's new sources nothing is
    written and the message names the range to build."""
    from helpers import graph
    from helpers.machine import emulation_env as machine_env

    monkeypatch.setenv("BOOK_ROOT", str(tmp_path))
    digests = {"02_x": "d1", "03_y": "d1"}
    monkeypatch.setattr(graph, "source_digests", lambda root, profile: dict(digests))
    machine, emulated = {"cpu": "x"}, {"cpu": "x", "dispatch": machine_env("avx2")}
    results, elsewhere = tmp_path / "results" / "ci", reference.other_machine_dir() / "results" / "ci"
    for name in digests:
        _write(results, name, {"chapter": name, "metrics": {"a": 1}, "meta": {"machine": machine}})
        _write(elsewhere, name, {"chapter": name, "metrics": {"a": 2}, "meta": {"machine": emulated}})
        graph.sources_file(elsewhere, name).write_text("d1")
    first, second = reference.save_reference("ci")
    before = first.read_text()
    digests["03_y"] = "d2"  # chapter 03 changes, its numbers far beyond the measured drift
    _write(results, "03_y", {"chapter": "03_y", "metrics": {"a": 50}, "meta": {"machine": machine}})
    with pytest.raises(FileNotFoundError, match=r"for 03_y .*SPREAD_CHAPTERS=03-03"):
        reference.save_reference("ci")
    (elsewhere / "02_x.json").unlink()  # a build of chapter 03 alone: no ledger of 02 in its folder
    _write(elsewhere, "03_y", {"chapter": "03_y", "metrics": {"a": 51}, "meta": {"machine": emulated}})
    graph.sources_file(elsewhere, "03_y").write_text("d2")
    reference.save_reference("ci")
    assert first.read_text() == before  # 02 keeps its emulated build of its unchanged sources
    rebuilt = json.loads(second.read_text())
    assert rebuilt["sources"] == "d2" and [(o["label"], o["metrics"]) for o in rebuilt["other_machines"]] == [
        ("emulated avx2", {"a": 51})]


def _entry(metrics: dict, *others: dict) -> dict:
    """A reference entry whose other machines (labelled o1, o2, …) built `others`."""
    return {"metrics": metrics, "other_machines": [{"label": f"o{i + 1}", "metrics": o} for i, o in enumerate(others)]}


def test_compare_run_counts_measured_and_exact_differences(tmp_path, monkeypatch):
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path))
    _write(tmp_path / "reference" / "ci", "02_x", _entry({"a": 0.5, "b": 1.0, **NOISE}, {"a": 0.51, "b": 1.0, **MOVED}))
    _write(tmp_path / "reference" / "ci", "03_y", {"chapter": "03_y", "metrics": {}})
    _write(tmp_path / "results" / "ci", "02_x", {"chapter": "02_x", "metrics": {"a": 0.52, "b": 2.0, **NOISE}})
    assert reference.compare_run("ci") == [
        {"chapter": "02_x", "differences beyond tolerance": 1, "differences at all": 2,
         "machine-sensitive metrics": 1},
        {"chapter": "03_y", "differences beyond tolerance": None, "differences at all": None,
         "machine-sensitive metrics": 0}]


def test_several_other_machines_pool_their_drifts_and_their_outcomes():
    expected = {"ari": [0.066, 0.08], "verdict": "holds", **NOISE}
    near, far = {"ari": [0.067, 0.08], "verdict": "holds", **MOVED}, {"ari": [0.074, 0.08], "verdict": "fails", **NOISE}
    assert reference.drifts(expected, [near, far])["metrics.ari[]"] == pytest.approx(0.008)  # the larger of two
    assert reference.differences({**expected, "ari": [0.085, 0.08]}, expected, [near, far]) == []
    assert reference.differences({**expected, "ari": [0.085, 0.08]}, expected, [near]) != []
    assert reference.differences({**expected, "verdict": "fails"}, expected, [near, far]) == []  # far saw it
    assert reference.differences({**expected, "verdict": "fails"}, expected, [near]) != []
    rows = {r["metric"]: r for r in reference.machine_sensitive(expected, [near, far])}
    assert rows["verdict"]["±"] == 'either "holds" or "fails"'


def _categorical(cosine: float) -> dict:
    """Chapter 03 metrics of one model whose virtue-vice cosines are `cosine` at every layer (no null stored)."""
    return {"smollm2-135m-instruct": {"virtue_vice_cosine": {str(layer): {"care-harm": cosine} for layer in range(5)}}}


def test_reference_verdicts_pair_the_builds_and_say_where_no_other_machine_built(tmp_path, monkeypatch):
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path))
    assert claims.reference_verdicts("ci") == {}
    _write(tmp_path / "reference" / "ci", "03_categorical", {"metrics": _categorical(0.8)})
    assert claims.reference_verdicts("ci")["MI-1"] == ("reproduced", {})  # not measured, not "the same"
    _write(tmp_path / "reference" / "ci", "03_categorical", _entry(_categorical(0.8), _categorical(0.1),
                                                                   _categorical(0.9)))
    both = claims.reference_verdicts("ci")
    assert both["MI-1"] == ("reproduced", {"o1": "not reproduced", "o2": "reproduced"})
    assert both["MI-3"] == ("not testable at this scale", {})  # chapter 04 has no reference here
    fragile, unmeasured = reference.fragile_and_unmeasured(both)
    assert list(fragile) == ["MI-1"] and "MI-3" in unmeasured


def test_reference_problems_name_the_chapter_the_place_and_a_missing_ledger(tmp_path, monkeypatch):
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path))
    _write(tmp_path / "reference" / "ci", "02_x", _entry({"a": 0.5}, {"a": 0.51}))
    build = tmp_path / "elsewhere"
    _write(build, "02_x", {"metrics": {"a": 0.52}})
    assert reference.reference_problems(build, "ci", ["02_x"]) == []
    _write(build, "02_x", {"metrics": {"a": 0.6}})
    assert reference.reference_problems(build, "ci", ["02_x", "03_y"]) == [
        "02_x: metrics.a: 0.6 differs from 0.5 by more than 0.0301", "03_y: no committed reference"]


def test_the_readme_account_names_the_machines_the_sensitive_metrics_and_the_fragile_verdicts(tmp_path, monkeypatch):
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path))
    _write(tmp_path / "reference" / "ci", "02_x", {"metrics": {"a": 1.0}})
    assert "not built on a second machine" in reference.readme_table("ci", {})
    _write(tmp_path / "reference" / "ci", "02_x", {
        "chapter": "02_x", "machine": {"cpu": "Xeon", "torch_capability": "AVX512", "threads": 2},
        "metrics": {"a": [1.0, 2.0], "b": 5, **NOISE},
        "other_machines": [{"label": "emulated avx2", "emulation": "avx2",
                            "machine": {"cpu": "Xeon", "dispatch": {"MKL_CBWR": "AVX2"}},
                            "metrics": {"a": [1.1, 2.0], "b": 5, **MOVED}}]})
    table = reference.readme_table("ci", {"MI-16": ("direction holds", {"emulated avx2": "not reproduced"}),
                                          "MI-1": ("reproduced", {"emulated avx2": "reproduced"})})
    assert "on Xeon (AVX512 kernels, 2 threads)" in table and "MKL_CBWR=AVX2" in table
    assert "- `emulated avx2`: Xeon" in table and "chapters 02" in table
    assert "| 02_x | 1 | 2 | 3e-06 × value | `a[]` |" in table  # both values of a; the noise gives q = 1e-6
    _write(tmp_path / "reference" / "ci", "04_z", {"chapter": "04_z", "metrics": {"judge | layer 12": 1.0},
                                                   "other_machines": [{"label": "o1", "metrics": {"judge | layer 12": 2.0}}]})
    assert "`judge \\| layer 12`" in reference.readme_table("ci", {})  # a pipe in a key does not split the row
    assert "MI-16 (direction holds here; not reproduced on `emulated avx2`)" in table
    _write(tmp_path / "reference" / "ci", "03_y", {"chapter": "03_y", "metrics": {"a": 1.0}})
    table = reference.readme_table("ci", {"MI-1": ("reproduced", {"emulated avx2": "reproduced"}),
                                          "EG-1": ("direction holds", {})})
    assert "| 03_y | not measured | | | |" in table
    assert "(fragile at this profile's size): none; not measured for EG-1 (their chapters" in table


def test_a_chapter_lists_its_machine_sensitive_metrics_or_says_why_not(tmp_path, monkeypatch):
    from helpers import report

    monkeypatch.setenv("BOOK_ROOT", str(tmp_path))
    assert "not built on a second machine" in report.machine_sensitive("02_x", "ci").data
    _write(tmp_path / "reference" / "ci", "02_x", _entry({"a": 0.5, **NOISE}, {"a": 0.5, **MOVED}))
    assert report.machine_sensitive("02_x", "ci").data.startswith("Every number of this chapter held")
    _write(tmp_path / "reference" / "ci", "02_x", _entry({"a": 0.5, **NOISE}, {"a": 0.6, **MOVED}))
    table = report.machine_sensitive("02_x", "ci")
    assert list(table.index) == ["a"] and table.loc["a", "largest drift"] == pytest.approx(0.1)


def test_another_real_machines_build_joins_the_reference_and_widens_only_what_it_moved(tmp_path, monkeypatch):
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path))
    here, there = {"cpu": "AMD EPYC", "torch_capability": "AVX512"}, {"cpu": "AMD EPYC", "torch_capability": "AVX2"}
    entry = {"chapter": "05_x", "label": "AMD EPYC, native", "machine": here, "sources": "old",
             "metrics": {"clusters": 3, "verdict": "reproduced"},
             "other_machines": [{"label": "emulated avx2", "metrics": {"clusters": 4, "verdict": "reproduced"}}]}
    _write(tmp_path / "reference" / "ci", "05_x", entry)
    _write(tmp_path / "reference" / "ci", "06_y", {**entry, "chapter": "06_y"})
    build = tmp_path / "avx2-machine"
    ledger = {"chapter": "05_x", "meta": {"machine": there, "seconds": 9}, "metrics": {"clusters": 12,
                                                                                      "verdict": "direction holds"}}
    _write(build, "05_x", ledger)
    assert reference.reference_problems(build, "ci", ["05_x"])  # beyond the measured spread: fails before
    (build / "05_x.sources").write_text("new\n")
    assert reference.add_machine("ci", "AMD EPYC without AVX-512, native", build) == [
        tmp_path / "reference" / "ci" / "05_x.json"]  # the chapter it built, no other
    stored = reference.read_reference("05_x", "ci")
    assert stored["metrics"] == entry["metrics"] and stored["label"] == entry["label"]  # the reference build stays
    assert stored["other_machines"][-1] == {"label": "AMD EPYC without AVX-512, native", "emulation": None,
                                            "machine": there, "sources": "new",
                                            "metrics": {"clusters": 12, "verdict": "direction holds"}}
    assert reference.reference_problems(build, "ci", ["05_x"]) == []  # its own numbers and verdict now pass
    reference.add_machine("ci", "AMD EPYC without AVX-512, native", build)  # again: replaced, not doubled
    assert len(reference.read_reference("05_x", "ci")["other_machines"]) == 2
    _write(build, "05_x", {**ledger, "meta": {"machine": here}})
    with pytest.raises(ValueError, match="the reference build's own machine"):
        reference.add_machine("ci", "same", build)
    with pytest.raises(FileNotFoundError, match="no ledger of a chapter"):
        reference.add_machine("ci", "none", tmp_path / "empty")


def test_carry_re_records_only_emulated_builds_whose_numbers_provably_did_not_change(tmp_path, monkeypatch):
    """`helpers.carry`: every chapter got new sources (d2); 02 and 04 compute what they computed, 03 does not, so
    04 (which reads 03) must be built again under the emulation too; 05's emulated ledger is not the one the
    reference stores, 06's native build ran on another machine."""
    from helpers import carry, graph

    monkeypatch.setenv("BOOK_ROOT", str(tmp_path))
    names = ["02_x", "03_y", "04_z", "05_w", "06_v"]
    monkeypatch.setattr(graph, "source_digests", lambda root, profile: {n: "d2" for n in names})
    monkeypatch.setattr(graph, "READS", {**{n: () for n in names}, "04_z": ("03_y",)})
    here, elsewhere = {"cpu": "x"}, {"cpu": "x", "dispatch": {"ATEN_CPU_CAPABILITY": "default"}}
    results, emulated = tmp_path / "results" / "ci", reference.other_machine_dir("scalar") / "results" / "ci"
    for name in names:
        _write(tmp_path / "reference" / "ci", name, {"label": "x, native", "machine": here, "metrics": {"a": 1},
                                                     "other_machines": [{"label": "emulated scalar",
                                                                         "metrics": {"a": 2}}]})
        _write(results, name, {"metrics": {"a": 5 if name == "03_y" else 1},
                               "meta": {"machine": {"cpu": "y"} if name == "06_v" else here}})
        graph.sources_file(results, name).write_text("d2")
        _write(emulated, name, {"metrics": {"a": 3 if name == "05_w" else 2}, "meta": {"machine": elsewhere}})
        graph.sources_file(emulated, name).write_text("d1")
    assert carry.carry_unchanged("ci", "scalar") == ["02_x"]
    assert {n: graph.sources_file(emulated, n).read_text() for n in names} == {
        "02_x": "d2", "03_y": "d1", "04_z": "d1", "05_w": "d1", "06_v": "d1"}
    graph.sources_file(emulated, "03_y").write_text("d2")  # 03 built again under the emulation: 04 now carries
    assert carry.carry_unchanged("ci", "scalar") == ["04_z"]
    graph.sources_file(results, "02_x").unlink()  # without a native build of the current sources, nothing carries
    graph.sources_file(emulated, "02_x").write_text("d1")
    assert carry.carry_unchanged("ci", "scalar") == []
