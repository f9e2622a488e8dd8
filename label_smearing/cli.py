"""The `smear` command: one subcommand per stage kind, `run` for the whole pipeline, `configs`.

Every stage subcommand takes `--config NAME[:arg]` (a bundled config, see `smear
configs`) or `--config path.py[:arg]`, dotted overrides (`--config.noise.rate=0.4`),
`--workdir` and `--force`. Errors the user can fix print one line and exit with
status 2; `--verbose` shows the traceback.

The stage subcommands come from the stage registry (`label_smearing.core.registry`).
`smear --help`, `smear --version`, `smear configs` and `smear COMMAND --help` do not
import TensorFlow or Beam; a command loads them only when it runs.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shlex
import signal
import sys
import threading
import traceback

from label_smearing import __version__
from label_smearing.core import artifacts, locks, registry
from label_smearing.core.cli_common import command_parser, exit_now, quiet_native_stderr
from label_smearing.core.errors import UserError
from label_smearing.core.oserrors import os_errors_as_user_errors

RUN, VERIFY, CONFIGS = "run", "verify", "configs"
# Commands that are not stage kinds: the module whose `run(argv)` runs it, and one line of help.
OTHER_COMMANDS = {
    RUN: ("label_smearing.pipeline.run", "run the whole pipeline from a config, cached and resumable"),
    VERIFY: (
        "label_smearing.pipeline.verify",
        "checksum a workdir's artifacts; list damaged ones and their fix",
    ),
    CONFIGS: ("", "list the bundled configs, each with its one-line description"),
}
HELP_FLAGS = ("-h", "--help")
REMAKE_ENV = "SMEAR_REMAKE"


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that a command stops as on Ctrl-C (workers stopped, locks freed)."""


def _raise_terminated(signum, frame):
    raise Terminated()


def commands() -> dict[str, tuple[str, str]]:
    """Every subcommand -> (its module, its help line): the registry's stage kinds, then `run` and `configs`."""
    stages = {k.command: (k.module, k.summary) for k in registry.STAGES.values()}
    return {**stages, **OTHER_COMMANDS}


def _usage() -> str:
    lines = [
        "usage: smear COMMAND --config NAME[:arg] --workdir DIR [options]",
        "       smear verify WORKDIR | smear --version | smear configs",
        "",
        "commands:",
    ]
    for name, (_, text) in commands().items():
        lines.append(f"  {name:<20} {text}")
    lines += ["", "Run `smear COMMAND --help` for a command's options."]
    return "\n".join(lines)


def _list_configs() -> None:
    from label_smearing.core.config import bundled_configs

    configs = bundled_configs()
    width = max(len(name) for name in configs)
    print(
        "bundled configs (smear run --config NAME[:arg]; each file's docstring gives its args and command):"
    )
    for name, line in configs.items():
        print(f"  {name:<{width}}  {line}")


def _help(command: str, rest: list[str]) -> None:
    """`smear COMMAND --help`, from the parser alone: no stage module is imported."""
    kind = registry.by_command(command)
    if kind is not None:
        parser = command_parser(kind.name)
    else:  # `run` and `verify`: their modules are light; the heavy imports are in run()
        parser = importlib.import_module(commands()[command][0]).parser()
    with contextlib.suppress(SystemExit):
        parser.parse_args(rest)  # prints the help


def _workdir(args: list[str]) -> str | None:
    """The --workdir among a subcommand's arguments: named by an OS error that names no file."""
    for i, arg in enumerate(args):
        if arg.startswith("--workdir="):
            return arg.split("=", 1)[1]
        if arg == "--workdir" and i + 1 < len(args):
            return args[i + 1]
    return None


def _remake(command: str, rest: list[str]) -> list[str]:
    """The command that recomputes what a stage command writes: itself with --force (a Kubeflow
    task, which runs it on a copy of the config, passes the command as compiled in SMEAR_REMAKE)."""
    if registry.by_command(command) is None:
        return []
    compiled = os.environ.get(REMAKE_ENV)
    if compiled:
        return shlex.split(compiled)
    return ["smear", command, *rest, *([] if "--force" in rest else ["--force"])]


