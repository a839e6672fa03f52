"""Checks for the exercise pages (`notebooks/exercises/`): each runs the learner's function on a planted case whose
answer is known in advance, then on seeded random inputs against the book's own helper, and names the likely
mistake when the output equals a known wrong answer (a "mutant"). `MUTANTS` holds those wrong answers as code, so
the tests prove that every check rejects them.

`python -m helpers.exercises` writes the learner notebooks (`notebooks/exercises/learner/`): the exercise pages
without their `solution` cells; `--fixture` cuts `FIXTURE`, small real inputs for every exercise, from the `ci`
run's caches (the tests check each page's solution against the chapter's helper on it).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from helpers import activations, categorical, pruning, robustness
from helpers.gradient import correlation
from helpers.models import to_device
from helpers.data import DIMENSIONS, FOUNDATIONS
from helpers.paths import atomic_write_text, project_root

SOLUTION_TAG = "solution"  # cells the learner notebooks leave out
LEARNER_DIR = "learner"  # beside the exercise pages
FIXTURE = Path("tests") / "fixtures" / "exercises_ci.npz"  # relative to the project root


class ExerciseFailed(AssertionError):
    """The learner's function gave a wrong answer; the message says which case and, where known, which mistake."""


def _close(got: object, want: object, atol: float) -> bool:
    """Whether two answers (arrays, numbers, or dicts of index arrays) agree within `atol`."""
    if isinstance(want, dict):
        return (isinstance(got, dict) and got.keys() == want.keys()
                and all(_close(got[k], want[k], atol) for k in want))
    if isinstance(want, np.ndarray) and want.dtype.kind in "US":  # labels: equal, element for element
        got = np.asarray(got)
        return got.shape == want.shape and bool((got.astype(str) == want).all())
    try:
        got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    except (TypeError, ValueError):
        return False
    return got.shape == want.shape and bool(np.allclose(got, want, atol=atol, rtol=0, equal_nan=True))


def _judge(exercise: str, case: str, got: object, want: object, mutants: dict[str, object], atol: float) -> None:
    """Pass if `got` is `want`; else raise naming the mutant it equals, or showing both answers."""
    if _close(got, want, atol):
        return
    for hint, wrong in mutants.items():
        if _close(got, wrong, atol):
            raise ExerciseFailed(f"{exercise}, {case}: {hint}")
    raise ExerciseFailed(f"{exercise}, {case}: expected\n{want}\ngot\n{got}")


# ---------- E1: pooling a padded batch (chapter 02) ----------

def pool_reference(resid: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """The book's answer: `activations.pool`."""
    return activations.pool(resid, mask)


def planted_batch() -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Three texts in one batch, worked out by hand: a left-padded 3-token text, a right-padded 2-token text and a
    one-token text (whose sink-free mean is its mean), with residual value = 10 × position + 1 for real tokens
    and 99 on padding (so averaging padding in is visible)."""
    mask = torch.tensor([[0, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 1]])
    position = torch.arange(4.0).expand(3, 4)
    resid = torch.where(mask.bool(), 10 * position + 1, torch.tensor(99.0))[..., None].repeat(1, 1, 2)
    expected = {"mean": torch.tensor([21.0, 6.0, 31.0]), "mean_nosink": torch.tensor([26.0, 11.0, 31.0]),
                "last": torch.tensor([31.0, 11.0, 31.0])}
    return resid, mask, {k: v[:, None].repeat(1, 2) for k, v in expected.items()}


def _padding_averaged(resid, mask):
    """The mutant whose mean counts the padding."""
    out = pool_reference(resid, mask)
    return {**out, "mean": resid.mean(1)}


def _position_zero_dropped(resid, mask):
    """The mutant that drops position 0 instead of each text's first real token."""
    out = pool_reference(resid, mask)
    return {**out, "mean_nosink": resid[:, 1:].mul(mask[:, 1:, None]).sum(1) / mask[:, 1:].sum(1, keepdim=True)}


def _last_position(resid, mask):
    """The mutant that takes the last position, padding or not."""
    return {**pool_reference(resid, mask), "last": resid[:, -1]}


E1_MUTANTS = {
    "padding averaged in: weight each position by the mask and divide by the number of real tokens":
        _padding_averaged,
    "the sink is position 0 only under right padding: drop each text's first *real* token":
        _position_zero_dropped,
    "the last position is padding under right padding: take each text's last *real* token": _last_position,
}


def check_pool(pool: Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]) -> None:
    """E1: a hand-worked batch with left and right padding and a one-token text, then a random one against
    `activations.pool`."""
    resid, mask, expected = planted_batch()
    for case, (r, m, want) in {"the hand-worked batch": (resid, mask, expected),
                               "a random batch": _random_batch()}.items():
        got = pool(r, m)
        for key in ("mean", "mean_nosink", "last"):
            if key not in got:
                raise ExerciseFailed(f"E1: return a dict with 'mean', 'mean_nosink' and 'last'; '{key}' is missing")
            _judge("E1", f"{case}, '{key}'", got[key].detach().numpy(), want[key].numpy(),
                   {hint: wrong(r, m)[key].numpy() for hint, wrong in E1_MUTANTS.items()}, 1e-5)


