"""After `make book`: every chapter page exists with its figures, no error output, and a Colab link that resolves."""

from __future__ import annotations

import re

import pytest

from helpers.book import chapters


@pytest.fixture(scope="module")
def html(root):
    folder = root / "_build" / "html"
    if not (folder / "index.html").is_file():
        pytest.fail("no built book: run `make book` first")
    return folder


@pytest.mark.parametrize("chapter", chapters())
def test_chapter_page_has_figures_and_a_colab_link(root, html, chapter):
    page = (html / f"{chapter}.html").read_text()
    assert len(re.findall(r"<img [^>]*src=\"[^\"]*_images/", page)) >= 2, "the chapter renders its figures"
    for src in re.findall(r"<img [^>]*src=\"([^\"]*_images/[^\"]+)\"", page):
        assert (html / f"{chapter}.html").parent.joinpath(src).resolve().is_file(), src
    assert "Traceback (most recent call last)" not in page, "a cell raised"
    links = re.findall(r"https://colab\.research\.google\.com/github/([^\"]+)", page)
    assert links, "a Colab launch button"
    assert links[0].endswith(f"blob/main/{chapter}.ipynb")
    assert (root / f"{chapter}.ipynb").is_file()


@pytest.mark.parametrize("chapter", chapters())
def test_chapter_wrote_its_ledger_and_figures(root, chapter):
    import json

    slug = chapter.split("/")[-1]
    entries = list((root / "results").glob(f"*/{slug}.json"))
    assert entries, f"no ledger entry for {slug}"
    entry = json.loads(entries[0].read_text())
    assert entry["metrics"]
    for figure in entry["meta"]["figures"]:
        assert (root / figure).is_file()
