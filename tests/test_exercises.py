"""The exercise pages: every stub raises at its check, every page's solution passes it, every known mistake fails
it with its own hint, the planted answers are the ones worked out by hand, and the learner notebooks are the
pages without their solutions."""

from __future__ import annotations

import json

from collections.abc import Callable

import jupytext
import numpy as np
import pandas as pd
import pytest
import torch

from helpers import exercises

PAGES = sorted(exercises.EXERCISES)


def _cells(root, page: str) -> list[tuple[list[str], str]]:
    """(tags, source) of every code cell of an exercise page's source, in order (the Colab cell left out)."""
    notebook = jupytext.read(root / "notebooks" / "exercises" / f"{page}.py")
    return [(c.metadata.get("tags", []), c.source) for c in notebook.cells
            if c.cell_type == "code" and "remove-cell" not in c.metadata.get("tags", [])]


def _run(root, page: str, solution: bool) -> None:
    """Execute a page's code cells as a learner would (without the solution) or as the book does."""
    namespace: dict = {}
    for tags, source in _cells(root, page):
        if exercises.SOLUTION_TAG in tags and not solution:
            continue
        exec(compile(source, f"{page}.py", "exec"), namespace)  # noqa: S102 - the page's own code


def test_the_toc_lists_every_exercise_page(root):
    from helpers.book import exercises as pages

    assert [p.split("/")[-1] for p in pages(root)] == PAGES
    for page in PAGES:
        assert [tags for tags, _ in _cells(root, page)].count(["exercise"]) == 1, page
        assert sum(exercises.SOLUTION_TAG in tags for tags, _ in _cells(root, page)) == 1, page


@pytest.mark.parametrize("page", PAGES)
def test_the_stub_fails_its_check_and_the_solution_passes_it(root, page):
    with pytest.raises(NotImplementedError):
        _run(root, page, solution=False)
    _run(root, page, solution=True)


@pytest.mark.parametrize("page", PAGES)
def test_every_known_mistake_fails_with_its_own_hint(page):
    _, check, mutants = exercises.EXERCISES[page]
    assert len(mutants) >= 3
    for hint, wrong in mutants.items():
        with pytest.raises(exercises.ExerciseFailed) as failure:
            check(wrong)
        assert hint in str(failure.value), f"{page}: {failure.value}"


def test_checks_reject_answers_no_mutant_describes():
    with pytest.raises(exercises.ExerciseFailed, match="expected"):
        exercises.check_prototype_cosines(lambda x, s: np.eye(10))
    with pytest.raises(exercises.ExerciseFailed, match="shape"):
        exercises.check_prototype_cosines(lambda x, s: np.eye(5))
    with pytest.raises(exercises.ExerciseFailed):
        exercises.check_typicality_rho(lambda x, c, t: 0.5)
    with pytest.raises(exercises.ExerciseFailed):
        exercises.check_null_band(lambda f, x, n, seed: (-0.1, 0.1))
    with pytest.raises(exercises.ExerciseFailed):
        exercises.check_selection(lambda w, g, k, q, p: {n: torch.tensor([0]) for n in w})


def test_the_planted_answers_are_the_ones_worked_out_by_hand():
    chosen = exercises.selection_reference(*exercises.planted_weights(), q=0.3, p=0.25)
    assert {n: v.tolist() for n, v in chosen.items()} == {"a": [3], "b": [3, 4]}
    x, sample = exercises.planted_sample()
    matrix = exercises.prototype_cosines_reference(x, sample)
    assert np.allclose([matrix[2 * k, 2 * k + 1] for k in range(5)], -1.0, atol=0.01)
    assert exercises.typicality_rho_reference(*exercises.planted_gradient()) == pytest.approx(1.0)


def test_learner_notebooks_are_the_pages_without_solutions(root):
    for page in exercises.exercise_pages(root):
        learner = page.parent / exercises.LEARNER_DIR / page.name
        assert json.loads(learner.read_text()) == exercises.learner_notebook(page), f"{learner}: run make notebooks"
        solution = next(c for c in json.loads(page.read_text())["cells"]
                        if exercises.SOLUTION_TAG in c["metadata"].get("tags", []))
        body = [line.strip() for line in "".join(solution["source"]).split('"""', 2)[-1].splitlines() if line.strip()]
        shown = {line.strip() for cell in json.loads(learner.read_text())["cells"]
                 for line in "".join(cell["source"]).splitlines()}
        assert body and not shown & set(body), f"{learner} holds solution lines {sorted(shown & set(body))}"


def test_each_page_links_its_learner_notebook_and_itself_on_colab(root):
    for page in PAGES:
        links = exercises.colab_links(page)
        for target in (f"notebooks/exercises/{exercises.LEARNER_DIR}/{page}.ipynb",
                       f"notebooks/exercises/{page}.ipynb"):
            assert f"/{target})" in links and (root / target).is_file(), target


