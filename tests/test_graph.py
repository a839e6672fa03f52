"""The chapter graph: which chapters a build re-executes after one file changes, on a hand-built book."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers import graph
from helpers.book import chapters

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ["notebooks/01_moral_vectors", "notebooks/02_activations", "notebooks/05_structural",
            "notebooks/12_harmful_weights"]
ENV = {"profile": "ci", "machine": "x"}


def notebook(code: str) -> str:
    """A minimal paired .ipynb holding one code cell."""
    return json.dumps({"cells": [{"cell_type": "markdown", "source": ["from helpers import nothing\n"]},
                                 {"cell_type": "code", "source": [code]}], "metadata": {}, "nbformat": 4})


@pytest.fixture
def book(tmp_path: Path) -> Path:
    """A book of four chapters: 01 and 12 import `paths`, 02 and 05 import `activations` (which imports `paths`)."""
    helpers = tmp_path / "src" / "helpers"
    (helpers / "data" / "files").mkdir(parents=True)
    (helpers / "__init__.py").write_text("")
    (helpers / "paths.py").write_text("ROOT = 1\n\n\ndef threads(p):\n    return p.threads\n")
    (helpers / "activations.py").write_text("from helpers.paths import ROOT\n")
    (helpers / "data" / "__init__.py").write_text("")
    (helpers / "data" / "files" / "sample.tsv").write_text("a\tb\n")
    (tmp_path / "notebooks").mkdir()
    code = {"01_moral_vectors": "from helpers import paths", "02_activations": "from helpers import activations",
            "05_structural": "import helpers.activations\nfrom helpers.data import files",
            "12_harmful_weights": "from helpers import paths as p\nshare = P.prune_share"}
    for stem, source in code.items():
        (tmp_path / "notebooks" / f"{stem}.ipynb").write_text(notebook(source))
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "ci.yaml").write_text("threads: 2\nprune_share: 0.3\nsae_lr: 0.001\n")
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    (tmp_path / "reference" / "ci").mkdir(parents=True)
    (tmp_path / "reference" / "ci" / "05_structural.json").write_text("{}")
    return tmp_path


def built(book: Path) -> tuple[Path, Path]:
    """Stamp every chapter as executed with its current digest, with an executed copy and a ledger."""
    stage, results = book / "_build" / "stage", book / "results" / "ci"
    results.mkdir(parents=True, exist_ok=True)
    for chapter, digest in graph.digests(book, CHAPTERS, "ci", ENV).items():
        (stage / chapter).parent.mkdir(parents=True, exist_ok=True)
        graph.stamp_file(stage, chapter).write_text(digest)
        (stage / f"{chapter}.ipynb").write_text("{}")
        (results / f"{Path(chapter).name}.json").write_text("{}")
    return stage, results


def stale(book: Path, stage: Path, results: Path, env: dict = ENV) -> list[str]:
    """The chapter numbers a build would execute now."""
    return [Path(c).name[:2] for c in graph.to_execute(stage, results, graph.digests(book, CHAPTERS, "ci", env))]


def test_a_built_book_executes_nothing_and_a_fresh_one_everything(book: Path) -> None:
    assert stale(book, book / "_build" / "stage", book / "results" / "ci") == ["01", "02", "05", "12"]
    stage, results = built(book)
    assert stale(book, stage, results) == []


def test_touching_one_notebook_reexecutes_it_and_the_chapters_that_read_it(book: Path) -> None:
    stage, results = built(book)
    path = book / "notebooks" / "02_activations.ipynb"
    path.write_text(path.read_text().replace("activations", "activations, paths"))
    assert stale(book, stage, results) == ["02", "05"]  # 05 reads 02's caches; 01 and 12 do not


def test_a_helper_change_reaches_every_chapter_that_imports_it_transitively(book: Path) -> None:
    stage, results = built(book)
    (book / "src" / "helpers" / "activations.py").write_text("from helpers.paths import ROOT\nX = 2\n")
    assert stale(book, stage, results) == ["02", "05"]
    (book / "src" / "helpers" / "paths.py").write_text("ROOT = 2\n")
    assert stale(book, stage, results) == ["01", "02", "05", "12"]  # 02 and 05 import it through activations


def test_data_files_reference_profile_and_environment_are_inputs(book: Path) -> None:
    stage, results = built(book)
    (book / "src" / "helpers" / "data" / "files" / "sample.tsv").write_text("a\tc\n")
    assert stale(book, stage, results) == ["05"]  # the only chapter importing the data package


def test_its_own_reference_file_the_profile_and_the_machine_rerun_a_chapter(book: Path) -> None:
    stage, results = built(book)
    sources = graph.digests(book, CHAPTERS, "ci", ENV, rendered=False)
    shown = book / "reference" / "ci" / "05_structural.json"
    shown.write_text('{"metrics": {}, "sources": "a", "other_machines": [{"metrics": {}, "sources": "a"}]}')
    assert stale(book, stage, results) == ["05"]
    built(book)
    shown.write_text('{"metrics": {}, "sources": "b", "other_machines": [{"metrics": {}, "sources": "b"}]}')
    assert stale(book, stage, results) == []  # re-stamped source digests change nothing a page shows
    assert graph.digests(book, CHAPTERS, "ci", ENV, rendered=False) == sources  # a ledger never depends on it
    (book / "params" / "ci.yaml").write_text("threads: 1\nprune_share: 0.3\nsae_lr: 0.001\n")
    assert stale(book, stage, results) == ["01", "02", "05", "12"]
    assert stale(book, stage, results, {**ENV, "machine": "y"}) == ["01", "02", "05", "12"]


def test_a_profile_key_reruns_only_the_chapters_whose_code_names_it(book: Path) -> None:
    stage, results = built(book)
    params = book / "params" / "ci.yaml"
    params.write_text("threads: 2\nprune_share: 0.5\nsae_lr: 0.001\n")
    assert stale(book, stage, results) == ["12"]  # only chapter 12's own code reads P.prune_share
    stage, results = built(book)
    params.write_text("# a comment\nthreads: 2\nprune_share: 0.5\nsae_lr: 0.01\nnew_key: 1\n")
    assert stale(book, stage, results) == []  # no chapter names sae_lr or new_key: nothing they can read changed
    params.write_text("threads: 3\nprune_share: 0.5\nsae_lr: 0.01\n")
    assert stale(book, stage, results) == ["01", "02", "05", "12"]  # every chapter imports paths, which reads it


def test_no_code_reads_a_profile_key_by_name_at_run_time() -> None:
    """`graph.profile_read` finds the keys a chapter can read as attributes in its code; a key read through getattr,
    asdict or vars would escape it, so such reads are refused."""
    dynamic = re.compile(r"\b(getattr|asdict|vars|fields|replace)\(\s*(P|p|profile|prof)\b")
    files = [*(ROOT / "src" / "helpers").rglob("*.py"), *(ROOT / "notebooks").rglob("*.py")]
    offenders = [f"{path.relative_to(ROOT)}:{n}" for path in files
                 for n, line in enumerate(path.read_text().splitlines(), 1) if dynamic.search(line)]
    assert not offenders, offenders


def test_a_missing_ledger_or_executed_copy_or_a_failed_run_reexecutes(book: Path) -> None:
    stage, results = built(book)
    (results / "12_harmful_weights.json").unlink()
    (stage / "notebooks" / "01_moral_vectors.ipynb").unlink()
    graph.stamp_file(stage, "notebooks/05_structural").unlink()  # what an execution that raised leaves
    assert stale(book, stage, results) == ["01", "05", "12"]


def test_every_chapter_of_the_book_declares_what_it_reads_and_reads_only_earlier_ones() -> None:
    names = [Path(c).name for c in chapters(ROOT)]
    assert list(graph.READS) == names
    for position, name in enumerate(names):
        assert set(graph.READS[name]) <= set(names[:position]), name
    with pytest.raises(KeyError, match="not in helpers.graph.READS"):
        graph.digests(ROOT, ["notebooks/99_new"], "ci", ENV)


def test_imports_are_read_from_code_not_from_prose(book: Path) -> None:
    package = book / "src" / "helpers"
    source = ("from helpers import paths as p, activations\nimport helpers.data\nfrom helpers.nope import x\n"
              "def main():\n    from helpers import claims\n")  # a command line's imports are not a chapter's
    assert graph.imported_helpers(source, package) == {"paths", "activations", "data"}
    assert graph.notebook_code(book / "notebooks" / "01_moral_vectors.ipynb") == "from helpers import paths"


def test_exercise_pages_run_like_chapters_but_need_no_ledger(tmp_path) -> None:
    page = "notebooks/exercises/E9_example"
    assert graph.is_exercise(page) and not graph.is_exercise("notebooks/04_gradient")
    stage, results = tmp_path / "stage", tmp_path / "results"
    (stage / "notebooks" / "exercises").mkdir(parents=True)
    (stage / f"{page}.ipynb").write_text("{}")
    graph.stamp_file(stage, page).write_text("d")
    assert graph.to_execute(stage, results, {page: "d"}) == []  # no ledger asked of an exercise page
    assert graph.to_execute(stage, results, {page: "e"}) == [page]


def test_hide_injected_parameters_tags_only_papermills_cell(tmp_path) -> None:
    import json

    from helpers.book import hide_injected_parameters

    cells = [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "profile = 'ci'"},
             {"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}, "source": "# Parameters"}]
    (tmp_path / "page.ipynb").write_text(json.dumps({"cells": cells}))
    hide_injected_parameters(tmp_path / "page.ipynb")
    hide_injected_parameters(tmp_path / "page.ipynb")  # idempotent
    tags = [c["metadata"]["tags"] for c in json.loads((tmp_path / "page.ipynb").read_text())["cells"]]
    assert tags == [["parameters"], ["injected-parameters", "remove-cell"]]


def _fake_pages(book: Path, monkeypatch, polls: dict[str, int], fails: str = "") -> list[tuple[str, str]]:
    """Replace each page's process by one that is busy for `polls[number]` polls (default 1) and then writes its
    executed copy and ledger (or exits 1 for chapter `fails`); return the log of ("start"/"end", number) events."""
    import types

    from helpers import book as book_module

    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n"
                                   + "".join(f"- file: {c}\n" for c in CHAPTERS))
    monkeypatch.setenv("BOOK_ROOT", str(book))
    monkeypatch.delenv("BOOK_OUTPUT_ROOT", raising=False)
    monkeypatch.setattr(book_module, "load_profile", lambda profile: types.SimpleNamespace(threads=2))
    monkeypatch.setattr(book_module, "build_environment", lambda profile: ENV)
    monkeypatch.setattr(book_module.time, "sleep", lambda seconds: None)
    events = []

    def fake_start(profile, source, target, log):
        number, left = Path(source).stem[:2], [polls.get(Path(source).stem[:2], 1)]
        events.append(("start", number))

        def poll():
            left[0] -= 1
            if left[0] > 0:
                return None
            if ("end", number) not in events:
                events.append(("end", number))
                if number != fails:
                    Path(target).parent.mkdir(parents=True, exist_ok=True)
                    Path(target).write_text("{}")
                    (book / "results" / "ci").mkdir(parents=True, exist_ok=True)
                    (book / "results" / "ci" / f"{Path(source).stem}.json").write_text("{}")
            process.returncode = 1 if number == fails else 0
            return process.returncode

        process = types.SimpleNamespace(poll=poll, returncode=None)
        return process

    monkeypatch.setattr(book_module, "start_page", fake_start)
    return events


def test_a_ledger_is_recorded_as_of_its_sources_only_when_what_it_read_was_too(book: Path, monkeypatch, capsys):
    """`book.execute` records each chapter's source digest beside its ledger; a chapter built from outputs of an
    upstream chapter that are not of its current sources gets no record, and a chapter without a current record is
    executed again even when its build digest did not change (`make reference SPREAD_CHAPTERS=…` relies on it)."""
    from helpers import book as book_module

    events = _fake_pages(book, monkeypatch, {})
    stage, results = book / "_build" / "stage", book / "results" / "ci"

    def execute(span=None) -> list[str]:
        events.clear()
        book_module.execute("ci", book, stage, span)
        return [number for event, number in events if event == "start"]

    assert execute() == ["01", "02", "05", "12"]
    sources = graph.source_digests(book, "ci")
    assert all(graph.of_sources(results, Path(c).name, sources[Path(c).name]) for c in CHAPTERS)
    assert execute() == []
    (book / "notebooks" / "01_moral_vectors.ipynb").write_text(notebook("from helpers import paths  # changed"))
    assert execute("05") == ["05"]  # it read chapter 02's outputs, which are of 01's old sources
    assert "05_structural read outputs of 01_moral_vectors, 02_activations" in capsys.readouterr().out
    assert not graph.sources_file(results, "05_structural").exists()
    assert execute("01-02") == ["01", "02"]
    assert execute("05") == ["05"]  # its build digest is unchanged, its record missing: executed again
    assert graph.of_sources(results, "05_structural", graph.source_digests(book, "ci")["05_structural"])
    assert execute("05") == []


def test_the_next_page_waits_for_what_it_reads_and_starts_the_longest_chain_first() -> None:
    every = [f"notebooks/{c}" for c in graph.READS] + ["notebooks/exercises/E1_cosine"]
    first = graph.next_page(every, [])
    assert first == "notebooks/01_moral_vectors"  # 13 chapters read it
    rest = [page for page in every if page != first]
    assert graph.next_page(rest, [first]) == "notebooks/12_harmful_weights"  # reads nothing; the report reads it
    after_02 = [page for page in rest if page[10:12] not in ("02", "12")]
    assert graph.next_page(after_02, []) == "notebooks/08_sae"  # 09, 10, 11, 13, 14 read it; 03 only 04, 07, 14
    assert graph.next_page(["notebooks/09_moral_features", "notebooks/13_superposition_geometry"],
                           ["notebooks/08_sae"]) is None  # both read the running chapter 08
    assert graph.next_page(["notebooks/04_gradient", "notebooks/exercises/E1_cosine"],
                           ["notebooks/03_categorical"]) == "notebooks/exercises/E1_cosine"
    assert graph.downstream("12_harmful_weights") == ["14_report"]


def test_pages_run_side_by_side_only_once_what_they_read_is_done(book: Path, monkeypatch) -> None:
    from helpers import book as book_module

    events = _fake_pages(book, monkeypatch, {"01": 3, "12": 10})
    book_module.execute("ci", book, book / "_build" / "stage", side_by_side=2)
    start = {number: events.index(("start", number)) for _, number in events}
    end = {number: events.index(("end", number)) for _, number in events}
    assert start["12"] < end["01"]  # it reads nothing: it runs beside chapter 01
    assert end["01"] < start["02"] and end["02"] < start["05"]
    assert sum(1 for event, _ in events if event == "start") == 4
    assert all(graph.stamp_file(book / "_build" / "stage", c).is_file() for c in CHAPTERS)
    events.clear()
    book_module.execute("ci", book, book / "_build" / "stage", side_by_side=2)
    assert events == []  # all up to date


def test_a_failed_page_stops_what_reads_it_lets_its_neighbour_finish_and_raises(book: Path, monkeypatch) -> None:
    from helpers import book as book_module

    events = _fake_pages(book, monkeypatch, {"01": 2, "12": 5}, fails="01")
    with pytest.raises(RuntimeError, match="failed: notebooks/01_moral_vectors.*not executed: notebooks/02_"):
        book_module.execute("ci", book, book / "_build" / "stage", side_by_side=2)
    assert ("start", "02") not in events and ("end", "12") in events
    stage = book / "_build" / "stage"
    assert not graph.stamp_file(stage, "notebooks/01_moral_vectors").exists()
    assert graph.stamp_file(stage, "notebooks/12_harmful_weights").is_file()


def test_lanes_are_what_was_asked_as_far_as_free_memory_holds_them(monkeypatch, tmp_path: Path) -> None:
    from helpers import book as book_module
    from helpers import machine

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:   20000000 kB\n")
    assert machine.available_memory_gb(meminfo) == pytest.approx(20.48)
    for free, asked, expected in ((20.48, 2, 2), (20.48, 3, 2), (10.0, 2, 1), (None, 2, 1), (40.0, 1, 1)):
        monkeypatch.setattr(machine, "available_memory_gb", lambda free=free: free)
        assert book_module.lanes(asked) == expected
    monkeypatch.delenv("BOOK_LANES", raising=False)
    assert book_module.lanes() == 1 and book_module.lanes(default=2) == 2
    monkeypatch.setenv("BOOK_LANES", "2")
    assert book_module.lanes() == 2
    monkeypatch.setenv("BOOK_LANES", "0")
    with pytest.raises(ValueError, match="BOOK_LANES"):
        book_module.lanes()
    monkeypatch.setenv("BOOK_LANES", "two")
    with pytest.raises(ValueError, match="BOOK_LANES must be a whole number of pages, not 'two'"):
        book_module.lanes()


def test_an_interrupted_build_stops_the_pages_it_started(book: Path, monkeypatch) -> None:
    from helpers import book as book_module

    events = _fake_pages(book, monkeypatch, {"01": 10**6, "12": 10**6})
    stopped = []
    started = book_module.start_page

    def start(*args):
        process = started(*args)
        process.terminate = lambda: stopped.append(Path(args[1]).stem[:2])
        return process

    monkeypatch.setattr(book_module, "start_page", start)
    sleeps = iter(range(3))
    monkeypatch.setattr(book_module.time, "sleep", lambda seconds: next(sleeps))  # the fourth wait is interrupted
    with pytest.raises(StopIteration):
        book_module.execute("ci", book, book / "_build" / "stage", side_by_side=2)
    assert sorted(stopped) == ["01", "12"] and ("end", "01") not in events
