"""`smear run`: the plan, caching, re-running only what changed, and resuming after SIGKILL."""

import json
import os
import re
import shutil
import subprocess
import sys

import keras
import pytest

from label_smearing import cli
from label_smearing.core import artifacts
from label_smearing.core.config import load_config
from label_smearing.core.errors import UserError
from label_smearing.pipeline import plan as pipeline_plan
from tests.idx_fixture import write_idx_dataset
from tests.processes import kill_at_marker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, "label_smearing", "configs", "quickstart.py")
FAST = [
    "--config.eval.figures=false",  # the figures have their own tests; 3-4 s per evaluation
    "--config.report.figures=false",  # and the report's: about 3 s per report
    "--config.train.steps=6",
    "--config.train.steps_per_epoch=3",
    "--config.train.batch_size=32",
    "--config.data.max_train_examples=256",
    "--config.data.max_test_examples=128",
]
SWEEP = ["--config.sweep.teachers=('ce', 'ls:0.1')", "--config.sweep.students=('ls:0.1>ce',)"]


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    return write_idx_dataset(tmp_path_factory.mktemp("idx"), num_train=256, num_test=128)


def _args(workdir, idx_dir, *extra):
    return [
        "run", "--config", f"{QUICKSTART}:smoke", "--workdir", str(workdir),
        "--config.data.source=idx", f"--config.data.source_dir={idx_dir}", *FAST, *extra,
    ]  # fmt: skip


def _ran(output):
    return [m.group(1) for m in re.finditer(r"^\[\d+/\d+\] (.+): running", output, re.M)]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, idx_dir):
    workdir = tmp_path_factory.mktemp("run")
    assert cli.main(_args(workdir, idx_dir, *SWEEP)) == 0
    return workdir


@pytest.mark.slow
def test_first_run_makes_every_artifact_and_a_report(finished):
    for kind, count in (("data", 1), ("models", 3), ("logits", 1), ("eval", 3), ("report", 1)):
        dirs = list((finished / kind).iterdir())
        assert len(dirs) == count, (kind, dirs)
        assert all(artifacts.is_complete(d) for d in dirs)
    (report,) = (finished / "report").iterdir()
    text = (report / "report.md").read_text()
    assert "Test accuracy" in text and "LS teacher" in text


@pytest.mark.slow
def test_second_run_trains_nothing(finished, idx_dir, capsys):
    capsys.readouterr()
    assert cli.main(_args(finished, idx_dir, *SWEEP)) == 0
    out = capsys.readouterr().out
    assert _ran(out) == []
    assert "0 stages ran, 9 cached" in out


@pytest.mark.slow
def test_publish_copies_the_report_and_the_time_of_every_stage(finished, idx_dir, tmp_path, capsys):
    dest = tmp_path / "results"
    assert cli.main(_args(finished, idx_dir, *SWEEP, "--publish", str(dest))) == 0
    (report,) = (finished / "report").iterdir()
    assert (dest / "report.md").read_text() == (report / "report.md").read_text()
    assert (dest / "tables" / "summary.csv").exists() and (dest / "tensorboard").is_dir()
    assert json.loads((dest / "manifest.json").read_text())["stage"] == "report"
    times = json.loads((dest / "stage_times.json").read_text())
    # Every stage ran in the fixture's first run, so each has its time although this run was all cached.
    assert times["stages"] == 9 and times["stages_without_time"] == 0
    assert times["total_seconds"] == pytest.approx(sum(r["seconds"] for r in times["per_stage"]), abs=0.05)
    cells = {row["cell"]: row for row in times["cells"]}
    ls = cells["teacher-ls0.1"]  # its training, logit export and evaluation, one seed
    assert ls["runs"] == 1 and ls["train"] > 0 and ls["export_logits"] > 0 and ls["evaluate"] > 0
    assert "student-T2-ce-from-ls0.1" in cells
    assert "| teacher-ls0.1 | 1 |" in (dest / "stage_times.md").read_text()
    # Republishing replaces the report's files and keeps the others.
    (dest / "COMMAND.txt").write_text("how this was made\n")
    (dest / "figures").mkdir(exist_ok=True)  # this run's report has none (report.figures=false)
    (dest / "figures" / "stale.png").write_bytes(b"old")
    assert cli.main(_args(finished, idx_dir, *SWEEP, "--publish", str(dest))) == 0
    assert (dest / "COMMAND.txt").exists() and not (dest / "figures" / "stale.png").exists()
    assert not (dest / ".publish-tmp").exists()


