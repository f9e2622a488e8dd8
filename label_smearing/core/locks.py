"""Artifact locks: exactly one process ever writes an artifact.

A stage holds the lock of its output directory while it writes: the file
`<parent>/.<name>.lock` beside the directory (outside it, so clearing a partial
artifact keeps the lock), locked with flock(2) and holding its holder's
{"pid", "host", "started", "command"}.

- The kernel drops an flock when its process dies, however it dies. A lock file
  that is still there but no longer locked was left by a killed process: the
  next writer takes it over (and says so); nothing else is needed.
- A process that finds the lock held gets `LockHeld`, a one-line UserError that
  names the holder (pid and host). `smear run` waits for the holder and then
  reuses what it made; a standalone stage command exits 2 with that line.
- A lock is re-entrant within its process: the executor takes it before a stage
  runs, and the stage's own `artifacts.prepare_output` finds it already held.
- Release deletes the file, then unlocks. A writer that locked a file which was
  deleted meanwhile (it opened the old one) sees that the path no longer names
  its file, and tries again.

flock works across processes of one machine and, on Linux, over NFS (where it
becomes a POSIX byte-range lock). Remote workdirs (URLs) are not locked here.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from label_smearing.core.errors import UserError

# Locks this process holds: artifact directory -> (lock path, open file descriptor, re-entry depth).
_HELD: dict[str, list] = {}


class LockHeld(UserError):
    """Another live process holds the artifact's lock; `holder` is its record (pid, host, ...)."""

    def __init__(self, path: str | os.PathLike, holder: dict):
        self.path, self.holder = str(path), holder
        super().__init__(
            f"{path} is being written by another process (pid {holder.get('pid', '?')} on "
            f"{holder.get('host', '?')}, since {holder.get('started', '?')}); wait for it to finish, "
            "or stop it"
        )


def lock_path(artifact_dir: str | os.PathLike) -> Path:
    """The lock file of an artifact directory: `<parent>/.<name>.lock`."""
    path = Path(artifact_dir)
    return path.parent / f".{path.name}.lock"


def _read_holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def holder(artifact_dir: str | os.PathLike) -> dict | None:
    """The record of the live process holding the artifact's lock, or None when nobody holds it."""
    path = lock_path(artifact_dir)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(path) or {"pid": "?", "host": "?"}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def acquire(artifact_dir: str | os.PathLike, *, log=None) -> None:
    """Takes the artifact's lock for this process (re-entrant), or raises `LockHeld` at once.

    Args:
      artifact_dir: the artifact directory to be written (it need not exist yet).
      log: where a line goes when a stale lock (left by a killed process) is taken over.

    Raises:
      LockHeld: another live process holds it.
      UserError: the lock file cannot be created (a permission error, a full disk), naming it.
    """
    key = os.path.abspath(artifact_dir)
    if key in _HELD:
        _HELD[key][2] += 1
        return
    path = lock_path(artifact_dir)
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UserError(f"cannot create the lock {path}: {e.strerror}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockHeld(artifact_dir, _read_holder(path) or {"pid": "?", "host": "?"}) from None
        except OSError as e:  # a file system without flock (a FUSE-mounted bucket): written unlocked
            if e.errno not in _NO_FLOCK:
                raise
            if log is not None and not _UNLOCKED_NOTED:
                log(f"lock: {path.parent} does not support flock; its artifacts are written without a lock")
                _UNLOCKED_NOTED.append(path.parent)
        try:
            same_file = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same_file = False
        if not same_file:  # released (and deleted) between our open and our flock: take the new file
            os.close(fd)
            continue
        break
    stale = _read_holder(path)
    if stale and log is not None:
        log(
            f"lock: taking over {path}, left by pid {stale.get('pid', '?')} on {stale.get('host', '?')} "
            "(that process is gone)"
        )
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:500],
    }
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    except OSError as e:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        raise UserError(f"cannot write the lock {path}: {e.strerror}") from e
    _HELD[key] = [path, fd, 1]


# flock's errors on a file system that has no locks (gcsfuse answers ENOSYS).
_NO_FLOCK = {errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOLCK, errno.EINVAL}
_UNLOCKED_NOTED: list = []


def release(artifact_dir: str | os.PathLike) -> None:
    """Drops one hold of this process on the artifact's lock; the last one deletes the file and unlocks."""
    key = os.path.abspath(artifact_dir)
    entry = _HELD.get(key)
    if entry is None:
        return
    entry[2] -= 1
    if entry[2] > 0:
        return
    del _HELD[key]
    path, fd, _ = entry
    with contextlib.suppress(OSError):
        os.unlink(path)  # first, so that nobody takes a lock on a file about to vanish
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def release_all() -> None:
    """Drops every lock this process holds (after a stage, whatever happened in it)."""
    for key in list(_HELD):
        _HELD[key][2] = 1
        release(key)


def held() -> list[str]:
    """The artifact directories whose lock this process holds."""
    return list(_HELD)


@contextlib.contextmanager
def locked(artifact_dir: str | os.PathLike, *, log=None):
    """`acquire` ... `release` around a block."""
    acquire(artifact_dir, log=log)
    try:
        yield
    finally:
        release(artifact_dir)
