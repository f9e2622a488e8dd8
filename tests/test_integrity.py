"""Data integrity, determinism and safety, on the artifacts of one smoke `smear run`.

- Every manifest records counts and a checksum of every file; a stage reading an
  artifact verifies them and refuses a modified file in one line naming it.
- Training with a fixed seed and op determinism is repeatable in a new process.
  (Noisify is byte-identical across runs and worker counts:
  tests/test_noisify.py::test_same_labels_with_one_and_two_workers_and_across_runs.)
- Nothing is unpickled; models load in Keras' safe mode (a Lambda layer is
  refused: tests/test_cli_errors.py, the "Lambda layer" cases); a run writes
  only under its workdir.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from label_smearing import cli
from label_smearing.core import artifacts
from tests.idx_fixture import write_idx_dataset

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = f"{ROOT / 'label_smearing' / 'configs' / 'quickstart.py'}:smoke"
PACKAGES = ("label_smearing",)
KINDS = ("data", "models", "logits", "eval", "report")
# What the libraries put in a fresh HOME on first use: Keras' config file, matplotlib's font cache.
LIBRARY_FILES = re.compile(r"^(\.keras/keras\.json|\.cache/matplotlib/.*|\.config/matplotlib/?.*)$")


def _config_args(idx_dir) -> list[str]:
    return [
        "--config", QUICKSTART, "--config.data.source=idx", f"--config.data.source_dir={idx_dir}",
        "--config.data.max_train_examples=128", "--config.data.max_test_examples=64",
        "--config.train.steps=4", "--config.train.steps_per_epoch=2", "--config.train.batch_size=16",
        "--config.train.deterministic=true", "--config.eval.max_projection_points=10",
    ]  # fmt: skip


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """`smear run` (teacher ce, student ce>ce) in a fresh process, cwd, HOME and TMPDIR."""
    base = tmp_path_factory.mktemp("integrity")
    idx_dir = write_idx_dataset(base / "idx", num_train=128, num_test=64)
    cwd, home, tmp = base / "cwd", base / "home", base / "tmp"
    for d in (cwd, home, tmp):
        d.mkdir()
    argv = ["run", "--workdir", "work", *_config_args(idx_dir),
            "--config.sweep.teachers=('ce',)", "--config.sweep.students=('ce>ce',)"]  # fmt: skip
    env = {**os.environ, "HOME": str(home), "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT)}
    env.pop("KERAS_HOME", None)
    env.pop("MPLCONFIGDIR", None)
    result = subprocess.run([sys.executable, "-m", "label_smearing.cli", *argv], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return {"base": base, "cwd": cwd, "home": home, "tmp": tmp, "work": cwd / "work", "idx": idx_dir}


@pytest.mark.slow
def test_a_run_writes_only_under_its_workdir(run):
    assert sorted(p.name for p in run["cwd"].iterdir()) == ["work"]
    # stage_times.jsonl: the seconds of every stage that ran (pipeline/publish.py)
    assert {p.name for p in run["work"].iterdir()} == {*KINDS, "stage_times.jsonl"}
    assert list(run["tmp"].iterdir()) == []  # temporary files are cleaned up
    assert all(LIBRARY_FILES.match(f) for f in _files(run["home"])), _files(run["home"])


def _artifact_dirs(work: Path) -> list[Path]:
    return [d for kind in KINDS for d in sorted((work / kind).iterdir())]


def _count_records(directory: Path, split: str) -> int:
    return sum(1 for f in directory.glob(f"{split}-*.tfrecord") for _ in tf.data.TFRecordDataset(str(f)))


@pytest.mark.slow
def test_every_manifest_records_counts_and_checksums_of_every_file(run):
    dirs = _artifact_dirs(run["work"])
    assert [d.parent.name for d in dirs] == ["data", "models", "models", "logits", "eval", "eval", "report"]
    for directory in dirs:
        manifest = artifacts.read_manifest(directory)  # verifies every listed file's size and SHA-256
        assert manifest["counts"] and all(isinstance(v, int) and v >= 0 for v in manifest["counts"].values())
        on_disk = {
            str(p.relative_to(directory))
            for p in directory.rglob("*")
            if p.is_file() and p.name != "manifest.json"
        }
        excluded = {f for f in on_disk if any(f.startswith(e + "/") for e in manifest["excluded"])}
        assert set(manifest["files"]) == on_disk - excluded, directory  # no file unaccounted for
        assert all(re.fullmatch(r"[0-9a-f]{64}", m["sha256"]) for m in manifest["files"].values())
        for split in manifest.get("splits", {}):  # data and logits: the counts are the records
            assert _count_records(directory, split) == manifest["counts"][split] > 0


def _flip_one_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


# (stage, extra arguments, the file to damage as a glob under the workdir copy)
FLIPS = [
    ("train", [], "data/*/train-00000-of-*.tfrecord"),
    ("export-logits", [], "data/*/train-00000-of-*.tfrecord"),
    ("evaluate", [], "data/*/test-00000-of-*.tfrecord"),
    ("export-logits", [], "models/teacher-*/model.keras"),
    ("evaluate", [], "models/teacher-*/model.keras"),
    ("train", ["--config.distill.enabled=true", "--config.distill.logits_dir={logits}"], "logits/*/train-00000-of-*.tfrecord"),
    ("report", [], "eval/teacher-*/metrics.json"),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("stage, extra, damaged", FLIPS, ids=[f"{s}-{d.split('/')[0]}" for s, _, d in FLIPS])
def test_a_stage_refuses_a_bit_flipped_input_in_one_line_naming_the_file(
    run, tmp_path, capsys, stage, extra, damaged
):
    work = tmp_path / "work"
    shutil.copytree(run["work"], work)
    (target,) = work.glob(damaged)
    _flip_one_bit(target)
    manifests = {p: p.read_bytes() for p in work.rglob("manifest.json")}
    (logits,) = work.glob("logits/*")
    argv = [
        stage,
        "--workdir",
        str(work),
        *_config_args(run["idx"]),
        *(a.format(logits=logits) for a in extra),
    ]
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"file {target} does not match its checksum in {target.parent}/manifest.json" in err[0], err
    assert {p: p.read_bytes() for p in work.rglob("manifest.json")} == manifests


def _history_and_weights(model_dir: Path) -> tuple[list[dict], list[np.ndarray]]:
    history = json.loads((model_dir / "history.json").read_text())["epochs"]
    model = keras.saving.load_model(model_dir / "model.keras", safe_mode=True, compile=False)
    return [{k: e[k] for k in ("step", "loss", "accuracy")} for e in history], model.get_weights()


@pytest.mark.slow
def test_training_twice_with_a_fixed_seed_and_op_determinism_gives_identical_results(run, tmp_path):
    """The run's teacher (seed 0, train.deterministic=true) trained again in a new process, on a copy of its data."""
    (data_dir,) = (run["work"] / "data").iterdir()
    shutil.copytree(data_dir, tmp_path / "data" / data_dir.name)
    argv = ["train", "--workdir", str(tmp_path), *_config_args(run["idx"])]
    result = subprocess.run([sys.executable, "-m", "label_smearing.cli", *argv], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (first,) = (run["work"] / "models").glob("teacher-*")
    (second,) = (tmp_path / "models").iterdir()
    assert second.name == first.name  # the same config and data: the same fingerprint
    history_1, weights_1 = _history_and_weights(first)
    history_2, weights_2 = _history_and_weights(second)
    assert [e["step"] for e in history_1] == [2, 4] and history_1[0]["loss"] != history_1[1][
        "loss"
    ]  # it trained
    assert history_1 == history_2  # losses and accuracies equal, not merely close
    assert len(weights_1) == len(weights_2) > 0
    for w1, w2 in zip(weights_1, weights_2):
        np.testing.assert_array_equal(w1, w2)


def _source_lines():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                yield f"{path.relative_to(ROOT)}:{number}", line


def test_no_data_is_unpickled_and_models_load_in_safe_mode():
    numpy_loads, keras_loads = 0, 0
    for where, line in _source_lines():
        code = line.split("#", 1)[0]
        assert not re.search(r"\b(import pickle|pickle\.loads?|cPickle|dill\.loads?|joblib\.load)\b", code), (
            where
        )
        assert "allow_pickle=True" not in code, where
        assert "safe_mode=False" not in code and "enable_unsafe_deserialization" not in code, where
        if re.search(r"\bnp\.load\(", code):
            numpy_loads += 1
            assert "allow_pickle=False" in code, where
        if re.search(r"\bkeras\.(saving|models)\.load_model\(", code):
            keras_loads += 1
            assert "safe_mode=True" in code, where
    assert (
        numpy_loads >= 1 and keras_loads >= 1
    )  # the checks above saw the loaders (keras_components/noise.py; pipeline/core/trained_model.py)
