"""How long a plan will take, said before it runs and as it runs.

Each node that will run gets an estimate of its seconds:

- from this workdir's record (`<workdir>/stage_times.jsonl`, what `smear run` appends for each
  stage it ran): the mean time of the recorded nodes of the same kind in this plan; for a
  training, the mean seconds per unit of work (steps x batch x the model's relative cost,
  `training_work`), times the node's work;
- else a rough default: what each kind took on the reference machine (2 CPU cores, no GPU) in
  the published fmnist_paper:rho0.2 run (136 stages, 6,599 s; the mean of each kind's stages),
  a training scaled by its work against that run's ResNet-8 models (800 steps of 128: 107 s).

The defaults are rough by design: another machine, model or dataset size moves them by a
factor; the record of a workdir replaces them once a stage of the kind has run there.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

from label_smearing.core.registry import ESTIMATE_TRANSITION, EVALUATE, EXPORT_LOGITS, NOISIFY, REPORT, TRAIN
from label_smearing.core.spec import TEACHER
from label_smearing.pipeline import preflight, publish

if TYPE_CHECKING:
    from label_smearing.pipeline.plan import Node

# Means of the published fmnist_paper:rho0.2 run's stage times (results/fashion_mnist/rho0.2).
DEFAULT_SECONDS = {NOISIFY: 1.5, EXPORT_LOGITS: 2.3, ESTIMATE_TRANSITION: 1.0, EVALUATE: 7.7, REPORT: 4.5}
REFERENCE_TRAIN_SECONDS = 107.3  # a ResNet-8 model of that run: 800 steps of batch 128 on 28 x 28 x 1
REFERENCE_WORK = 800 * 128.0  # its `training_work`
LONG_PLAN_SECONDS = 3600  # a plan estimated longer than this is said before it starts


def training_work(config) -> float:
    """Steps x batch x the model's cost relative to a width-16 ResNet-8 on 28 x 28 images (layers x
    width^2 x pixels; a resnet_v2_50 counts as a ResNet-50 of width 64)."""
    m, d = config.model, config.data
    side = int(d.image_size) or preflight.SOURCE_SIDE.get(str(d.dataset), 32)
    if m.name == "cifar_resnet":
        depth, width = int(m.depth), int(m.width)
    else:
        depth, width = 50, 64
    cost = (depth / 8) * (width / 16) ** 2 * (side * side / (28 * 28))
    return float(config.train.steps) * float(config.train.batch_size) * cost


def _work(node: Node) -> float:
    return training_work(node.config) if node.kind == TRAIN else 1.0


class Estimate:
    """Per-node seconds for the nodes of a plan; `measured` says whether this workdir's record gave them."""

    def __init__(self, nodes: list[Node], workdir):
        # By <kind>/<name>: the record holds the paths it was written with, and a workdir may have moved.
        recorded = {_tail(out_dir): seconds for out_dir, seconds in publish.read_times(workdir).items()}
        rates: dict[str, list[float]] = {}
        for node in nodes:
            seconds = recorded.get(_tail(node.out_dir))
            if seconds is not None:
                rates.setdefault(node.kind, []).append(seconds / _work(node))
        self.rate = {kind: statistics.mean(values) for kind, values in rates.items()}
        self.seconds = {id(node): self._seconds(node) for node in nodes}

    def _seconds(self, node: Node) -> float:
        if node.kind in self.rate:
            return self.rate[node.kind] * _work(node)
        if node.kind == TRAIN:
            return REFERENCE_TRAIN_SECONDS * _work(node) / REFERENCE_WORK
        return DEFAULT_SECONDS.get(node.kind, 5.0)

    def measured(self, kinds) -> bool:
        return all(kind in self.rate for kind in kinds)

    def total(self, nodes: list[Node]) -> float:
        return sum(self.seconds[id(node)] for node in nodes)

    def pending(self, nodes: list[Node], pending) -> float:
        """Seconds for a plan's `Pending` confirmation cells: per training, the mean estimate of the
        plan's teacher trainings in the same noise setting, plus one evaluation's."""
        out = 0.0
        for item in pending:
            trains = [n for n in nodes if n.kind == TRAIN and n.tag == item.tag and n.spec.role == TEACHER]
            evaluations = [n for n in nodes if n.kind == EVALUATE and n.tag == item.tag]
            per = statistics.fmean(self.seconds[id(n)] for n in trains) if trains else 0.0
            per += statistics.fmean(self.seconds[id(n)] for n in evaluations) if evaluations else 0.0
            out += item.trainings * per
        return out

    def describe(self, nodes: list[Node]) -> str:
        """'about 1.8 h (from this workdir's stage times)' for the nodes that will run."""
        if not nodes:
            return "nothing to run"
        kinds = {node.kind for node in nodes}
        source = (
            "from the stage times recorded in this workdir"
            if self.measured(kinds)
            else "rough: from the reference machine's stage times"
            + (
                f", this workdir's for {', '.join(sorted(k for k in kinds if k in self.rate))}"
                if self.rate
                else ""
            )
        )
        return f"about {duration(self.total(nodes))} for {len(nodes)} stages ({source})"


def _tail(out_dir) -> str:
    return "/".join(str(out_dir).rstrip("/").split("/")[-2:])


def duration(seconds: float) -> str:
    """12 s, 4 min, 1.8 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
