"""The one artifact lifecycle every stage goes through, run from `smear run` or as `smear <stage>`.

    1. cache check   a complete artifact with the request's fingerprint is reused, not recomputed,
                     unless an input it read was replaced since, or a file of it is missing or
                     resized (`artifacts.stale_reasons`): then it is stale, the run says why, and
                     it is recomputed (as with --force)
    2. lock          the artifact's lock (`locks`; a URL workdir is not locked; a standalone
                     stage takes it in step 4, once its input passed its checks)
    3. check again   another process may have completed it while this one waited
    4. compute       the stage prepares the directory (`artifacts.prepare_output`: a partial one is
                     cleared, or kept for a training to resume), writes its data, then its manifest
    5. manifest      the artifact must now be complete with the planned fingerprint (else a bug:
                     the stage and its layout disagree, and every later run would recompute it),
                     unless the stage returned no manifest: a multi-worker training's non-chief
                     worker writes nothing

`--force` skips the checks and recomputes. A complete artifact with another
fingerprint in the same directory is an error naming `--force` (from step 4).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from label_smearing.core import artifacts, locks, registry
from label_smearing.core.registry import StageRequest

if TYPE_CHECKING:
    from label_smearing.core.layout import Artifact

CACHED, RAN = "cached", "ran"


def run_stage(
    request: StageRequest, compute: Callable[[StageRequest], dict | None], *, lock_first: bool = True
) -> tuple[str, dict | None]:
    """Runs one stage's lifecycle; returns ("cached" or "ran", the artifact's manifest).

    With `lock_first` (a plan's node) the lock is taken before the stage checks its
    input, so that a second run waits for this one; without it (`smear <stage>`) the
    stage takes it when it prepares the directory (`artifacts.prepare_output`), so
    that input it refuses leaves nothing written, not even a lock file.

    Raises:
      locks.LockHeld: another live process is writing the artifact.
      UserError: whatever the stage raises for bad input, one line.
    """
    out = request.out_dir
    if not request.force and artifacts.is_current(out, request.fingerprint):
        return CACHED, artifacts.read_manifest(out, verify=False)
    local = lock_first and not artifacts.is_url(out)
    if local:
        locks.acquire(out, log=request.log)
    try:
        if not request.force and artifacts.is_complete_with(out, request.fingerprint):
            reasons = artifacts.stale_reasons(out)
            if not reasons:
                return CACHED, artifacts.read_manifest(out, verify=False)
            request.log(f"{request.name}: stale, recomputing it: {'; '.join(reasons)}")
            request = dataclasses.replace(request, force=True)
        with artifacts.remaking(request.command) if request.command else contextlib.nullcontext():
            manifest = compute(request)
        # No manifest: this process does not write the artifact (a multi-worker training's non-chief worker).
        if manifest and not artifacts.is_complete_with(out, request.fingerprint):
            # A stage and its layout disagree on the fingerprint: every later run would recompute it.
            written = (manifest or {}).get("fingerprint", "none")
            raise RuntimeError(
                f"{out}: the stage wrote fingerprint {str(written)[:10]}, not the {request.fingerprint[:10]} "
                "its layout planned"
            )
        return RAN, manifest
    finally:
        if local:
            locks.release(out)


def run_standalone(
    artifact: Artifact, config, compute: Callable[[StageRequest], dict | None], *,
    inputs: dict | None = None, force: bool = False, beam_args=(), description: dict | None = None,
) -> tuple[str, dict | None]:  # fmt: skip
    """`smear <stage>`: the same lifecycle for the artifact `layout` names, saying when it was cached.

    The inputs are verified first (every file against its manifest's checksum), as the stage
    would when it computes: a damaged input is refused in one line even if the output is cached.
    """
    for directories in (inputs or {}).values():
        for directory in directories:
            artifacts.read_manifest(directory, what=f"input artifact {directory}", verify=True)
    request = StageRequest(
        config,
        inputs or {},
        artifact.path,
        artifact.fingerprint,
        artifact.name,
        description,
        force,
        beam_args,
    )
    status, manifest = run_stage(request, compute, lock_first=False)
    if status == CACHED:
        command = registry.kind(artifact.kind).command
        print(
            f"{command}: cached: {artifact.path} is complete with fingerprint {artifact.fingerprint[:10]} "
            "(--force recomputes it)"
        )
    return status, manifest
