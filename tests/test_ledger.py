"""The results ledger round-trips, rounds stably, and separates timings from comparable metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import ledger as L


def test_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path))
    book = L.Ledger("99_test", "ci", seed=3)
    book.models = ["m"]
    book.data = {"n": np.int64(5), "sha256": "abc"}
    book.record("per_layer", {0: np.float32(0.5), 1: 1 / 3})
    book.record("peak", np.array([1.0, np.nan]))
    book.record_paper("peak", 0.26, "spec §3.5")
    path = book.save()
    assert path == tmp_path / "results" / "ci" / "99_test.json"
    entry = L.load("99_test", "ci")
    assert entry["metrics"] == {"per_layer": {"0": 0.5, "1": 0.333333}, "peak": [1.0, None]}
    assert entry["paper"]["peak"] == {"value": 0.26, "source": "spec §3.5"}
    assert entry["data"] == {"n": 5, "sha256": "abc"}
    assert entry["meta"]["seed"] == 3 and entry["meta"]["seconds"] >= 0
    assert {"cpu", "torch_capability", "torch_build", "threads", "dispatch"} <= entry["meta"]["machine"].keys()
    assert json.loads(path.read_text()) == entry
    assert not list(path.parent.glob(".*.tmp")), "no temporary file left behind"


def test_rounding_keeps_six_significant_digits():
    assert L.to_jsonable(123456.789) == 123457.0
    assert L.to_jsonable(0.000123456789) == 0.000123457
    assert L.to_jsonable(-2.5) == -2.5


def test_unstorable_values_raise():
    with pytest.raises(TypeError, match="cannot store"):
        L.to_jsonable(object())


def test_comparable_metrics_drop_only_timings():
    entry = {"metrics": {"m": {"n_texts": 3, "seconds_per_1k_texts": 9.1}, "train_seconds": 2, "x": [1]}}
    assert L.comparable_metrics(entry) == {"m": {"n_texts": 3}, "x": [1]}


def test_missing_entry_names_the_chapter(tmp_path, monkeypatch):
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="run chapter 42_none with profile ci"):
        L.load("42_none", "ci")


def test_peak_rss_is_this_process_not_an_inherited_high_water_mark():
    import subprocess
    import sys

    # The parent is a fresh interpreter too: in the test process, memory earlier tests freed (and an allocator kept
    # resident) could hold the 400 MB, and resident memory would not grow.
    parent = """
import subprocess, sys
import numpy as np
from helpers.ledger import peak_rss_mb, rss_mb
before = rss_mb()
big = np.ones(50_000_000)  # 400 MB resident in this (parent) process
child = subprocess.run([sys.executable, "-c", "from helpers.ledger import peak_rss_mb; print(peak_rss_mb())"],
                       capture_output=True, text=True, check=True)
grown, peak = rss_mb() - before, peak_rss_mb()
del big
print(grown, peak, float(child.stdout), rss_mb())
"""
    grown, peak, child_peak, after = map(float, subprocess.run(
        [sys.executable, "-c", parent], capture_output=True, text=True, check=True).stdout.split())
    assert peak > 400 and grown > 350
    assert child_peak < 300, "a fresh interpreter's peak must not include its parent's 400 MB"
    assert after < peak - 350, "resident memory now falls back; the peak stays"