@pytest.mark.slow
def test_the_plan_as_json_gives_each_node_a_standalone_command_that_finds_the_same_artifact(
    finished, idx_dir, capsys
):
    capsys.readouterr()
    assert cli.main([*_args(finished, idx_dir, *SWEEP), "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    nodes = plan["nodes"]
    assert [n["kind"] for n in nodes].count("train") == 3 and nodes[-1]["kind"] == "report"
    teacher = next(n for n in nodes if n["kind"] == "train" and n["spec"]["sweep"] == "ls:0.1")
    assert teacher["spec"]["role"] == "teacher" and teacher["spec"]["alpha"] == 0.1
    assert teacher["output"]["path"].endswith(teacher["fingerprint"][:10])
    assert "--config.loss.name=ls" in teacher["command"] and "--config.loss.alpha=0.1" in teacher["command"]
    before = sorted(str(p) for p in finished.glob("*/*"))
    # Each standalone command lands on the node's own artifact: complete, so it is refused or found cached.
    for node in nodes:
        command = node["command"]
        assert command[0] == "smear"
        status = cli.main(command[1:])
        out, err = capsys.readouterr()
        assert node["output"]["path"] in out + err, (node["label"], out, err)
        assert status == 0 or "already holds a complete artifact" in err, (node["label"], err)
    assert sorted(str(p) for p in finished.glob("*/*")) == before  # no command made a new artifact


def test_artifacts_of_an_earlier_compute_version_are_recomputed_with_a_note(tmp_path, idx_dir, capsys):
    # A complete artifact as version 0.1.0 wrote it (then every kind's compute version), where noisify's was.
    old = tmp_path / "data" / "fashion_mnist-symmetric0.2-s0-0123456789"
    old.mkdir(parents=True)
    (old / "manifest.json").write_text(json.dumps({"stage": "noisify", "package_version": "0.1.0"}))
    capsys.readouterr()
    assert cli.main([*_args(tmp_path, idx_dir, *SWEEP), "--dry-run"]) == 0
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if "earlier compute version" in line]
    assert notes == [
        f"run: note: {tmp_path} holds artifacts of an earlier compute version (1 noisify of version 0.1.0); "
        "those stages and everything downstream are recomputed, and the old artifacts are left in place"
    ]
    assert " cached " not in out and out.count(" run ") == 9  # nothing of the old workdir is read


def test_no_validation_split_is_said_at_plan_time(tmp_path, idx_dir, capsys):
    capsys.readouterr()
    assert cli.main([*_args(tmp_path, idx_dir, *SWEEP), "--dry-run"]) == 0
    assert "validation_fraction=0" not in capsys.readouterr().out
    assert (
        cli.main([*_args(tmp_path, idx_dir, *SWEEP), "--dry-run", "--config.data.validation_fraction=0"]) == 0
    )
    notes = [line for line in capsys.readouterr().out.splitlines() if "validation_fraction=0" in line]
    assert notes == [
        "run: note: data.validation_fraction=0 holds out no validation split, so the report chooses no alpha "
        "(never on test): Table 2 shows every alpha, and the claims that need a choice are left out"
    ]
    assert not (tmp_path / "data").exists()


def test_publish_refuses_a_directory_it_did_not_write_before_running(tmp_path, idx_dir, capsys):
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "notes.txt").write_text("keep me")
    workdir = tmp_path / "work"
    assert cli.main(_args(workdir, idx_dir, *SWEEP, "--publish", str(dest))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not empty and holds no published report" in err[0]
    assert not workdir.exists() and os.listdir(dest) == ["notes.txt"]


@pytest.mark.slow
def test_changing_one_alpha_reruns_only_that_variant_and_what_follows(finished, idx_dir, tmp_path, capsys):
    workdir = tmp_path / "copy"
    shutil.copytree(finished, workdir)
    changed = ["--config.sweep.teachers=('ce', 'ls:0.2')", "--config.sweep.students=('ls:0.2>ce',)"]
    capsys.readouterr()
    assert cli.main(_args(workdir, idx_dir, *changed, "--dry-run")) == 0
    plan = capsys.readouterr().out
    assert re.search(r"cached\s+train teacher-ce-s0 ", plan) and re.search(
        r"run\s+train teacher-ls0.2-s0", plan
    )
    assert cli.main(_args(workdir, idx_dir, *changed)) == 0
    assert sorted(_ran(capsys.readouterr().out)) == sorted([
        "train teacher-ls0.2-s0",
        "export_logits teacher-ls0.2-s0-train",
        "train student-T2-ce-s0-from-ls0.2",
        "evaluate teacher-ls0.2-s0",
        "evaluate student-T2-ce-s0-from-ls0.2",
        "report quickstart",
    ])  # fmt: skip
    # The old variant's artifacts are still there, untouched.
    assert len(list((workdir / "models").iterdir())) == 5


def _replace_weights(model_dir):
    """What a retraining with another thread count leaves: the same fingerprint, other weights."""
    model = keras.saving.load_model(model_dir / "model.keras", compile=False)
    model.set_weights([w + 0.01 for w in model.get_weights()])
    model.save(model_dir / "model.keras")
    manifest = json.loads((model_dir / "manifest.json").read_text())
    for rel, entry in manifest["files"].items():
        entry.update(sha256=artifacts.sha256_file(model_dir / rel), bytes=(model_dir / rel).stat().st_size)
    (model_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))


