"""Artifacts: directories that are complete only once their manifest exists.

Rules (docs/concepts.md, "Artifacts"):
- A stage writes one directory. Data go in first, each file under a temporary
  name and renamed; `manifest.json` is written last, also atomically.
- A directory without `manifest.json` is partial and is never read as input.
- The manifest records the stage, the resolved config section, the input
  fingerprints, counts and a SHA-256 of every data file; readers verify them.
- A workdir may be a URL (gs://bucket/work) for every stage: then files go
  through TensorFlow's file systems (`path` gives an etils.epath.Path, pathlib's
  API over tf.io.gfile); an object appears whole when it is closed, so data
  files need no temporary name there. A FUSE-mounted bucket is a local path.
- Each input record in a manifest also holds the SHA-256 of the input's manifest (which
  checksums all of the input's files): an artifact whose input was replaced since, by one
  with the same fingerprint but other content (a retrained model), is stale, not cached
  (`replaced_inputs`, `is_current`), and is recomputed.
- Directory names carry a fingerprint of (stage kind, config section, inputs'
  fingerprints, the kind's compute version in `registry`), so a changed config
  never lands on top of an old result, and an unchanged one finds its cached
  result. The package's release number is not in it: a release that changes no
  stage's outputs keeps every artifact.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import shlex
import shutil
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from label_smearing import __version__
from label_smearing.core import locks, registry
from label_smearing.core.errors import UserError

if TYPE_CHECKING:
    from etils import epath

MANIFEST = "manifest.json"
PACKAGE_VERSION = __version__
# The `smear` command that recomputes the artifact being written, recorded in its manifest: what
# `smear verify` and a reader that finds the artifact damaged tell the user to run.
_REMAKE: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("remake", default=())


@contextlib.contextmanager
def remaking(command: Iterable[str]):
    """Within it, `write_manifest` records `command` as the one that recomputes the artifact."""
    token = _REMAKE.set(tuple(command))
    try:
        yield
    finally:
        _REMAKE.reset(token)


def remake_command(manifest: Mapping[str, Any]) -> str:
    """The command that recomputes an artifact, from its manifest; else how to find it."""
    return str(manifest.get("command") or "") or "rerun the `smear run` that made it, adding --verify"


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def fingerprint(stage: str, section: Any, inputs: Mapping[str, str] | None = None) -> str:
    """SHA-256 over the stage kind, its config section, input fingerprints and the kind's compute version.

    Raises:
      KeyError: `stage` is not a registered kind (`registry.STAGES`).
    """
    payload = {
        "stage": stage,
        "config": section,
        "inputs": dict(sorted((inputs or {}).items())),
        "version": registry.kind(stage).version,
    }
    return hashlib.sha256(_canonical(payload).encode()).hexdigest()


def is_url(path: str | os.PathLike) -> bool:
    """True for a remote location such as gs://bucket/dir (reached through TensorFlow's file systems)."""
    return "://" in str(path)


def path(location: str | os.PathLike) -> Path | epath.Path:
    """A location as a path object: a `pathlib.Path` for a local path (a FUSE-mounted bucket such
    as /gcs/BUCKET/... is one), an `etils.epath.Path` for a URL (gs://...), which has pathlib's
    API over TensorFlow's file systems (`tf.io.gfile`), as Keras, tf.data and TensorBoard use."""
    if isinstance(location, Path):
        return location
    if is_url(location):
        from etils import epath

        return epath.Path(str(location))
    return Path(location)


def join(location: str | os.PathLike, *parts: str) -> Path | epath.Path:
    """`location / part / ...` for a local path or a URL."""
    return path(location).joinpath(*parts)


def artifact_dir(workdir: str | os.PathLike, kind: str, name: str, fp: str) -> Path | epath.Path:
    """`<workdir>/<kind>/<name>-<first 10 hex digits of fp>`."""
    return join(workdir, kind, f"{name}-{fp[:10]}")


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def check_location(location: str | os.PathLike, *, flag: str = "--workdir") -> None:
    """Raises a one-line UserError if a URL cannot be used: a scheme no file system here knows,
    a bucket that does not exist, or a store that cannot be reached. Local paths pass (their
    errors come, one line each, from where they are written)."""
    if not is_url(location):
        return
    import tensorflow as tf

    text = str(location)
    scheme, _, rest = text.partition("://")
    bucket = rest.split("/", 1)[0]
    schemes = sorted(s for s in tf.io.gfile.get_registered_schemes() if s not in ("", "file", "ram"))
    if scheme not in schemes:
        raise UserError(
            f"{flag} {text}: no file system for {scheme}:// here (TensorFlow has: "
            f"{', '.join(s + '://' for s in schemes)}; a FUSE-mounted bucket is a local path, e.g. /gcs/BUCKET/workdir)"
        )
    if not bucket:
        raise UserError(f"{flag} {text}: no bucket in the URL (e.g. gs://BUCKET/workdir)")
    # First, as offline TF's GCS client retries for minutes and then answers "no such bucket".
    unreachable = _unreachable(scheme)
    if unreachable:
        raise UserError(f"{flag} {text}: cannot reach it: {unreachable}")
    try:
        if not tf.io.gfile.isdir(f"{scheme}://{bucket}"):
            raise UserError(
                f"{flag} {text}: bucket {bucket!r} does not exist (or is not visible to these credentials)"
            )
        tf.io.gfile.exists(text)
    except tf.errors.OpError as e:
        raise UserError(f"{flag} {text}: cannot reach it: {e.message.splitlines()[0]}") from None


