"""Fan a heavy stage out over workers: its shard commands (`python -m helpers STAGE --shard i/n`) run as Ray tasks
(one GPU each where the cluster has GPUs, a failed shard retried) or as a Slurm job array, then the merge.

Usage: `python -m helpers fanout STAGE --profile P --shards N --engine ray|slurm [--address auto] [--out DIR]`
with the stage's own options (`--model`, `--layers`, `--seed`) passed on to every shard.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

STAGES = ("extract", "corpus", "train-sae", "surgery", "generate", "judge")
MERGED = ("extract", "corpus")  # one unsharded call afterwards merges the shards' chunks without loading a model
ENGINES = ("ray", "slurm")


@dataclasses.dataclass(frozen=True)
class Plan:
    """The commands of one fan-out: one per shard, and the merge that follows them (None: the shards fill the
    cache themselves)."""

    stage: str
    shards: list[list[str]]
    merge: list[str] | None


def plan(stage: str, profile: str, shards: int, options: Sequence[str] = (), python: str = sys.executable) -> Plan:
    """The shard commands of `stage` for `profile` (with the stage's `options`) split `shards` ways, and its merge."""
    if stage not in STAGES:
        raise ValueError(f"stage {stage!r} cannot fan out; stages: {', '.join(STAGES)}")
    if shards < 1:
        raise ValueError(f"--shards must be ≥ 1, got {shards}")
    base = [python, "-m", "helpers", stage, "--profile", str(profile), *options]
    return Plan(stage, [[*base, "--shard", f"{i}/{shards}"] for i in range(shards)],
                base if stage in MERGED else None)


def _tail(text: str, lines: int = 20) -> str:
    """The last `lines` lines of a process's output."""
    return "\n".join(text.strip().splitlines()[-lines:])


def run_ray(work: Plan, address: str | None = None, retries: int = 2, num_cpus: int | None = None) -> list[str]:
    """Run the shard commands as Ray tasks (on the cluster at `address`, else on a local one started here with
    `num_cpus`, loopback only), each retried up to `retries` times, then the merge here; return each shard's
    output. A shard that still fails raises, naming its command and the end of its output."""
    import ray

    started = not ray.is_initialized()
    if started:
        local = {} if address else {"num_cpus": num_cpus, "_node_ip_address": "127.0.0.1",
                                    "object_store_memory": 200 * 2**20}
        ray.init(address=address, include_dashboard=False, configure_logging=False, log_to_driver=False, **local)
    try:
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0

        @ray.remote(num_cpus=1, num_gpus=gpus, max_retries=retries, retry_exceptions=True)
        def shard(argv: list[str], cwd: str) -> str:
            done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"`{shlex.join(argv)}` exited with {done.returncode}:\n"
                                   f"{_tail(done.stdout + done.stderr)}")
            return done.stdout

        outputs = ray.get([shard.remote(argv, os.getcwd()) for argv in work.shards])
    finally:
        if started:
            ray.shutdown()
    if work.merge is not None:
        subprocess.run(work.merge, check=True)
    return outputs


def slurm_scripts(work: Plan, out: Path, gpus_per_shard: int = 1, cpus_per_shard: int = 4,
                  time_limit: str = "04:00:00") -> list[Path]:
    """Write the Slurm job array of the shards (`<stage>-shards.sbatch`), its merge (`<stage>-merge.sbatch`) and
    `<stage>-submit.sh`, which submits the array and the merge to run after every shard succeeded; return the files.
    The jobs run `python` of the environment they are submitted from ($PYTHON overrides it)."""
    out.mkdir(parents=True, exist_ok=True)
    count = len(work.shards)
    command = "${PYTHON:-python} " + shlex.join(work.shards[0][1:-2])  # the shard command without python and --shard
    header = ["#!/bin/bash", f"#SBATCH --job-name=helpers-{work.stage}", f"#SBATCH --cpus-per-task={cpus_per_shard}",
              f"#SBATCH --time={time_limit}"]
    shards = out / f"{work.stage}-shards.sbatch"
    shards.write_text("\n".join([*header, f"#SBATCH --array=0-{count - 1}",
                                 *([f"#SBATCH --gres=gpu:{gpus_per_shard}"] if gpus_per_shard else []),
                                 f"#SBATCH --output=helpers-{work.stage}-%A_%a.log", "set -euo pipefail",
                                 f'{command} --shard "${{SLURM_ARRAY_TASK_ID}}/{count}"', ""]))
    written = [shards]
    submit = ["#!/bin/bash", "set -euo pipefail", f'array=$(sbatch --parsable "$(dirname "$0")/{shards.name}")',
              'echo "shards: job array $array"']
    if work.merge is not None:
        merge = out / f"{work.stage}-merge.sbatch"
        merge.write_text("\n".join([*header, f"#SBATCH --output=helpers-{work.stage}-merge-%j.log",
                                    "set -euo pipefail", command, ""]))
        written.append(merge)
        submit += [f'sbatch --dependency=afterok:"$array" "$(dirname "$0")/{merge.name}"']
    script = out / f"{work.stage}-submit.sh"
    script.write_text("\n".join([*submit, ""]))
    script.chmod(0o755)
    return [*written, script]


def main(argv: Sequence[str]) -> None:
    """`python -m helpers fanout ...`: parse the command line and fan the stage out."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m helpers fanout", description=__doc__.split("\n")[0])
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--shards", type=int, required=True, help="how many shard commands")
    parser.add_argument("--engine", choices=ENGINES, required=True)
    parser.add_argument("--address", help="ray: the cluster to join (e.g. auto); default: a local one")
    parser.add_argument("--retries", type=int, default=2, help="ray: retries of a failed shard")
    parser.add_argument("--out", default="_build/fanout", help="slurm: where the scripts are written")
    parser.add_argument("--gpus-per-shard", type=int, default=1, help="slurm: GPUs per array task")
    parser.add_argument("--model", action="append", default=[])
    parser.add_argument("--layers")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    options = [*(f"--model={m}" for m in args.model), *([f"--layers={args.layers}"] if args.layers else []),
               *([f"--seed={args.seed}"] if args.seed is not None else [])]
    work = plan(args.stage, args.profile, args.shards, options)
    if args.engine == "ray":
        run_ray(work, args.address, args.retries)
        print(f"{args.stage}: {args.shards} shards done" + (", merged" if work.merge else ""))
    else:
        for path in slurm_scripts(work, Path(args.out), args.gpus_per_shard):
            print(f"wrote {path}")
