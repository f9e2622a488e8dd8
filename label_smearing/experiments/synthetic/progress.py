"""The stage's progress lines on stdout, `[synthetic] ...`; shared by the experiments and the stage."""

from __future__ import annotations


def progress(message: str) -> None:
    print(f"[synthetic] {message}", flush=True)
