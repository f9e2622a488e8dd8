"""Tests for label_smearing.stages.report on hand-written evaluations (tests/fixtures/report/).

The fixture evaluations hold per-seed numbers chosen by hand (validation accuracy 3 points below
test on the noisy labels, 1 on the clean ones); expected_report.md holds the tables computed from
them by hand, e.g. LS alpha = 0.2 test accuracy 84.20 and 83.60 -> mean 83.90, sample std
|84.20 - 83.60| / sqrt(2) = 0.4243 -> "83.90 ± 0.42"; the claims table too: claim 1, LS alpha = 0.2
(chosen on validation) against CE 80.10 and 80.50 per seed: differences 4.10 and 3.10, mean 3.60,
sd 0.7071, t(0.975, 1) = 12.706, half-width 12.706 x 0.7071 / sqrt(2) = 6.35 -> [-2.75, +9.95],
"inconclusive".
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from label_smearing import cli
from label_smearing.core import artifacts, layout
from label_smearing.core.config import load_config
from label_smearing.core.errors import UserError
from label_smearing.core.layout import report_fingerprint
from label_smearing.stages.report import report_stage

FIXTURES = Path(__file__).parent / "fixtures" / "report"
CONFIG = str(Path(__file__).resolve().parents[1] / "label_smearing" / "configs" / "quickstart.py") + ":smoke"


def _eval_artifact(directory: Path, metrics: dict) -> Path:
    directory.mkdir(parents=True)
    artifacts.atomic_write_json(directory / "metrics.json", metrics)
    artifacts.write_manifest(
        directory, stage="evaluate", fingerprint=artifacts.fingerprint("evaluate", directory.name), config={}
    )
    return directory


def _fixture_evaluations(workdir: Path) -> list[Path]:
    return [
        _eval_artifact(workdir / "eval" / src.name, json.loads((src / "metrics.json").read_text()))
        for src in sorted((FIXTURES / "evaluations").iterdir())
    ]


@pytest.fixture(scope="module")
def fixture_report(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("report")
    dirs = _fixture_evaluations(workdir)
    config = load_config(CONFIG)
    lines = []
    manifest = report_stage(config, dirs, workdir / "report", log=lines.append)
    return {
        "workdir": workdir,
        "dirs": dirs,
        "out": workdir / "report",
        "manifest": manifest,
        "config": config,
    }


def test_report_reproduces_the_hand_computed_tables(fixture_report):
    expected = (FIXTURES / "expected_report.md").read_text()
    got = (fixture_report["out"] / "report.md").read_text()
    assert got.splitlines() == expected.splitlines()


def test_csv_tables_hold_the_same_cells(fixture_report):
    tables = fixture_report["out"] / "tables"
    # Table 5 by hand: vanilla 81.00, 81.60 -> 81.30 ± 0.42; LS teacher best is alpha 0.2 (one seed, 84.70);
    # FC teacher 83.00, 83.80 -> 83.40 ± 0.57 (0.8 / sqrt 2 = 0.566); no FC student.
    assert (tables / "table5.csv").read_text().splitlines() == [
        "setting,temperature,vanilla teacher,LS teacher,LS student,FC teacher,FC student",
        "1,2,81.30 ± 0.42,84.70 ± — (α = 0.2),82.00 ± — (α = 0.1),83.40 ± 0.57 (α = 0.1),—",
    ]
    # Table 4 by hand: FC alpha 0.2 ECE 0.200, 0.220 -> 0.210 ± 0.014.
    assert "1,0.2,0.155 ± 0.007,0.210 ± 0.014" in (tables / "table4.csv").read_text().splitlines()
    summary = (tables / "summary.csv").read_text().splitlines()
    ce_accuracy = [row for row in summary if ",teacher,ce," in row and ",test/accuracy," in row]
    assert len(ce_accuracy) == 1
    *_, seeds, _, n, mean, std, diverged = ce_accuracy[0].split(",")
    assert diverged == ""
    # 80.10 and 80.50: mean 80.3, sample std 0.4 / sqrt(2) = 0.282842712...
    assert (
        (seeds, n) == ("0 1", "2")
        and float(mean) == pytest.approx(80.3)
        and float(std) == pytest.approx(0.2828427125)
    )


def test_figures_are_real_images(fixture_report):
    for name in ("accuracy_vs_alpha", "student_vs_teacher_alpha"):
        png = fixture_report["out"] / "figures" / f"{name}.png"
        assert png.stat().st_size > 10_000 and png.with_suffix(".svg").is_file()
        image = matplotlib.image.imread(png)
        assert image.shape[0] >= 300 and image[..., :3].std() > 0.05


def test_tensorboard_hparams_has_one_run_per_evaluation(fixture_report):
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
    from tensorboard.plugins.hparams import plugin_data_pb2

    multiplexer = EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(fixture_report["out"] / "tensorboard"))
    multiplexer.Reload()
    content = multiplexer.PluginRunToTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["."]["_hparams_/experiment"]).experiment
    assert {h.name for h in experiment.hparam_infos} >= {"method", "alpha", "seed", "role"}
    assert {m.name.tag for m in experiment.metric_infos} == {"test/accuracy", "test/ece", "test/nll"}
    runs = {run for run in content if run != "."}
    assert runs == {d.name for d in fixture_report["dirs"]}
    start = plugin_data_pb2.HParamsPluginData.FromString(
        content["teacher-ls0.2-s1"]["_hparams_/session_start_info"]
    ).session_start_info
    assert start.hparams["method"].string_value == "ls" and start.hparams["alpha"].number_value == 0.2
    import tensorflow as tf

    accuracy = tf.make_ndarray(multiplexer.Tensors("teacher-ls0.2-s1", "test/accuracy")[0].tensor_proto)
    assert float(accuracy) == pytest.approx(83.60, abs=1e-4)


def test_cached_and_fingerprint_follows_the_inputs(fixture_report):
    lines = []
    again = report_stage(
        fixture_report["config"], fixture_report["dirs"], fixture_report["out"], log=lines.append
    )
    assert again["created"] == fixture_report["manifest"]["created"] and lines[0].startswith("report: cached")
    fps = [artifacts.read_manifest(d)["fingerprint"] for d in fixture_report["dirs"]]
    assert report_fingerprint(fixture_report["config"], fps) == report_fingerprint(
        fixture_report["config"], fps[::-1]
    )
    assert report_fingerprint(fixture_report["config"], fps[1:]) != report_fingerprint(
        fixture_report["config"], fps
    )


def test_per_model_figures_are_copied_and_a_newer_duplicate_wins(tmp_path):
    src = FIXTURES / "evaluations"
    ls0 = json.loads((src / "teacher-ls0.1-s0" / "metrics.json").read_text())
    ls1 = json.loads((src / "teacher-ls0.1-s1" / "metrics.json").read_text())
    ls0["plots"] = {"reliability": "plots/reliability.png"}
    first = _eval_artifact(tmp_path / "eval" / "a-ls0.1-s0", ls0)
    (first / "plots").mkdir()
    shutil.copyfile(FIXTURES / "tiny.png", first / "plots" / "reliability.png")
    artifacts.write_manifest(first, stage="evaluate", fingerprint="f" * 64, config={})
    second = _eval_artifact(tmp_path / "eval" / "b-ls0.1-s1", ls1)
    time.sleep(1.1)  # manifests' "created" has one-second resolution
    newer = _eval_artifact(
        tmp_path / "eval" / "c-ls0.1-s1-rerun", {**ls1, "test": {**ls1["test"], "accuracy": 85.0}}
    )
    report_stage(load_config(CONFIG), [first, second, newer], tmp_path / "report", log=lambda _: None)
    text = (tmp_path / "report" / "report.md").read_text()
    # LS 0.1 over seeds 0 and 1 uses the rerun: 83.00 and 85.00 -> 84.00 ± 1.41 (2 / sqrt 2).
    assert "| LS | 0.1 | 2 | 84.00 ± 1.41 |" in text
    assert "ignored): b-ls0.1-s1." in text
    copied = tmp_path / "report" / "figures" / "models" / "a-ls0.1-s0" / "reliability.png"
    assert copied.read_bytes() == (FIXTURES / "tiny.png").read_bytes()
    assert "| a-ls0.1-s0 | 0 | [png](figures/models/a-ls0.1-s0/reliability.png) | — | — | — |" in text


def test_cli_reports_every_complete_evaluation_and_fails_in_one_line(tmp_path, capsys):
    workdir = tmp_path / "w"
    assert cli.main(["report", "--config", CONFIG, "--workdir", str(workdir)]) == 2
    assert "no evaluations" in capsys.readouterr().err
    _fixture_evaluations(workdir)
    (workdir / "eval" / "partial-eval").mkdir()  # no manifest: skipped
    assert cli.main(["report", "--config", CONFIG, "--workdir", str(workdir)]) == 0
    out = capsys.readouterr().out
    assert "skipping incomplete evaluation" in out
    reports = list((workdir / "report").glob("quickstart-*/report.md"))
    assert len(reports) == 1
    assert reports[0].read_text() == (FIXTURES / "expected_report.md").read_text()


def test_cli_reports_the_evaluations_it_is_given(tmp_path, capsys):
    workdir = tmp_path / "w"
    dirs = _fixture_evaluations(workdir)
    chosen = [d for d in dirs if d.name.startswith("teacher-")]
    args = ["report", "--config", CONFIG, "--workdir", str(workdir), "--evaluations", *map(str, chosen)]
    assert cli.main(args) == 0
    fps = [artifacts.read_manifest(d)["fingerprint"] for d in chosen]
    out = Path(layout.report(load_config(CONFIG), workdir, fps).path)
    assert f"report: {out / 'report.md'}" in capsys.readouterr().out
    assert set(artifacts.read_manifest(out)["inputs"]) == {d.name for d in chosen}
    assert "All students" not in (out / "report.md").read_text()


def test_corrupt_or_foreign_artifacts_are_user_errors(tmp_path):
    config = load_config(CONFIG)
    with pytest.raises(UserError, match="no evaluations"):
        report_stage(config, [], tmp_path / "r")
    good = _eval_artifact(
        tmp_path / "e1", json.loads((FIXTURES / "evaluations" / "teacher-ce-s0" / "metrics.json").read_text())
    )
    (good / "metrics.json").write_text("{}")
    with pytest.raises(UserError, match="checksum"):
        report_stage(config, [good], tmp_path / "r")
    other = tmp_path / "e2"
    other.mkdir()
    artifacts.write_manifest(other, stage="train", fingerprint="0" * 64, config={})
    with pytest.raises(UserError, match="not an evaluation"):
        report_stage(config, [other], tmp_path / "r")
    metrics = json.loads((FIXTURES / "evaluations" / "teacher-ce-s0" / "metrics.json").read_text())
    del metrics["description"]["seed"]
    seedless = _eval_artifact(tmp_path / "e3", metrics)
    with pytest.raises(UserError, match=f"evaluation {seedless}: .*has no 'seed'") as error:
        report_stage(config, [seedless], tmp_path / "r")
    assert len(str(error.value).splitlines()) == 1


def _with_plot(tmp_path, name, fixture, plot_key):
    metrics = json.loads((FIXTURES / "evaluations" / fixture / "metrics.json").read_text())
    metrics["plots"] = {plot_key: f"plots/{plot_key}.png"}
    directory = _eval_artifact(tmp_path / "eval" / name, metrics)
    (directory / "plots").mkdir()
    shutil.copyfile(FIXTURES / "tiny.png", directory / "plots" / f"{plot_key}.png")
    return directory


def test_figure4_montage_and_no_per_model_copies_when_configured_off(tmp_path):
    dirs = [
        _with_plot(tmp_path, name, name, "projection")
        for name in ("teacher-ce-s0", "teacher-ls0.1-s0", "teacher-ls0.2-s0")
    ]
    config = load_config(CONFIG)
    config.unlock()
    config.report = {"per_model_figures": False}
    report_stage(config, dirs, tmp_path / "report", log=lambda _: None)
    text = (tmp_path / "report" / "report.md").read_text()
    assert "](figures/figure4.png)" in text and "figure3" not in text  # no logit-gap plots: no Figure 3
    image = matplotlib.image.imread(tmp_path / "report" / "figures" / "figure4.png")
    assert image.shape[1] == 2 * 4 * 150  # two panels of 4 inches per row at 150 dpi (two rows for three)
    assert not (tmp_path / "report" / "figures" / "models").exists()
    assert "Per-model figures" not in text


def test_without_figures_the_report_has_the_same_tables_and_text_and_no_figure(fixture_report, tmp_path):
    """report.figures=false: no figures/ and no image link; every other line and every CSV as with them;
    another fingerprint, while the default keeps the fingerprint reports had before the key."""
    config = load_config(CONFIG, ["report.figures=false"])
    manifest = report_stage(config, fixture_report["dirs"], tmp_path / "report", log=lambda _: None)
    text = (tmp_path / "report" / "report.md").read_text()
    with_figures = (fixture_report["out"] / "report.md").read_text()
    assert "![" in with_figures and "![" not in text
    kept = [line for line in with_figures.splitlines() if not line.startswith("![")]
    assert [line for line in text.splitlines() if line] == [line for line in kept if line]
    assert not (tmp_path / "report" / "figures").exists()
    for table in (fixture_report["out"] / "tables").iterdir():
        assert (tmp_path / "report" / "tables" / table.name).read_text() == table.read_text()
    assert manifest["fingerprint"] != fixture_report["manifest"]["fingerprint"]
    assert "figures" not in layout.report_section(fixture_report["config"])


def test_figure3_is_redrawn_on_one_x_axis_from_the_evaluations_data_else_tiled(tmp_path):
    """With each evaluation's logit gaps beside its figure (plots/logit_gaps_noisy_part.npz), Figure 3's
    panels are drawn again on one shared x-axis; evaluations without them are tiled as before."""
    from label_smearing.core import plots

    names = ("teacher-ce-s0", "teacher-ls0.1-s0", "teacher-ls0.2-s0")
    rng = np.random.default_rng(0)
    for with_data in (True, False):
        root = tmp_path / str(with_data)
        dirs = [_with_plot(root, name, name, "logit_gaps_noisy_part") for name in names]
        if with_data:
            for index, directory in enumerate(dirs):
                plots.save_series(
                    {"true label": rng.normal(index, 1, 50), "noisy label": rng.normal(5 - index, 1, 50)},
                    directory / "plots" / "logit_gaps_noisy_part.npz",
                )
        report_stage(load_config(CONFIG), dirs, root / "report", log=lambda _: None)
        assert "](figures/figure3.png)" in (root / "report" / "report.md").read_text()
        image = matplotlib.image.imread(root / "report" / "figures" / "figure3.png")
        # panels of 5.2 inches (drawn) or 4 inches (tiled), two per row, at 150 dpi
        assert image.shape[1] == (2 * 5.2 * 150 if with_data else 2 * 4 * 150), with_data


def _with_validation(
    workdir: Path, noisy: dict, clean: dict, diverged: dict, resumed: dict | None = None
) -> list[Path]:
    """The fixture evaluations plus validation accuracies (by directory-name prefix), divergences and
    resumptions (directory name -> the train stage's "resumed" record)."""
    dirs = []
    for src in sorted((FIXTURES / "evaluations").iterdir()):
        metrics = json.loads((src / "metrics.json").read_text())
        cell = src.name.rsplit("-s", 1)[0]
        metrics["validation"] = {
            "accuracy_noisy": noisy.get(cell, 50.0),
            "accuracy_clean": clean.get(cell, 60.0),
        }
        if src.name in diverged:
            metrics["training"] = {"diverged": {"step": diverged[src.name], "epoch": 2, "reason": "test"}}
        if src.name in (resumed or {}):
            metrics["training"] = {"resumed": resumed[src.name]}
        dirs.append(_eval_artifact(workdir / "eval" / src.name, metrics))
    return dirs


def test_alpha_is_chosen_on_noisy_validation_labels_and_the_report_says_so(tmp_path):
    # On noisy validation labels LS alpha 0.1 wins (71 > 70); on clean ones 0.2 wins; test prefers 0.2.
    noisy = {"teacher-ls0.1": 71.0, "teacher-ls0.2": 70.0, "teacher-fc0.1": 65.0, "teacher-fc0.2": 66.0}
    clean = {"teacher-ls0.1": 80.0, "teacher-ls0.2": 81.0, "teacher-fc0.1": 75.0, "teacher-fc0.2": 76.0}
    dirs = _with_validation(tmp_path, noisy, clean, {})
    report_stage(load_config(CONFIG), dirs, tmp_path / "report", log=lambda _: None)
    text = (tmp_path / "report" / "report.md").read_text()
    tables = tmp_path / "report" / "tables"
    # Table 7 reports test accuracy at the validation choice: LS alpha 0.1 (83.50 ± 0.71), not test's 0.2.
    table7 = (tables / "table7.csv").read_text().splitlines()
    assert "83.50 ± 0.71 (α = 0.1)" in table7[1], table7
    assert "at the α chosen on validation" in text and "the test set plays no part in the choice" in text
    selection = (tables / "alpha_selection.csv").read_text().splitlines()
    assert selection[1].startswith("1,LS,0.1,0.2,0.2,83.50 ± 0.71,83.90 ± 0.42"), selection
    assert "would differ for 1 of 2 methods" in text
    # Claims 1 and 2 use the validation choice, and say that it was made on the seeds they test.
    assert (
        "| 1 | test accuracy (%), α chosen on validation: LS α=0.1 > CE | selection 0, 1 (α chosen on these "
        "seeds) | 83.50 ± 0.71 |"
    ) in text


def _without_validation(workdir: Path) -> list[Path]:
    dirs = []
    for src in sorted((FIXTURES / "evaluations").iterdir()):
        metrics = json.loads((src / "metrics.json").read_text())
        metrics.pop("validation")
        dirs.append(_eval_artifact(workdir / "eval" / src.name, metrics))
    return dirs


def test_without_a_validation_split_test_accuracy_never_chooses_alpha(tmp_path):
    dirs = _without_validation(tmp_path)
    report_stage(load_config(CONFIG), dirs, tmp_path / "report", log=lambda _: None)
    text = (tmp_path / "report" / "report.md").read_text()
    tables = tmp_path / "report" / "tables"
    # No table reports a chosen alpha; Table 2 shows every alpha.
    assert not (tables / "table7.csv").exists() and not (tables / "alpha_selection.csv").exists()
    assert "α chosen on test" not in text and "chosen on test" not in text
    assert (
        (tables / "table2.csv").read_text().splitlines()[1].startswith("1,LS,80.30 ± 0.28 (CE),83.50 ± 0.71,")
    )
    # The claims that need a choice are left out, and the report says why.
    claims = (tables / "claims.csv").read_text()
    assert "α chosen" not in claims and "FC α=0.1 ≥" not in claims
    assert "The data of this setting have no validation split, so the report chooses no α" in text
    # Table 5's tuned columns stay empty; the vanilla student (no alpha) is shown.
    assert (tables / "table5.csv").read_text().splitlines()[1] == "1,2,81.30 ± 0.42,—,—,—,—"
    assert "no α is chosen" in text


def _evaluation(workdir: Path, name: str, source: str, seed: int, test: float, validation: float) -> Path:
    metrics = json.loads((FIXTURES / "evaluations" / source / "metrics.json").read_text())
    metrics["description"]["seed"] = seed
    metrics["test"]["accuracy"] = test
    metrics["validation"] = {"accuracy_noisy": validation, "accuracy_clean": validation + 2}
    return _eval_artifact(workdir / "eval" / name, metrics)


def test_confirmation_seeds_test_the_chosen_alpha_and_are_kept_apart(tmp_path):
    dirs = _fixture_evaluations(tmp_path)
    # Confirmation seeds 5-7: CE, LS at its chosen 0.2 and FC at its chosen 0.1, fresh numbers.
    confirm = {
        "teacher-ce": ("teacher-ce-s0", [79.0, 80.0, 79.5]),
        "teacher-ls0.2": ("teacher-ls0.2-s0", [81.0, 82.5, 81.2]),
        "teacher-fc0.1": ("teacher-fc0.1-s0", [80.0, 81.0, 80.1]),
    }
    for cell, (source, accuracies) in confirm.items():
        for seed, accuracy in zip((5, 6, 7), accuracies):
            dirs.append(_evaluation(tmp_path, f"{cell}-s{seed}", source, seed, accuracy, accuracy - 3))
    config = load_config(CONFIG, ["sweep.confirm_seeds=(5, 6, 7)"])
    report_stage(config, dirs, tmp_path / "report", log=lambda _: None)
    text = (tmp_path / "report" / "report.md").read_text()
    tables = tmp_path / "report" / "tables"
    claims = (tables / "claims.csv").read_text().splitlines()
    # Claim 1 on the confirmation seeds: differences 2.0, 2.5, 1.7: mean 2.07, sd 0.404, t(0.975, 2) 4.303
    # -> half-width 4.303 x 0.404 / sqrt(3) = 1.00 -> [+1.06, +3.07]: holds.
    (claim1,) = [r for r in claims if r.startswith("1,1,")]
    assert "confirmation 5–7" in claim1 and ',3,+2.07,"[+1.06, +3.07]",holds,' in claim1, claim1
    # Claim 2 (FC ≥ LS, margin 1): differences -1.0, -1.5, -1.1: mean -1.2, CI [-1.86, -0.54]: inconclusive.
    (claim2,) = [r for r in claims if r.startswith("1,2,") and "FC α=0.1 ≥" in r]
    assert "confirmation 5–7" in claim2 and "inconclusive" in claim2, claim2
    # A claim at a fixed alpha reads the selection seeds; no table mixes the confirmation seeds in.
    fixed = [r for r in claims[1:] if not r.startswith(("1,1,", '1,2,"test accuracy (%), α'))]
    assert len(fixed) == 11 and all(",selection 0" in r or ',"selection 0, 1"' in r for r in fixed), fixed
    table2 = (tables / "table2.csv").read_text().splitlines()
    assert table2[1].startswith("1,LS,80.30 ± 0.28 (CE),83.50 ± 0.71,83.90 ± 0.42"), table2
    confirmation = (tables / "confirmation.csv").read_text().splitlines()
    assert confirmation[2] == "1,LS,0.2,81.57 ± 0.81,83.90 ± 0.42", confirmation
    assert "Confirmation seeds: test accuracy at the chosen α" in text


def test_a_negative_training_risk_is_annotated_not_divergence(tmp_path):
    dirs = []
    for src in sorted((FIXTURES / "evaluations").iterdir()):
        metrics = json.loads((src / "metrics.json").read_text())
        if src.name == "teacher-fc0.2-s1":
            metrics["training"] = {"diverged": None, "negative_risk_from_step": 300}
        dirs.append(_eval_artifact(tmp_path / "eval" / src.name, metrics))
    report_stage(load_config(CONFIG), dirs, tmp_path / "report", log=lambda _: None)
    table2 = (tmp_path / "report" / "tables" / "table2.csv").read_text()
    assert "80.50 ± 0.71 (negative training risk from step 300, 1 of 2 runs)" in table2, table2
    assert "diverged" not in table2


def test_a_diverged_run_is_marked_not_averaged_and_the_claims_say_so(tmp_path):
    dirs = _with_validation(tmp_path, {}, {}, {"teacher-ls0.1-s1": 40})
    report_stage(load_config(CONFIG), dirs, tmp_path / "report", log=lambda _: None)
    table2 = (tmp_path / "report" / "tables" / "table2.csv").read_text()
    assert "diverged (1 of 2 runs: seed 1 at step 40)" in table2
    claims = (tmp_path / "report" / "tables" / "claims.csv").read_text().splitlines()
    marked = [row for row in claims if "LS α=0.1" in row]
    assert marked and all("rests on a diverged cell: LS α=0.1" in row for row in marked), marked


def test_a_run_resumed_in_another_environment_is_marked_and_an_exact_resumption_is_not(tmp_path):
    resumed = {
        "teacher-ls0.1-s1": {"step": 30, "exact": False, "why": "the environment changed since the back-up"},
        "teacher-ls0.2-s1": {"step": 30, "exact": True, "why": ""},
    }
    dirs = _with_validation(tmp_path, {}, {}, {}, resumed)
    report_stage(load_config(CONFIG), dirs, tmp_path / "report", log=lambda _: None)
    table2 = (tmp_path / "report" / "tables" / "table2.csv").read_text()
    assert table2.count("resumed at step") == 1 and "(seed 1 resumed at step 30)" in table2, table2


def test_negative_smoothing_shares_the_alpha_axis_is_chosen_apart_and_is_claim_8(tmp_path):
    # NLS (LS at alpha -0.2) beside the fixture's LS 0.1 / 0.2; every cell ties on validation (50).
    dirs = _with_validation(tmp_path, {}, {}, {})
    for seed, accuracy in ((0, 85.0), (1, 86.0)):
        metrics = json.loads(
            (FIXTURES / "evaluations" / f"teacher-ls0.1-s{seed}" / "metrics.json").read_text()
        )
        metrics["description"]["alpha"] = -0.2
        metrics["test"]["accuracy"] = accuracy
        metrics["validation"] = {"accuracy_noisy": 50.0, "accuracy_clean": 60.0}
        dirs.append(_eval_artifact(tmp_path / "eval" / f"teacher-ls-0.2-s{seed}", metrics))
    report_stage(load_config(CONFIG), dirs, tmp_path / "report", log=lambda _: None)
    tables = tmp_path / "report" / "tables"
    table2 = (tables / "table2.csv").read_text().splitlines()
    # One alpha axis: the negative alpha before alpha 0, which is the CE baseline.
    assert table2[0] == "setting,method,α = -0.2,α = 0,α = 0.1,α = 0.2", table2
    assert table2[1].startswith("1,LS,85.50 ± 0.71,80.30 ± 0.28 (CE),"), table2
    table7 = (tables / "table7.csv").read_text().splitlines()
    header, row = table7[0].split(","), table7[1].split(",")
    # LS is chosen among alpha > 0 (the tie goes to the smaller, 0.1, not to -0.2), NLS among alpha < 0.
    assert row[header.index("LS")] == "83.50 ± 0.71 (α = 0.1)", table7
    assert row[header.index("NLS")] == "85.50 ± 0.71 (α = -0.2)", table7
    claims = (tables / "claims.csv").read_text().splitlines()  # setting, claim, check, ...
    assert any(r.startswith("1,1,") and "LS α=0.1 > CE" in r for r in claims), claims
    assert not any("α=-0.2" in r for r in claims if not r.startswith("1,8,")), claims
    assert [r for r in claims if r.startswith("1,8,")] == [
        "1,8,"
        '"test accuracy (%), α chosen on validation each: NLS α=-0.2 > LS α=0.1",'
        '"selection 0, 1 (α chosen on these seeds)",85.50 ± 0.71,83.50 ± 0.71,2,+2.00,"[+2.00, +2.00]",holds,holds'
    ], claims
    text = (tmp_path / "report" / "report.md").read_text()
    assert "and claim 8 from since" in text and "Wei et al. (ICML 2022)" in text
