"""How a Snakemake job runs its library entry point: logging into the rule's ``log:`` file, the
job's threads, and failures that explain themselves.

* A known problem (:class:`~resstream.base.errors.UserError`: bad input, a full disk) ends the job with
  ONE line ``resstream: <problem>. Fix: <what to do>`` on stderr and in the log.
* Anything unexpected writes its full traceback to the rule's log (what ``--show-failed-logs``
  prints) and one line to stderr naming the rule, the exception and the log.

This module imports no torch at module level and nothing of the library's stages, so every job's
code fingerprint (:mod:`resstream.base.code_fingerprint`) includes it without tying the stages together.
"""

from __future__ import annotations

import logging
import os
import sys

from resstream.base.errors import UserError

FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


class _WithoutTraceback(logging.Formatter):
    """For stderr: the message of a record, never its traceback (that goes to the log file)."""

    def format(self, record: logging.LogRecord) -> str:
        plain = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None, "stack_info": None})
        return super().format(plain)


def _log_handlers(log_path: str | None) -> list[logging.Handler]:
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(_WithoutTraceback(FORMAT))
    handlers: list[logging.Handler] = [stderr]
    if log_path:
        os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
        to_file = logging.FileHandler(log_path, mode="w")
        to_file.setFormatter(logging.Formatter(FORMAT))
        handlers.append(to_file)
    return handlers


def script_main(snakemake, work, level=logging.INFO):
    """Run ``work()`` (the job's library call, with every argument taken from what its rule
    declares) with logging sent to the rule's log file and stderr, torch limited to the job's
    threads; failures end the job as the module docstring says."""
    log_path = snakemake.log[0] if len(snakemake.log) else None
    logging.basicConfig(level=level, handlers=_log_handlers(log_path), force=True)
    threads = getattr(snakemake, "threads", None)
    if threads:
        limit_torch_threads(int(threads))
    log = logging.getLogger("resstream")
    try:
        return work()
    except UserError as exc:
        if getattr(exc, "refused_output", None):
            mark_refused(exc.refused_output)
        log.error("%s", exc)
        _stop(f"resstream: {exc}")
    except Exception as exc:  # noqa: BLE001  (anything unexpected: its traceback goes to the log)
        from resstream.base.disk_space import disk_full_error, is_disk_full

        if is_disk_full(exc):
            message = str(disk_full_error(getattr(exc, "filename", None) or _first_output(snakemake)))
            log.error("%s", message, exc_info=True)
            _stop(f"resstream: {message}")
        log.error("unexpected error in rule %s", snakemake.rule, exc_info=True)
        where = f"full traceback in {log_path}" if log_path else "this rule has no log: run it with --verbose"
        _stop(f"resstream: rule {snakemake.rule} failed: {type(exc).__name__}: {_first_line(exc)} ({where})")


def job_gpus(snakemake) -> int:
    """Make a job that loads the network run on the device it declares (its params ``device`` and
    ``gpu_slots``, its resource ``gpu``); call it before torch is imported.  Returns the GPUs it may use."""
    from resstream.base.gpu_slots import declared_gpus, prepare_job_device

    params = snakemake.params
    return prepare_job_device(params.device, declared_gpus(snakemake), params.gpu_slots)


# beside an output its job refused to overwrite (it did not write it): Snakemake then keeps that output
# (resstream/workflow/refusals.py, which is kept out of here so that its edits rerun no job)
REFUSED_MARKER_SUFFIX = ".refused-by-job"


def mark_refused(output: str) -> None:
    """Record that this job refused to overwrite ``output``, which it did not write."""
    with open(output + REFUSED_MARKER_SUFFIX, "w") as f:
        f.write(f"a job (PID {os.getpid()}) refused to overwrite {output}, which it did not write\n")


def limit_torch_threads(threads: int) -> None:
    """Torch in this job uses ``threads`` threads.  Torch is not imported for it: a job whose work
    never needs torch (tables, figures, the summary, the atlas) saves the 1-2 s its import costs.
    Where torch is not loaded yet its thread pool is sized, when imported, by ``OMP_NUM_THREADS``."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    else:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)


def _first_output(snakemake) -> str:
    return str(snakemake.output[0]) if len(snakemake.output) else "(unknown output)"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else "(no message)"


def _stop(line: str):
    logging.shutdown()  # the log file is complete before the process ends
    print(line, file=sys.stderr)
    sys.exit(1)
