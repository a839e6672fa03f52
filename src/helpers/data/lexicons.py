"""External human moral data that installs offline: MFD 2.0 word lists (moralizer) and MoralStrength (graded)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.data.socialchem import DIMENSIONS, FOUNDATIONS

# package foundation names -> Social-Chem-101 foundation tokens
_FOUNDATION_OF = {"care": "care-harm", "fairness": "fairness-cheating", "loyalty": "loyalty-betrayal",
                  "authority": "authority-subversion", "sanctity": "sanctity-degradation",
                  "purity": "sanctity-degradation"}
PROTOTYPE_QUANTILE = 0.8  # the most typical fifth of each (foundation, pole) are its prototypes
MORALSTRENGTH_NEUTRAL = 0.125  # |score − 5| / 4 below this (4.5 < score < 5.5): a neutral word


def package_dir(module: str, pip_name: str) -> Path:
    """Folder of an installed package, found without importing it (their imports need spaCy, not installed)."""
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise ModuleNotFoundError(f"package {pip_name} is not installed: pip install --no-deps {pip_name}")
    return Path(list(found.submodule_search_locations)[0])


def _frame(words: list[str], foundations: list[str], poles: list[str], typicality: list[float]) -> pd.DataFrame:
    """A sample frame with the columns the diagnoses read, one row per (word, foundation).

    Lexicons have no crowd "prototype" level, so the most typical fifth of each (foundation, pole) play that role
    (for MFD 2.0, where every word has typicality 1, all words are prototypes).
    """
    typicality_arr = np.asarray(typicality, dtype=float)
    pole_arr = np.asarray(poles)
    vectors = np.zeros((len(words), len(DIMENSIONS)))
    k = np.array([FOUNDATIONS.index(f) for f in foundations])
    virtue, vice = pole_arr == "virtue", pole_arr == "vice"
    vectors[virtue, 2 * k[virtue]] = typicality_arr[virtue]
    vectors[vice, 2 * k[vice] + 1] = typicality_arr[vice]
    groups = pd.Series(typicality_arr).groupby([np.asarray(foundations), pole_arr])
    prototype = (typicality_arr >= groups.transform(lambda t: t.quantile(PROTOTYPE_QUANTILE)).to_numpy()) \
        & (pole_arr != "neutral")
    frame = pd.DataFrame({
        "action": words, "sampled_dimension": foundations, "polarity": poles,
        "sample_type": np.where(prototype, np.char.add(pole_arr.astype(str), "_typical"), pole_arr),
        "score_stratum": np.where(pole_arr == "neutral", 0.0, typicality_arr),
        "m_virtue": np.where(virtue, typicality_arr, 0.0), "m_vice": np.where(vice, typicality_arr, 0.0),
    })
    frame["moral_vector"] = list(vectors)
    return frame


def mfd2_sample() -> pd.DataFrame:
    """MFD 2.0 words (moralizer's `moral_foundations.json`): every word a prototype (typicality 1) of its pole."""
    path = package_dir("moralizer", "moralizer==0.1.4") / "moral_foundations.json"
    lexicon = json.loads(path.read_text(encoding="utf-8"))
    words, foundations, poles = [], [], []
    for name, by_pole in lexicon.items():
        if name not in _FOUNDATION_OF or set(by_pole) != {"virtue", "vice"}:
            raise ValueError(f"{path}: unexpected entry {name!r} with keys {sorted(by_pole)}")
        for pole in ("virtue", "vice"):
            for word in by_pole[pole]:
                words.append(word.replace("_", " "))
                foundations.append(_FOUNDATION_OF[name])
                poles.append(pole)
    return _frame(words, foundations, poles, [1.0] * len(words))


def moralstrength_sample() -> pd.DataFrame:
    """MoralStrength v1.1: words rated 1 (vice) … 9 (virtue) per foundation; typicality = |score − 5| / 4."""
    folder = package_dir("moralstrength", "moralstrength==0.2.13") / "annotations" / "v1.1"
    words, foundations, poles, typicality = [], [], [], []
    for name in ("care", "fairness", "loyalty", "authority", "purity"):
        path = folder / f"{name}.tsv"
        table = pd.read_csv(path, sep="\t")
        if list(table.columns) != ["WORD", "EXPRESSED_MORAL"]:
            raise ValueError(f"{path}: expected columns WORD, EXPRESSED_MORAL; got {list(table.columns)}")
        for line, (word, score) in enumerate(zip(table["WORD"], table["EXPRESSED_MORAL"]), start=2):
            if not 1.0 <= float(score) <= 9.0:
                raise ValueError(f"{path}:{line}: EXPRESSED_MORAL {score!r} outside 1…9")
            t = abs(float(score) - 5.0) / 4.0
            words.append(str(word))
            foundations.append(_FOUNDATION_OF[name])
            poles.append("neutral" if t < MORALSTRENGTH_NEUTRAL else ("virtue" if score > 5 else "vice"))
            typicality.append(t)
    return _frame(words, foundations, poles, typicality)


LEXICONS = {"mfd2": mfd2_sample, "moralstrength": moralstrength_sample}


def external_sample(name: str, max_words: int | None = None, seed: int = 42) -> pd.DataFrame:
    """One lexicon as a diagnosis sample; with `max_words`, a seeded subsample balanced over (foundation, type).

    Each (foundation, sample_type) stratum keeps up to `max_words // n_strata` rows, so every category keeps its
    prototypes (a plain random subsample can leave a category without any).
    """
    if name not in LEXICONS:
        raise ValueError(f"unknown lexicon {name!r}; known lexicons: {sorted(LEXICONS)}")
    frame = LEXICONS[name]()
    if max_words is None or len(frame) <= max_words:
        return frame
    rng = np.random.default_rng(seed)
    strata = frame.groupby(["sampled_dimension", "sample_type"]).indices
    quota = max(1, max_words // len(strata))
    keep = np.concatenate([rng.choice(rows, size=min(quota, len(rows)), replace=False) for rows in strata.values()])
    return frame.iloc[np.sort(keep)].reset_index(drop=True)
