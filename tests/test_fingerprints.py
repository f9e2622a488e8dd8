"""Fingerprints follow each stage kind's compute version, never the package's release number.

The fixture is what 0.3.0 planned for `quickstart:smoke` (names and fingerprints, from its
checkout): a workdir that release made stays cached in every later one unless a stage kind's
version is bumped, and a bump recomputes that kind and everything downstream, nothing upstream.
"""

import copy
import dataclasses
import json
from pathlib import Path

import label_smearing
from label_smearing.core import artifacts, layout, registry
from label_smearing.core.config import load_config
from label_smearing.core.registry import EVALUATE, EXPORT_LOGITS, NOISIFY, REPORT, TRAIN
from label_smearing.modeling.noise import INSTANCE_FEATURES
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
    # CHANGELOG 0.4.0: the report's compute version was bumped (its claims title changed); 0.5.0: the
    # evaluation's (divergence by the loss's form) and the report's (paired intervals) again.
    assert registry.STAGES[REPORT].version == registry.STAGES[EVALUATE].version == "0.5.0"
    changed = changed_since_0_3_0(_planned(tmp_path))
    assert {kind for kind, _ in changed} == {EVALUATE, REPORT}
    assert changed == [(kind, name) for kind, name, _ in _planned(tmp_path) if kind in (EVALUATE, REPORT)]


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


def _without_instance_features(config):
    """`config` as it was before noise.instance_features existed."""
    config = copy.deepcopy(config)
    with config.unlocked():
        del config.noise["instance_features"]
    return config


def test_instance_features_change_the_fingerprint_of_instance_data_only(tmp_path):
    # Symmetric data keep 0.3.0's fingerprint whatever the key says, and the one they had without it.
    name = "fashion_mnist-symmetric0.2-s0"
    fixture = dict(json.loads(FIXTURE.read_text())["nodes"])[name]
    symmetric = [load_config("quickstart:smoke", [f"noise.instance_features={v}"]) for v in INSTANCE_FEATURES]
    symmetric.append(_without_instance_features(symmetric[0]))
    named = {(layout.data(c, tmp_path).name, layout.data_fingerprint(c)) for c in symmetric}
    assert named == {(name, fixture)}
    assert all("instance_features" not in layout.data_section(c)["noise"] for c in symmetric)
    # Instance data: raw (Xia et al.'s features) and standardized are different labels, so different data,
    # and neither is the data made before the key existed (its standardised labels).
    instance = {
        v: load_config("quickstart:smoke", ["noise.model=instance", f"noise.instance_features={v}"])
        for v in INSTANCE_FEATURES
    }
    assert load_config("quickstart:smoke", ["noise.model=instance"]).noise.instance_features == "raw"
    fingerprints = {v: layout.data_fingerprint(c) for v, c in instance.items()}
    fingerprints["before the key"] = layout.data_fingerprint(_without_instance_features(instance["raw"]))
    assert len(set(fingerprints.values())) == 3, fingerprints
    assert {layout.data(c, tmp_path).name for c in instance.values()} == {"fashion_mnist-instance0.2-s0"}
