"""Colab readiness: one release tag everywhere, launch links naming committed notebooks, and each chapter's first
cells run as on Colab (the detection flag set, clone and pip recorded and replaced by this worktree, the `colab`
profile, no network, its downloads served from local file:// copies), stopping at the first model load."""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tomllib
import types
from pathlib import Path
from typing import NoReturn

import nbformat
import pytest
import yaml

from helpers import environment, models
from helpers.book import (NODEPS_PINS, book_ref, chapters, colab_cell, colab_launch_url, notebook_pages,
                          sync_colab_cells)
from helpers.paths import file_sha256
from helpers.profiles import load_profile

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = chapters(ROOT)
COLAB_DIR = "/content/book"  # where the hidden cell clones the book on Colab
FINISHES, NEEDS_LEDGERS = "finishes", "needs the ledgers of 03-06"
# How each chapter's set-up cell (the first code cell after `parameters`) ends under the colab profile here: it
# finishes, or it stops at its first model load (the profile key naming that model; "models" = the first of the
# list), or it needs earlier chapters' ledgers; and which official files it downloads before that.
SETUP = {
    "01_moral_vectors": (FINISHES, set()),
    "02_activations": (FINISHES, {"socialchem"}),
    "03_categorical": ("models", {"socialchem"}),
    "04_gradient": ("models", {"socialchem"}),
    "05_structural": ("models", {"socialchem"}),
    "06_dimensional": ("models", {"socialchem"}),
    "07_across_models": (NEEDS_LEDGERS, set()),
    "08_sae": ("sae_model", {"socialchem"}),
    "09_moral_features": ("sae_model", {"socialchem"}),
    "10_surgery": ("sae_model", {"socialchem"}),
    "11_steering_flames": ("sae_model", {"socialchem", "flames"}),
    "12_harmful_weights": ("prune_model", {"socialchem"}),
    "13_superposition_geometry": ("geometry_model", {"socialchem"}),
    "14_report": (FINISHES, set()),
}
MODEL_KEYS = ("sae_model", "judge_model", "prune_model", "geometry_model")


class HubModelRequested(Exception):
    """Raised by the stand-in for `models.load_hf`: the chapter reached its first model load, where this test stops."""


def _config(root: Path) -> dict:
    """The book's `_config.yml`."""
    return yaml.safe_load((root / "_config.yml").read_text())


def _tracked(root: Path) -> set[str]:
    """Paths git tracks in the worktree at `root`."""
    out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, text=True, check=True).stdout
    return set(filter(None, out.split("\0")))


@pytest.fixture(scope="module")
def tracked() -> set[str]:
    """Paths git tracks in this worktree (what a clone holds)."""
    return _tracked(ROOT)


def test_one_release_tag_names_the_branch_the_clone_and_the_version(root):
    version = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    ref = book_ref(root)
    assert ref == f"v{version}"
    assert _config(root)["repository"]["branch"] == ref, "run `python -m helpers.book --sync-colab`"
    cell = colab_cell(root)
    assert f'ref, url = "{ref}", "{_config(root)["repository"]["url"]}"' in cell
    assert '"--branch", ref, url, "/content/book"' in cell
    makefile_pins = re.search(r"^NODEPS_PINS := (.+)$", (root / "Makefile").read_text(), re.M)[1].split()
    assert list(NODEPS_PINS) == makefile_pins, "Colab installs the same data packages as `make env`"


def test_sync_colab_is_idempotent_and_follows_a_version_bump(root, tmp_path):
    for name in ("_config.yml", "_toc.yml", "pyproject.toml"):
        shutil.copy2(root / name, tmp_path / name)
    shutil.copytree(root / "notebooks", tmp_path / "notebooks", ignore=shutil.ignore_patterns("*.ipynb"))
    assert sync_colab_cells(tmp_path) == [], "the committed cells and branch are what --sync-colab writes"
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(re.sub(r'(?m)^version = ".*"$', 'version = "9.9.9"', pyproject.read_text()))
    changed = sync_colab_cells(tmp_path)
    pages = notebook_pages(ROOT)  # the exercise pages open on Colab too
    assert sorted(changed) == sorted([tmp_path / f"{c}.py" for c in pages] + [tmp_path / "_config.yml"])
    assert _config(tmp_path)["repository"]["branch"] == "v9.9.9"
    assert all('"v9.9.9"' in (tmp_path / f"{c}.py").read_text() for c in pages)
    assert (tmp_path / "_config.yml").read_text().count("\n") == (root / "_config.yml").read_text().count("\n")


