"""Every `smear run --config.KEY=VALUE` is used or refused: no override is silently replaced by the plan.

For every key the configs declare (label_smearing/configs/base.py), an override with another
value either changes the fingerprints of the quickstart smoke plan (it is used), or is refused in
one line naming why, or is declared output-neutral (`layout.OUTPUT_NEUTRAL`, with its reason). The
refused keys are listed here: a key that starts to change nothing (say, left out of a fingerprint
by mistake) fails this test until it is fingerprinted, declared neutral or listed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from label_smearing.core import layout
from label_smearing.core.config import load_config
from label_smearing.core.errors import UserError
from label_smearing.pipeline.plan import SWEEP_OWNED, check_overrides, plan

SMOKE = "quickstart:smoke"
# Another valid value for keys whose type alone does not give one (the plan checks these).
OTHER = {
    "data.image_encoding": "source",
    "noise.model": "pair_flip",
    "sweep.teachers": ("ce", "ls:0.3"),
    "sweep.students": ("ls:0.1>ce",),
    "sweep.seeds": (7,),
    "sweep.noise_rates": (0.3, 0.5),
    "sweep.student_noise_rates": (0.2,),
    "sweep.confirm_seeds": (5,),
    "noise.instance_features": "standardized",
}
# Keys whose override changes no stage of the quickstart smoke plan, and why.
REFUSED = {
    **{key: owner for key, owner in SWEEP_OWNED.items() if key != "noise.rate"},  # set per stage by the sweep
    "noise.annotation": "read only for human annotations (noise.model=human)",
    "noise.instance_features": "read only for instance noise (noise.model=instance)",
    "estimate.percentile": "read only for an estimated T (fc:est); this sweep has none",
    "sweep.redraw_noise": "with one seed (smoke), seed 0 draws noise.seed's noise either way",
    "sweep.student_noise_rates": "which rates' students run: this sweep has no students",
}
# Keys whose other value alone makes no valid plan (refused by the plan's own checks).
INVALID_ALONE = {"data.image_encoding": "source needs data.image_size > 0 too"}


def _other(key: str, value):
    if key in OTHER:
        return OTHER[key]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return round(value * 0.5 + 0.013, 6)
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, tuple) and value and all(isinstance(v, float) for v in value):
        return tuple(round(v * 0.9, 6) for v in value)
    if isinstance(value, tuple) and value and all(isinstance(v, int) for v in value):
        return tuple(v + 1 for v in value)
    raise AssertionError(f"no other value for {key}={value!r}: add one to OTHER")


def _text(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):  # the override syntax of a tuple: (a, b) or (a,)
        return "(" + ", ".join(repr(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return str(value)


def _keys() -> list[tuple[str, object]]:
    config = load_config(SMOKE)
    return [
        (f"{section}.{key}", value)
        for section, values in config.items()
        if hasattr(values, "items")  # a section, not the config's name
        for key, value in values.items()
    ]


def _outcome(key: str, value, workdir: Path) -> str:
    override = f"{key}={_text(_other(key, value))}"
    config = load_config(SMOKE, [override])
    try:
        nodes = plan(config, workdir)
    except UserError as e:
        return f"invalid: {e}"
    try:
        check_overrides(SMOKE, [override], config, nodes, workdir)
    except UserError as e:
        return f"refused: {e}"
    before = sorted(n.fingerprint for n in plan(load_config(SMOKE), workdir))
    if sorted(n.fingerprint for n in nodes) != before:
        return "used"
    return "neutral" if layout.is_output_neutral(key) else "ignored"


def test_every_key_is_used_refused_or_declared_neutral(tmp_path):
    outcomes = {key: _outcome(key, value, tmp_path) for key, value in _keys()}
    assert not [k for k, o in outcomes.items() if o == "ignored"]
    assert {k for k, o in outcomes.items() if o.startswith("invalid")} == set(INVALID_ALONE)
    refused = {k for k, o in outcomes.items() if o.startswith("refused")}
    assert refused == set(REFUSED), refused ^ set(REFUSED)
    for key in refused:
        line = outcomes[key]
        assert f"--config.{key}=" in line, line
        if key in SWEEP_OWNED:
            assert f"would be ignored: the plan sets {key} per model from {SWEEP_OWNED[key]}" in line
        else:
            assert "changes no stage of this plan" in line
    neutral = {k for k, o in outcomes.items() if o == "neutral"}
    assert neutral == {k for k in outcomes if layout.is_output_neutral(k)}
    assert len(outcomes) > 60 and sum(o == "used" for o in outcomes.values()) > 40  # every section was seen
    assert not (tmp_path / "data").exists()  # planning writes nothing


def test_an_override_that_restates_the_value_passes(tmp_path):
    config = load_config(SMOKE, ["loss.alpha=0.0", "train.seed=0"])
    check_overrides(SMOKE, ["loss.alpha=0.0", "train.seed=0"], config, plan(config, tmp_path), tmp_path)


def test_noise_rate_under_a_noise_rate_sweep_names_the_sweep(tmp_path):
    spec, override = "fmnist_paper:smoke", "noise.rate=0.3"
    config = load_config(spec, [override])
    with pytest.raises(
        UserError, match=r"--config.noise.rate=0.3 would be ignored: .* from sweep.noise_rates"
    ):
        check_overrides(spec, [override], config, plan(config, tmp_path), tmp_path)
    # Without the sweep, noise.rate is the run's one rate: used.
    config = load_config(spec, [override, "sweep.noise_rates=()", "sweep.student_noise_rates=()"])
    check_overrides(spec, [override, "sweep.noise_rates=()", "sweep.student_noise_rates=()"], config,
                    plan(config, tmp_path), tmp_path)  # fmt: skip
