"""`smear verify WORKDIR`: checksum every complete artifact of a workdir against its manifest.

Each artifact's manifest lists a SHA-256 and a size for every file it holds. A file
truncated, edited or deleted since is damage that a rerun would not notice: the
artifact still looks complete, so it reads as cached until a stage reads it. This
command reads every file of every complete artifact (data, models, logits,
transition estimates, evaluations, reports) and lists the damaged ones, each with the
command that recomputes it (recorded in its manifest when it was made).

`smear run ... --verify` does the same for the artifacts of its plan first, and then
recomputes the damaged ones and everything that read them; with --dry-run it lists
them and stops. Partial artifacts (no manifest yet: a training that will resume) are
not checked: they are never read.

Exit status: 0 when every artifact matches, 2 when some are damaged (or the workdir
is missing).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from label_smearing.core import artifacts
from label_smearing.core.errors import UserError

# Checksumming is I/O and hashlib, which releases the GIL: a few threads keep a disk busy.
THREADS = 4


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="smear verify",
        description="Checksum every complete artifact under WORKDIR against its manifest and list the "
        "damaged ones, each with the command that recomputes it. Exit status 2 if any is damaged.",
        epilog="`smear run ... --verify` checks its plan's artifacts the same way and recomputes the "
        "damaged ones (with --dry-run it lists them).",
    )
    p.add_argument("workdir", metavar="WORKDIR", help="the workdir of `smear run` (a local path or gs://...)")
    return p


def complete_artifacts(workdir: str | os.PathLike) -> list[Path]:
    """Every complete artifact directory of a workdir, <workdir>/<kind>/<name>/, sorted."""
    root = artifacts.path(workdir)
    found = []
    for kind in sorted(root.iterdir()):
        if not kind.is_dir() or kind.name.startswith("."):
            continue
        for directory in sorted(kind.iterdir()):
            if directory.is_dir() and not directory.name.startswith(".") and artifacts.is_complete(directory):
                found.append(directory)
    return found


def damage(directory: str | os.PathLike) -> str | None:
    """One line saying what is wrong with a complete artifact (a file missing, modified, an unreadable
    manifest), or None when every file matches its manifest."""
    try:
        artifacts.read_manifest(directory, verify=True)
    except UserError as e:
        return str(e).split("; recompute it:")[0]
    return None


def remake_of(directory: str | os.PathLike) -> str:
    """The command that recomputes an artifact, as its manifest records it."""
    try:
        return artifacts.remake_command(artifacts.read_manifest(directory, verify=False))
    except UserError:  # the manifest itself is unreadable
        return artifacts.remake_command({})


def check(directories: list, log=print, remake: Callable[[Any], str] | None = None) -> dict[str, str]:
    """{directory: what is wrong} for the damaged ones among `directories`, checked in parallel; each
    is logged with the command that recomputes it (`remake(directory)`, default its manifest's)."""
    damaged: dict[str, str] = {}
    with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
        for directory, problem in zip(directories, pool.map(damage, directories)):
            if problem is not None:
                damaged[str(directory)] = problem
                log(f"damaged: {directory}: {problem}")
                log(f"  recompute it: {(remake or remake_of)(directory)}")
    return damaged


def _total_bytes(directories: list) -> int:
    total = 0
    for directory in directories:
        try:
            files = artifacts.read_manifest(directory, verify=False).get("files", {})
        except UserError:
            continue
        total += sum(int(meta.get("bytes", 0)) for meta in files.values())
    return total


def run(argv=None) -> None:
    args = parser().parse_args(argv)
    if not str(args.workdir).strip():
        raise UserError("WORKDIR is empty; name the workdir of a `smear run`")
    root = artifacts.path(args.workdir)
    if not root.is_dir():
        raise UserError(f"workdir {args.workdir} does not exist")
    started = time.time()
    directories = complete_artifacts(root)
    size = _total_bytes(directories)
    print(f"verify: checking {len(directories)} artifacts ({size / 1e6:.1f} MB) in {args.workdir}")
    damaged = check(directories)
    seconds = time.time() - started
    if damaged:
        raise UserError(
            f"{len(damaged)} of {len(directories)} artifacts are damaged (listed above; {seconds:.2f} s); "
            "each `recompute it` command remakes one, or `smear run ... --verify` remakes them all"
        )
    print(f"verify: all {len(directories)} artifacts match their manifests ({seconds:.2f} s)")