@pytest.mark.slow
def test_a_replaced_teacher_recomputes_what_it_fed_and_nothing_else(finished, idx_dir, tmp_path, capsys):
    workdir = tmp_path / "copy"  # a copy checks its own inputs, not the ones of the workdir it came from
    shutil.copytree(finished, workdir)
    (teacher,) = (workdir / "models").glob("teacher-ls0.1-s0-*")
    _replace_weights(teacher)
    capsys.readouterr()
    assert cli.main(_args(workdir, idx_dir, *SWEEP, "--dry-run")) == 0
    plan = capsys.readouterr().out
    assert re.search(r"cached\s+train teacher-ls0.1-s0 ", plan), plan
    assert re.search(r"stale \(input replaced\)\s+export_logits teacher-ls0.1-s0-train", plan), plan
    assert re.search(r"stale \(input reruns\)\s+report quickstart", plan), plan
    assert cli.main(_args(workdir, idx_dir, *SWEEP)) == 0
    out = capsys.readouterr().out
    assert sorted(_ran(out)) == sorted([
        "export_logits teacher-ls0.1-s0-train",
        "train student-T2-ce-s0-from-ls0.1",
        "evaluate teacher-ls0.1-s0",
        "evaluate student-T2-ce-s0-from-ls0.1",
        "report quickstart",
    ])  # fmt: skip
    assert re.search(
        r"stale, recomputing it: its input model \S+teacher-ls0.1-s0-\S+ was replaced since", out
    ), out
    assert re.search(
        r"^run: about \d+ s for 5 stages \(from the stage times recorded in this workdir\)", out, re.M
    )
    assert re.search(r": done in [\d.]+ s \(\d+ left, about \d+ s to go, total", out), out
    assert cli.main(_args(workdir, idx_dir, *SWEEP)) == 0  # and then all is current again
    assert _ran(capsys.readouterr().out) == []


