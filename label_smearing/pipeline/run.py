"""The whole pipeline: clean data -> noisy data -> teachers -> logits -> students -> evaluation -> report.

    smear run --config quickstart --workdir W [--jobs N [--devices IDS]] [--dry-run [--json]]
        [--force] [--publish DIR] [Beam flags]
    smear run --config ... --workdir W --engine kfp --output pipeline.yaml [--image IMAGE] [Beam flags]

`label_smearing.pipeline.plan.plan(config, workdir)` expands the config's sweep into typed
nodes (kind, spec, inputs, output, fingerprint); `label_smearing.pipeline.executor.execute`
runs them, each after its inputs: a node whose complete artifact has the same
fingerprint is reused (cached), a partial one is never read (a killed training
stage resumes from its checkpoint), and `--force` recomputes everything.
`--jobs N` runs independent nodes concurrently in N worker processes, each on
its own accelerators (`--devices`) or its share of the CPU cores. Each node is
written under a lock: a second `smear run` on the same workdir waits for what
the first is computing and reuses it. `--dry-run` prints the
plan, `--dry-run --json` prints it as JSON with each node's standalone command.
`--engine kfp --output pipeline.yaml` runs nothing: it compiles the same plan into a
Kubeflow Pipelines v2 pipeline, one task per node running its standalone command in
the project's image (`--image`), for Kubeflow or Vertex AI Pipelines (label_smearing/pipeline/kfp_engine.py;
needs the kfp extra). The workdir must then be storage every task reaches (gs://BUCKET/...).

Sweep strings (label_smearing/core/spec.py):
  teachers  METHOD[:ALPHA], METHOD a loss (label_smearing.modeling.losses.LOSSES); ALPHA a
            number, or `est` for a loss that takes a transition matrix, with T
            estimated from the baseline teacher (Patrini et al.).
  students  TEACHER>STUDENT with TEACHER a teacher string and STUDENT a method of
            label_smearing.core.spec.STUDENT_METHODS with its alpha (e.g. `ls:0.1>ce`).
Optional noise-rate sweep (label_smearing/configs/fmnist_paper.py):
  noise_rates          e.g. (0.2, 0.4): the whole sweep once per rate, each its own
                       setting in the report; () = noise.rate only
  student_noise_rates  the rates whose students run; () = every rate
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from label_smearing.core import artifacts, locks, registry
from label_smearing.core.cli_common import parse_stage_args, stage_parser
from label_smearing.core.config import split_config_args
from label_smearing.core.errors import UserError
from label_smearing.core.registry import TRAIN

if TYPE_CHECKING:
    from label_smearing.pipeline.plan import Node

# The plan, its executors and the stages import TensorFlow: they are imported in `run`, so that
# `smear run --help` (`parser()`) loads none of them.


def _verified(stages: list[Node], source: dict) -> set[int]:
    """--verify: checksums the plan's complete artifacts; the indices of the damaged ones, each listed."""
    import time

    from label_smearing.pipeline import verify

    started = time.time()
    complete = [i for i, s in enumerate(stages) if artifacts.is_complete_with(s.out_dir, s.fingerprint)]
    print(f"run: verifying the {len(complete)} complete artifacts of the plan")
    damaged = verify.check(
        [stages[i].out_dir for i in complete], remake=lambda d: shlex.join(_node_at(stages, d).remake(source))
    )
    found = {i for i in complete if str(stages[i].out_dir) in damaged}
    print(
        f"run: {len(found)} damaged, recomputed by this run with what read them ({time.time() - started:.1f} s)"
        if found
        else f"run: every one matches its manifest ({time.time() - started:.1f} s)"
    )
    return found


def _node_at(stages: list[Node], directory) -> Node:
    return next(s for s in stages if str(s.out_dir) == str(directory))


