"""After `make other-machine`: the diagnosis chapters, executed on caches of their own under another machine's
kernel dispatch (`epyc` on an Intel CPU, `avx2` on an AMD one, where `epyc` is native), stay within the tolerances
measured by `make reference`: a change that makes the book hang on the CPU fails here."""

from __future__ import annotations

import json

import pytest

from helpers import machine
from helpers.book import chapters, select
from helpers.reference import reference_problems

EMULATION, SPAN, PROFILE = machine.check_emulation(), "02-03", "ci"  # what the Makefile's other-machine target runs


@pytest.fixture(scope="module")
def ledgers(root):
    folder = root / "_build" / f"other-machine-{EMULATION}" / "results" / PROFILE
    if not folder.is_dir():
        pytest.fail(f"no build under emulated machine {EMULATION}: run `make other-machine` first")
    return folder


def test_every_chapter_ran_under_the_emulated_dispatch(ledgers):
    for chapter in select(chapters(), SPAN):
        path = ledgers / f"{chapter.split('/')[-1]}.json"
        assert path.is_file(), f"{chapter} wrote no ledger under emulated machine {EMULATION}"
        assert json.loads(path.read_text())["meta"]["machine"]["dispatch"] == machine.emulation_env(EMULATION)


def test_the_other_machine_stays_within_the_measured_tolerances(ledgers):
    names = [chapter.split("/")[-1] for chapter in select(chapters(), SPAN)]
    problems = reference_problems(ledgers, PROFILE, names)
    assert not problems, (f"{len(problems)} number(s) beyond the tolerance measured by `make reference` under "
                          f"emulated machine {EMULATION}:\n" + "\n".join(problems[:30]))