def main(argv: list[str] | None = None) -> int:
    """Runs one `smear` command; returns its exit status.

    Called as the `smear` script (argv None), a command that ran ends its process
    as soon as it returns (`cli_common.exit_now`); called with an argv list it
    returns, for callers in the same process.
    """
    as_script = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:  # no command is a mistake: the usage, on stderr, and status 2
        print(_usage(), file=sys.stderr)
        return 2
    if argv[0] in (*HELP_FLAGS, "help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        print(f"smear (label-smearing) {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    table = commands()
    if command not in table:
        print(f"smear: error: unknown command {command!r}; one of: {', '.join(table)}", file=sys.stderr)
        return 2
    if command == CONFIGS:
        _list_configs()
        return 0
    if any(flag in rest for flag in HELP_FLAGS):
        _help(command, rest)
        return 0
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's C++ start-up chatter
    if hasattr(sys.stdout, "reconfigure"):  # progress lines show as they happen, also through a pipe
        sys.stdout.reconfigure(line_buffering=True)
    verbose = "--verbose" in rest or os.environ.get("SMEAR_VERBOSE") == "1"
    saved_verbose = os.environ.get("SMEAR_VERBOSE")
    if verbose:
        os.environ["SMEAR_VERBOSE"] = "1"  # for `smear run --jobs N`'s workers; restored below
    rest = [a for a in rest if a != "--verbose"]
    kind = registry.by_command(command)
    # Libraries a command loads sooner or later, loaded first with their start-up lines silenced:
    # TensorFlow for every stage (the report too: plots), Beam for the Beam stages and the plan's runs.
    preload = ["tensorflow"] + (["apache_beam"] if kind is None or kind.beam else [])
    if command == VERIFY:  # checksums only (a gs:// workdir loads TensorFlow when it reads one)
        preload = []
    status = 0
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous_sigterm = signal.getsignal(signal.SIGTERM) if on_main_thread else None
    if on_main_thread:
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        with quiet_native_stderr(not verbose):
            for name in preload:
                importlib.import_module(name)
            if preload:
                sys.modules["tensorflow"].config.list_physical_devices()  # logs a failed cuInit without a GPU
            module = importlib.import_module(table[command][0])
        with (
            os_errors_as_user_errors(_workdir(rest), verbose=verbose),
            artifacts.remaking(_remake(command, rest)),
        ):
            module.run(
                rest
            )  # a full disk, a permission: one line; a stage's manifest records how to remake it
    except UserError as e:
        if verbose:
            traceback.print_exc()
        print(f"smear {command}: error: {e}", file=sys.stderr)
        status = getattr(e, "exit_status", 2)  # 2; 1 for `smear run` stages that failed of a bug
    except BrokenPipeError:  # the reader of stdout went away (`smear run --dry-run | head`): stop quietly
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        status = 141  # 128 + SIGPIPE, as the shell reports a process that a closed pipe ended
    except Terminated:
        print(f"smear {command}: terminated (SIGTERM)", file=sys.stderr)
        status = 143  # 128 + SIGTERM, as the shell reports a process that SIGTERM ended
    except KeyboardInterrupt:
        print(f"smear {command}: interrupted", file=sys.stderr)
        status = 130
    finally:
        if on_main_thread:
            signal.signal(
                signal.SIGTERM, previous_sigterm if previous_sigterm is not None else signal.SIG_DFL
            )
        locks.release_all()  # a stage that failed before completing its artifact
        if saved_verbose is None:
            os.environ.pop("SMEAR_VERBOSE", None)
        else:
            os.environ["SMEAR_VERBOSE"] = saved_verbose
    if as_script:
        exit_now(status)
    return status


if __name__ == "__main__":
    sys.exit(main())
