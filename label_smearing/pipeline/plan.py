"""The plan as data: a config's sweep expanded into typed nodes, in a runnable order.

`plan(config, workdir)` only wires: per noise setting, the noisy data; per seed
and sweep entry, a teacher (and, for an estimated T, the baseline teacher's
logit export and the estimate); per student, its teacher's export and the
student; an evaluation per model; one report. Nothing runs and nothing is
written. Each `Node` has its kind, its `ModelSpec` (None for data and report),
its input nodes, its output `layout.Artifact` (directory + fingerprint), and
serialises to JSON (`to_json`) and to the standalone command that computes the
same artifact (`command`).

Optional noise-rate sweep (label_smearing/configs/fmnist_paper.py):
  sweep.noise_rates          e.g. (0.2, 0.4): the whole sweep once per rate, each its own
                             setting in the report; () = noise.rate only
  sweep.student_noise_rates  the rates whose students run; () = every rate
  sweep.redraw_noise         each training seed s draws its own noise too (noise.seed + s),
                             so the spread over seeds includes the noise draw's

Confirmation seeds (sweep.confirm_seeds, e.g. (3, 4, 5, 6, 7)): once the selection
seeds' (sweep.seeds) evaluations exist, each alpha-grid method's alpha is chosen
on their mean noisy-label validation accuracy, exactly as the report chooses it,
and the plan adds CE and each method at its chosen alpha on the confirmation
seeds, and nothing else. Until then those cells are `Plan.pending` and the plan
has no report: `smear run` plans again when the selection is done
(`run.run`), and a Kubeflow pipeline cannot be compiled yet.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import ml_collections

from label_smearing.core import artifacts, layout, registry
from label_smearing.core.errors import UserError
from label_smearing.core.registry import ESTIMATE_TRANSITION, EVALUATE, EXPORT_LOGITS, NOISIFY, REPORT, TRAIN
from label_smearing.core.spec import ESTIMATED, SMOOTHING, STUDENT, TEACHER, ModelSpec
from label_smearing.modeling.losses import CE, LOSSES


@dataclasses.dataclass(frozen=True)
class Pending:
    """Confirmation cells a plan will add once the selection seeds are evaluated: one method's
    `trainings` (and as many evaluations) at its alpha not chosen yet, in noise setting `tag`."""

    text: str
    trainings: int
    tag: str = ""

    def __str__(self) -> str:
        return self.text


class Plan(list):
    """The plan's nodes in a runnable order, and `pending`: what it will add once the selection
    seeds are evaluated (`Pending`, one per method)."""

    def __init__(self, nodes=(), pending=()):
        super().__init__(nodes)
        self.pending: list[Pending] = list(pending)


@dataclasses.dataclass(eq=False)
class Node:
    """One stage of the plan: what runs (a kind of `registry.STAGES`), on which inputs, into which artifact."""

    kind: str
    output: layout.Artifact
    inputs: list[Node]
    spec: ModelSpec | None = None
    tag: str = ""  # the noise setting (`rho0.4`) when a sweep has several
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)  # on top of the run's config
    flags: list[str] = dataclasses.field(default_factory=list)  # the standalone command's own flags
    config: ml_collections.ConfigDict | None = dataclasses.field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.output.name

    @property
    def fingerprint(self) -> str:
        return self.output.fingerprint

    @property
    def out_dir(self) -> Path | str:
        return self.output.path

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}" + (f" @{self.tag}" if self.tag else "")

    @property
    def stage(self) -> registry.StageKind:
        return registry.kind(self.kind)

    def input_of(self, kind: str) -> Node:
        return next(n for n in self.inputs if n.kind == kind)

    def request(self, *, force: bool = False, beam_args=(), log=print, command=()) -> registry.StageRequest:
        """What this node asks of its stage (`compute_planned`): its config, input directories and output
        (`command`: the standalone command that recomputes it, for its manifest)."""
        inputs: dict[str, list] = {}
        for node in self.inputs:
            inputs.setdefault(node.kind, []).append(node.out_dir)
        return registry.StageRequest(
            self.config, inputs, self.out_dir, self.fingerprint, self.name,
            None if self.spec is None else self.spec.describe(), force, beam_args, log, tuple(command),
        )  # fmt: skip

    def command(
        self, config_arg: str, workdir: str | Path, config_overrides: tuple[str, ...] = ()
    ) -> list[str]:
        """The standalone `smear` command that computes this node's artifact (same path, same fingerprint).

        With --force it recomputes it: what the artifact's manifest records (`remake`)."""
        args = ["smear", self.stage.command, "--config", config_arg]
        args += [f"--config.{item}" for item in config_overrides]
        args += [f"--config.{key}={_text(value)}" for key, value in self.overrides.items()]
        return args + ["--workdir", str(workdir), *self.flags]

    def remake(self, source: dict | None) -> list[str]:
        """The command that recomputes this node's artifact, from the plan's source
        ({"config", "overrides", "workdir"} as `smear run` was given them); [] without one."""
        if not source:
            return []
        return [*self.command(source["config"], source["workdir"], tuple(source["overrides"])), "--force"]

    def to_json(self, config_arg: str = "", workdir: str | Path = "", config_overrides=()) -> dict[str, Any]:
        out = {
            "kind": self.kind,
            "label": self.label,
            "spec": None if self.spec is None else {"sweep": self.spec.sweep, **self.spec.describe()},
            "setting": self.tag,
            "inputs": [str(n.out_dir) for n in self.inputs],
            "output": self.output.to_json(),
            "fingerprint": self.fingerprint,
            "overrides": {k: _text(v) for k, v in self.overrides.items()},
        }
        if config_arg:
            out["command"] = self.command(config_arg, workdir, config_overrides)
        return out


