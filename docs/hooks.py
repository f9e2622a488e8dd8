"""MkDocs hooks (mkdocs.yml `hooks:`): what the site holds beyond docs/.

- Every committed result under results/ (reports, figures, tables, summaries; not the TensorBoard
  logs or the SVG twins of the PNGs) is added to the site at `results/...`, so a page links to
  `results/quickstart/report.md` and the strict build checks that the file exists.
- `reference/config-keys.md` is generated from label_smearing/configs/base.py: every key, its
  default (and its `:smoke` default where that differs) and the comment that declares it, so the
  table cannot drift from the code.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
RESULTS_LEFT_OUT = {".svg"}
CONFIG_KEYS_PAGE = "reference/config-keys.md"
_KEY = re.compile(
    r"^\s+c\.(?P<section>[a-z_]+)\.(?P<key>[a-z_0-9]+) = (?P<value>.*?)(?:  # (?P<comment>.*))?$"
)
_SECTION = re.compile(r"^\s+c\.(?P<section>[a-z_]+) = ml_collections\.ConfigDict\(\)")
_TOP = re.compile(r"^\s+c\.(?P<key>[a-z_]+) = (?P<value>(?!ml_collections).*?)(?:  # (?P<comment>.*))?$")


def result_files(root: Path = ROOT) -> list[str]:
    """The files of results/ that the site carries, as paths relative to the repository."""
    return [
        path.relative_to(root).as_posix()
        for path in sorted((root / "results").rglob("*"))
        if path.is_file() and "tensorboard" not in path.parts and path.suffix not in RESULTS_LEFT_OUT
    ]


def _value(value) -> str:
    if isinstance(value, str):
        return f"`'{value}'`"
    if isinstance(value, tuple):
        return "`" + ("()" if not value else repr(value)) + "`"
    return f"`{value!r}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").strip()


def config_keys_markdown(root: Path = ROOT) -> str:
    """The config-key reference: one table per section of base.py, in its order."""
    sys.path.insert(0, str(root))
    try:
        from label_smearing.configs import base
    finally:
        sys.path.remove(str(root))
    full, smoke = base.base_config(False), base.base_config(True)
    lines = (root / "label_smearing" / "configs" / "base.py").read_text().splitlines()
    sections: dict[str, dict] = {}
    pending: list[str] = []  # comment lines above the next assignment
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        section = _SECTION.match(line)
        key = _KEY.match(line)
        top = _TOP.match(line) if not (section or key) else None
        if section:
            sections[section["section"]] = {"note": " ".join(pending), "keys": []}
        elif key:
            comment = "<br>".join(c for c in (" ".join(pending), key["comment"] or "") if c)
            sections[key["section"]]["keys"].append((key["key"], comment))
        elif top:
            sections.setdefault("", {"note": "", "keys": []})["keys"].append(
                (top["key"], top["comment"] or "")
            )
        pending = []

    out = [
        "# Config keys",
        "",
        "Every key of every config, with its default and what it means, generated from",
        "`label_smearing/configs/base.py` when the site is built (the comments there are the",
        "source). Each bundled config starts from these defaults and sets only what differs",
        "([Configs](configs.md)); `--config.SECTION.KEY=VALUE` overrides any of them, and an",
        'unknown key is an error. "the paper\'s" marks the paper\'s value, "ours" a choice the',
        "paper does not make or report. The smoke column is the default under `NAME:smoke`,",
        "where it differs.",
        "",
    ]
    for name, section in sections.items():
        title = f"`{name}`" if name else "top level"
        out += [f"## {title}", ""]
        if section["note"]:
            out += [section["note"], ""]
        out += ["| key | default | smoke | meaning |", "|---|---|---|---|"]
        for key, comment in section["keys"]:
            dotted = f"{name}.{key}" if name else key
            default = full[name][key] if name else full[key]
            small = smoke[name][key] if name else smoke[key]
            smoke_cell = _value(small) if small != default else ""
            out.append(f"| `{dotted}` | {_value(default)} | {smoke_cell} | {_cell(comment)} |")
        out.append("")
    return "\n".join(out)


def on_files(files: Files, config) -> Files:
    for rel in result_files():
        files.append(
            File(
                rel,
                src_dir=str(ROOT),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    files.append(File.generated(config, CONFIG_KEYS_PAGE, content=config_keys_markdown()))
    return files
