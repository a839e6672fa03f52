"""Build the book: execute with papermill every chapter of one profile whose inputs changed (`helpers.graph`),
stage the executed copies, render HTML.

Usage: `python -m helpers.book --profile ci` (what `make book` runs). `--emulate avx2|epyc [--chapters 02-07]`
executes chapters (all, or a range) without rendering, under another machine's kernel dispatch, into
`_build/other-machine-<name>/` (its own caches and ledgers, as on a fresh machine): what `make reference` and
`make test` compare. `--sync-colab` rewrites the hidden Colab
setup cell of every chapter source and `_config.yml`'s `repository.branch` to the release tag (idempotent);
`--ref` prints that tag.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping
from pathlib import Path

import yaml

from helpers import graph, machine, netguard
from helpers.environment import NODEPS_PINS
from helpers.paths import project_root, results_dir
from helpers.profiles import load_profile

INCLUDED_FILES = ("src/helpers/data/files/DATACARD.md",)  # files outside book/ that prose pages include
COLAB_CELL_TAG = '# %% tags=["remove-cell"]'


def notebook_pages(root: Path | None = None) -> list[str]:
    """Every notebook page of `_toc.yml` in order (chapters and exercise pages), as paths without suffix."""
    root = root or project_root()
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    found = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if str(node.get("file", "")).startswith("notebooks/"):
                found.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(toc)
    return found


def chapters(root: Path | None = None) -> list[str]:
    """Notebook chapters in `_toc.yml` order, as paths like `notebooks/01_moral_vectors` (no suffix)."""
    return [page for page in notebook_pages(root) if not graph.is_exercise(page)]


def exercises(root: Path | None = None) -> list[str]:
    """Exercise pages in `_toc.yml` order, as paths like `notebooks/exercises/E2_prototype_cosines`."""
    return [page for page in notebook_pages(root) if graph.is_exercise(page)]


def book_ref(root: Path | None = None) -> str:
    """The release tag of this book, `v` + pyproject's version: the ref Colab opens and its setup cell installs."""
    root = root or project_root()
    return "v" + tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]


def colab_cell(root: Path | None = None) -> str:
    """The hidden first cell of every chapter: on Colab, clone this book at its release tag and install `helpers`
    with the book's pins, keeping the runtime's own torch (`helpers.environment`)."""
    root = root or project_root()
    url = yaml.safe_load((root / "_config.yml").read_text())["repository"]["url"]
    return f'''{COLAB_CELL_TAG}
# Colab setup (hidden in the book): fetch this book at its release tag (the ref the launch button opens) and
# install its helpers package from that same commit, with the book's pinned packages; the runtime's own torch
# (its CUDA build and libraries) and kernel are kept at Colab's versions.
import sys

if "google.colab" in sys.modules:
    import os
    import subprocess

    ref, url = "{book_ref(root)}", "{url}"
    subprocess.run(["git", "clone", "--depth", "1", "--branch", ref, url, "/content/book"], check=True)
    sys.path.insert(0, "/content/book/src")
    os.environ["BOOK_ROOT"] = "/content/book"
    from helpers import environment  # standard library only: importable before the install

    pip = [sys.executable, "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--no-deps", "-e", "/content/book"], check=True)  # pyproject's torch pin is not passed
    constraints = environment.write_colab_constraints("/content/book/_build/constraints-colab.txt")
    subprocess.run([*pip, "-c", constraints, *environment.colab_requirements()], check=True)
    subprocess.run([*pip, "--no-deps", *environment.NODEPS_PINS], check=True)  # only their files are read
'''


def colab_launch_url(chapter: str, root: Path | None = None) -> str:
    """The Colab launch link sphinx-book-theme 1.x builds for a chapter page from `_config.yml` (see its
    `header_buttons/launch.py`: `<colab_url>/github/<org>/<repo>/blob/<branch>/<path_to_book>/<page>.ipynb`)."""
    config = yaml.safe_load(((root or project_root()) / "_config.yml").read_text())
    repo = config["repository"]
    _, org, name = repo["url"].strip("/").rsplit("/", 2)
    book = repo.get("path_to_book", "").strip("/")
    path = f"{book}/{chapter}.ipynb" if book else f"{chapter}.ipynb"
    return f"{config['launch_buttons']['colab_url'].strip('/')}/github/{org}/{name}/blob/{repo['branch']}/{path}"


