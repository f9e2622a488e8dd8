"""The import rules of the layers: a module's sub-package of `label_smearing` says what it may import.

Bottom to top:
  1. modeling/                  pure Keras 3: imports no other part of the package
  2. core/, beam_core/          plumbing: artifacts, layout, the stage registry, spec, schema, tfdata, ...;
                                Beam options, runners, sources, TFRecord bytes
  3. stages/, experiments/      one module or package per stage kind; the synthetic experiments
  4. pipeline/                  the plan, its executors, publishing, Kubeflow, `smear run`
  5. cli.py                     the `smear` command
configs/ stands beside them: a config imports only the config base, other configs and registries' names.
The package's __init__ is the public API (imports modeling only, lazily).
No import goes up a layer, and no stage imports another stage. Checked on the source, for
imports at any depth (function-level ones included).
"""

import ast
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "label_smearing"
LIBRARY, PLUMBING, STAGE, PLAN, CLI = 1, 2, 3, 4, 5
LAYERS = {
    "modeling": LIBRARY, "core": PLUMBING, "beam_core": PLUMBING, "stages": STAGE, "experiments": STAGE,
    "pipeline": PLAN, "cli": CLI,
}  # fmt: skip


def stage_of(module: str) -> str:
    """The stage (or experiment) a module belongs to: `label_smearing.stages.report` for its package's modules."""
    return ".".join(module.split(".")[:3])


# What a config may import besides other configs: the registries whose names configs hold.
CONFIG_IMPORTS = {"label_smearing.core.datasets"}


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return LIBRARY  # label_smearing/__init__.py: the public API over modeling
    return LAYERS[parts[1]]  # a sub-package's __init__ sits in its own layer


def package_modules() -> list[str]:
    found = []
    for directory, _, names in sorted(os.walk(os.path.join(ROOT, PACKAGE))):
        prefix = os.path.relpath(directory, ROOT).replace(os.sep, ".")
        for name in sorted(names):
            if name.endswith(".py"):
                found.append(prefix if name == "__init__.py" else f"{prefix}.{name[:-3]}")
    return found


def _path(module: str) -> str:
    path = os.path.join(ROOT, *module.split(".")) + ".py"
    return path if os.path.exists(path) else os.path.join(ROOT, *module.split("."), "__init__.py")


def _is_package(module: str) -> bool:
    return _path(module).endswith("__init__.py")


def imports_of(module: str) -> set[str]:
    """Every package module `module` imports, at any depth of its code."""
    tree = ast.parse(open(_path(module)).read(), _path(module))
    known = set(package_modules())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        out.update(name for name in names if name in known)
    out.discard(module)
    return out


def _is_config(module: str) -> bool:
    return module.startswith(f"{PACKAGE}.configs")


@pytest.mark.parametrize("module", [m for m in package_modules() if not _is_config(m)])
def test_no_import_goes_up_a_layer_and_no_stage_imports_another(module):
    for imported in sorted(imports_of(module)):
        assert not _is_config(imported), f"{module} imports the config {imported}"
        assert layer(imported) <= layer(module), (
            f"{module} (layer {layer(module)}) imports {imported} ({layer(imported)})"
        )
        if layer(module) == STAGE and layer(imported) == STAGE and not _is_package(imported):
            assert stage_of(imported) == stage_of(module), f"stage {module} imports stage {imported}"


@pytest.mark.parametrize("module", [m for m in package_modules() if _is_config(m)])
def test_configs_import_only_the_config_base_other_configs_and_registry_names(module):
    for imported in imports_of(module):
        assert _is_config(imported) or imported in CONFIG_IMPORTS, f"{module} imports {imported}"


def test_modeling_is_a_pure_keras_library():
    for module in package_modules():
        if module.startswith(f"{PACKAGE}.modeling"):
            assert all(m.startswith(f"{PACKAGE}.modeling") for m in imports_of(module)), module


def test_the_checker_sees_every_module_and_imports_inside_functions():
    modules = package_modules()
    assert {
        "label_smearing.core.layout", "label_smearing.stages.train", "label_smearing.stages.noisify",
        "label_smearing.pipeline.plan", "label_smearing.cli",
    } <= set(modules)  # fmt: skip
    assert [layer(m) for m in ("label_smearing.modeling.losses", "label_smearing.core.layout",
                               "label_smearing.stages.noisify", "label_smearing.pipeline.run",
                               "label_smearing.cli")] == [1, 2, 3, 4, 5]  # fmt: skip
    # imported inside `configured_model`
    assert "label_smearing.core.tfdata" in imports_of("label_smearing.core.layout")


def _constants(module: str):
    for node in ast.walk(ast.parse(open(_path(module)).read(), _path(module))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node


def test_loss_and_method_names_are_spelled_only_in_their_registry():
    from label_smearing.modeling.losses import LOSSES

    found = [
        f"{module}:{node.lineno} {node.value!r}"
        for module in package_modules()
        if module != "label_smearing.modeling.losses" and not _is_config(module)  # configs hold names
        for node in _constants(module)
        if node.value in LOSSES
    ]
    assert not found, found


def _kind_literals(module: str) -> list[str]:
    """Where `module` spells a stage kind's name or command as a string: a kind compared, passed or keyed."""
    from label_smearing.core.registry import STAGES

    spelled = set(STAGES) | {k.command for k in STAGES.values()}
    # "train" is also a split and a config section, "report" a file name, "synthetic" a config's name:
    # those three count only where a kind goes (a comparison with .kind, a `stage=` argument, a fingerprint).
    ambiguous = {"train", "report", "synthetic"}
    tree = ast.parse(open(_path(module)).read(), _path(module))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value in spelled - ambiguous:
            found.append(f"{module}:{node.lineno} {node.value!r}")
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            kindish = any(
                (isinstance(s, ast.Attribute) and s.attr in ("kind", "stage"))
                or (isinstance(s, ast.Name) and s.id in ("kind", "stage"))
                for s in sides
            )
            found += [
                f"{module}:{s.lineno} {s.value!r}"
                for s in sides
                if kindish and isinstance(s, ast.Constant) and s.value in ambiguous
            ]
        elif isinstance(node, ast.Call):
            stage_args = [k.value for k in node.keywords if k.arg == "stage"]
            if isinstance(node.func, ast.Attribute) and node.func.attr == "fingerprint" and node.args:
                stage_args.append(node.args[0])
            found += [
                f"{module}:{a.lineno} {a.value!r}"
                for a in stage_args
                if isinstance(a, ast.Constant) and a.value in ambiguous
            ]
    return found


def test_stage_kind_names_are_spelled_only_in_the_registry():
    found = [
        hit
        for module in package_modules()
        if module != "label_smearing.core.registry" and not _is_config(module)
        for hit in _kind_literals(module)
    ]
    assert not found, found


def test_the_kind_checker_finds_a_kind_spelled_outside_the_registry(tmp_path, monkeypatch):
    source = 'if node.kind == "train":\n    pass\nx = "export_logits"\nmanifest(stage="report")\n'
    module = tmp_path / "label_smearing" / "probe.py"
    module.parent.mkdir()
    module.write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", str(tmp_path))
    assert [hit.split(" ")[1] for hit in _kind_literals("label_smearing.probe")] == [
        "'train'", "'export_logits'", "'report'",
    ]  # fmt: skip
