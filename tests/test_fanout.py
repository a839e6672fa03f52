"""The fan-out of a heavy stage: its shard commands, the Slurm job array written for them, and a real run on a
local Ray cluster whose merged caches equal a single run's."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import fanout, netguard


def test_plan_splits_a_stage_into_shard_commands_and_merges_only_chunked_stages():
    work = fanout.plan("extract", "ci", 3, ["--model=gemma3-270m"], python="py")
    assert work.shards == [["py", "-m", "helpers", "extract", "--profile", "ci", "--model=gemma3-270m",
                            "--shard", f"{i}/3"] for i in range(3)]
    assert work.merge == ["py", "-m", "helpers", "extract", "--profile", "ci", "--model=gemma3-270m"]
    assert fanout.plan("train-sae", "paper", 2).merge is None  # each shard trains its own layers: nothing to merge
    with pytest.raises(ValueError, match="stage 'plot'"):
        fanout.plan("plot", "ci", 2)
    with pytest.raises(ValueError, match="--shards"):
        fanout.plan("extract", "ci", 0)


def test_slurm_writes_a_job_array_and_a_merge_that_waits_for_every_shard(tmp_path):
    files = fanout.slurm_scripts(fanout.plan("corpus", "paper", 8, ["--seed=1"]), tmp_path, gpus_per_shard=1)
    shards, merge, submit = (path.read_text() for path in files)
    assert "#SBATCH --array=0-7" in shards and "#SBATCH --gres=gpu:1" in shards
    assert '${PYTHON:-python} -m helpers corpus --profile paper --seed=1 --shard "${SLURM_ARRAY_TASK_ID}/8"' in shards
    assert merge.splitlines()[-1] == "${PYTHON:-python} -m helpers corpus --profile paper --seed=1"
    assert "sbatch --parsable" in submit and 'sbatch --dependency=afterok:"$array"' in submit
    cpu_only = fanout.slurm_scripts(fanout.plan("train-sae", "ci", 2), tmp_path / "cpu", gpus_per_shard=0)
    assert [p.name for p in cpu_only] == ["train-sae-shards.sbatch", "train-sae-submit.sh"]  # no merge to wait for
    assert "--gres" not in cpu_only[0].read_text() and "dependency" not in cpu_only[1].read_text()


def _layer_arrays(root: Path) -> dict[str, dict[str, np.ndarray]]:
    """Every activation layer file under an output root's cache, by relative path (manifests hold timings)."""
    from safetensors.numpy import load_file

    folder = root / "cache" / "activations"
    return {str(p.relative_to(folder)): load_file(p) for p in sorted(folder.rglob("layer_*.safetensors"))}


def test_ray_fanout_of_extract_and_corpus_fills_the_caches_a_single_run_fills(smollm2, root, tmp_path, monkeypatch,
                                                                              no_network):
    from helpers.data import socialchem

    lines = socialchem.BUNDLED_TSV.read_text(encoding="utf-8").splitlines(keepends=True)
    archive = tmp_path / "social-chem-101.zip"  # every 25th row of the bundled data: the mechanics, quickly
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr(f"social-chem-101/{socialchem.TSV_MEMBER}", "".join([lines[0], *lines[1::25]]))
    settings = yaml.safe_load((root / "params" / "ci.yaml").read_text())
    settings.update(models=["smollm2-135m-instruct"], socialchem_source=archive.as_uri(), quota_scale=0.05,
                    min_per_stratum=0, sae_input="pooled", sae_layers=[6, 12])
    profile = tmp_path / "fanout.yaml"
    profile.write_text(yaml.safe_dump(settings))
    for run in ("ray", "single"):  # fresh caches, sharing only the float copy of the bundled model
        (tmp_path / run / "cache").mkdir(parents=True)
        (tmp_path / run / "cache" / "models").symlink_to(root / "cache" / "models", target_is_directory=True)
    monkeypatch.setenv(netguard.LOG_ENV, str(tmp_path / "blocked.jsonl"))
    monkeypatch.setenv("BOOK_OUTPUT_ROOT", str(tmp_path / "ray"))
    for stage in ("extract", "corpus"):
        outputs = fanout.run_ray(fanout.plan(stage, str(profile), 2), num_cpus=2)
        assert len(outputs) == 2
    monkeypatch.setenv("BOOK_OUTPUT_ROOT", str(tmp_path / "single"))
    for stage in ("extract", "corpus"):
        subprocess.run(fanout.plan(stage, str(profile), 1).merge, check=True)
    fanned, single = _layer_arrays(tmp_path / "ray"), _layer_arrays(tmp_path / "single")
    assert len(single) == 30 + 2 and list(fanned) == list(single)  # every layer of the sample, the corpus's two
    for name, arrays in single.items():
        assert arrays.keys() == fanned[name].keys()
        for key, value in arrays.items():
            np.testing.assert_array_equal(fanned[name][key], value, err_msg=f"{name}: {key}")
    # nothing left the machine: the only attempts the guard refused are Ray's own dashboard probing the cloud
    # metadata address for TPUs, never a shard or a merge
    log = tmp_path / "blocked.jsonl"
    refused = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    assert all("ray/dashboard" in " ".join(r["argv"]) for r in refused), refused


def test_a_shard_that_keeps_failing_names_its_command(tmp_path, no_network):
    work = fanout.Plan("extract", [[sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"]], None)
    with pytest.raises(Exception, match="exited with 3") as error:
        fanout.run_ray(work, retries=1, num_cpus=1)
    assert "boom" in str(error.value)