def test_launch_url_follows_sphinx_book_theme(tmp_path):
    (tmp_path / "_config.yml").write_text(yaml.safe_dump({
        "repository": {"url": "https://github.com/org/repo/", "branch": "v1.2.3", "path_to_book": "/docs/"},
        "launch_buttons": {"colab_url": "https://colab.research.google.com/"}}))
    assert colab_launch_url("notebooks/01_x", tmp_path) == (
        "https://colab.research.google.com/github/org/repo/blob/v1.2.3/docs/notebooks/01_x.ipynb")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_launch_link_names_a_committed_stripped_paired_notebook(root, tracked, chapter):
    config = _config(root)
    url = colab_launch_url(chapter, root)
    _, org, repo = config["repository"]["url"].strip("/").rsplit("/", 2)
    prefix = f"{config['launch_buttons']['colab_url'].strip('/')}/github/{org}/{repo}/blob/"
    assert url.startswith(prefix)
    ref, path = url.removeprefix(prefix).split("/", 1)
    assert ref == book_ref(root) and path == f"{chapter}.ipynb"
    assert {path, f"{chapter}.py"} <= tracked, "the launched notebook and its source are committed"
    notebook = nbformat.read(root / path, as_version=4)
    assert notebook.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert all(c.outputs == [] for c in notebook.cells if c.cell_type == "code"), "outputs stripped"


def test_colab_profile_names_hub_models_and_official_sources():
    profile = load_profile("colab")
    names = [*profile.models, *(getattr(profile, key) for key in MODEL_KEYS)]
    assert all(models.model_spec(name).kind == "hub" for name in names)
    assert profile.socialchem_source.startswith("https://") and profile.flames_source.startswith("https://")


def _colab_cells(chapter: str) -> list[str]:
    """The cells this test runs, from the committed .ipynb Colab opens: the hidden Colab cell, the parameters cell,
    papermill's injected `profile = "colab"`, and the set-up cell after them."""
    code = [c for c in nbformat.read(ROOT / f"{chapter}.ipynb", as_version=4).cells if c.cell_type == "code"]
    assert code[0].metadata.get("tags") == ["remove-cell"] and "parameters" in code[1].metadata.get("tags", [])
    return [code[0].source, code[1].source, 'profile = "colab"', code[2].source]


