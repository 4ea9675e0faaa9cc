"""The SLURM profile (profiles/slurm) with stand-in SLURM commands: what reaches sbatch (one GPU
per allocation, memory and runtime from each job's size, grouped FV chunks, a retry with more of
both), that the submitted jobs really run, and that every job of the full paper study is either
submitted with resources fitting its size or run by Snakemake itself (the cheap aggregations).

The stand-ins (tests/helpers/slurm_stubs.py) go first on PATH; sbatch runs each job script locally to the
end before answering with the job id, so the FV outputs are real; for the full study it makes each
job's outputs instead (stand-in jobs)."""

import json
import math
import re

from helpers.configs import tiny_config_file
from helpers.rerun_matrix import FIGURE_RULES, parse_jobs
from helpers.slurm_stubs import calls, stub_env, write_stubs
from helpers.workflow import FV_LAYERS_11, copy_workflow, link_images, smk

TIMING = ["--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1"]
# The budgets docs/clusters.md states ("Running on a SLURM cluster"): minutes = 5 + seconds / 60, rounded up,
# times the attempt; memory 3000 MB plus what grows with the job.
START_MINUTES, BASE_MB = 5, 3000
FV_GPU_SECONDS_PER_UNIT_STEP = 0.03
PASS_IMAGES_PER_SECOND = 10
SECONDS_PER_UNIT = {"exemplar_grids": 1.0, "measure_fv": 2.0, "measure_imagenet": 4.0, "atlas_block": 1.0}
LOCAL_RULES = {"dataset_manifest", "metric_table", "analysis_summary", *FIGURE_RULES, "paper_check", "atlas_index"}
DIRECTORY_RULES = {"fv_chunk", "fv_channel_chunk", "exemplar_grids", "atlas_block"}
STAGE_CHANNELS = {"1": 64, "2": 128, "3": 256, "4": 512}  # resnet18


def minutes(seconds, attempt=1):
    return math.ceil(START_MINUTES + seconds / 60) * attempt


def flag(argv, name):
    """The value of an sbatch option given as ``-t 87`` or ``--gpus=1`` (None when absent)."""
    for i, a in enumerate(argv):
        if a == name:
            return argv[i + 1]
        if a.startswith(name + "="):
            return a[len(name) + 1 :]
    joined = " ".join(a for a in argv if not a.startswith("--wrap"))
    found = re.search(rf"(?:^| ){re.escape(name)}[ =](\S+)", joined)
    return found.group(1) if found else None


def test_slurm_profile_submits_grouped_fv_chunks_with_one_gpu(tmp_path, sample_dir):
    data = link_images(sample_dir, tmp_path / "data", 4)
    config = tiny_config_file(tmp_path, data, model={"device": "auto"})  # on a cluster auto asks for a GPU
    stubs = tmp_path / "slurm"
    write_stubs(stubs)
    proc = smk(
        "--profile",
        "profiles/slurm",
        "--configfile",
        "demo.yaml",
        config,
        "--until",
        "fv_chunk",
        *TIMING,
        "--slurm-logdir",
        tmp_path / "slurm-logs",
        "--slurm-keep-successful-logs",
        env=stub_env(stubs),
    )

    # the three FV chunks of block 1.1 (its I, B and O layer) went out as ONE group submission (of
    # up to four)
    sbatch = calls(stubs, "sbatch")
    assert len(sbatch) == 1, sbatch
    argv = sbatch[0]
    flags = " ".join(a for a in argv if not a.startswith("--wrap"))
    assert "--parsable" in argv
    assert "--gpus=1" in argv  # one GPU for the allocation: gpu is a local resource, not summed to 3
    assert not any(a.startswith("--gpus=") and a != "--gpus=1" for a in argv)
    assert "--cpus-per-gpu=4" in argv
    # one unit x 2 steps each: memory not summed (the jobs of a group run in turn), runtime summed
    assert f"--mem {BASE_MB + 5}" in flags
    assert f"-t {3 * minutes(1 * 2 * FV_GPU_SECONDS_PER_UNIT_STEP)}" in flags
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


def expected_resources(job, images, attempt=1):
    """(minutes, MB) of a job from its size, computed here from the study (every channel of
    resnet18, 2,560 steps) and the stand-in dataset's images."""
    wildcards = dict(job.wildcards)
    if job.rule in ("fv_chunk", "fv_channel_chunk"):
        first, last = (int(c) for c in wildcards["chunk"][1:].split("-"))
        units = last - first + 1
        return minutes(units * 2560 * FV_GPU_SECONDS_PER_UNIT_STEP, attempt), (BASE_MB + 5 * units) * attempt
    if job.rule == "activations":  # batch 64, 2 decoding workers (the defaults), no full maps
        return minutes(images / PASS_IMAGES_PER_SECOND, attempt), (BASE_MB + 64 * 12 + 2 * 500) * attempt
    if job.rule == "model_card":
        return minutes(0, attempt), BASE_MB * attempt
    place = wildcards.get("layer") or wildcards["block"]
    units = STAGE_CHANNELS[place.removeprefix("layer")[0]] if place != "maxpool" else 64
    mem = BASE_MB + (2 * images * units * 8 / 1e6 if job.rule.startswith("measure") else 0)
    return minutes(units * SECONDS_PER_UNIT[job.rule], attempt), math.ceil(mem) * attempt


