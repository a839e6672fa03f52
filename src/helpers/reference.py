"""Tested numbers: a committed reference ledger per profile (`reference/<profile>/`) and a tolerant comparison of a
fresh run against it. `python -m helpers.reference --profile ci` (what `make reference` runs) rewrites it
deliberately from the last `make book`."""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path
from typing import Any

from helpers import ledger
from helpers.ledger import comparable_metrics
from helpers.paths import atomic_write_text, project_root, results_dir

RTOL, ATOL = 0.05, 0.02  # a changed result, not float noise across machines, should trip the comparison
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")


def _same_text(actual: str, expected: str, rtol: float, atol: float) -> bool:
    """Texts equal once their numbers (compared within the tolerances) are set aside, e.g. a report's values."""
    if _NUMBER.sub("#", actual) != _NUMBER.sub("#", expected):
        return False
    pairs = zip(_NUMBER.findall(actual), _NUMBER.findall(expected))
    return all(math.isclose(float(a.replace(",", "")), float(e.replace(",", "")), rel_tol=rtol, abs_tol=atol)
               for a, e in pairs)


def reference_dir(profile: str) -> Path:
    """Where a profile's reference ledger lives (committed with the repository)."""
    return project_root() / "reference" / profile


def differences(actual: Any, expected: Any, path: str = "", rtol: float = RTOL, atol: float = ATOL) -> list[str]:
    """Every place where `actual` departs from `expected`: numbers beyond |a − e| ≤ atol + rtol·|e|, other values
    unequal (numbers inside texts within the tolerances), missing or extra keys, lists of another length; each named
    by its path."""
    here = path or "metrics"
    if isinstance(expected, bool) or isinstance(actual, bool) or expected is None or actual is None:
        return [] if actual == expected else [f"{here}: {actual!r} != {expected!r}"]
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        ok = math.isclose(actual, expected, rel_tol=rtol, abs_tol=atol)
        return [] if ok else [f"{here}: {actual!r} differs from {expected!r}"]
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = [f"{here}.{k}: missing" for k in expected if k not in actual]
        out += [f"{here}.{k}: not in the reference" for k in actual if k not in expected]
        for key in expected.keys() & actual.keys():
            out += differences(actual[key], expected[key], f"{here}.{key}", rtol, atol)
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        if len(actual) != len(expected):
            return [f"{here}: {len(actual)} items, the reference has {len(expected)}"]
        return [d for i, (a, e) in enumerate(zip(actual, expected)) for d in differences(a, e, f"{here}[{i}]", rtol, atol)]
    if isinstance(expected, str) and isinstance(actual, str):
        return [] if _same_text(actual, expected, rtol, atol) else [f"{here}: {actual!r} != {expected!r}"]
    return [] if actual == expected else [f"{here}: {actual!r} != {expected!r}"]


def save_reference(profile: str) -> list[Path]:
    """Write the comparable metrics of every ledger of the profile's last run as its reference."""
    written = []
    for path in sorted(results_dir(profile).glob("*.json")):
        entry = json.loads(path.read_text())
        target = reference_dir(profile) / path.name
        atomic_write_text(target, json.dumps({"chapter": entry["chapter"], "metrics": comparable_metrics(entry)},
                                             indent=1) + "\n")
        written.append(target)
    if not written:
        raise FileNotFoundError(f"{results_dir(profile)}: no ledger to take as reference; run `make book` first")
    return written


def compare_run(profile: str) -> list[dict[str, Any]]:
    """Per reference chapter: differences of this run's ledger within the tolerances and exactly (None: not run)."""
    rows = []
    for path in sorted(reference_dir(profile).glob("*.json")):
        expected = json.loads(path.read_text())["metrics"]
        entry = ledger.read(path.stem, profile)
        actual = None if entry is None else comparable_metrics(entry)
        rows.append({"chapter": path.stem,
                     "differences beyond tolerance": None if actual is None else len(differences(actual, expected)),
                     "differences at all": None if actual is None else len(differences(actual, expected, rtol=0, atol=0))})
    return rows


def main() -> None:
    """Command line: rewrite the reference ledger of a profile from its last run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="ci")
    for path in save_reference(parser.parse_args().profile):
        print(path)


if __name__ == "__main__":
    main()
