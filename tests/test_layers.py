"""The import rules of DESIGN.md's layers: a module's folder says what it may import.

Bottom to top:
  1. keras_components/                    pure Keras 3: imports no other package of the project
  2. pipeline/core/, beam_jobs/core/      plumbing: artifacts, layout, spec, schema, tfdata, ...;
                                          Beam runners, sources, TFRecord bytes
  3. beam_jobs/*.py, pipeline/stages/     the stages: noisify, export-logits, estimate-transition;
                                          train, evaluate, report (with its claims)
  4. pipeline/*.py                        the plan, its executor and publishing; the `smear` CLI
No import goes up a layer, and no stage imports another stage. Checked on the source, for
imports at any depth (function-level ones included).
"""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("keras_components", "pipeline", "beam_jobs")
LIBRARY, PLUMBING, STAGE, PLAN = 1, 2, 3, 4
# A stage's helper module, which only that stage imports.
STAGE_HELPERS = {"pipeline.stages.claims": "pipeline.stages.report"}


def layer(module: str) -> int:
    parts = module.split(".")
    if parts[0] == "keras_components":
        return LIBRARY
    if os.path.isdir(os.path.join(ROOT, *parts)) or parts[1] == "core":  # a package's __init__, or core
        return PLUMBING
    if parts[0] == "beam_jobs" or parts[1] == "stages":
        return STAGE
    return PLAN


def package_modules() -> list[str]:
    found = []
    for package in PACKAGES:
        for directory, _, names in sorted(os.walk(os.path.join(ROOT, package))):
            prefix = os.path.relpath(directory, ROOT).replace(os.sep, ".")
            for name in sorted(names):
                if name.endswith(".py"):
                    found.append(prefix if name == "__init__.py" else f"{prefix}.{name[:-3]}")
    return found


def imports_of(module: str) -> set[str]:
    """Every project module `module` imports, at any depth of its code."""
    path = os.path.join(ROOT, *module.split(".")) + ".py"
    if not os.path.exists(path):
        path = os.path.join(ROOT, *module.split("."), "__init__.py")
    tree = ast.parse(open(path).read(), path)
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


@pytest.mark.parametrize("module", package_modules())
def test_no_import_goes_up_a_layer_and_no_stage_imports_another(module):
    for imported in sorted(imports_of(module)):
        assert layer(imported) <= layer(module), (
            f"{module} (layer {layer(module)}) imports {imported} ({layer(imported)})"
        )
        if layer(module) == STAGE and layer(imported) == STAGE:
            assert STAGE_HELPERS.get(imported) == module, f"stage {module} imports stage {imported}"


def test_keras_components_is_a_pure_keras_library():
    for module in package_modules():
        if module.startswith("keras_components"):
            assert all(m.startswith("keras_components") for m in imports_of(module)), module


def test_the_checker_sees_every_module_and_imports_inside_functions():
    modules = package_modules()
    assert {"pipeline.core.layout", "pipeline.stages.train", "beam_jobs.noisify", "pipeline.plan"} <= set(
        modules
    )
    assert [layer(m) for m in ("keras_components.losses", "pipeline.core.layout", "beam_jobs.noisify",
                               "pipeline.stages.train", "pipeline.run")] == [1, 2, 3, 3, 4]  # fmt: skip
    assert "pipeline.core.tfdata" in imports_of("pipeline.core.layout")  # imported inside `configured_model`


def test_loss_and_method_names_are_spelled_only_in_their_registry():
    from keras_components.losses import LOSSES

    registry = os.path.join(ROOT, "keras_components", "losses.py")
    found = []
    for module in package_modules():
        path = os.path.join(ROOT, *module.split(".")) + ".py"
        if not os.path.exists(path) or path == registry:
            continue
        for node in ast.walk(ast.parse(open(path).read(), path)):
            if isinstance(node, ast.Constant) and node.value in LOSSES:
                found.append(f"{module}:{node.lineno} {node.value!r}")
    assert not found, found