@pytest.mark.slow
def test_verify_lists_a_damaged_artifact_with_its_command_and_run_verify_recomputes_it(
    finished, idx_dir, tmp_path, capsys
):
    workdir = tmp_path / "copy"
    shutil.copytree(finished, workdir)
    assert cli.main(["verify", str(workdir)]) == 0
    (teacher,) = (workdir / "models").glob("teacher-ce-s0-*")
    with open(teacher / "model.keras", "r+b") as f:  # a flipped byte: the same size, still "complete"
        f.seek(50)
        byte = f.read(1)
        f.seek(50)
        f.write(bytes([byte[0] ^ 1]))
    (evaluation,) = (workdir / "eval").glob("teacher-ls0.1-s0-*")
    (evaluation / "metrics.json").unlink()  # a deleted file: a stat sees it
    capsys.readouterr()
    assert cli.main(["verify", str(workdir)]) == 2
    out, err = capsys.readouterr()
    assert f"damaged: {teacher}: artifact file {teacher / 'model.keras'} does not match its checksum" in out
    assert f"damaged: {evaluation}: artifact file missing: {evaluation / 'metrics.json'}" in out
    command = re.search(r"damaged: .*teacher-ce.*\n  recompute it: (.+)", out).group(1)
    assert command.startswith("smear train --config ") and command.endswith(" --force"), command
    assert "2 of 9 artifacts are damaged" in err
    with pytest.raises(UserError, match=re.escape(f"recompute it: {command}")):  # what a reader says
        artifacts.read_manifest(teacher)

    assert cli.main(_args(workdir, idx_dir, *SWEEP, "--dry-run")) == 0  # without --verify: stats only
    plan = capsys.readouterr().out
    assert re.search(r"cached\s+train teacher-ce-s0 ", plan) and re.search(
        r"damaged\s+evaluate teacher-ls0.1", plan
    )
    assert cli.main(_args(workdir, idx_dir, *SWEEP, "--verify", "--dry-run")) == 0
    plan = capsys.readouterr().out
    assert re.search(r"damaged\s+train teacher-ce-s0 ", plan), plan
    assert re.search(r"stale \(input reruns\)\s+evaluate teacher-ce-s0 ", plan), plan
    assert cli.main(_args(workdir, idx_dir, *SWEEP, "--verify")) == 0
    ran = _ran(capsys.readouterr().out)
    expected = [
        "evaluate teacher-ce-s0",
        "evaluate teacher-ls0.1-s0",
        "report quickstart",
        "train teacher-ce-s0",
    ]
    assert sorted(ran) == expected, ran
    assert cli.main(["verify", str(workdir)]) == 0


