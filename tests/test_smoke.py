"""The colab-smoke stand-ins: Qwen3-style models loaded by hub name from a cache, data URLs served from a mirror."""

import json
import os
import subprocess
import sys
import zipfile

import pytest

from helpers import cost, paths, smoke
from helpers.data import flames
from helpers.data.socialchem import TSV_MEMBER
from helpers.profiles import load_profile


def test_a_mirrored_url_is_served_from_its_local_copy_and_only_then(tmp_path, monkeypatch):
    url = "https://example.org/data/file.txt"
    monkeypatch.setenv("BOOK_MIRROR", str(tmp_path / "mirror"))
    assert paths.mirrored(url) == url  # no copy yet: the URL itself
    copy = tmp_path / "mirror" / "example.org" / "data" / "file.txt"
    copy.parent.mkdir(parents=True)
    copy.write_text("hello")
    assert paths.mirrored(url) == copy.resolve().as_uri()
    assert paths.mirrored("file:///elsewhere/file.txt") == "file:///elsewhere/file.txt"
    target = paths.download_verified(url, tmp_path / "cache" / "file.txt")
    assert target.read_text() == "hello"
    assert (tmp_path / "cache" / "file.txt.sha256").read_text().strip() == paths.file_sha256(copy)
    monkeypatch.delenv("BOOK_MIRROR")
    assert paths.mirrored(url) == url


def test_the_mirror_holds_the_colab_urls_in_the_formats_their_readers_expect(tmp_path):
    colab = load_profile("colab")
    smoke.write_mirror(tmp_path, colab.socialchem_source, colab.flames_source)
    with zipfile.ZipFile(paths.mirror_copy(tmp_path, colab.socialchem_source)) as archive:
        assert [n for n in archive.namelist() if n.endswith(TSV_MEMBER)]
    prompts = flames.read_flames(paths.mirror_copy(tmp_path, colab.flames_source))
    assert len(prompts) == len(smoke.CHINESE_PROMPTS)
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in p) for p in prompts["prompt"])  # Chinese, as Flames is


def test_the_smoke_profile_keeps_every_colab_code_path_choice():
    colab, toy = load_profile("colab"), load_profile("colab-smoke")
    for key in ("device", "dtype", "cache_dtype", "layers", "sae_input", "sae_architecture", "sae_identify_split",
                "socialchem_source", "flames_source", "judge_api_url", "finetune_blocks",
                "geometry_sae_architecture"):
        assert getattr(toy, key) == getattr(colab, key), key
    assert toy.flames_sha256 is None  # its local copy is not the real file


def test_the_stand_ins_load_by_hub_name_offline_with_a_qwen3_style_template(tmp_path):
    smoke.write_hub_models(tmp_path / "hub")
    script = (
        "import json, transformers\n"
        "from helpers.models import chat_prompt\n"
        "out = {}\n"
        "for hf_id in %r:\n"
        "    tok = transformers.AutoTokenizer.from_pretrained(hf_id)\n"
        "    model = transformers.AutoModelForCausalLM.from_pretrained(hf_id)\n"
        "    out[hf_id] = [model.config.model_type, chat_prompt(tok, '\u4f60\u597d'),"
        " float(model.get_input_embeddings().weight.sum())]\n"
        "print(json.dumps(out))\n" % list(smoke.MODELS))
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert [v[0] for v in out.values()] == ["qwen3"] * 3
    assert all(v[1].endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n") for v in out.values())
    assert len({v[2] for v in out.values()}) == 3  # three different random draws


def test_the_cost_model_knows_the_stand_ins_shape():
    model = smoke.build_model(smoke.build_tokenizer(), seed=0)
    shape = cost.shape("qwen3-tiny")
    config = model.config
    assert (shape.n_layers, shape.d_model, shape.d_mlp, shape.vocab, shape.n_heads, shape.head_dim) == (
        config.num_hidden_layers, config.hidden_size, config.intermediate_size, config.vocab_size,
        config.num_attention_heads, config.head_dim)
    assert shape.params() == pytest.approx(model.num_parameters(), rel=0.01)  # the cost model leaves out norm weights


def test_gpu_check_refuses_a_machine_without_a_gpu(monkeypatch):
    import torch

    from helpers import gpu_check

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(smoke, "run", lambda **kw: pytest.fail("no smoke book without a GPU"))
    with pytest.raises(SystemExit, match="no CUDA device"):
        gpu_check.main()


def test_the_timed_colab_step_builds_the_colab_models_shape(monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM

    from helpers import gpu_check

    built = {}

    def from_config(config, dtype):  # stands in for the 0.6B model: records its shape, computes nothing
        built.update(config=config, dtype=dtype)
        raise StopIteration

    monkeypatch.setattr(AutoModelForCausalLM, "from_config", from_config)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(StopIteration):
        gpu_check.colab_step()
    c, s = built["config"], cost.shape("qwen3-0.6b")
    assert (c.num_hidden_layers, c.hidden_size, c.intermediate_size, c.vocab_size, c.num_key_value_heads) == (
        s.n_layers, s.d_model, s.d_mlp, s.vocab, s.n_kv_heads)
    assert built["dtype"] == torch.float16  # a T4-like GPU without bfloat16: the colab profile's float16


def test_a_smoke_run_fails_on_a_missing_ledger_or_a_blocked_connection(tmp_path, monkeypatch):
    from helpers import book, netguard

    for name in ("BOOK_OUTPUT_ROOT", netguard.LOG_ENV):  # smoke.run sets them: restored after the test
        monkeypatch.setenv(name, "")
    monkeypatch.setattr(smoke, "prepare", lambda out: {"BOOK_OUTPUT_ROOT": str(out)})
    monkeypatch.setattr(book, "stage_sources", lambda root, stage: None)

    def execute(profile, root, stage, span, side_by_side=1, blocked=""):  # stands in for papermill: writes what a kernel would
        results = tmp_path / "out" / "results" / profile
        results.mkdir(parents=True, exist_ok=True)
        for chapter in book.select(book.chapters(root), span):
            (results / f"{chapter.split('/')[-1]}.json").write_text("{}")
        if blocked:
            with open(os.environ[netguard.LOG_ENV], "a") as log:
                log.write(blocked)

    monkeypatch.setattr(book, "execute", execute)
    assert smoke.run("07", out=tmp_path / "out").name == smoke.PROFILE
    monkeypatch.setattr(book, "execute", lambda *a: execute(*a, blocked='{"host": "huggingface.co"}\n'))
    with pytest.raises(RuntimeError, match="tried to reach off this machine.*huggingface.co"):
        smoke.run("07", out=tmp_path / "out")
    monkeypatch.setattr(book, "execute", lambda *a: None)
    with pytest.raises(FileNotFoundError, match="no ledger of notebooks/08_sae"):
        smoke.run("08", out=tmp_path / "out")
