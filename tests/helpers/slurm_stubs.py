"""Stand-in SLURM commands for tests: ``sbatch``, ``srun``, ``sacct``, ``squeue``, ``sinfo``,
``scontrol``, written into a folder that goes first on PATH.

Each records its command line (one JSON list per line in ``<dir>/calls/<tool>.jsonl``).  ``sbatch``
runs the submitted ``--wrap`` script locally and to completion before it prints the job id
(``--parsable``: the id alone), so a job is finished by the executor's first status query;
``sacct``/``squeue`` then report ``<id>|COMPLETED`` or ``<id>|FAILED`` for the run's job name, as
the plugin's ``--parsable2 --format=JobIdRaw,State`` / ``--format=%i|%T`` queries expect.
``srun`` drops its options and runs the command.  ``sinfo -o %P`` lists one default partition
``gpu*``, ``sinfo --format=%c|%m|%G`` the nodes ``STUB_SINFO_NODES`` gives (``;`` between
them); ``scontrol show config`` gives MinJobAge and MaxArraySize.

Stand-in jobs (``STUB_OUTPUTS`` names a JSON file ``{target job: [[path, is directory], ...]}``):
``sbatch`` runs nothing and makes each submitted job's outputs itself (empty files, folders with
an HDF5 file of the datasets a finished one holds, which the pre-flight's check of damaged
outputs reads), so that a DAG too large to compute (the full paper study) goes through the executor
job by job.  ``STUB_FAIL_ONCE`` names rules whose first submission fails (to see the retry).
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

COMMON = r"""#!{python}
import json, os, subprocess, sys
from pathlib import Path
STATE = Path({state!r})
(STATE / "calls").mkdir(parents=True, exist_ok=True)
with open(STATE / "calls" / "{tool}.jsonl", "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\n")
args = sys.argv[1:]
"""

SBATCH = r'''
import shlex


def target_jobs(script):
    """The jobs a submission runs: the ``--target-jobs`` of its snakemake command, each as
    ``rule:key=value,...`` with the wildcards sorted."""
    words = shlex.split(script)
    found = []
    for i, w in enumerate(words):
        if w == "--target-jobs":
            for spec in words[i + 1:]:
                if spec.startswith("--"):
                    break
                rule, _, wildcards = spec.partition(":")
                found.append(rule + ":" + ",".join(sorted(filter(None, wildcards.split(",")))))
    return found


from resstream.activations.store import FORMAT
from resstream.workflow.damaged_outputs import ACTIVATIONS_DATASETS, FV_H5_DATASETS


def fake_run(targets):
    fail = set(filter(None, os.environ.get("STUB_FAIL_ONCE", "").split(",")))
    failed = STATE / "failed_once"
    failed.mkdir(exist_ok=True)
    for spec in targets:
        rule = spec.split(":")[0]
        if rule in fail and not (failed / rule).exists():
            (failed / rule).touch()
            return 1
    outputs = json.loads(Path(os.environ["STUB_OUTPUTS"]).read_text())
    for spec in targets:
        for path, is_dir in outputs[spec]:
            p = Path(path)
            if is_dir:  # a chunk folder's fv.h5 with the datasets a finished one holds (others ignore it)
                p.mkdir(parents=True, exist_ok=True)
                stand_in_h5(p / "fv.h5", FV_H5_DATASETS, {{}})
            elif p.suffix == ".h5":  # the activations file, readable and marked complete
                p.parent.mkdir(parents=True, exist_ok=True)
                stand_in_h5(p, ACTIVATIONS_DATASETS, {{"format": FORMAT, "complete": True}})
            else:
                p.parent.mkdir(parents=True, exist_ok=True)
                p.touch()
    return 0


def stand_in_h5(path, datasets, attrs):
    """An HDF5 file the workflow's pre-flight reads as undamaged: empty datasets of the names
    ``datasets``, the attributes ``attrs`` (resstream/workflow/damaged_outputs.py)."""
    import h5py
    with h5py.File(path, "w") as f:
        for name in datasets:
            f.create_dataset(name, data=[0])
        f.attrs.update(attrs)


def value(flag):
    for i, a in enumerate(args):
        if a == flag:
            return args[i + 1]
        if a.startswith(flag + "="):
            return a[len(flag) + 1:]
    return None

jobs = STATE / "jobs"
jobs.mkdir(exist_ok=True)
number = 1000 + len(list(jobs.glob("*.id")))
while True:  # Snakemake submits from several threads at once: each id is claimed by creating its file
    try:
        os.close(os.open(jobs / f"{{number}}.id", os.O_CREAT | os.O_EXCL))
        break
    except FileExistsError:
        number += 1
jobid = str(number)
wrap = value("--wrap")
script = wrap if wrap is not None else sys.stdin.read()
out = (value("--output") or "slurm-%j.out").replace("%j", jobid)
Path(out).parent.mkdir(parents=True, exist_ok=True)
env = dict(os.environ, SLURM_JOB_ID=jobid, SLURM_JOBID=jobid)
workdir = value("-D") or os.getcwd()
targets = target_jobs(script)
if os.environ.get("STUB_OUTPUTS"):
    rc = fake_run(targets)
else:
    with open(out, "w") as log:
        rc = subprocess.run(["/bin/sh", "-c", script], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
(jobs / f"{{jobid}}.json").write_text(json.dumps({{"name": value("--job-name"), "rc": rc, "argv": args, "targets": targets}}))
print(jobid)
'''

SRUN = r"""
rest = list(args)
while rest and rest[0].startswith("-"):
    rest.pop(0)
if rest == ["sh", "-s"]:
    os.execv("/bin/sh", ["/bin/sh", "-s"])
os.execv("/bin/sh", ["/bin/sh", "-c", " ".join(rest)])
"""

STATUS = r"""
name = None
for i, a in enumerate(args):
    if a == "--name":
        name = args[i + 1]
rows = []
for p in sorted((STATE / "jobs").glob("*.json")) if (STATE / "jobs").is_dir() else []:
    job = json.loads(p.read_text())
    if name is None or job["name"] == name:
        rows.append(f"{{p.stem}}|{{'COMPLETED' if job['rc'] == 0 else 'FAILED'}}")
if name is not None:
    print("\n".join(rows))
"""

SINFO = r"""
if any(a.startswith("--format=%c") for a in args):  # the nodes' CPUs|memory|GRES: STUB_SINFO_NODES
    print(os.environ.get("STUB_SINFO_NODES", "").replace(";", "\n"))
else:
    print("PARTITION\ngpu*")
"""
SCONTROL = 'print("MinJobAge               = 300 sec\\nMaxArraySize            = 1001")\n'

TOOLS = {"sbatch": SBATCH, "srun": SRUN, "sacct": STATUS, "squeue": STATUS, "sinfo": SINFO, "scontrol": SCONTROL}


def write_stubs(folder: Path) -> Path:
    """Write the stand-ins into ``folder/bin`` (state under ``folder``); return the bin folder."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool, body in TOOLS.items():
        path = bin_dir / tool
        path.write_text(COMMON.format(python=sys.executable, state=str(folder), tool=tool) + body.format())
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bin_dir


def calls(folder: Path, tool: str) -> list[list[str]]:
    path = folder / "calls" / f"{tool}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def stub_env(folder: Path) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{folder / 'bin'}{os.pathsep}{env['PATH']}"
    for var in [v for v in env if v.startswith(("SLURM_", "SBATCH_", "SRUN_"))]:
        del env[var]
    return env
