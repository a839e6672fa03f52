"""Social-Chem-101 reading, cleaning, vectors and sampling, checked against hand-computed truth."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest

from helpers import data
from helpers.data import socialchem as sc
from helpers.profiles import load_profile

# Hand-computed typicality for every (J, A): (m_virtue, m_vice). Written out, not derived from the formula.
TRUTH = {
    (2, 0): (0, 0), (2, 1): (0.25, 0), (2, 2): (0.5, 0), (2, 3): (0.75, 0), (2, 4): (1.0, 0),
    (1, 0): (0, 0), (1, 1): (0.125, 0), (1, 2): (0.25, 0), (1, 3): (0.375, 0), (1, 4): (0.5, 0),
    (0, 0): (0, 0), (0, 1): (0, 0), (0, 2): (0, 0), (0, 3): (0, 0), (0, 4): (0, 0),
    (-1, 0): (0, 0), (-1, 1): (0, 0.125), (-1, 2): (0, 0.25), (-1, 3): (0, 0.375), (-1, 4): (0, 0.5),
    (-2, 0): (0, 0), (-2, 1): (0, 0.25), (-2, 2): (0, 0.5), (-2, 3): (0, 0.75), (-2, 4): (0, 1.0),
}


def row(**values) -> dict[str, str]:
    """A valid Social-Chem-101 row (all 25 columns) with some fields overridden."""
    base = {c: "" for c in sc.COLUMNS}
    base.update({"area": "amitheasshole", "m": "1", "split": "train", "rot-agree": "3",
                 "rot-categorization": "morality-ethics", "rot-moral-foundations": "care-harm",
                 "rot-char-targeting": "char-0", "rot-bad": "0", "rot-judgment": "It's good",
                 "action": "helping a neighbour", "action-agency": "agency", "action-moral-judgment": "1",
                 "action-agree": "3", "action-legal": "legal", "action-pressure": "1",
                 "action-char-involved": "char-0", "action-hypothetical": "explicit", "situation": "a situation",
                 "situation-short-id": "s1", "rot": "It's good to help a neighbour.", "rot-id": "r1",
                 "rot-worker-id": "1", "breakdown-worker-id": "2", "n-characters": "1", "characters": "narrator"})
    base.update({k.replace("_", "-"): str(v) for k, v in values.items()})
    return base


def write_tsv(path, rows, columns=sc.COLUMNS) -> None:
    """Write rows as a TSV with the given header."""
    lines = ["\t".join(columns)] + ["\t".join(r[c] for c in columns) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize(("judgment", "agree"), sorted(TRUTH))
def test_vector_for_every_judgment_and_agreement(judgment, agree):
    frame = pd.DataFrame({"rot-moral-foundations": ["fairness-cheating"], "action-moral-judgment": [judgment],
                          "action-agree": [agree]})
    vector = data.moral_vectors(frame)[0]
    expected = np.zeros(10)
    expected[2], expected[3] = TRUTH[(judgment, agree)]
    np.testing.assert_allclose(vector, expected)
    label = data.polarity(*[np.array([v]) for v in TRUTH[(judgment, agree)]])[0]
    assert label == ("virtue" if judgment > 0 and agree > 0 else "vice" if judgment < 0 and agree > 0 else "neutral")


def test_multi_foundation_rows_repeat_the_typicality_on_each_foundation():
    frame = pd.DataFrame({"rot-moral-foundations": ["care-harm|loyalty-betrayal", "loyalty-betrayal"],
                          "action-moral-judgment": [-2, -1], "action-agree": [4, 3]})
    np.testing.assert_allclose(data.moral_vectors(frame), [[0, 1, 0, 0, 0, 1, 0, 0, 0, 0],
                                                           [0, 0, 0, 0, 0, 0.375, 0, 0, 0, 0]])


def test_neutral_rows_of_both_kinds_share_one_stratum():
    frame = pd.DataFrame({"rot-moral-foundations": ["care-harm"] * 3, "action-moral-judgment": [0, 1, -2],
                          "action-agree": [3, 0, 0], "action": ["a", "b", "c"]})
    exploded = data.explode_by_foundation(data.with_vectors(frame))
    assert data.stratum_of(exploded).tolist() == ["care-harm/neutral/0"] * 3


def test_cleaning_applies_the_three_rules_in_order(tmp_path):
    rows = [row(action="kept one"), row(action="bad rot", rot_bad=1), row(action="three workers", m=3),
            row(action=""), row(action="no foundation", rot_moral_foundations=""),
            row(action="no judgment", action_moral_judgment=""), row(action="no agreement", action_agree=""),
            row(action="kept two", action_moral_judgment="-2", action_agree="4")]
    write_tsv(tmp_path / "s.tsv", rows)
    cleaned, steps = data.clean(data.read_socialchem_tsv(tmp_path / "s.tsv"))
    assert cleaned["action"].tolist() == ["kept one", "kept two"]
    assert cleaned["id"].tolist() == ["socialchem_000000", "socialchem_000001"]
    assert steps == {"raw": 8, "after rot-bad == 0": 7, "after m == 1": 6, "after dropping nulls": 2}


def test_integers_written_as_floats_are_accepted(tmp_path):
    write_tsv(tmp_path / "s.tsv", [row(action_moral_judgment="-1.0", action_agree="4.0")])
    frame = data.read_socialchem_tsv(tmp_path / "s.tsv")
    assert frame.loc[0, "action-moral-judgment"] == -1 and frame.loc[0, "action-agree"] == 4


def test_missing_column_is_named(tmp_path):
    columns = [c for c in sc.COLUMNS if c != "action-agree"]
    write_tsv(tmp_path / "s.tsv", [row()], columns=columns)
    with pytest.raises(data.DataFormatError, match=r"s\.tsv:1: header lacks column\(s\) \['action-agree'\]"):
        data.read_socialchem_tsv(tmp_path / "s.tsv")


def test_bad_value_names_file_line_and_column(tmp_path):
    write_tsv(tmp_path / "s.tsv", [row(), row(), row(action_agree="7")])
    with pytest.raises(data.DataFormatError, match=r"s\.tsv:4: column 'action-agree' holds '7'"):
        data.read_socialchem_tsv(tmp_path / "s.tsv")


def test_unknown_foundation_is_named(tmp_path):
    write_tsv(tmp_path / "s.tsv", [row(rot_moral_foundations="care-harm|liberty-oppression")])
    with pytest.raises(data.DataFormatError, match=r"s\.tsv:2: column 'rot-moral-foundations'.*liberty"):
        data.read_socialchem_tsv(tmp_path / "s.tsv")


def test_empty_file_is_rejected(tmp_path):
    (tmp_path / "s.tsv").write_text("")
    with pytest.raises(data.DataFormatError, match=r"s\.tsv: the file is empty"):
        data.read_socialchem_tsv(tmp_path / "s.tsv")


def test_short_row_and_bad_encoding_are_rejected(tmp_path):
    path = tmp_path / "s.tsv"
    write_tsv(path, [row()])
    path.write_text(path.read_text() + "too\tfew\n")
    with pytest.raises(data.DataFormatError, match=r"s\.tsv:3: 2 fields, expected 25"):
        data.read_socialchem_tsv(path)
    path.write_bytes("\t".join(sc.COLUMNS).encode() + b"\n\xff\xfe")
    with pytest.raises(data.DataFormatError, match="not valid UTF-8"):
        data.read_socialchem_tsv(path)


# Standard CSV quoting, as pandas and the `csv` module read a tab-separated file: (raw action cell, what it means,
# a change to the whole file's text)
QUOTING = {
    "doubled quotes": ('"saying ""I told you so"" to a friend"', 'saying "I told you so" to a friend', str),
    "quoted tab": ('"lying\tto a friend"', "lying\tto a friend", str),
    "quoted newline": ('"a first line\nand a second"', "a first line\nand a second", str),
    "CRLF line ends": ("helping a neighbour", "helping a neighbour", lambda text: text.replace("\n", "\r\n")),
    "UTF-8 BOM": ("helping a neighbour", "helping a neighbour", lambda text: "\ufeff" + text),
}


@pytest.mark.parametrize("case", QUOTING)
def test_quoting_line_ends_and_bom_are_read_as_pandas_reads_them(tmp_path, case):
    raw, meant, change = QUOTING[case]
    path = tmp_path / "s.tsv"
    write_tsv(path, [row(action=raw), row(action="keeping a promise")])
    path.write_bytes(change(path.read_text(encoding="utf-8")).encode("utf-8"))
    frame = data.read_socialchem_tsv(path)
    assert frame["action"].tolist() == [meant, "keeping a promise"]
    assert frame["characters"].tolist() == ["narrator"] * 2, "no stray carriage return in the last column"
    pandas = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    assert list(pandas.columns) == list(sc.COLUMNS) and pandas["action"].tolist() == frame["action"].tolist()


def test_a_row_after_a_multi_line_field_is_named_by_its_own_line(tmp_path):
    write_tsv(tmp_path / "s.tsv", [row(action='"one\ntwo\nthree"'), row(action_agree="7")])
    with pytest.raises(data.DataFormatError, match=r"s\.tsv:5: column 'action-agree' holds '7'"):
        data.read_socialchem_tsv(tmp_path / "s.tsv")


def test_official_file_drops_rows_that_break_the_schema_counting_them_by_reason(tmp_path, caplog):
    bad = [row(action_agree="7"), row(rot_moral_foundations="liberty-oppression"), row(action_agree="9"),
           row(m="x"), row(area="reddit"), row(rot_bad="")]
    write_tsv(tmp_path / "s.tsv", [row(action="first"), *bad, row(action="last")])
    path = tmp_path / "s.tsv"
    path.write_text(path.read_text() + "too\tfew\n")
    with caplog.at_level("WARNING", logger="helpers.data.socialchem"):
        frame = data.read_socialchem_tsv(path, strict=False)
    assert frame["action"].tolist() == ["first", "last"]
    assert frame.attrs["dropped"] == {"'action-agree' not allowed": 2, "'rot-moral-foundations' not allowed": 1,
                                      "'m' not an integer": 1, "'area' not allowed": 1, "'rot-bad' empty": 1,
                                      "field count": 1}
    assert "dropped 7 of 9 rows" in caplog.text
    shown = [f"{path}:{line}:" for line in range(3, 3 + sc.SHOWN_DROPS)]
    assert all(where in caplog.text for where in shown) and f"{path}:{3 + sc.SHOWN_DROPS}:" not in caplog.text
    assert [s.split(" ")[0] for s in frame.attrs["dropped_shown"]] == shown  # what chapter 01 prints
    with pytest.raises(data.DataFormatError, match=r"s\.tsv:3: column 'action-agree' holds '7'"):
        data.read_socialchem_tsv(path)
    write_tsv(path, bad)
    with pytest.raises(data.DataFormatError, match=r"s\.tsv: no row follows the schema"):
        data.read_socialchem_tsv(path, strict=False)


def test_downloaded_file_drops_a_bad_row_the_bundled_sample_refuses_it(tmp_path, monkeypatch):
    """The official path keeps going without the bad row (and records why in MoralData.dropped); the bundled sample
    stays strict and names the file and line."""
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path / "book"))
    profile = load_profile("ci")
    ci = {"quota_scale": profile.quota_scale, "seed": profile.sample_seed, "min_per_stratum": profile.min_per_stratum}
    planted = tmp_path / "planted.tsv"
    lines = sc.BUNDLED_TSV.read_text(encoding="utf-8").splitlines(keepends=True)
    planted.write_text("".join(lines[:2] + ["too\tfew\n"] + lines[2:]), encoding="utf-8")
    archive = tmp_path / "social-chem-101.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(planted, f"social-chem-101/{sc.TSV_MEMBER}")
    official = data.build_moral_data(archive.as_uri(), **ci)
    bundled = data.build_moral_data("bundled", **ci)
    assert official.dropped == {"field count": 1} and bundled.dropped == {}
    pd.testing.assert_frame_equal(official.sample, bundled.sample)
    monkeypatch.setattr(sc, "BUNDLED_TSV", planted)
    with pytest.raises(data.DataFormatError, match=rf"{planted}:3: 2 fields, expected 25"):
        data.build_moral_data("bundled", **ci)


def _planted_exploded(sizes: dict[str, int]) -> pd.DataFrame:
    """An exploded frame with exactly `sizes[stratum]` rows per stratum name."""
    records = []
    for name, n in sizes.items():
        foundation, pole, level = name.split("/")
        level = float(level)
        for i in range(n):
            records.append({"action": f"{name} #{i}", "sampled_dimension": foundation, "polarity": pole,
                            "m_virtue": level if pole == "virtue" else 0.0,
                            "m_vice": level if pole == "vice" else 0.0})
    return pd.DataFrame(records)


def _all_strata(n: int) -> dict[str, int]:
    """Every one of the 65 strata with n rows."""
    names = [f"{f}/{p}/{t:g}" for f in data.FOUNDATIONS for p in ("virtue", "vice") for t in data.TYPICALITY_LEVELS]
    return {**{name: n for name in names}, **{f"{f}/neutral/0": n for f in data.FOUNDATIONS}}


def test_quotas_scale_the_papers_300_150_300():
    assert data.sample_quotas(1.0) == {"polar": 300, "typical": 150, "neutral": 300}
    assert data.sample_quotas(0.1) == {"polar": 30, "typical": 15, "neutral": 30}
    assert data.sample_quotas(0.001) == {"polar": 1, "typical": 1, "neutral": 1}


def test_sample_takes_quota_or_whole_stratum():
    sizes = _all_strata(40)
    sizes["care-harm/virtue/0.125"] = 7
    sample = data.stratified_sample(_planted_exploded(sizes), quota_scale=0.1, seed=1)
    got = sample.groupby(["sampled_dimension", "sample_type", "score_stratum"]).size()
    assert got[("care-harm", "virtue", 0.125)] == 7          # short stratum taken whole
    assert got[("care-harm", "virtue", 0.25)] == 30          # polar quota
    assert got[("care-harm", "virtue_typical", 1.0)] == 15   # prototype quota
    assert got[("care-harm", "neutral", 0.0)] == 30          # neutral quota
    assert len(sample) == 5 * (10 * 30 + 2 * 15 + 30) - (30 - 7)
    assert sample["action"].is_unique


def test_sample_is_deterministic_per_seed():
    exploded = _planted_exploded(_all_strata(40))
    first = data.stratified_sample(exploded, 0.1, seed=5)["action"].tolist()
    assert first == data.stratified_sample(exploded, 0.1, seed=5)["action"].tolist()
    assert first != data.stratified_sample(exploded, 0.1, seed=6)["action"].tolist()


def test_too_small_stratum_is_an_error_naming_it():
    sizes = _all_strata(40)
    sizes["sanctity-degradation/vice/0.125"] = 2
    with pytest.raises(ValueError, match=r"stratum sanctity-degradation/vice/0\.125 has 2 rows"):
        data.stratified_sample(_planted_exploded(sizes), 0.1, min_per_stratum=3)


def test_download_path_on_a_local_copy(tmp_path, monkeypatch, socialchem_zip):
    """The real-data path (zip, checksum, cache, the same reader) run on a file:// copy of the bundled sample."""
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path / "book"))
    archive = socialchem_zip
    url = archive.as_uri()
    tsv = data.socialchem_path(url)
    assert tsv.read_bytes() == sc.BUNDLED_TSV.read_bytes()
    recorded = (tsv.parent / "social-chem-101.zip.sha256").read_text().strip()
    assert recorded == sc.file_sha256(archive)
    assert data.socialchem_path(url, sha256=recorded) == tsv        # verified reuse, no second download
    with pytest.raises(data.DataFormatError, match="does not match the expected"):
        data.socialchem_path(url, sha256="0" * 64)


