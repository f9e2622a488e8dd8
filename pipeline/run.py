"""The whole pipeline: clean data -> noisy data -> teachers -> logits -> students -> evaluation -> report.

    smear run --config configs/quickstart.py --workdir W [--dry-run] [--force] [--publish DIR] [Beam flags]

`plan(config, workdir)` is a plain function that only wires stages: it expands
the config's sweep (teachers x seeds, students from teachers) into a DAG of
stages, each with its output directory and fingerprint. `execute(plan)` runs
them in order: a stage whose complete artifact has the same fingerprint is
reused (cached), a partial one is never read (a killed training stage resumes
from its checkpoint), and `--force` recomputes everything.

Sweep strings:
  teachers  METHOD[:ALPHA]  with METHOD ce | ls | fc | bc; ALPHA a number, or `est`
            for fc/bc with T estimated from the ce teacher (Patrini et al.).
  students  TEACHER>STUDENT with TEACHER a teacher string and STUDENT ce | ls:A | fc:A
            (ce: plain distillation; ls: smooth the soft targets; fc: forward-correct).
Optional noise-rate sweep (configs/fmnist_paper.py):
  noise_rates          e.g. (0.2, 0.4): the whole sweep once per rate, each its own
                       setting in the report; absent or () = noise.rate only
  student_noise_rates  the rates whose students run; absent or () = every rate
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import ml_collections

from pipeline import artifacts, publish
from pipeline.cli_common import parse_stage_args, stage_parser
from pipeline.errors import UserError

TEACHER_METHODS = ("ce", "ls", "fc", "bc")
STUDENT_METHODS = ("ce", "ls", "fc")


@dataclasses.dataclass(frozen=True)
class Teacher:
    method: str
    alpha: float  # for estimated T: 0.0
    estimated: bool = False

    @property
    def spec(self) -> str:
        if self.method == "ce":
            return "ce"
        return f"{self.method}:est" if self.estimated else f"{self.method}:{self.alpha:g}"


@dataclasses.dataclass(frozen=True)
class Student:
    teacher: Teacher
    method: str
    alpha: float


@dataclasses.dataclass
class Stage:
    """One node of the plan: what runs, where it writes, what it depends on."""

    kind: str
    name: str
    out_dir: Path
    fingerprint: str
    deps: list[Stage]
    action: Callable[[Stage, bool], dict]  # (stage, force) -> manifest
    description: dict = dataclasses.field(default_factory=dict)
    tag: str = ""  # the noise setting, e.g. "rho0.4", when a sweep has several

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}" + (f" @{self.tag}" if self.tag else "")


# ---------------------------------------------------------------- sweep parsing
def _parse_alpha(text: str, where: str) -> float:
    try:
        alpha = float(text)
    except ValueError:
        raise UserError(f"{where}: alpha {text!r} is not a number") from None
    if not 0.0 <= alpha <= 1.0:
        raise UserError(f"{where}: alpha must be in [0, 1], got {alpha}")
    return alpha


def parse_teacher(spec: str) -> Teacher:
    where = f"sweep.teachers entry {spec!r}"
    method, _, alpha = spec.strip().partition(":")
    if method not in TEACHER_METHODS:
        raise UserError(f"{where}: unknown method {method!r}; one of {', '.join(TEACHER_METHODS)}")
    if method == "ce":
        if alpha and float(alpha or 0) != 0:
            raise UserError(f"{where}: ce takes no alpha")
        return Teacher("ce", 0.0)
    if alpha == "est":
        if method not in ("fc", "bc"):
            raise UserError(f"{where}: only fc and bc use an estimated T")
        return Teacher(method, 0.0, estimated=True)
    if not alpha:
        raise UserError(f"{where}: {method} needs an alpha, e.g. {method}:0.1")
    value = _parse_alpha(alpha, where)
    if method == "bc" and value >= 1:
        raise UserError(f"{where}: bc needs alpha < 1 (T_1 is singular)")
    return Teacher(method, value)


def parse_student(spec: str) -> Student:
    where = f"sweep.students entry {spec!r}"
    teacher, sep, student = spec.partition(">")
    if not sep:
        raise UserError(f"{where}: expected TEACHER>STUDENT, e.g. ls:0.1>ce")
    method, _, alpha = student.strip().partition(":")
    if method not in STUDENT_METHODS:
        raise UserError(f"{where}: unknown student method {method!r}; one of {', '.join(STUDENT_METHODS)}")
    value = 0.0 if method == "ce" else _parse_alpha(alpha, where) if alpha else None
    if value is None:
        raise UserError(f"{where}: student {method} needs an alpha, e.g. {method}:0.1")
    return Student(parse_teacher(teacher), method, value)


def _seeds(config) -> list[int]:
    seeds = list(config.sweep.seeds)
    if not seeds:
        raise UserError("sweep.seeds is empty")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"sweep.seeds has duplicates: {tuple(seeds)}")
    return seeds


def _rate_tuple(config, key: str) -> list[float]:
    rates = [float(r) for r in (config.sweep.get(key) or ())]
    for r in rates:
        if not 0.0 <= r <= 1.0:
            raise UserError(f"sweep.{key}: noise rate must be in [0, 1], got {r}")
    if len(set(rates)) != len(rates):
        raise UserError(f"sweep.{key} has duplicates: {tuple(rates)}")
    return rates


def _noise_rates(config) -> list[float]:
    """sweep.noise_rates (one setting per rate), or just noise.rate when absent or empty."""
    return _rate_tuple(config, "noise_rates") or [float(config.noise.rate)]


def _student_noise_rates(config, rates: list[float]) -> list[float]:
    """The rates whose students run: sweep.student_noise_rates, or every rate when absent or empty."""
    chosen = _rate_tuple(config, "student_noise_rates")
    missing = [r for r in chosen if r not in rates]
    if missing:
        raise UserError(
            f"sweep.student_noise_rates {tuple(missing)} not in the swept noise rates {tuple(rates)}"
        )
    return chosen or rates


# ---------------------------------------------------------------- variant configs
def teacher_config(
    config, teacher: Teacher, seed: int, transition_file: str = ""
) -> ml_collections.ConfigDict:
    c = copy.deepcopy(config)
    c.loss.name = teacher.method
    c.loss.alpha = teacher.alpha
    c.loss.transition = "file" if teacher.estimated else "smoothing"
    c.loss.transition_file = transition_file
    c.distill.enabled = False
    c.train.seed = seed
    return c


def student_config(config, student: Student, seed: int, logits_dir: str) -> ml_collections.ConfigDict:
    c = copy.deepcopy(config)
    c.distill.enabled = True
    c.distill.logits_dir = logits_dir
    c.distill.smoothing = student.alpha if student.method == "ls" else 0.0
    c.distill.fc_alpha = student.alpha if student.method == "fc" else 0.0
    c.train.seed = seed
    return c


def _plan_setting(
    config,
    workdir: Path,
    teachers: list[Teacher],
    students: list[Student],
    seeds: list[int],
    add_to_plan,
    *,
    beam_args=(),
    log=print,
    tag: str = "",
) -> list[Stage]:
    """Adds one noise setting's stages (data, teachers, logits, students, evaluations); returns the evaluations.

    `tag` (e.g. "rho0.4") goes into the labels of the setting's stages when a sweep has several.
    """
    from beam_jobs import estimate_transition, export_logits, noisify
    from pipeline import evaluate, train

    noisify.validate_config(config)

    def add(stage: Stage) -> Stage:
        stage.tag = tag
        return add_to_plan(stage)

    data_fp = noisify.data_fingerprint(config)
    data = add(Stage(
        "noisify", noisify.data_artifact_name(config), noisify.data_artifact_path(config, workdir), data_fp, [],
        lambda s, force: noisify.noisify_stage(config, s.out_dir, force=force, beam_args=beam_args, log=log),
    ))  # fmt: skip

    def train_action(cfg, logits: Stage | None = None):
        def action(stage, force):
            return train.train_stage(
                cfg, data.out_dir, stage.out_dir, logits_dir=logits.out_dir if logits else None,
                force=force, log=log, fingerprint=stage.fingerprint,
            )  # fmt: skip

        return action

    teacher_stage: dict[tuple[Teacher, int], Stage] = {}
    export_stage: dict[tuple[Teacher, int], Stage] = {}
    estimate_stage: dict[int, Stage] = {}

    def exported(teacher: Teacher, seed: int) -> Stage:
        if (teacher, seed) not in export_stage:
            model = teacher_stage[(teacher, seed)]
            fp = export_logits.export_fingerprint(config, model.fingerprint, data_fp, "train")
            export_stage[(teacher, seed)] = add(Stage(
                "export", f"{model.name}-train", artifacts.artifact_dir(workdir, "logits", f"{model.name}-train", fp),
                fp, [model, data],
                lambda s, force, m=model: export_logits.export_stage(
                    config, m.out_dir, data.out_dir, s.out_dir, split="train", force=force,
                    beam_args=beam_args, log=log),
            ))  # fmt: skip
        return export_stage[(teacher, seed)]

    def add_teacher(teacher: Teacher, seed: int) -> Stage:
        if (teacher, seed) in teacher_stage:
            return teacher_stage[(teacher, seed)]
        if teacher.estimated:
            ce = add_teacher(Teacher("ce", 0.0), seed)
            if seed not in estimate_stage:
                logits = exported(Teacher("ce", 0.0), seed)
                fp = estimate_transition.estimate_fingerprint(config, logits.fingerprint)
                name = f"{ce.name}-p{config.estimate.percentile:g}"
                estimate_stage[seed] = add(Stage(
                    "estimate", name, artifacts.artifact_dir(workdir, "transition", name, fp), fp, [logits],
                    lambda s, force, lg=logits: estimate_transition.estimate_stage(
                        config, lg.out_dir, s.out_dir, force=force, beam_args=beam_args, log=log),
                ))  # fmt: skip
            est = estimate_stage[seed]
            cfg = teacher_config(config, teacher, seed, str(est.out_dir / "transition.json"))
            section = train.model_section(teacher_config(config, teacher, seed))
            fp = artifacts.fingerprint("train", section, {"input": data_fp, "transition": est.fingerprint})
            deps = [data, est]
        else:
            cfg = teacher_config(config, teacher, seed)
            fp = train.model_fingerprint(cfg, data_fp)
            deps = [data]
        name = train.model_name(cfg).replace("-file-", "-est-")
        stage = add(Stage(
            "train", name, artifacts.artifact_dir(workdir, "models", name, fp), fp, deps, train_action(cfg),
            {"role": "teacher", "method": teacher.method, "alpha": teacher.alpha, "seed": seed,
             "transition": "estimated" if teacher.estimated else "smoothing"},
        ))  # fmt: skip
        teacher_stage[(teacher, seed)] = stage
        return stage

    models: list[Stage] = []
    for seed in seeds:
        for teacher in teachers:
            models.append(add_teacher(teacher, seed))
    for seed in seeds:
        for student in students:
            add_teacher(student.teacher, seed)
            logits = exported(student.teacher, seed)
            cfg = student_config(config, student, seed, str(logits.out_dir))
            fp = train.model_fingerprint(cfg, logits.fingerprint)
            name = f"{train.model_name(cfg)}-from-{student.teacher.spec.replace(':', '')}"
            models.append(add(Stage(
                "train", name, artifacts.artifact_dir(workdir, "models", name, fp), fp, [data, logits],
                train_action(cfg, logits),
                {"role": "student", "method": student.method, "alpha": student.alpha, "seed": seed,
                 "teacher_method": student.teacher.method, "teacher_alpha": student.teacher.alpha,
                 "teacher_transition": "estimated" if student.teacher.estimated else "smoothing",
                 "student_method": student.method, "student_alpha": student.alpha,
                 "temperature": config.distill.temperature},
            )))  # fmt: skip
    # Teachers added only as dependencies (e.g. the ce teacher behind an estimated T) are evaluated too.
    for stage in teacher_stage.values():
        if stage not in models:
            models.append(stage)

    evaluations = []
    for model in models:
        fp = evaluate.evaluate_fingerprint(config, model.fingerprint, data_fp)
        evaluations.append(add(Stage(
            "evaluate", model.name, artifacts.artifact_dir(workdir, "eval", model.name, fp), fp, [model, data],
            lambda s, force, m=model: evaluate.evaluate_stage(
                config, m.out_dir, data.out_dir, s.out_dir, description=m.description, force=force, log=log),
            model.description,
        )))  # fmt: skip
    return evaluations


# ---------------------------------------------------------------- the plan
def plan(config: ml_collections.ConfigDict, workdir: str | Path, *, beam_args=(), log=print) -> list[Stage]:
    """Expands the config into stages in a runnable order. Only wiring: nothing runs here."""
    from pipeline import report

    workdir = Path(workdir)
    seeds = _seeds(config)
    teachers = [parse_teacher(s) for s in config.sweep.teachers]
    students = [parse_student(s) for s in config.sweep.students]
    if len(set(teachers)) != len(teachers):
        raise UserError(f"sweep.teachers has duplicates: {tuple(config.sweep.teachers)}")
    rates = _noise_rates(config)
    student_rates = _student_noise_rates(config, rates)
    stages: list[Stage] = []

    def add(stage: Stage) -> Stage:
        stages.append(stage)
        return stage

    evaluations: list[Stage] = []
    for rate in rates:
        setting = copy.deepcopy(config)
        setting.noise.rate = rate
        evaluations += _plan_setting(
            setting, workdir, teachers, students if rate in student_rates else [], seeds, add,
            beam_args=beam_args, log=log, tag=f"rho{rate:g}" if len(rates) > 1 else "",
        )  # fmt: skip
    fp = report.report_fingerprint(config, [e.fingerprint for e in evaluations])
    add(Stage(
        "report", config.name, artifacts.artifact_dir(workdir, "report", config.name, fp), fp, evaluations,
        lambda s, force: report.report_stage(config, [e.out_dir for e in evaluations], s.out_dir, force=force, log=log),
    ))  # fmt: skip
    return stages


def _cached(stage: Stage) -> bool:
    if not artifacts.is_complete(stage.out_dir):
        return False
    manifest = artifacts.read_manifest(stage.out_dir, what=f"{stage.kind} artifact", verify=False)
    return manifest.get("fingerprint") == stage.fingerprint


def describe_plan(stages: list[Stage]) -> list[str]:
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
    stages: list[Stage], *, force: bool = False, log=print, workdir: str | Path | None = None
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
        stage.action(stage, force)
        if stage.kind == "train":
            import keras

            keras.backend.clear_session()  # free the graph before the next model
        if workdir is not None:
            publish.record_time(workdir, stage, time.time() - t0)
        log(f"{prefix}: done in {time.time() - t0:.1f} s (total {time.time() - started:.1f} s)")
        ran.append(stage.label)
    return {"ran": ran, "cached": cached, "seconds": round(time.time() - started, 2)}


def run(argv=None) -> None:
    parser = stage_parser("run", __doc__.splitlines()[0])
    parser.add_argument(
        "--dry-run", action="store_true", help="print the plan (what runs, what is cached) and stop"
    )
    parser.add_argument(
        "--publish",
        metavar="DIR",
        help="after the run, copy the report (report.md, tables, figures, TensorBoard HParams) into DIR "
        "with stage_times.json/.md, the wall time of every stage and cell; DIR must be new, empty or "
        "a previous publish (other files in it are kept)",
    )
    args, config, beam_args = parse_stage_args(parser, argv, known_only=True)
    stages = plan(config, args.workdir, beam_args=beam_args)
    if args.publish:
        publish.check_destination(args.publish)  # before anything runs
    if args.dry_run:
        print(f"plan for {args.config} in {args.workdir} ({len(stages)} stages):")
        print("\n".join(describe_plan(stages)))
        if args.publish:
            print(f"then publish the report to {args.publish}")
        return
    workdir = Path(args.workdir)
    summary = execute(stages, force=args.force, workdir=args.workdir)
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
