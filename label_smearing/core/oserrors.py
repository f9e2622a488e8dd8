"""Operating-system and resource errors as one line: a full disk, a permission, memory.

A stage that runs out of disk space or may not write its output is not a bug to
show as a traceback: the user frees space or fixes the permission and reruns (a
partial artifact has no manifest, so nothing complete is damaged and the rerun
recomputes or resumes it). The error rarely arrives as a plain `OSError`:

- Beam re-raises a DoFn's exception as a `RuntimeError("OSError: [Errno 28] ...
  [while running 'step']")` with the original in `__context__` (and only the
  text when it crossed a process boundary);
- TensorFlow's file ops raise `tf.errors.OpError` subclasses whose message is
  "<path>; No space left on device" (`ResourceExhaustedError`) or
  "<path>; Read-only file system" (`PermissionDeniedError`), and an allocation
  that does not fit raises `ResourceExhaustedError("OOM when allocating ...")`;
- h5py (Keras weights) raises `OSError(28, "... filename = '<path>' ...")`.

`os_error_message(exc)` walks the exception chain and returns the one line, or
None for any other error; `as_user_error` wraps it in a `UserError`. The context
manager `os_errors_as_user_errors`, which `label_smearing.cli.main` puts around every
subcommand, raises that `UserError` instead and drops the copy of the traceback
Beam logs. Code that catches a stage's exception itself (an executor's worker)
calls `os_error_message(exc, where=out_dir)` for the line.

Keras' own back-up wrote its weights with HDF5 straight to the disk, and HDF5
crashes the process at exit after a failed write; training writes its back-up
whole instead (`label_smearing.stages.train.WholeFileBackup`), so no stage leaves HDF5
in that state.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import traceback
from collections.abc import Iterator

from label_smearing.core.errors import UserError

KEPT = "then rerun: complete artifacts are kept"

# errno -> (the problem, how it relates to the path, what to do). Only errors of the machine, not of
# the code: a missing file (ENOENT) stays a traceback unless the stage says which input is missing.
PROBLEMS = {
    errno.ENOSPC: ("no space left on device", "writing", "free space"),
    errno.EDQUOT: ("disk quota exceeded", "writing", "free space or raise the quota"),
    errno.EFBIG: (
        "file too large",
        "writing",
        "raise the file size limit (ulimit -f) or choose another --workdir",
    ),
    errno.EACCES: ("permission denied", "on", "fix the permissions or choose another --workdir"),
    errno.EPERM: ("operation not permitted", "on", "fix the permissions or choose another --workdir"),
    errno.EROFS: ("read-only file system", "writing", "choose a writable --workdir"),
    errno.EMFILE: ("too many open files", "opening", "raise the limit (ulimit -n)"),
    errno.ENFILE: ("too many open files in the system", "opening", "close other programs"),
    errno.EIO: ("input/output error", "on", "check the disk"),
    errno.ENOMEM: ("out of memory", "on", "free memory or lower the batch size"),
}
_MEMORY = "lower train.batch_size, eval.batch_size or export.batch_size, or free memory"
_ERRNO_TEXT = re.compile(r"\[Errno (\d+)\]")
_OOM_TEXT = re.compile(r"OOM when allocating tensor with shape ?(\[[^\]]*\])")
_MAX_CHAIN = 64


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and what it wraps: causes, contexts and exception-group members, breadth first."""
    seen, order, queue = set(), [], [exc]
    while queue and len(order) < _MAX_CHAIN:
        e = queue.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        order.append(e)
        queue += [e.__cause__, e.__context__, *getattr(e, "exceptions", ())]
    return order


def _errno_of(exc: BaseException) -> int | None:
    """The problem's errno, from the exception's type or, failing that, its text."""
    if isinstance(exc, OSError) and exc.errno in PROBLEMS:
        return exc.errno
    text = str(exc)
    for match in _ERRNO_TEXT.finditer(text):
        if int(match.group(1)) in PROBLEMS:
            return int(match.group(1))
    for code in PROBLEMS:  # TF's "<path>; No space left on device", h5py's "error message = '...'"
        if code != errno.ENOMEM and os.strerror(code) in text:
            return code
    return None