def _local_clone(target: Path, tracked: set[str], colab: dict) -> None:
    """Stand in for `git clone`: this worktree's committed top-level entries, linked, and a params/ whose colab.yaml
    is `colab`."""
    target.mkdir(parents=True)
    for name in sorted({path.split("/")[0] for path in tracked} - {"params"}):
        (target / name).symlink_to(ROOT / name)
    shutil.copytree(ROOT / "params", target / "params")
    (target / "params" / "colab.yaml").write_text(yaml.safe_dump(colab, sort_keys=False))


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_first_cells_run_as_on_colab(chapter, tracked, tmp_path, monkeypatch, no_network, socialchem_zip,
                                     flames_jsonl):
    stop, downloads = SETUP[chapter.split("/")[-1]]
    clone = tmp_path / "content" / "book"
    colab = yaml.safe_load((ROOT / "params" / "colab.yaml").read_text())
    # the official files, served locally (the Flames pin follows the local copy); the bundled Social-Chem sample is
    # far smaller than the official release, so it is sampled with ci's per-stratum floor
    colab.update(socialchem_source=socialchem_zip.as_uri(), flames_source=flames_jsonl.as_uri(),
                 flames_sha256=file_sha256(flames_jsonl), min_per_stratum=load_profile("ci").min_per_stratum)
    calls = []

    def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
        """Record the Colab cell's command; `git clone` makes the local clone, pip installs nothing (the package
        is already on the path)."""
        calls.append([str(a) for a in args])
        if args[:2] == ["git", "clone"]:
            _local_clone(Path(args[-1]), tracked, colab)
        return subprocess.CompletedProcess(args, 0)

    def refuse(spec: models.ModelSpec, *args, **kwargs) -> NoReturn:
        """Stop where the chapter would load a model."""
        raise HubModelRequested(spec.name)

    google_colab = types.ModuleType("google.colab")
    google_colab.__spec__ = importlib.machinery.ModuleSpec("google.colab", None)  # libraries probe it by find_spec
    monkeypatch.setitem(sys.modules, "google.colab", google_colab)
    monkeypatch.setattr(models, "load_hf", refuse)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("BOOK_ROOT", str(ROOT))  # the Colab cell moves it to the clone; restored afterwards
    monkeypatch.delenv("BOOK_PARAMS", raising=False)
    cells = [source.replace(COLAB_DIR, str(clone)) for source in _colab_cells(chapter)]
    assert cells[0].count(str(clone)) == 5, "clone, path, BOOK_ROOT, install and constraints all name the clone"

    namespace = {"__name__": "__main__"}
    with monkeypatch.context() as during_colab_cell:
        during_colab_cell.setattr(subprocess, "run", run)
        exec(compile(cells[0], f"{chapter}.ipynb Colab cell", "exec"), namespace)
    for index, source in enumerate(cells[1:-1], start=1):
        exec(compile(source, f"{chapter}.ipynb code cell {index}", "exec"), namespace)
    config = _config(ROOT)
    constraints = clone / "_build" / "constraints-colab.txt"
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    assert calls == [
        ["git", "clone", "--depth", "1", "--branch", book_ref(ROOT), config["repository"]["url"], str(clone)],
        [*pip, "--no-deps", "-e", str(clone)],
        [*pip, "-c", str(constraints), *environment.colab_requirements(ROOT)],
        [*pip, "--no-deps", *NODEPS_PINS],
    ]
    # the runtime's torch is kept: pyproject's torch pin reaches pip neither as a requirement nor as a constraint;
    # the constraints hold the torch this interpreter has (here the CPU build, `+cpu`), and pin everything else
    assert not any(arg.split("==")[0] in environment.RUNTIME_OWNED for call in calls for arg in call)
    held = constraints.read_text().splitlines()
    assert f"torch=={importlib.metadata.version('torch')}" in held
    assert environment.pins(ROOT)["torch"] not in held or importlib.metadata.version("torch") == "2.13.0"
    assert set(environment.colab_requirements(ROOT)) <= set(held)
    assert sys.path[0] == str(clone / "src") and Path(namespace["os"].environ["BOOK_ROOT"]) == clone
    assert namespace["profile"] == "colab"

    setup = compile(cells[-1], f"{chapter}.ipynb set-up cell", "exec")
    profile = load_profile("colab")
    if stop == FINISHES:
        exec(setup, namespace)
        assert namespace["P"].name == "colab" and namespace["P"].models == profile.models
    elif stop == NEEDS_LEDGERS:
        with pytest.raises(FileNotFoundError, match="run chapter 03_categorical with profile colab first"):
            exec(setup, namespace)
    else:
        with pytest.raises(HubModelRequested) as requested:
            exec(setup, namespace)
        expected = profile.models[0] if stop == "models" else getattr(profile, stop)
        assert requested.value.args[0] == expected
    fetched = clone / "cache" / "downloads"
    assert ({p.name for p in fetched.iterdir()} if fetched.is_dir() else set()) == downloads
    if "socialchem" in downloads:
        recorded = (fetched / "socialchem" / "social-chem-101.zip.sha256").read_text().strip()
        assert recorded == file_sha256(socialchem_zip), "the zip came from the local copy"
    if "flames" in downloads:
        assert (fetched / "flames" / "Flames_1k_Chinese.jsonl").read_bytes() == flames_jsonl.read_bytes()
