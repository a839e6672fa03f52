"""Before `make reference` builds some chapters again under the emulated machine: re-record as of the current
sources the emulated ledgers of the chapters whose numbers did not change, so that the changed chapters after them
can be built on them (`python -m helpers.carry --profile ci --emulation scalar`).

A change to a helper every chapter imports (or to the profile) gives every chapter new sources, so without this
every emulated ledger is of other sources and `helpers.book` records none built on them: the whole book would have
to be built again under the emulation. A chapter's emulated ledger is carried only where the evidence says its
sources compute what they computed: its native ledger of the current sources equals the reference's native
numbers exactly, on the reference's own machine fingerprint; the emulated ledger is the one the reference stores
for that emulation; and every chapter it reads is of the current sources there too (carried or built).
"""

from __future__ import annotations

import argparse
import json

from helpers import graph, machine
from helpers.ledger import comparable_metrics
from helpers.paths import project_root, results_dir
from helpers.reference import other_machine_dir, read_reference


def carry_unchanged(profile: str, emulation: str) -> list[str]:
    """Re-record as of the current sources (`graph.source_digests`, build order) each emulated ledger of `emulation`
    whose chapter's numbers did not change (module docstring); return the chapters carried."""
    sources = graph.source_digests(project_root(), profile)
    native, emulated = results_dir(profile), other_machine_dir(emulation) / "results" / profile
    carried = []
    for stem, digest in sources.items():
        reference = read_reference(stem, profile)
        if reference is None or graph.of_sources(emulated, stem, digest):
            continue
        if not (graph.of_sources(native, stem, digest) and (emulated / f"{stem}.json").is_file()):
            continue
        entry = json.loads((native / f"{stem}.json").read_text())
        stored = next((o["metrics"] for o in reference.get("other_machines", [])
                       if o["label"] == f"emulated {emulation}"), None)
        if (comparable_metrics(entry) == reference["metrics"]
                and not machine.fingerprint_differences(entry["meta"].get("machine"), reference.get("machine"))
                and stored is not None
                and comparable_metrics(json.loads((emulated / f"{stem}.json").read_text())) == stored
                and all(graph.of_sources(emulated, u, sources.get(u)) for u in graph.upstream(stem))):
            graph.sources_file(emulated, stem).write_text(digest)
            carried.append(stem)
    return carried


def main() -> None:
    """Command line: carry what can be carried and say which chapters were."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--emulation", required=True, help="the emulated machine of `make reference` (SPREAD_MACHINE)")
    args = parser.parse_args()
    carried = carry_unchanged(args.profile, args.emulation)
    print(f"[carry] emulated {args.emulation} ledgers re-recorded as of the current sources: "
          f"{', '.join(c[:2] for c in carried) or 'none'}")


if __name__ == "__main__":
    main()