def write_raw_tables(results):
    """The measurements' raw tables of every block and channel (tests/helpers/paper_tables.py), with the
    block's layers in the sidecar, as a measurement job writes them."""
    from helpers import REPO
    from helpers.paper_tables import agreeing
    from resstream.analysis.summary import raw_table_csv, write_table
    from resstream.workflow.config import load_config
    from resstream.workflow.plan import StudyPlan

    study = StudyPlan(load_config(REPO / "config.yaml"))
    for name, block in agreeing().items():
        for stimulus, raw in zip(("fv", "imagenet"), block.tables()):
            meta = {
                "weights": {"label": "stand-in", "pretrained": False},
                "block": name,
                "o_relu": "pre",
                "layers": study.block_layers(name),
            }
            write_table(raw, raw_table_csv(str(results), name, stimulus), meta)


def spec(job) -> str:
    """A job as a submission's --target-jobs names it (wildcards sorted)."""
    return f"{job.rule}:" + ",".join(f"{k}={v}" for k, v in job.wildcards)


def test_every_job_of_the_full_study_is_submitted_with_resources_fitting_its_size(tmp_path, sample_dir):
    """config.yaml (4,672 units) on the 200-image stand-in dataset through the SLURM profile, with
    stand-in jobs: every job but the cheap aggregations reaches sbatch, once, with a runtime and a
    memory computed from its size (never the profile's defaults), FV chunks four to an allocation
    with one GPU; the dataset pass fails once and is resubmitted with twice the time and memory."""
    stubs = tmp_path / "slurm"
    write_stubs(stubs)
    results = tmp_path / "results"
    workflow = copy_workflow(tmp_path / "workflow")  # Snakemake's locks and metadata stay there
    # the paper study's sizes; stand-in weights (no download here) and images
    args = [
        "--profile",
        "profiles/slurm",
        "--config",
        f"dataset={{path: {sample_dir}}}",
        f"results={results}",
        "model={weights: 'random:0'}",
    ]
    env = stub_env(stubs)
    proc = smk("-n", *args, env=env, cwd=workflow)
    text = proc.stdout + proc.stderr
    jobs, dag = parse_jobs(text)
    assert sum(j.rule == "fv_chunk" for j in jobs) == 4672 // 64  # every layer's channels: a multiple of 64
    # [path, is a folder]: a rule's directory() output, never its benchmark file (.tsv)
    outputs = {
        spec(j): [[path, j.rule in DIRECTORY_RULES and not path.endswith(".tsv")] for path in sorted(dag.outputs[j])]
        for j in jobs
    }
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    env.update(STUB_OUTPUTS=str(tmp_path / "outputs.json"), STUB_FAIL_ONCE="activations")
    run = [*args, *TIMING, "--slurm-logdir", tmp_path / "slurm-logs"]
    # every job up to the measurements (what comes after reads their tables: stand-ins cannot do)
    smk(*run, "--omit-from", "metric_table", env=env, timeout=600, cwd=workflow)
    # the measurements' raw tables made real (hand-made, every channel), then the rest of the DAG:
    # the cheap aggregations run here, for real; the atlas blocks are submitted
    write_raw_tables(results)
    proc = smk(*run, env=env, timeout=600, cwd=workflow)
    ran_here = set(re.findall(r"^\s*localrule (\w+):", proc.stdout + proc.stderr, re.M)) - {"all"}
    assert ran_here == LOCAL_RULES - {"dataset_manifest"}  # the image manifest ran here in the first part
    assert json.loads((results / "summary.json").read_text())["blocks"]["4.1"]["channels"] == 512

    submitted = [json.loads(p.read_text()) for p in sorted((stubs / "jobs").glob("*.json"), key=lambda p: int(p.stem))]
    by_spec = {spec(j): j for j in jobs}
    seen = []
    for sub in submitted:
        argv, targets = sub["argv"], sub["targets"]
        members = [by_spec[t] for t in targets]
        attempt = 1 + sum(m.rule == "activations" for s in seen for m in s) if members[0].rule == "activations" else 1
        budgets = [expected_resources(m, 200, attempt) for m in members]
        assert int(flag(argv, "-t")) == sum(b[0] for b in budgets), (targets, argv)
        assert int(flag(argv, "--mem")) == max(b[1] for b in budgets), (targets, argv)
        rules = {m.rule for m in members}
        if len(members) > 1:
            assert rules <= {"fv_chunk", "fv_channel_chunk"} and len(members) <= 4, targets
        if rules & {"fv_chunk", "fv_channel_chunk", "activations", "measure_fv", "measure_imagenet"}:
            assert flag(argv, "--gpus") == "1", (targets, argv)  # one GPU for the whole allocation
        else:
            assert flag(argv, "--gpus") is None, (targets, argv)
        seen.append(members)
    # every job that is not an aggregation was submitted once (the dataset pass twice), none of those
    assert not {m.rule for members in seen for m in members} & LOCAL_RULES
    counted = [m for members in seen for m in members]
    assert sorted(map(spec, counted)) == sorted([spec(j) for j in jobs if j.rule not in LOCAL_RULES] + ["activations:"])
    passes = [s for s in submitted if s["targets"] == ["activations:"]]
    assert [s["rc"] for s in passes] == [1, 0]
    first, second = (s["argv"] for s in passes)
    assert int(flag(second, "-t")) == 2 * int(flag(first, "-t")) and int(flag(second, "--mem")) == 2 * int(
        flag(first, "--mem")
    )
    fv_groups = [s for s in submitted if s["targets"][0].startswith(("fv_chunk", "fv_channel_chunk"))]
    assert len(fv_groups) == math.ceil(sum(j.rule in ("fv_chunk", "fv_channel_chunk") for j in jobs) / 4)
    assert all(flag(s["argv"], "-t") != "30" and flag(s["argv"], "--mem") != "4000" for s in submitted)


