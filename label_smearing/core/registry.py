"""The stage kinds: one registry entry each, the only place a kind is spelled out.

A stage kind is everything the rest of the toolkit needs to know about a stage
without importing it (importing a stage loads TensorFlow or Beam):

    name         the kind, as plans, manifests and fingerprints spell it (`export_logits`)
    command      its `smear` subcommand: the name with dashes (`smear export-logits`)
    folder       the workdir folder of its artifacts (`<workdir>/logits/...`)
    sections     the config sections that determine its artifacts
    inputs       the kinds whose artifacts it reads
    beam         whether it is an Apache Beam job (it takes Beam's pipeline flags)
    accelerator  "yes": runs on the run's accelerators (a training); "optional": if the
                 config's `resources` ask for it; "no"
    version      its compute version, covered by its artifacts' fingerprints (below)
    module       the module that computes it; `module.run(argv)` is the standalone
                 command, `module.compute_planned(request)` computes a plan node
    flags        adds the command's own flags to its parser (`--model`, ...)

The CLI, the plan, the executors, layout, publish and the Kubeflow compiler read
these entries. Adding a stage kind is one module (with `run` and
`compute_planned`) and one entry here; tests/test_layers.py checks that no other
module spells a kind's name.

Compute versions. An artifact's fingerprint covers its config section, its
inputs' fingerprints and its kind's `version`, never the package's release
number: a release that changes no stage's outputs keeps every artifact cached.
A change that alters what a stage writes bumps that kind's `version` (to the
release that makes it), which recomputes its artifacts and, through their
fingerprints, everything downstream; CHANGELOG.md names every bump. Every kind
starts at "0.3.0", the release whose fingerprints covered the package version,
so artifacts made by 0.3.0 stay cached. tests/test_stage_digests.py fails when a
deterministic stage's smoke output changes while its version stays.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal


def _no_flags(parser: argparse.ArgumentParser) -> None:
    del parser


@dataclasses.dataclass(frozen=True)
class StageKind:
    """One kind of stage (see the module docstring for the fields)."""

    name: str
    folder: str
    summary: str
    sections: tuple[str, ...]
    inputs: tuple[str, ...]
    module: str
    version: str
    beam: bool = False
    accelerator: Literal["yes", "optional", "no"] = "no"
    flags: Callable[[argparse.ArgumentParser], None] = _no_flags
    planned: bool = True  # a node kind of `smear run`'s plan (the synthetic experiments are not)

    @property
    def command(self) -> str:
        return self.name.replace("_", "-")


@dataclasses.dataclass
class StageRequest:
    """What a plan node asks of its stage: `compute_planned(request)` makes `out_dir` from `inputs`.

    Attributes:
      config: the node's resolved config.
      inputs: input kind -> the directories of its artifacts, in plan order.
      out_dir: the artifact to write; fingerprint and name: its fingerprint and artifact name.
      description: the model spec's description (None for data and report nodes).
      command: the standalone `smear` command that recomputes the artifact, recorded in its manifest.
    """

    config: Any
    inputs: Mapping[str, Sequence[Path | str]]
    out_dir: Path | str
    fingerprint: str
    name: str
    description: dict | None = None
    force: bool = False
    beam_args: Sequence[str] = ()
    log: Callable[[str], None] = print
    command: Sequence[str] = ()

    def input(self, kind: str) -> Path | str:
        """The one artifact of `kind` this node reads."""
        (directory,) = self.inputs[kind]
        return directory

    def optional_input(self, kind: str) -> Path | str | None:
        found = self.inputs.get(kind) or ()
        return found[0] if found else None


# ---------------------------------------------------------------- each command's own flags
def _export_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", help="teacher model artifact; default: the model `smear train` makes for this config"
    )
    parser.add_argument("--split", default="train", help="split to export (default: train)")
    parser.epilog += (
        " With no Beam flag, a split of at most 32,768 examples is exported in this process "
        "(the same output bytes as the Beam job, without its start-up); any Beam flag, e.g. "
        "--direct_num_workers=1, runs the Beam job."
    )


def _estimate_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--logits",
        help="exported-logits artifact; default: this config's cross-entropy teacher's train logits",
    )


def _evaluate_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model artifact directory; default: the one this config trains")


def _report_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--evaluations",
        nargs="+",
        metavar="DIR",
        help="the evaluation artifacts to report on (default: every complete one under <workdir>/eval)",
    )


# ---------------------------------------------------------------- the registry
NOISIFY, TRAIN, EXPORT_LOGITS, ESTIMATE_TRANSITION, EVALUATE, REPORT, SYNTHETIC = (
    "noisify",
    "train",
    "export_logits",
    "estimate_transition",
    "evaluate",
    "report",
    "synthetic",
)
STAGES: dict[str, StageKind] = {
    kind.name: kind
    for kind in (
        StageKind(
            NOISIFY, "data", "make noisy-label TFRecords from a clean dataset (Apache Beam)",
            ("data", "noise"), (), "label_smearing.stages.noisify", "0.3.0", beam=True,
        ),
        StageKind(
            TRAIN, "models", "train a teacher or a distilled student",
            ("model", "train", "loss", "distill"), (NOISIFY, EXPORT_LOGITS, ESTIMATE_TRANSITION),
            "label_smearing.stages.train", "0.3.0", accelerator="yes",
        ),
        StageKind(
            EXPORT_LOGITS, "logits", "export a teacher's logits with Beam RunInference",
            ("export",), (TRAIN, NOISIFY), "label_smearing.stages.export_logits", "0.3.0", beam=True,
            accelerator="optional", flags=_export_flags,
        ),
        StageKind(
            ESTIMATE_TRANSITION, "transition", "estimate T from exported logits (Patrini et al.)",
            ("estimate",), (EXPORT_LOGITS,), "label_smearing.stages.estimate_transition", "0.3.0", beam=True,
            flags=_estimate_flags,
        ),
        StageKind(
            EVALUATE, "eval", "accuracy, NLL, ECE, Table 3 breakdown and figures for a model",
            ("eval",), (TRAIN, NOISIFY), "label_smearing.stages.evaluate", "0.5.0", flags=_evaluate_flags,
        ),
        StageKind(
            REPORT, "report", "aggregate evaluations into the paper's tables and figures",
            ("report",), (EVALUATE,), "label_smearing.stages.report", "0.5.0", flags=_report_flags,
        ),
        StageKind(
            SYNTHETIC, "synthetic", "the paper's Figure 1, Figure 5 and Theorem 1 experiments",
            ("figure1", "figure5", "theorem1"), (), "label_smearing.experiments.synthetic", "0.3.0",
            planned=False,
        ),
    )
}  # fmt: skip


def kind(name: str) -> StageKind:
    """The registered kind `name`; a KeyError naming the registered ones otherwise."""
    try:
        return STAGES[name]
    except KeyError:
        raise KeyError(f"unknown stage kind {name!r}; registered: {', '.join(STAGES)}") from None


def by_command(command: str) -> StageKind | None:
    """The kind whose `smear` subcommand is `command`, or None."""
    return next((k for k in STAGES.values() if k.command == command), None)
