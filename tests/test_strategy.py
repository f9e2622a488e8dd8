"""Strategies: mirrored over two logical CPUs, two local workers, TPU without a TPU.

Logical devices must be configured before TensorFlow runs any op, and a
MultiWorkerMirroredStrategy must be created first thing in a process, so those
tests run their training in fresh Python processes.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from label_smearing.core.config import load_config
from label_smearing.core.errors import UserError
from label_smearing.core.strategy import cluster_spec, make_strategy

pytestmark = pytest.mark.slow  # whole runs and subprocesses: `make test-fast` leaves them out

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "label_smearing" / "configs" / "quickstart.py") + ":smoke"
# Native start-up log lines TensorFlow writes to stderr before Python can silence them.
NATIVE_LOG = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl|To enable the following"
                        r"|WARNING:root:)")  # fmt: skip


def _env(**extra):
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT), **extra)


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_unknown_strategy_and_bad_tf_config_are_user_errors(monkeypatch):
    with pytest.raises(UserError, match="unknown train.strategy 'gpu'"):
        make_strategy("gpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UserError, match="needs the TF_CONFIG environment variable"):
        make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(UserError, match="TF_CONFIG is not valid JSON"):
        cluster_spec()
    monkeypatch.setenv(
        "TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}})
    )
    with pytest.raises(UserError, match="task.index 3 is outside the 1 workers"):
        cluster_spec()


@pytest.mark.parametrize("tpu", ["", "grpc://127.0.0.1:1"])
def test_tpu_without_a_tpu_fails_with_one_clear_line(tpu, make_data_artifact, tmp_path):
    from label_smearing.core import layout

    overrides = ["train.strategy=tpu", f"train.tpu={tpu}"]
    config = load_config(QUICKSTART, overrides)
    make_data_artifact(tmp_path, dataset="fashion_mnist", num_train=8, num_test=4,
                       directory=layout.data(config, tmp_path).path)  # fmt: skip
    argv = ["train", "--config", QUICKSTART, "--workdir", str(tmp_path)] + [
        f"--config.{o}" for o in overrides
    ]
    result = subprocess.run([sys.executable, "-m", "label_smearing.cli", *argv], capture_output=True, text=True,
                            env=_env(), cwd=ROOT, timeout=120)  # fmt: skip
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip() and not NATIVE_LOG.match(line)]
    assert len(lines) == 1, result.stderr
    assert re.match(
        r"smear train: error: .*(no TPU is reachable|no TPU reachable at grpc://127.0.0.1:1)", lines[0]
    )
    assert not list(tmp_path.glob("models/*/manifest.json"))


_MIRRORED_VS_ONE_DEVICE = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from label_smearing.stages import train
from label_smearing.core.config import load_config
from label_smearing.core.errors import UserError
data_dir, work = sys.argv[1], sys.argv[2]
result = {}
for strategy in ("default", "mirrored"):
    config = load_config(sys.argv[3], ["train.steps=2", "train.steps_per_epoch=1", "train.batch_size=32",
                                       "train.augment=none", "train.deterministic=true", f"train.strategy={strategy}"])
    train.train_stage(config, data_dir, f"{work}/{strategy}", log=lambda _: None)
    history = json.load(open(f"{work}/{strategy}/history.json"))
    result[strategy] = {"losses": [e["loss"] for e in history["epochs"]], "replicas": history["replicas"]}
config = load_config(sys.argv[3], ["train.batch_size=15", "train.strategy=mirrored"])
try:
    train.train_stage(config, data_dir, f"{work}/odd", log=lambda _: None)
except UserError as e:
    result["odd_batch"] = str(e)
print("RESULT", json.dumps(result))
"""


def test_mirrored_on_two_logical_cpus_matches_one_device(color_data_artifact, tmp_path):
    result = subprocess.run([sys.executable, "-c", _MIRRORED_VS_ONE_DEVICE, str(color_data_artifact), str(tmp_path),
                             QUICKSTART], capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.split("RESULT ", 1)[1])
    assert out["default"]["replicas"] == 1 and out["mirrored"]["replicas"] == 2
    # Same global batch, same initial weights, batch norm synchronised across replicas.
    assert out["mirrored"]["losses"][0] == pytest.approx(out["default"]["losses"][0], abs=1e-5)
    assert out["mirrored"]["losses"][1] == pytest.approx(out["default"]["losses"][1], abs=1e-4)
    assert out["odd_batch"] == "train.batch_size=15 is not divisible by the 2 replicas"


def test_multi_worker_with_two_local_workers_trains(make_data_artifact, tmp_path):
    from label_smearing.core import layout

    overrides = [
        "train.steps=4",
        "train.steps_per_epoch=2",
        "train.batch_size=16",
        "train.strategy=multi_worker",
    ]
    config = load_config(QUICKSTART, overrides)
    make_data_artifact(tmp_path, dataset="fashion_mnist", directory=layout.data(config, tmp_path).path)
    argv = ["train", "--config", QUICKSTART, "--workdir", str(tmp_path)] + [
        f"--config.{o}" for o in overrides
    ]
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen([sys.executable, "-m", "label_smearing.cli", *argv], stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, env=_env(TF_CONFIG=tf_config), cwd=ROOT))  # fmt: skip
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=300)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    assert "on 2 replica(s) (CollectiveAllReduceStrategy)" in outputs[0]
    (manifest_path,) = tmp_path.glob("models/*/manifest.json")  # the chief wrote the one artifact
    manifest = json.loads(manifest_path.read_text())
    assert manifest["counts"]["steps"] == 4
    assert not (tmp_path / "models" / ".workers").exists()  # the other worker cleaned up its back-up
