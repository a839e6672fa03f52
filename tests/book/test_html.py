"""After `make book`: every chapter page shows its figures, no error output, and a Colab link that resolves."""

from __future__ import annotations

import json
import re

import pytest

from helpers.book import chapters, colab_launch_url, exercises, notebook_pages
from helpers.claims import CLAIMS
from helpers.reference import reference_problems


@pytest.fixture(scope="module")
def html(root):
    folder = root / "_build" / "html"
    if not (folder / "index.html").is_file():
        pytest.fail("no built book: run `make book` first")
    return folder


@pytest.fixture(scope="module")
def profile(root) -> str:
    return (root / "_build" / "stage" / "PROFILE").read_text().strip()


def _entry(root, profile: str, chapter: str) -> dict:
    path = root / "results" / profile / f"{chapter.split('/')[-1]}.json"
    assert path.is_file(), f"{chapter} wrote no ledger entry for profile {profile}"
    return json.loads(path.read_text())


@pytest.mark.parametrize("chapter", chapters())
def test_chapter_page_shows_every_figure_and_a_colab_link(root, html, profile, chapter):
    page = (html / f"{chapter}.html").read_text()
    images = re.findall(r"<img [^>]*src=\"([^\"]*_images/[^\"]+)\"", page)
    figures = _entry(root, profile, chapter)["meta"]["figures"]
    assert figures and len(images) >= len(figures), "every saved figure is also shown on the page"
    for src in images:
        assert (html / f"{chapter}.html").parent.joinpath(src).resolve().is_file(), src
    assert "Traceback (most recent call last)" not in page, "a cell raised"
    links = re.findall(r"https://colab\.research\.google\.com/github/[^\"]+", page)
    assert links and links[0] == colab_launch_url(chapter, root), "a Colab launch button to this chapter's release"
    assert (root / f"{chapter}.ipynb").is_file()


@pytest.mark.parametrize("page", notebook_pages())
def test_no_page_renders_papermills_injected_parameters(html, page):
    assert "# Parameters" not in (html / f"{page}.html").read_text(), "the injected-parameters cell is rendered"


@pytest.mark.parametrize("page", exercises())
def test_exercise_page_passes_its_check_and_collapses_its_solution(html, page):
    text = (html / f"{page}.html").read_text()
    assert "Traceback (most recent call last)" not in text and f"{page.split('/')[-1][:2]} passed" in text
    solution = re.search(r'<div class="cell tag_solution tag_hide-input[^"]*"', text)
    assert solution, "the solution cell renders collapsed (hide-input)"
    assert 'class="sd-summary-title' in text or "dropdown" in text, "hints render as dropdowns"


@pytest.mark.parametrize("chapter", chapters())
def test_chapter_wrote_its_ledger_and_figure_files(root, profile, chapter):
    entry = _entry(root, profile, chapter)
    assert entry["profile"] == profile and entry["metrics"]
    for figure in entry["meta"]["figures"]:
        assert (root / figure).is_file(), figure


@pytest.mark.parametrize("chapter", sorted({c.chapter for c in CLAIMS}))
def test_every_chapter_page_shows_the_verdicts_chapter_14_gives(root, html, profile, chapter):
    report = {r["id"]: r["verdict"] for r in _entry(root, profile, "14_report")["metrics"]["claims"]}
    page = (html / "notebooks" / f"{chapter}.html").read_text()
    for claim in (c for c in CLAIMS if c.chapter == chapter):
        row = re.search(rf"<tr>(?:(?!</tr>).)*?>{claim.id}</td>(?:(?!</tr>).)*</tr>", page, re.S)
        assert row, f"{chapter}'s page shows no verdict row for {claim.id}"
        shown = re.findall(r">([^<>]+)</td>", row.group(0))
        assert report[claim.id] in shown, f"{claim.id}: chapter 14 says {report[claim.id]!r}, the page {shown}"


def test_offline_builds_ran_every_kernel_under_the_network_guard(root, profile):
    from helpers.profiles import load_profile

    if not load_profile(profile).offline:
        pytest.skip(f"profile {profile} downloads: no guard to check")
    unguarded = [c for c in chapters() if not _entry(root, profile, c)["meta"].get("remote_network_blocked")]
    assert unguarded == [], "these chapters' kernels ran without the guard an offline profile installs"
    late = [c for c in chapters() if not _entry(root, profile, c)["meta"].get("network_guard_inherited")]
    assert late == [], "these chapters' kernels were not guarded from start-up (inherited from make book)"
    log = root / "_build" / "stage" / "network-attempts.jsonl"
    tried = log.read_text().splitlines() if log.is_file() else []
    assert tried == [], f"the {profile} build tried to leave this machine (blocked, but someone swallowed it): {tried}"


