"""Every stage on a remote workdir (gs://), against the GCS stand-in (tests/gcs_standin.py).

One `smear run` of a plan with every stage kind (noisify, train, export, estimate,
evaluate, report; then publish) is killed mid-training, after a back-up reached the
bucket; the rerun resumes from it and completes. Everything goes through TensorFlow's
and Beam's own gs:// clients: the test reads the bucket with a third client
(google-cloud-storage) to check what landed there.
"""

import json
import os
import re

import pytest

from label_smearing import cli
from label_smearing.core import locks
from tests.idx_fixture import write_idx_dataset
from tests.processes import kill_at_marker

pytestmark = pytest.mark.slow  # whole runs and subprocesses: `make test-fast` leaves them out

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, "label_smearing", "configs", "quickstart.py")
WORKDIR = "gs://bucket/remote-run"
FAST = [
    "--config.eval.figures=false",  # the figures have their own tests; 3-4 s per evaluation
    "--config.report.figures=false",  # and the report's: about 3 s per report
    "--config.train.steps=6",
    "--config.train.steps_per_epoch=3",
    "--config.train.batch_size=32",
    "--config.train.curve_examples=64",
    "--config.data.max_train_examples=256",
    "--config.data.max_test_examples=128",
    "--config.sweep.teachers=('fc:est',)",  # the CE teacher, its export, the estimate, the FC teacher
    "--config.sweep.students=()",
]
_HANG_IN_FC_TEACHER = """
import sys, time
from label_smearing.stages.train import WholeFileBackup
save = WholeFileBackup._save_model
def save_then_hang(self):
    save(self)
    if "teacher-fc" in str(self.backup_dir) and self._current_epoch >= 1:
        print("BACKED-UP", flush=True)
        time.sleep(600)
WholeFileBackup._save_model = save_then_hang
from label_smearing.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _objects(env, prefix):
    """Object names under `prefix` in the stand-in's bucket, read with google-cloud-storage."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(
        project="stand-in", credentials=AnonymousCredentials(),
        client_options={"api_endpoint": env["STORAGE_EMULATOR_HOST"]},
    )  # fmt: skip
    return sorted(b.name for b in client.list_blobs("bucket", prefix=prefix))


def test_every_stage_runs_on_a_remote_workdir_and_resumes_a_killed_training(
    gcs, tmp_path, monkeypatch, capsys
):
    idx_dir = write_idx_dataset(tmp_path / "idx", num_train=256, num_test=128)
    args = [
        "run", "--config", f"{QUICKSTART}:smoke", "--workdir", WORKDIR, "--config.data.source=idx",
        f"--config.data.source_dir={idx_dir}", *FAST,
    ]  # fmt: skip
    kill_at_marker(_HANG_IN_FC_TEACHER, args, "BACKED-UP", timeout=400, env=gcs)
    names = _objects(gcs, "remote-run/")
    (fc,) = {re.match(r"remote-run/models/(teacher-fc[^/]+)/", n)[1] for n in names if "/teacher-fc" in n}
    fc_objects = [n for n in names if f"/{fc}/" in n]
    assert f"remote-run/models/{fc}/backup/latest.weights.h5" in fc_objects  # the back-up is in the bucket
    assert f"remote-run/models/{fc}/manifest.json" not in fc_objects  # killed: incomplete, never read
    for kind in ("data", "models", "logits", "transition"):  # what finished before the kill is complete
        assert any(re.match(rf"remote-run/{kind}/[^/]+/manifest\.json$", n) for n in names), kind

    # The rerun and the dry-run in this process (the kill needed a process of its own), with the
    # stand-in's environment set here as the subprocess had it.
    for key, value in gcs.items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    assert cli.main([*args, "--publish", str(tmp_path / "published")]) == 0
    out = capsys.readouterr().out
    ran = re.findall(r"^\[\d+/\d+\] (.+): running", out, re.M)
    assert ran[0] == "train teacher-fc-est-s0" and "estimate" not in " ".join(ran), out
    assert "resuming from step 3 of 6" in out, out
    names = _objects(gcs, "remote-run/")
    manifests = [n for n in names if n.endswith("/manifest.json")]
    assert {m.split("/")[1] for m in manifests} == {
        "data",
        "models",
        "logits",
        "transition",
        "eval",
        "report",
    }
    assert len(manifests) == 8  # noisify, 2 trainings, export, estimate, 2 evaluations, report
    assert not [n for n in names if "/backup/" in n or ".tmp-" in n]  # nothing temporary is left
    assert any("/tensorboard/" in n and "tfevents" in n for n in names if "/models/" in n)
    published = tmp_path / "published"
    assert (published / "report.md").is_file() and (published / "manifest.json").is_file()
    times = json.loads((published / "stage_times.json").read_text())
    assert times["stages_without_time"] == 0, times  # the times were recorded in the bucket and read back

    assert cli.main([*args, "--dry-run"]) == 0  # every manifest read back (and checksummed) from the bucket
    third = capsys.readouterr().out
    assert len(re.findall(r"\] cached ", third)) == 8, third


@pytest.mark.parametrize(
    "workdir, message",
    [
        ("s4://bucket/w", "no file system for s4://"),
        ("gs://no-such-bucket/w", "bucket 'no-such-bucket' does not exist"),
        ("gs:///w", "no bucket in the URL"),
    ],
)
def test_a_bad_remote_workdir_is_one_line_and_writes_nothing(gcs_env, workdir, message, capsys):
    before = _objects(gcs_env, "")
    assert cli.main(["run", "--config", f"{QUICKSTART}:smoke", "--workdir", workdir]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and workdir in err[0], err
    assert _objects(gcs_env, "") == before


def test_an_unreachable_store_is_cannot_reach_not_does_not_exist(monkeypatch, capsys):
    """Offline, TF's GCS client finds no bucket at all: the line says the store cannot be reached."""
    import socket

    with socket.socket() as closed:  # a local port nothing listens on: the proxy TF's client would use
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{port}")
    assert cli.main(["run", "--config", f"{QUICKSTART}:smoke", "--workdir", "gs://some-bucket/w"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and "gs://some-bucket/w: cannot reach it: no connection to storage.googleapis.com:443" in err[0]
    )
    assert f"through the proxy 127.0.0.1:{port}" in err[0] and "does not exist" not in err[0], err


def test_a_file_system_without_flock_is_written_unlocked(tmp_path, monkeypatch):
    """A FUSE-mounted bucket (gcsfuse) answers flock with ENOSYS: the stage goes on, saying so once."""
    import errno
    import fcntl

    real_flock = fcntl.flock

    def no_flock(fd, operation):
        if operation & fcntl.LOCK_EX:
            raise OSError(errno.ENOSYS, "Function not implemented")
        return real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", no_flock)
    monkeypatch.setattr(locks, "_UNLOCKED_NOTED", [])
    lines = []
    locks.acquire(tmp_path / "models" / "a", log=lines.append)
    locks.acquire(tmp_path / "models" / "b", log=lines.append)
    assert len(lines) == 1 and "does not support flock" in lines[0]
    locks.release(tmp_path / "models" / "a")
    locks.release(tmp_path / "models" / "b")
    assert not list((tmp_path / "models").glob(".*.lock"))
