"""Bad input through the `smear` CLI: one stderr line naming the problem and the file or key, exit 2.

One table of cases, each run in process with `label_smearing.cli.main`: the error line
names what is wrong and where (the config key or the file), nothing else reaches
stderr (no traceback unless --verbose), and no complete artifact is created or
changed (every manifest.json under the fixtures keeps its bytes).

Noisify's own bad input (noise.rate out of range, an unknown key, an unknown
dataset, a missing or corrupt IDX source, T not row-stochastic or of the wrong
size) is in tests/test_noisify.py::test_bad_input_is_one_line_exit_2_nothing_written;
a real process's stderr is checked here once (test_a_real_process_prints_only_the_error_line).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from label_smearing import cli
from label_smearing.core import artifacts, layout
from label_smearing.core.config import load_config
from tests.conftest import write_data_artifact
from tests.idx_fixture import write_idx_dataset

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = f"{ROOT / 'label_smearing' / 'configs' / 'quickstart.py'}:smoke"
TINY = ["--config.train.steps=2", "--config.train.steps_per_epoch=2", "--config.train.batch_size=8"]


def save_model_artifact(directory, *, num_classes=10, image_shape=(28, 28, 1), lambda_layer=False):
    """A tiny untrained network with `pre_logits` and `logits` layers, saved as a model artifact."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input(image_shape)
    x = keras.layers.Flatten()(inputs)
    if lambda_layer:  # Python code inside the file: Keras' safe mode refuses to run it
        x = keras.layers.Lambda(lambda t: t * 2.0)(x)
    x = keras.layers.Dense(8, activation="relu", name="pre_logits")(x)
    model = keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(x))
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory / "model.keras")
    description = {"num_classes": num_classes, "image_shape": list(image_shape), "lambda": lambda_layer}
    artifacts.write_manifest(
        directory, stage="train", fingerprint=artifacts.fingerprint("train", description), config=description,
        counts={"steps": 0}, extra={"model_name": "teacher-ce-s0"},
    )  # fmt: skip
    return directory


def rechecksum(directory: Path, **changes) -> None:
    """Rewrites a manifest with `changes` and checksums of the files as they are now.

    Simulates an artifact written wrong (not damaged afterwards): its checksums
    match, so only reading the records can find the problem.
    """
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest.update(changes)
    manifest["files"] = {
        rel: {"sha256": artifacts.sha256_file(directory / rel), "bytes": (directory / rel).stat().st_size}
        for rel in manifest["files"]
    }
    artifacts.atomic_write_json(directory / "manifest.json", manifest)


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        del data[-100:]
    else:  # flip one bit in the middle of a record
        data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("cli_errors")
    config = load_config(QUICKSTART)

    def data(workdir: str, **kwargs) -> Path:
        kwargs = {"dataset": "fashion_mnist", "num_train": 32, "num_test": 16, **kwargs}
        return write_data_artifact(root, directory=layout.data(config, root / workdir).path, **kwargs)

    data("work")
    save_model_artifact(layout.configured_model(config, root / "work")[0].path)
    save_model_artifact(root / "m5", num_classes=5)
    save_model_artifact(root / "m32", image_shape=(32, 32, 3))
    save_model_artifact(root / "mlambda", lambda_layer=True)

    # Damaged after its manifest was written: the checksum differs.
    _damage(data("trunc") / "train-00001-of-00002.tfrecord", "truncate")
    # Written damaged, then checksummed: only reading the records finds it.
    for workdir, how in (("trunc_cs", "truncate"), ("flip_cs", "flip")):
        written = data(workdir)
        _damage(written / "train-00001-of-00002.tfrecord", how)
        rechecksum(written)
    rechecksum(data("labels", num_classes=12), num_classes=10)  # labels 10 and 11 in a 10-class artifact
    partial = data("partial")
    (partial / "manifest.json").unlink()
    (data("badjson") / "manifest.json").write_text('{"stage": "noisify", ')
    logits = write_data_artifact(root, directory=root / "logits5", dataset="fashion_mnist", num_classes=5,
                                 teacher_logits=True, num_train=32, num_test=8)  # fmt: skip
    # A 10-class artifact whose teacher logits have width 5.
    rechecksum(logits, num_classes=10, class_names=[str(i) for i in range(10)])

    write_idx_dataset(root / "idx", num_train=64, num_test=16)
    write_idx_dataset(root / "idx_empty", num_train=64, num_test=0)
    np.save(root / "singular.npy", np.full((10, 10), 0.1))  # row-stochastic, rank 1
    (root / "notstoch.json").write_text(json.dumps((np.eye(10) * 0.9).tolist()))
    np.save(root / "noisy_labels.npy", np.arange(64) % 11)  # 10 is not a class
    (root / "file.txt").write_text("a regular file, not a directory\n")
    (root / "exits.py").write_text("import sys\n\nsys.exit(3)\n")  # a config that ends the process
    return {"root": str(root), "Q": QUICKSTART, **{p.name.replace(".", "_"): str(p) for p in root.iterdir()}}


