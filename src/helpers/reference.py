"""Tested numbers: a committed reference ledger per profile (`reference/<profile>/`) and a comparison of a fresh run
against it whose tolerances are measured, not guessed.

`make reference` builds the book twice, once as is and once under an emulated other machine (`helpers.machine`:
other kernel code paths of ATen, MKL and oneDNN, on caches of its own), and stores both builds' metrics with their
machine fingerprints; builds of the same sources on real other machines can be added beside them (`--also`). A
number is then allowed `tolerance(value, drift, q)`: a small floor (what the 6 significant digits of the ledger can
show, times ten) plus MARGIN times the larger of the largest drift between the reference build and any other build
within its *family* (one metric across layers, models, pooling variants and lexicons) and its chapter's relative
drift `q` times the value, since a few machines are a small sample of how far another CPU moves a number. Where
the builds disagree on anything that is not a number (a verdict, a list's length, a flag), any build's outcome is
accepted and the place is machine-sensitive. `python -m helpers.reference --profile ci` writes the reference from
the last builds, and the README's account of it.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from helpers import ledger
from helpers.ledger import comparable_metrics
from helpers.machine import check_emulation, emulation_of, is_native
from helpers.models import REGISTRY
from helpers.paths import atomic_write_text, project_root, replace_between_markers, results_dir

FLOOR_RTOL, FLOOR_ATOL = 1e-4, 1e-6  # the floor: ten times the rounding of a 6-significant-digit ledger
MARGIN = 3.0  # a few machines are a small sample of the drift: another CPU may move a number further
CHAPTER_QUANTILE = 0.9  # a number the other machines left alone may move like 9 in 10 of those they moved
CHAOTIC = 0.01  # a chapter relative drift of 1 % or more: HDBSCAN re-draws clusters, an ARI may be undefined
SENSITIVE_RTOL = 1e-3  # a tolerance beyond 0.1 % of the value: its third significant digit may change elsewhere
EMULATION = "avx2"  # the emulated machine whose build the reference's spreads come from (`helpers.machine`)
README_MARKERS = ("<!-- machine:start -->", "<!-- machine:end -->")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")


def _is_number(value: Any) -> bool:
    """A JSON number (booleans are not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numbers(text: str) -> list[float]:
    """The numbers written in a text, in order."""
    return [float(n.replace(",", "")) for n in _NUMBER.findall(text)]


def family(path: str) -> str:
    """A number's family: one metric across layers, models, pooling variants and external lexicons: list positions
    and numeric keys pooled, model names and `variants.<name>` / `external.<name>` levels dropped
    (`metrics.gemma3-270m.variants.no_sink.spearman.8.care` → `metrics.*.spearman.[].care`)."""
    path = re.sub(r"\[\d+\]|(?<=\.)-?\d+(?=\.|$)", "[]", path)
    path = re.sub(r"\.(?:variants|external)\.\w+(?=\.|\[|$)", "", path)
    return re.sub(rf"(?<=\.)(?:{'|'.join(map(re.escape, sorted(REGISTRY, key=len, reverse=True)))})(?=\.|\[|$)", "*",
                  path)


def tolerance(value: float, drift: float, relative: float = 0.0) -> float:
    """How far another machine may move `value`, whose family drifted by `drift` and whose chapter's numbers by a
    typical `relative` drift between the two reference builds."""
    return FLOOR_ATOL + FLOOR_RTOL * abs(value) + MARGIN * max(drift, relative * abs(value))


def same_shape(a: Any, b: Any) -> bool:
    """Whether two builds agree on everything but the numbers at this node: same kind, keys, lengths, texts once
    their numbers are set aside, equal flags."""
    if _is_number(a) and _is_number(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys()
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b)
    if isinstance(a, str) and isinstance(b, str):
        return _NUMBER.sub("#", a) == _NUMBER.sub("#", b)
    return a == b


def _pairs(ref: Any, other: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
    """Every (path, reference value, other build's value) pair the two builds share, down to the leaves; a node
    where they disagree in shape is yielded once, with its path, and not entered."""
    if not same_shape(ref, other):
        yield path, ref, other
    elif isinstance(ref, dict):
        for key in ref:
            yield from _pairs(ref[key], other[key], f"{path}.{key}")
    elif isinstance(ref, list):
        for i, (r, o) in enumerate(zip(ref, other)):
            yield from _pairs(r, o, f"{path}[{i}]")
    else:
        yield path, ref, other


def drifts(ref: Any, others: list[Any]) -> dict[str, float]:
    """The largest |reference − other build| of each family of numbers over the other builds (texts' numbers not
    included), and under key "" the chapter's relative drift: the CHAPTER_QUANTILE of |r − o| / |r| over its
    numbers that moved on some build (float noise moves chapter 03's by 1e-5, rank swaps chapter 04's Spearmans by
    2e-4, HDBSCAN chapter 05's by 15 %), which any number of the chapter may move by, whether or not it moved on
    the machines measured; in a chaotic chapter (CHAOTIC or more), the largest relative drift of any of its
    families (drift / largest |value|)."""
    out: dict[str, float] = {"": 0.0}
    moved, scale = [], {}
    for other in others:
        for path, r, o in _pairs(ref, other, "metrics"):
            if _is_number(r) and _is_number(o):
                name = family(path)
                out[name] = max(out.get(name, 0.0), abs(r - o))
                scale[name] = max(scale.get(name, 0.0), abs(r))
                if r != o and r != 0:
                    moved.append(abs(r - o) / abs(r))
    out[""] = float(np.quantile(moved, CHAPTER_QUANTILE)) if moved else 0.0
    if out[""] >= CHAOTIC:  # clusters re-drawn: any family may move like the one that moved most
        out[""] = max(out[""], *(out[name] / scale[name] for name in scale if scale[name] > 0))
    return out


def _text_differs(actual: str, ref: str, others: list[str], exact: bool, chapter_relative: float = 0.0) -> bool:
    """Whether a text departs from the reference: same words, and each number within the tolerance its position in
    this text drifted by on any other build (pooled as a relative drift over the text's numbers, at least the
    chapter's)."""
    if exact or _NUMBER.sub("#", actual) != _NUMBER.sub("#", ref):
        return actual != ref
    expected = _numbers(ref)
    moved = [_numbers(other) for other in others]  # the same words: as many numbers, in the same places
    spread = [max([abs(e - n[i]) for n in moved], default=0.0) for i, e in enumerate(expected)]
    relative = max([s / abs(e) for s, e in zip(spread, expected) if e] + [chapter_relative])
    return any(abs(a - e) > tolerance(e, max(s, relative * abs(e)))
               for a, e, s in zip(_numbers(actual), expected, spread))


def differences(actual: Any, expected: Any, others: list[Any] | None = None, exact: bool = False,
                path: str = "metrics", family_drift: dict[str, float] | None = None) -> list[str]:
    """Every place where `actual` departs from the reference build `expected`, given the other machines' builds
    `others` (none: the floor alone): numbers beyond their measured `tolerance` (any difference with `exact`),
    texts whose words differ or whose numbers go beyond theirs, missing or extra keys, lists of another length;
    where the reference's builds disagree in shape, matching any one of them is enough."""
    others = others or []
    drift = drifts(expected, others) if family_drift is None else family_drift
    disagreeing = [other for other in others if not same_shape(expected, other)]
    if disagreeing:
        mine = differences(actual, expected, None, exact, path, drift)
        return mine if mine and all(differences(actual, o, None, exact, path, drift) for o in disagreeing) else []
    if {type(expected), type(actual)} in ({type(None), int}, {type(None), float}) and drift[""] >= CHAOTIC:
        return []  # in a chapter whose numbers move by percents, a value may be undefined on one machine only
    if isinstance(expected, bool) or isinstance(actual, bool) or expected is None or actual is None:
        return [] if actual == expected else [f"{path}: {actual!r} != {expected!r}"]
    if _is_number(expected) and _is_number(actual):
        allowed = 0.0 if exact else tolerance(expected, drift.get(family(path), 0.0), drift[""])
        return [] if abs(actual - expected) <= allowed else [
            f"{path}: {actual!r} differs from {expected!r} by more than {allowed:.3g}"]
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = [f"{path}.{k}: missing" for k in expected if k not in actual]
        out += [f"{path}.{k}: not in the reference" for k in actual if k not in expected]
        for key in expected.keys() & actual.keys():
            out += differences(actual[key], expected[key], [o[key] for o in others], exact, f"{path}.{key}", drift)
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        if len(actual) != len(expected):
            return [f"{path}: {len(actual)} items, the reference has {len(expected)}"]
        return [d for i, (a, e) in enumerate(zip(actual, expected))
                for d in differences(a, e, [o[i] for o in others], exact, f"{path}[{i}]", drift)]
    if isinstance(expected, str) and isinstance(actual, str):
        differs = _text_differs(actual, expected, others, exact, drift[""])
        return [f"{path}: {actual!r} != {expected!r}"] if differs else []
    return [] if actual == expected else [f"{path}: {actual!r} != {expected!r}"]


def machine_sensitive(expected: Any, others: list[Any]) -> list[dict[str, Any]]:
    """One row per family of numbers another machine may not reproduce to three significant digits (it moved on
    some other build, and its tolerance exceeds SENSITIVE_RTOL of a value), and per place where a build of the
    reference disagrees in shape with the reference build."""
    rows: dict[str, dict[str, Any]] = {}
    drift = drifts(expected, others)
    for path, r, o in (pair for other in others for pair in _pairs(expected, other, "metrics")):
        name = family(path)
        if _is_number(r) and _is_number(o):
            allowed = tolerance(r, drift[name], drift[""])
            if drift[name] > 0 and allowed > SENSITIVE_RTOL * abs(r):  # it moved somewhere, beyond a thousandth
                row = rows.setdefault(name, {"metric": name.removeprefix("metrics."), "numbers": 0,
                                             "largest drift": drift[name], "±": allowed,
                                             "largest relative ±": 0.0})
                row["numbers"] += 1
                row["±"] = max(row["±"], allowed)
                row["largest relative ±"] = max(row["largest relative ±"], allowed / abs(r) if r else math.inf)
        elif not same_shape(r, o) and (path not in rows or json.dumps(o)[:60] not in rows[path]["±"]):
            seen = rows[path]["±"] if path in rows else f"either {json.dumps(r)[:60]}"
            rows[path] = {"metric": path.removeprefix("metrics."), "numbers": None, "largest drift": None,
                          "±": f"{seen} or {json.dumps(o)[:60]}", "largest relative ±": None}
    return list(rows.values())


def reference_dir(profile: str) -> Path:
    """Where a profile's reference ledger lives (committed with the repository)."""
    return project_root() / "reference" / profile


def read_reference(chapter: str, profile: str) -> dict[str, Any] | None:
    """One chapter's committed reference (`metrics`, `machine`, `other_machines`), or None if there is none."""
    path = reference_dir(profile) / f"{chapter}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def other_metrics(entry: dict[str, Any]) -> list[Any]:
    """The other machines' metrics stored in a reference entry (empty: none measured)."""
    return [other["metrics"] for other in entry.get("other_machines", [])]


def builds(profile: str) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """The reference build as chapter → metrics, and each other machine's build as (its label, chapter → metrics of
    the chapters it measured), in the order the reference lists them."""
    first: dict[str, Any] = {}
    others: dict[str, dict[str, Any]] = {}
    for path in sorted(reference_dir(profile).glob("*.json")):
        entry = json.loads(path.read_text())
        first[path.stem] = entry["metrics"]
        for other in entry.get("other_machines", []):
            others.setdefault(other["label"], {})[path.stem] = other["metrics"]
    return first, list(others.items())


def sensitive_in(chapter: str, profile: str) -> list[dict[str, Any]]:
    """The machine-sensitive families of one chapter's committed reference (empty without a reference)."""
    entry = read_reference(chapter, profile)
    return [] if entry is None else machine_sensitive(entry["metrics"], other_metrics(entry))


def other_machine_dir(emulation: str = EMULATION) -> Path:
    """Where `python -m helpers.book --emulate <emulation>` leaves its caches and ledgers."""
    return project_root() / "_build" / f"other-machine-{emulation}"


def machine_label(fingerprint: dict[str, Any] | None) -> str:
    """A build's name in the reference: its CPU and whether its dispatch was native or an emulated machine's."""
    fp = fingerprint or {}
    name = emulation_of(fp)
    return f"{fp.get('cpu', 'unknown CPU')}, " + (f"emulated {name}" if name else "native")


def save_reference(profile: str, emulation: str | None = EMULATION, also: dict[str, Path] | None = None,
                   build: Path | None = None) -> list[Path]:
    """Write the reference of `profile` from the ledgers of its reference build (`build`, a `results/<profile>/`
    folder; default: this checkout's last `make book`), the last build under emulated machine `emulation` (None:
    none; it may hold some chapters only: a chapter it holds no ledger of the current sources for keeps the
    emulated build of these sources already in the reference, and where there is none nothing is written) and the
    builds in `also` (label → a `results/<profile>/` folder of these same sources built on another
    machine, for the chapters it holds): every build's comparable metrics and machine fingerprint, one file per
    chapter, with the chapter's source digest (`graph.source_digests`). Every build already in the reference,
    its reference build included, is kept as another machine's where it was made from the same source digest and
    no new build takes its label (a real machine measured once stays measured until the chapter changes), or where
    the new sources' numbers on the previous reference build's machine stay within the tolerances those builds
    measured (a change that computes the same numbers, such as a faster statistic, keeps every measured machine)."""
    from helpers import graph  # graph reads the build order from book, which this module's users import

    written = []
    sources = graph.source_digests(project_root(), profile)
    folders = {**({f"emulated {emulation}": other_machine_dir(emulation) / "results" / profile} if emulation else {}),
               **(also or {})}
    paths = sorted((build or results_dir(profile)).glob("*.json"))
    entries, missing = [], []
    for path in paths:
        entry = json.loads(path.read_text())
        digest = sources.get(path.stem)
        others = []
        for label, folder in folders.items():
            # a helpers.book build recorded which sources each ledger is of (`graph.sources_file`): a ledger of
            # other sources is stale; a folder copied from another machine may predate the records: taken as given
            recorded = graph.sources_file(folder, path.stem).is_file()
            if graph.of_sources(folder, path.stem, digest) or (
                    label in (also or {}) and not recorded and (folder / path.name).is_file()):
                other = json.loads((folder / path.name).read_text())
                fingerprint = other["meta"].get("machine")
                others.append({"label": label, "emulation": emulation_of(fingerprint), "machine": fingerprint,
                               "sources": digest, "metrics": comparable_metrics(other)})
        fingerprint = entry["meta"].get("machine")
        previous = read_reference(path.stem, profile) or {}
        earlier = [{"label": machine_label(previous.get("machine")), "emulation": None,
                    **{k: previous.get(k) for k in ("machine", "sources", "metrics")}}] if previous else []
        taken = {o["label"] for o in others} | {machine_label(fingerprint)}  # a build without it leaves the earlier
        metrics = comparable_metrics(entry)
        # new sources whose numbers, on the previous reference build's own machine, stay within the tolerances its
        # other builds measured compute what those builds computed, at the precision the book tests: carried over
        same = (previous.get("label") == machine_label(fingerprint) and "metrics" in previous
                and not differences(metrics, previous["metrics"],
                                    [o["metrics"] for o in previous.get("other_machines", [])]))
        kept = [{**o, "sources": digest} for o in earlier + previous.get("other_machines", [])
                if digest is not None and o["label"] not in taken
                and (o.get("sources") == digest or (same and o.get("sources") == previous.get("sources")))]
        if emulation and f"emulated {emulation}" not in {o["label"] for o in others + kept}:
            missing.append(path.stem)
        entries.append((reference_dir(profile) / path.name,
                        {"chapter": entry["chapter"], "label": machine_label(fingerprint), "machine": fingerprint,
                         "sources": digest, "metrics": metrics, "other_machines": others + kept}))
    if missing:  # checked before anything is written: a reference is never half rewritten
        raise FileNotFoundError(
            f"no build of the current sources under emulated machine {emulation} for {', '.join(missing)} (none "
            f"in its folder, none the reference can carry over); run `make reference SPREAD_CHAPTERS="
            f"{missing[0][:2]}-{paths[-1].stem[:2]}` (the changed chapters and every chapter after them) first")
    for target, content in entries:
        atomic_write_text(target, json.dumps(content, indent=1) + "\n")
        written.append(target)
    if not written:
        raise FileNotFoundError(f"{build or results_dir(profile)}: no ledger to take as reference; run `make book` "
                                "first")
    return written


def add_machine(profile: str, label: str, folder: Path) -> list[Path]:
    """Store under `label`, beside the builds already in the reference of `profile`, a real other machine's build of
    each chapter `folder` (that build's `results/<profile>/`) holds a ledger of: its numbers join the measured
    spreads and its verdicts the fragile check; the reference build and the other builds stay as they are (an
    earlier build under `label` is replaced). A build on the reference build's own machine is refused."""
    from helpers import graph  # graph reads the build order from book, which this module's users import

    written = []
    for path in sorted(reference_dir(profile).glob("*.json")):
        if not (folder / path.name).is_file():
            continue
        entry, built = json.loads(path.read_text()), json.loads((folder / path.name).read_text())
        fingerprint = built["meta"].get("machine")
        if fingerprint == entry.get("machine"):
            raise ValueError(f"{folder / path.name}: built on the reference build's own machine "
                             f"({machine_label(fingerprint)}), not another one")
        record = graph.sources_file(folder, path.stem)
        other = {"label": label, "emulation": emulation_of(fingerprint), "machine": fingerprint,
                 "sources": record.read_text().strip() if record.is_file() else None,
                 "metrics": comparable_metrics(built)}
        entry["other_machines"] = [o for o in entry.get("other_machines", []) if o["label"] != label] + [other]
        written.append((path, entry))
    if not written:
        raise FileNotFoundError(f"{folder}: no ledger of a chapter the {profile} reference holds")
    for path, entry in written:  # checked before anything is written
        atomic_write_text(path, json.dumps(entry, indent=1) + "\n")
    return [path for path, _ in written]


def compare_run(profile: str) -> list[dict[str, Any]]:
    """Per reference chapter: this run's differences beyond the measured tolerances and at all (None: not run), and
    how many families of its numbers another machine may not reproduce."""
    rows = []
    for path in sorted(reference_dir(profile).glob("*.json")):
        committed = json.loads(path.read_text())
        expected, others = committed["metrics"], other_metrics(committed)
        entry = ledger.read(path.stem, profile)
        actual = None if entry is None else comparable_metrics(entry)
        rows.append({"chapter": path.stem,
                     "differences beyond tolerance": None if actual is None else len(
                         differences(actual, expected, others)),
                     "differences at all": None if actual is None else len(differences(actual, expected, exact=True)),
                     "machine-sensitive metrics": len(machine_sensitive(expected, others))})
    return rows


def reference_problems(folder: Path, profile: str, chapters: list[str]) -> list[str]:
    """Every departure, beyond the measured tolerances, of the ledgers of `chapters` in `folder` (a build's
    `results/<profile>/`) from the committed reference, as '<chapter>: <place>: <what>'."""
    problems = []
    for chapter in chapters:
        path, committed = folder / f"{chapter}.json", read_reference(chapter, profile)
        if committed is None or not path.is_file():
            problems.append(f"{chapter}: " + ("no committed reference" if committed is None else f"no ledger {path}"))
            continue
        actual = comparable_metrics(json.loads(path.read_text()))
        problems += [f"{chapter}: {d}" for d in differences(actual, committed["metrics"], other_metrics(committed))]
    return problems


Verdicts = dict[str, tuple[str, dict[str, str]]]  # claim id → (reference build's verdict, other machine → its verdict)


def fragile_and_unmeasured(verdicts: Verdicts) -> tuple[Verdicts, list[str]]:
    """Of the claims' verdicts on the reference's builds (id → the reference build's, and those of the other
    machines that built its chapter): those that differ somewhere (fragile), and those no other machine measured."""
    fragile = {claim: pair for claim, pair in verdicts.items() if any(t != pair[0] for t in pair[1].values())}
    return fragile, [claim for claim, (_, there) in verdicts.items() if not there]


def describe_machine(fingerprint: dict[str, Any] | None) -> str:
    """'CPU (capability kernels, n threads[, dispatch])' for a README line."""
    fp = fingerprint or {}
    dispatch = ", ".join(f"{k}={v}" for k, v in fp.get("dispatch", {}).items())
    return (f"{fp.get('cpu')} ({fp.get('torch_capability')} kernels, {fp.get('threads')} threads"
            + (f", {dispatch}" if dispatch else "") + ")")


def readme_table(profile: str, verdicts: Verdicts) -> str:
    """The README's account of the committed reference: its machines, per chapter the metrics another machine may
    not reproduce to three significant digits, and the claims whose `verdicts` (id → the reference build's, the
    other machines') differ."""
    entries = {path.stem: json.loads(path.read_text()) for path in sorted(reference_dir(profile).glob("*.json"))}
    machines: dict[str, dict[str, Any]] = {}
    for entry in entries.values():
        for other in entry.get("other_machines", []):
            machines.setdefault(other["label"], {"machine": other.get("machine"), "chapters": []})
            machines[other["label"]]["chapters"].append(entry.get("chapter", ""))
    if not machines:
        return f"The `{profile}` reference was not built on a second machine: nothing is measured.\n"
    first = next(iter(entries.values())).get("machine")
    lines = [f"`make reference` built the `{profile}` book on {describe_machine(first)}; the same sources were also "
             "built on:", ""]
    for label, seen in machines.items():
        span = f"{seen['chapters'][0][:2]}–{seen['chapters'][-1][:2]}" if len(seen["chapters"]) > 1 else \
            seen["chapters"][0][:2]
        lines.append(f"- `{label}`: {describe_machine(seen['machine'])}, chapters {span}")
    lines += ["", "Per chapter, the metrics whose band (the largest drift seen on those machines, times three) exceeds "
              "0.1 % of a value:", "",
              "| chapter | machine-sensitive metrics | numbers | band on any number (3q) | for example |",
              "|---|---|---|---|---|"]
    for chapter, entry in entries.items():
        others = other_metrics(entry)
        if not others:
            lines.append(f"| {chapter} | not measured | | | |")
            continue
        rows = machine_sensitive(entry["metrics"], others)
        numeric = [r for r in rows if r["numbers"] is not None]
        chapter_band = MARGIN * drifts(entry["metrics"], others)[""]
        lines.append(f"| {chapter} | {len(rows)} | {sum(r['numbers'] for r in numeric)} | {chapter_band:.2g} × value | "
                     + ", ".join(f"`{r['metric']}`".replace("|", "\\|") for r in rows[:3])  # a pipe would end the cell
                     + (" …" if len(rows) > 3 else "") + " |")
    flips, unmeasured = fragile_and_unmeasured(verdicts)
    lines += ["", "Verdicts of chapter 14 that differ between the builds (fragile at this profile's size): "
              + ("; ".join(f"{claim} ({here} here; " + ", ".join(f"{v} on `{label}`" for label, v in there.items()
                                                                 if v != here) + ")"
                           for claim, (here, there) in flips.items()) or "none")
              + (f"; not measured for {', '.join(unmeasured)} (their chapters were not built elsewhere)."
                 if unmeasured else ".")]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Command line: rewrite the reference ledger of a profile from its last builds, and the README's account."""
    from helpers import claims  # claims reads the reference: imported here, not at the top

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--emulation", default=EMULATION,
                        help="the emulated machine of the second build ('none': no emulated build)")
    parser.add_argument("--build", type=Path, help="the reference build's ledgers (default: the last make book)")
    parser.add_argument("--also", action="append", default=[], metavar="LABEL=FOLDER",
                        help="also store the ledgers in FOLDER (results/<profile>/ of a build of the same sources on "
                             "another machine) under LABEL; repeatable")
    parser.add_argument("--add-machine", metavar="LABEL=FOLDER",
                        help="only add the ledgers in FOLDER, built on another real machine, to the reference under "
                             "LABEL (the reference build and its other builds kept)")
    args = parser.parse_args()
    if args.add_machine:
        label, sep, folder = args.add_machine.partition("=")
        if not sep or not Path(folder).is_dir():
            parser.error(f"--add-machine {args.add_machine!r}: expected LABEL=FOLDER with an existing folder")
        written = add_machine(args.profile, label, Path(folder))
    else:
        also = {}
        for item in args.also:
            label, sep, folder = item.partition("=")
            if not sep or not Path(folder).is_dir():
                parser.error(f"--also {item!r}: expected LABEL=FOLDER with an existing folder of ledgers")
            also[label] = Path(folder)
        emulation = None if args.emulation == "none" else args.emulation
        if emulation is not None and is_native(emulation):
            parser.error(f"--emulation {emulation}: that is this CPU's own dispatch (no AVX-512, or an AMD CPU for "
                         f"epyc), so its build rounds exactly as the native one and would measure a spread of zero; "
                         f"build the reference on a CPU with AVX-512, or name another emulation (make reference "
                         f"SPREAD_MACHINE={check_emulation()})")
        written = save_reference(args.profile, emulation, also, args.build)
    for path in written:
        print(path)
    if args.profile == "ci":
        readme = project_root() / "README.md"
        table = readme_table(args.profile, claims.reference_verdicts(args.profile))
        atomic_write_text(readme, replace_between_markers(readme.read_text(), table, README_MARKERS))


if __name__ == "__main__":
    main()
