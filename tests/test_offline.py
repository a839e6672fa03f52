"""The ci profile opens no network connection: a socket guard (not just HF_HUB_OFFLINE) around the paths every
chapter takes first (profile, bundled data, bundled model, extraction, the chapter-12/13 data and models)."""

from __future__ import annotations

import socket

import pytest


def test_the_ci_start_up_path_stays_on_this_machine(no_network, tmp_path, monkeypatch):
    from helpers import activations, geometry, models, pruning
    from helpers.data import profile_moral_data
    from helpers.profiles import load_profile

    profile = load_profile("ci")
    moral = profile_moral_data(profile)
    model = models.load_model(profile.sae_model)
    texts = activations.prompts(moral.actions[:8], profile.template)
    hf, tokenizer = models.load_hf(models.model_spec(profile.geometry_model))
    assert len(pruning.bundled_data(4).trivia) == 4 and len(geometry.bundled_data().questions) > 0
    assert tokenizer.chat_template
    monkeypatch.setenv("BOOK_ROOT", str(tmp_path))  # a fresh activation cache, so the extraction really runs
    store = activations.extract(model, profile.sae_model, texts, max_length=32, progress=False, layers=[0])
    assert store.n_texts == 8


def test_the_guard_itself_catches_a_connection(no_network):
    with pytest.raises(OSError, match="network access"):
        socket.create_connection(("192.0.2.1", 80), timeout=1)
    no_network.clear()  # the attempt was expected here
