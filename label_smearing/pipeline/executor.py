"""Runs a plan's nodes: one at a time in this process, or concurrently in N worker processes.

    execute(nodes, jobs=1)   in order, in this process (what `smear run` always did)
    execute(nodes, jobs=N)   N long-lived workers (`label_smearing.pipeline.worker`), each importing TensorFlow
                             once and running stage after stage; a node starts once its inputs
                             are complete, on the first idle worker

Every node runs under its artifact's lock (`label_smearing.core.locks`), then checks
again whether its complete artifact exists: another `smear run` on the same
workdir may have made it meanwhile, and then it is reused. A node whose lock
another live process holds is not run here: the run waits for that process and
reuses what it made (if that process fails, the lock is freed and this run
computes the node itself).

Each worker gets its own accelerators (`--devices`, else the GPUs detected,
split between the workers) or, on CPU, its share of the cores (TensorFlow's
intra- and inter-op threads). Its output lines are prefixed `wK|`.

On a failure no new node starts; the running ones finish; every failure is one
line at the end (`StagesFailed`). Ctrl-C interrupts the workers (a training
resumes from its back-up next time) and exits 130.
"""

from __future__ import annotations

import importlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from label_smearing.core import artifacts, lifecycle, locks, resources
from label_smearing.core.errors import UserError
from label_smearing.core.oserrors import os_errors_as_user_errors
from label_smearing.core.registry import TRAIN
from label_smearing.pipeline import publish
from label_smearing.pipeline.estimate import duration
from label_smearing.pipeline.plan import Node

RESULT_MARK = "\x1esmear-result "  # starts a worker's result line; other lines are the stages' output
WAIT_SECONDS = 2.0  # how often a node held by another process is looked at again


class StagesFailed(UserError):
    """Some nodes failed; `failures` holds one (label, message) per failed node.

    Its message is the failure when there is one, else their count (the caller lists them).
    """

    def __init__(self, failures: list[tuple[str, str]], exit_status: int = 2):
        self.failures, self.exit_status = failures, exit_status
        if len(failures) == 1:
            super().__init__(f"{failures[0][0]}: {failures[0][1]}")
        else:
            super().__init__(f"{len(failures)} stages failed (each named above)")


def cached(node: Node) -> bool:
    """Whether the node's complete artifact, with its fingerprint and made from its inputs as they are, exists."""
    return artifacts.is_current(node.out_dir, node.fingerprint)


def failure_message(error: BaseException) -> tuple[str, bool]:
    """(one line saying what went wrong, whether the user can fix it: a UserError, an OS or resource error)."""
    if isinstance(error, UserError):
        return str(error), True
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": "), False


def run_node(node: Node, *, force: bool, beam_args=(), log=print, source: dict | None = None) -> dict:
    """Runs one node through its stage's artifact lifecycle (`lifecycle.run_stage`); returns its result record.

    The stage is the node's registered kind: its module's `compute_planned(request)`.
    The record's "status" is "ran", "cached" (made meanwhile by another process),
    "held" (another live process is writing it; "holder" names it) or "failed"
    ("message" is one line; "user" says whether the user can fix it). Never raises
    but for KeyboardInterrupt.
    """
    started = time.time()
    try:
        compute = importlib.import_module(node.stage.module).compute_planned
        request = node.request(force=force, beam_args=beam_args, log=log, command=node.remake(source))
        with os_errors_as_user_errors(node.out_dir, verbose=os.environ.get("SMEAR_VERBOSE") == "1"):
            status, _ = lifecycle.run_stage(request, compute)
        if status == lifecycle.CACHED:
            return {"status": "cached"}
        if node.kind == TRAIN:
            import keras

            keras.backend.clear_session()  # free the graph before the next model
        return {"status": "ran", "seconds": round(time.time() - started, 2)}
    except locks.LockHeld as e:
        return {"status": "held", "holder": e.holder, "message": str(e)}
    except Exception as e:  # noqa: BLE001 - every failure becomes one line at the end of the run
        message, user = failure_message(e)
        if not user:
            traceback.print_exc(file=sys.stdout)  # a bug: its traceback goes with the stage's output
        return {"status": "failed", "message": message, "user": user}
    finally:
        locks.release_all()


# ---------------------------------------------------------------- workers
class _InlineWorker:
    """Runs nodes in this process, one call at a time (`--jobs 1`)."""

    name = ""

    def __init__(self, nodes: list[Node], beam_args, results: queue.Queue, log, source: dict | None = None):
        self.nodes, self.beam_args, self.results, self.log = nodes, beam_args, results, log
        self.source, self.alive = source, True

    def submit(self, index: int, force: bool, fingerprint: str) -> None:
        node = self.nodes[index]
        result = run_node(node, force=force, beam_args=self.beam_args, log=self.log, source=self.source)
        self.results.put((self, result))

    def interrupt(self) -> None:
        pass

    def close(self) -> None:
        pass