def _text(value: Any) -> str:
    """A config value as `--config.KEY=VALUE` text (`label_smearing.core.config` parses it back to the same value)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return repr(tuple(value))
    return str(value)


# ---------------------------------------------------------------- sweep checks
def _unique(values: list, what: str) -> list:
    if len(set(values)) != len(values):
        raise UserError(f"{what} has duplicates: {tuple(values)}")
    return values


def _rates(config, key: str) -> list[float]:
    try:
        rates = [float(r) for r in config.sweep[key]]
    except (TypeError, ValueError):
        raise UserError(
            f"sweep.{key} must be a tuple of noise rates, e.g. (0.2, 0.4); got {config.sweep[key]!r}"
        ) from None
    for r in rates:
        if not 0.0 <= r <= 1.0:
            raise UserError(f"sweep.{key}: noise rate must be in [0, 1], got {r}")
    return _unique(rates, f"sweep.{key}")


def noise_settings(config) -> tuple[list[float], list[float]]:
    """(every swept noise rate, the rates whose students run)."""
    rates = _rates(config, "noise_rates") or [float(config.noise.rate)]
    students = _rates(config, "student_noise_rates")
    missing = [r for r in students if r not in rates]
    if missing:
        raise UserError(
            f"sweep.student_noise_rates {tuple(missing)} not in the swept noise rates {tuple(rates)}"
        )
    return rates, students or rates


def sweep_specs(config, noise_rate: float | None = None) -> tuple[list[ModelSpec], list[ModelSpec]]:
    """The sweep's teachers and students, every seed, as specs (teachers first, seed by seed)."""
    seeds = _unique(list(config.sweep.seeds), "sweep.seeds")
    if not seeds:
        raise UserError("sweep.seeds is empty")
    _unique([ModelSpec.parse(s) for s in config.sweep.teachers], "sweep.teachers")
    temperature = float(config.distill.temperature)
    teachers = [
        ModelSpec.parse(s, seed=seed, noise_rate=noise_rate) for seed in seeds for s in config.sweep.teachers
    ]
    students = [
        ModelSpec.parse(s, role=STUDENT, seed=seed, temperature=temperature, noise_rate=noise_rate)
        for seed in seeds
        for s in config.sweep.students
    ]
    return teachers, students


