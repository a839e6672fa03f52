"""Social-Chem-101: read and validate the TSV, clean it as the paper does, build 10-dim moral vectors, sample."""

from __future__ import annotations

import collections
import csv
import io
import logging
import shutil
import zipfile
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.paths import atomic_path, cache_dir, download_verified, file_sha256

COLUMNS = (
    "area", "m", "split", "rot-agree", "rot-categorization", "rot-moral-foundations", "rot-char-targeting",
    "rot-bad", "rot-judgment", "action", "action-agency", "action-moral-judgment", "action-agree", "action-legal",
    "action-pressure", "action-char-involved", "action-hypothetical", "situation", "situation-short-id", "rot",
    "rot-id", "rot-worker-id", "breakdown-worker-id", "n-characters", "characters",
)
FOUNDATIONS = (
    "care-harm", "fairness-cheating", "loyalty-betrayal", "authority-subversion", "sanctity-degradation",
)
DIMENSIONS = (
    "care", "harm", "fairness", "cheating", "loyalty", "betrayal", "authority", "subversion", "sanctity",
    "degradation",
)
TYPICALITY_LEVELS = (0.125, 0.25, 0.375, 0.5, 0.75, 1.0)
PAPER_QUOTAS = {"polar": 300, "typical": 150, "neutral": 300}
BUNDLED_TSV = Path(__file__).parent / "files" / "social-chem-sample.tsv"
TSV_MEMBER = "social-chem-101.v1.0.tsv"
SHOWN_DROPS = 5  # rows dropped from the official file that are logged with their file:line
_log = logging.getLogger(__name__)

# Allowed values of the categorical and integer columns (Social-Chem-101 README, spec §9). "" means null.
_INT_VALUES = {
    "m": {1, 3, 5, 50},
    "rot-agree": set(range(5)),
    "rot-bad": {0, 1},
    "action-moral-judgment": set(range(-2, 3)),
    "action-agree": set(range(5)),
    "action-pressure": set(range(-2, 3)),
}
_NULLABLE_INT = {"rot-agree", "action-moral-judgment", "action-agree", "action-pressure"}
_STR_VALUES = {
    "area": {"confessions", "dearabby", "rocstories", "amitheasshole"},
    "split": {"train", "dev", "test", "dev-extra", "test-extra", "analysis", "none"},
    "action-agency": {"", "agency", "experience"},
    "action-legal": {"", "legal", "illegal", "tolerated"},
    "action-hypothetical": {"", "explicit-no", "probable-no", "hypothetical", "probable", "explicit"},
}
_LIST_VALUES = {
    "rot-categorization": {"morality-ethics", "social-norms", "advice", "description"},
    "rot-moral-foundations": set(FOUNDATIONS),
}


class DataFormatError(ValueError):
    """A data file does not follow its schema; the message names the file, line and field."""