def _random_batch(seed: int = 5) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """A seeded batch mixing left and right padding and a one-token text, with the book's poolings."""
    generator = torch.Generator().manual_seed(seed)
    resid = torch.randn(6, 7, 4, generator=generator)
    lengths, left = [7, 1, 3, 5, 2, 4], [False, True, True, False, True, False]
    mask = torch.zeros(6, 7, dtype=torch.long)
    for row, (n, is_left) in enumerate(zip(lengths, left)):
        mask[row, 7 - n:] = 1 if is_left else 0
        if not is_left:
            mask[row, :n] = 1
    return resid, mask, pool_reference(resid, mask)


# ---------- E2: prototype cosines after centring (chapter 03) ----------

def planted_sample(per_cell: int = 6, d: int = 12, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """A diagnosis sample whose virtue and vice prototypes point in opposite directions (virtue–vice cosine −1 after
    centring) on top of a large shared offset, with non-typical rows halfway and neutral rows at the offset."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((d, len(FOUNDATIONS))))[0].T
    scale = {"virtue_typical": 1.0, "virtue": 0.5, "vice_typical": -1.0, "vice": -0.5, "neutral": 0.0}
    rows, x = [], []
    for k, foundation in enumerate(FOUNDATIONS):
        for kind, s in scale.items():
            for _ in range(per_cell):
                rows.append({"sampled_dimension": foundation, "sample_type": kind})
                x.append(s * basis[k] + 20.0 / np.sqrt(d) + 0.01 * rng.standard_normal(d))
    return np.array(x), pd.DataFrame(rows)


def prototype_cosines_reference(x: np.ndarray, sample: pd.DataFrame) -> np.ndarray:
    """The book's answer: `categorical.cosine_matrix` of the centres of the centred typical rows."""
    return categorical.cosine_matrix(categorical.category_centres(categorical.centre(x), sample))


def _all_polar_centres(x: np.ndarray, sample: pd.DataFrame) -> np.ndarray:
    """Centres from every row of a pole (typical or not), the mutant that ignores `*_typical`."""
    kinds = sample["sample_type"].str.replace("_typical", "").to_numpy()
    xc = categorical.centre(x)
    return np.stack([xc[(sample["sampled_dimension"].to_numpy() == f) & (kinds == pole)].mean(0)
                     for f in FOUNDATIONS for pole in ("virtue", "vice")])


E2_MUTANTS: dict[str, Callable[[np.ndarray, pd.DataFrame], np.ndarray]] = {
    "no centring: subtract the mean over all rows before taking category means (the shared offset makes every "
    "pair look alike)": lambda x, s: categorical.cosine_matrix(categorical.category_centres(x, s)),
    "plain dot products: divide by both centres' norms": lambda x, s: (
        (c := categorical.category_centres(categorical.centre(x), s)) @ c.T),
    "centres from every row of the pole: use only the `*_typical` rows": lambda x, s: (
        categorical.cosine_matrix(_all_polar_centres(x, s))),
}


def check_prototype_cosines(prototype_cosines: Callable[[np.ndarray, pd.DataFrame], np.ndarray]) -> None:
    """E2: a planted sample (virtue–vice cosines −1), then random rows against `categorical`'s answer."""
    x, sample = planted_sample()
    got = np.asarray(prototype_cosines(x, sample))
    if got.shape != (len(DIMENSIONS), len(DIMENSIONS)):
        raise ExerciseFailed(f"E2: expected a [10, 10] matrix (one row per category), got shape {got.shape}")
    mutants = {hint: wrong(x, sample) for hint, wrong in E2_MUTANTS.items()}
    virtue_vice = np.array([got[2 * k, 2 * k + 1] for k in range(len(FOUNDATIONS))])
    if not np.allclose(virtue_vice, -1.0, atol=0.01):
        _judge("E2", "planted opposite poles", got, prototype_cosines_reference(x, sample), mutants, 1e-6)
    rng = np.random.default_rng(1)
    x = rng.normal(size=x.shape) + rng.normal(size=x.shape[1]) * 3
    _judge("E2", "random rows", np.asarray(prototype_cosines(x, sample)), prototype_cosines_reference(x, sample),
           {hint: wrong(x, sample) for hint, wrong in E2_MUTANTS.items()}, 1e-6)


# ---------- E3: the typicality gradient as a rank correlation (chapter 04) ----------

def typicality_rho_reference(x_centred: np.ndarray, centre: np.ndarray, typicality: np.ndarray) -> float:
    """The book's answer: Spearman ρ of human typicality with each row's cosine to the category's prototype."""
    return correlation(typicality, _cosines_to(x_centred, centre))["spearman"]


def _cosines_to(x: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Each row's cosine with `centre`."""
    return x @ centre / (np.linalg.norm(x, axis=1) * np.linalg.norm(centre))


def _pearson_of_cosines(x: np.ndarray, c: np.ndarray, t: np.ndarray) -> float:
    """The mutant that correlates values, not ranks."""
    return float(np.corrcoef(t, _cosines_to(x, c))[0, 1])


def _spearman_of_dots(x: np.ndarray, c: np.ndarray, t: np.ndarray) -> float:
    """The mutant that ranks dot products, not cosines."""
    from scipy.stats import spearmanr

    return float(spearmanr(t, x @ c).statistic)


E3_MUTANTS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], float]] = {
    "Pearson's r of the cosines: the chapter ranks them (Spearman), which only asks whether more typical means "
    "closer": _pearson_of_cosines,
    "dot products, not cosines: a long activation is not a more typical one; divide by the norms":
        _spearman_of_dots,
    "the sign is flipped: more typical rows should come out *closer* (higher cosine), so ρ > 0 on the planted "
    "case": lambda x, c, t: -typicality_rho_reference(x, c, t),
}


