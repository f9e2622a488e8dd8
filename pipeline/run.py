"""The whole pipeline: clean data -> noisy data -> teachers -> logits -> students -> evaluation -> report.

    smear run --config configs/quickstart.py --workdir W [--dry-run [--json]] [--force] [--publish DIR]
        [Beam flags]

`pipeline.plan.plan(config, workdir)` expands the config's sweep into typed
nodes (kind, spec, inputs, output, fingerprint); `execute(nodes)` runs them in
order: a node whose complete artifact has the same fingerprint is reused
(cached), a partial one is never read (a killed training stage resumes from
its checkpoint), and `--force` recomputes everything. `--dry-run` prints the
plan, `--dry-run --json` prints it as JSON with each node's standalone command.

Sweep strings (pipeline/core/spec.py):
  teachers  METHOD[:ALPHA], METHOD a loss (keras_components.losses.LOSSES); ALPHA a
            number, or `est` for a loss that takes a transition matrix, with T
            estimated from the baseline teacher (Patrini et al.).
  students  TEACHER>STUDENT with TEACHER a teacher string and STUDENT a method of
            pipeline.core.spec.STUDENT_METHODS with its alpha (e.g. `ls:0.1>ce`).
Optional noise-rate sweep (configs/fmnist_paper.py):
  noise_rates          e.g. (0.2, 0.4): the whole sweep once per rate, each its own
                       setting in the report; () = noise.rate only
  student_noise_rates  the rates whose students run; () = every rate
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from pipeline import publish
from pipeline.core import artifacts
from pipeline.core.cli_common import parse_stage_args, stage_parser
from pipeline.core.config import split_config_args
from pipeline.core.errors import UserError
from pipeline.plan import Node, plan


# ---------------------------------------------------------------- one node per stage function
def _noisify(node: Node, force: bool, beam_args, log) -> dict:
    from beam_jobs import noisify

    return noisify.noisify_stage(node.config, node.out_dir, force=force, beam_args=beam_args, log=log)


def _train(node: Node, force: bool, beam_args, log) -> dict:
    from pipeline.stages import train

    logits = [n.out_dir for n in node.inputs if n.kind == "export"]
    return train.train_stage(
        node.config, node.input_of("noisify").out_dir, node.out_dir, logits_dir=logits[0] if logits else None,
        force=force, log=log, fingerprint=node.fingerprint, name=node.name,
    )  # fmt: skip


def _export(node: Node, force: bool, beam_args, log) -> dict:
    from beam_jobs import export_logits

    model, data = node.input_of("train"), node.input_of("noisify")
    return export_logits.export_stage(
        node.config, model.out_dir, data.out_dir, node.out_dir, split="train", force=force,
        beam_args=beam_args, log=log,
    )  # fmt: skip


def _estimate(node: Node, force: bool, beam_args, log) -> dict:
    from beam_jobs import estimate_transition

    logits = node.input_of("export").out_dir
    return estimate_transition.estimate_stage(
        node.config, logits, node.out_dir, force=force, beam_args=beam_args, log=log
    )


def _evaluate(node: Node, force: bool, beam_args, log) -> dict:
    from pipeline.stages import evaluate

    model, data = node.input_of("train"), node.input_of("noisify")
    return evaluate.evaluate_stage(
        node.config, model.out_dir, data.out_dir, node.out_dir, description=node.spec.describe(),
        force=force, log=log,
    )  # fmt: skip


def _report(node: Node, force: bool, beam_args, log) -> dict:
    from pipeline.stages import report

    return report.report_stage(
        node.config, [e.out_dir for e in node.inputs], node.out_dir, force=force, log=log
    )


RUNNERS: dict[str, Callable[..., dict]] = {
    "noisify": _noisify,
    "train": _train,
    "export": _export,
    "estimate": _estimate,
    "evaluate": _evaluate,
    "report": _report,
}


def _cached(stage: Node) -> bool:
    if not artifacts.is_complete(stage.out_dir):
        return False
    manifest = artifacts.read_manifest(stage.out_dir, what=f"{stage.kind} artifact", verify=False)
    return manifest.get("fingerprint") == stage.fingerprint


def describe_plan(stages: list[Node]) -> list[str]:
    lines = []
    for i, stage in enumerate(stages, 1):
        if _cached(stage):
            state = "cached"
        elif stage.out_dir.exists():
            state = "resume" if stage.kind == "train" else "rerun (partial)"
        else:
            state = "run"
        lines.append(f"[{i:>2}/{len(stages)}] {state:<16} {stage.label:<48} {stage.out_dir}")
    return lines


def execute(
    stages: list[Node], *, force: bool = False, log=print, workdir: str | Path | None = None, beam_args=()
) -> dict:
    """Runs the stages in order; returns {"ran": [...], "cached": [...], "seconds": ...}.

    With `workdir`, each stage that ran appends its wall time to <workdir>/stage_times.jsonl.
    """
    started = time.time()
    ran, cached = [], []
    for i, stage in enumerate(stages, 1):
        prefix = f"[{i}/{len(stages)}] {stage.label}"
        if not force and _cached(stage):
            # Inputs of the stages that follow are verified against their checksums when read.
            log(f"{prefix}: cached ({stage.out_dir})")
            cached.append(stage.label)
            continue
        log(f"{prefix}: running -> {stage.out_dir}")
        t0 = time.time()
        RUNNERS[stage.kind](stage, force, beam_args, log)
        if stage.kind == "train":
            import keras

            keras.backend.clear_session()  # free the graph before the next model
        if workdir is not None:
            publish.record_time(workdir, stage, time.time() - t0)
        log(f"{prefix}: done in {time.time() - t0:.1f} s (total {time.time() - started:.1f} s)")
        ran.append(stage.label)
    return {"ran": ran, "cached": cached, "seconds": round(time.time() - started, 2)}


def earlier_version_note(workdir: str | Path) -> str | None:
    """One line if the workdir holds artifacts of another package version, which this run will not read.

    Fingerprints cover the package version, so such artifacts never match a node:
    the plan is recomputed as a whole and they are left in place.
    """
    root = Path(workdir)
    if artifacts.is_url(workdir) or not root.is_dir():
        return None
    versions: dict[str, int] = {}
    for manifest in root.glob(f"*/*/{artifacts.MANIFEST}"):
        try:
            version = str(json.loads(manifest.read_text()).get("package_version", "?"))
        except (OSError, ValueError):
            continue
        if version != artifacts.PACKAGE_VERSION:
            versions[version] = versions.get(version, 0) + 1
    if not versions:
        return None
    found = ", ".join(f"{n} of version {v}" for v, n in sorted(versions.items()))
    return (
        f"run: note: {workdir} holds artifacts made by an earlier version ({found}); this version "
        f"({artifacts.PACKAGE_VERSION}) recomputes the plan as a whole and leaves them in place"
    )


def run(argv=None) -> None:
    parser = stage_parser("run", __doc__.splitlines()[0])
    parser.add_argument(
        "--dry-run", action="store_true", help="print the plan (what runs, what is cached) and stop"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="with --dry-run: print the plan as JSON, each node with its spec, inputs, output, fingerprint "
        "and the standalone `smear` command that computes it",
    )
    parser.add_argument(
        "--publish",
        metavar="DIR",
        help="after the run, copy the report (report.md, tables, figures, TensorBoard HParams) into DIR "
        "with stage_times.json/.md, the wall time of every stage and cell; DIR must be new, empty or "
        "a previous publish (other files in it are kept)",
    )
    from beam_jobs.core.runners import pipeline_options

    args, config, beam_args = parse_stage_args(parser, argv, known_only=True, extra_flags=pipeline_options)
    if args.json and not args.dry_run:
        raise UserError("--json needs --dry-run")
    stages = plan(config, args.workdir)
    if args.publish:
        publish.check_destination(args.publish)  # before anything runs
    if args.dry_run and args.json:
        _, overrides = split_config_args(list(argv or []))
        nodes = [s.to_json(args.config, args.workdir, tuple(overrides)) for s in stages]
        print(json.dumps({"config": args.config, "workdir": str(args.workdir), "nodes": nodes}, indent=1))
        return
    note = earlier_version_note(args.workdir)
    if note:
        print(note)
    if args.dry_run:
        print(f"plan for {args.config} in {args.workdir} ({len(stages)} stages):")
        print("\n".join(describe_plan(stages)))
        if args.publish:
            print(f"then publish the report to {args.publish}")
        return
    workdir = Path(args.workdir)
    summary = execute(stages, force=args.force, workdir=args.workdir, beam_args=beam_args)
    report_dir = stages[-1].out_dir
    print(
        f"run: {len(summary['ran'])} stages ran, {len(summary['cached'])} cached, {summary['seconds']:.1f} s"
    )
    print(f"run: report      {report_dir / 'report.md'}")
    print(f"run: TensorBoard {workdir}")
    print(f"run: open it with: tensorboard --logdir {workdir}")
    if args.publish:
        dest = publish.publish(report_dir, args.publish, stages, args.workdir)
        print(f"run: published {dest / 'report.md'} and {dest / 'stage_times.md'}")