LEDGER_CONTRACT = {  # per-layer keys that later chapters and the report (chapter 14) read
    "08_sae": ("fvu_val", "l0_val", "alive_fraction", "splice_kl", "d_sae", "n_train", "train_seconds"),
    "09_moral_features": ("monosemantic_ratio", "polysemantic_ratio", "weak_ratio", "mean_prototypicality_spearman",
                          "mean_pair_cosine", "n_distinguishing"),
    "10_surgery": ("frozen_fraction", "n_trainable_latents", "loss_terms_final", "mean_pair_cosine_before",
                   "mean_pair_cosine_after", "mean_prototypicality_spearman_before",
                   "mean_prototypicality_spearman_after"),
}


@pytest.mark.parametrize("chapter", sorted(LEDGER_CONTRACT))
def test_sae_chapters_keep_their_ledger_contract(root, profile, chapter):
    metrics = _entry(root, profile, chapter)["metrics"]
    assert metrics["per_layer"], "at least one layer"
    for layer, values in metrics["per_layer"].items():
        missing = set(LEDGER_CONTRACT[chapter]) - set(values)
        assert not missing, f"{chapter} layer {layer} lacks {sorted(missing)}"
    if chapter == "09_moral_features":
        assert str(metrics["best_layer"]) in metrics["per_layer"]


def test_steering_chapter_counts_add_up_per_order(root, profile):
    metrics = _entry(root, profile, "11_steering_flames")["metrics"]
    n = metrics["n_prompts"]
    assert metrics["comparisons"] and metrics["judge"]["model"]
    for name, comparison in metrics["comparisons"].items():
        for order in ("order_ab", "order_ba"):
            counts = comparison[order]
            assert counts["win"] + counts["tie"] + counts["loss"] == n, f"{name} {order}"
    for backend, validation in metrics["judge_validation"].items():
        assert {"accuracy", "order_consistency", "n"} <= set(validation), backend
    assert all(metrics["alpha_zero_identical"].values()), "the α = 0 hook reproduces the baseline"


def test_pruning_chapter_keeps_its_ledger_contract(root, profile):
    metrics = _entry(root, profile, "12_harmful_weights")["metrics"]
    assert metrics["n_pruned"] > 0 and 0 < metrics["pruned_fraction"] < 1
    assert set(metrics["overlap_jaccard"]) == set(metrics["overlap_chance"]) and len(metrics["overlap_jaccard"]) == 6
    assert set(metrics["harm_nll_before"]) == set(metrics["harm_nll_after"]) == {"insult", "scam", "risky_advice",
                                                                                  "privacy"}
    for key in ("perplexity", "trivia_acc"):
        assert f"{key}_before" in metrics and f"{key}_after" in metrics
    assert {"random", "unsigned", "magnitude", "content-matched (refusals)"} <= set(metrics["baselines"])


def test_geometry_chapter_keeps_its_ledger_contract(root, profile):
    metrics = _entry(root, profile, "13_superposition_geometry")["metrics"]
    for key in ("mean_cos_inducing_toxic", "mean_cos_control_toxic", "null_mean_cos"):
        assert -1 <= metrics[key] <= 1
    assert 0 < metrics["p_value"] <= 1 and isinstance(metrics["go"], bool)
    proxy = metrics["misalignment_proxy"]
    assert {"base", "finetuned_full", "finetuned_geometry_filtered", "finetuned_random_filtered"} <= set(proxy)
    filtered = (proxy["finetuned_geometry_filtered"], proxy["finetuned_random_filtered"])
    assert all(v is not None for v in filtered) if metrics["go"] else all(v is None for v in filtered)