def test_bundled_sample_meets_its_data_card():
    raw = data.read_socialchem_tsv(sc.BUNDLED_TSV)
    assert len(raw) >= 1500
    assert raw["action"].dropna().str.lower().is_unique
    assert set(raw["action-moral-judgment"].dropna()) == {-2, -1, 0, 1, 2}
    assert set(raw["action-agree"].dropna()) == {0, 1, 2, 3, 4}
    assert (raw["rot-bad"] == 1).sum() > 0 and (raw["m"] != 1).sum() > 0
    assert raw[["action-moral-judgment", "action-agree"]].isna().any(axis=1).sum() > 0
    cleaned, _ = data.clean(raw)
    cleaned = data.with_vectors(cleaned)
    assert (cleaned["rot-moral-foundations"].str.contains("|", regex=False)).sum() > 0
    assert set(cleaned["polarity"]) == {"virtue", "vice", "neutral"}
    assert set(cleaned["rot-moral-foundations"].str.split("|").explode()) == set(data.FOUNDATIONS)


def test_mfd2_words_are_prototypes_of_their_pole():
    words = data.mfd2_sample()
    assert len(words) > 1500 and set(words["sample_type"]) == {"virtue_typical", "vice_typical"}
    row = words[(words["action"] == "compassion") & (words["sampled_dimension"] == "care-harm")].iloc[0]
    np.testing.assert_array_equal(row["moral_vector"], [1, 0, 0, 0, 0, 0, 0, 0, 0, 0])


