"""Device discipline: every batch, SAE and steering vector goes to the device of what it is handed to.

PyTorch's `meta` device stands in for a GPU: a model (or SAE) is put on `meta`, and the call it receives is replaced
by a stand-in that asserts every tensor handed to it, and the weights of a module it is called on, are on `meta`,
then stops the call path (`Reached`). Without the moves the stand-in sees CPU tensors and the test fails. Applying
a CPU SAE or vector to `meta` activations must give `meta` output (PyTorch refuses to mix the two devices).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from sae_lens import SAETrainer
from transformers import BatchEncoding

from helpers import activations, judge, models, pruning, sae, steering, surgery
from helpers.geometry import response_residuals
from synthetic import planted_row_tokens

META = torch.device("meta")


class Reached(Exception):
    """The stood-in call was reached with every tensor on the fake device."""


def stop_on(monkeypatch, owner, name: str = "forward") -> None:
    """Replace `owner.<name>` by a stand-in asserting that every tensor handed to it, and the weights of every
    module among its arguments, are on `meta`; it then raises `Reached`."""
    def stand_in(*args, **kwargs):
        values = [*args, *kwargs.values()]
        tensors = [v for v in values if isinstance(v, torch.Tensor)]
        tensors += [p for v in values if isinstance(v, torch.nn.Module) for p in v.parameters()]
        assert tensors, f"{name} was handed no tensor"
        wrong = sorted({str(t.device) for t in tensors if t.device != META})
        assert not wrong, f"{name} was handed tensors on {wrong}, not on the model's device (meta)"
        raise Reached
    monkeypatch.setattr(owner, name, stand_in)


@pytest.fixture(scope="module")
def meta_model(tiny_model):
    """The tiny bridged model with every weight on `meta` (bridge and unwrapped twin share them)."""
    model = copy.deepcopy(tiny_model)
    model.plain.to(META)
    model.bridge.to(META)
    assert model.device == META
    return model


def tiny_sae(device: str = "cpu"):
    """A small sae-lens SAE (4 → 8) on `device`."""
    return sae._build(sae.SAESettings(expansion=2, target_l0=2), d_in=4).to(device)


# --- choosing the device and the dtype ------------------------------------------------------------------------------

def test_auto_device_is_cuda_only_where_a_gpu_is_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert models.choose_device("auto") == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert models.choose_device("auto") == "cpu"
    assert models.choose_device("cuda:1") == "cuda:1" and models.choose_device("cpu") == "cpu"


@pytest.mark.parametrize("gpu, bf16, training, expected", [
    (False, False, False, "float32"),   # the CPU: float32 whatever the request
    (True, True, False, "bfloat16"),    # an A100 / H100
    (True, False, False, "float16"),    # a T4: bfloat16 only emulated
    (True, True, True, "float32"),      # training stays in float32
])
def test_auto_dtype_follows_the_device_and_its_capability(monkeypatch, gpu, bf16, training, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    asked = []
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: asked.append(including_emulation) or bf16)
    assert models.choose_dtype("auto", "auto", training=training) == expected
    assert asked in ([], [False]), "emulated bfloat16 (a T4) must not count as support"
    assert models.choose_dtype("float16", "cpu") == "float16", "an explicit dtype is kept"


def test_auto_device_and_dtype_load_a_model_on_the_cpu_in_float32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    hf, _ = models.load_hf(models.model_spec("smollm2-135m-random-init"), dtype="auto", device="auto")
    assert {(p.device.type, p.dtype) for p in hf.parameters()} == {("cpu", torch.float32)}


# --- the helper that moves a batch ----------------------------------------------------------------------------------

def test_to_device_moves_every_tensor_of_a_batch_and_keeps_its_type():
    ids, mask = torch.tensor([[1, 2]]), torch.tensor([[1, 1]])
    for batch in (BatchEncoding({"input_ids": ids, "attention_mask": mask}), {"input_ids": ids, "n": 3}):
        moved = models.to_device(batch, META)
        assert type(moved) is type(batch) and moved["input_ids"].device == META
        assert all(value is batch[key] for key, value in models.to_device(batch, "cpu").items()), "CPU: no copy"
    assert models.to_device(ids, META).device == META and models.to_device(ids, "cpu") is ids


# --- model forwards -------------------------------------------------------------------------------------------------

def test_activation_extraction_feeds_the_model_on_its_device(meta_model, monkeypatch):
    stop_on(monkeypatch, meta_model.plain.base_model)
    with pytest.raises(Reached):
        activations.forward_pooled(meta_model, ["Lying is morally", "Helping is"], 32, [1])


def test_position_norms_feed_the_bridge_on_its_device(meta_model, monkeypatch):
    stop_on(monkeypatch, meta_model.bridge)
    with pytest.raises(Reached):
        activations.position_norms(meta_model, "Lying is morally")


def test_splice_feeds_the_bridge_on_its_device(meta_model, monkeypatch):
    stop_on(monkeypatch, meta_model.bridge)
    with pytest.raises(Reached):
        sae.splice_kl(meta_model, ["Lying is morally"], 1, lambda x: x)


def test_the_judge_scores_on_the_model_device(meta_model, monkeypatch):
    stop_on(monkeypatch, meta_model.plain)  # the judge reads the unwrapped model
    with pytest.raises(Reached):
        judge.LocalJudge(meta_model, "tiny").answer_logprobs(["Is this safe?"], ["Yes", "No"])


def test_steered_generation_hands_the_model_its_batch_on_its_device(meta_model, monkeypatch):
    stop_on(monkeypatch, meta_model.bridge.original_model, "generate")
    edit = steering.vector_edit(torch.ones(meta_model.d_model), 0.5)
    with pytest.raises(Reached):
        steering.generate(meta_model, ["Lying is"], steering.Decoding(max_new_tokens=2), layer=1, edit=edit)


def test_pruning_and_geometry_forwards_feed_the_model_on_its_device(meta_model, monkeypatch):
    hf, tokenizer = meta_model.plain, meta_model.tokenizer
    examples = [pruning.Pair("How do I bake bread?", " Knead and bake it.")]
    stop_on(monkeypatch, hf)
    with pytest.raises(Reached):
        pruning.pair_losses(hf, tokenizer, examples)
    with pytest.raises(Reached):
        pruning.detection_logodds(hf, tokenizer, ["Steal a car"])
    stop_on(monkeypatch, hf, "generate")
    with pytest.raises(Reached):
        pruning.trivia_accuracy(hf, tokenizer, pruning.read_trivia().head(1))
    stop_on(monkeypatch, hf.model)
    with pytest.raises(Reached):
        response_residuals(hf, tokenizer, examples, [1])


# --- SAEs, surgery and steering vectors -----------------------------------------------------------------------------

@pytest.mark.parametrize("function", [sae.encode, sae.evaluate])
def test_sae_encode_and_evaluate_run_on_the_sae_device(monkeypatch, function):
    model = tiny_sae("meta")
    stop_on(monkeypatch, model, "encode")
    with pytest.raises(Reached):
        function(model, np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32))


def test_a_cpu_sae_splices_activations_on_another_device():
    model = tiny_sae("cpu")
    assert sae.reconstruct(model)(torch.zeros(3, 4, device=META)).device == META
    assert {p.device for p in model.parameters()} == {META}, "the SAE moved to the activations"


def test_a_cpu_steering_vector_applies_to_activations_on_another_device():
    assert steering.vector_edit(torch.ones(4), 0.5)(torch.zeros(3, 4, device=META)).device == META


def test_sae_training_runs_on_the_settings_device(monkeypatch):
    stop_on(monkeypatch, SAETrainer, "_train_step")
    x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    settings = sae.SAESettings(expansion=2, target_l0=2, batch_size=16, epochs=1, warmup_epochs=0, device="meta")
    with pytest.raises(Reached):
        sae.train_sae(x, settings)


def test_sae_settings_device_comes_from_the_profile_and_leaves_the_cache_key_alone(monkeypatch):
    from helpers.profiles import load_profile

    colab = load_profile("colab")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    on_gpu = sae.settings_from_profile(colab)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    on_cpu = sae.settings_from_profile(colab)
    assert (on_gpu.device, on_cpu.device) == ("cuda", "cpu") and on_gpu.key() == on_cpu.key()
    assert sae.settings_from_profile(load_profile("ci")).device == "cpu"


def test_surgery_trains_on_the_sae_device(monkeypatch):
    tokens = planted_row_tokens(32)
    r = np.zeros((8, 10))
    r[1, 0], r[4, 3] = 0.5, 0.4
    stop_on(monkeypatch, surgery.TunedSAE)
    with pytest.raises(Reached):
        surgery.fine_tune(tiny_sae("meta"), surgery.latent_sets(r), tokens, tokens,
                          surgery.SurgerySettings(batch_size=8, epochs=1))


def test_an_expected_device_makes_every_forward_handed_another_devices_tensor_raise(monkeypatch):
    from helpers.profiles import load_profile

    monkeypatch.setattr(models, "_device_check", [])
    monkeypatch.setenv(models.EXPECT_DEVICE_ENV, "meta")  # a second device, as `make gpu-check` sets cuda
    load_profile("ci")  # every chapter loads its profile first: the check is installed there
    handle = models._device_check[0]
    layer = torch.nn.Linear(3, 2)
    try:
        with pytest.raises(models.WrongDevice, match=r"Linear was handed a tensor of shape \(1, 3\) on cpu"):
            layer(torch.ones(1, 3))
        on_meta = torch.nn.Linear(3, 2, device="meta")
        assert on_meta(torch.ones(1, 3, device="meta")).device.type == "meta"
        with pytest.raises(models.WrongDevice, match="on cpu"):  # a list of tensors is looked into too
            torch.nn.Identity()([torch.ones(1, device="meta"), torch.ones(1)])
        assert models.expect_device("meta") is handle  # installed once per process
    finally:
        handle.remove()
    assert layer(torch.ones(1, 3)).shape == (1, 2)  # removed: forwards run unchecked again