def _manifests(root: str) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in Path(root).rglob("manifest.json")}


# (case, argv with {placeholders} from `paths`, substrings the error line must contain)
CASES = [
    ("unknown config key", ["train", "--workdir", "{work}", "--config.train.stepz=3"],
     ["unknown config key: train.stepz"]),
    ("value of the wrong type", ["train", "--workdir", "{work}", "--config.train.steps=abc"],
     ["train.steps=abc", "cannot parse as int"]),
    ("unknown flag", ["train", "--workdir", "{work}", "--wrokdir", "x"],
     ["unrecognized arguments: --wrokdir"]),
    ("missing required flag", ["evaluate", "--config", "{Q}"],
     ["required: --workdir"]),
    ("config file not found", ["train", "--workdir", "{work}", "--config", "{root}/nope.py"],
     ["config file not found", "nope.py"]),
    ("loss.alpha out of range", ["train", "--workdir", "{work}", "--config.loss.alpha=1.5"],
     ["loss.alpha must be in [0, 1] for ce, got 1.5"]),
    ("ls alpha of 1", ["train", "--workdir", "{work}", "--config.loss.name=ls", "--config.loss.alpha=1.0"],
     ["loss.alpha must be in (-inf, 1) for ls, got 1.0"]),
    ("ce warm-up as long as the training", ["train", "--workdir", "{work}", "--config.loss.name=ls",
                                            "--config.loss.alpha=-0.2", "--config.loss.ce_warmup_steps=999999"],
     ["loss.ce_warmup_steps must be in [0, train.steps), got 999999"]),
    ("negative alpha for fc", ["train", "--workdir", "{work}", "--config.loss.name=fc", "--config.loss.alpha=-0.2"],
     ["loss.alpha must be in [0, 1] for fc, got -0.2"]),
    ("sweep alpha out of range (run)", ["run", "--workdir", "{root}/run", "--config.sweep.teachers=('ce', 'ls:1.5')"],
     ["sweep.teachers entry 'ls:1.5'", "alpha must be in (-inf, 1), got 1.5"]),
    ("noise.rate out of range (run)", ["run", "--workdir", "{root}/run", "--config.noise.rate=-0.1"],
     ["noise.rate must be in [0, 1]"]),
    ("bc with alpha = 1 (T_1 singular)", ["train", "--workdir", "{work}", "--config.loss.name=bc", "--config.loss.alpha=1.0"],
     ["loss.alpha must be in [0, 1) for bc, got 1.0"]),
    ("bc with a singular T file", ["train", "--workdir", "{work}", "--config.loss.name=bc", "--config.loss.transition=file",
                                   "--config.loss.transition_file={singular_npy}"],
     ["loss.transition_file", "singular.npy", "singular or ill-conditioned"]),
    ("fc with a T file not row-stochastic", ["train", "--workdir", "{work}", "--config.loss.name=fc",
                                             "--config.loss.transition=file", "--config.loss.transition_file={notstoch_json}"],
     ["loss.transition_file", "notstoch.json", "not row-stochastic: row 0 sums to 0.9"]),
    ("distill.temperature <= 0", ["train", "--workdir", "{work}", "--config.distill.enabled=true",
                                  "--config.distill.logits_dir={logits5}", "--config.distill.temperature=0"],
     ["distill.temperature must be > 0"]),
    ("unknown dataset (run)", ["run", "--workdir", "{root}/run", "--config.data.dataset=mnist"],
     ["unknown data.dataset 'mnist'"]),
    ("unknown model", ["train", "--workdir", "{work}", "--config.model.name=vgg"],
     ["unknown model.name 'vgg'"]),
    ("unknown strategy", ["train", "--workdir", "{work}", "--config.train.strategy=gpu"],
     ["unknown train.strategy 'gpu'"]),
    ("unknown precision", ["train", "--workdir", "{work}", "--config.train.precision=float16"],
     ["unknown train.precision 'float16'; one of: float32, mixed_bfloat16, mixed_float16"]),
    ("unknown sweep method (run)", ["run", "--workdir", "{root}/run", "--config.sweep.teachers=('xx',)"],
     ["sweep.teachers entry 'xx'", "unknown method"]),
    ("unknown command", ["frobnicate"], ["unknown command 'frobnicate'"]),
    ("an override the sweep sets (run)", ["run", "--workdir", "{root}/run", "--config.loss.alpha=2"],
     ["--config.loss.alpha=2 would be ignored: the plan sets loss.alpha per model from sweep.teachers"]),
    ("empty workdir (an unset variable)", ["train", "--workdir", ""], ["--workdir is empty ('')"]),
    ("blank workdir (run)", ["run", "--workdir", "  "], ["--workdir is empty ('  ')"]),
    ("a config that calls sys.exit", ["train", "--workdir", "{work}", "--config", "{exits_py}"],
     ["config file", "exits.py exited while loading (sys.exit(3))"]),
    ("missing data artifact", ["train", "--workdir", "{root}/empty", *TINY],
     ["data artifact not found", "empty/data/fashion_mnist"]),
    ("partial data artifact (no manifest)", ["train", "--workdir", "{partial}", *TINY],
     ["incomplete (no manifest.json)", "partial/data/"]),
    ("unreadable manifest", ["evaluate", "--workdir", "{badjson}"],
     ["manifest", "badjson/data/", "is unreadable"]),
    ("student classes != teacher logits", ["train", "--workdir", "{work}", "--config.distill.enabled=true",
                                           "--config.distill.logits_dir={logits5}", *TINY],
     ["teacher logits in", "logits5", "width 5, but the student has 10 classes"]),
    ("model classes != data classes", ["evaluate", "--workdir", "{work}", "--model", "{m5}"],
     ["m5 has 5 classes, but the data", "have 10"]),
    ("image shape != model input (evaluate)", ["evaluate", "--workdir", "{work}", "--model", "{m32}"],
     ["m32 takes images of shape [32, 32, 3]", "have [28, 28, 1]"]),
    ("image shape != model input (export)", ["export-logits", "--workdir", "{work}", "--model", "{m32}"],
     ["m32/model.keras takes images of shape [32, 32, 3]", "have [28, 28, 1]"]),
    ("noisy-labels file outside [0, L)", ["noisify", "--workdir", "{root}/nl", "--config.data.source=idx",
                                         "--config.data.source_dir={idx}", "--config.noise.model=labels",
                                         "--config.noise.labels_file={noisy_labels_npy}"],
     ["noisy labels", "noisy_labels.npy", "outside [0, 10)"]),
    ("data labels outside [0, L) (train)", ["train", "--workdir", "{labels}", *TINY],
     ["labels/data/", ".tfrecord: example fashion_mnist/train/", "outside [0, 10)"]),
    ("data labels outside [0, L) (evaluate)", ["evaluate", "--workdir", "{labels}", "--model", "{m_default}"],
     ["labels/data/", ".tfrecord: example fashion_mnist/test/", "outside [0, 10)"]),
    ("empty split", ["noisify", "--workdir", "{root}/es", "--config.data.source=idx", "--config.data.source_dir={idx_empty}"],
     ["the test split of fashion_mnist", "idx_empty", "is empty"]),
    ("truncated TFRecord (checksum)", ["train", "--workdir", "{trunc}", *TINY],
     ["train-00001-of-00002.tfrecord does not match its checksum", "trunc/data/"]),
    ("truncated TFRecord written so (evaluate)", ["evaluate", "--workdir", "{trunc_cs}", "--model", "{m_default}"],
     ["trunc_cs/data/", "train-00001-of-00002.tfrecord is corrupt (truncated record at"]),
    ("bit-flipped TFRecord written so (export)", ["export-logits", "--workdir", "{flip_cs}", "--model", "{m_default}"],
     ["flip_cs/data/", "train-00001-of-00002.tfrecord is corrupt (corrupted record at"]),
    ("bit-flipped TFRecord written so (train)", ["train", "--workdir", "{flip_cs}", *TINY],
     ["flip_cs/data/", "train-00001-of-00002.tfrecord is corrupt (corrupted record at"]),
    ("workdir under a regular file", ["noisify", "--workdir", "{file_txt}/sub", "--config.data.source=idx",
                                      "--config.data.source_dir={idx}"],
     ["cannot create", "file.txt/sub/data/", "Not a directory"]),
    ("Lambda layer refused by safe mode (evaluate)", ["evaluate", "--workdir", "{work}", "--model", "{mlambda}"],
     ["cannot load", "mlambda/model.keras", "Lambda"]),
    ("Lambda layer refused by safe mode (export)", ["export-logits", "--workdir", "{work}", "--model", "{mlambda}"],
     ["cannot load", "mlambda/model.keras", "Lambda"]),
]  # fmt: skip


