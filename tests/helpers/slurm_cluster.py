"""A real single-node SLURM cluster for tests: Debian's ``slurm-wlm`` (slurmctld + slurmd, no
slurmdbd, so no accounting: ``sacct`` fails, as on sites without accounting storage) and ``munge``.

Everything lives in one temporary folder: the munge key, socket and logs, ``slurm.conf``, the
controller's state, the node's spool, both daemons' logs and PID files.  Clients find the cluster
through ``SLURM_CONF`` (the conf names the private munge socket in ``AuthInfo``), and the ports
are free ones picked at start, so two clusters on one machine do not meet.  The node advertises
the machine's own CPUs and memory (``slurmd -C``).  The daemons run in the foreground as child
processes of the test, which stops each by its PID (and they get SIGTERM if the test process dies).

``python tests/helpers/slurm_cluster.py --check`` prints what is found (exit 0) or how to get it
(exit 1); ``make slurm`` installs the packages through apt as root on Debian/Ubuntu.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scancel", "sacct", "srun")
SBIN = ("/usr/sbin", "/sbin")  # munged and the slurm daemons live here, often off a user's PATH
INSTALL_HINT = (
    "install Debian's slurm-wlm and munge (apt-get install slurm-wlm munge, which make test does as root) "
    "and run the tests as root, which the daemons need"
)


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))


def cluster_unavailable_reason() -> str | None:
    """Why a cluster cannot be started here (None when it can)."""
    missing = [d for d in DAEMONS if _which(d) is None]
    if missing:
        return f"{', '.join(missing)} not found"
    if os.geteuid() != 0:
        return "the tests are not running as root"
    return None


def _die_with_parent() -> None:
    """In a daemon's child process before exec: SIGTERM when the test process dies, so that a
    killed test run (a timeout, kill -9) leaves no daemon behind (Linux's PR_SET_PDEATHSIG)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_line() -> str:
    """``NodeName=... CPUs=... RealMemory=...`` of this machine, as slurmd itself reads it."""
    out = subprocess.run([_which("slurmd"), "-C"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0]


SLURM_CONF = """\
ClusterName=resstream-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
ReturnToService=2
MinJobAge=300
InactiveLimit=0
KillWait=5
{node} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


class SlurmCluster:
    """Start with :meth:`start`, stop with :meth:`stop`; :attr:`env` is the clients' environment."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.processes: list[subprocess.Popen] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
        self.node = _node_line()
        self.node_name = self.node.split()[0].split("=", 1)[1]

    def start(self, timeout: float = 60) -> SlurmCluster:
        root = self.root
        for sub in ("munge", "state", "spool"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "munge").chmod(0o700)
        munge_socket = root / "munge" / "munge.socket"
        key = root / "munge" / "munge.key"
        subprocess.run([_which("mungekey"), "--create", f"--keyfile={key}"], check=True, capture_output=True)
        self._spawn(
            "munged",
            [
                _which("munged"),
                "--foreground",
                "--force",
                f"--socket={munge_socket}",
                f"--key-file={key}",
                f"--log-file={root}/munge/munged.log",
                f"--pid-file={root}/munge/munged.pid",
                f"--seed-file={root}/munge/munged.seed",
            ],
        )
        self._wait(lambda: munge_socket.exists(), "munged's socket", timeout)
        conf = root / "slurm.conf"
        conf.write_text(
            SLURM_CONF.format(
                host=self.node_name,
                ctld_port=_free_port(),
                d_port=_free_port(),
                munge_socket=munge_socket,
                root=root,
                node=self.node,
            )
        )
        self.env["SLURM_CONF"] = str(conf)
        self._wrap_srun(conf)
        self._spawn("slurmctld", [_which("slurmctld"), "-D", "-c", "-i", "-f", str(conf)])
        self._spawn("slurmd", [_which("slurmd"), "-D", "-f", str(conf), "-N", self.node_name])
        self._wait(self._node_idle, "the node to be idle", timeout)
        return self

    def _wrap_srun(self, conf: Path) -> None:
        """An ``srun`` first on the jobs' PATH that names this cluster's conf: the plugin's job step
        drops every SLURM_ variable but the job's identity (SLURM_CONF included) before it calls
        srun, which then looks for /etc/slurm/slurm.conf, a site's usual place."""
        bin_dir = self.root / "bin"
        bin_dir.mkdir(exist_ok=True)
        srun = bin_dir / "srun"
        srun.write_text(f'#!/bin/sh\nSLURM_CONF={conf} exec {_which("srun")} "$@"\n')
        srun.chmod(0o755)
        self.env["PATH"] = f"{bin_dir}{os.pathsep}{self.env.get('PATH', '')}"

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / f"{name}.out", "w")
        self.processes.append(
            subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        )

    def _wait(self, ready, what: str, timeout: float) -> None:
        end = time.monotonic() + timeout
        while not ready():
            dead = [p for p in self.processes if p.poll() is not None]
            if dead or time.monotonic() > end:
                raise RuntimeError(
                    f"the test cluster did not start ({what}; "
                    f"{'a daemon exited' if dead else 'timed out'}): {self.logs()}"
                )
            time.sleep(0.5)

    def _node_idle(self) -> bool:
        out = self.run("sinfo", "-h", "-N", "-o", "%T", check=False).stdout
        return out.strip().rstrip("*") == "idle"

    def run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [_which(tool), *args], capture_output=True, text=True, env=self.env, check=check, timeout=60
        )

    def logs(self, tail: int = 15) -> str:
        lines = []
        for name in ("munge/munged.log", "slurmctld.log", "slurmd.log", "slurmctld.out", "slurmd.out"):
            path = self.root / name
            if path.exists():
                lines += [f"--- {name}", *path.read_text(errors="replace").splitlines()[-tail:]]
        return "\n".join(lines)

    def stop(self) -> None:
        """Stop the daemons by PID, the node first, and wait for each (killed after 15 s)."""
        for proc in reversed(self.processes):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
        self.processes.clear()


if __name__ == "__main__":
    if "--check" in sys.argv:
        reason = cluster_unavailable_reason()
        if reason:
            print(f"the real-cluster test will be skipped (required under CI=true): {reason}; {INSTALL_HINT}")
            sys.exit(1)
        print("slurm-wlm and munge found; the real-cluster test can start its own cluster")
