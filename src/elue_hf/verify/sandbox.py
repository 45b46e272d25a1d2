"""Run a re-run in a subprocess with hard limits (``resource.setrlimit``: address space and CPU seconds, plus a
wall-clock timeout), tied to the worker that started it, and describe the machine that verified.

The child runs in its own session and process group, so a timeout (or any way the worker leaves :func:`run_limited`)
ends the whole group, the child and anything it started. On Linux the child also asks the kernel to kill it when its
parent dies (``prctl(PR_SET_PDEATHSIG, SIGKILL)``): a worker killed with ``kill -9`` takes its sandbox with it, so a job
re-claimed after its lease is never run twice at once. Elsewhere the re-run's own watchdog thread (``rerun.main``) ends
its group when its parent is gone."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["SandboxLimits", "run_sandboxed", "run_limited", "describe_machine", "watch_parent"]

_PR_SET_PDEATHSIG = 1


class SandboxLimits:
    """``memory_bytes``: address-space limit of the child; ``cpu_seconds``: its CPU time; ``wall_seconds``: the
    parent's timeout."""

    def __init__(self, memory_bytes: int = 16 * 2**30, cpu_seconds: int = 4 * 3600, wall_seconds: int = 4 * 3600):
        self.memory_bytes, self.cpu_seconds, self.wall_seconds = int(memory_bytes), int(cpu_seconds), int(wall_seconds)

    def apply(self, parent: int | None = None) -> None:  # runs in the child between fork and exec
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (self.memory_bytes, self.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (self.cpu_seconds, self.cpu_seconds))
        os.setsid()  # its own process group: a timeout ends the child and anything it started
        _die_with_parent(parent)


def _die_with_parent(parent: int | None) -> None:
    """Ask the kernel (Linux) for SIGKILL when the parent dies; exit at once if it already died after the fork."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def watch_parent(parent: int, every: float = 1.0) -> None:
    """In the child: a daemon thread that kills the child's process group once ``parent`` is no longer its parent
    (the worker died; for systems without ``PR_SET_PDEATHSIG``, and for anything the child started)."""
    import threading
    import time

    def watch():
        while os.getppid() == parent:
            time.sleep(every)
        os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, name="elue-sandbox-watchdog", daemon=True).start()


def _kill_group(child: subprocess.Popen) -> None:
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    child.wait()


def run_limited(command: list[str], limits: SandboxLimits, cwd) -> tuple[int | None, str]:
    """Run ``command`` under ``limits`` in its own process group; (exit code, stderr), exit code None after the
    wall-clock timeout. The group is killed whenever this returns or raises before the child ended (a timeout, a
    stopping worker), and by the kernel when this process dies."""
    parent = os.getpid()
    child = subprocess.Popen(command, preexec_fn=lambda: limits.apply(parent), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, cwd=cwd)
    try:
        _, stderr = child.communicate(timeout=limits.wall_seconds)
        return child.returncode, stderr or ""
    except subprocess.TimeoutExpired:
        return None, ""
    finally:
        if child.returncode is None:
            _kill_group(child)


def run_sandboxed(submission, data_dir, *, model_roots=(), tokenizer_roots=(), allow_hub: bool = True,
                  limits: SandboxLimits | None = None) -> dict:
    """Re-run ``submission`` in a limited subprocess; a crash, a limit or a timeout is a failed report, never an
    exception."""
    limits = limits or SandboxLimits()
    with tempfile.TemporaryDirectory(prefix="elue-verify-") as tmp:
        report_path = Path(tmp) / "report.json"
        # the subprocess runs in its own temporary folder: every path it gets is absolute
        absolute = lambda path: str(Path(path).expanduser().resolve())  # noqa: E731
        args = {"submission": absolute(submission), "data_dir": absolute(data_dir), "report": str(report_path),
                "model_roots": [absolute(r) for r in model_roots],
                "tokenizer_roots": [absolute(r) for r in (*tokenizer_roots, *model_roots)],  # saved with the model
                "allow_hub": allow_hub, "parent": os.getpid()}
        code, stderr = run_limited([sys.executable, "-m", "elue_hf.verify.rerun", json.dumps(args)], limits, tmp)
        if code is None:
            return {"verified": False, "error": f"the re-run took longer than {limits.wall_seconds} s"}
        if code != 0 or not report_path.exists():
            why = "the memory limit" if "MemoryError" in stderr else f"exit code {code}"
            return {"verified": False, "error": f"the re-run failed ({why}); the server log has the details"}
        return json.loads(report_path.read_text())
def describe_machine() -> dict:
    """CPU model, threads torch uses, GPU (if any): where the throughput was measured."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "threads": torch.get_num_threads(), "gpu": gpu, "device": "cpu",
            "torch": torch.__version__, "python": platform.python_version()}
