"""Confirmation seeds (sweep.confirm_seeds) in the plan and in `smear run`, without training.

The selection seeds' evaluations are written by hand (complete artifacts at the planned
paths), so what is checked is the wiring: which cells the confirmation adds, at which alpha,
and that `smear run` plans them as soon as the selection is evaluated.
"""

from __future__ import annotations

import json
import re

import pytest

from label_smearing.core import artifacts
from label_smearing.core.config import load_config
from label_smearing.core.errors import UserError
from label_smearing.pipeline import run as run_module
from label_smearing.pipeline.plan import plan

SMOKE = "quickstart:smoke"
GRID = ["sweep.teachers=('ce', 'ls:0.1', 'ls:0.4', 'ls:-0.2', 'fc:0.4')", "sweep.students=()"]
CONFIRM = [*GRID, "sweep.seeds=(0, 1)", "sweep.confirm_seeds=(5, 6)"]
# Noisy-label validation accuracy by cell: LS chooses 0.4 (71 > 70), NLS its only alpha -0.2.
VALIDATION = {"ls0.1": 70.0, "ls0.4": 71.0, "ls-0.2": 60.0, "fc0.4": 65.0, "ce": 64.0}


def _fake_evaluation(node) -> None:
    """A complete evaluation artifact for a planned evaluation node, as the evaluate stage writes it."""
    spec = node.spec
    cell = spec.name.split("-s")[0].removeprefix("teacher-")
    metrics = {
        "description": spec.describe(),
        "setting": {"data": "fake"},
        "test": {"accuracy": 80.0, "nll": 0.6, "ece": 0.1},
        "validation": {
            "accuracy_noisy": VALIDATION.get(cell, 50.0) + 0.1 * spec.seed,
            "accuracy_clean": 75.0,
        },
    }
    out = artifacts.path(node.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    artifacts.atomic_write_json(out / "metrics.json", metrics)
    artifacts.write_manifest(out, stage="evaluate", fingerprint=node.fingerprint, config={})


def test_confirmation_seeds_are_planned_at_the_alpha_the_selection_chose(tmp_path):
    config = load_config(SMOKE, CONFIRM)
    first = plan(config, tmp_path)
    # Before the selection is evaluated: CE on the confirmation seeds, the rest pending, no report yet.
    trains = [n for n in first if n.kind == "train"]
    assert {(n.spec.method, n.spec.alpha, n.spec.seed) for n in trains if n.spec.seed in (5, 6)} == {
        ("ce", 0.0, 5),
        ("ce", 0.0, 6),
    }
    assert [n.kind for n in first].count("report") == 0
    assert [str(item).split(":")[0] for item in first.pending] == [
        "LS at its α chosen on validation, seeds 5, 6",
        "NLS at its α chosen on validation, seeds 5, 6",
        "FC at its α chosen on validation, seeds 5, 6",
    ]
    assert [item.trainings for item in first.pending] == [2, 2, 2]
    assert "(4 evaluations to go)" in str(first.pending[0])  # ls:0.1 and ls:0.4 on seeds 0 and 1
    for node in first:
        if node.kind == "evaluate" and node.spec.seed in (0, 1):
            _fake_evaluation(node)
    second = plan(config, tmp_path)
    assert not second.pending and second[-1].kind == "report"
    confirmed = {
        (n.spec.method, n.spec.alpha, n.spec.seed)
        for n in second
        if n.kind == "train" and n.spec.seed in (5, 6)
    }
    assert confirmed == {
        (method, alpha, seed)
        for seed in (5, 6)
        for method, alpha in (("ce", 0.0), ("ls", 0.4), ("ls", -0.2), ("fc", 0.4))
    }
    # Only the cells the confirmation needs: nothing at the other alphas, no students, nothing new for seeds 0, 1.
    assert {n.fingerprint for n in first} <= {n.fingerprint for n in second}
    # The report reads every evaluation, the confirmation's included.
    evaluated = {(e.spec.method, e.spec.alpha, e.spec.seed) for e in second[-1].inputs}
    assert confirmed <= evaluated and len(evaluated) == 5 * 2 + 4 * 2


def test_confirmation_seeds_must_be_fresh_and_need_a_validation_split(tmp_path):
    with pytest.raises(
        UserError, match=r"shares seeds \(1,\) with sweep.seeds: the confirmation needs fresh"
    ):
        plan(load_config(SMOKE, [*GRID, "sweep.seeds=(0, 1)", "sweep.confirm_seeds=(1, 2)"]), tmp_path)
    with pytest.raises(UserError, match="sweep.confirm_seeds has duplicates"):
        plan(load_config(SMOKE, [*GRID, "sweep.confirm_seeds=(2, 2)"]), tmp_path)
    with pytest.raises(UserError, match="needs data.validation_fraction > 0"):
        plan(
            load_config(SMOKE, [*GRID, "sweep.confirm_seeds=(2,)", "data.validation_fraction=0.0"]), tmp_path
        )


def test_smear_run_plans_the_confirmation_once_the_selection_is_evaluated(tmp_path, monkeypatch, capsys):
    """`smear run` executes the plan it has, then plans again and runs the confirmation cells."""
    batches = []

    def execute(stages, to_run, estimate, args, beam_args, source, damaged):
        ran = [s for s in stages if id(s) in to_run]
        batches.append(ran)
        for node in ran:
            if node.kind == "evaluate":
                _fake_evaluation(node)
            else:  # stands for the stage's artifact: complete, so the next plan sees it cached
                out = artifacts.path(node.out_dir)
                out.mkdir(parents=True, exist_ok=True)
                facts = {"counts": {"train": 4000}, "extra": {"num_classes": 10, "image_shape": [28, 28, 1]}}
                artifacts.write_manifest(
                    out, stage=node.kind, fingerprint=node.fingerprint, config={}, **facts
                )
        return {"ran": [n.label for n in ran], "cached": [], "seconds": 0.0}

    monkeypatch.setattr(run_module, "_execute", execute)
    args = ["--config", SMOKE, *[f"--config.{o}" for o in CONFIRM], "--workdir", str(tmp_path)]
    run_module.run(args)
    out = capsys.readouterr().out
    assert len(batches) == 2
    assert not any(n.kind == "report" for n in batches[0])
    second = {
        (n.kind, n.spec.method if n.spec else None, n.spec.alpha if n.spec else None) for n in batches[1]
    }
    assert (
        ("train", "ls", 0.4) in second and ("train", "fc", 0.4) in second and ("report", None, None) in second
    )
    assert all(n.spec is None or n.spec.seed in (5, 6) for n in batches[1])
    assert re.search(
        r"^run: about .+; then about \S+ \S+ for the confirmation runs at the chosen α$", out, re.M
    ), out
    assert "run: α chosen on the selection seeds: FC α=0.4, LS α=0.4, NLS α=-0.2\n" in out
    assert "run: confirmation: about " in out
    assert (
        json.loads((artifacts.path(batches[1][-1].out_dir) / "manifest.json").read_text())["stage"]
        == "report"
    )


def test_a_kubeflow_pipeline_with_confirmation_seeds_waits_for_the_selection(tmp_path, capsys):
    """The compiled pipeline is static: its confirmation cells need alpha chosen before it is compiled."""
    output = tmp_path / "pipeline.yaml"
    args = ["--config", SMOKE, *[f"--config.{o}" for o in CONFIRM], "--workdir", str(tmp_path / "work")]
    from label_smearing import cli

    assert cli.main(["run", *args, "--engine", "kfp", "--output", str(output)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and "sweep.confirm_seeds: the confirmation runs' α is chosen on the selection" in err[0]
    )
    assert "run the selection first" in err[0] and not output.exists()