def _argv(args: list[str], paths: dict[str, str]) -> list[str]:
    argv = [a.format(**paths) for a in args]
    if argv[0] in cli.commands() and "--config" not in argv:
        argv[1:1] = ["--config", QUICKSTART]
    return argv


@pytest.fixture(scope="module")
def default_model(paths) -> dict[str, str]:
    (model,) = Path(paths["work"], "models").iterdir()
    return {**paths, "m_default": str(model)}


@pytest.mark.parametrize("case, args, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_naming_it_exit_2_nothing_complete_written(
    default_model, capsys, case, args, expected
):
    paths = default_model
    before = _manifests(paths["root"])
    capsys.readouterr()
    code = cli.main(_argv(args, paths))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1, err
    command = args[0] if args[0] in cli.commands() else None
    assert err[0].startswith(f"smear {command}: error: " if command else "smear: error: "), err
    for text in expected:
        assert text in err[0], (text, err[0])
    assert _manifests(paths["root"]) == before  # no manifest created, changed or removed


def test_verbose_shows_the_traceback(paths, capsys):
    argv = _argv(["train", "--workdir", "{work}", "--config.train.stepz=3", "--verbose"], paths)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "UserError: unknown config key: train.stepz" in err
    assert err.strip().splitlines()[-1] == "smear train: error: unknown config key: train.stepz"


