"""Fingerprints follow each stage kind's compute version, never the package's release number.

The fixture is what 0.3.0 planned for `quickstart:smoke` (names and fingerprints, from its
checkout): a workdir that release made stays cached in every later one unless a stage kind's
version is bumped, and a bump recomputes that kind and everything downstream, nothing upstream.
"""

import dataclasses
import json
from pathlib import Path

import label_smearing
from label_smearing.core import artifacts, registry
from label_smearing.core.config import load_config
from label_smearing.core.registry import EVALUATE, EXPORT_LOGITS, NOISIFY, REPORT, TRAIN
from label_smearing.pipeline.plan import plan

FIXTURE = Path(__file__).parent / "fixtures" / "fingerprints_0.3.0.json"


def _planned(workdir) -> list[tuple[str, str, str]]:
    return [(n.kind, n.name, n.fingerprint) for n in plan(load_config("quickstart:smoke"), workdir)]


def changed_since_0_3_0(planned: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    """The (kind, name) of the planned nodes whose fingerprint is not the one 0.3.0 gave them."""
    nodes = json.loads(FIXTURE.read_text())["nodes"]
    assert [name for name, _ in nodes] == [name for _, name, _ in planned]
    return [(kind, name) for (kind, name, fp), (_, old_fp) in zip(planned, nodes) if fp != old_fp]


def test_the_smoke_plan_keeps_0_3_0s_fingerprints_but_for_the_kinds_bumped_since(tmp_path):
    # CHANGELOG 0.4.0: the report's compute version was bumped (its claims title changed); nothing else.
    assert registry.STAGES[REPORT].version == "0.4.0"
    assert changed_since_0_3_0(_planned(tmp_path)) == [(REPORT, "quickstart")]


def test_a_release_number_alone_changes_no_fingerprint(tmp_path, monkeypatch):
    before = _planned(tmp_path)
    monkeypatch.setattr(label_smearing, "__version__", "99.0.0")
    monkeypatch.setattr(artifacts, "PACKAGE_VERSION", "99.0.0")
    assert _planned(tmp_path) == before


def test_a_kind_version_bump_recomputes_that_kind_and_everything_downstream_only(tmp_path, monkeypatch):
    before = {(kind, name): fp for kind, name, fp in _planned(tmp_path)}
    bumped = dataclasses.replace(registry.STAGES[EXPORT_LOGITS], version="99.0.0")
    monkeypatch.setitem(registry.STAGES, EXPORT_LOGITS, bumped)
    after = {(kind, name): fp for kind, name, fp in _planned(tmp_path)}
    assert before.keys() == after.keys()
    changed = sorted(key for key in before if before[key] != after[key])
    # The two exports, the students trained on them, the students' evaluations and the report;
    # not the data, the teachers or the teachers' evaluations.
    assert changed == sorted(
        [(EXPORT_LOGITS, "teacher-ce-s0-train"), (EXPORT_LOGITS, "teacher-ls0.4-s0-train")]
        + [
            (k, n)
            for k in (TRAIN, EVALUATE)
            for n in ("student-T2-ce-s0-from-ce", "student-T2-ce-s0-from-ls0.4")
        ]
        + [(REPORT, "quickstart")]
    )
    assert (NOISIFY, "fashion_mnist-symmetric0.2-s0") in before


def test_every_manifest_records_its_kinds_compute_version(tmp_path):
    out = tmp_path / "a"
    out.mkdir()
    (out / "x.txt").write_text("x")
    manifest = artifacts.write_manifest(out, stage=NOISIFY, fingerprint="f" * 64, config={})
    assert manifest["stage_version"] == registry.STAGES[NOISIFY].version
    assert manifest["package_version"] == label_smearing.__version__
