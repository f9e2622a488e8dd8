"""A stage whose output changes must say so: its compute version (registry.STAGES) is bumped with it.

For the stage kinds whose smoke output is deterministic here, tests/fixtures/stage_digests.json
records the kind's compute version and a digest of what it writes from fixed inputs. The test
fails when the digest changes while the version stays: a forgotten bump would leave every
cached artifact of that kind (and everything downstream) standing for outputs the code no
longer makes. After a deliberate change: bump the kind's version, name it in CHANGELOG.md, and
record the new digest with `SMEAR_UPDATE_DIGESTS=1 pytest tests/test_stage_digests.py`.

The digest covers the data files a manifest checksums, minus what is not the stage's result:
TensorBoard event files and the synthetic summary (they carry wall times) and figures (their bytes depend on matplotlib's
build); the figures' data are in the JSON and CSV files that are covered.

estimate-transition and synthetic compute in floating point with TensorFlow's CPU kernels, whose
last bits differ between CPUs (AVX2 against AVX-512/AMX builds of the same kernels): for them the
fixture records the numbers of their JSON and .npy files instead of a digest, and the test
compares them within a relative 1e-3 (strings, integers, keys and shapes exactly). A real change
of output moves them by far more.
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from label_smearing.core import artifacts, registry
from label_smearing.core.config import load_config
from label_smearing.core.registry import ESTIMATE_TRANSITION, NOISIFY, REPORT, SYNTHETIC
from tests.idx_fixture import write_idx_dataset

FIXTURE = Path(__file__).parent / "fixtures" / "stage_digests.json"
NOT_RESULTS = (".png", ".svg", ".pdf")


WALL_TIMES = ("summary.md",)  # the synthetic experiments' summary: the data plus how long each took


def digest(out_dir) -> str:
    """SHA-256 over (path, SHA-256) of every file the artifact's manifest checksums, figures and logs aside."""
    files = artifacts.read_manifest(out_dir)["files"]
    kept = sorted(
        (rel, entry["sha256"])
        for rel, entry in files.items()
        if not rel.endswith(NOT_RESULTS)
        and "tfevents" not in rel
        and not rel.startswith("tensorboard/")
        and rel not in WALL_TIMES
    )
    assert kept, f"{out_dir}: nothing to digest"
    return hashlib.sha256(json.dumps(kept).encode()).hexdigest()


def _noisify(tmp: Path) -> Path:
    from label_smearing.stages import noisify

    idx = write_idx_dataset(tmp / "idx", num_train=600, num_test=100)
    config = load_config("quickstart:smoke", ["data.source=idx", f"data.source_dir={idx}"])
    noisify.noisify_stage(config, tmp / "out", log=lambda _: None)
    return tmp / "out"


def _estimate(tmp: Path) -> Path:
    from label_smearing.stages import estimate_transition
    from tests.test_estimate_transition import synthetic_probabilities, write_logits_artifact

    logits = write_logits_artifact(tmp / "logits", synthetic_probabilities(outliers=True))
    config = load_config("quickstart:smoke", ["estimate.percentile=97"])
    estimate_transition.estimate_stage(config, logits, tmp / "out", log=lambda _: None)
    return tmp / "out"


def _report(tmp: Path) -> Path:
    from label_smearing.stages.report import report_stage
    from tests.test_report import _fixture_evaluations

    dirs = _fixture_evaluations(tmp / "work")
    report_stage(load_config("quickstart:smoke"), dirs, tmp / "out", log=lambda _: None)
    return tmp / "out"


