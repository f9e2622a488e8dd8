"""The report stage: `report_stage` writes a report artifact, `compute_planned` and `run` start it.

`report_stage` loads the evaluations, returns the cached report when its fingerprint matches, and
otherwise writes report.md, the CSV tables, the figures and the TensorBoard HParams summary with
the manifest last; `compute_planned` is a plan node's entry point (`registry.STAGES`) and `run` the
`smear report` command.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import ml_collections

from label_smearing.core import artifacts, layout
from label_smearing.core.cli_common import command_parser, parse_stage_args
from label_smearing.core.errors import UserError
from label_smearing.core.lifecycle import run_standalone
from label_smearing.core.registry import EVALUATE, REPORT, StageRequest
from label_smearing.stages.report.evaluations import _deduplicate, find_evaluations, load_evaluation
from label_smearing.stages.report.figures import _write_hparams
from label_smearing.stages.report.render import render_report


# ---------------------------------------------------------------- the stage
def report_stage(
    config: ml_collections.ConfigDict,
    eval_dirs: list,
    out_dir: str | os.PathLike,
    *,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    """Aggregates evaluation artifacts into report.md, CSV tables, figures and TensorBoard HParams.

    Args:
      config: the resolved config (its `report` section is fingerprinted).
      eval_dirs: complete evaluation artifact directories.
      out_dir: the report artifact directory to write.
      force: rewrite even if `out_dir` holds a complete report.
      log: where progress lines go.

    Returns:
      The report's manifest (read back if cached).

    Raises:
      UserError: no evaluations, or one that is missing, partial or corrupt.
    """
    if not eval_dirs:
        raise UserError("report: no evaluations to aggregate")
    evaluations = [load_evaluation(p) for p in eval_dirs]
    fp = layout.report_fingerprint(config, [e.manifest["fingerprint"] for e in evaluations])
    out_dir = artifacts.path(out_dir)
    if artifacts.is_complete(out_dir) and not force:
        cached = artifacts.read_manifest(out_dir, what="report")
        if cached.get("fingerprint") == fp:
            log(f"report: cached {out_dir}")
            return cached
        raise UserError(f"{out_dir} holds a different report; pass --force to replace it")
    evaluations, dropped = _deduplicate(evaluations, log)
    out_dir = artifacts.prepare_output(out_dir, force=force)
    figures = bool(config.report.get("figures", True))
    markdown, csv_files = render_report(
        evaluations, out_dir, dropped=dropped, figures=figures,
        per_model_figures=figures and bool(config.report.per_model_figures),
        confirm_seeds=tuple(config.sweep.get("confirm_seeds", ())),
    )  # fmt: skip
    (out_dir / "tables").mkdir(exist_ok=True)
    for name, text in csv_files.items():
        artifacts.atomic_write_bytes(out_dir / "tables" / name, text.encode())
    artifacts.atomic_write_bytes(out_dir / "report.md", markdown.encode())
    _write_hparams(out_dir, evaluations)
    manifest = artifacts.write_manifest(
        out_dir,
        stage=REPORT,
        fingerprint=fp,
        config=layout.report_section(config),
        inputs={e.path.name: artifacts.input_ref(e.path, e.manifest) for e in evaluations},
        counts={"evaluations": len(evaluations), "superseded": len(dropped)},
        exclude=("tensorboard",),
    )
    log(f"report: {len(evaluations)} evaluations -> {out_dir / 'report.md'}")
    return manifest


# ---------------------------------------------------------------- CLI
def compute_planned(request: StageRequest) -> dict:
    """A plan's report over every evaluation (`registry.STAGES`' entry point)."""
    return report_stage(
        request.config, list(request.inputs[EVALUATE]), request.out_dir, force=request.force, log=request.log
    )


def run(argv=None) -> None:
    args, config, _ = parse_stage_args(command_parser(REPORT), argv)
    eval_dirs = args.evaluations or find_evaluations(args.workdir)
    evaluations = [load_evaluation(p) for p in eval_dirs]
    report = layout.report(config, args.workdir, [e.manifest["fingerprint"] for e in evaluations])
    out_dir = artifacts.path(report.path)
    run_standalone(report, config, compute_planned, inputs={EVALUATE: eval_dirs}, force=args.force)
    print(f"report: {out_dir / 'report.md'}")
    print(f"report: TensorBoard HParams: tensorboard --logdir {out_dir / 'tensorboard'}")
