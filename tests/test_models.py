"""Model loading: the bundled GGUF as a bridge equal to HF, the seeded random twin, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers import models


def test_unknown_model_lists_known_ones():
    with pytest.raises(KeyError, match="known models: .*smollm2-135m-instruct"):
        models.model_spec("gpt-5")


def test_bridge_logits_equal_hugging_face(smollm2):
    enc = smollm2.tokenizer(["Keeping a promise is morally", "Lying is morally"], return_tensors="pt",
                            padding=True, padding_side="left")
    with torch.no_grad():
        hf_logits = smollm2.bridge.original_model(**enc).logits
        bridge_logits = smollm2.bridge(enc["input_ids"], attention_mask=enc["attention_mask"])
    assert smollm2.n_layers == 30 and smollm2.d_model == 576
    mask = enc["attention_mask"].bool()
    assert float((hf_logits - bridge_logits)[mask].abs().max()) < 1e-3


def test_float_copy_is_cached_without_the_gguf_marker(smollm2):
    path = models.float_copy("smollm2-135m-instruct")
    config = (path / "config.json").read_text()
    assert "quantization_config" not in config and "LlamaForCausalLM" in config


def test_random_twin_is_seeded_and_untrained():
    spec = models.model_spec("smollm2-135m-random-init")
    first, _ = models.load_hf(spec, seed=0)
    again, _ = models.load_hf(spec, seed=0)
    other, _ = models.load_hf(spec, seed=1)
    name = "model.layers.3.mlp.up_proj.weight"
    w = dict(first.named_parameters())[name]
    assert torch.equal(w, dict(again.named_parameters())[name])
    assert not torch.equal(w, dict(other.named_parameters())[name])
    trained_model, _ = models.load_hf(models.model_spec("smollm2-135m-instruct"))
    trained = dict(trained_model.named_parameters())[name]
    assert w.shape == trained.shape and not torch.allclose(w, trained)


def test_hub_models_do_not_trust_remote_code_by_default():
    import inspect

    for function in (models.load_model, models.load_hf):
        assert inspect.signature(function).parameters["trust_remote_code"].default is False


def test_hub_path_loads_a_local_snapshot_through_the_same_wrapper(smollm2, monkeypatch):
    """The colab/paper code path (from_pretrained by name, then the bridge) run on a local snapshot directory."""
    snapshot = str(models.float_copy("smollm2-135m-instruct"))
    spec = models.ModelSpec("local-snapshot", "hub", snapshot, "Instruct", "SmolLM2", "135M")
    monkeypatch.setitem(models.REGISTRY, spec.name, spec)
    loaded = models.load_model("local-snapshot")
    ids = smollm2.tokenizer(["Lying is morally"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(loaded.bridge(ids), smollm2.bridge(ids))


def test_gemma_from_its_packaged_chunks_matches_hugging_face():
    gemma = models.load_model("gemma3-270m")
    assert (gemma.n_layers, gemma.d_model) == (18, 640)
    enc = gemma.tokenizer(["Lying is morally"], return_tensors="pt")
    assert enc["input_ids"][0, 0] == gemma.tokenizer.bos_token_id, "Gemma prepends BOS, as the paper's Llama does"
    with torch.no_grad():
        torch.testing.assert_close(gemma.bridge(enc["input_ids"]), gemma.bridge.original_model(**enc).logits)


def test_float_copy_keeps_the_copy_a_racing_process_finished_first(tmp_path, monkeypatch):
    """Two processes converting at once (test workers, shards): the one that renames second keeps the first's copy
    instead of failing on a directory that is no longer empty, and leaves no staging folder behind."""
    from types import SimpleNamespace

    monkeypatch.setenv("BOOK_OUTPUT_ROOT", str(tmp_path))
    target = tmp_path / "cache" / "models" / "smollm2-135m-instruct"

    class Saved(SimpleNamespace):
        def save_pretrained(self, folder):
            (Path(folder) / self.file).write_text("ours")

    def other_process_wins():  # called after float_copy found no copy: the other process finishes meanwhile
        target.mkdir(parents=True)
        (target / "config.json").write_text("theirs")
        return tmp_path / "model.gguf"

    monkeypatch.setitem(models._GGUF_FILES, "smollm2-135m-instruct", other_process_wins)
    monkeypatch.setattr(models, "AutoTokenizer", SimpleNamespace(from_pretrained=lambda *a, **k: Saved(
        file="tokenizer.json")))
    monkeypatch.setattr(models, "AutoModelForCausalLM", SimpleNamespace(from_pretrained=lambda *a, **k: Saved(
        file="config.json", config=SimpleNamespace(quantization_config=1), hf_quantizer=1)))
    assert models.float_copy("smollm2-135m-instruct") == target
    assert (target / "config.json").read_text() == "theirs"
    assert sorted(p.name for p in target.parent.iterdir()) == ["smollm2-135m-instruct"]


def test_run_blocks_stops_after_the_deepest_hooked_block_with_the_full_forwards_outputs():
    from transformers import AutoModelForCausalLM, LlamaConfig

    from helpers.models import run_blocks

    config = LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=4, num_attention_heads=2,
                         num_key_value_heads=1, vocab_size=50, max_position_embeddings=32)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    ids = torch.randint(0, 50, (2, 7))
    with torch.no_grad():
        full = model.model(input_ids=ids, output_hidden_states=True).hidden_states  # [embeddings, block 0, ...]
    seen, ran = {}, []
    before = [len(block._forward_hooks) for block in model.model.layers]  # transformers may keep its own
    counters = [block.register_forward_hook(lambda _m, _i, _o, i=i: ran.append(i))
                for i, block in enumerate(model.model.layers)]
    with torch.no_grad():
        run_blocks(model.model, model.model.layers,
                   {i: (lambda _m, _i, out, i=i: seen.__setitem__(i, out[0] if isinstance(out, tuple) else out))
                    for i in (0, 2)}, input_ids=ids)
    for handle in counters:
        handle.remove()
    assert ran == [0, 1, 2]  # block 3 never ran
    assert torch.equal(seen[0], full[1]) and torch.equal(seen[2], full[3])
    assert [len(block._forward_hooks) for block in model.model.layers] == before  # every hook removed
    with pytest.raises(ValueError, match="at least one"):
        run_blocks(model.model, model.model.layers, {}, input_ids=ids)