# ---------------------------------------------------------------- wiring
class _Setting:
    """Builds one noise setting's nodes; each artifact is planned once and shared by its users."""

    def __init__(self, config, workdir: Path, nodes: list[Node], tag: str, overrides: dict):
        self.config, self.workdir, self.nodes = config, workdir, nodes
        self.tag, self.overrides = tag, overrides  # the setting's label and its config values
        self.models: dict[ModelSpec, Node] = {}
        self.exports: dict[ModelSpec, Node] = {}
        self.estimates: dict[int | None, Node] = {}
        self.datas: dict[int | None, Node] = {}
        self.evaluated: dict[ModelSpec, Node] = {}  # model spec -> its evaluation node

    def _add(self, kind, output, inputs, spec=None, *, overrides=None, flags=(), config=None) -> Node:
        node = Node(
            kind, output, inputs, spec, self.tag, {**self.overrides, **(overrides or {})}, list(flags),
            config if config is not None else self.config,
        )  # fmt: skip
        self.nodes.append(node)
        return node

    def data(self, seed: int | None) -> Node:
        """The noisy data a seed trains on: its own noise draw (noise.seed + seed) with sweep.redraw_noise."""
        from label_smearing.modeling.noise import NOISE_MODELS

        model = NOISE_MODELS.get(self.config.noise.model)
        redraw = self.config.sweep.redraw_noise and (model is None or model.uses_seed)
        key = seed if redraw else None
        if key not in self.datas:
            config, overrides = self.config, {}
            if key is not None:
                config = copy.deepcopy(self.config)
                config.noise.seed = int(self.config.noise.seed) + int(key)
                overrides = {"noise.seed": config.noise.seed}
            self.datas[key] = self._add(
                NOISIFY, layout.data(config, self.workdir), [], overrides=overrides, config=config
            )
        return self.datas[key]

    def export(self, spec: ModelSpec) -> Node:
        """The train-split logit export of a teacher."""
        if spec not in self.exports:
            model = self.teacher(spec)
            data = self.data(spec.seed)
            output = layout.logits(self.config, self.workdir, model.name, model.fingerprint, data.fingerprint)
            self.exports[spec] = self._add(
                EXPORT_LOGITS, output, [model, data], spec, overrides=model.overrides, config=model.config
            )
        return self.exports[spec]

    def estimate(self, seed: int | None, noise_rate: float | None) -> Node:
        """T estimated from the baseline teacher's exported logits (one per seed)."""
        if seed not in self.estimates:
            baseline = ModelSpec(TEACHER, CE, seed=seed, noise_rate=noise_rate)
            logits = self.export(baseline)
            output = layout.transition(self.config, self.workdir, baseline.name, logits.fingerprint)
            self.estimates[seed] = self._add(
                ESTIMATE_TRANSITION, output, [logits], baseline, flags=["--logits", str(logits.out_dir)]
            )
        return self.estimates[seed]

    def teacher(self, spec: ModelSpec) -> Node:
        if spec in self.models:
            return self.models[spec]
        data = self.data(spec.seed)
        if spec.transition == ESTIMATED:
            estimate = self.estimate(spec.seed, spec.noise_rate)
            paths = {"transition_file": str(artifacts.join(estimate.out_dir, layout.TRANSITION_FILE))}
            inputs, transition_fp = [data, estimate], estimate.fingerprint
        else:
            paths, inputs, transition_fp = {}, [data], None
        config = spec.apply(data.config, **paths)
        output = layout.model(config, self.workdir, spec, data.fingerprint, transition_fp)
        overrides = {**data.overrides, **spec.overrides(**paths)}
        node = self._add(TRAIN, output, inputs, spec, overrides=overrides, config=config)
        self.models[spec] = node
        return node

    def student(self, spec: ModelSpec) -> Node:
        logits, data = self.export(spec.teacher), self.data(spec.seed)
        paths = {"logits_dir": str(logits.out_dir)}
        config = spec.apply(data.config, **paths)
        output = layout.model(config, self.workdir, spec, logits.fingerprint)
        overrides = {**data.overrides, **spec.overrides(**paths)}
        node = self._add(TRAIN, output, [data, logits], spec, overrides=overrides, config=config)
        self.models[spec] = node
        return node

    def evaluations(self) -> list[Node]:
        """One evaluation per model not evaluated yet, teachers added only as dependencies (the baseline
        behind a T) included."""
        out = []
        for model in self.models.values():
            if model.spec in self.evaluated:
                continue
            data = self.data(model.spec.seed)
            output = layout.evaluation(
                self.config, self.workdir, model.name, model.fingerprint, data.fingerprint
            )
            out.append(
                self._add(
                    EVALUATE,
                    output,
                    [model, data],
                    model.spec,
                    overrides=data.overrides,
                    flags=["--model", str(model.out_dir)],
                    config=data.config,
                )  # fmt: skip
            )
            self.evaluated[model.spec] = out[-1]
        return out

    def confirmation(self, seeds: list[int], noise_rate: float | None) -> list[Pending]:
        """Adds CE and each alpha-grid method at its chosen alpha on the confirmation `seeds`; returns
        what waits for the selection seeds' evaluations (one line per method), nothing if none does."""
        from label_smearing.stages.report.selection import negative_column

        grid = [ModelSpec.parse(s) for s in self.config.sweep.teachers]
        families = sorted(
            {(s.method, 1 if s.alpha > 0 else -1) for s in grid
             if s.transition == SMOOTHING and LOSSES[s.method].uses_alpha and s.alpha != 0},
            key=lambda f: (list(LOSSES).index(f[0]), -f[1]),
        )  # fmt: skip
        specs = [
            ModelSpec(TEACHER, CE, seed=s, noise_rate=noise_rate)
            for s in seeds
            if any(g.method == CE for g in grid)
        ]
        pending = []
        for method, sign in families:
            alpha, waiting = self._chosen(method, sign)
            if alpha is None:
                name = LOSSES[method].label if sign > 0 else negative_column(method)
                plural = "s" if len(seeds) > 1 else ""
                text = (
                    f"{name} at its α chosen on validation, seed{plural} {', '.join(map(str, seeds))}"
                    + (f" @{self.tag}" if self.tag else "")
                    + f": {len(seeds)} training{plural} once the selection seeds are evaluated "
                    f"({waiting} evaluation{'s' if waiting != 1 else ''} to go)"
                )
                pending.append(Pending(text, len(seeds), self.tag))
                continue
            specs += [ModelSpec(TEACHER, method, alpha, seed=s, noise_rate=noise_rate) for s in seeds]
        for spec in specs:
            self.teacher(spec)
        return pending

    def _chosen(self, method: str, sign: int) -> tuple[float | None, int]:
        """(the alpha the report would choose for the family, or None; how many of its selection
        evaluations are not complete yet)."""
        from label_smearing.stages.report.evaluations import load_evaluation
        from label_smearing.stages.report.selection import Setting

        nodes = [
            node for spec, node in self.evaluated.items()
            if spec.role == TEACHER and spec.method == method and spec.transition == SMOOTHING
            and spec.alpha * sign > 0
        ]  # fmt: skip
        waiting = sum(not artifacts.is_complete(n.out_dir) for n in nodes)
        if waiting or not nodes:
            return None, waiting
        chosen = Setting(0, (), [load_evaluation(n.out_dir) for n in nodes]).chosen(method, sign=sign)
        return (None, 0) if chosen is None else (chosen.alpha, 0)