def _synthetic(tmp: Path) -> Path:
    # In a fresh process, as a user runs it: its Keras fits read process-wide state (the dtype
    # policy, op determinism, threads) that other tests of this session may have set.
    subprocess.run(
        [sys.executable, "-m", "label_smearing.cli", "synthetic", "--config", "synthetic:smoke",
         "--workdir", str(tmp / "work")],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    (out,) = (tmp / "work" / "synthetic").iterdir()
    return out


MAKERS = {NOISIFY: _noisify, ESTIMATE_TRANSITION: _estimate, REPORT: _report, SYNTHETIC: _synthetic}
BY_VALUE = (ESTIMATE_TRANSITION, SYNTHETIC)  # floating point that differs in its last bits between CPUs
RTOL, ATOL = 1e-3, 1e-6


def values(out_dir) -> dict:
    """The contents of the artifact's JSON and .npy files (as nested lists), by path; other files aside."""
    import numpy as np

    out: dict = {}
    for rel in sorted(artifacts.read_manifest(out_dir)["files"]):
        path = Path(out_dir) / rel
        if rel.endswith(".json"):
            out[rel] = json.loads(path.read_text())
        elif rel.endswith(".npy"):
            out[rel] = np.load(path).tolist()
    assert out, f"{out_dir}: no JSON or .npy file"
    return out


def differences(got, want, where: str = "") -> list[str]:
    """Where `got` differs from `want`: floats beyond RTOL/ATOL, anything else unless equal."""
    if isinstance(want, dict) and isinstance(got, dict):
        if set(got) != set(want):
            return [f"{where}: keys {sorted(set(got) ^ set(want))} differ"]
        return [d for k in want for d in differences(got[k], want[k], f"{where}/{k}")]
    if isinstance(want, list) and isinstance(got, list):
        if len(got) != len(want):
            return [f"{where}: length {len(got)}, recorded {len(want)}"]
        return [d for i, (g, w) in enumerate(zip(got, want)) for d in differences(g, w, f"{where}[{i}]")]
    if isinstance(want, float) or isinstance(got, float):
        if isinstance(got, bool) or not isinstance(got, (int, float)) or not isinstance(want, (int, float)):
            return [f"{where}: {got!r}, recorded {want!r}"]
        close = abs(got - want) <= ATOL + RTOL * abs(want) or (got != got and want != want)  # NaN == NaN here
        return [] if close else [f"{where}: {got!r}, recorded {want!r}"]
    return [] if got == want else [f"{where}: {got!r}, recorded {want!r}"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_a_changed_output_comes_with_a_bumped_compute_version(kind, tmp_path):
    recorded = json.loads(FIXTURE.read_text())
    out = MAKERS[kind](tmp_path)
    key = "values" if kind in BY_VALUE else "digest"
    got = values(out) if kind in BY_VALUE else digest(out)
    version = registry.STAGES[kind].version
    if os.environ.get("SMEAR_UPDATE_DIGESTS") == "1":
        recorded[kind] = {"version": version, key: got}
        FIXTURE.write_text(json.dumps(dict(sorted(recorded.items())), indent=1) + "\n")
        return
    assert recorded[kind]["version"] == version, (
        f"{kind}'s compute version is now {version}: record its new output digest "
        "(SMEAR_UPDATE_DIGESTS=1 pytest tests/test_stage_digests.py) and name the bump in CHANGELOG.md"
    )
    want = recorded[kind][key]
    changed = (
        differences(got, want)
        if kind in BY_VALUE
        else ([] if got == want else [f"digest {got}, recorded {want}"])
    )
    assert not changed, (
        f"{kind}'s smoke output changed while its compute version stayed {version}: cached artifacts of the "
        f"old output would be reused. Bump registry.STAGES[{kind!r}].version, name it in CHANGELOG.md, then "
        f"SMEAR_UPDATE_DIGESTS=1 pytest tests/test_stage_digests.py (first of {len(changed)}: {changed[0]})"
    )


def test_the_value_comparison_sees_a_changed_number_and_forgives_the_last_bits():
    recorded = {"t.json": {"matrix": [[0.9, 0.1], [0.2, 0.8]], "name": "x", "n": 3}}
    same = {"t.json": {"matrix": [[0.9 * (1 + 1e-6), 0.1], [0.2, 0.8 - 1e-7]], "name": "x", "n": 3}}
    assert differences(same, recorded) == []
    moved = {"t.json": {"matrix": [[0.9, 0.1], [0.21, 0.8]], "name": "x", "n": 3}}
    assert differences(moved, recorded) == ["/t.json/matrix[1][0]: 0.21, recorded 0.2"]
    assert differences({"t.json": {**recorded["t.json"], "n": 4}}, recorded) == ["/t.json/n: 4, recorded 3"]
    assert differences({"t.json": {"matrix": [[0.9, 0.1]], "name": "x", "n": 3}}, recorded)
    assert differences({"u.json": recorded["t.json"]}, recorded)


def test_the_digest_sees_a_changed_result_file(tmp_path):
    out = tmp_path / "a"
    out.mkdir()
    (out / "result.json").write_text("1")
    (out / "figure.png").write_bytes(b"png")
    artifacts.write_manifest(out, stage=REPORT, fingerprint="f" * 64, config={})
    first = digest(out)
    (out / "figure.png").write_bytes(b"other png")  # a figure's bytes are not the result
    (out / "manifest.json").unlink()
    artifacts.write_manifest(out, stage=REPORT, fingerprint="f" * 64, config={})
    assert digest(out) == first
    (out / "result.json").write_text("2")
    (out / "manifest.json").unlink()
    artifacts.write_manifest(out, stage=REPORT, fingerprint="f" * 64, config={})
    assert digest(out) != first
