"""configs/base.py declares every key once; experiment configs only set values of those keys."""

from __future__ import annotations

import ast
import io
import itertools
import tokenize
from pathlib import Path

import ml_collections
import pytest

from label_smearing.configs import base
from label_smearing.core.config import load_config
from label_smearing.core.errors import UserError

CONFIGS = Path(__file__).resolve().parents[1] / "label_smearing" / "configs"
BASE = CONFIGS / "base.py"
IMAGENET = str(CONFIGS / "imagenet.py")
QUICKSTART = str(CONFIGS / "quickstart.py")

# Every experiment config with every argument its docstring and the tests use.
CIFAR_ARGS = [",".join(p) for p in itertools.product(("cifar10", "cifar100"), ("resnet32", "resnet56"))]
SPECS = (
    [f"{name}.py{arg}" for name in ("quickstart", "fmnist_paper", "fmnist_length") for arg in ("", ":smoke")]
    + [f"fmnist_paper.py:{rate}{s}" for rate in ("rho0.2", "rho0.4") for s in ("", ",smoke")]
    + [
        f"fmnist_beyond.py:{model}{s}"
        for model in ("symmetric", "instance")
        for s in ("", ",smoke", ",direct", ",rho0.2", ",direct,rho0.4,smoke")
    ]
    + [
        f"cifar_n.py{a}"
        for a in ("", ":cifar10_n,aggre_label", ":cifar10_n,random_label2,smoke", ":cifar100_n,smoke")
    ]
    + [f"cifar.py:{a},{m}{s}" for a in CIFAR_ARGS for m in ("ce", "ls", "fc", "bc") for s in ("", ",smoke")]
    + [f"cifar_distill.py:{a}{s}" for a in CIFAR_ARGS for s in ("", ",smoke")]
    + [f"imagenet.py{a}" for a in ("", ":smoke", ":ce", ":bc,smoke")]
)


def _leaves(config: ml_collections.ConfigDict, prefix: str = "") -> dict[str, type]:
    out = {}
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = type(value)
    return out


def test_every_experiment_config_is_covered():
    experiments = {p.stem for p in CONFIGS.glob("*.py")} - {"__init__", "base", "synthetic"}
    assert experiments == {spec.split(".py")[0] for spec in SPECS}  # a new config needs its args above


@pytest.mark.parametrize("spec", SPECS)
def test_a_config_has_exactly_the_base_keys_with_the_base_types(spec):
    config = load_config(str(CONFIGS / spec))
    smoke = spec.endswith("smoke")
    # a key the base lacks would escape `--config.KEY` checks of the other configs; one it drops
    # would make `--config.KEY=...` an error for this config only
    assert _leaves(config) == _leaves(base.base_config(smoke))


def test_smoke_changes_values_not_keys():
    assert _leaves(base.base_config(True)) == _leaves(base.base_config(False))


def _declarations(path: Path) -> dict[str, tuple[int, int]]:
    """`c.section.key = value` statements of base_config: dotted key -> (first line, last line)."""
    out = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target, names = node.targets[0], []
        while isinstance(target, ast.Attribute):
            names.insert(0, target.attr)
            target = target.value
        is_section = isinstance(node.value, ast.Call) and ast.unparse(node.value.func).endswith("ConfigDict")
        if isinstance(target, ast.Name) and target.id == "c" and names and not is_section:
            out[".".join(names)] = (node.lineno, node.end_lineno)
    return out


def test_every_base_key_is_declared_on_one_commented_line():
    source = BASE.read_text()
    commented = {
        tok.start[0]
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT
    }
    declared = _declarations(BASE)
    assert set(declared) == set(_leaves(base.base_config()))  # every key is a plain assignment, declared once
    uncommented = [
        key for key, (first, last) in declared.items() if not commented & set(range(first, last + 1))
    ]
    assert not uncommented  # each says what it means, its values and whether it is the paper's or ours


def test_imagenet_crops_to_224_and_the_size_can_be_overridden():
    from label_smearing.beam_core.sources import resolve_source

    assert resolve_source(load_config(IMAGENET).data).image_size == 224  # the docstring's 224x224x3
    config = load_config(f"{IMAGENET}:smoke", ["data.image_size=160"])
    assert resolve_source(config.data).image_size == 160
    assert resolve_source(load_config(f"{QUICKSTART}:smoke", ["data.source=tfds"]).data).image_size == 0


@pytest.mark.parametrize("key", ["data.image_sise", "train.stepz", "report.per_model_figure", "nosection.x"])
def test_an_unknown_key_is_still_refused(key):
    with pytest.raises(UserError, match="unknown config key"):
        load_config(IMAGENET, [f"{key}=224"])


@pytest.mark.parametrize("spec", [QUICKSTART, str(CONFIGS / "cifar_distill.py:cifar10,resnet32,smoke")])
def test_overrides_keep_the_types_of_the_declared_values(spec):
    config = load_config(
        spec,
        ["train.steps=5", "train.learning_rate=1", "sweep.noise_rates=[0.2, 0.4]", "train.schedule=cosine"],
    )
    assert config.train.steps == 5 and type(config.train.steps) is int
    assert config.train.learning_rate == 1.0 and type(config.train.learning_rate) is float
    assert config.sweep.noise_rates == (0.2, 0.4)  # a tuple, as declared
    assert config.train.schedule == "cosine"
    with pytest.raises(UserError, match="cannot parse as int"):
        load_config(spec, ["data.image_size=big"])


def test_a_config_arg_outside_the_grammar_is_refused():
    for spec in (
        f"{QUICKSTART}:tiny",
        str(CONFIGS / "synthetic.py:tiny"),
        str(CONFIGS / "cifar_distill.py:cifar10"),
        str(CONFIGS / "fmnist_beyond.py:instance,rho0.3"),
        str(CONFIGS / "fmnist_beyond.py:rho0.2"),
    ):
        with pytest.raises(UserError, match="expected"):
            load_config(spec)