class _ProcessWorker:
    """A `label_smearing.pipeline.worker` process: reads node indices on stdin, prints output lines and result lines."""

    def __init__(
        self, number: int, source: dict, env: dict, results: queue.Queue, echo: Callable[[str], None]
    ):  # fmt: skip
        self.name, self.results, self.echo, self.alive = f"w{number}", results, echo, True
        self.process = subprocess.Popen(
            [sys.executable, "-m", "label_smearing.pipeline.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            bufsize=1,
            start_new_session=True,  # the terminal's Ctrl-C reaches the parent, which stops the workers
        )
        self.process.stdin.write(json.dumps(source) + "\n")
        self.process.stdin.flush()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            if line.startswith(RESULT_MARK):
                self.results.put((self, json.loads(line[len(RESULT_MARK) :])))
            else:
                self.echo(f"{self.name}| {line.rstrip()}")
        returncode = self.process.wait()
        self.alive = False
        self.results.put((self, {"status": "died", "returncode": returncode}))

    def submit(self, index: int, force: bool, fingerprint: str) -> None:
        try:
            self.process.stdin.write(f"{index} {int(force)} {fingerprint}\n")
            self.process.stdin.flush()
        except OSError:  # it died; its reader reports that
            pass

    def interrupt(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)

    def close(self, timeout: float = 60) -> None:
        if self.process.stdin and not self.process.stdin.closed:
            try:
                self.process.stdin.close()
            except OSError:
                pass
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.reader.join(5)


def visible_accelerators() -> list[str]:
    """The GPU ids a worker's CUDA_VISIBLE_DEVICES may name: this process's own CUDA_VISIBLE_DEVICES
    entries if it has them, else 0 .. (the GPUs TensorFlow sees) - 1."""
    import tensorflow as tf

    count = len(tf.config.list_physical_devices("GPU"))
    own = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return own[:count] if own else [str(i) for i in range(count)]


def worker_environments(
    jobs: int, devices: str | None = None, threads: int = 0, visible: list[str] | None = None
) -> list[dict[str, str]]:
    """Each worker's environment: its accelerators (CUDA_VISIBLE_DEVICES) or, on CPU, its share of the cores.

    Args:
      jobs: the number of workers.
      devices: comma-separated accelerator ids to split between the workers ("0,1,2,3");
        None = the GPUs TensorFlow sees here, or the CPU cores when there are none.
      threads: on CPU, each worker's intra- and inter-op threads; 0 = its share, cores // jobs.
      visible: the ids `devices` may name (None: `visible_accelerators()`).

    Raises:
      UserError: fewer devices than workers, naming both; a device this machine does not have.
    """
    ids = [d.strip() for d in devices.split(",") if d.strip()] if devices else []
    if devices is not None and not ids:
        raise UserError(f"--devices {devices!r} names no device; give ids such as 0,1")
    if not ids and devices is None:
        ids = visible_accelerators()
    if ids and len(ids) < jobs:
        raise UserError(f"--jobs {jobs} needs at least {jobs} devices, one per worker; there are {len(ids)}")
    if devices is not None:
        visible = visible_accelerators() if visible is None else visible
        unknown = [d for d in ids if d not in visible]
        if not visible:
            raise UserError(
                f"--devices {devices}: TensorFlow sees no GPU here; leave --devices out to split the CPU cores "
                "between the workers"
            )
        if unknown:
            raise UserError(
                f"--devices {devices}: no device {', '.join(unknown)} here (TensorFlow sees GPUs {', '.join(visible)})"
            )
    base = {k: v for k, v in os.environ.items() if k not in ("SMEAR_WORKER_THREADS", "CUDA_VISIBLE_DEVICES")}
    if ids:
        share = [ids[k::jobs] for k in range(jobs)]
        return [dict(base, CUDA_VISIBLE_DEVICES=",".join(sorted(s, key=ids.index))) for s in share]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return [dict(base, SMEAR_WORKER_THREADS=str(threads or max(1, cores // jobs))) for _ in range(jobs)]


# A worker process's memory once TensorFlow and Beam are loaded and a stage runs (1.1-1.5 GB measured on
# the quickstart's stages, benchmarks/memory.py): what --jobs N must find free for each worker.
WORKER_BYTES = 3 << 29  # 1.5 GiB


def parallel_width(nodes: list[Node]) -> int:
    """How many nodes of the plan can run at once: the most nodes of one depth (the longest chain of
    inputs above a node), which no chain of inputs joins. A plan's stages come in layers (data,
    teachers, exports and evaluations, students, report), so this is the widest layer; a plan of
    another shape may run more at once than this says."""
    depth: dict[int, int] = {}

    def depth_of(node: Node) -> int:
        if id(node) not in depth:
            depth[id(node)] = 1 + max((depth_of(n) for n in node.inputs), default=-1)
        return depth[id(node)]

    widths: dict[int, int] = {}
    for node in nodes:
        widths[depth_of(node)] = widths.get(depth_of(node), 0) + 1
    return max(widths.values(), default=1)


def capped_jobs(jobs: int, nodes: list[Node], log=print, available: int | None = -1) -> int:
    """`jobs`, cut to the plan's parallel width and to the workers the free memory holds, with one line
    saying so (`available`: free bytes, None if unknown; -1 reads them)."""
    if jobs <= 1:
        return jobs
    if available == -1:
        found = resources.available_memory()
        available = found[0] if found else None
    width = parallel_width(nodes)
    limits = [(width, f"the plan runs at most {width} stages at once")]
    if available is not None:
        fit = max(1, available // WORKER_BYTES)
        limits.append((fit, f"{resources.describe_bytes(available)} of memory is free, for {fit} "
                            f"worker{'s' if fit > 1 else ''} of about {resources.describe_bytes(WORKER_BYTES)}"))  # fmt: skip
    cap, why = min(limits)
    if jobs <= cap:
        return jobs
    log(f"run: --jobs {jobs} cut to {cap}: {why}")
    return cap


# ---------------------------------------------------------------- the scheduler
def execute(
    nodes: list[Node], *, jobs: int = 1, devices: str | None = None, threads: int = 0, force: bool = False,
    log=print, workdir: str | Path | None = None, beam_args=(), source: dict | None = None,
    recompute: set[int] = frozenset(), seconds_left: Callable[[set[int]], float] | None = None,
) -> dict:  # fmt: skip
    """Runs the nodes, each after its inputs; returns {"ran": [...], "cached": [...], "seconds": ...}.

    The nodes at the indices in `recompute` (damaged, `smear run --verify`) are recomputed as with
    --force. `seconds_left(ids of the finished nodes)` estimates the time still to go, said on
    each `done` line. With `workdir`, each node that ran appends its wall time to <workdir>/stage_times.jsonl.
    `source` says how the nodes were planned, {"config": "NAME[:arg] or path.py[:arg]",
    "overrides": ["key=value", ...], "workdir": ...}: each artifact's manifest records the
    command that recomputes it from there (`Node.remake`). With jobs > 1 it is needed: each
    worker plans the nodes again from it (nothing is pickled), and runs a node only if its
    fingerprint is the one planned here.

    Raises:
      StagesFailed: some nodes failed (the others that could run have run), one line each.
      KeyboardInterrupt: Ctrl-C; the workers were stopped.
      BrokenPipeError: the output was closed (`smear run ... | head`); the workers were stopped.
    """
    if jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {jobs}")
    jobs = capped_jobs(jobs, nodes, log)
    started = time.time()
    results: queue.Queue = queue.Queue()
    lock = threading.Lock()

    broken = threading.Event()  # the reader of our output went away (`smear run ... | head`)

    def echo(line: str) -> None:
        with lock:
            try:
                log(line)
            except BrokenPipeError:  # in a worker's reader thread too: it must live on to pass results
                broken.set()

    if jobs == 1:
        workers: list = [_InlineWorker(nodes, beam_args, results, log, source)]
    else:
        if source is None:
            raise ValueError("execute(jobs > 1) needs the plan's source, for the workers to plan it too")
        environments = worker_environments(jobs, devices, threads)
        source = {**source, "beam_args": list(beam_args)}
        workers = [_ProcessWorker(k + 1, source, env, results, echo) for k, env in enumerate(environments)]
        echo(
            f"run: {jobs} workers: "
            + ", ".join(f"{w.name} {_resources(env)}" for w, env in zip(workers, environments))
        )
    index = {id(n): i for i, n in enumerate(nodes)}
    total = len(nodes)
    pending = list(range(total))
    done: set[int] = set()
    running: dict[object, int] = {}  # worker -> node index
    retry_at: dict[int, float] = {}  # node index -> when to look again (its lock is held elsewhere)
    told_held: set[int] = set()
    ran, reused, failures = [], [], []
    bug = False
    stopping = False

    def prefix(worker) -> str:
        return f"[{len(done)}/{total}]" + (f" {worker.name}" if worker.name else "")

    def ready(i: int) -> bool:
        return all(index[id(n)] in done for n in nodes[i].inputs) and retry_at.get(i, 0) <= time.time()

    def finish(i: int, worker, how: str, seconds: float | None = None) -> None:
        done.add(i)
        node = nodes[i]
        if how == "cached":
            reused.append(node.label)
            echo(f"{prefix(worker)} {node.label}: cached ({node.out_dir})")
            return
        ran.append(node.label)
        if workdir is not None and seconds is not None:
            publish.record_time(workdir, node, seconds)
        left, elapsed = total - len(done), time.time() - started
        eta = ""
        if seconds_left is not None and left:
            eta = f", about {duration(seconds_left({id(nodes[k]) for k in done}))} to go"
        echo(
            f"{prefix(worker)} {node.label}: done in {seconds:.1f} s ({left} left{eta}, total {elapsed:.1f} s)"
        )

    try:
        while pending or running:
            if broken.is_set():
                raise BrokenPipeError("the output of the run was closed")
            idle = [w for w in workers if w.alive and w not in running]
            while idle and not stopping:
                choice = next((i for i in pending if ready(i)), None)
                if choice is None:
                    break
                node = nodes[choice]
                if not force and choice not in recompute and cached(node):
                    pending.remove(choice)
                    finish(choice, idle[0], "cached")
                    continue
                holder = locks.holder(node.out_dir) if not artifacts.is_url(node.out_dir) else None
                if holder is not None:
                    _held(choice, holder, node, retry_at, told_held, echo)
                    continue
                worker = idle.pop(0)
                pending.remove(choice)
                running[worker] = choice
                echo(f"{prefix(worker)} {node.label}: running -> {node.out_dir}")
                worker.submit(choice, force or choice in recompute, node.fingerprint)
            if not running:
                if stopping or not any(w.alive for w in workers):
                    break
                if pending and not any(ready(i) for i in pending):
                    time.sleep(
                        min(WAIT_SECONDS, max(0.05, min(retry_at.get(i, 0) for i in pending) - time.time()))
                    )
                continue
            try:
                worker, result = results.get(timeout=1.0)
            except queue.Empty:
                continue
            i = running.pop(worker, None)
            if i is None:
                continue
            status = result["status"]
            if status in ("ran", "cached"):
                finish(i, worker, status, result.get("seconds"))
            elif status == "held":
                pending.insert(0, i)
                _held(i, result.get("holder") or {}, nodes[i], retry_at, told_held, echo)
            else:
                if status == "died":
                    message, user = _death(result["returncode"])
                else:
                    message, user = result["message"], result["user"]
                bug = bug or not user
                failures.append((nodes[i].label, message))
                echo(f"{prefix(worker)} {nodes[i].label}: failed: {message}")
                stopping = True
        if pending and not failures and not stopping:
            failures.append(("run", "every worker died before the plan was done"))
    except (KeyboardInterrupt, BrokenPipeError) as e:
        if isinstance(e, KeyboardInterrupt):
            echo("run: interrupted; stopping the workers (a training resumes from its back-up next time)")
        for worker in workers:
            worker.interrupt()
        raise
    finally:  # whatever ended the loop: no worker outlives the run
        for worker in workers:
            worker.close()
    if failures:
        raise StagesFailed(failures, exit_status=1 if bug else 2)
    return {"ran": ran, "cached": reused, "seconds": round(time.time() - started, 2)}


def _held(i: int, holder: dict, node: Node, retry_at: dict, told: set, echo) -> None:
    retry_at[i] = time.time() + WAIT_SECONDS
    if i not in told:
        told.add(i)
        echo(
            f"run: {node.label}: waiting for pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
            f"which is writing {node.out_dir}; then it is reused"
        )


# A worker's return codes when a signal from outside ended it (the OOM killer's SIGKILL, a kill, a hang-up):
# the run's exit status is then 2, a user's matter; a crash (SIGSEGV, SIGABRT, an exit status) stays 1, a bug.
_KILLED = {-signal.SIGKILL, -signal.SIGTERM, -signal.SIGINT, -signal.SIGHUP}


def _death(returncode: int) -> tuple[str, bool]:
    """(the line, whether it is the user's matter) for a worker that ended with `returncode` mid-stage."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        outside = " from outside (a kill, or the out-of-memory killer)" if returncode in _KILLED else ""
        return f"its worker process died ({name}{outside}); rerun to resume", returncode in _KILLED
    return f"its worker process exited with status {returncode}; rerun to resume", False


def _resources(env: dict) -> str:
    if "CUDA_VISIBLE_DEVICES" in env:
        return f"(devices {env['CUDA_VISIBLE_DEVICES']})"
    return f"({env['SMEAR_WORKER_THREADS']} CPU threads)"
