"""Run `python -m dainctl ...` in a child process and signal it once it is under way."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Callable


def default_signals() -> None:
    """For a child process: SIGINT and SIGTERM at their defaults. A shell without job control starts
    background commands (a CI job's, say) with SIGINT ignored, and the child would inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def signal_once_ready(
    args: list[str],
    ready: Callable[[], bool],
    signum: int,
    *,
    env: dict,
    preexec_fn: Callable[[], None] = default_signals,
    start_timeout: float = 60.0,
) -> tuple[int, str, str]:
    """Start `python -m dainctl *args`, wait until `ready()` (or the child ends), send `signum`, and
    return (exit code, stdout, stderr). The child is killed if anything goes wrong."""
    process = subprocess.Popen(
        [sys.executable, "-m", "dainctl", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=preexec_fn,
    )
    try:
        deadline = time.monotonic() + start_timeout
        while not ready() and process.poll() is None:
            assert time.monotonic() < deadline, "the run never got under way"
            time.sleep(0.02)
        assert process.poll() is None, f"the run ended before the signal: {process.stderr.read()}"
        process.send_signal(signum)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, out, err