def test_moralstrength_scores_map_to_typicality(tmp_path, monkeypatch):
    from helpers.data import lexicons

    folder = tmp_path / "annotations" / "v1.1"
    folder.mkdir(parents=True)
    for name in ("care", "fairness", "loyalty", "authority", "purity"):
        (folder / f"{name}.tsv").write_text("WORD\tEXPRESSED_MORAL\nkind\t9\ncruel\t1\nchair\t5.2\nnice\t6\n")
    monkeypatch.setattr(lexicons, "package_dir", lambda module, pip_name: tmp_path)
    words = data.moralstrength_sample()
    purity = words[words["sampled_dimension"] == "sanctity-degradation"].set_index("action")
    assert purity.loc["kind", "sample_type"] == "virtue_typical" and purity.loc["kind", "m_virtue"] == 1.0
    assert purity.loc["cruel", "sample_type"] == "vice_typical" and purity.loc["cruel", "moral_vector"][9] == 1.0
    assert purity.loc["chair", "polarity"] == "neutral" and purity.loc["chair", "moral_vector"].sum() == 0
    assert purity.loc["nice", "sample_type"] == "virtue" and purity.loc["nice", "moral_vector"][8] == 0.25
    (folder / "care.tsv").write_text("WORD\tEXPRESSED_MORAL\nkind\t12\n")
    with pytest.raises(ValueError, match=r"care\.tsv:2: EXPRESSED_MORAL 12"):
        data.moralstrength_sample()