def _path_in(exc: BaseException, code: int) -> str | None:
    """The file an exception names: OSError.filename, or the path in h5py's, Python's or TF's message."""
    if isinstance(exc, OSError) and exc.filename:
        return os.fsdecode(exc.filename)
    text = str(exc)
    match = re.search(r"\b(?:file)?name = '([^'\n]+)'", text)  # h5py
    if match:
        return match.group(1)
    match = re.search(r"\[Errno \d+\] [^:'\n]*: '([^'\n]+)'", text)  # str(OSError) carried as text
    if match:
        return match.group(1)
    for line in text.splitlines():  # TF: "{{function_node ...}} /path; No space left on device"
        line = re.sub(r"^\s*(\w+(Error|Exception): )?(\{\{[^}]*\}\}\s*)?", "", line)
        match = re.match(rf"(.+?); {re.escape(os.strerror(code))}", line)
        if match:
            return match.group(1)
    return None


def os_error_message(exc: BaseException, where: str | os.PathLike | None = None) -> str | None:
    """The one line for a full disk, a permission error or memory exhausted; None for any other error.

    Walks `exc`'s `__cause__`/`__context__` chain (Beam and TensorFlow wrap the
    original) and reads the problem from the first exception that has one: an
    `OSError` with an errno of `PROBLEMS`, a `MemoryError`, a TensorFlow
    "OOM when allocating" error, or a message carrying "[Errno N]" or the
    system's text for one of those errnos. The path is the first one any
    exception of the chain names; else `where`.

    Args:
      exc: the exception a stage raised (a UserError is left alone: None).
      where: what the stage was writing, named when no exception of the chain
        names a file (e.g. the workdir, or the node's output directory).

    Returns:
      e.g. "no space left on device writing /w/data/x/train-00001-of-00004.tfrecord
      (free space, then rerun: complete artifacts are kept)", or None.
    """
    if isinstance(exc, UserError):
        return None
    chain = _chain(exc)
    for e in chain:
        oom = _OOM_TEXT.search(str(e)) if not isinstance(e, OSError) else None
        if oom or isinstance(e, MemoryError):
            shape = f" a tensor of shape {oom.group(1)}" if oom else ""
            return f"out of memory allocating{shape} ({_MEMORY}, {KEPT})"
        code = _errno_of(e)
        if code is None:
            continue
        path = next((p for p in (_path_in(x, code) for x in [e, *chain]) if p), None)
        problem, relation, remedy = PROBLEMS[code]
        if path:
            return f"{problem} {relation} {path} ({remedy}, {KEPT})"
        if where:
            return f"{problem} {relation} under {os.fspath(where)} ({remedy}, {KEPT})"
        return f"{problem} ({remedy}, {KEPT})"
    return None


def as_user_error(exc: BaseException, where: str | os.PathLike | None = None) -> UserError | None:
    """`UserError(os_error_message(exc, where))`, or None when `exc` is not such an error."""
    message = os_error_message(exc, where)
    return None if message is None else UserError(message)


class _DropOsErrors(logging.Filter):
    """Drops log records that carry an OS error (Beam logs a failing DoFn's traceback before re-raising)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return exc is None or os_error_message(exc) is None


# The loggers Beam reports a failed DoFn on (a filter on a logger applies to the records it creates).
_BEAM_ERROR_LOGGERS = ("apache_beam.runners.common", "apache_beam.runners.direct.executor")


@contextlib.contextmanager
def os_errors_as_user_errors(
    where: str | os.PathLike | None = None, *, verbose: bool = False
) -> Iterator[None]:
    """Turns an OS or resource error raised inside into a one-line `UserError`.

    While the block runs, log records carrying such an error are dropped (Beam
    logs a DoFn's exception before re-raising it); other errors and their logs
    pass unchanged.

    Args:
      where: named in the message when the error names no file (see `os_error_message`).
      verbose: print the original traceback and leave the logs alone.

    Raises:
      UserError: `os_error_message` of the error raised inside, from None.
    """
    drop = _DropOsErrors()
    # The root's handlers, and the loggers Beam reports a DoFn's error on, whatever handler is
    # added meanwhile (each Beam PipelineOptions calls logging.basicConfig).
    filtered = [] if verbose else [h for h in (*logging.getLogger().handlers, logging.lastResort) if h]
    filtered += [] if verbose else [logging.getLogger(name) for name in _BEAM_ERROR_LOGGERS]
    for target in filtered:
        target.addFilter(drop)
    try:
        yield
    except Exception as e:  # noqa: BLE001 - only the errors os_error_message names are translated
        error = as_user_error(e, where)
        if error is None:
            raise
        if verbose:
            traceback.print_exception(e)
        raise error from None
    finally:
        for target in filtered:
            target.removeFilter(drop)
