"""The SLURM profile (profiles/slurm) with stand-in SLURM commands: what reaches sbatch (one GPU
per allocation, memory, runtime, grouped FV chunks) and that the submitted jobs really run.

The stand-ins (tests/slurm_stubs.py) go first on PATH; sbatch runs each job script locally to the
end before answering with the job id, so the FV outputs are real."""

import json
import re

from slurm_stubs import calls, stub_env, write_stubs
from workflow_helpers import FV_LAYERS_11, link_images, smk, tiny_config


def test_slurm_profile_submits_grouped_fv_chunks_with_one_gpu(tmp_path, sample_dir):
    data = link_images(sample_dir, tmp_path / "data", 4)
    config = tiny_config(tmp_path, data)
    stubs = tmp_path / "slurm"
    write_stubs(stubs)
    proc = smk("--profile", "profiles/slurm", "--configfile", "demo.yaml", config, "--until", "fv_chunk",
               "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1",
               "--slurm-logdir", tmp_path / "slurm-logs", "--slurm-keep-successful-logs", env=stub_env(stubs))

    # the three FV chunks of block 1.1 (its I, B and O layer) went out as ONE group submission
    sbatch = calls(stubs, "sbatch")
    assert len(sbatch) == 1, sbatch
    argv = sbatch[0]
    flags = " ".join(a for a in argv if not a.startswith("--wrap"))
    assert "--parsable" in argv
    assert "--gpus=1" in argv  # one GPU for the allocation: gpu is a local resource, not summed to 3
    assert not any(a.startswith("--gpus=") and a != "--gpus=1" for a in argv)
    assert "--cpus-per-gpu=4" in argv
    assert "--mem 8000" in flags  # the fv_chunk memory; jobs of a group run in turn, so not summed
    assert "-t 60" in flags  # 3 chunks x 20 minutes, one after another on the allocation's GPU
    assert "-p gpu" in flags  # the stand-in sinfo's default partition
    assert "--comment rule_fv_fv_chunk" in flags  # group "fv"
    wrap = next(a for a in argv if a.startswith("--wrap="))
    for layer in FV_LAYERS_11:
        assert f"fv_chunk:layer={layer},chunk=c0000-0063" in wrap
    assert "--set-resource-scopes 'gpu=local'" in wrap

    # inside the allocation each job is one srun step with the GPU
    srun = calls(stubs, "srun")
    assert len(srun) == 3 and all("--gpus=1" in a for a in srun)
    # status came from sacct (the plugin's default when sacct exists) and the jobs succeeded
    assert any("--parsable2" in a and "JobIdRaw,State" in " ".join(a) for a in calls(stubs, "sacct"))
    for layer in FV_LAYERS_11:
        chunk = tmp_path / "results" / "fv" / layer / "c0000-0063"
        assert sorted(p.name for p in chunk.iterdir() if not p.name.startswith(".")) == ["fv.h5", "unit0000.png"]
    assert re.search(r"^3 of \d+ steps \(\d+%\) done$", proc.stderr, re.M)  # the 3 FV jobs, nothing else
    job = json.loads(next((stubs / "jobs").glob("*.json")).read_text())
    assert job["rc"] == 0


def test_slurm_profile_dry_run_plans_the_whole_study(tmp_path, sample_dir):
    """The full paper study (every channel) parses with the profile: 4,672 units in 64-channel chunks."""
    stubs = tmp_path / "slurm"
    write_stubs(stubs)
    proc = smk("-n", "--profile", "profiles/slurm", "--config", f"dataset={{path: {sample_dir}}}",
               f"results={tmp_path}/results", env=stub_env(stubs))
    table = proc.stdout + proc.stderr
    row = next(line for line in table.splitlines() if line.startswith("fv_chunk"))
    assert int(row.split()[-1]) == 4672 // 64  # every layer's channel count is a multiple of 64
    assert calls(stubs, "sbatch") == []
