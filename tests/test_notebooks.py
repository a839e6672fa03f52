"""Chapters and exercise pages: listed in the toc, paired .py/.ipynb in sync, outputs stripped, a parameters cell,
the Colab cell."""

from __future__ import annotations

import ast

import jupytext
import nbformat
import pytest

from helpers import book
from helpers.book import colab_cell, notebook_pages

ROOT_CHAPTERS = notebook_pages()


def test_every_notebook_is_in_the_toc(root):
    on_disk = sorted(str(p.relative_to(root).with_suffix("")) for pattern in ("[0-9]*.py", "exercises/E*.py")
                     for p in (root / "notebooks").glob(pattern))
    assert on_disk == sorted(ROOT_CHAPTERS)
    assert ROOT_CHAPTERS, "the toc lists chapters"


@pytest.mark.parametrize("chapter", ROOT_CHAPTERS)
def test_paired_notebook_is_in_sync_and_stripped(root, chapter):
    source = jupytext.read(root / f"{chapter}.py")
    paired = nbformat.read(root / f"{chapter}.ipynb", as_version=4)
    assert [c.source for c in source.cells] == [c.source for c in paired.cells], "run `make notebooks`"
    for cell in paired.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "commit the .ipynb with outputs stripped"


@pytest.mark.parametrize("chapter", ROOT_CHAPTERS)
def test_parameters_cell_defaults_to_ci(root, chapter):
    cells = jupytext.read(root / f"{chapter}.py").cells
    params = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    values = {t.id: ast.literal_eval(node.value) for node in ast.parse(params[0].source).body
              for t in node.targets}
    assert values["profile"] == "ci"


@pytest.mark.parametrize("chapter", ROOT_CHAPTERS)
def test_first_code_cell_is_the_canonical_hidden_colab_cell(root, chapter):
    expected = jupytext.reads(colab_cell(root), fmt="py:percent").cells[0]
    for suffix in (".py", ".ipynb"):
        code = [c for c in jupytext.read(root / f"{chapter}{suffix}").cells if c.cell_type == "code"]
        assert code[0].source == expected.source, f"{suffix}: run `python -m helpers.book --sync-colab`"
        assert code[0].metadata.get("tags") == ["remove-cell"] and "google.colab" in code[0].source


@pytest.mark.parametrize("chapter", ROOT_CHAPTERS)
def test_plotting_code_is_collapsed_on_the_page(root, chapter):
    for cell in jupytext.read(root / f"{chapter}.py").cells:
        draws = any(call in cell.source for call in ("save_figure", "plt.subplots", "sns."))
        if cell.cell_type == "code" and draws:
            tags = cell.metadata.get("tags", [])
            assert {"hide-input", "remove-input", "remove-cell"} & set(tags), cell.source.splitlines()[0]


def test_the_long_cell_check_can_fail():
    long = jupytext.reads("# %%\n" + "\n".join(f"x{i} = {i}" for i in range(13)), fmt="py:percent")
    assert book.open_cells_too_long(long) == ["x0 = 0"]
    folded = jupytext.reads('# %% tags=["hide-input"]\n' + "\n".join(f"x{i} = {i}" for i in range(13)),
                            fmt="py:percent")
    assert book.open_cells_too_long(folded) == []


@pytest.mark.parametrize("chapter", ROOT_CHAPTERS)
def test_no_code_cell_longer_than_a_few_lines_is_shown_open(root, chapter):
    assert book.open_cells_too_long(jupytext.read(root / f"{chapter}.py")) == []
