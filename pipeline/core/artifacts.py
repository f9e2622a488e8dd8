"""Artifacts: directories that are complete only once their manifest exists.

Rules (DESIGN.md):
- A stage writes one directory. Data go in first, each file under a temporary
  name and renamed; `manifest.json` is written last, also atomically.
- A directory without `manifest.json` is partial and is never read as input.
- The manifest records the stage, the resolved config section, the input
  fingerprints, counts and a SHA-256 of every data file; readers verify them.
- A workdir may be a URL (gs://bucket/work) for Beam jobs on Dataflow: then
  files go through Beam's FileSystems (object writes are atomic on close).
- Directory names carry a fingerprint of (stage, config section, inputs'
  fingerprints, package version), so a changed config never lands on top of an
  old result, and an unchanged one finds its cached result.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.core import locks
from pipeline.core.errors import UserError

MANIFEST = "manifest.json"
PACKAGE_VERSION = __version__


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


def is_url(path: str | os.PathLike) -> bool:
    """True for a remote location such as gs://bucket/dir (handled by Beam's FileSystems)."""
    return "://" in str(path)


def join(path: str | os.PathLike, *parts: str) -> Path | str:
    """`path / part / ...` for a local path or a URL."""
    if is_url(path):
        from apache_beam.io.filesystems import FileSystems

        return FileSystems.join(str(path), *parts)
    return Path(path).joinpath(*parts)


def artifact_dir(workdir: str | os.PathLike, kind: str, name: str, fp: str) -> Path | str:
    """`<workdir>/<kind>/<name>-<first 10 hex digits of fp>` (a str when workdir is a URL)."""
    return join(workdir, kind, f"{name}-{fp[:10]}")


def _remote():
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


def _remote_files(root: str) -> list[str]:
    """Relative paths of every object under the URL `root`."""
    fs = _remote()
    prefix = root.rstrip("/") + "/"
    matched = fs.match([prefix + "**"])[0].metadata_list
    return sorted(m.path[len(prefix) :] for m in matched if m.path.startswith(prefix))


def exists(path: str | os.PathLike) -> bool:
    """A file, or a directory (for URLs: an object, or a prefix with objects under it)."""
    if is_url(path):
        return _remote().exists(str(path)) or bool(_remote_files(str(path)))
    return Path(path).exists()


def read_bytes(path: str | os.PathLike) -> bytes:
    if is_url(path):
        with _remote().open(str(path)) as f:
            return f.read()
    return Path(path).read_bytes()


def _size(path: str | os.PathLike) -> int:
    if is_url(path):
        return _remote().match([str(path)])[0].metadata_list[0].size_in_bytes
    return Path(path).stat().st_size


def is_complete(path: str | os.PathLike) -> bool:
    return exists(join(path, MANIFEST)) if is_url(path) else (Path(path) / MANIFEST).is_file()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    if is_url(path):
        with _remote().create(str(path)) as f:
            f.write(data)
        return
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:  # a full disk: free what was written, and name the file (a write error names none)
        with contextlib.suppress(OSError):
            tmp.unlink()
        if e.filename is None and e.errno is not None:
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with _remote().open(str(path)) if is_url(path) else open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _data_files(root: Path | str, exclude: Iterable[str]) -> list[str]:
    exclude = tuple(exclude)
    if is_url(root):
        candidates = _remote_files(str(root))
    else:
        candidates = [
            os.path.relpath(os.path.join(dirpath, name), root)
            for dirpath, _, names in os.walk(root)
            for name in names
        ]
    files = []
    for rel in candidates:
        if rel == MANIFEST or os.path.basename(rel).startswith("."):
            continue
        if any(rel == e or rel.startswith(e.rstrip("/") + "/") for e in exclude):
            continue
        files.append(rel)
    return sorted(files)