@pytest.mark.slow
def test_a_real_process_prints_only_the_error_line(paths):
    """TensorFlow's and Beam's start-up lines are silenced: the user sees the one line."""
    result = subprocess.run(
        [sys.executable, "-m", "label_smearing.cli", *_argv(["evaluate", "--workdir", "{work}", "--model", "{m5}"], paths)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"},
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"smear evaluate: error: model {paths['m5']} has 5 classes, but the data "
        f"{layout.data(load_config(QUICKSTART), paths['work']).path} have 10"
    ]


def test_sigterm_stops_a_command_like_ctrl_c_with_one_line_and_143(monkeypatch, capsys):
    """SIGTERM (a scheduler's, `kill`'s) raises in the main thread as Ctrl-C does, so `smear run` stops its
    workers and frees its locks on the way out (its KeyboardInterrupt path); the handler is put back after."""
    import importlib
    import signal
    import time

    module = importlib.import_module(cli.commands()["report"][0])

    def terminated(argv):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the handler raises here, at once
        raise AssertionError("SIGTERM did not stop the command")

    monkeypatch.setattr(module, "run", terminated)
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main(["report", "--config", QUICKSTART, "--workdir", "unused"]) == 143
    assert capsys.readouterr().err.strip().splitlines() == ["smear report: terminated (SIGTERM)"]
    assert signal.getsignal(signal.SIGTERM) == before
