"""The one artifact lifecycle (label_smearing/core/lifecycle.py): cached, locked, computed, checked."""

import pytest

from label_smearing.core import artifacts, lifecycle, locks
from label_smearing.core.registry import NOISIFY, StageRequest


def _compute_with(fingerprint: str, calls: list):
    def compute(request: StageRequest) -> dict:
        calls.append(locks.held())
        out = artifacts.prepare_output(request.out_dir, force=request.force)
        (out / "data.txt").write_text("x")
        return artifacts.write_manifest(out, stage=NOISIFY, fingerprint=fingerprint, config={})

    return compute


def test_computes_under_the_lock_then_reuses_the_complete_artifact(tmp_path):
    request = StageRequest(None, {}, tmp_path / "a", "f" * 64, "a")
    calls: list = []
    assert lifecycle.run_stage(request, _compute_with("f" * 64, calls))[0] == lifecycle.RAN
    assert calls == [[str(tmp_path / "a")]]  # computed while holding the artifact's lock
    assert locks.held() == []  # released after
    status, manifest = lifecycle.run_stage(request, _compute_with("f" * 64, calls))
    assert status == lifecycle.CACHED and manifest["fingerprint"] == "f" * 64 and len(calls) == 1
    request.force = True
    assert (
        lifecycle.run_stage(request, _compute_with("f" * 64, calls))[0] == lifecycle.RAN and len(calls) == 2
    )


def test_a_stage_that_writes_another_fingerprint_than_planned_is_a_bug_not_a_silent_recompute(tmp_path):
    request = StageRequest(None, {}, tmp_path / "a", "f" * 64, "a")
    with pytest.raises(
        RuntimeError, match="wrote fingerprint 0000000000, not the ffffffffff its layout planned"
    ):
        lifecycle.run_stage(request, _compute_with("0" * 64, []))
    assert locks.held() == []


def test_a_process_that_writes_no_artifact_by_design_is_not_checked(tmp_path):
    # A multi-worker training's non-chief worker returns no manifest: the chief writes the artifact.
    request = StageRequest(None, {}, tmp_path / "a", "f" * 64, "a")
    assert lifecycle.run_stage(request, lambda r: {}) == (lifecycle.RAN, {})
    assert lifecycle.run_stage(request, lambda r: None) == (lifecycle.RAN, None)