# The host each scheme's client talks to (TensorFlow's GCS file system has no endpoint setting).
_ENDPOINTS = {"gs": ("storage.googleapis.com", 443)}


def _unreachable(scheme: str, timeout: float = 5.0) -> str:
    """Why the store of `scheme` cannot be reached from here ('' if it can, or if this is not known):
    a TCP connection to its endpoint, or to the https proxy the client would use."""
    import socket
    import urllib.parse

    if scheme not in _ENDPOINTS:
        return ""
    host, port = _ENDPOINTS[scheme]
    proxy = os.environ.get("https_proxy") or os.environ.get("HTTPS_PROXY")
    target = (host, port)
    if proxy:
        parsed = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        target = (parsed.hostname or "", parsed.port or 3128)
    try:
        socket.create_connection(target, timeout=timeout).close()
    except OSError as e:
        via = f" through the proxy {target[0]}:{target[1]}" if proxy else ""
        return f"no connection to {host}:{port}{via} ({e.strerror or type(e).__name__}); is this machine offline?"
    return ""


def _remote_files(root: str) -> list[str]:
    """Relative paths of every object under the URL `root`."""
    root = str(root).rstrip("/")
    gfile = _gfile()
    if not gfile.isdir(root):
        return []
    return sorted(
        f"{dirpath.rstrip('/')}/{name}"[len(root) + 1 :]
        for dirpath, _, names in gfile.walk(root)
        for name in names
    )


def exists(location: str | os.PathLike) -> bool:
    """A file, or a directory (for URLs: an object, or a prefix with objects under it)."""
    return path(location).exists()


def read_bytes(location: str | os.PathLike) -> bytes:
    return path(location).read_bytes()


def _size(location: str | os.PathLike) -> int:
    if is_url(location):
        return _gfile().stat(str(location)).length
    return Path(location).stat().st_size


def mtime_ns(location: str | os.PathLike) -> int:
    """A file's modification time in nanoseconds (an object's upload time for a URL)."""
    if is_url(location):
        return int(_gfile().stat(str(location)).mtime_nsec)
    return Path(location).stat().st_mtime_ns


def remove_tree(location: str | os.PathLike) -> None:
    """Deletes a directory (for a URL: every object under the prefix); a missing one is no error."""
    if is_url(location):
        target = path(location)
        if target.exists():
            target.rmtree()
        return
    shutil.rmtree(location, ignore_errors=True)