def confirm_seeds(config) -> list[int]:
    """sweep.confirm_seeds, checked: integers, unique, apart from sweep.seeds, and data with a
    validation split to choose alpha on."""
    try:
        seeds = [int(s) for s in config.sweep.get("confirm_seeds", ()) or ()]
    except (TypeError, ValueError):
        raise UserError(
            f"sweep.confirm_seeds must be a tuple of seeds, e.g. (3, 4, 5); got {config.sweep.confirm_seeds!r}"
        ) from None
    _unique(seeds, "sweep.confirm_seeds")
    shared = sorted(set(seeds) & {int(s) for s in config.sweep.seeds})
    if shared:
        raise UserError(
            f"sweep.confirm_seeds {tuple(seeds)} shares seeds {tuple(shared)} with sweep.seeds: the confirmation "
            "needs fresh seeds"
        )
    if seeds and not float(config.data.validation_fraction) > 0:
        raise UserError(
            "sweep.confirm_seeds needs data.validation_fraction > 0: the confirmation runs each method at the α "
            "chosen on validation, and test accuracy never chooses it"
        )
    return seeds


def plan(config: ml_collections.ConfigDict, workdir: str | Path) -> Plan:
    """Expands the config into nodes in a runnable order (each after its inputs). Writes nothing; reads
    the selection seeds' evaluations when there are confirmation seeds (`Plan.pending`).

    Raises:
      UserError: a bad sweep entry, seed list or noise-rate list, naming it.
    """
    from label_smearing.stages.noisify import validate_config

    workdir = artifacts.path(workdir)
    rates, student_rates = noise_settings(config)
    confirm = confirm_seeds(config)
    nodes: list[Node] = []
    evaluations: list[Node] = []
    pending: list[Pending] = []
    several = len(rates) > 1  # then each setting is tagged and sets noise.rate in its commands
    for rate in rates:
        setting = copy.deepcopy(config)
        setting.noise.rate = rate
        validate_config(setting)
        tag_rate = rate if several else None
        teachers, students = sweep_specs(setting, tag_rate)
        builder = _Setting(
            setting,
            workdir,
            nodes,
            f"rho{rate:g}" if several else "",
            {"noise.rate": rate} if several or rate != config.noise.rate else {},
        )
        for spec in teachers:
            builder.teacher(spec)
        if rate in student_rates:
            for spec in students:
                builder.student(spec)
        # Teachers first (in sweep order), then students, then those added only as dependencies.
        order = {s: i for i, s in enumerate(teachers + students)}
        builder.models = dict(sorted(builder.models.items(), key=lambda kv: order.get(kv[0], len(order))))
        evaluations += builder.evaluations()
        if confirm:
            pending += builder.confirmation(confirm, tag_rate)
            evaluations += builder.evaluations()
    if pending:  # the report waits for the confirmation cells
        return Plan(nodes, pending)
    output = layout.report(config, workdir, [e.fingerprint for e in evaluations])
    flags = ["--evaluations", *[str(e.out_dir) for e in evaluations]]
    nodes.append(Node(REPORT, output, evaluations, None, "", {}, flags, config))
    return Plan(nodes)


