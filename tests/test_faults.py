"""SIGKILL in the middle of the Beam stages: no manifest is left behind, and the next run finishes correctly.

Each job runs in a subprocess with one function patched to print a marker and
sleep, so the kill lands at a known point mid-job (as tests/test_train.py's
_HANG_AFTER_SECOND_BACKUP does for training; training's SIGKILL is tested there
and in tests/test_pipeline.py::test_sigkill_during_training_resumes_from_checkpoint).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import pytest
import tensorflow as tf

from label_smearing import cli
from label_smearing.core import artifacts, layout
from label_smearing.core.config import load_config
from tests.conftest import write_data_artifact
from tests.idx_fixture import write_idx_dataset
from tests.processes import kill_at_marker
from tests.test_cli_errors import save_model_artifact

pytestmark = pytest.mark.slow  # whole runs and subprocesses: `make test-fast` leaves them out

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = f"{ROOT / 'label_smearing' / 'configs' / 'quickstart.py'}:smoke"

# Noisify: the 100th image encoded (the second of four train chunks) never finishes.
_HANG_IN_NOISIFY = """
import sys, time
from label_smearing.stages import noisify
encode, calls = noisify.encode_png, []
def encode_or_hang(image):
    calls.append(1)
    if len(calls) == 100:
        print("HANGING", flush=True)
        time.sleep(600)
    return encode(image)
noisify.encode_png = encode_or_hang
from label_smearing.cli import main
sys.exit(main(sys.argv[1:]))
"""

# Export: the teacher has run on two batches of 16 (of four) when the job stops.
_HANG_IN_EXPORT = """
import sys, time
from label_smearing.stages.export_logits import KerasTeacherHandler
infer, calls = KerasTeacherHandler.run_inference, []
def infer_then_hang(self, batch, model, inference_args=None):
    result = infer(self, batch, model, inference_args)
    calls.append(1)
    if len(calls) == 2:
        print("HANGING", flush=True)
        time.sleep(600)
    return result
KerasTeacherHandler.run_inference = infer_then_hang
from label_smearing.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _records(directory, split: str) -> dict[str, bytes]:
    out = {}
    for path in sorted(glob.glob(os.path.join(directory, f"{split}-*.tfrecord"))):
        for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
            out[tf.train.Example.FromString(raw).features.feature["id"].bytes_list.value[0].decode()] = raw
    return out


def test_sigkill_during_noisify_leaves_no_manifest_and_the_rerun_matches_an_uninterrupted_run(tmp_path):
    idx = write_idx_dataset(tmp_path / "idx", num_train=256, num_test=64)
    overrides = [f"--config.data.source_dir={idx}", "--config.data.source=idx", "--config.data.chunk_size=64"]
    argv = ["noisify", "--config", QUICKSTART, "--workdir", str(tmp_path / "work"), *overrides]
    kill_at_marker(_HANG_IN_NOISIFY, argv, "HANGING")
    (partial,) = (tmp_path / "work" / "data").glob("[!.]*")  # not the killed run's lock
    assert not artifacts.is_complete(partial)  # killed mid-job: never read as input
    assert any(p.name.startswith("beam-temp-") for p in partial.iterdir())  # shards were being written

    assert cli.main(argv) == 0
    assert not list(partial.parent.glob(".*.lock"))  # the killed run's lock was taken over, then released
    manifest = artifacts.read_manifest(partial)  # complete now, and its checksums verify
    counts = manifest["counts"]
    assert counts["train"] + counts["validation"] == 256
    assert (counts["test"], counts["dead_letter"]) == (64, 0)
    assert sorted(p.name for p in partial.iterdir() if not p.name.endswith(".tfrecord")) == [
        "manifest.json",
        "noise_report.json",
    ]  # nothing of the killed run is left (Beam's temporary files, counts)
    assert (
        cli.main(["noisify", "--config", QUICKSTART, "--workdir", str(tmp_path / "clean"), *overrides]) == 0
    )
    (clean,) = (tmp_path / "clean" / "data").iterdir()
    for split in ("train", "validation", "test"):
        assert _records(partial, split) == _records(clean, split)  # byte for byte


def test_sigkill_during_export_leaves_no_manifest_and_the_rerun_exports_everything(tmp_path):
    workdir = tmp_path / "work"
    config = load_config(QUICKSTART)
    data_dir = write_data_artifact(workdir, dataset="fashion_mnist", num_train=64, num_test=8,
                                   directory=layout.data(config, workdir).path)  # fmt: skip
    save_model_artifact(layout.configured_model(config, workdir)[0].path)
    argv = [
        "export-logits",
        "--config",
        QUICKSTART,
        "--workdir",
        str(workdir),
        "--config.export.batch_size=16",
    ]
    kill_at_marker(_HANG_IN_EXPORT, argv, "HANGING")
    (partial,) = (workdir / "logits").glob("[!.]*")  # not the killed run's lock
    assert not artifacts.is_complete(partial)  # killed mid-inference: never read as input

    assert cli.main(argv) == 0
    manifest = artifacts.read_manifest(partial)
    assert manifest["counts"]["train"] == 64 and manifest["counts"]["dead_letter"] == 0
    exported, original = _records(partial, "train"), _records(data_dir, "train")
    assert sorted(exported) == sorted(original)  # every example once
    assert not [p.name for p in partial.iterdir() if ".tmp-" in p.name]  # no temporary shard is left
    assert all(
        len(tf.train.Example.FromString(raw).features.feature["teacher_logits"].float_list.value) == 10
        for raw in exported.values()
    )