def prepare_output(path: str | os.PathLike, *, force: bool = False, keep_partial: bool = False) -> Path:
    """Makes `path` ready for a stage to write into.

    A complete artifact is an error unless `force` (then it is removed). A
    partial one is cleared, unless `keep_partial` (training resumes from it).
    First it takes the artifact's lock (`pipeline.core.locks`), which this process
    then holds until `write_manifest` completes the artifact (or the process ends).

    Raises:
      LockHeld: another live process is writing `path`, naming it.
      UserError: `path` holds a complete artifact and `force` is False, or
        `path` cannot be created.
    """
    if is_url(path):
        return _prepare_remote(str(path), force=force, keep_partial=keep_partial)
    path = Path(path)
    locks.acquire(path, log=print)
    try:
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
    except BaseException:
        locks.release(path)
        raise
    return path


def _prepare_remote(path: str, *, force: bool, keep_partial: bool) -> str:
    complete = is_complete(path)
    if complete and not force:
        raise UserError(f"{path} already holds a complete artifact; pass --force to recompute it")
    if complete or not keep_partial:
        old = [join(path, rel) for rel in _remote_files(path)]
        if complete:  # the manifest goes first: a half-deleted artifact must not look complete
            _remote().delete([join(path, MANIFEST)])
            old = [p for p in old if not str(p).endswith("/" + MANIFEST)]
        if old:
            _remote().delete(old)
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
    files = {
        rel: {"sha256": sha256_file(join(path, rel)), "bytes": _size(join(path, rel))}
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
    atomic_write_json(join(path, MANIFEST), manifest)
    if not is_url(path):
        locks.release(path)  # the one taken by prepare_output: the artifact is complete
    return manifest


def read_manifest(path: str | os.PathLike, *, what: str = "artifact", verify: bool = True) -> dict:
    """Reads and verifies a complete artifact's manifest.

    Raises:
      UserError: the artifact is missing or partial, its manifest is unreadable,
        or (with `verify`) a file is missing or its checksum differs.
    """
    if not exists(path):
        raise UserError(f"{what} not found: {path}")
    manifest_path = join(path, MANIFEST)
    if not is_complete(path):
        raise UserError(f"{what} at {path} is incomplete (no {MANIFEST}); rerun the stage that makes it")
    try:
        manifest = json.loads(read_bytes(manifest_path))
    except (OSError, ValueError) as e:
        raise UserError(f"{what} manifest {manifest_path} is unreadable: {e}") from e
    if verify:
        signature = _signature(path, manifest.get("files", {}))
        if signature is not None and _VERIFIED.get(os.path.abspath(path)) == signature:
            return manifest  # verified by this process, and no file was touched since
        for rel, meta in manifest.get("files", {}).items():
            f = join(path, rel)
            if not exists(f):
                raise UserError(f"{what} file missing: {f} (listed in {manifest_path})")
            if _size(f) != meta["bytes"] or sha256_file(f) != meta["sha256"]:
                raise UserError(
                    f"{what} file {f} does not match its checksum in {manifest_path}; it was modified or corrupted"
                )
        if signature is not None:
            _VERIFIED[os.path.abspath(path)] = signature
    return manifest


# Local artifacts this process has verified: abspath -> `_signature` of their files then. A
# long-lived `smear run --jobs N` worker so checksums an input once, not once per stage that reads it.
_VERIFIED: dict[str, tuple] = {}


def _signature(path: str | os.PathLike, files: Mapping[str, Any]) -> tuple | None:
    """(inode, size, mtime in ns) of the manifest and of every listed file; None for a URL or a missing file.

    Any write to a file changes its mtime (and a replaced file its inode): then it is checksummed again.
    """
    if is_url(path):
        return None
    try:
        stats = [os.stat(os.path.join(path, rel)) for rel in (MANIFEST, *sorted(files))]
    except OSError:
        return None
    return tuple((st.st_ino, st.st_size, st.st_mtime_ns) for st in stats)


def input_ref(path: str | os.PathLike, manifest: Mapping[str, Any]) -> dict:
    """The {"path", "fingerprint"} record of an input, for a manifest."""
    return {"path": str(path), "fingerprint": manifest["fingerprint"]}