def test_slurm_profile_runs_a_cpu_groups_jobs_in_sequence(tmp_path, sample_dir):
    """model.device cpu: the FV jobs declare no GPU, yet the group's jobs still take the one
    allocation slot in turn, so the group asks for one job's CPUs, the largest memory and the sum
    of the runtimes (not 3 CPUs and 3 x the memory for one job's time: pending forever on a small
    node)."""
    data = link_images(sample_dir, tmp_path / "data", 4)
    config = tiny_config_file(tmp_path, data)  # model.device cpu
    stubs = tmp_path / "slurm"
    write_stubs(stubs)
    smk(
        "--profile",
        "profiles/slurm",
        "--configfile",
        "demo.yaml",
        config,
        "--until",
        "fv_chunk",
        *TIMING,
        "--slurm-logdir",
        tmp_path / "slurm-logs",
        env=stub_env(stubs),
    )
    (argv,) = calls(stubs, "sbatch")
    assert flag(argv, "--gpus") is None and flag(argv, "--cpus-per-gpu") is None
    sent = [a for a in argv if not a.startswith("--wrap")]
    assert flag(argv, "--cpus-per-task") == "1", sent  # fv.threads of one job
    assert int(flag(argv, "--mem")) == BASE_MB + 5
    cpu_minutes = math.ceil(START_MINUTES + 2 * 0.15 / 60)  # one unit x 2 steps at the CPU rate
    assert int(flag(argv, "-t")) == 3 * cpu_minutes


def test_a_job_larger_than_any_node_is_named_before_submission(tmp_path, sample_dir):
    """sinfo lists one 2-CPU node; the model card asks for 64 CPUs: one warning line names the job,
    what it asks and what the node has, before the job is submitted (the run goes on)."""
    data = link_images(sample_dir, tmp_path / "data", 4)
    config = tiny_config_file(tmp_path, data)
    stubs = tmp_path / "slurm"
    write_stubs(stubs)
    env = dict(stub_env(stubs), STUB_SINFO_NODES="2|24105|(null)")
    proc = smk(
        "--profile",
        "profiles/slurm",
        "--configfile",
        "demo.yaml",
        config,
        "--until",
        "model_card",
        "--set-resources",
        "model_card:cpus_per_task=64",
        *TIMING,
        "--slurm-logdir",
        tmp_path / "slurm-logs",
        env=env,
    )
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("resstream: warning:")]
    assert warnings == [
        "resstream: warning: model_card (one job) asks for 64 CPUs (the largest node has 2) according to sinfo: it "
        "would stay pending forever. Fix: lower its request with --set-resources (e.g. model_card:cpus_per_task=N "
        "or mem_mb=N), or use a partition whose nodes are larger (slurm_partition)"
    ]
    assert proc.stderr.index(warnings[0]) < proc.stderr.index("has been submitted with SLURM jobid")  # before sbatch
    assert [flag(argv, "--cpus-per-task") for argv in calls(stubs, "sbatch")] == ["64"]
