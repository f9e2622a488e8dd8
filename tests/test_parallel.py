"""`smear run --jobs N` and artifact locks: one writer per artifact, concurrent runs, failures, Ctrl-C."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from label_smearing import cli
from label_smearing.core import artifacts, layout, locks
from label_smearing.core.config import load_config
from label_smearing.core.errors import UserError
from label_smearing.pipeline import executor
from label_smearing.pipeline.plan import plan
from tests.idx_fixture import write_idx_dataset

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = f"{ROOT / 'label_smearing' / 'configs' / 'quickstart.py'}:smoke"
FAST = [
    "--config.eval.figures=false",  # the figures have their own tests; 3-4 s per evaluation
    "--config.report.figures=false",  # and the report's: about 3 s per report
    "--config.train.steps=6",
    "--config.train.steps_per_epoch=3",
    "--config.train.batch_size=32",
    "--config.data.max_train_examples=256",
    "--config.data.max_test_examples=128",
    "--config.sweep.teachers=('ce', 'ls:0.1')",
    "--config.sweep.students=()",
]

# Holds the lock of argv[1] and prints READY, then sleeps until killed.
_HOLD = """
import sys, time
from label_smearing.core import locks
locks.acquire(sys.argv[1])
print("READY", flush=True)
time.sleep(600)
"""


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    return write_idx_dataset(tmp_path_factory.mktemp("idx"), num_train=256, num_test=128)


def _args(workdir, idx_dir, *extra) -> list[str]:
    return [
        "run", "--config", QUICKSTART, "--workdir", str(workdir), "--config.data.source=idx",
        f"--config.data.source_dir={idx_dir}", *FAST, *extra,
    ]  # fmt: skip


def _smear(argv: list[str]) -> subprocess.Popen:
    """`smear ARGV` in a fresh process, with Ctrl-C's default (a background shell's job ignores SIGINT)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.Popen(
        [sys.executable, "-m", "label_smearing.cli", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env, cwd=ROOT, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


def _holder(path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(path)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert process.stdout.readline().strip() == "READY"
    return process


def _metrics(workdir: Path) -> dict:
    """{evaluation name: its test metrics}, read from the report's inputs."""
    out = {}
    for path in sorted((workdir / "eval").glob("*/metrics.json")):
        out[path.parent.name] = json.loads(path.read_text())["test"]
    return out


def _verify_every_manifest(workdir: Path) -> int:
    manifests = list(workdir.glob(f"*/*/{artifacts.MANIFEST}"))
    for manifest in manifests:
        artifacts.read_manifest(manifest.parent, verify=True)
    assert not list(workdir.glob("*/.*.lock")), "a lock file was left behind"
    return len(manifests)


@pytest.fixture(scope="module")
def single(tmp_path_factory, idx_dir):
    """One plain run (`--jobs 1`): the reference the parallel and concurrent runs must match.

    In a fresh process, as the workers are: earlier tests change this process's TensorFlow state.
    """
    workdir = tmp_path_factory.mktemp("single")
    process = _smear(_args(workdir, idx_dir))
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    return workdir


# ---------------------------------------------------------------- locks
def test_a_lock_is_reentrant_names_its_holder_and_is_deleted_on_release(tmp_path):
    target = tmp_path / "models" / "m-0123456789"
    locks.acquire(target)
    locks.acquire(target)
    assert locks.held() == [os.path.abspath(target)]
    record = json.loads(locks.lock_path(target).read_text())
    assert record["pid"] == os.getpid() and record["host"]
    locks.release(target)
    assert locks.lock_path(target).exists()
    locks.release(target)
    assert not locks.lock_path(target).exists() and locks.held() == []


def test_a_lock_held_by_another_process_is_refused_naming_its_pid(tmp_path):
    target = tmp_path / "a"
    process = _holder(target)
    try:
        assert locks.holder(target)["pid"] == process.pid
        with pytest.raises(locks.LockHeld, match=f"pid {process.pid} on "):
            locks.acquire(target)
    finally:
        process.kill()
        process.wait()


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    target = tmp_path / "a"
    process = _holder(target)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert locks.lock_path(target).exists() and locks.holder(target) is None
    said = []
    locks.acquire(target, log=said.append)
    try:
        assert json.loads(locks.lock_path(target).read_text())["pid"] == os.getpid()
        assert len(said) == 1 and f"left by pid {process.pid}" in said[0]
    finally:
        locks.release(target)


def test_prepare_output_takes_the_lock_and_the_manifest_releases_it(tmp_path):
    out = artifacts.prepare_output(tmp_path / "art")
    assert locks.held() == [os.path.abspath(out)]
    (out / "x.txt").write_text("x")
    artifacts.write_manifest(out, stage="test", fingerprint="f", config={})
    assert locks.held() == [] and not locks.lock_path(out).exists()


def test_a_stage_command_on_an_artifact_being_written_exits_2_naming_the_holder(tmp_path, idx_dir, capsys):
    argv = ["noisify", "--config", QUICKSTART, "--workdir", str(tmp_path), "--config.data.source=idx",
            f"--config.data.source_dir={idx_dir}", *FAST]  # fmt: skip
    config = load_config(QUICKSTART, [a[len("--config.") :] for a in argv if a.startswith("--config.")])
    out_dir = Path(layout.data(config, tmp_path).path)
    process = _holder(out_dir)
    try:
        capsys.readouterr()
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert (
            len(err) == 1 and f"pid {process.pid}" in err[0] and "being written by another process" in err[0]
        )
        assert not out_dir.exists()
    finally:
        process.kill()
        process.wait()
    assert cli.main(argv) == 0  # the holder is gone: its stale lock is taken over
    assert artifacts.is_complete(out_dir)


# ---------------------------------------------------------------- the executor
@pytest.mark.slow
def test_jobs_2_with_every_core_per_worker_makes_the_single_runs_numbers(single, idx_dir, tmp_path, capsys):
    capsys.readouterr()
    cores = str(len(os.sched_getaffinity(0)))
    assert cli.main(_args(tmp_path, idx_dir, "--jobs", "2", "--threads", cores)) == 0
    out = capsys.readouterr().out
    assert "run: 2 workers: w1 " in out
    assert any(line.startswith("w1| ") for line in out.splitlines())
    assert any(line.startswith("w2| ") for line in out.splitlines())
    assert _metrics(tmp_path) == _metrics(single) and len(_metrics(tmp_path)) == 2
    assert _verify_every_manifest(tmp_path) == _verify_every_manifest(single)


@pytest.mark.slow
def test_two_concurrent_runs_on_one_workdir_write_each_artifact_once(single, idx_dir, tmp_path):
    first = _smear(_args(tmp_path, idx_dir))
    time.sleep(2)
    second = _smear(_args(tmp_path, idx_dir, "--jobs", "2", "--threads", str(len(os.sched_getaffinity(0)))))
    outputs = [p.communicate(timeout=600) for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    assert "Traceback" not in outputs[0][1] + outputs[1][1]
    assert _verify_every_manifest(tmp_path) == _verify_every_manifest(single)
    assert _metrics(tmp_path) == _metrics(single)
    # Every stage ran in exactly one of the two: the other reused it (after waiting for it, or once made).
    stdout = outputs[0][0] + outputs[1][0]
    ran = [
        line.split("] ", 1)[1].split(": done")[0]
        for line in stdout.splitlines()
        if line.startswith("[") and ": done in" in line
    ]
    ran = [label.split(" ", 1)[1] if label.startswith("w") else label for label in ran]
    assert sorted(ran) == sorted(set(ran)) and len(ran) == len(plan(_config(idx_dir), tmp_path))


def _config(idx_dir):
    overrides = [a[len("--config.") :] for a in FAST + [f"--config.data.source_dir={idx_dir}"]]
    return load_config(QUICKSTART, [*overrides, "data.source=idx"])


@pytest.mark.slow
def test_a_failing_stage_is_one_line_at_the_end_and_starts_nothing_after_it(
    single, idx_dir, tmp_path, capsys
):
    workdir = tmp_path / "w"
    for kind in ("data", "models"):  # reuse the single run's data and models; evaluate again
        (workdir / kind).mkdir(parents=True)
        for d in (single / kind).iterdir():
            shutil.copytree(d, workdir / kind / d.name)
    model = sorted((workdir / "models").iterdir())[0]
    size = (
        (model / "model.keras").stat().st_size
    )  # same size: a stat sees nothing, the evaluation's checksum does
    (model / "model.keras").write_bytes(b"x" * size)
    capsys.readouterr()
    assert cli.main(_args(workdir, idx_dir, "--jobs", "2")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"smear run: error: evaluate {model.name.rsplit('-', 1)[0]}: ")
    assert "does not match its checksum" in err[0]
    assert not (workdir / "report").exists()  # it needs the failed evaluation: it never started


@pytest.mark.slow
def test_ctrl_c_stops_the_workers_and_leaves_no_lock_held_and_no_partial_manifest(idx_dir, tmp_path):
    process = _smear(_args(tmp_path, idx_dir, "--jobs", "2", "--config.train.steps=600"))
    deadline = time.time() + 240
    for line in process.stdout:
        if "train teacher-" in line and ": running" in line:
            break
        assert time.time() < deadline, "no training started"
    time.sleep(3)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=90)
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == "smear run: interrupted"
    for model in (tmp_path / "models").iterdir():
        if not model.name.startswith("."):
            assert locks.holder(model) is None  # no worker still writes it
            assert not artifacts.is_complete(model)


@pytest.mark.slow
def test_a_closed_output_stops_the_run_and_its_workers_quietly(idx_dir, tmp_path):
    """`smear run --jobs 2 ... | head -1`: the workers' lines then meet a closed pipe; the run stops them
    and exits 141 without a traceback, instead of waiting for results a dead reader thread dropped."""
    process = _smear(_args(tmp_path, idx_dir, "--jobs", "2", "--config.train.steps=600"))
    for line in process.stdout:  # the estimate, then the workers: they have started
        if "workers" in line:
            break
    process.stdout.close()  # the reader goes away
    _, err = process.communicate(timeout=120)
    assert process.returncode == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    for model in (tmp_path / "models").glob("[!.]*"):
        assert locks.holder(model) is None and not artifacts.is_complete(model)  # stopped, not finished


def test_bad_jobs_flags_are_one_line_errors(tmp_path, idx_dir, capsys):
    for extra, message in (
        (["--jobs", "0"], "--jobs must be >= 1"),
        (["--devices", "0,1"], "--devices needs --jobs N"),
        (["--jobs", "2", "--devices", "0"], "--jobs 2 needs at least 2 devices"),
        (["--jobs", "2", "--devices", "7,8"], "--devices 7,8: TensorFlow sees no GPU here"),
        (["--threads", "2"], "--threads must be >= 1 and needs --jobs"),
    ):
        capsys.readouterr()
        assert cli.main(_args(tmp_path, idx_dir, *extra)) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (extra, err)
    assert not (tmp_path / "data").exists()


def test_worker_environments_split_devices_or_cores():
    envs = executor.worker_environments(2, "0,1,2,3", visible=["0", "1", "2", "3"])
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0,2", "1,3"]
    with pytest.raises(UserError, match=r"--devices 7,8: no device 7, 8 here \(TensorFlow sees GPUs 0, 1\)"):
        executor.worker_environments(2, "7,8", visible=["0", "1"])
    with pytest.raises(UserError, match="TensorFlow sees no GPU here; leave --devices out"):
        executor.worker_environments(2, "0,1")  # this machine: no GPU
    cores = len(os.sched_getaffinity(0))
    assert [e["SMEAR_WORKER_THREADS"] for e in executor.worker_environments(2)] == [
        str(max(1, cores // 2))
    ] * 2
    assert executor.worker_environments(2, threads=3)[0]["SMEAR_WORKER_THREADS"] == "3"
    with pytest.raises(UserError, match="names no device"):
        executor.worker_environments(2, ",")


def test_a_process_checksums_an_unchanged_input_once_and_a_changed_one_again(tmp_path, monkeypatch):
    out = artifacts.prepare_output(tmp_path / "art")
    (out / "data.bin").write_bytes(b"0123456789")
    artifacts.write_manifest(out, stage="test", fingerprint="f", config={})
    hashed = []
    real = artifacts.sha256_file
    monkeypatch.setattr(artifacts, "sha256_file", lambda p: hashed.append(p) or real(p))
    artifacts.read_manifest(out)
    artifacts.read_manifest(out)
    assert len(hashed) == 1  # the second read (another stage of a worker) found it verified
    time.sleep(0.01)
    (out / "data.bin").write_bytes(b"0123456780")  # same size, new bytes
    with pytest.raises(UserError, match="does not match its checksum"):
        artifacts.read_manifest(out)
    assert len(hashed) == 2


def test_the_dry_run_shows_an_artifact_another_process_is_writing(tmp_path, idx_dir, capsys):
    out_dir = Path(layout.data(_config(idx_dir), tmp_path).path)
    process = _holder(out_dir)
    try:
        capsys.readouterr()
        assert cli.main(_args(tmp_path, idx_dir, "--dry-run")) == 0
        line = next(x for x in capsys.readouterr().out.splitlines() if str(out_dir) in x and "noisify" in x)
        assert f"writing (pid {process.pid})" in line
    finally:
        process.kill()
        process.wait()


def test_a_worker_killed_from_outside_is_the_users_matter_a_crash_is_a_bug():
    """`smear run --jobs N` exits 2 when a worker was killed (SIGKILL: the OOM killer, a kill), 1 on a crash."""
    for returncode, user in ((-signal.SIGKILL, True), (-signal.SIGTERM, True), (-signal.SIGSEGV, False),
                             (-signal.SIGABRT, False), (3, False)):  # fmt: skip
        message, is_user = executor._death(returncode)
        assert is_user is user and message.endswith("rerun to resume"), (returncode, message)
    assert "SIGKILL from outside" in executor._death(-signal.SIGKILL)[0]


def test_jobs_beyond_the_plans_width_or_the_free_memory_are_cut_with_one_line(tmp_path, idx_dir):
    nodes = plan(_config(idx_dir), tmp_path)
    width = executor.parallel_width(nodes)
    assert 1 < width < len(nodes)

    def ancestors(node, seen) -> set[int]:
        for n in node.inputs:
            if id(n) not in seen:
                seen.add(id(n))
                ancestors(n, seen)
        return seen

    # Some `width` stages are independent (no chain of inputs joins two of them): they can run at once.
    above = {id(n): ancestors(n, set()) for n in nodes}
    levels = {}
    for node in nodes:
        chain = 0
        stack = [(node, 0)]
        while stack:  # the longest chain of inputs above the node
            current, d = stack.pop()
            chain = max(chain, d)
            stack += [(n, d + 1) for n in current.inputs]
        levels.setdefault(chain, []).append(node)
    level = max(levels.values(), key=len)
    assert len(level) == width and not any(id(a) in above[id(b)] for a in level for b in level)

    said = []
    assert executor.capped_jobs(1000, nodes, said.append, available=64 << 30) == width
    assert said == [f"run: --jobs 1000 cut to {width}: the plan runs at most {width} stages at once"]
    said.clear()
    assert executor.capped_jobs(width, nodes, said.append, available=(3 << 30) // 2 + (1 << 27)) == 1
    assert said == [f"run: --jobs {width} cut to 1: 1.6 GiB of memory is free, for 1 worker of about 1.5 GiB"]
    said.clear()
    assert executor.capped_jobs(2, nodes, said.append, available=None) == 2 and not said
    assert executor.capped_jobs(1, nodes, said.append, available=1) == 1 and not said
