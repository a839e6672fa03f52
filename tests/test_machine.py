"""Machine fingerprints, emulated machines and the chapter selection of a run elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import book, machine


def _fingerprint_under(env: dict[str, str]) -> dict:
    code = "import json; from helpers import machine; print(json.dumps(machine.fingerprint()))"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def test_an_emulated_machine_changes_the_dispatch_and_the_fingerprint_says_so():
    here = _fingerprint_under({})
    emulation = machine.check_emulation()  # one that differs from this CPU's own dispatch
    there = _fingerprint_under(machine.emulation_env(emulation))
    assert there["dispatch"] == machine.EMULATIONS[emulation]
    expected = {"avx2": "AVX2", "scalar": "DEFAULT", "epyc": here["torch_capability"]}[emulation]
    assert there["torch_capability"] == expected
    differences = " ".join(machine.fingerprint_differences(here, there))
    assert "dispatch" in differences and ("torch_capability" in differences) == (expected != here["torch_capability"])
    assert machine.fingerprint_differences(here, dict(here)) == []
    assert machine.fingerprint_differences(here, None) == ["no machine fingerprint recorded for the reference"]


def test_an_emulated_machine_rounds_float32_differently():
    code = ("import hashlib, torch; g = torch.Generator().manual_seed(0); x = torch.randn(256, 576, generator=g); "
            "w = torch.randn(576, 1536, generator=g); y = torch.nn.functional.gelu(x @ w); "
            "y = torch.nn.functional.layer_norm(y, (1536,)).softmax(-1); "
            "print(hashlib.sha256(y.numpy().tobytes()).hexdigest())")
    runs = {name: subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True,
                                 text=True, check=True).stdout
            for name, env in (("native", {}), *((n, machine.emulation_env(n)) for n in machine.EMULATIONS))}
    assert runs[machine.check_emulation()] != runs["native"], runs  # the check's machine rounds differently
    assert runs["scalar"] != runs["native"], runs  # scalar ATen kernels round differently on every CPU
    if machine.check_emulation() == "scalar":  # no AVX-512: ATen's AVX2 kernels and MKL's AVX2 paths are native
        assert runs["avx2"] == runs["epyc"] == runs["native"], runs
    elif machine.check_emulation() == "avx2":  # MKL already takes its AVX2 paths here: `epyc` is this machine
        assert runs["epyc"] == runs["native"], runs
        assert runs["avx2"] != runs["native"], runs
    else:  # an Intel CPU with AVX-512: four roundings of the same layer
        assert len(set(runs.values())) == len(runs), runs


def test_sleeping_idle_threads_leave_every_number_as_it_was():
    code = ("import hashlib, torch; g = torch.Generator().manual_seed(0); x = torch.randn(512, 576, generator=g); "
            "w = torch.randn(576, 2304, generator=g, requires_grad=True); y = torch.relu(x @ w); "
            "loss = torch.nn.functional.layer_norm(y, (2304,)).softmax(-1).pow(2).sum(); loss.backward(); "
            "print(torch.get_num_threads(), hashlib.sha256(y.detach().numpy().tobytes() + w.grad.numpy().tobytes()"
            " + loss.detach().numpy().tobytes()).hexdigest())")
    runs = {name: subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                 env={**os.environ, **machine.thread_env(2), **policy}).stdout
            for name, policy in (("spinning", {}), ("sleeping", machine.QUIET_WAIT))}
    assert runs["spinning"] == runs["sleeping"], runs
    assert runs["sleeping"].startswith("2 "), runs  # the kernels ran on two threads


def test_unknown_emulations_and_thread_counts():
    with pytest.raises(ValueError, match="unknown emulated machine 'arm'"):
        machine.emulation_env("arm")
    assert machine.thread_env(None) == {}
    assert machine.thread_env(2) == {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}


def test_chapter_spans_select_by_number_and_reject_nonsense():
    names = ["notebooks/01_a", "notebooks/02_b", "notebooks/07_c", "notebooks/14_d"]
    assert book.select(names, None) == names
    assert book.select(names, "02-07") == ["notebooks/02_b", "notebooks/07_c"]
    assert book.select(names, "14") == ["notebooks/14_d"]
    for bad in ("two-seven", "08-13", "2-"):
        with pytest.raises(ValueError, match="--chapters"):
            book.select(names, bad)


def test_stamps_name_the_profile_the_emulation_and_the_span(tmp_path):
    assert book.stamp_path(tmp_path, "ci").name == "built-ci"
    assert book.stamp_path(tmp_path, "ci", "epyc", "02-07").name == "other-machine-epyc-ci-02-07"
    assert book.stamp_path(tmp_path, "params/x y.yaml").name == "built-params_x_y.yaml"


def test_a_run_elsewhere_keeps_its_caches_and_ledgers_apart(tmp_path, monkeypatch):
    from helpers import paths

    monkeypatch.setenv("BOOK_ROOT", str(tmp_path))
    assert paths.results_dir("ci") == tmp_path / "results" / "ci"
    monkeypatch.setenv("BOOK_OUTPUT_ROOT", str(tmp_path / "_build" / "other-machine-avx2"))
    assert paths.results_dir("ci") == tmp_path / "_build" / "other-machine-avx2" / "results" / "ci"
    assert paths.cache_dir("models") == tmp_path / "_build" / "other-machine-avx2" / "cache" / "models"
    assert paths.project_root() == tmp_path  # notebooks, params and the reference still come from the book


def test_the_check_runs_on_a_dispatch_that_differs_from_the_machine_it_runs_on():
    avx512 = {"avx2", "avx512f", "avx512bw"}
    assert machine.check_emulation("Intel(R) Xeon(R) Processor", avx512) == "epyc"  # an AMD EPYC's rounding
    assert machine.check_emulation("AMD EPYC 9R14", avx512) == "avx2"  # there `epyc` is the native dispatch
    assert machine.check_emulation("AMD EPYC", {"avx", "avx2", "fma"}) == "scalar"  # there avx2 is native too
    assert machine.check_emulation("Intel(R) Core(TM) i7", {"avx2"}) == "scalar"
    assert [machine.is_native(e, "AMD EPYC", {"avx2"}) for e in ("avx2", "epyc", "scalar")] == [True, True, False]
    assert [machine.is_native(e, "AMD EPYC", avx512) for e in ("avx2", "epyc", "scalar")] == [False, True, False]
    assert [machine.is_native(e, "Intel Xeon", avx512) for e in ("avx2", "epyc", "scalar")] == [False, False, False]
    with pytest.raises(ValueError, match="unknown emulated machine 'arm'"):
        machine.is_native("arm")


def test_make_reference_refuses_an_emulation_that_is_this_cpus_own_dispatch(monkeypatch):
    from helpers import reference

    monkeypatch.setattr(reference, "is_native", lambda emulation: emulation == "avx2")
    monkeypatch.setattr(sys, "argv", ["reference", "--emulation", "avx2"])
    monkeypatch.setattr(reference, "save_reference", lambda *a: pytest.fail("nothing may be written"))
    with pytest.raises(SystemExit):
        reference.main()
