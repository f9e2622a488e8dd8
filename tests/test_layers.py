"""The import rules of DESIGN.md's layers, checked on the source (module-level and function-level imports).

Bottom to top: keras_components (pure Keras) -> plumbing (artifacts, layout, spec,
config, tfdata, ...) -> stages (Beam jobs, train, evaluate, report) -> plan and
executor -> CLI. No import goes upward, and no stage imports another stage.
"""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LIBRARY = 0
PLUMBING = 1
STAGE = 2
PLAN = 3
CLI = 4

PLUMBING_MODULES = {
    "pipeline",  # the package itself: its __version__
    "beam_jobs",
    "pipeline.errors",
    "pipeline.config",
    "pipeline.cli_common",
    "pipeline.artifacts",
    "pipeline.spec",
    "pipeline.layout",
    "pipeline.tfdata",
    "pipeline.schema",
    "pipeline.trained_model",
    "pipeline.strategy",
    "pipeline.plots",
    "beam_jobs.runners",
    "beam_jobs.sources",
    "beam_jobs.tfrecords",
}
# Each stage with its position in the data flow; a helper of one stage shares its position.
STAGES = {
    "beam_jobs.noisify": 0,
    "pipeline.train": 1,
    "beam_jobs.export_logits": 2,
    "beam_jobs.estimate_transition": 3,
    "pipeline.evaluate": 4,
    "pipeline.claims": 5,
    "pipeline.report": 5,
    "pipeline.synthetic": 5,
}
PLAN_MODULES = {"pipeline.plan", "pipeline.run", "pipeline.publish"}
CLI_MODULES = {"pipeline.cli"}


def layer(module: str) -> int:
    if module.startswith("keras_components"):
        return LIBRARY
    if module in PLUMBING_MODULES:
        return PLUMBING
    if module in STAGES:
        return STAGE
    if module in PLAN_MODULES:
        return PLAN
    if module in CLI_MODULES:
        return CLI
    raise AssertionError(f"{module}: no layer; add it to tests/test_layers.py")


def package_modules() -> list[str]:
    found = []
    for package in ("keras_components", "pipeline", "beam_jobs"):
        for name in sorted(os.listdir(os.path.join(ROOT, package))):
            if name.endswith(".py"):
                stem = name[:-3]
                found.append(package if stem == "__init__" else f"{package}.{stem}")
    return found


def imports_of(module: str) -> set[str]:
    """Every package module `module` imports, at any depth of its code."""
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


def test_every_module_has_a_layer():
    for module in package_modules():
        layer(module)


@pytest.mark.parametrize("module", package_modules())
def test_no_import_goes_upward_and_no_stage_imports_another(module):
    for imported in sorted(imports_of(module)):
        assert layer(imported) <= layer(module), (
            f"{module} (layer {layer(module)}) imports {imported} ({layer(imported)})"
        )
        if layer(module) == STAGE and layer(imported) == STAGE:
            same_step = STAGES[imported] == STAGES[module]
            assert same_step, f"stage {module} imports stage {imported}"


def test_keras_components_is_a_pure_keras_library():
    for module in package_modules():
        if module.startswith("keras_components"):
            assert not {m for m in imports_of(module) if not m.startswith("keras_components")}, module


def test_the_checker_sees_imports_inside_functions():
    assert "pipeline.tfdata" in imports_of("pipeline.layout")  # imported inside `configured_model`
    assert "pipeline.layout" in imports_of("pipeline.train")