def sync_colab_cells(root: Path | None = None) -> list[Path]:
    """Rewrite the Colab cell of every chapter source and `_config.yml`'s branch to the release tag; return the
    files that changed."""
    root = root or project_root()
    changed = []
    cell = colab_cell(root)
    pattern = re.compile(re.escape(COLAB_CELL_TAG) + r"\n.*?(?=\n# %%)", re.S)
    for chapter in notebook_pages(root):
        path = root / f"{chapter}.py"
        text = path.read_text()
        new = pattern.sub(lambda _: cell.rstrip("\n") + "\n", text, count=1)
        if new != text:
            path.write_text(new)
            changed.append(path)
    config = root / "_config.yml"
    text = config.read_text()
    new, count = re.subn(r"^(repository:\n(?:[ #].*\n)*?  branch: ).*$", lambda m: m[1] + book_ref(root), text,
                         count=1, flags=re.M)
    if count != 1:
        raise ValueError(f"{config}: no `branch:` line under `repository:`")
    if new != text:
        config.write_text(new)
        changed.append(config)
    return changed


def select(names: list[str], span: str | None) -> list[str]:
    """The chapters whose number lies in `span` ("02-07", "05"; None: all), in order; an empty selection raises."""
    if span is None:
        return names
    first, dash, last = span.partition("-")
    last = last if dash else first
    if not (first.isdigit() and last.isdigit()):
        raise ValueError(f"--chapters {span!r}: expected a chapter number or a range like 02-07")
    chosen = [n for n in names if int(first) <= int(Path(n).name[:2]) <= int(last)]
    if not chosen:
        raise ValueError(f"--chapters {span!r}: no chapter of _toc.yml in that range")
    return chosen


def build_environment(profile: str) -> dict[str, object]:
    """What every chapter's digest includes besides its files: the profile, the kernels' thread count, this
    machine's fingerprint (CPU, kernel capability, torch build, dispatch variables) and Python."""
    fingerprint = {k: v for k, v in machine.fingerprint().items() if k != "threads"}
    return {"profile": profile, "threads": machine.thread_env(load_profile(profile).threads),
            "machine": fingerprint, "python": sys.version}


PAGE_MEMORY_GB = 8  # the most one ci chapter held at its peak (chapter 12: 7.35 GB, measured before it held fewer
# gradient copies; not re-measured since), with some room


def run_page(profile: str, source: Path, target: Path, log: Path) -> None:
    """Execute one page with papermill (the kernel started in the page's folder, `profile` its parameter) into
    `target`, its output in `log`, and hide the injected parameters cell: what `--page` runs, one process a page."""
    import papermill

    target.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        papermill.execute_notebook(str(source), str(target), parameters={"profile": profile}, cwd=str(source.parent),
                                   kernel_name="python3", progress_bar=False, stdout_file=out, stderr_file=out)
    hide_injected_parameters(target)  # once per execution, before the stamp says the copy is done