def test_internal_links_and_anchors_resolve(html):
    """Every relative link of every built page points to an existing file, and every #anchor to an id there."""
    from html.parser import HTMLParser
    from urllib.parse import unquote, urlsplit

    class Page(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.links, self.ids = [], set()

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if attrs.get("id"):
                self.ids.add(attrs["id"])
            if tag == "a" and attrs.get("href"):
                self.links.append(attrs["href"])

    pages = {}
    for path in html.rglob("*.html"):
        if "_static" in path.parts or "_sources" in path.parts:
            continue
        parser = Page()
        parser.feed(path.read_text(encoding="utf-8"))
        pages[path.resolve()] = parser
    broken = []
    for path, parser in pages.items():
        for href in parser.links:
            parts = urlsplit(href)
            if parts.scheme or parts.netloc or href.startswith(("mailto:", "javascript:")):
                continue  # external: not checked offline
            target = path if not parts.path else (path.parent / unquote(parts.path)).resolve()
            if not target.exists():
                broken.append(f"{path.relative_to(html.resolve())}: {href} (no such file)")
            elif parts.fragment and target.suffix == ".html" and target in pages \
                    and unquote(parts.fragment) not in pages[target].ids:
                broken.append(f"{path.relative_to(html.resolve())}: {href} (no such anchor)")
    assert not broken, f"{len(broken)} broken internal link(s):\n" + "\n".join(broken[:20])


def test_a_fresh_run_matches_the_committed_reference(root, profile):
    """The ledger of this build against `reference/<profile>/` (regenerated deliberately by `make reference`),
    each number within the tolerance measured between the reference's builds (`helpers.reference`)."""
    from helpers import reference

    expected_dir = root / "reference" / profile
    if profile != "ci" and not expected_dir.is_dir():
        pytest.skip(f"no reference ledger is committed for profile {profile} (only ci has one)")
    built = {p.stem for p in (root / "results" / profile).glob("*.json")}
    committed = {p.stem for p in expected_dir.glob("*.json")}
    assert built == committed, f"chapters without a reference: {built - committed}; stale: {committed - built}"
    problems = reference_problems(root / "results" / profile, profile, sorted(built))
    assert not problems, f"{len(problems)} difference(s) from the reference:\n" + "\n".join(problems[:30])


def test_two_builds_compute_identical_metrics(root, profile):
    """Two-build identity, where it can hold: on the machine fingerprint the reference was built on (CPU, kernel
    capability, torch and its BLAS build, threads), every number of this build equals the reference exactly.
    Elsewhere float32 rounds differently; the test says how the machines differ and the tolerance test decides."""
    from helpers import machine, reference

    if profile != "ci" and not (root / "reference" / profile).is_dir():
        pytest.skip(f"no reference ledger is committed for profile {profile} (only ci has one)")
    for row in reference.compare_run(profile):
        chapter = row["chapter"]
        here = _entry(root, profile, chapter)["meta"].get("machine")
        there = reference.read_reference(chapter, profile).get("machine")
        if machine.fingerprint_differences(here, there):
            pytest.skip(f"{chapter} ran on another machine than the reference ("
                        + "; ".join(machine.fingerprint_differences(here, there))
                        + "): bit-identity is not on offer, test_a_fresh_run_matches_the_committed_reference decides")
        assert row["differences at all"] == 0, f"{chapter}: {row['differences at all']} departures from the reference build"


def _open_code_cells(page: str) -> list[str]:
    """The source text of every code cell a rendered page shows open (neither collapsed nor removed)."""
    cells = re.split(r'(?=<div class="cell[ "])', page)[1:]
    shown = [c for c in cells if not re.match(r'<div class="cell[^"]*\btag_(hide-input|remove-input)\b', c)]
    sources = [re.search(r'<div class="cell_input.*?<pre>(.*?)</pre>', c, re.S) for c in shown]
    return [re.sub(r"<[^>]+>", "", s.group(1)) for s in sources if s]


@pytest.mark.parametrize("chapter", chapters())
def test_a_reader_sees_short_code_cells_and_figures_that_fit_the_page(root, html, profile, chapter):
    from PIL import Image

    from helpers import plotting
    from helpers.book import MAX_OPEN_LINES

    page = (html / f"{chapter}.html").read_text()
    long = [s.splitlines()[0] for s in _open_code_cells(page) if len(s.strip().splitlines()) > MAX_OPEN_LINES]
    assert not long, f"code cells longer than {MAX_OPEN_LINES} lines shown open: {long}"
    for src in re.findall(r"<img [^>]*src=\"([^\"]*_images/[^\"]+\.png)\"", page):
        width = Image.open((html / f"{chapter}.html").parent / src).width
        assert width <= plotting.MAX_WIDTH_PX, f"{src} is {width} px wide: text shrinks below 2/3 at page width"
    for figure in _entry(root, profile, chapter)["meta"]["figures"]:
        assert Image.open(root / figure).info.get("Description") == plotting.LAYOUT_CHECKED, \
            f"{figure}: saved without plotting.check_layout (titles and width unchecked)"
    assert "_static/tables.css" in page, "wide tables wrap inside the column (_static/tables.css)"


def test_the_open_cell_reader_sees_through_collapsed_cells():
    page = ('<div class="cell docutils container"><div class="cell_input docutils"><pre>a\nb</pre></div></div>'
            '<div class="cell tag_hide-input docutils container"><div class="cell_input"><pre>c</pre></div></div>')
    assert _open_code_cells(page) == ["a\nb"]
