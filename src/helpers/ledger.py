"""The results ledger: every chapter's headline numbers in `results/<profile>/<chapter>.json` (DESIGN.md §7)."""

from __future__ import annotations

import json
import math
import platform
import resource
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from helpers import machine, netguard
from helpers.paths import atomic_write_text, results_dir

SIGNIFICANT_DIGITS = 6
TIMING_KEYS = frozenset({"seconds_per_1k_texts", "train_seconds"})
_VERSIONED = ("torch", "transformers", "transformer-lens", "sae-lens", "scikit-learn", "numpy", "pandas")


def _round(value: float) -> float:
    """Round to `SIGNIFICANT_DIGITS` significant digits so the ledger is stable across runs and platforms."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, SIGNIFICANT_DIGITS - 1 - int(math.floor(math.log10(abs(value)))))


def to_jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and nested dicts into plain JSON values (floats rounded, NaN → None)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return None if math.isnan(value) else _round(value)
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"cannot store {type(value).__name__} in the ledger: {value!r}")


def _status_mb(field: str) -> float | None:
    """A memory field of Linux's /proc/self/status (e.g. VmRSS, VmHWM) in MB; None where /proc is absent."""
    status = Path("/proc/self/status")
    if not status.is_file():
        return None
    line = next(line for line in status.read_text().splitlines() if line.startswith(f"{field}:"))
    return int(line.split()[1]) / 1024.0


def rss_mb() -> float:
    """Resident memory of this process now, in MB (VmRSS; ru_maxrss, the peak, where /proc is absent)."""
    now = _status_mb("VmRSS")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0 if now is None else now


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB: Linux's VmHWM (ru_maxrss would carry a parent's
    high-water mark across exec, e.g. into a spawned benchmark process), ru_maxrss where /proc is absent."""
    peak = _status_mb("VmHWM")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0 if peak is None else peak


class Ledger:
    """Collects one chapter's metrics, the paper's values and run metadata, then saves them atomically."""

    def __init__(self, chapter: str, profile: str, seed: int = 0) -> None:
        self.chapter, self.profile, self.seed = chapter, profile, seed
        self.models: list[str] = []
        self.data: dict[str, Any] = {}
        self.metrics: dict[str, Any] = {}
        self.paper: dict[str, Any] = {}
        self.figures: list[str] = []
        self._start = time.perf_counter()

    def record(self, metric: str, value: Any) -> None:
        """Store one metric (a number, list or nested dict)."""
        self.metrics[metric] = to_jsonable(value)

    def record_paper(self, metric: str, value: Any, source: str) -> None:
        """Store the paper's value for a metric and where it comes from (spec section)."""
        self.paper[metric] = {"value": to_jsonable(value), "source": source}

    def path(self) -> Path:
        """Where this chapter's ledger file lives."""
        return entry_path(self.chapter, self.profile)

    def as_dict(self) -> dict[str, Any]:
        """The ledger entry as a JSON-ready dict."""
        versions = {}
        for name in _VERSIONED:
            try:
                versions[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                versions[name] = None
        return {
            "chapter": self.chapter, "profile": self.profile, "models": self.models, "data": to_jsonable(self.data),
            "metrics": self.metrics, "paper": self.paper,
            "meta": {"seed": self.seed, "seconds": round(time.perf_counter() - self._start, 2),
                     "peak_rss_mb": round(peak_rss_mb(), 1), "python": platform.python_version(),
                     "versions": versions, "machine": machine.fingerprint(), "figures": self.figures,
                     "remote_network_blocked": netguard.active(),
                     "network_guard_inherited": netguard.inherited()},
        }

    def save(self) -> Path:
        """Write the ledger file atomically and return its path."""
        path = self.path()
        atomic_write_text(path, json.dumps(self.as_dict(), indent=1, sort_keys=False) + "\n")
        return path


def entry_path(chapter: str, profile: str) -> Path:
    """Where one chapter's ledger entry for a profile lives."""
    return results_dir(profile) / f"{chapter}.json"


def read(chapter: str, profile: str) -> dict[str, Any] | None:
    """One chapter's ledger entry, or None if the chapter has not run with this profile."""
    path = entry_path(chapter, profile)
    return json.loads(path.read_text()) if path.is_file() else None


def load(chapter: str, profile: str) -> dict[str, Any]:
    """One chapter's ledger entry, which must exist (a later chapter reading an earlier one's)."""
    entry = read(chapter, profile)
    if entry is None:
        raise FileNotFoundError(f"{entry_path(chapter, profile)}: no ledger entry; run chapter {chapter} with "
                                f"profile {profile} first")
    return entry


def comparable_metrics(entry: dict[str, Any]) -> Any:
    """A ledger entry's metrics without timing keys (`TIMING_KEYS`), for run-to-run comparison."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in TIMING_KEYS}
        return value
    return strip(entry["metrics"])
