"""Which machine computed a build's numbers, and how to make this machine compute them like another one.

Float32 kernels round differently on another CPU (AVX-512 vs AVX2 code paths in ATen, MKL and oneDNN); clustering,
SAE training, top-k overlaps and greedy generation then amplify a 1e-7 difference. A build records the
`fingerprint` of the machine it ran on, and `emulation_env` selects other kernel code paths on this machine, so that
one machine can measure how far the book's numbers move on another (`make reference`) and test that they stay
inside that measured spread (`make test`).
"""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path
from typing import Any

# Kernel dispatch of "another machine", each a documented switch of its library (ATen's ATEN_CPU_CAPABILITY,
# MKL's conditional-numerical-reproducibility MKL_CBWR, oneDNN's ONEDNN_MAX_CPU_ISA):
EMULATIONS: dict[str, dict[str, str]] = {
    # An x86-64 CPU without AVX-512, or an AMD one (MKL takes its AVX2 paths there): the spread `make reference`
    # measures. As fast as the native dispatch.
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    # An AMD EPYC with AVX-512 (the machine issue 16 failed on): ATen keeps its AVX-512 kernels, MKL takes its AVX2
    # paths as it does on AMD CPUs. A third rounding, never used to measure the spread: `make test` checks on it
    # that the measured tolerances hold. (SSE4.1-era dispatch everywhere, ATEN_CPU_CAPABILITY=default with
    # MKL_CBWR=COMPATIBLE, would be another, but runs chapter 02 five to eight times slower.)
    "epyc": {"MKL_CBWR": "AVX2"},
    # ATen's scalar kernels instead of its vectorised ones (matrix products unchanged): another rounding of every
    # elementwise op, softmax and norm, for a CPU without AVX-512, where `avx2` and `epyc` are the native dispatch.
    # Chapter 02 runs about as fast as native.
    "scalar": {"ATEN_CPU_CAPABILITY": "default"},
}
# Vendors whose CPUs MKL already runs on its AVX2 paths: there `epyc` is the native dispatch, not another machine.
MKL_AVX2_VENDORS = ("AMD",)
DISPATCH_VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# Idle OpenMP threads (torch's and MKL's) sleep instead of spinning. Two kernels of two threads each side by side on
# 2 cores then share them: a forward, backward, SAE and generation benchmark ran twice at once in 1.65x the time of
# one (spinning: 4.6x), and alone as fast as with spinning (AMD EPYC, 2 cores, 2026-12-08). It changes how threads
# wait, not how work is split: the numbers are the same (tests/test_machine.py).
QUIET_WAIT = {"OMP_WAIT_POLICY": "PASSIVE"}


def emulation_env(name: str) -> dict[str, str]:
    """The environment variables that make this machine's kernels round like emulated machine `name`."""
    if name not in EMULATIONS:
        raise ValueError(f"unknown emulated machine {name!r}; known: {', '.join(EMULATIONS)}")
    return dict(EMULATIONS[name])


def emulation_of(fingerprint: dict[str, Any] | None) -> str | None:
    """The emulated machine whose dispatch variables a fingerprint recorded (None: native dispatch, or unknown)."""
    dispatch = (fingerprint or {}).get("dispatch") or {}
    return next((name for name, env in EMULATIONS.items() if dict(env) == dispatch), None)


def thread_env(threads: int | None) -> dict[str, str]:
    """Environment variables fixing the CPU threads of OpenMP, MKL and OpenBLAS (none: the machine's default)."""
    return {} if threads is None else {name: str(threads) for name in THREAD_VARIABLES}


def _cpuinfo(field: str) -> str | None:
    """The first value of a field of Linux's /proc/cpuinfo (None where there is none)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    return None


def available_memory_gb(meminfo: Path = Path("/proc/meminfo")) -> float | None:
    """Memory this machine can still give processes (Linux's MemAvailable), in GB; None where it does not say."""
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 / 1e9  # kB
    return None


def _cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo; platform.processor() elsewhere)."""
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def _cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    return set((_cpuinfo("flags") or "").split())


def is_native(emulation: str, cpu: str | None = None, flags: set[str] | None = None) -> bool:
    """Whether an emulated machine's dispatch is the one this CPU (model `cpu`, feature `flags`; default: this
    machine's) takes anyway, so that a build under it rounds exactly as a native build: `avx2` without AVX-512
    (ATen's AVX2 kernels are native there), `epyc` without AVX-512 or on an AMD CPU (MKL takes its AVX2 paths
    there); `scalar` never."""
    machine_flags = _cpu_flags() if flags is None else flags
    amd = any(vendor in (_cpu_model() if cpu is None else cpu) for vendor in MKL_AVX2_VENDORS)
    if emulation not in EMULATIONS:
        raise ValueError(f"unknown emulated machine {emulation!r}; known: {', '.join(EMULATIONS)}")
    avx512 = "avx512f" in machine_flags
    return {"avx2": not avx512, "epyc": amd or not avx512, "scalar": False}[emulation]


def check_emulation(cpu: str | None = None, flags: set[str] | None = None) -> str:
    """The emulated machine `make test` checks the diagnosis chapters on: the first of `epyc` (an AMD EPYC's
    rounding), `avx2` and `scalar` that is not this CPU's own dispatch (`is_native`)."""
    return next(name for name in ("epyc", "avx2", "scalar") if not is_native(name, cpu, flags))


def fingerprint() -> dict[str, Any]:
    """What decides the rounding of this process's numbers: CPU model, the kernel capability torch dispatches to,
    torch and numpy versions, a digest of torch's build configuration (BLAS, oneDNN), the thread count and the
    dispatch variables set."""
    import numpy
    import torch

    config = torch.__config__.show()
    return {"cpu": _cpu_model(), "machine": platform.machine(),
            "torch_capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__, "numpy": numpy.__version__,
            "torch_build": hashlib.sha256(config.encode()).hexdigest()[:16],
            "threads": torch.get_num_threads(),
            "dispatch": {name: os.environ[name] for name in DISPATCH_VARIABLES if name in os.environ}}


def fingerprint_differences(this: dict[str, Any] | None, other: dict[str, Any] | None) -> list[str]:
    """The fields in which two fingerprints differ, as 'field: this vs other' (a missing fingerprint: one line)."""
    if not this or not other:
        return ["no machine fingerprint recorded" + ("" if this else " for this build")
                + ("" if other else " for the reference")]
    return [f"{key}: {this.get(key)!r} vs {other.get(key)!r}" for key in sorted(this.keys() | other.keys())
            if this.get(key) != other.get(key)]


if __name__ == "__main__":  # `python -m helpers.machine`: the emulation `make test` checks on (no torch needed)
    print(check_emulation())