def copy_file(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Copies one file, local or remote on either side, writing `target` atomically."""
    if not is_url(source) and not is_url(target):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, read_bytes(source))


def is_complete(location: str | os.PathLike) -> bool:
    return join(location, MANIFEST).is_file()


def is_complete_with(location: str | os.PathLike, fp: str) -> bool:
    """Whether `location` holds a complete artifact whose manifest has fingerprint `fp`."""
    if not is_complete(location):
        return False
    return read_manifest(location, verify=False).get("fingerprint") == fp


def is_current(location: str | os.PathLike, fp: str) -> bool:
    """Whether `location` holds a complete artifact with fingerprint `fp`, whole, made from its inputs
    as they are (a cached result): see `stale_reasons`."""
    if not is_complete(location):
        return False
    manifest = read_manifest(location, verify=False)
    return manifest.get("fingerprint") == fp and not stale_reasons(location, manifest)


def stale_reasons(location: str | os.PathLike, manifest: Mapping[str, Any] | None = None) -> list[str]:
    """Why the complete artifact at `location` must not be reused, one phrase each; [] if it may be.

    Its inputs changed since it was made (`replaced_inputs`), or, in a local workdir, one of its
    files is missing or has another size than its manifest says (a deleted model, a truncated
    shard: what a stat shows; `smear verify` reads every byte).
    """
    manifest = read_manifest(location, verify=False) if manifest is None else manifest
    return replaced_inputs(location, manifest) + damaged_files(location, manifest)


def damaged_files(location: str | os.PathLike, manifest: Mapping[str, Any] | None = None) -> list[str]:
    """The files of a complete local artifact that are missing or of another size than recorded."""
    if is_url(location):
        return []  # a stat is a request there: `smear verify` checks a bucket
    manifest = read_manifest(location, verify=False) if manifest is None else manifest
    damaged = []
    for rel, meta in (manifest.get("files") or {}).items():
        try:
            size = os.stat(os.path.join(location, rel)).st_size
        except OSError:
            damaged.append(f"file {rel} is missing")
            continue
        if size != meta.get("bytes"):
            damaged.append(f"file {rel} has {size} bytes, not the {meta.get('bytes')} its manifest records")
    return damaged


def manifest_digest(location: str | os.PathLike) -> str | None:
    """The SHA-256 of an artifact's manifest.json, which checksums all its files; None if it has none."""
    try:
        return hashlib.sha256(read_bytes(join(location, MANIFEST))).hexdigest()
    except OSError:
        return None


def replaced_inputs(location: str | os.PathLike, manifest: Mapping[str, Any] | None = None) -> list[str]:
    """The inputs of the complete artifact at `location` that changed since it was made, one phrase
    each ("its input model /w/models/x-1a2b was replaced since"); [] when all are the ones it read.

    An input changed when its manifest's digest is not the one recorded (`input_ref`): it was
    recomputed, by --force or with another thread count, and its content may differ though its
    fingerprint does not. Records without a digest (manifests written before digests were
    recorded) are taken as current.
    """
    manifest = read_manifest(location, verify=False) if manifest is None else manifest
    changed = []
    for name, ref in (manifest.get("inputs") or {}).items():
        recorded = ref.get("manifest_sha256") if isinstance(ref, Mapping) else None
        if not recorded:
            continue
        where = input_location(location, ref["path"])
        now = manifest_digest(where)
        if now is None:
            changed.append(f"its input {name} {where} is gone")
        elif now != recorded:
            changed.append(f"its input {name} {where} was replaced since")
    return changed


def input_location(location: str | os.PathLike, recorded: str | os.PathLike) -> Path | epath.Path:
    """Where the input recorded as `recorded` is now, for the artifact at `location`.

    Inputs planned in a workdir live in the same one, as <workdir>/<kind>/<name>: that place in
    `location`'s own workdir comes first, so a workdir copied or moved elsewhere checks its own
    inputs. An input from outside it (`smear export-logits --model DIR`) is where it was recorded.
    """
    kind, name = str(recorded).rstrip("/").split("/")[-2:]
    sibling = path(location).parent.parent / kind / name
    return sibling if is_complete(sibling) else path(recorded)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    if is_url(path):
        with _gfile().GFile(str(path), "wb") as f:  # an object appears whole, when it is closed
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
    with _gfile().GFile(str(path), "rb") if is_url(path) else open(path, "rb") as f:
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


def prepare_output(
    path: str | os.PathLike, *, force: bool = False, keep_partial: bool = False
) -> Path | epath.Path:
    """Makes `path` ready for a stage to write into.

    A complete artifact is an error unless `force` (then it is removed). A
    partial one is cleared, unless `keep_partial` (training resumes from it).
    First it takes the artifact's lock (`label_smearing.core.locks`), which this process
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


def _prepare_remote(location: str, *, force: bool, keep_partial: bool) -> epath.Path:
    """`prepare_output` for a URL. Not locked: an object store has no flock (docs/guides/scaling-out.md)."""
    target = path(location)
    complete = is_complete(target)
    if complete and not force:
        raise UserError(f"{target} already holds a complete artifact; pass --force to recompute it")
    if complete:  # the manifest goes first: a half-deleted artifact must not look complete
        (target / MANIFEST).unlink()
    if (complete or not keep_partial) and target.exists():
        target.rmtree()
    target.mkdir(parents=True, exist_ok=True)
    return target


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
        "stage_version": registry.kind(stage).version if stage in registry.STAGES else None,
        "package_version": PACKAGE_VERSION,  # the release that wrote it (not part of the fingerprint)
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": config,
        "inputs": dict(inputs or {}),
        "counts": dict(counts or {}),
        "files": files,
        "excluded": list(exclude),
    }
    if extra:
        manifest.update(extra)
    if _REMAKE.get():
        manifest["command"] = shlex.join(_REMAKE.get())
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
                raise UserError(
                    f"{what} file missing: {f} (listed in {manifest_path}); recompute it: {remake_command(manifest)}"
                )
            if _size(f) != meta["bytes"] or sha256_file(f) != meta["sha256"]:
                raise UserError(
                    f"{what} file {f} does not match its checksum in {manifest_path}; it was modified or "
                    f"corrupted; recompute it: {remake_command(manifest)}"
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
    """The {"path", "fingerprint", "manifest_sha256"} record of an input, for a manifest: the digest
    of the input's manifest tells its consumers when it was replaced (`replaced_inputs`)."""
    return {
        "path": str(path),
        "fingerprint": manifest["fingerprint"],
        "manifest_sha256": manifest_digest(path),
    }