def plan_states(stages: list[Node], damaged: set[int] = frozenset()) -> list[str]:
    """What a run would do with each node: "cached", "run", "resume", "rerun (partial)", "writing (pid N)",
    "stale (input replaced)", "stale (input reruns)" or "damaged" (`damaged`: indices --verify found)."""
    from label_smearing.pipeline import executor

    states, runs = [], set()  # runs: the nodes this run would (re)compute, whose consumers then follow
    for i, stage in enumerate(stages):
        holder = None if artifacts.is_url(stage.out_dir) else locks.holder(stage.out_dir)
        upstream = any(id(n) in runs for n in stage.inputs)
        if i in damaged:
            state = "damaged"
        elif not upstream and executor.cached(stage):
            state = "cached"
        elif holder is not None:
            state = f"writing (pid {holder.get('pid', '?')})"  # by another process; this run would wait
        elif artifacts.is_complete_with(stage.out_dir, stage.fingerprint):
            if upstream:
                state = "stale (input reruns)"
            elif artifacts.damaged_files(stage.out_dir):
                state = "damaged"
            else:
                state = "stale (input replaced)"
        elif stage.out_dir.exists():
            state = "resume" if stage.kind == TRAIN else "rerun (partial)"
        else:
            state = "run"
        if state != "cached":
            runs.add(id(stage))
        states.append(state)
    return states


def _shared(jobs: int) -> str:
    """What an estimate is under --jobs N: stage time, not wall time."""
    return f"; that is stage time, which --jobs {jobs} shares among {jobs} workers" if jobs > 1 else ""


def describe_plan(stages: list[Node], states: list[str], estimate, jobs: int = 1) -> list[str]:
    """One line per node, its state and estimated seconds, then the estimate of the whole run."""
    from label_smearing.pipeline.estimate import duration

    lines = []
    for i, (stage, state) in enumerate(zip(stages, states), 1):
        when = "" if state == "cached" else f"~{duration(estimate.seconds[id(stage)])}"
        lines.append(f"[{i:>2}/{len(stages)}] {state:<20} {stage.label:<48} {when:>7}  {stage.out_dir}")
    to_run = [s for s, state in zip(stages, states) if state != "cached"]
    lines.append(f"estimate: {estimate.describe(to_run)}{_shared(jobs)}")
    return lines


def earlier_version_note(workdir: str | Path) -> str | None:
    """One line if the workdir holds artifacts of another compute version of their stage kind.

    Fingerprints cover each kind's compute version (`registry`), so such artifacts
    never match a node: their kinds and everything downstream are recomputed, and
    they are left in place. Manifests from before compute versions existed record
    the package version that wrote them, which was then the version of every kind.
    """
    root = artifacts.path(workdir)
    if not root.is_dir():
        return None
    stale: dict[tuple[str, str], int] = {}
    for manifest in root.glob(f"*/*/{artifacts.MANIFEST}"):
        try:
            record = json.loads(manifest.read_text())
        except (OSError, ValueError):
            continue
        kind = registry.STAGES.get(str(record.get("stage")))
        if kind is None:
            continue
        version = str(record.get("stage_version") or record.get("package_version", "?"))
        if version != kind.version:
            stale[(kind.command, version)] = stale.get((kind.command, version), 0) + 1
    if not stale:
        return None
    found = ", ".join(f"{n} {command} of version {v}" for (command, v), n in sorted(stale.items()))
    return (
        f"run: note: {workdir} holds artifacts of an earlier compute version ({found}); those stages "
        "and everything downstream are recomputed, and the old artifacts are left in place"
    )


def _check_kfp_args(args) -> None:
    """`--engine kfp` compiles and runs nothing: one line for a flag that would run or needs no compile."""
    from label_smearing.pipeline import kfp_engine

    if not args.output:
        raise UserError("--engine kfp needs --output FILE.yaml, the pipeline file to write")
    if os.path.isdir(args.output):
        raise UserError(
            f"--output {args.output} is a directory; name the pipeline file to write, e.g. "
            f"{os.path.join(args.output, 'pipeline.yaml')}"
        )
    for flag, given in (
        ("--dry-run", args.dry_run), ("--publish", args.publish), ("--force", args.force), ("--verify", args.verify)
    ):  # fmt: skip
        if given:
            raise UserError(
                f"{flag} does not apply to --engine kfp, which compiles and runs nothing"
                + (
                    "; publish after the pipeline ran, with smear run ... --publish DIR (every stage cached)"
                    if flag == "--publish"
                    else "; a task skips a stage only if its artifact is complete: delete it to recompute"
                    if flag == "--force"
                    else ""
                )
            )
    if args.jobs > 1:
        raise UserError(
            f"--jobs {args.jobs} does not apply to --engine kfp: the pipeline runs independent tasks at once"
        )
    kfp_engine.check_installed()


