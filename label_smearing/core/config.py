"""Config loading: `--config NAME[:arg]` or `--config path.py[:arg]`, plus dotted overrides.

A NAME is a bundled config, a module of `label_smearing.configs` (`quickstart`,
`fmnist_paper`, ...; `smear configs` lists them), found through the installed
package, so it works from any directory. Anything ending in `.py` or holding a
`/` is a file path: a user's own config, which may import
`label_smearing.configs.base` and start from `base.base_config()`.

A config defines `get_config(arg: str | None) -> ml_collections.ConfigDict`.
The returned dict is locked, so an override of an unknown key is an error, and
overrides are parsed to the type of the value they replace.

Example:
    cfg = load_config("quickstart:smoke", ["noise.rate=0.4"])
"""

from __future__ import annotations

import ast
import importlib
import importlib.resources
import importlib.util
import json
import os
from collections.abc import Sequence
from typing import Any

import ml_collections

from label_smearing.core.errors import UserError

BUNDLED_PACKAGE = "label_smearing.configs"
_NOT_CONFIGS = ("__init__", "base")  # modules of the package that are not configs


def bundled_configs() -> dict[str, str]:
    """Every bundled config's name -> the first line of its docstring, read without importing it."""
    out = {}
    for entry in importlib.resources.files(BUNDLED_PACKAGE).iterdir():
        name, suffix = os.path.splitext(entry.name)
        if suffix != ".py" or name in _NOT_CONFIGS:
            continue
        doc = ast.get_docstring(ast.parse(entry.read_text())) or ""
        out[name] = doc.strip().splitlines()[0] if doc.strip() else ""
    return dict(sorted(out.items()))


def is_path(name: str) -> bool:
    """Whether a --config value (before its `:arg`) is a file path rather than a bundled config's name."""
    return name.endswith(".py") or "/" in name or os.sep in name


def config_file(spec: str) -> str:
    """The file a `NAME[:arg]` or `path.py[:arg]` spec reads (a bundled config's file in the installed package).

    Raises:
      UserError: no such bundled config (naming the bundled ones).
    """
    name = spec.partition(":")[0]
    if is_path(name):
        return name
    configs = bundled_configs()
    if name not in configs:
        raise UserError(
            f"unknown config {name!r}: bundled configs are {', '.join(configs)} (smear configs lists them); "
            "or give a file, path/to/config.py"
        )
    return str(importlib.resources.files(BUNDLED_PACKAGE).joinpath(f"{name}.py"))


def _import_bundled(name: str):
    config_file(name)  # an unknown name: one line naming the bundled ones
    try:
        return importlib.import_module(f"{BUNDLED_PACKAGE}.{name}")
    except Exception as e:  # noqa: BLE001 - a config that fails to load is reported in one line
        raise UserError(f"config {name} failed to load: {type(e).__name__}: {e}") from e


def _import_file(path: str):
    if not os.path.isfile(path):
        hint = ""
        stem = os.path.splitext(os.path.basename(path))[0]
        if path.endswith(".py") and stem in bundled_configs():
            hint = f"; the bundled config of that name is --config {stem}"
        raise UserError(f"config file not found: {path}{hint}")
    module_name = "smear_config_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SystemExit as e:  # sys.exit() in a config would end the command without a word
        raise UserError(f"config file {path} exited while loading (sys.exit({e.code!r}))") from None
    except Exception as e:  # noqa: BLE001 - any failure of a user file is a user error
        raise UserError(f"config file {path} failed to load: {type(e).__name__}: {e}") from e
    if not hasattr(module, "get_config"):
        raise UserError(f"config file {path} defines no get_config(arg)")
    return module


def _parse_value(text: str, current: Any, key: str) -> Any:
    if isinstance(current, str):
        return text
    if isinstance(current, bool):
        lowered = text.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise UserError(f"config override {key}={text}: expected true or false")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if current is None:
            return text
        raise UserError(f"config override {key}={text}: cannot parse as {type(current).__name__}") from None
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if current is not None and not isinstance(value, type(current)):
        if isinstance(current, (list, tuple)) and isinstance(value, (list, tuple)):
            return type(current)(value)
        raise UserError(
            f"config override {key}={text}: expected {type(current).__name__}, got {type(value).__name__}"
        )
    return value


def apply_override(config: ml_collections.ConfigDict, key: str, text: str) -> None:
    """Sets `config.<key>` from the string `text`; an unknown key is a UserError."""
    parts = key.split(".")
    node = config
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            raise UserError(f"unknown config key: {'.'.join(parts[: i + 1])}")
        node = node[part]
    leaf = parts[-1]
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
        raise UserError(f"unknown config key: {key}")
    current = node[leaf]
    if isinstance(current, ml_collections.ConfigDict):
        raise UserError(f"config key {key} is a section; set one of its fields")
    value = _parse_value(text, current, key)
    try:
        with node.ignore_type():
            node[leaf] = value
    except Exception as e:  # noqa: BLE001
        raise UserError(f"config override {key}={text}: {e}") from e


def load_config(spec: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """Loads `NAME[:arg]` (a bundled config) or `path.py[:arg]` and applies `key=value` overrides.

    Args:
      spec: a bundled config's name or a config file's path, optionally followed by
        `:arg` (e.g. `quickstart:smoke`, `my_configs/cifar.py:cifar10,resnet32,ls`).
      overrides: strings `dotted.key=value`.

    Returns:
      A locked ConfigDict.
    """
    path, _, arg = spec.partition(":")
    module = _import_file(path) if is_path(path) else _import_bundled(path)
    try:
        config = module.get_config(arg or None)
    except UserError:
        raise
    except SystemExit as e:
        raise UserError(f"config {spec}: get_config exited (sys.exit({e.code!r}))") from None
    except Exception as e:  # noqa: BLE001
        raise UserError(f"config {spec}: get_config failed: {type(e).__name__}: {e}") from e
    if not isinstance(config, ml_collections.ConfigDict):
        raise UserError(f"config {spec}: get_config must return an ml_collections.ConfigDict")
    config.lock()
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise UserError(f"config override {item!r} must look like --config.KEY=VALUE")
        apply_override(config, key, text)
    return config


def split_config_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Splits `--config.key=value` / `--config.key value` overrides from other args."""
    rest, overrides = [], []
    i = 0
    argv = list(argv)
    while i < len(argv):
        a = argv[i]
        if a.startswith("--config."):
            body = a[len("--config.") :]
            if "=" in body:
                overrides.append(body)
            elif i + 1 < len(argv):
                overrides.append(f"{body}={argv[i + 1]}")
                i += 1
            else:
                raise UserError(f"config override {a} has no value")
        else:
            rest.append(a)
        i += 1
    return rest, overrides


def to_plain(config: ml_collections.ConfigDict | Any) -> Any:
    """A JSON-serialisable copy of a ConfigDict (or a section of one)."""
    if isinstance(config, ml_collections.ConfigDict):
        return json.loads(config.to_json_best_effort(sort_keys=True))
    return json.loads(json.dumps(config, default=str))
