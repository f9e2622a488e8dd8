"""A `smear run --jobs N` worker: a long-lived process that runs plan nodes one after another.

Started by `label_smearing.pipeline.executor` as `python -m label_smearing.pipeline.worker`. It imports
TensorFlow once and applies its share of the CPU (SMEAR_WORKER_THREADS: intra-
and inter-op threads) before any op runs (its accelerators come in
CUDA_VISIBLE_DEVICES). It reads on stdin one JSON line, the plan's source
({"config", "overrides", "workdir", "beam_args"}), and plans the same nodes as
the parent; then one `INDEX FORCE FINGERPRINT` line per node to run, which it
runs if the fingerprint is its node's (the config file was not edited between),
answering each with a result line (`executor.RESULT_MARK` + JSON, see
`executor.run_node`). Everything else it prints is the stages' output, which the
parent prefixes with the worker's name. Closing stdin ends it; SIGINT interrupts
the running stage and ends it.
"""

from __future__ import annotations

import json
import os
import signal
import sys


def main() -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    signal.signal(signal.SIGINT, signal.default_int_handler)  # the parent's Ctrl-C, even if ours was ignored
    sys.stdout.reconfigure(line_buffering=True)
    from label_smearing.core.cli_common import quiet_native_stderr

    with quiet_native_stderr(os.environ.get("SMEAR_VERBOSE") != "1"):
        import apache_beam  # noqa: F401 - loaded once, with its start-up lines silenced
        import tensorflow as tf

        tf.config.list_physical_devices()
    threads = int(os.environ.get("SMEAR_WORKER_THREADS", "0"))
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    from label_smearing.core.config import load_config
    from label_smearing.pipeline.executor import RESULT_MARK, run_node
    from label_smearing.pipeline.plan import plan

    source = json.loads(sys.stdin.readline())
    nodes = plan(load_config(source["config"], source["overrides"]), source["workdir"])
    by_fingerprint = {n.fingerprint: n for n in nodes}
    try:
        for line in sys.stdin:
            index, force, fingerprint = line.split()
            node = nodes[int(index)] if int(index) < len(nodes) else None
            if node is None or node.fingerprint != fingerprint:
                # A plan with confirmation seeds grows once the selection is evaluated: find it by fingerprint.
                node = by_fingerprint.get(fingerprint)
            if node is None:
                message = f"the config {source['config']} changed after the run started; rerun it"
                result = {"status": "failed", "message": message, "user": True}
            else:
                result = run_node(
                    node, force=force == "1", beam_args=source["beam_args"], log=print, source=source
                )
            print(RESULT_MARK + json.dumps(result, default=str), flush=True)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    from label_smearing.core.cli_common import exit_now

    exit_now(main())  # without the interpreter's teardown: the parent waits for this process to end