def parser() -> argparse.ArgumentParser:
    """`smear run`'s flags (light: imports no stage)."""
    parser = stage_parser("run", __doc__.splitlines()[0])
    parser.add_argument(
        "--dry-run", action="store_true", help="print the plan (what runs, what is cached) and stop"
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="first checksum every complete artifact of the plan against its manifest; the damaged ones are "
        "recomputed, and what read them (with --dry-run: listed, each with the command that recomputes it)",
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
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="run up to N independent stages at once, in N worker processes (default 1: one at a time, "
        "in this process); on CPU each worker gets 1/N of the cores",
    )
    parser.add_argument(
        "--devices",
        metavar="IDS",
        help="with --jobs: the accelerator ids to split between the workers, e.g. 0,1,2,3 (default: the "
        "GPUs TensorFlow sees; none on CPU)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        metavar="K",
        help="with --jobs on CPU: each worker's TensorFlow threads (default: its share, cores // N). A "
        "training's numbers depend on its thread count: --threads equal to the cores reproduces a --jobs 1 "
        "run exactly",
    )
    parser.add_argument(
        "--engine",
        choices=("local", "kfp"),
        default="local",
        help="local (default): run the plan here; kfp: compile it into a Kubeflow Pipelines v2 pipeline "
        "(--output) and run nothing",
    )
    parser.add_argument(
        "--output", metavar="FILE.yaml", help="with --engine kfp: the pipeline file to write (needed)"
    )
    parser.add_argument(
        "--image",
        metavar="IMAGE",
        help="with --engine kfp: the container image every task runs in, built from the Dockerfile "
        "(default label-smearing:VERSION; e.g. REGION-docker.pkg.dev/PROJECT/REPO/label-smearing:VERSION)",
    )
    return parser


def _chosen_text(stages: list[Node], config) -> str:
    """ "LS α=0.2, FC α=0.4 @rho0.4": the teachers the confirmation seeds train at a chosen alpha
    (negative smoothing by the report's name for it, "NLS α=-0.2")."""
    from label_smearing.modeling.losses import CE
    from label_smearing.stages.report.selection import negative_column

    def name(spec) -> str:
        return f"{negative_column(spec.method)} α={spec.alpha:g}" if spec.alpha < 0 else spec.label

    confirm = {int(s) for s in config.sweep.confirm_seeds}
    chosen = {
        (name(n.spec), n.tag)
        for n in stages
        if n.kind == TRAIN and n.spec is not None and n.spec.seed in confirm and n.spec.method != CE
    }
    return ", ".join(label + (f" @{tag}" if tag else "") for label, tag in sorted(chosen)) or "none"


def _execute(stages, to_run: set, estimate, args, beam_args, source: dict, damaged: set) -> dict:
    """Runs the plan's stages (`executor.execute`), every failure on its own line."""
    from label_smearing.pipeline import executor

    try:
        return executor.execute(
            stages, jobs=args.jobs, devices=args.devices, threads=args.threads, force=args.force,
            workdir=args.workdir, beam_args=beam_args, source=source, recompute=damaged,
            seconds_left=lambda done: estimate.total([s for s in stages if id(s) in to_run and id(s) not in done]),
        )  # fmt: skip
    except executor.StagesFailed as e:
        if len(e.failures) > 1:
            for label, message in e.failures:
                print(f"smear run: failed: {label}: {message}", file=sys.stderr)
        raise