def planted_gradient(n: int = 60, d: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows whose angle to the prototype shrinks as typicality t grows (so ρ = 1 exactly), each scaled by a random
    length between 0.1 and 10 (which a cosine ignores and a dot product does not), the prototype, and t."""
    rng = np.random.default_rng(seed)
    centre, off_axis = np.eye(d)[0], np.eye(d)[1]
    t = rng.permutation(np.linspace(0.05, 1.0, n))[:, None]
    return (t * centre + (1 - t) * off_axis) * 10 ** rng.uniform(-1, 1, (n, 1)), centre, t[:, 0]


def check_typicality_rho(typicality_rho: Callable[[np.ndarray, np.ndarray, np.ndarray], float]) -> None:
    """E3: a planted gradient (ρ = 1), then random rows against the book's `gradient.correlation`."""
    x, centre, t = planted_gradient()
    got = typicality_rho(x, centre, t)
    _judge("E3", "planted gradient (ρ = 1)", got, 1.0,
           {hint: wrong(x, centre, t) for hint, wrong in E3_MUTANTS.items()}, 1e-9)
    rng = np.random.default_rng(2)
    x, centre, t = rng.normal(size=(80, 6)), rng.normal(size=6), rng.choice([0.125, 0.25, 0.5, 0.75, 1.0], 80)
    _judge("E3", "random rows with tied typicality", typicality_rho(x, centre, t),
           typicality_rho_reference(x, centre, t), {hint: wrong(x, centre, t) for hint, wrong in E3_MUTANTS.items()},
           1e-9)


# ---------- E4: a label-permutation null band for any statistic (chapters 03–06) ----------

def null_band_reference(statistic: Callable[[np.ndarray], float], x: np.ndarray, n_perm: int, seed: int
                        ) -> tuple[float, float]:
    """The book's answer: `robustness.permutation_null`'s central 95 % interval."""
    band = robustness.permutation_null(statistic, x, n_perm, seed)
    return band["lo"], band["hi"]


def _columns_shuffled(statistic, x, n_perm, seed):
    """The mutant that permutes dimensions instead of rows."""
    rng = np.random.default_rng(seed)
    values = [statistic(x[:, rng.permutation(x.shape[1])]) for _ in range(n_perm)]
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def _ninety(statistic, x, n_perm, seed):
    """The mutant that returns the central 90 % interval."""
    rng = np.random.default_rng(seed)
    values = [statistic(x[rng.permutation(len(x))]) for _ in range(n_perm)]
    return float(np.percentile(values, 5)), float(np.percentile(values, 95))


def _unshuffled(statistic, x, n_perm, seed):  # noqa: ARG001 - the mutant forgets to shuffle
    """The mutant that scores the unshuffled rows every time."""
    value = statistic(x)
    return value, value


E4_MUTANTS = {
    "columns shuffled: the null breaks the link between rows and labels, so permute the rows "
    "(`x[rng.permutation(len(x))]`)": _columns_shuffled,
    "a 90 % band: the central 95 % runs from the 2.5th to the 97.5th percentile": _ninety,
    "nothing shuffled: every draw must score a freshly permuted copy of x": _unshuffled,
}


def check_null_band(null_band: Callable[[Callable[[np.ndarray], float], np.ndarray, int, int], tuple[float, float]]
                    ) -> None:
    """E4: a planted association far outside its null, then the book's band on the same seed (same draws)."""
    rng = np.random.default_rng(3)
    labels = np.repeat([0.0, 1.0], 50)
    x = np.column_stack([labels + 0.3 * rng.standard_normal(100), rng.standard_normal((100, 3))])

    def statistic(rows: np.ndarray) -> float:
        return float(np.corrcoef(rows[:, 0], labels)[0, 1])

    got = tuple(float(v) for v in null_band(statistic, x, 200, 0))
    mutants = {hint: wrong(statistic, x, 200, 0) for hint, wrong in E4_MUTANTS.items()}
    _judge("E4", "planted association, seed 0", got, null_band_reference(statistic, x, 200, 0), mutants, 1e-12)
    if not got[0] < 0 < got[1] < statistic(x):
        raise ExerciseFailed("E4: the null band should straddle 0 and lie far below the planted correlation")


# ---------- E5: folding the training centre into an SAE's biases (chapter 08) ----------

def sae_encode(x: torch.Tensor, w_enc: torch.Tensor, b_enc: torch.Tensor) -> torch.Tensor:
    """The book's SAE codes (sae-lens `StandardSAE` without `apply_b_dec_to_input`): ReLU(x W_enc + b_enc)."""
    return torch.relu(x @ w_enc + b_enc)


def sae_decode(codes: torch.Tensor, w_dec: torch.Tensor, b_dec: torch.Tensor) -> torch.Tensor:
    """The reconstruction: codes W_dec + b_dec."""
    return codes @ w_dec + b_dec


def fold_centre_reference(w_enc: torch.Tensor, b_enc: torch.Tensor, b_dec: torch.Tensor, centre: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """The book's answer (`sae._fold_center`): b_enc − c W_enc and b_dec + c."""
    return b_enc - centre @ w_enc, b_dec + centre


E5_MUTANTS = {
    "the encoder bias moved the wrong way: the folded SAE sees x, not x − c, so subtract c W_enc from b_enc":
        lambda w, be, bd, c: (be + c @ w, bd + c),
    "the decoder bias was left alone: the reconstruction of x − c needs c added back":
        lambda w, be, bd, c: (be - c @ w, bd),
    "only the decoder bias moved: this SAE does not subtract b_dec from its input, so the codes need b_enc − c W_enc":
        lambda w, be, bd, c: (be, bd + c),
    "c subtracted from the decoder bias: the SAE reconstructs x − c, and x = (x − c) + c":
        lambda w, be, bd, c: (be - c @ w, bd - c),
}


def random_sae(d_in: int = 6, d_sae: int = 12, seed: int = 6) -> dict[str, torch.Tensor]:
    """A seeded random SAE (weights, biases), a training centre and a batch of raw activations."""
    generator = torch.Generator().manual_seed(seed)
    return {"w_enc": torch.randn(d_in, d_sae, generator=generator), "b_enc": torch.randn(d_sae, generator=generator),
            "w_dec": torch.randn(d_sae, d_in, generator=generator), "b_dec": torch.randn(d_in, generator=generator),
            "centre": 5 * torch.randn(d_in, generator=generator), "x": torch.randn(20, d_in, generator=generator) + 5}


def check_fold_centre(fold_centre: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> None:
    """E5: the folded SAE on raw x must give the codes of the trained SAE on x − c and its reconstruction plus c."""
    p = random_sae()
    b_enc, b_dec = fold_centre(p["w_enc"], p["b_enc"], p["b_dec"], p["centre"])

    def outputs(biases: tuple[torch.Tensor, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
        codes = sae_encode(p["x"], p["w_enc"], biases[0])
        return codes.numpy(), sae_decode(codes, p["w_dec"], biases[1]).numpy()

    trained = sae_encode(p["x"] - p["centre"], p["w_enc"], p["b_enc"])
    want = (trained.numpy(), (sae_decode(trained, p["w_dec"], p["b_dec"]) + p["centre"]).numpy())
    mutants = {hint: outputs(wrong(p["w_enc"], p["b_enc"], p["b_dec"], p["centre"]))
               for hint, wrong in E5_MUTANTS.items()}
    got = outputs((torch.as_tensor(b_enc), torch.as_tensor(b_dec)))
    _judge("E5", "codes of raw x", got[0], want[0], {h: m[0] for h, m in mutants.items()}, 1e-4)
    _judge("E5", "reconstruction of raw x", got[1], want[1], {h: m[1] for h, m in mutants.items()}, 1e-4)


# ---------- E6: monosemantic, polysemantic and weak latents (chapter 09) ----------

def classify_reference(r: np.ndarray) -> np.ndarray:
    """The book's answer: `features.classify` with its thresholds (weak below |r| 0.05, significant above 0.1)."""
    from helpers.features import classify

    return classify(r)


def planted_correlations() -> tuple[np.ndarray, np.ndarray]:
    """Six latents' correlations with the 10 dimensions (care-harm's virtue and vice are columns 0 and 1) and their
    classes, worked out by hand."""
    r = np.zeros((6, len(DIMENSIONS)))
    r[0, 0] = 0.3  # one significant dimension
    r[1, [0, 1]] = 0.3, -0.25  # care's virtue and vice: one foundation
    r[2, [0, 4]] = 0.3, 0.2  # care and a second foundation
    r[3, 3] = 0.04  # nothing above 0.05
    r[4, 5] = -0.4  # one significant, negative
    r[5, [2, 6, 8]] = 0.2, 0.15, 0.12  # three foundations
    return r, np.array(["monosemantic", "monosemantic", "polysemantic", "weak", "monosemantic", "polysemantic"])


def _signed(r: np.ndarray) -> np.ndarray:
    """The mutant that ranks signed correlations, so strong negative ones are missed."""
    from helpers import features

    return features.classify(np.clip(r, 0, None))


E6_MUTANTS = {
    "a strong negative correlation counts: rank |r|, not r": _signed,
    "virtue and vice of one foundation are one concept: two significant dimensions in the same foundation are "
    "monosemantic": lambda r: np.where((np.abs(r) > 0.1).sum(1) == 1, "monosemantic",
                                       np.where(np.abs(r).max(1) < 0.05, "weak", "polysemantic")),
    "weak means every |r| below 0.05, not below the significance level 0.1": lambda r: np.where(
        np.abs(r).max(1) < 0.1, "weak", classify_reference(r)),
}


def check_classify(classify: Callable[[np.ndarray], np.ndarray]) -> None:
    """E6: six hand-classified latents, then random correlations against `features.classify`."""
    r, expected = planted_correlations()
    _judge("E6", "the hand-classified latents", classify(r), expected,
           {hint: wrong(r) for hint, wrong in E6_MUTANTS.items()}, 0)
    r = np.random.default_rng(8).normal(scale=0.08, size=(200, len(DIMENSIONS)))
    _judge("E6", "random correlations", classify(r), classify_reference(r),
           {hint: wrong(r) for hint, wrong in E6_MUTANTS.items()}, 0)


# ---------- E7: the steering hook (chapter 11) ----------

def steering_hook_reference(edit: Callable[[torch.Tensor], torch.Tensor], skip: torch.Tensor) -> Callable:
    """The book's answer: `steering.steering_hook`."""
    from helpers.steering import steering_hook

    return steering_hook(edit, skip)


def _edits_everything(edit, skip):  # noqa: ARG001 - the mutant ignores skip
    """The mutant that also edits padding and each prompt's sink."""
    return lambda resid, hook=None: edit(resid.float()).to(resid.dtype)


def _skips_generated(edit, skip):
    """The mutant that returns generated tokens unedited."""
    reference = steering_hook_reference(edit, skip)
    return lambda resid, hook=None: resid if resid.shape[1] != skip.shape[1] else reference(resid, hook)


def _in_place(edit, skip):
    """The mutant that writes the edit into the model's own tensor."""
    def hook(resid, hook=None):  # noqa: ARG001 - TransformerLens hook signature
        keep = skip if resid.shape[1] == skip.shape[1] else torch.zeros(resid.shape[:2], dtype=torch.bool)
        resid[~keep] = edit(resid[~keep].float()).to(resid.dtype)
        return resid
    return hook


E7_MUTANTS = {
    "padding and the sink were edited too: leave the positions `skip` marks alone during the prefill":
        _edits_everything,
    "generated tokens came back unedited: with a KV cache each new token arrives alone, and it must be steered "
    "(`skip` describes the prefill only)": _skips_generated,
    "the hook changed the tensor it was given: edit a copy (`resid.clone()`), the model may still read the "
    "original": _in_place,
}


def check_steering_hook(steering_hook: Callable[[Callable, torch.Tensor], Callable]) -> None:
    """E7: a left-padded prefill (padding and sinks untouched, the rest edited), then a generated token (edited), an
    α = 0 edit (the identity), and the input tensor left as it was."""
    generator = torch.Generator().manual_seed(7)
    skip = torch.tensor([[True, True, False, False], [True, False, False, False]])  # row 0: padding, then the sink
    edit = lambda x: x + 1.0  # noqa: E731 - the simplest edit whose effect is visible everywhere
    for case, resid in (("the prefill", torch.randn(2, 4, 3, generator=generator)),
                        ("a generated token", torch.randn(2, 1, 3, generator=generator))):
        given = resid.clone()
        mutants = {hint: wrong(edit, skip)(resid.clone(), None).numpy() for hint, wrong in E7_MUTANTS.items()}
        got = steering_hook(edit, skip)(resid, None)
        if not torch.equal(resid, given):
            raise ExerciseFailed(f"E7, {case}: {next(h for h in E7_MUTANTS if h.startswith('the hook changed'))}")
        _judge("E7", case, got.detach().numpy(), steering_hook_reference(edit, skip)(given.clone(), None).numpy(),
               mutants, 1e-6)
    resid = torch.randn(2, 4, 3, generator=generator)
    _judge("E7", "an α = 0 edit (must be the identity)", steering_hook(lambda x: x, skip)(resid.clone(), None).numpy(),
           resid.numpy(), {}, 0)


# ---------- E8: signed weight scores and the top-q-minus-top-p selection (chapter 12) ----------

def selection_reference(weights: dict[str, torch.Tensor], grads: dict[str, torch.Tensor],
                        keep: dict[str, torch.Tensor], q: float, p: float) -> dict[str, torch.Tensor]:
    """The book's answer: `pruning.select` of the signed scores −W ⊙ G against the keep scores."""
    return pruning.select(pruning.prune_scores(weights, grads), keep, q, p)


def _floor_select(weights, grads, keep, q, p):
    """The mutant that rounds the per-matrix counts down."""
    chosen = {}
    for name, w in weights.items():
        n = w.numel()
        top = pruning._top(-(w * grads[name]), math.floor(q * n))
        chosen[name] = top[~torch.isin(top, pruning._top(keep[name], math.floor(p * n)))]
    return chosen


E8_MUTANTS = {
    "+W ⊙ G: zeroing w changes the loss by about −w·g, so the weights that support the behaviour score −W ⊙ G":
        lambda w, g, k, q, p: pruning.select({n: w[n] * g[n] for n in w}, k, q, p),
    "|W ⊙ G| (unsigned): the sign says whether a weight supports the behaviour or works against it":
        lambda w, g, k, q, p: pruning.select(pruning.unsigned_scores(w, g), k, q, p),
    "the preserve set is ignored: remove the top-p keep scores from the candidates": lambda w, g, k, q, p: (
        pruning.select(pruning.prune_scores(w, g), k, q, 0.0)),
    "floor instead of ceil: a small matrix must still get ⌈q·numel⌉ candidates": _floor_select,
}


def planted_weights(seed: int = 0) -> tuple[dict, dict, dict]:
    """Two small matrices whose selection (q = 0.3, p = 0.25) is known by hand. In `a` (4 weights) the ⌈1.2⌉ = 2
    candidates are weights 3 and 1 (−w·g = 6 and 4), and the benign data's most needed weight (⌈1⌉ = 1 protected)
    is weight 1: only weight 3 is pruned. In `b` (6 weights) the ⌈1.8⌉ = 2 candidates are weights 4 and 3
    (−w·g = 2.5 and 1.2); the protected weights 0 and 1 are not among them."""
    weights = {"a": torch.tensor([[1.0, 2.0], [-1.0, 3.0]]), "b": torch.arange(1.0, 7.0).reshape(2, 3)}
    grads = {"a": torch.tensor([[0.5, -2.0], [0.0, -2.0]]), "b": -torch.tensor([[1.0, 0.1, 0.2], [0.3, 0.5, 0.05]])}
    keep = {"a": torch.tensor([[0.0, 9.0], [0.0, 0.0]]), "b": torch.tensor([[0.5, 0.4, 0.0], [0.0, 0.0, 0.0]])}
    return weights, grads, keep


def check_selection(select: Callable[..., dict[str, torch.Tensor]]) -> None:
    """E8: the planted matrices (a: weight 3, b: weights 3 and 4), then random ones against `pruning`."""
    def canonical(chosen: dict) -> dict:
        return {name: np.sort(np.asarray(idx, dtype=int)) for name, idx in chosen.items()}

    for case, (w, g, k), q, p in (("planted matrices", planted_weights(), 0.3, 0.25),
                                  ("random matrices", _random_weights(), 0.1, 0.05)):
        got = canonical(select(w, g, k, q, p))
        mutants = {hint: canonical(wrong(w, g, k, q, p)) for hint, wrong in E8_MUTANTS.items()}
        _judge("E8", case, got, canonical(selection_reference(w, g, k, q, p)), mutants, 0)


def _random_weights(seed: int = 4) -> tuple[dict, dict, dict]:
    """Two seeded random matrices with gradients and keep scores."""
    generator = torch.Generator().manual_seed(seed)
    shapes = {"q_proj": (8, 8), "down_proj": (8, 20)}
    weights = {n: torch.randn(s, generator=generator) for n, s in shapes.items()}
    grads = {n: torch.randn(s, generator=generator) for n, s in shapes.items()}
    keep = {n: torch.rand(s, generator=generator) for n, s in shapes.items()}
    return weights, grads, keep


# ---------- the exercise pages ----------

# page -> (the function its learner writes, its check, its mutants: known wrong answers with their hints)
EXERCISES: dict[str, tuple[str, Callable, dict[str, Callable]]] = {
    "E1_pooling": ("pool", check_pool, E1_MUTANTS),
    "E2_prototype_cosines": ("prototype_cosines", check_prototype_cosines, E2_MUTANTS),
    "E3_typicality_rho": ("typicality_rho", check_typicality_rho, E3_MUTANTS),
    "E4_null_band": ("null_band", check_null_band, E4_MUTANTS),
    "E5_fold_centre": ("fold_centre", check_fold_centre, E5_MUTANTS),
    "E6_latent_classes": ("classify", check_classify, E6_MUTANTS),
    "E7_steering_hook": ("steering_hook", check_steering_hook, E7_MUTANTS),
    "E8_signed_selection": ("select", check_selection, E8_MUTANTS),
}


# ---------- real inputs: a fixture cut from the ci run ----------

def _padded(tokens: list[np.ndarray], left: list[bool]) -> tuple[np.ndarray, np.ndarray]:
    """Per-text token residuals `[n_i, d]` as one zero-padded batch `[n, T, d]` (left or right per text), and its mask."""
    width, d = max(len(t) for t in tokens), tokens[0].shape[1]
    resid, mask = np.zeros((len(tokens), width, d), np.float32), np.zeros((len(tokens), width), np.int64)
    for row, (t, is_left) in enumerate(zip(tokens, left)):
        span = slice(width - len(t), width) if is_left else slice(0, len(t))
        resid[row, span], mask[row, span] = t, 1
    return resid, mask


def _token_residuals(model, text: str, layer: int) -> np.ndarray:
    """`[n_tokens, d]` output of block `layer` (the bridge's `hook_resid_post`) for one text."""
    seen = []
    handle = model.blocks()[layer].register_forward_hook(
        lambda module, inputs, output: seen.append(output[0] if isinstance(output, tuple) else output))
    with torch.no_grad():
        model.plain(**to_device(model.tokenizer(text, return_tensors="pt"), model.device))
    handle.remove()
    return seen[0][0].float().cpu().numpy()


def cut_fixture(profile: str = "ci", per_cell: int = 4, n_latents: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    """Small real inputs for every exercise from a run's caches: the SAE model's pooled activations of `per_cell`
    sample rows per (foundation, sample type) at its second SAE layer, those rows' token residuals in a left/right
    padded batch, `n_latents` latents of that layer's trained SAE, and slices of two of the model's weight matrices."""
    from helpers import sae
    from helpers.features import latent_correlations

    run = sae.start_chapter("08_sae", profile, seed)
    P, moral = run.chapter.profile, run.chapter.moral
    layer = run.layers[min(1, len(run.layers) - 1)]
    store = activations.profile_stores(P, activations.prompts(moral.actions, P.template))[P.sae_model]
    sample = moral.sample.groupby(["sampled_dimension", "sample_type"]).head(per_cell).reset_index(drop=True)
    x = robustness.layer_activations(store, sample, layer)
    model = run.corpus.model
    texts = activations.prompts(sample["action"].head(4).tolist(), P.template)
    tokens = [_token_residuals(model, text, layer) for text in texts]
    resid, mask = _padded(tokens, [True, False, True, False])
    trained = sae.ensure_sae(run.corpus, layer, run.settings).sae
    keep = np.random.default_rng(seed).choice(trained.W_enc.shape[1], n_latents, replace=False)
    w_enc, w_dec = (trained.W_enc.detach()[:, keep].numpy(), trained.W_dec.detach()[keep].numpy())
    codes = sae_encode(torch.as_tensor(x), torch.as_tensor(w_enc), trained.b_enc.detach()[keep]).numpy()
    onehot = (sample["sampled_dimension"] + ":" + sample["sample_type"].str.replace("_typical", "")).to_numpy()
    h = np.stack([onehot == f"{f}:{pole}" for f in FOUNDATIONS for pole in ("virtue", "vice")], 1).astype(float)
    weights = [w.detach()[:8, :12].numpy() for w in model.blocks()[layer].parameters() if w.ndim == 2][:2]
    return {"x": x, "sampled_dimension": sample["sampled_dimension"].to_numpy(str),
            "sample_type": sample["sample_type"].to_numpy(str), "m_virtue": sample["m_virtue"].to_numpy(float),
            "resid": resid, "mask": mask, "w_enc": w_enc, "b_enc": trained.b_enc.detach()[keep].numpy(),
            "w_dec": w_dec, "b_dec": trained.b_dec.detach().numpy(), "r": latent_correlations(codes, h),
            **{f"weight_{i}": w for i, w in enumerate(weights)}}


def load_fixture(root: Path | None = None) -> dict[str, np.ndarray]:
    """The committed fixture (`python -m helpers.exercises --fixture` cuts it)."""
    with np.load((root or project_root()) / FIXTURE) as stored:
        return dict(stored)


# ---------- learner notebooks ----------

def colab_links(page: str) -> str:
    """Markdown links that open an exercise page on Colab: the learner notebook (no solutions) and this page."""
    from helpers.book import colab_launch_url

    return (f"Open on Colab: [exercise]({colab_launch_url(f'notebooks/exercises/{LEARNER_DIR}/{page}')}) | "
            f"[with solutions]({colab_launch_url(f'notebooks/exercises/{page}')})")


def exercise_pages(root: Path | None = None) -> list[Path]:
    """The exercise pages' paired notebooks, in order."""
    return sorted(((root or project_root()) / "notebooks" / "exercises").glob("E*.ipynb"))


def learner_notebook(page: Path) -> dict:
    """An exercise page's notebook without its solution cells (outputs stripped, as committed)."""
    notebook = json.loads(page.read_text())
    notebook["cells"] = [c for c in notebook["cells"] if SOLUTION_TAG not in c.get("metadata", {}).get("tags", [])]
    return notebook


def write_learner_notebooks(root: Path | None = None) -> list[Path]:
    """Write every learner notebook beside the exercise pages; return the files."""
    written = []
    for page in exercise_pages(root):
        target = page.parent / LEARNER_DIR / page.name
        target.parent.mkdir(exist_ok=True)
        atomic_write_text(target, json.dumps(learner_notebook(page), indent=1, ensure_ascii=False) + "\n")
        written.append(target)
    return written


def main() -> None:
    """Command line: regenerate the learner notebooks (or, with --fixture, the fixture from the ci caches)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixture", action="store_true", help=f"cut {FIXTURE} from the ci run's caches")
    if parser.parse_args().fixture:
        path = project_root() / FIXTURE
        path.parent.mkdir(exist_ok=True)
        np.savez_compressed(path, **cut_fixture())
        print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")
        return
    for path in write_learner_notebooks():
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
