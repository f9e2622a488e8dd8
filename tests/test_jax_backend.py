"""Losses, the ECE metric, LARS and the batch norm give the NumPy reference numbers under JAX.

Keras picks its backend once, at import, and this pytest process already runs Keras on
TensorFlow; so the backend-neutral tests of test_losses.py, test_metrics.py and
test_optimizers.py (and the batch-norm fallback test of test_models.py) run again in a
subprocess with KERAS_BACKEND=jax, where importing TensorFlow fails as if it were not
installed: Keras then skips its own optional TensorFlow checks, and any use of
TensorFlow by our code fails the run. About 20 s on 2 CPU cores.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # whole runs and subprocesses: `make test-fast` leaves them out

pytest.importorskip("jax")

ROOT = Path(__file__).resolve().parent.parent
TESTS = [
    "tests/test_losses.py",
    "tests/test_metrics.py",
    "tests/test_optimizers.py",
    "tests/test_models.py::test_fused_batch_norm_normalises_like_keras_batch_norm_on_any_backend",
]
# The TensorFlow-only tests among them: tf.function in test_losses, tf.distribute in test_optimizers.
MAX_SKIPPED = 2

# Runs pytest with TensorFlow unimportable; prints the backend so the test can check it.
_RUNNER = """
import importlib.abc, sys

class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError(f"No module named {name!r} (blocked under the JAX backend)", name=name)

sys.meta_path.insert(0, NoTensorFlow())
import keras, pytest
print("keras backend:", keras.backend.backend())
sys.exit(pytest.main(sys.argv[1:]))
"""


def test_numeric_tests_pass_under_jax():
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    env.pop("JAX_ENABLE_X64", None)  # float32, as on an accelerator
    result = subprocess.run(
        [sys.executable, "-c", _RUNNER, *TESTS, "-rs"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "keras backend: jax" in output
    # Only the TensorFlow-only tests were skipped: the numeric tests really ran.
    passed = int(re.search(r"(\d+) passed", output)[1])
    skipped = re.search(r"(\d+) skipped", output)
    assert passed >= 90 and (skipped is None or int(skipped[1]) <= MAX_SKIPPED), output[-3000:]