def start_page(profile: str, source: Path, target: Path, log: Path) -> subprocess.Popen:
    """Start `run_page` in a process of its own (papermill changes the working folder of the process it runs in,
    so pages run side by side each need one); its own errors go to `<log>.err`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log.with_suffix(".err"), "w") as err:
        return subprocess.Popen([sys.executable, "-m", "helpers.book", "--profile", profile, "--page", str(source),
                                 str(target), str(log)], stdout=err, stderr=subprocess.STDOUT)


def lanes(wanted: int | None = None, default: int = 1) -> int:
    """How many pages a build executes side by side: `wanted` (else $BOOK_LANES, else `default`), fewer where this
    machine's free memory would not hold that many chapters at their peak (`PAGE_MEMORY_GB` each)."""
    if wanted is None:
        try:
            wanted = int(os.environ.get("BOOK_LANES", str(default)))
        except ValueError:
            raise ValueError(f"BOOK_LANES must be a whole number of pages, not {os.environ['BOOK_LANES']!r}") from None
    if wanted < 1:
        raise ValueError(f"BOOK_LANES / --lanes must be a positive number of pages, not {wanted}")
    available = machine.available_memory_gb()
    fits = max(1, int(available // PAGE_MEMORY_GB)) if available is not None else 1
    return min(wanted, fits)


def execute(profile: str, root: Path, stage: Path, span: str | None = None,
            side_by_side: int = 1) -> list[tuple[str, float]]:
    """Run through papermill into the stage each chapter (of those in `span`; None: all, and the exercise pages)
    whose inputs changed since its last successful execution there (`helpers.graph`), every kernel with the
    profile's fixed thread count and its output in `<stage>/<chapter>.log`; up to `side_by_side` pages at once, each
    started once the chapters it reads are done (`graph.next_page`). At the first failure, start nothing more, let
    the running pages finish, and raise. Return the executed pages' timings."""
    os.environ.update(machine.thread_env(load_profile(profile).threads))  # inherited by every kernel
    os.environ.update(machine.QUIET_WAIT)  # pages side by side share the cores instead of spinning on them
    pages = select(chapters(root), span) + (exercises(root) if span is None else [])
    wanted = graph.digests(root, pages, profile, build_environment(profile))
    sources, results = graph.source_digests(root, profile), results_dir(profile)
    pending = graph.to_execute(stage, results, wanted, sources)
    print(f"[book] {len(pending)} of {len(wanted)} pages to execute, up to {side_by_side} side by side; up to date: "
          f"{', '.join(Path(c).name[:2] for c in wanted if c not in pending) or 'none'}", flush=True)
    timings, running, failed = [], {}, []
    try:
        while pending or running:
            while not failed and len(running) < side_by_side and (chapter := graph.next_page(pending, running)):
                pending.remove(chapter)
                for stamp in (graph.stamp_file(stage, chapter), graph.sources_file(results, Path(chapter).name)):
                    stamp.unlink(missing_ok=True)  # a failed execution leaves no stamp behind
                print(f"[book] executing {chapter} (profile={profile})", flush=True)
                running[chapter] = (start_page(profile, root / f"{chapter}.ipynb", stage / f"{chapter}.ipynb",
                                               stage / f"{chapter}.log"), time.perf_counter())
            if not running:
                break  # a failure left pages that wait on it
            time.sleep(0.2)
            for chapter, (process, start) in list(running.items()):
                if process.poll() is None:
                    continue
                del running[chapter]
                if process.returncode:
                    failed.append(chapter)
                    _print_failure(chapter, stage)
                    continue
                graph.stamp_file(stage, chapter).write_text(wanted[chapter])
                _record_sources(chapter, results, sources)
                timings.append((chapter, time.perf_counter() - start))
                print(f"[book] {chapter} done in {timings[-1][1]:.0f} s", flush=True)
    finally:  # an interrupted build leaves no page running behind it
        for process, _ in running.values():
            process.terminate()
    if failed:
        raise RuntimeError(f"[book] failed: {', '.join(failed)} (logs in {stage}); not executed: "
                           f"{', '.join(pending) or 'none'}")
    return timings


def _record_sources(chapter: str, results: Path, sources: Mapping[str, str]) -> None:
    """Record beside a chapter's ledger the source digest it was computed from, if what it read was of its current
    sources too (else say so: its ledger is not of these sources until those chapters are built too)."""
    name = Path(chapter).name
    behind = [u for u in graph.upstream(name)  # built here before, from other sources: stale outputs read
              if (results / f"{u}.json").is_file() and not graph.of_sources(results, u, sources.get(u))]
    if name in sources and not behind:
        graph.sources_file(results, name).write_text(sources[name])
    elif behind:
        print(f"[book] {name} read outputs of {', '.join(behind)} that are not of their current sources: its "
              "ledger is not recorded as of its sources (build those chapters too)", flush=True)


def _print_failure(chapter: str, stage: Path, lines: int = 80) -> None:
    """Print the end of a failed page's papermill error (the cell and traceback) and of its kernel's output."""
    for log in (stage / f"{chapter}.err", stage / f"{chapter}.log"):
        if log.is_file():
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            print(f"[book] {chapter} FAILED; the end of {log.name}:\n" + "\n".join(tail), flush=True)


MAX_OPEN_LINES = 12  # a code cell a page shows open is at most this long; longer ones are collapsed (hide-input)
FOLDED_TAGS = {"hide-input", "remove-input", "remove-cell", "hide-cell"}


def open_cells_too_long(notebook) -> list[str]:
    """First lines of the code cells of a (jupytext) notebook that its page would show open although they are longer
    than MAX_OPEN_LINES."""
    return [cell.source.splitlines()[0] for cell in notebook.cells
            if cell.cell_type == "code" and not FOLDED_TAGS & set(cell.metadata.get("tags", []))
            and len(cell.source.strip().splitlines()) > MAX_OPEN_LINES]


def stage_sources(root: Path, stage: Path) -> None:
    """Copy the book's non-notebook sources (config, toc, prose pages, page styles) next to the executed notebooks."""
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(root / name, stage / name)
    for folder in ("book", "_static"):  # jupyter-book adds every CSS file under the source's _static to each page
        shutil.copytree(root / folder, stage / folder, dirs_exist_ok=True)
    for name in INCLUDED_FILES:
        (stage / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, stage / name)


def hide_injected_parameters(path: Path) -> None:
    """Tag papermill's injected-parameters cell of an executed page `remove-cell`, so the page does not render it."""
    notebook = json.loads(path.read_text())
    cells = [c for c in notebook["cells"] if "injected-parameters" in c.get("metadata", {}).get("tags", [])
             and "remove-cell" not in c["metadata"]["tags"]]
    for cell in cells:
        cell["metadata"]["tags"].append("remove-cell")
    if cells:
        path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")


def stamp_path(root: Path, profile: str, emulation: str | None = None, span: str | None = None) -> Path:
    """The file whose date says a build of these sources finished: `_build/built-<profile>`, or for a run under an
    emulated machine `_build/other-machine-<name>-<profile>[-<span>]` (what the Makefile's targets name)."""
    name = (f"other-machine-{emulation}-{profile}" + (f"-{span}" if span else "")) if emulation else f"built-{profile}"
    return root / "_build" / re.sub(r"[^\w.-]", "_", name)


def run_elsewhere(profile: str, emulation: str, span: str | None = None, side_by_side: int = 1) -> Path:
    """Execute the chapters in `span` (None: all) as another kind of machine would: under emulated machine
    `emulation`'s kernel dispatch, with caches and ledgers of their own in `_build/other-machine-<name>/` (empty on
    a fresh clone; a chapter whose inputs did not change since its last run there is not run again); nothing is
    rendered; up to `side_by_side` pages at once. Return that folder (its `results/<profile>/` holds the ledgers)."""
    load_profile(profile)
    root = project_root()
    stamp = stamp_path(root, profile, emulation, span)
    stamp.unlink(missing_ok=True)
    started = time.time()
    out = root / "_build" / f"other-machine-{emulation}"  # its own caches and ledgers, never the native ones
    (out / "stage").mkdir(parents=True, exist_ok=True)
    os.environ.update(machine.emulation_env(emulation))
    os.environ["BOOK_OUTPUT_ROOT"] = str(out)
    os.environ[netguard.LOG_ENV] = str(out / "stage" / "network-attempts.jsonl")
    stage_sources(root, out / "stage")
    execute(profile, root, out / "stage", span, side_by_side)
    stamp.touch()
    os.utime(stamp, (started, started))
    return out


def build(profile: str = "ci", side_by_side: int = 1) -> Path:
    """Execute the chapters of `profile` whose inputs changed (all, on a fresh clone; up to `side_by_side` at once)
    and render `_build/html`; return the HTML folder."""
    load_profile(profile)  # fail fast on an unknown or invalid profile; an offline one guards every kernel from here
    root = project_root()
    for stamp in (root / "_build").glob("built-*"):  # the HTML about to be replaced is no longer any profile's
        stamp.unlink()
    stage = root / "_build" / "stage"  # executed copies and their digests are kept: unchanged chapters are not rerun
    started = time.time()
    stage.mkdir(parents=True, exist_ok=True)
    os.environ[netguard.LOG_ENV] = str(stage / "network-attempts.jsonl")  # blocked attempts, read by tests/book
    stage_sources(root, stage)
    (stage / "PROFILE").write_text(profile + "\n")  # read by tests/book to find this build's ledger
    execute(profile, root, stage, side_by_side=side_by_side)
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    subprocess.run([str(jupyter_book), "build", str(stage), "--path-output", str(root), "-W", "-n", "--keep-going"],
                   check=True)
    stamp = stamp_path(root, profile)  # what `make book` and `make test` check
    stamp.touch()
    os.utime(stamp, (started, started))  # dated at the start: a source edited during the build is newer
    return root / "_build" / "html"


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--emulate", choices=sorted(machine.EMULATIONS),
                        help="execute (no rendering) under this emulated machine's kernel dispatch, on fresh caches")
    parser.add_argument("--chapters", help="with --emulate: only these chapters, e.g. 02-07")
    parser.add_argument("--sync-colab", action="store_true",
                        help="rewrite each chapter's Colab cell and _config.yml's branch to the release tag, and exit")
    parser.add_argument("--ref", action="store_true", help="print the release tag (v<version>) and exit")
    parser.add_argument("--lanes", type=int, help="pages executed side by side (default: $BOOK_LANES, else 1: "
                        "on 2 cores the ci chapters run no faster two at a time; fewer where free memory is short)")
    parser.add_argument("--page", nargs=3, metavar=("SOURCE", "TARGET", "LOG"),
                        help="execute one page (what a build runs in a process of its own) and exit")
    args = parser.parse_args()
    if args.page:
        run_page(args.profile, *map(Path, args.page))
        return
    if args.ref:
        print(book_ref())
        return
    if args.sync_colab:
        for path in sync_colab_cells():
            print(f"updated {path}")
        return
    if args.chapters and not args.emulate:
        parser.error("--chapters needs --emulate (a rendered book renders every chapter)")
    if args.emulate:
        out = run_elsewhere(args.profile, args.emulate, args.chapters, lanes(args.lanes))
        print(f"[book] ledgers in {out}/results/{args.profile}")
        return
    print(f"[book] HTML in {build(args.profile, lanes(args.lanes))}")


if __name__ == "__main__":
    main()