_HANG_IN_LS_TEACHER = """
import sys, time
from label_smearing.stages.train import WholeFileBackup as BackupAndRestore  # training's back-up
save = BackupAndRestore._save_model
def save_then_hang(self):
    save(self)
    if "teacher-ls" in str(self.backup_dir) and self._current_epoch >= 1:
        print("BACKED-UP", flush=True)
        time.sleep(600)
BackupAndRestore._save_model = save_then_hang
from label_smearing.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_sigkill_during_training_resumes_from_checkpoint(tmp_path, idx_dir):
    args = _args(tmp_path, idx_dir, "--config.sweep.teachers=('ce', 'ls:0.1')", "--config.sweep.students=()")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    kill_at_marker(_HANG_IN_LS_TEACHER, args, "BACKED-UP", timeout=300)
    (partial,) = (tmp_path / "models").glob("teacher-ls*")
    assert not artifacts.is_complete(partial) and (partial / "backup").is_dir()
    (finished_teacher,) = (tmp_path / "models").glob("teacher-ce*")
    assert artifacts.is_complete(finished_teacher)

    second = subprocess.run([sys.executable, "-m", "label_smearing.cli", *args], capture_output=True, text=True,
                            env=env, cwd=ROOT, timeout=600)  # fmt: skip
    assert second.returncode == 0, second.stderr[-2000:]
    out = second.stdout
    assert (
        "train teacher-ce-s0: cached" in out and "noisify" in out and _ran(out)[0] == "train teacher-ls0.1-s0"
    )
    assert re.search(r"resuming from step 3 of 6", out), out
    assert json.loads((partial / "history.json").read_text())["resumed_from_step"] == 3
    (report,) = (tmp_path / "report").iterdir()
    assert artifacts.is_complete(report)


def test_estimated_t_variants_wire_an_estimate_from_the_ce_teacher(tmp_path, idx_dir):
    config = load_config(
        f"{QUICKSTART}:smoke",
        ["sweep.teachers=('fc:est', 'bc:est')", "sweep.students=()", "sweep.seeds=(0, 1)"],
    )
    stages = pipeline_plan.plan(config, tmp_path)
    labels = [s.label for s in stages]
    for seed in (0, 1):
        estimate = next(s for s in stages if s.kind == "estimate_transition" and f"-s{seed}-" in s.name)
        assert [d.label for d in estimate.inputs] == [f"export_logits teacher-ce-s{seed}-train"]
        fc = next(s for s in stages if s.label == f"train teacher-fc-est-s{seed}")
        assert estimate in fc.inputs
        assert labels.index(estimate.label) < labels.index(fc.label)
    assert sum(s.kind == "estimate_transition" for s in stages) == 2  # one per seed, shared by fc and bc
    assert sum(s.kind == "evaluate" for s in stages) == 6  # fc, bc and their ce teacher, per seed


@pytest.mark.parametrize(
    "teachers, students, message",
    [
        ("('xx',)", "()", "unknown method 'xx'"),
        ("('ls',)", "()", "ls needs an alpha"),
        ("('ls:1.5',)", "()", "alpha must be in (-inf, 1)"),
        ("('ls:0.1', 'ls:0.1')", "()", "duplicates"),
        ("('ce',)", "('ce',)", "expected TEACHER>STUDENT"),
        ("('ce',)", "('ce>bc:0.1',)", "unknown student method 'bc'"),
    ],
)
def test_bad_sweep_entries_are_one_line_errors(tmp_path, teachers, students, message):
    config = load_config(f"{QUICKSTART}:smoke", [f"sweep.teachers={teachers}", f"sweep.students={students}"])
    with pytest.raises(UserError, match=re.escape(message)):
        pipeline_plan.plan(config, tmp_path)


FMNIST_PAPER = os.path.join(ROOT, "label_smearing", "configs", "fmnist_paper.py")


def test_noise_rates_plan_one_setting_per_rate_with_students_where_asked(tmp_path):
    config = load_config(f"{FMNIST_PAPER}:smoke")
    assert tuple(config.sweep.noise_rates) == (0.2, 0.4) and tuple(config.sweep.student_noise_rates) == (0.2,)
    stages = pipeline_plan.plan(config, tmp_path)
    labels = [s.label for s in stages]
    assert len(set(labels)) == len(labels)  # the @rho tag keeps the two settings' labels apart
    data = [s for s in stages if s.kind == "noisify"]
    assert [d.name for d in data] == ["fashion_mnist-symmetric0.2-s0", "fashion_mnist-symmetric0.4-s0"]
    teachers = len(config.sweep.teachers) * len(config.sweep.seeds)
    students = len(config.sweep.students) * len(config.sweep.seeds)
    for rate, data_stage in zip(("0.2", "0.4"), data):
        in_setting = [s for s in stages if s.tag == f"rho{rate}"]
        trains = [s for s in in_setting if s.kind == "train"]
        assert all(data_stage in s.inputs for s in trains)
        assert sum(s.spec.role == "student" for s in trains) == (students if rate == "0.2" else 0)
        assert sum(s.spec.role == "teacher" for s in trains) == teachers
    report = stages[-1]
    assert report.kind == "report" and len(report.inputs) == sum(s.kind == "evaluate" for s in stages)


@pytest.mark.parametrize("config", ["fmnist_paper", "fmnist_beyond:instance"])
def test_one_noise_rate_plans_the_same_artifacts_as_its_half_of_both(tmp_path, config):
    """So a grid too long for one session can run one rate per publish directory."""
    spec = config + ("," if ":" in config else ":")

    def artifacts_of(arg):
        return {
            s.out_dir for s in pipeline_plan.plan(load_config(spec + arg), tmp_path) if s.kind != "report"
        }

    low, high = artifacts_of("rho0.2,smoke"), artifacts_of("rho0.4,smoke")
    assert low and high and not low & high
    assert low | high == artifacts_of("smoke")


def test_without_noise_rates_the_plan_is_one_untagged_setting(tmp_path):
    stages = pipeline_plan.plan(load_config(f"{FMNIST_PAPER}:smoke", ["sweep.noise_rates=()"]), tmp_path)
    assert [s.name for s in stages if s.kind == "noisify"] == ["fashion_mnist-symmetric0.2-s0"]
    assert not any(s.tag for s in stages) and "@" not in " ".join(s.label for s in stages)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["sweep.noise_rates=(0.2, 1.5)"], "sweep.noise_rates: noise rate must be in [0, 1], got 1.5"),
        (["sweep.noise_rates=(0.2, 0.2)"], "sweep.noise_rates has duplicates"),
        (
            ["sweep.student_noise_rates=(0.3,)"],
            "sweep.student_noise_rates (0.3,) not in the swept noise rates",
        ),
    ],
)
def test_bad_noise_rates_are_one_line_errors(tmp_path, overrides, message):
    with pytest.raises(UserError, match=re.escape(message)):
        pipeline_plan.plan(load_config(f"{FMNIST_PAPER}:smoke", overrides), tmp_path)
    assert not any(tmp_path.iterdir())  # planning writes nothing


@pytest.mark.slow
def test_two_noise_rates_run_into_one_report_with_two_settings(tmp_path, idx_dir):
    # CE alone: a teacher and a student per rate are what the settings need (the claims table has
    # its own tests, and the finished run above checks a report with one).
    sweep = ["--config.sweep.teachers=('ce',)", "--config.sweep.students=('ce>ce',)"]
    args = [
        "run", "--config", f"{FMNIST_PAPER}:smoke", "--workdir", str(tmp_path),
        "--config.data.source=idx", f"--config.data.source_dir={idx_dir}", *FAST, *sweep,
    ]  # fmt: skip
    assert cli.main(args) == 0
    (report,) = (tmp_path / "report").iterdir()
    text = (report / "report.md").read_text()
    assert "## Setting 1: fashion_mnist, symmetric noise 0.2;" in text
    assert "## Setting 2: fashion_mnist, symmetric noise 0.4;" in text
    setting1, setting2 = text.split("## Setting 2")
    assert "### All teachers" in setting1 and "### All students" in setting1
    assert "### All teachers" in setting2 and "### All students" not in setting2


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.optimizer=adam", "unknown train.optimizer 'adam'"),
        (
            "train.batch_size=100000",
            "train.batch_size=100000 is larger than the training split (256 training",
        ),
        ("eval.batch_size=0", "eval.batch_size must be >= 1, got 0"),
        (
            "eval.projection_classes=(0, 1, 12)",
            "eval.projection_classes must be 3 distinct classes in [0, 10)",
        ),
        ("export.batch_size=0", "export.batch_size must be >= 1, got 0"),
        ("estimate.percentile=101", "estimate.percentile must be in [0, 100]"),
    ],
)
def test_every_stage_checks_its_config_at_plan_time_and_nothing_is_written(
    tmp_path, idx_dir, capsys, override, message
):
    workdir = tmp_path / "w"
    sweep = "--config.sweep.teachers=('ce', 'fc:est')"  # an estimate, an export and a student's teacher
    assert cli.main(_args(workdir, idx_dir, sweep, f"--config.{override}", "--dry-run")) == 2
    assert message in capsys.readouterr().err
    assert cli.main(_args(workdir, idx_dir, sweep, f"--config.{override}")) == 2
    assert message in capsys.readouterr().err
    assert not workdir.exists()


def test_a_batch_that_does_not_fit_in_memory_is_refused_at_plan_time(tmp_path, idx_dir, capsys, monkeypatch):
    from label_smearing.core import resources

    monkeypatch.setattr(resources, "available_memory", lambda: (50 << 20, "a 50 MiB test limit"))
    workdir = tmp_path / "w"
    assert cli.main(_args(workdir, idx_dir, "--config.train.batch_size=256")) == 2
    err = capsys.readouterr().err
    assert "train.batch_size=256 does not fit in memory" in err and "a 50 MiB test limit" in err, err
    assert not workdir.exists()