def test_external_subsample_keeps_every_category_and_is_seeded():
    full = data.external_sample("moralstrength")
    words = data.external_sample("moralstrength", max_words=250, seed=1)
    counts = words.groupby(["sampled_dimension", "sample_type"]).size()
    n_strata = full.groupby(["sampled_dimension", "sample_type"]).ngroups
    assert len(counts) == n_strata and counts.max() == 250 // n_strata and len(words) <= 250
    assert words["action"].tolist() == data.external_sample("moralstrength", 250, seed=1)["action"].tolist()
    with pytest.raises(ValueError, match="unknown lexicon"):
        data.external_sample("liwc")


def test_sae_splits_cut_80_10_10_by_row_then_explode():
    cleaned = pd.DataFrame({"id": [f"r{i}" for i in range(50)], "action": [f"a{i}" for i in range(50)],
                            "rot-moral-foundations": ["care-harm|fairness-cheating" if i % 5 == 0 else "care-harm"
                                                      for i in range(50)]})
    rows = data.sae_splits(cleaned, seed=42)
    per_id = rows.groupby("id")["split"].nunique()
    assert (per_id == 1).all(), "both copies of a multi-foundation row stay in one split"
    assert rows.drop_duplicates("id")["split"].value_counts().to_dict() == {"train": 40, "val": 5, "test": 5}
    assert len(rows) == 50 + 10, "exploded: one row per (row, foundation)"
    again = data.sae_splits(cleaned, seed=42)
    assert again["split"].tolist() == rows["split"].tolist()
    assert data.sae_splits(cleaned, seed=7)["split"].tolist() != rows["split"].tolist()
    expected = np.array(["train"] * 40 + ["val"] * 5 + ["test"] * 5, dtype=object)[
        np.argsort(np.random.RandomState(42).permutation(50))]  # the paper's np.random.seed(42) shuffle
    assert rows.drop_duplicates("id")["split"].tolist() == expected.tolist()
    with pytest.raises(ValueError, match="val split is empty: 5 cleaned rows"):
        data.sae_splits(cleaned.head(5), seed=42)


