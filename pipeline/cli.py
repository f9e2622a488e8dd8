"""The `smear` command: one subcommand per stage, plus `run` for the whole pipeline.

Every subcommand takes `--config path.py[:arg]`, dotted overrides
(`--config.noise.rate=0.4`), `--workdir` and `--force`. Errors the user can fix
print one line and exit with status 2; `--verbose` shows the traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback

from pipeline.errors import UserError

COMMANDS = {
    "noisify": ("beam_jobs.noisify", "make noisy-label TFRecords from a clean dataset (Apache Beam)"),
    "train": ("pipeline.train", "train a teacher or a distilled student"),
    "export-logits": ("beam_jobs.export_logits", "export a teacher's logits with Beam RunInference"),
    "estimate-transition": (
        "beam_jobs.estimate_transition",
        "estimate T from exported logits (Patrini et al.)",
    ),
    "evaluate": ("pipeline.evaluate", "accuracy, NLL, ECE, Table 3 breakdown and figures for a model"),
    "report": ("pipeline.report", "aggregate evaluations into the paper's tables and figures"),
    "run": ("pipeline.run", "run the whole pipeline from a config, cached and resumable"),
    "synthetic": ("pipeline.synthetic", "the paper's Figure 1, Figure 5 and Theorem 1 experiments"),
}


def _usage() -> str:
    lines = ["usage: smear COMMAND --config CONFIG.py[:arg] --workdir DIR [options]", "", "commands:"]
    for name, (_, text) in COMMANDS.items():
        lines.append(f"  {name:<20} {text}")
    lines += ["", "Run `smear COMMAND --help` for a command's options."]
    return "\n".join(lines)


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
    verbose = "--verbose" in rest or os.environ.get("SMEAR_VERBOSE") == "1"
    rest = [a for a in rest if a != "--verbose"]
    try:
        module = importlib.import_module(COMMANDS[command][0])
        module.run(rest)
    except UserError as e:
        if verbose:
            traceback.print_exc()
        print(f"smear {command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"smear {command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