def test_fold_centre_reference_is_what_the_book_does_to_a_sae_lens_sae():
    from helpers import sae

    trained = sae._build(sae.SAESettings(expansion=2), d_in=6)
    params = exercises.random_sae()
    with torch.no_grad():
        trained.b_enc.copy_(params["b_enc"])
        trained.b_dec.copy_(params["b_dec"])
    w_enc, w_dec = trained.W_enc.detach().clone(), trained.W_dec.detach().clone()
    before = trained.decode(trained.encode(params["x"] - params["centre"])).detach() + params["centre"]
    b_enc, b_dec = exercises.fold_centre_reference(w_enc, params["b_enc"], params["b_dec"], params["centre"])
    sae._fold_center(trained, params["centre"])
    torch.testing.assert_close(trained.b_enc.detach(), b_enc)
    torch.testing.assert_close(trained.b_dec.detach(), b_dec)
    codes = exercises.sae_encode(params["x"], w_enc, b_enc)
    torch.testing.assert_close(trained.encode(params["x"]).detach(), codes, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(exercises.sae_decode(codes, w_dec, b_dec), before, rtol=1e-4, atol=1e-4)


def _solution(root, page: str) -> Callable:
    """The function a page's solution cell defines (the page run as the book runs it, checks included)."""
    namespace: dict = {}
    for _, source in _cells(root, page):
        exec(compile(source, f"{page}.py", "exec"), namespace)  # noqa: S102 - the page's own code
    return namespace[exercises.EXERCISES[page][0]]


@pytest.fixture(scope="module")
def real(root) -> dict:
    """Real inputs cut from the ci run (`python -m helpers.exercises --fixture`), the sample as a table."""
    cut = exercises.load_fixture(root)
    cut["sample"] = pd.DataFrame({k: cut[k] for k in ("sampled_dimension", "sample_type", "m_virtue")})
    return cut


def test_each_solution_equals_the_chapters_helper_on_real_inputs_from_the_ci_run(root, real):
    from helpers import categorical, features, pruning, robustness, steering
    from helpers.activations import pool

    x, sample = real["x"], real["sample"]
    resid, mask = torch.as_tensor(real["resid"]), torch.as_tensor(real["mask"])
    for key, value in _solution(root, "E1_pooling")(resid, mask).items():
        torch.testing.assert_close(value, pool(resid, mask)[key], rtol=0, atol=1e-5)
    cosines = categorical.cosine_matrix(categorical.category_centres(categorical.centre(x), sample))
    np.testing.assert_allclose(_solution(root, "E2_prototype_cosines")(x, sample), cosines, atol=1e-6)
    care = ((sample["sampled_dimension"] == "care-harm") & sample["sample_type"].str.startswith("virtue")).to_numpy()
    xc = categorical.centre(x)
    prototype = xc[care & (sample["sample_type"] == "virtue_typical").to_numpy()].mean(0)
    want = exercises.correlation(sample["m_virtue"][care].to_numpy(), exercises._cosines_to(xc[care], prototype))
    assert _solution(root, "E3_typicality_rho")(xc[care], prototype, sample["m_virtue"][care].to_numpy()) == \
        pytest.approx(want["spearman"], abs=1e-9)
    statistic = lambda z: categorical.cosine_matrix(categorical.category_centres(categorical.centre(z), sample))[0, 1]  # noqa: E731
    band = robustness.permutation_null(statistic, x, 40, 3)
    assert _solution(root, "E4_null_band")(statistic, x, 40, 3) == pytest.approx((band["lo"], band["hi"]), abs=1e-9)
    w_enc, b_enc, b_dec = (torch.as_tensor(real[k]) for k in ("w_enc", "b_enc", "b_dec"))
    centre = torch.as_tensor(x.mean(0))
    folded = _solution(root, "E5_fold_centre")(w_enc, b_enc + centre @ w_enc, b_dec - centre, centre)
    torch.testing.assert_close(folded[0], b_enc, rtol=1e-6, atol=1e-4)  # the cached SAE's own (folded) biases back
    torch.testing.assert_close(folded[1], b_dec, rtol=1e-6, atol=1e-5)  # (b_dec − c) + c rounds in float32
    assert (_solution(root, "E6_latent_classes")(real["r"]) == features.classify(real["r"])).all()
    skip = ~mask.bool()
    skip[torch.arange(len(mask)), mask.argmax(1)] = True  # padding and each text's first real token (the sink)
    edit = lambda h: h + 4.0 * torch.as_tensor(real["w_dec"][0])  # noqa: E731 - a real SAE decoder direction
    for r in (resid, resid[:, -1:]):
        torch.testing.assert_close(_solution(root, "E7_steering_hook")(edit, skip)(r.clone(), None),
                                   steering.steering_hook(edit, skip)(r.clone(), None))
    generator = torch.Generator().manual_seed(8)
    weights = {f"w{i}": torch.as_tensor(real[f"weight_{i}"]) for i in range(2)}
    grads = {n: torch.randn(w.shape, generator=generator) for n, w in weights.items()}
    keep = {n: torch.rand(w.shape, generator=generator) for n, w in weights.items()}
    chosen = _solution(root, "E8_signed_selection")(weights, grads, keep, 0.1, 0.05)
    for name, want in pruning.select(pruning.prune_scores(weights, grads), keep, 0.1, 0.05).items():
        assert sorted(chosen[name].tolist()) == sorted(want.tolist()), name