def test_situation_split_keeps_each_situation_in_one_part_and_ends_leakage():
    situations = [f"s{i // 4}" for i in range(80)]  # 20 situations of 4 rows, each row's action repeated once
    cleaned = pd.DataFrame({"id": [f"r{i}" for i in range(80)], "action": [f"a{i // 2}" for i in range(80)],
                            "situation-short-id": situations, "rot-moral-foundations": ["care-harm"] * 80})
    rows = data.sae_splits(cleaned, seed=42, by="situation")
    assert (rows.groupby("situation-short-id")["split"].nunique() == 1).all()
    assert rows["split"].value_counts().to_dict() == {"train": 64, "val": 8, "test": 8}
    assert data.leakage(rows["situation-short-id"], rows["split"]) == {"val": 0.0, "test": 0.0}
    assert data.leakage(rows["action"], rows["split"]) == {"val": 0.0, "test": 0.0}
    by_row = data.sae_splits(cleaned, seed=42)
    assert max(data.leakage(by_row["situation-short-id"], by_row["split"]).values()) > 0.5
    with pytest.raises(ValueError, match="by must be one of"):
        data.sae_splits(cleaned, by="worker")


def test_leakage_and_neutral_sources_on_hand_counted_rows():
    assert data.leakage(["a", "b", "a", "c", "b", "d"], ["train", "train", "val", "val", "test", "test"]) == \
        {"val": 0.5, "test": 0.5}
    with pytest.raises(ValueError, match="differ in length"):
        data.leakage(["a"], ["train", "val"])
    frame = pd.DataFrame({"action-moral-judgment": [0, 0, 2, -1, 1], "action-agree": [0, 3, 0, 0, 4]})
    assert data.neutral_sources(frame) == {"J = 0": 2, "A = 0, J ≠ 0": 2}
