"""Argument handling shared by every `smear` subcommand."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import ml_collections

from label_smearing.core import registry
from label_smearing.core.artifacts import check_location
from label_smearing.core.config import load_config, split_config_args
from label_smearing.core.errors import UserError


@contextlib.contextmanager
def quiet_native_stderr(enabled: bool):
    """Sends file descriptor 2 to /dev/null while the stage's libraries load.

    TensorFlow 2.21 logs its start-up lines (oneDNN, CUDA probing) through absl
    before TF_CPP_MIN_LOG_LEVEL applies, and Beam warns about optional GCP
    clients: without this a one-line error would come after eight lines of noise.
    """
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _Parser(argparse.ArgumentParser):
    """Usage mistakes (an unknown or missing flag) are UserErrors: one line, exit status 2."""

    def error(self, message: str):
        raise UserError(f"{message} (see {self.prog} --help)")


def exit_now(status: int) -> None:
    """Ends a `smear` process whose work is done, without the interpreter's teardown.

    Unloading the ~3,700 modules of TensorFlow, Keras and Beam took 8-14 s after
    a stage's manifest was written (measured on 2 cores), with no thread left and
    nothing left to write: every artifact file is closed and renamed into place
    before its command returns, and the exit handlers are run here. Only what a
    process prints is still buffered; it is flushed first.
    """
    import atexit
    import logging

    with contextlib.suppress(Exception):
        atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


def stage_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A parser with the flags every stage takes: --config, --workdir, --force."""
    parser = _Parser(
        prog=f"smear {prog}",
        description=description,
        epilog="Override any config value with --config.SECTION.KEY=VALUE "
        "(e.g. --config.noise.rate=0.4); an unknown key is an error.",
    )
    parser.add_argument(
        "--config",
        required=True,
        help="a bundled config's name or a config file, NAME[:arg] or path.py[:arg]; e.g. quickstart:smoke "
        "(smear configs lists the bundled ones)",
    )
    parser.add_argument(
        "--workdir",
        required=True,
        help="root directory for this run's artifacts: a local path or gs://BUCKET/DIR",
    )
    parser.add_argument("--force", action="store_true", help="recompute even if a complete artifact exists")
    parser.add_argument("--verbose", action="store_true", help="show tracebacks on errors")
    return parser


def command_parser(kind: str) -> argparse.ArgumentParser:
    """The parser of a stage kind's `smear` command: the common flags and the kind's own (`registry`)."""
    entry = registry.kind(kind)
    parser = stage_parser(entry.command, entry.summary)
    parser.epilog += (
        f" Its artifacts go to <workdir>/{entry.folder}/; their fingerprint covers the config sections "
        f"{', '.join(entry.sections)}, its inputs' fingerprints and its compute version {entry.version}."
    )
    entry.flags(parser)
    return parser


def parse_stage_args(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    *,
    known_only: bool = False,
    validate: Callable[[ml_collections.ConfigDict], None] | None = None,
    extra_flags: Callable[[list[str]], Any] | None = None,
) -> tuple[argparse.Namespace, ml_collections.ConfigDict, list[str]]:
    """Parses stage flags, loads the config with overrides.

    Args:
      parser: from `stage_parser`, possibly with extra flags.
      argv: the arguments after the subcommand.
      known_only: leave the flags this parser does not know in the returned list
        (Beam pipeline options, for the stages that take them).
      extra_flags: called with those flags; raises UserError on one it does not
        know, before anything is written (e.g. `label_smearing.beam_core.runners.pipeline_options`).
      validate: called with the loaded config; raises UserError on bad values.

    Returns:
      (args, config, remaining argv).
    """
    rest, overrides = split_config_args(list(argv or []))
    if known_only:
        args, remaining = parser.parse_known_args(rest)
        if extra_flags is not None:
            extra_flags(remaining)  # an unknown flag fails here, before anything is written
    else:
        args, remaining = parser.parse_args(rest), []
    if not args.workdir.strip():  # an unset shell variable would mean the current directory
        raise UserError(
            f"--workdir is empty ({args.workdir!r}): name a directory, a local path or gs://BUCKET/DIR"
        )
    check_location(args.workdir)  # a bad URL: one line, before anything is read or written
    config = load_config(args.config, overrides)
    if validate is not None:
        validate(config)
    return args, config, remaining