# ---------------------------------------------------------------- overrides that the plan would ignore
# Keys the plan sets per stage, and the sweep key that sets them (label_smearing.core.spec.ModelSpec.overrides,
# and noise.rate under sweep.noise_rates): an override of one changes no stage.
SWEEP_OWNED = {
    "loss.name": "sweep.teachers (METHOD[:ALPHA])",
    "loss.alpha": "sweep.teachers (METHOD:ALPHA)",
    "loss.transition": "sweep.teachers (fc:est for an estimated T)",
    "loss.transition_file": "sweep.teachers (fc:est: the estimate's T)",
    "train.seed": "sweep.seeds",
    "distill.enabled": "sweep.students (TEACHER>STUDENT)",
    "distill.logits_dir": "sweep.students (the teacher's exported logits)",
    "distill.smoothing": "sweep.students (TEACHER>ls:A)",
    "distill.fc_alpha": "sweep.students (TEACHER>fc:A)",
    "noise.rate": "sweep.noise_rates",
}


def check_overrides(
    spec: str, overrides: list[str], config: ml_collections.ConfigDict, nodes: list[Node], workdir: str | Path
) -> None:
    """Refuses, in one line, a `--config.KEY=VALUE` of `smear run` that changes no stage of the plan.

    An override is used when the plan without it has other fingerprints. One that restates the
    config's value, or whose key `label_smearing.core.layout.OUTPUT_NEUTRAL` declares changes
    no number (a batch size, where training runs, a task's resources), passes as it is.

    Raises:
      UserError: naming the override, and the sweep key that sets it per stage (SWEEP_OWNED) or
        that no stage of this plan reads it.
    """
    from label_smearing.core.config import load_config, to_plain

    fingerprints = sorted(n.fingerprint for n in nodes)
    for i, item in enumerate(overrides):
        key, _, text = item.partition("=")
        if layout.is_output_neutral(key):
            continue
        without = load_config(spec, overrides[:i] + overrides[i + 1 :])
        section, _, leaf = key.partition(".")
        if to_plain(without[section][leaf]) == to_plain(config[section][leaf]):
            continue  # it restates the value the config has
        try:
            unchanged = sorted(n.fingerprint for n in plan(without, workdir)) == fingerprints
        except UserError:
            continue  # the config without it is not a valid plan: it is used
        if unchanged:
            if key in SWEEP_OWNED:
                raise UserError(
                    f"--config.{key}={text} would be ignored: the plan sets {key} per model from "
                    f"{SWEEP_OWNED[key]}; set it there"
                )
            raise UserError(
                f"--config.{key}={text} changes no stage of this plan (none reads it here); drop it"
            )
