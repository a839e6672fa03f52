"""The ci profile opens no network connection: the guard an offline profile installs (`helpers.netguard`, not
just HF_HUB_OFFLINE) blocks and records every connection off this machine, in the process that loaded the
profile, in the Python processes it starts and in papermill kernels; and the paths every chapter takes first
stay on this machine."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from helpers import netguard
from helpers.profiles import load_profile


@pytest.fixture
def guard_restored():
    """Whatever a test does to the guard, leave it as it was."""
    was_active = netguard.active()
    yield
    (netguard.block_remote if was_active else netguard.allow_remote)()


def _child(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_loading_an_offline_profile_blocks_and_logs_remote_connections(guard_restored, tmp_path, monkeypatch):
    netguard.allow_remote()
    load_profile("colab")
    assert not netguard.active(), "colab downloads: it must not install the guard"
    log = tmp_path / "attempts.jsonl"
    monkeypatch.setenv(netguard.LOG_ENV, str(log))
    load_profile("ci")
    assert netguard.active()
    with pytest.raises(netguard.RemoteConnectionBlocked, match=r"connection to \('192.0.2.1', 80\) blocked"):
        socket.create_connection(("192.0.2.1", 80), timeout=1)
    with pytest.raises(netguard.RemoteConnectionBlocked, match="name look-up of 'huggingface.co' blocked"):
        socket.getaddrinfo("huggingface.co", 443)
    try:  # what a library that swallows errors does: the attempt is still on record
        socket.socket(socket.AF_INET6).connect_ex(("2001:db8::1", 443))
    except OSError:
        pass
    with pytest.raises(netguard.RemoteConnectionBlocked, match="name look-up of 'example.org'"):
        socket.gethostbyname("example.org")
    with pytest.raises(netguard.RemoteConnectionBlocked, match=r"datagram to \('192.0.2.9', 53\)"):
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("192.0.2.9", 53))
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["what"] for line in lines] == ["connection to", "name look-up of", "connection to",
                                                "name look-up of", "datagram to"]
    assert "2001:db8::1" in lines[2]["target"] and not netguard.inherited(), "installed here, not at start-up"


def test_loopback_stays_allowed_under_the_guard(no_network):
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    with socket.create_connection(("localhost", port), timeout=5):
        pass
    server.close()
    assert netguard.is_local("::1") and netguard.is_local(b"127.0.0.2") and netguard.is_local("LocalHost")
    assert netguard.is_local(socket.gethostname()), "this machine's own name (e.g. socket.getfqdn looks it up)"
    assert not netguard.is_local("10.0.0.1") and not netguard.is_local(b"\xff") and not netguard.is_local("example.org")


def test_child_python_processes_inherit_the_guard(guard_restored):
    netguard.block_remote()
    blocked = _child("import socket; socket.create_connection(('192.0.2.1', 80), timeout=1)")
    assert blocked.returncode != 0 and "RemoteConnectionBlocked" in blocked.stderr
    from_start = _child("import socket; print(socket._offline_guard['inherited'])")
    assert from_start.stdout.strip() == "True", "installed at start-up, before any of the child's own code"
    netguard.allow_remote()
    assert _child("import socket; print(getattr(socket.socket.connect, '_guard', False))").stdout.strip() == "False"


def test_papermill_kernels_of_an_offline_run_are_guarded(guard_restored, tmp_path, monkeypatch):
    import nbformat
    import papermill

    log = tmp_path / "attempts.jsonl"
    monkeypatch.setenv(netguard.LOG_ENV, str(log))
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import socket\n"
        "assert getattr(socket.socket.connect, '_guard', False), 'the kernel is not guarded'\n"
        "assert socket._offline_guard['inherited'], 'the kernel was not guarded from start-up'\n"
        "try:\n    socket.create_connection(('192.0.2.7', 443), timeout=1)\nexcept OSError:\n    pass")])
    nbformat.write(notebook, tmp_path / "in.ipynb")
    netguard.block_remote()  # what loading the ci profile does in `make book`'s own process
    papermill.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"), kernel_name="python3",
                               progress_bar=False)
    attempts = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(attempts) == 1 and "192.0.2.7" in attempts[0]["target"], "only the cell's own (swallowed) attempt"


def test_the_ci_start_up_path_stays_on_this_machine(no_network, tmp_path, monkeypatch):
    from helpers import activations, geometry, models, pruning
    from helpers.data import profile_moral_data

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


def test_a_child_whose_guard_cannot_load_stops_instead_of_running_unguarded(guard_restored, tmp_path, monkeypatch):
    broken = tmp_path / "helpers" / "netguard_site"
    broken.mkdir(parents=True)
    (broken / "sitecustomize.py").write_text(netguard.SITE_DIR.joinpath("sitecustomize.py").read_text())
    (broken.parent / "netguard.py").write_text("raise ImportError('damaged install')\n")  # what the site file loads
    netguard.block_remote()
    monkeypatch.setenv("PYTHONPATH", str(broken))
    result = _child("print('ran unguarded')")
    assert result.returncode == 1 and "ran unguarded" not in result.stdout
    assert "network guard: could not install it" in result.stderr