class _RowError(ValueError):
    """One row breaks the schema: `reason` names the kind (for counting), the message says what is wrong."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _parse_int(column: str, text: str) -> int | None:
    """Parse an integer cell written as `2`, `-1` or `2.0`; raise naming the column."""
    if text == "":
        if column in _NULLABLE_INT:
            return None
        raise _RowError(f"'{column}' empty", f"column '{column}' is empty but may not be null")
    try:
        number = float(text)
    except ValueError:
        raise _RowError(f"'{column}' not an integer", f"column '{column}' holds {text!r}, not an integer") from None
    if not number.is_integer() or int(number) not in _INT_VALUES[column]:
        raise _RowError(f"'{column}' not allowed",
                        f"column '{column}' holds {text!r}; allowed: {sorted(_INT_VALUES[column])} or empty")
    return int(number)


def _parse_row(row: list[str], index: dict[str, int], width: int) -> dict[str, object]:
    """One data row of `width` fields as a record of typed values, or _RowError for the first field that is wrong."""
    if len(row) != width:
        raise _RowError("field count", f"{len(row)} fields, expected {width}")
    record: dict[str, object] = {}
    for column in COLUMNS:
        cell = row[index[column]]
        if column in _INT_VALUES:
            record[column] = _parse_int(column, cell)
        elif column in _STR_VALUES:
            if cell not in _STR_VALUES[column]:
                raise _RowError(f"'{column}' not allowed",
                                f"column '{column}' holds {cell!r}; allowed: {sorted(_STR_VALUES[column])}")
            record[column] = cell or None
        elif column in _LIST_VALUES:
            bad = [t for t in cell.split("|") if t and t not in _LIST_VALUES[column]]
            if bad:
                raise _RowError(f"'{column}' not allowed", f"column '{column}' holds unknown value(s) {bad}; "
                                                           f"allowed: {sorted(_LIST_VALUES[column])}")
            record[column] = cell or None
        else:
            record[column] = cell or None
    return record


def _tsv_rows(path: Path, text: str) -> list[tuple[int, list[str]]]:
    """Every row of a tab-separated text read with standard CSV quoting, with the line it starts on."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t")
    rows = []
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader, None)
        except csv.Error as error:
            raise DataFormatError(f"{path}:{start}: {error}") from None
        if row is None:
            return rows
        rows.append((start, row))


def read_socialchem_tsv(path: str | Path, strict: bool = True) -> pd.DataFrame:
    """Read a Social-Chem-101 TSV with standard CSV quoting, as pandas does, checking the header and every value.

    Quoted fields (holding tabs, newlines or doubled quotes), CRLF line ends and a UTF-8 BOM are read as the `csv`
    module reads them; nulls become None/NaN.

    A row that breaks the schema raises naming the file and line when `strict`; otherwise it is dropped, counted by
    reason in `attrs["dropped"]`, and the first few are logged and kept in `attrs["dropped_shown"]` as file:line.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as err:
        raise DataFormatError(f"{path}: not valid UTF-8 (byte {err.start}): {err.reason}") from None
    if not text.strip():
        raise DataFormatError(f"{path}: the file is empty; expected a header with the 25 Social-Chem-101 columns")
    rows = _tsv_rows(path, text)
    header = rows[0][1]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise DataFormatError(f"{path}:1: header lacks column(s) {missing}")
    extra = [c for c in header if c not in COLUMNS]
    if extra:
        raise DataFormatError(f"{path}:1: header has unknown column(s) {extra}")
    if len(rows) < 2:
        raise DataFormatError(f"{path}: the file has a header but no data rows")
    index = {c: header.index(c) for c in COLUMNS}
    records, dropped, shown = [], collections.Counter(), []
    for line, row in rows[1:]:
        try:
            records.append(_parse_row(row, index, len(header)))
        except _RowError as bad:
            if strict:
                raise DataFormatError(f"{path}:{line}: {bad}") from None
            dropped[bad.reason] += 1
            if len(shown) < SHOWN_DROPS:
                shown.append(f"{path}:{line}: {bad}")
    if dropped:
        _log.warning("%s: dropped %d of %d rows that break the schema (%s); the first: %s", path, dropped.total(),
                     len(rows) - 1, dict(dropped.most_common()), "; ".join(shown))
    if not records:
        raise DataFormatError(f"{path}: no row follows the schema")
    frame = pd.DataFrame.from_records(records, columns=list(COLUMNS))
    for column in _NULLABLE_INT:
        frame[column] = frame[column].astype("Int64")
    frame.attrs["source"] = str(path)
    frame.attrs["sha256"] = file_sha256(path)
    frame.attrs["dropped"] = dict(dropped.most_common())
    frame.attrs["dropped_shown"] = shown  # the first SHOWN_DROPS of them, as file:line: reason
    return frame


def clean(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """The paper's cleaning (spec §1.2): rot-bad == 0, m == 1, no null action/foundations/judgment/agreement."""
    steps = {"raw": len(frame)}
    frame = frame[frame["rot-bad"] == 0]
    steps["after rot-bad == 0"] = len(frame)
    frame = frame[frame["m"] == 1]
    steps["after m == 1"] = len(frame)
    required = ["action", "rot-moral-foundations", "action-moral-judgment", "action-agree"]
    frame = frame.dropna(subset=required)
    steps["after dropping nulls"] = len(frame)
    frame = frame.reset_index(drop=True)
    frame.insert(0, "id", [f"socialchem_{i:06d}" for i in range(len(frame))])
    return frame, steps


