"""Artifacts: directories that are complete only once their manifest exists.

Rules (DESIGN.md):
- A stage writes one directory. Data go in first, each file under a temporary
  name and renamed; `manifest.json` is written last, also atomically.
- A directory without `manifest.json` is partial and is never read as input.
- The manifest records the stage, the resolved config section, the input
  fingerprints, counts and a SHA-256 of every data file; readers verify them.
- Directory names carry a fingerprint of (stage, config section, inputs'
  fingerprints, package version), so a changed config never lands on top of an
  old result, and an unchanged one finds its cached result.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pipeline.errors import UserError

MANIFEST = "manifest.json"
PACKAGE_VERSION = "0.1.0"


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def fingerprint(stage: str, section: Any, inputs: Mapping[str, str] | None = None) -> str:
    """SHA-256 over the stage name, its config section, input fingerprints and version."""
    payload = {
        "stage": stage,
        "config": section,
        "inputs": dict(sorted((inputs or {}).items())),
        "version": PACKAGE_VERSION,
    }
    return hashlib.sha256(_canonical(payload).encode()).hexdigest()


def artifact_dir(workdir: str | os.PathLike, kind: str, name: str, fp: str) -> Path:
    """`<workdir>/<kind>/<name>-<first 10 hex digits of fp>`."""
    return Path(workdir) / kind / f"{name}-{fp[:10]}"


def is_complete(path: str | os.PathLike) -> bool:
    return (Path(path) / MANIFEST).is_file()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _data_files(root: Path, exclude: Iterable[str]) -> list[str]:
    exclude = tuple(exclude)
    files = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            if rel == MANIFEST or name.startswith("."):
                continue
            if any(rel == e or rel.startswith(e.rstrip("/") + "/") for e in exclude):
                continue
            files.append(rel)
    return sorted(files)


def prepare_output(path: str | os.PathLike, *, force: bool = False, keep_partial: bool = False) -> Path:
    """Makes `path` ready for a stage to write into.

    A complete artifact is an error unless `force` (then it is removed). A
    partial one is cleared, unless `keep_partial` (training resumes from it).

    Raises:
      UserError: `path` holds a complete artifact and `force` is False, or
        `path` cannot be created.
    """
    path = Path(path)
    if is_complete(path):
        if not force:
            raise UserError(f"{path} already holds a complete artifact; pass --force to recompute it")
        shutil.rmtree(path)
    elif path.exists() and not keep_partial:
        shutil.rmtree(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create {path}: {e.strerror}") from e
    if not os.access(path, os.W_OK):
        raise UserError(f"cannot write to {path}: permission denied")
    return path


def write_manifest(
    path: str | os.PathLike,
    *,
    stage: str,
    fingerprint: str,
    config: Any,
    inputs: Mapping[str, Mapping[str, Any]] | None = None,
    counts: Mapping[str, int] | None = None,
    exclude: Iterable[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict:
    """Checksums the data files under `path` and writes `manifest.json` last.

    Args:
      path: the artifact directory.
      stage: stage name, e.g. "noisify".
      fingerprint: this artifact's fingerprint.
      config: the resolved config section (JSON-serialisable).
      inputs: input name -> {"path": ..., "fingerprint": ...}.
      counts: named record counts, e.g. {"train": 60000, "test": 10000}.
      exclude: relative paths (files or directories) not checksummed, e.g.
        logs that keep growing after the stage ends.
      extra: anything else worth recording.
    """
    path = Path(path)
    files = {
        rel: {"sha256": sha256_file(path / rel), "bytes": (path / rel).stat().st_size}
        for rel in _data_files(path, exclude)
    }
    manifest = {
        "stage": stage,
        "fingerprint": fingerprint,
        "package_version": PACKAGE_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": config,
        "inputs": dict(inputs or {}),
        "counts": dict(counts or {}),
        "files": files,
        "excluded": list(exclude),
    }
    if extra:
        manifest.update(extra)
    atomic_write_json(path / MANIFEST, manifest)
    return manifest


def read_manifest(path: str | os.PathLike, *, what: str = "artifact", verify: bool = True) -> dict:
    """Reads and verifies a complete artifact's manifest.

    Raises:
      UserError: the artifact is missing or partial, its manifest is unreadable,
        or (with `verify`) a file is missing or its checksum differs.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{what} not found: {path}")
    if not is_complete(path):
        raise UserError(f"{what} at {path} is incomplete (no {MANIFEST}); rerun the stage that makes it")
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{what} manifest {path / MANIFEST} is unreadable: {e}") from e
    if verify:
        for rel, meta in manifest.get("files", {}).items():
            f = path / rel
            if not f.is_file():
                raise UserError(f"{what} file missing: {f} (listed in {path / MANIFEST})")
            if f.stat().st_size != meta["bytes"] or sha256_file(f) != meta["sha256"]:
                raise UserError(
                    f"{what} file {f} does not match its checksum in {path / MANIFEST}; "
                    "it was modified or corrupted"
                )
    return manifest


def input_ref(path: str | os.PathLike, manifest: Mapping[str, Any]) -> dict:
    """The {"path", "fingerprint"} record of an input, for a manifest."""
    return {"path": str(path), "fingerprint": manifest["fingerprint"]}
