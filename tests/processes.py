"""Killing a real `smear` process at a chosen point, for the crash-safety tests."""

import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def kill_at_marker(
    script: str, argv: list[str], marker: str, timeout: float = 240, env: dict | None = None
) -> None:
    """Runs `python -c script *argv`, waits for a line containing `marker`, then SIGKILLs it.

    `script` patches a function to print the marker and hang, then calls the CLI.

    Raises:
      AssertionError: the process never printed the marker (so it was not killed where the test meant).
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    process = subprocess.Popen([sys.executable, "-c", script, *argv], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)  # fmt: skip
    deadline, seen = time.time() + timeout, False
    try:
        for line in process.stdout:
            if marker in line:
                seen = True
                break
            if time.time() > deadline:
                break
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert seen, f"the process never printed {marker!r}: it did not reach the patched function"
    assert process.returncode == -signal.SIGKILL