def typicality(judgment: np.ndarray, agree: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Virtue and vice typicality m⁺ = max(0, J/2)·A/4 and m⁻ = max(0, −J/2)·A/4 (spec §1.4)."""
    valence = np.asarray(judgment, dtype=float) / 2.0
    weight = np.asarray(agree, dtype=float) / 4.0
    # `+ 0.0` turns the -0.0 of J = 0 into +0.0, so neutral rows print and group as "0", never "-0"
    return np.maximum(0.0, valence) * weight + 0.0, np.maximum(0.0, -valence) * weight + 0.0


def moral_vectors(frame: pd.DataFrame) -> np.ndarray:
    """The 10-dim moral vector h of each cleaned row: m⁺ at 2k and m⁻ at 2k+1 for every tagged foundation k."""
    m_virtue, m_vice = typicality(frame["action-moral-judgment"].to_numpy(int), frame["action-agree"].to_numpy(int))
    vectors = np.zeros((len(frame), len(DIMENSIONS)))
    for k, foundation in enumerate(FOUNDATIONS):
        tagged = frame["rot-moral-foundations"].map(lambda s, f=foundation: f in s.split("|")).to_numpy(bool)
        vectors[tagged, 2 * k] = m_virtue[tagged]
        vectors[tagged, 2 * k + 1] = m_vice[tagged]
    return vectors


def polarity(m_virtue: np.ndarray, m_vice: np.ndarray) -> np.ndarray:
    """Polarity label: 'virtue' if m⁺ > 0, else 'vice' if m⁻ > 0, else 'neutral' (J = 0 or A = 0)."""
    return np.where(m_virtue > 0, "virtue", np.where(m_vice > 0, "vice", "neutral"))


def with_vectors(frame: pd.DataFrame) -> pd.DataFrame:
    """Add `m_virtue`, `m_vice`, `polarity` and `moral_vector` (10 floats) columns to a cleaned frame."""
    frame = frame.copy()
    m_virtue, m_vice = typicality(frame["action-moral-judgment"].to_numpy(int), frame["action-agree"].to_numpy(int))
    frame["m_virtue"], frame["m_vice"] = m_virtue, m_vice
    frame["polarity"] = polarity(m_virtue, m_vice)
    frame["moral_vector"] = list(moral_vectors(frame))
    return frame


def explode_by_foundation(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (action, tagged foundation), `sampled_dimension` naming the foundation (spec §1.5)."""
    frame = frame.assign(sampled_dimension=frame["rot-moral-foundations"].str.split("|"))
    return frame.explode("sampled_dimension", ignore_index=True)


SAE_SPLITS = ("train", "val", "test")


SPLIT_UNITS = ("row", "situation")


def sae_splits(cleaned: pd.DataFrame, seed: int = 42, fractions: tuple[float, float] = (0.8, 0.1),
               by: str = "row") -> pd.DataFrame:
    """Spec §1.5: shuffle the row ids (or, `by="situation"`, whole situations) with `seed`, cut 80 / 10 / 10 of the
    rows, explode; a `split` column names each part."""
    if not (0 < fractions[0] and 0 < fractions[1] and fractions[0] + fractions[1] < 1):
        raise ValueError(f"fractions must be two positive shares summing below 1 (train, val), got {fractions}")
    if by not in SPLIT_UNITS:
        raise ValueError(f"by must be one of {sorted(SPLIT_UNITS)}, got {by!r}")
    unit_keys = np.arange(len(cleaned)) if by == "row" else cleaned["situation-short-id"].to_numpy(str)
    units, unit_of_row = np.unique(unit_keys, return_inverse=True)
    order = np.random.RandomState(seed).permutation(len(units))
    rows_before = np.concatenate([[0], np.cumsum(np.bincount(unit_of_row, minlength=len(units))[order])[:-1]])
    n_train, n_val = int(fractions[0] * len(cleaned)), int(fractions[1] * len(cleaned))
    part = np.where(rows_before < n_train, "train", np.where(rows_before < n_train + n_val, "val", "test"))
    split = np.empty(len(units), dtype=object)
    split[order] = part
    split = split[unit_of_row]
    for name in SAE_SPLITS:
        if not (split == name).any():
            raise ValueError(f"the {name} split is empty: {len(cleaned)} cleaned rows are too few to cut {fractions}")
    return explode_by_foundation(cleaned.assign(split=split))


def neutral_sources(frame: pd.DataFrame) -> dict[str, int]:
    """Why cleaned rows are neutral: judged fine (J = 0), or a judgment almost nobody shares (A = 0, J ≠ 0)."""
    judgment, agree = frame["action-moral-judgment"].to_numpy(int), frame["action-agree"].to_numpy(int)
    return {"J = 0": int((judgment == 0).sum()), "A = 0, J ≠ 0": int(((agree == 0) & (judgment != 0)).sum())}


def leakage(keys: Sequence[str], split: Sequence[str]) -> dict[str, float]:
    """Per non-train part, the share of its rows whose key (an action text, a situation id) also occurs in train."""
    keys, split = np.asarray(keys, dtype=str), np.asarray(split, dtype=str)
    if keys.shape != split.shape:
        raise ValueError(f"keys and split differ in length: {len(keys)} vs {len(split)}")
    seen = set(keys[split == "train"])
    return {part: float(np.mean([k in seen for k in keys[split == part]]))
            for part in dict.fromkeys(split) if part != "train"}


def stratum_of(exploded: pd.DataFrame) -> pd.Series:
    """The stratum name of each exploded row: `<foundation>/<pole>/<typicality>` or `<foundation>/neutral/0`."""
    typ = np.maximum(exploded["m_virtue"], exploded["m_vice"])
    return exploded["sampled_dimension"] + "/" + exploded["polarity"] + "/" + typ.map(lambda t: f"{t:g}")


def sample_quotas(quota_scale: float) -> dict[str, int]:
    """Per-stratum quotas: the paper's 300 (polar), 150 (typicality 1.0) and 300 (neutral), scaled, at least 1."""
    return {kind: max(1, round(n * quota_scale)) for kind, n in PAPER_QUOTAS.items()}


def stratified_sample(
    exploded: pd.DataFrame, quota_scale: float = 1.0, seed: int = 42, min_per_stratum: int = 1
) -> pd.DataFrame:
    """The diagnosis sample (spec §1.6): per foundation, up to the quota per typicality stratum and neutral.

    A stratum is sampled whole when it holds fewer rows than its quota (as in the paper); a stratum holding fewer
    than `min_per_stratum` rows raises, naming it, since the diagnoses cannot be computed on it.
    """
    quotas = sample_quotas(quota_scale)
    rng = np.random.default_rng(seed)
    strata = stratum_of(exploded)
    picked = []
    for foundation in FOUNDATIONS:
        wanted = [(f"{foundation}/{pole}/{t:g}", pole, t) for pole in ("virtue", "vice") for t in TYPICALITY_LEVELS]
        wanted.append((f"{foundation}/neutral/0", "neutral", 0.0))
        for name, pole, level in wanted:
            rows = np.flatnonzero((strata == name).to_numpy())
            if len(rows) < min_per_stratum:
                raise ValueError(
                    f"stratum {name} has {len(rows)} rows, fewer than min_per_stratum={min_per_stratum}; "
                    "lower min_per_stratum or use a larger data set"
                )
            kind = "neutral" if pole == "neutral" else ("typical" if level == 1.0 else "polar")
            take = rng.choice(rows, size=min(quotas[kind], len(rows)), replace=False)
            part = exploded.iloc[np.sort(take)].copy()
            part["sample_type"] = pole if kind != "typical" else f"{pole}_typical"
            part["score_stratum"] = level
            picked.append(part)
    return pd.concat(picked, ignore_index=True)


def download_socialchem(url: str, sha256: str | None = None) -> Path:
    """Fetch the official Social-Chem-101 zip (http(s) or file://) once, verify it, and return the extracted TSV.

    With no published checksum, the first download's SHA-256 is recorded next to the cache and every later use
    must match it; a mismatch raises instead of silently using different data.
    """
    folder = cache_dir("downloads", "socialchem")
    try:
        archive = download_verified(url, folder / "social-chem-101.zip", sha256)
    except ValueError as error:
        raise DataFormatError(str(error)) from None
    tsv = folder / TSV_MEMBER
    if not tsv.exists():
        with zipfile.ZipFile(archive) as bundle:
            members = [n for n in bundle.namelist() if n.endswith(TSV_MEMBER)]
            if not members:
                raise DataFormatError(f"{archive}: no member named {TSV_MEMBER} in {bundle.namelist()}")
            with atomic_path(tsv) as tmp, bundle.open(members[0]) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
    return tsv


def socialchem_path(source: str, sha256: str | None = None) -> Path:
    """The TSV for a profile's `socialchem_source`: the bundled sample, or the downloaded official file."""
    if source == "bundled":
        return BUNDLED_TSV
    return download_socialchem(source, sha256)


@dataclasses.dataclass(frozen=True)
class MoralData:
    """Every stage of chapter 01's pipeline: raw rows, cleaned rows with vectors, exploded rows, the sample."""

    raw: pd.DataFrame
    cleaned: pd.DataFrame
    steps: dict[str, int]
    exploded: pd.DataFrame
    sample: pd.DataFrame
    actions: list[str]
    sha256: str
    dropped: dict[str, int]  # rows of the official file dropped for breaking the schema, by reason (bundled: none)


def build_moral_data(source: str, sha256: str | None = None, quota_scale: float = 1.0, seed: int = 42,
                     min_per_stratum: int = 1) -> MoralData:
    """Read, clean, vectorise, explode and sample Social-Chem-101 as the paper does (spec §1).

    The activation cache holds one row per distinct action (`actions`), shared by the foundation strata an action
    appears in; `sample["text_index"]` points into it.
    """
    raw = read_socialchem_tsv(socialchem_path(source, sha256), strict=source == "bundled")
    cleaned, steps = clean(raw)
    cleaned = with_vectors(cleaned)
    exploded = explode_by_foundation(cleaned)
    sample = stratified_sample(exploded, quota_scale=quota_scale, seed=seed, min_per_stratum=min_per_stratum)
    actions, sample = index_actions(sample)
    return MoralData(raw, cleaned, steps, exploded, sample, actions, raw.attrs["sha256"], raw.attrs["dropped"])


def index_actions(sample: pd.DataFrame) -> tuple[list[str], pd.DataFrame]:
    """The distinct actions of a sample (first-seen order) and the sample with `text_index` pointing into them."""
    actions = list(dict.fromkeys(sample["action"]))
    position = {a: i for i, a in enumerate(actions)}
    return actions, sample.assign(text_index=sample["action"].map(position).to_numpy(int))


def profile_moral_data(profile) -> MoralData:
    """`build_moral_data` with a profile's source, checksum, quotas, seed and minimum stratum size."""
    return build_moral_data(profile.socialchem_source, profile.socialchem_sha256, profile.quota_scale,
                            profile.sample_seed, profile.min_per_stratum)
