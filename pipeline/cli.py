"""The `smear` command: one subcommand per stage, plus `run` for the whole pipeline.

Every subcommand takes `--config path.py[:arg]`, dotted overrides
(`--config.noise.rate=0.4`), `--workdir` and `--force`. Errors the user can fix
print one line and exit with status 2; `--verbose` shows the traceback.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import traceback

from pipeline.core import locks
from pipeline.core.errors import UserError
from pipeline.core.oserrors import os_errors_as_user_errors

COMMANDS = {
    "noisify": ("beam_jobs.noisify", "make noisy-label TFRecords from a clean dataset (Apache Beam)"),
    "train": ("pipeline.stages.train", "train a teacher or a distilled student"),
    "export-logits": ("beam_jobs.export_logits", "export a teacher's logits with Beam RunInference"),
    "estimate-transition": (
        "beam_jobs.estimate_transition",
        "estimate T from exported logits (Patrini et al.)",
    ),
    "evaluate": ("pipeline.stages.evaluate", "accuracy, NLL, ECE, Table 3 breakdown and figures for a model"),
    "report": ("pipeline.stages.report", "aggregate evaluations into the paper's tables and figures"),
    "run": ("pipeline.run", "run the whole pipeline from a config, cached and resumable"),
    "synthetic": ("pipeline.stages.synthetic", "the paper's Figure 1, Figure 5 and Theorem 1 experiments"),
}

# Libraries a command loads sooner or later; `main` loads them first, with their start-up lines silenced.
_PRELOAD = {"report": (), "synthetic": ("tensorflow",)}


def _usage() -> str:
    lines = ["usage: smear COMMAND --config CONFIG.py[:arg] --workdir DIR [options]", "", "commands:"]
    for name, (_, text) in COMMANDS.items():
        lines.append(f"  {name:<20} {text}")
    lines += ["", "Run `smear COMMAND --help` for a command's options."]
    return "\n".join(lines)


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


def _workdir(args: list[str]) -> str | None:
    """The --workdir among a subcommand's arguments: named by an OS error that names no file."""
    for i, arg in enumerate(args):
        if arg.startswith("--workdir="):
            return arg.split("=", 1)[1]
        if arg == "--workdir" and i + 1 < len(args):
            return args[i + 1]
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"smear: error: unknown command {command!r}; one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's C++ start-up chatter
    if hasattr(sys.stdout, "reconfigure"):  # progress lines show as they happen, also through a pipe
        sys.stdout.reconfigure(line_buffering=True)
    verbose = "--verbose" in rest or os.environ.get("SMEAR_VERBOSE") == "1"
    saved_verbose = os.environ.get("SMEAR_VERBOSE")
    if verbose:
        os.environ["SMEAR_VERBOSE"] = "1"  # for `smear run --jobs N`'s workers; restored below
    rest = [a for a in rest if a != "--verbose"]
    try:
        with quiet_native_stderr(not verbose):
            for name in _PRELOAD.get(command, ("tensorflow", "apache_beam")):
                importlib.import_module(name)
            if "tensorflow" in sys.modules:  # device discovery logs a failed cuInit on machines without a GPU
                sys.modules["tensorflow"].config.list_physical_devices()
            module = importlib.import_module(COMMANDS[command][0])
        with os_errors_as_user_errors(_workdir(rest), verbose=verbose):  # a full disk, a permission: one line
            module.run(rest)
    except UserError as e:
        if verbose:
            traceback.print_exc()
        print(f"smear {command}: error: {e}", file=sys.stderr)
        return getattr(e, "exit_status", 2)  # 2; 1 for `smear run` stages that failed of a bug
    except KeyboardInterrupt:
        print(f"smear {command}: interrupted", file=sys.stderr)
        return 130
    finally:
        locks.release_all()  # a stage that failed before completing its artifact
        if saved_verbose is None:
            os.environ.pop("SMEAR_VERBOSE", None)
        else:
            os.environ["SMEAR_VERBOSE"] = saved_verbose
    return 0


if __name__ == "__main__":
    sys.exit(main())
