"""How long a plan will take: rough defaults on a new workdir, this workdir's stage times once recorded."""

import json
import re

import pytest

from label_smearing import cli
from label_smearing.core.config import load_config
from label_smearing.core.registry import EVALUATE, TRAIN
from label_smearing.pipeline import estimate, publish
from label_smearing.pipeline.plan import plan


def _record(workdir, node, seconds):
    path = workdir / publish.TIMES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps({"label": node.label, "kind": node.kind, "out_dir": str(node.out_dir),
                            "seconds": seconds}) + "\n")  # fmt: skip


def test_a_new_workdir_gets_the_reference_machines_times_scaled_by_training_work(tmp_path):
    # The published run of 6,599 s had no confirmation seeds: the same plan without them.
    nodes = plan(load_config("fmnist_paper:rho0.2", ["sweep.confirm_seeds=()"]), tmp_path)
    guess = estimate.Estimate(nodes, tmp_path)
    teacher = next(n for n in nodes if n.kind == TRAIN)
    assert guess.seconds[id(teacher)] == pytest.approx(
        estimate.REFERENCE_TRAIN_SECONDS
    )  # the reference itself
    assert (
        guess.seconds[id(next(n for n in nodes if n.kind == EVALUATE))] == estimate.DEFAULT_SECONDS[EVALUATE]
    )
    # The published run of this plan took 6,599 s of stage time; the defaults are its per-kind means.
    assert guess.total(nodes) == pytest.approx(6599, rel=0.05)
    assert "rough: from the reference machine's stage times" in guess.describe(nodes)
    longer = plan(
        load_config("fmnist_paper:rho0.2", ["train.steps=1600", "sweep.confirm_seeds=()"]), tmp_path / "o"
    )
    double = estimate.Estimate(longer, tmp_path / "o")
    assert double.seconds[id(longer[1])] == pytest.approx(2 * estimate.REFERENCE_TRAIN_SECONDS)


def test_recorded_stage_times_replace_the_defaults_for_their_kind(tmp_path):
    nodes = plan(load_config("quickstart:smoke", []), tmp_path)
    trains = [n for n in nodes if n.kind == TRAIN]
    _record(tmp_path, trains[0], 30.0)
    guess = estimate.Estimate(nodes, tmp_path)
    per_work = 30.0 / estimate.training_work(trains[0].config)
    for node in trains:  # every training from the recorded one's seconds per unit of work
        assert guess.seconds[id(node)] == pytest.approx(per_work * estimate.training_work(node.config))
    evaluation = next(n for n in nodes if n.kind == EVALUATE)
    assert guess.seconds[id(evaluation)] == estimate.DEFAULT_SECONDS[EVALUATE]  # none recorded: the default
    assert "this workdir's for train" in guess.describe(nodes)
    assert "from the stage times recorded in this workdir" in guess.describe(trains)


def test_duration_reads_in_seconds_minutes_or_hours():
    assert [estimate.duration(s) for s in (12, 89, 600, 5399, 6599)] == [
        "12 s",
        "89 s",
        "10 min",
        "90 min",
        "1.8 h",
    ]


def test_the_dry_run_gives_each_stage_and_the_whole_plan_an_estimate(tmp_path, capsys):
    args = ["run", "--config", "fmnist_paper:rho0.2", "--workdir", str(tmp_path), "--dry-run"]
    assert cli.main([*args, "--config.sweep.confirm_seeds=()"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert re.search(r"\] run\s+train teacher-ce-s0\s+~2 min ", out[2]), out[2]
    assert re.fullmatch(r"estimate: about 1\.8 h for 136 stages \(rough: .+\)", out[-1]), out[-1]
    # With its confirmation seeds the plan says what follows once alpha is chosen, outside the estimate.
    assert cli.main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"estimate: about 2\.0 h for 150 stages \(rough: .+\)", out[-5]), out[-5]
    assert out[-4].startswith("then LS at its α chosen on validation, seeds 3, 4, 5, 6, 7: 5 trainings once")
    # Each at 5 trainings of the teachers' mean estimate and 5 evaluations: (107.3 + 7.7) x 5 s = 9.6 min.
    assert out[-4].endswith("(9 evaluations to go) (~10 min)"), out[-4]
    assert out[-1] == "then the report; the confirmation adds about 29 min"


def test_under_jobs_the_estimate_says_it_is_stage_time_shared_among_the_workers(tmp_path, capsys):
    args = ["run", "--config", "quickstart:smoke", "--workdir", str(tmp_path), "--dry-run"]
    assert cli.main(args) == 0
    assert "--jobs" not in capsys.readouterr().out.splitlines()[-1]
    assert cli.main([*args, "--jobs", "2"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("estimate: about ") and last.endswith(
        "; that is stage time, which --jobs 2 shares among 2 workers"
    ), last
