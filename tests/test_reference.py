"""The reference comparison: tolerances, structure and paths on hand-made ledgers."""

from __future__ import annotations

import json

from helpers import reference


def test_numbers_within_tolerance_pass_and_beyond_fail():
    assert reference.differences({"r": 0.501}, {"r": 0.5}) == []
    assert reference.differences({"r": 0.60}, {"r": 0.5}) == ["metrics.r: 0.6 differs from 0.5"]
    assert reference.differences({"n": 1000}, {"n": 1040}) == []           # 4 % of a count
    assert reference.differences({"p": 0.03}, {"p": 0.001}) == ["metrics.p: 0.03 differs from 0.001"]


def test_structure_and_exact_values_are_checked_with_their_paths():
    expected = {"go": False, "layers": [1, 2], "by": {"a": {"x": 1.0}}, "name": "ci", "none": None}
    actual = {"go": True, "layers": [1], "by": {"a": {}, "b": 2}, "name": "ci", "none": 0.0}
    assert sorted(reference.differences(actual, expected)) == sorted([
        "metrics.go: True != False", "metrics.layers: 1 items, the reference has 2", "metrics.by.a.x: missing",
        "metrics.by.b: not in the reference", "metrics.none: 0.0 != None"])


def test_save_reference_keeps_metrics_without_timings(tmp_path, monkeypatch):
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path))
    folder = tmp_path / "results" / "ci"
    folder.mkdir(parents=True)
    (folder / "02_x.json").write_text(json.dumps({"chapter": "02_x", "metrics": {"a": 1, "train_seconds": 3.0},
                                                  "meta": {"seconds": 9}}))
    [path] = reference.save_reference("ci")
    assert json.loads(path.read_text()) == {"chapter": "02_x", "metrics": {"a": 1}}


def test_compare_run_counts_tolerant_and_exact_differences(tmp_path, monkeypatch):
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path))
    for folder, metrics in (("reference", {"a": 0.5, "b": 1.0}), ("results", {"a": 0.5001, "b": 2.0})):
        (tmp_path / folder / "ci").mkdir(parents=True)
        (tmp_path / folder / "ci" / "02_x.json").write_text(json.dumps({"chapter": "02_x", "metrics": metrics}))
    (tmp_path / "reference" / "ci" / "03_y.json").write_text(json.dumps({"chapter": "03_y", "metrics": {}}))
    assert reference.compare_run("ci") == [
        {"chapter": "02_x", "differences beyond tolerance": 1, "differences at all": 2},
        {"chapter": "03_y", "differences beyond tolerance": None, "differences at all": None}]


def test_numbers_inside_texts_are_compared_with_the_tolerances():
    expected = {"v": "peak 0.476; final R² -76,951.6 of 63"}
    assert reference.differences({"v": "peak 0.48; final R² -77,000 of 63"}, expected) == []
    assert reference.differences({"v": "peak 0.476; final R² -76,951.6 of 64"}, expected, rtol=0, atol=0) != []
    assert reference.differences({"v": "peak 0.9; final R² -76,951.6 of 63"}, expected) != []
    assert reference.differences({"v": "top 0.476; final R² -76,951.6 of 63"}, expected) != []
    assert reference.differences({"v": "layer 12"}, {"v": "layer 12"}, rtol=0, atol=0) == []