def run(argv=None) -> None:
    from label_smearing.beam_core.runners import pipeline_options
    from label_smearing.pipeline import preflight, publish
    from label_smearing.pipeline.estimate import LONG_PLAN_SECONDS, Estimate, duration
    from label_smearing.pipeline.plan import check_overrides, plan

    args, config, beam_args = parse_stage_args(parser(), argv, known_only=True, extra_flags=pipeline_options)
    if args.json and not args.dry_run:
        raise UserError("--json needs --dry-run")
    if args.jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {args.jobs}")
    if args.devices is not None and args.jobs == 1:
        raise UserError("--devices needs --jobs N with N > 1 (one process uses every device it sees)")
    if args.threads < 0 or (args.threads and args.jobs == 1):
        raise UserError(f"--threads must be >= 1 and needs --jobs N with N > 1, got {args.threads}")
    if args.jobs > 1 and config.train.strategy in ("tpu", "multi_worker"):
        raise UserError(
            f"--jobs {args.jobs} with train.strategy={config.train.strategy}: that strategy uses the whole "
            "machine (or cluster) for one training; run with --jobs 1"
        )
    if args.engine == "kfp":
        _check_kfp_args(args)
    elif args.output or args.image:
        raise UserError(f"{'--output' if args.output else '--image'} needs --engine kfp")
    stages = plan(config, args.workdir)
    _, overrides = split_config_args(list(argv or []))
    check_overrides(args.config, overrides, config, stages, args.workdir)  # each is used, or one line
    preflight.check_plan(stages)  # every stage's own checks (batch size, memory), before anything runs
    if args.engine == "kfp":
        from label_smearing.pipeline import kfp_engine

        if stages.pending:
            raise UserError(
                "sweep.confirm_seeds: the confirmation runs' α is chosen on the selection seeds' evaluations, "
                f"which {args.workdir} does not have yet ({stages.pending[0]}); run the selection first "
                "(smear run, or this pipeline with --config.sweep.confirm_seeds=()), then compile again"
            )

        written = kfp_engine.compile_pipeline(
            stages, args.output, config=config, config_arg=args.config, workdir=args.workdir,
            overrides=tuple(overrides), image=args.image or kfp_engine.DEFAULT_IMAGE, beam_args=beam_args,
        )  # fmt: skip
        print(f"run: wrote {written}: {len(stages)} tasks in {args.image or kfp_engine.DEFAULT_IMAGE}")
        print("run: upload it to Kubeflow or Vertex AI Pipelines (docs/guides/scaling-out.md)")
        return
    if args.publish:
        publish.check_destination(args.publish)  # before anything runs
    if args.dry_run and args.json:
        nodes = [s.to_json(args.config, args.workdir, tuple(overrides)) for s in stages]
        print(json.dumps({"config": args.config, "workdir": str(args.workdir), "nodes": nodes}, indent=1))
        return
    note = earlier_version_note(args.workdir)
    if note:
        print(note)
    if config.data.validation_fraction == 0:
        print(
            "run: note: data.validation_fraction=0 holds out no validation split, so the report chooses no "
            "alpha (never on test): Table 2 shows every alpha, and the claims that need a choice are left out"
        )
    source = {"config": args.config, "overrides": overrides, "workdir": str(args.workdir)}
    damaged = _verified(stages, source) if args.verify else set()
    states = plan_states(stages, damaged)
    estimate = Estimate(stages, args.workdir)
    to_run = {id(s) for s, state in zip(stages, states) if state != "cached"}
    if args.dry_run:
        print(f"plan for {args.config} in {args.workdir} ({len(stages)} stages):")
        print("\n".join(describe_plan(stages, states, estimate, args.jobs)))
        for item in stages.pending:
            print(f"then {item} (~{duration(estimate.pending(stages, [item]))})")
        if stages.pending:
            print(
                f"then the report; the confirmation adds about {duration(estimate.pending(stages, stages.pending))}"
            )
        if args.publish:
            print(f"then publish the report to {args.publish}")
        return
    workdir = artifacts.path(args.workdir)
    planned = [s for s in stages if id(s) in to_run]
    long = estimate.total(planned) + estimate.pending(stages, stages.pending) > LONG_PLAN_SECONDS
    print(
        f"run: {estimate.describe(planned)}"
        + _shared(args.jobs)
        + ("; over an hour: --dry-run gives each stage's share" if long else "")
        + (
            f"; then about {duration(estimate.pending(stages, stages.pending))} for the confirmation runs at the "
            "chosen α"
            if stages.pending
            else ""
        )
    )
    summary = _execute(stages, to_run, estimate, args, beam_args, source, damaged)
    if stages.pending:  # the selection seeds are evaluated now: plan the confirmation at the chosen alpha
        stages = plan(config, args.workdir)
        if stages.pending:
            raise UserError(f"run: the selection seeds' evaluations are still missing: {stages.pending[0]}")
        preflight.check_plan(stages)
        states = plan_states(stages)
        to_run = {id(s) for s, state in zip(stages, states) if state != "cached"}
        estimate = Estimate(stages, args.workdir)
        print(f"run: α chosen on the selection seeds: {_chosen_text(stages, config)}")
        print(f"run: confirmation: {estimate.describe([s for s in stages if id(s) in to_run])}")
        more = _execute(stages, to_run, estimate, args, beam_args, source, set())
        summary = {
            "ran": summary["ran"] + more["ran"],
            "cached": [c for c in more["cached"] if c not in summary["ran"]],
            "seconds": summary["seconds"] + more["seconds"],
        }
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
