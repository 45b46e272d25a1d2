"""Run a re-run in a subprocess with hard limits (``resource.setrlimit``: address space and CPU seconds, plus a
wall-clock timeout), and describe the machine that verified."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["SandboxLimits", "run_sandboxed", "describe_machine"]


class SandboxLimits:
    """``memory_bytes``: address-space limit of the child; ``cpu_seconds``: its CPU time; ``wall_seconds``: the
    parent's timeout."""

    def __init__(self, memory_bytes: int = 16 * 2**30, cpu_seconds: int = 4 * 3600, wall_seconds: int = 4 * 3600):
        self.memory_bytes, self.cpu_seconds, self.wall_seconds = int(memory_bytes), int(cpu_seconds), int(wall_seconds)

    def apply(self) -> None:  # runs in the child between fork and exec
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (self.memory_bytes, self.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (self.cpu_seconds, self.cpu_seconds))
        os.setsid()  # its own process group: a timeout ends the child and anything it started


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
                "allow_hub": allow_hub}
        command = [sys.executable, "-m", "elue_hf.verify.rerun", json.dumps(args)]
        try:
            done = subprocess.run(command, preexec_fn=limits.apply, capture_output=True, text=True,
                                  timeout=limits.wall_seconds, cwd=tmp)
        except subprocess.TimeoutExpired:
            return {"verified": False, "error": f"the re-run took longer than {limits.wall_seconds} s"}
        if done.returncode != 0 or not report_path.exists():
            tail = (done.stderr or "").strip().splitlines()[-1:] or ["no output"]
            why = "the memory limit" if "MemoryError" in (done.stderr or "") else f"exit code {done.returncode}"
            return {"verified": False, "error": f"the re-run failed ({why}): {tail[0][:300]}"}
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
