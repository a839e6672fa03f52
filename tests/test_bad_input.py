"""Bad input is rejected with a message naming the file and line, or the parameter: one place that lists every
kind the book guards against (each also has its own module's tests)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import activations, models, paths, sae
from helpers.data import read_socialchem_tsv, stratified_sample
from helpers.data.socialchem import DataFormatError
from helpers.judge_api import ApiJudge, JudgeUnavailable, _free_port
from helpers.profiles import load_profile


def test_malformed_tsv_names_file_and_line(tmp_path):
    path = tmp_path / "social.tsv"
    path.write_text("area\tm\n1\t2\n")
    with pytest.raises(DataFormatError, match=rf"{path}:1: header lacks column"):
        read_socialchem_tsv(path)


def test_malformed_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2\n')
    with pytest.raises(ValueError, match=rf"{path}:3: not valid JSON"):
        paths.read_jsonl(path)


def test_data_records_with_missing_fields_bad_values_or_reused_ids_name_file_and_line(tmp_path):
    from helpers.checks import read_records

    path = tmp_path / "records.jsonl"
    good = {"id": "a", "kind": "x", "text": "t", "flag": False}
    cases = [({"id": "b", "kind": "x", "text": "  ", "flag": True}, r":2: missing or empty field\(s\) \['text'\]"),
             ({"id": "b", "kind": "z", "text": "t", "flag": True}, r":2: kind must be one of \('x', 'y'\), got 'z'"),
             ({"id": "a", "kind": "y", "text": "t", "flag": True}, r":2: id 'a' is used twice")]
    for second, message in cases:
        path.write_text(json.dumps(good) + "\n" + json.dumps(second) + "\n")
        with pytest.raises(ValueError, match=rf"{path}{message}"):
            read_records(path, ("id", "kind", "text", "flag"), {"kind": ("x", "y")})
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "b", "text": 7}) + "\n")
    with pytest.raises(ValueError, match=rf"{path}:2: missing or empty field\(s\) \['text'\]"):
        read_records(path, ("id", "kind", "text"), text=True)
    path.write_text(json.dumps(good) + "\n")
    frame = read_records(path, ("id", "kind", "text", "flag"), {"kind": ("x", "y")})
    assert frame.to_dict("records") == [good], "a False value is a value, and the line number is not a column"


@pytest.mark.parametrize("reader, suffix", [(read_socialchem_tsv, ".tsv"), (paths.read_jsonl, ".jsonl")])
def test_wrong_encoding_names_the_file(tmp_path, reader, suffix):
    path = tmp_path / f"latin1{suffix}"
    path.write_bytes(json.dumps({"text": "café"}).encode("utf-8")[:-3] + "caf\xe9\"}\n".encode("latin-1"))
    with pytest.raises(ValueError, match=rf"{path}.*not valid UTF-8"):
        reader(path)


def test_unknown_model_is_named():
    with pytest.raises((KeyError, ValueError), match="gpt-9"):
        models.model_spec("gpt-9")


def test_unknown_profile_key_is_named(tmp_path):
    raw = (paths.project_root() / "params" / "ci.yaml").read_text()
    path = tmp_path / "mine.yaml"
    path.write_text(raw + "learning_rat: 0.1\n")
    with pytest.raises(ValueError, match=rf"{path}: unknown profile key\(s\) \['learning_rat'\]"):
        load_profile(path)


def test_impossible_quota_names_the_stratum():
    from helpers.data import profile_moral_data

    exploded = profile_moral_data(load_profile("ci")).exploded
    with pytest.raises(ValueError, match=r"stratum \S+ has \d+ rows, fewer than min_per_stratum=100000"):
        stratified_sample(exploded, min_per_stratum=100_000)


def test_layer_out_of_range_is_named(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path))
    with pytest.raises(ValueError, match=r"layers must be a non-empty subset of 0..1, got \[5\]"):
        activations.extract(tiny_model, "tiny", ["a b c"], layers=[5], progress=False)


def test_sae_of_the_wrong_width_is_named():
    trained = sae.train_sae(np.random.default_rng(0).normal(size=(256, 8)).astype(np.float32),
                            sae.SAESettings(expansion=2, target_l0=4, batch_size=64, epochs=1, warmup_epochs=0))
    with pytest.raises(ValueError, match="x has width 16 but the SAE expects d_in=8"):
        sae.encode(trained.sae, np.zeros((3, 16), np.float32))


def test_empty_prompt_list_is_named():
    with pytest.raises(ValueError, match="the list of actions is empty"):
        activations.prompts([], "{action} is morally")


def test_missing_api_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("BOOK_TEST_KEY", raising=False)
    with pytest.raises(JudgeUnavailable, match="environment variable BOOK_TEST_KEY"):
        ApiJudge("http://127.0.0.1:9/v1", "m", key_env="BOOK_TEST_KEY").chat("hi")


def test_unreachable_endpoint_is_named():
    url = f"http://127.0.0.1:{_free_port()}/v1"
    with pytest.raises(JudgeUnavailable, match=f"{url}/chat/completions failed after 1 attempt"):
        ApiJudge(url, "m", retries=1, timeout=5).chat("hi")
