"""The documentation (README.md and docs/) says what the code does.

- Every `smear ...` command in the README and the docs names a real subcommand and a config that
  loads with its overrides; every `smear run` plans, and dry-runs through the CLI (one of each
  distinct command); every other command answers `--help`.
- Every "mean ± std" the docs quote is a cell of a committed report under results/, and the
  Beyond-the-paper questions each have a verdict.
- Every test id the docs name (`tests/test_x.py::test_y`, mostly in docs/guarantees.md) exists.
- The Python API page lists every public name, and every result the site links to exists.
- The tutorial's Python blocks run, in order, in a fresh directory (slow: real trainings).
"""

import ast
import os
import re
import shlex
from pathlib import Path

import pytest

import label_smearing
from label_smearing.cli import commands

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CELL = re.compile(r"[-+−]?\d+\.\d+ ± \d+\.\d+")
TEST_ID = re.compile(r"tests/(test_\w+\.py)(?:::(test_\w+))?")


def pages() -> dict[str, str]:
    """Every Markdown page a reader gets: the README and docs/**/*.md, by path relative to the repo."""
    found = {"README.md": (ROOT / "README.md").read_text()}
    for path in sorted(DOCS.rglob("*.md")):
        found[path.relative_to(ROOT).as_posix()] = path.read_text()
    return found


def _reports(*parts: str) -> str:
    """The text of every committed report.md under results/<parts...>."""
    return "\n".join(p.read_text() for p in sorted((ROOT / "results").joinpath(*parts).rglob("report.md")))


def _section(text: str, heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"no '## {heading}' section"
    return match.group(1)


def smear_commands() -> list[tuple[str, list[str]]]:
    """(page, argv) of every `smear COMMAND ...` line in a code block of a page (continuations joined,
    comments dropped), in page order."""
    found = []
    for name, text in pages().items():
        for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split("  #")[0].strip()
                match = re.match(r"(?:\S+=\S+ +)*smear ([a-z][a-z-]*)\b(.*)", line)  # an env prefix allowed
                if match:
                    found.append((name, shlex.split(f"{match.group(1)} {match.group(2)}")))
    return found


# ---------------------------------------------------------------- commands


def test_every_smear_command_in_the_docs_is_a_real_subcommand():
    for name, text in pages().items():
        for command in set(re.findall(r"\bsmear ([a-z][a-z-]*)", text)):  # not its options (smear --version)
            assert command in commands(), (name, command)
    assert len(smear_commands()) >= 30, "the docs' code blocks hold the commands"


def _config_and_overrides(argv: list[str]) -> tuple[str, list[str]]:
    config_arg = argv[argv.index("--config") + 1]
    overrides = [a[len("--config.") :] for a in argv if a.startswith("--config.") and "=" in a]
    return config_arg, [o for o in overrides if "<" not in o and "logits_dir" not in o]  # placeholders


def test_every_command_names_a_config_that_loads_and_every_run_plans(tmp_path):
    """Each `smear ... --config X` of the docs: X loads (bundled or a path), with its overrides, and a
    `smear run` plans (the plan alone: a run would take hours)."""
    from label_smearing.core.config import load_config
    from label_smearing.pipeline.plan import plan

    with_config = [(page, argv) for page, argv in smear_commands() if "--config" in argv]
    assert len(with_config) >= 28, len(with_config)
    for page, argv in with_config:
        config = load_config(*_config_and_overrides(argv))
        if argv[0] == "run":
            assert plan(config, tmp_path), (page, argv)


def _dry_run_argv(argv: list[str], workdir: Path) -> list[str]:
    """A `smear run` of the docs as a local dry run: the workdir here (a gs:// one cannot be reached
    offline), without compiling for Kubeflow (`--engine kfp --output F --image I`)."""
    out, skip = [], 0
    for arg in argv:
        if skip:
            skip -= 1
            continue
        if arg in ("--workdir", "--engine", "--output", "--image", "--publish"):
            skip = 1
            continue
        if arg.startswith(("--workdir=", "--engine=", "--output=", "--image=", "--publish=")):
            continue
        out.append(arg)
    return [*out, "--workdir", str(workdir), "--dry-run"]


@pytest.mark.slow
def test_every_smear_run_of_the_docs_dry_runs(tmp_path, monkeypatch, capsys):
    """Each distinct `smear run` of the docs plans through the CLI, as a reader would type it, and
    exits 0: its overrides are used (not refused), its Beam flags accepted, every node's checks pass.
    The first loads TensorFlow and Beam (about 20 s); the rest take under a second each."""
    from label_smearing.cli import main

    monkeypatch.chdir(tmp_path)
    runs = {tuple(_dry_run_argv(argv, tmp_path / "work")) for _, argv in smear_commands() if argv[0] == "run"}
    assert len(runs) >= 15, len(runs)
    for argv in sorted(runs):
        status = main(list(argv))
        assert status == 0, (argv, capsys.readouterr().err[-2000:])
    assert not (tmp_path / "work").exists()  # a dry run writes nothing


def test_every_other_command_answers_help(capsys):
    """The commands that are not `smear run` (a stage, `verify`, `configs`) answer `--help` at once."""
    from label_smearing.cli import main

    named = {argv[0] for _, argv in smear_commands() if argv[0] != "run"}
    assert {"noisify", "train", "export-logits", "estimate-transition", "evaluate", "report"} <= named
    for command in sorted(named):
        assert main([command, "--help"]) == 0, command
        assert capsys.readouterr().out.strip(), command


# ---------------------------------------------------------------- numbers


def test_every_quoted_cell_is_a_committed_reports_cell():
    """Every "mean ± std" in the README and the docs is a cell of a committed report."""
    everything = _reports()
    for name, text in pages().items():
        missing = [cell for cell in CELL.findall(text) if cell not in everything]
        assert not missing, f"{name}: not in any committed report: {missing}"


def test_the_quickstart_numbers_are_the_quickstart_reports():
    section = _section((ROOT / "README.md").read_text(), "Quickstart result (`make demo`)")
    report = _reports("quickstart")
    cells = CELL.findall(section)
    assert len(cells) >= 13, "the README quotes the quickstart report's cells"
    assert [c for c in cells if c not in report] == []


def test_beyond_the_paper_numbers_are_the_beyond_reports_numbers():
    """Every "mean ± std" in Results' "Beyond the paper" is a cell of a fashion_mnist_beyond report (or,
    for the no-warm-up protocol's LS, of the fashion_mnist report it reuses), and each question has a
    verdict."""
    section = _section((DOCS / "results.md").read_text(), "Beyond the paper")
    report = _reports("fashion_mnist_beyond")
    cells = CELL.findall(section)
    assert len(cells) >= 12, "the section quotes the reports' cells"
    missing = [c for c in cells if c not in report]
    assert not missing, f"not in the committed reports: {missing}"
    verdicts = re.findall(r"^\| [^|]+ \|.*\| \*\*(holds|does not hold|inconclusive)", section, re.M)
    assert len(verdicts) >= 2, "both questions have a verdict"
    for report in ("instance/rho0.2", "instance_direct/rho0.2", "instance/rho0.4", "instance_direct/rho0.4"):
        assert f"results/fashion_mnist_beyond/{report}/report.md" in section


def test_the_paper_protocol_numbers_are_the_fashion_mnist_reports_numbers():
    section = _section((DOCS / "results.md").read_text(), "The paper's protocol on Fashion-MNIST")
    report = _reports("fashion_mnist") + _reports("fashion_mnist_length")
    cells = CELL.findall(section)
    assert cells and [c for c in cells if c not in report] == []
    assert '--8<-- "README.md:verdicts"' in section  # the verdict table is the README's, included


# ---------------------------------------------------------------- links and names


def test_every_test_the_docs_name_exists():
    """`tests/test_x.py::test_y` in the docs (the Guarantees table above all) names a real test."""
    named = [(name, m) for name, text in pages().items() for m in TEST_ID.finditer(text)]
    guarantees = [m for name, m in named if name == "docs/guarantees.md" and m.group(2)]
    assert len(guarantees) >= 50, "the Guarantees table names its tests"
    defined: dict[str, set[str]] = {}
    for name, match in named:
        file, test = match.group(1), match.group(2)
        path = ROOT / "tests" / file
        assert path.is_file(), (name, file)
        if file not in defined:
            tree = ast.parse(path.read_text())
            defined[file] = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert test is None or test in defined[file], (name, f"{file}::{test}")


def test_the_api_page_lists_every_public_name():
    text = (DOCS / "reference" / "api" / "index.md").read_text()
    missing = [name for name in label_smearing.__all__ if f"`{name}`" not in text]
    assert not missing, missing


def test_every_committed_report_is_linked_from_the_results_page():
    text = (DOCS / "results.md").read_text()
    reports = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "results").rglob("report.md"))
    assert len(reports) >= 8
    assert [r for r in reports if f"({r})" not in text] == []


def test_every_results_link_of_the_docs_exists():
    """A link into results/ names a committed file: from the README relative to the repository, from a
    docs page relative to the site, where the hook (docs/hooks.py) puts results/ at the top."""
    for path in [ROOT / "README.md", *DOCS.rglob("*.md")]:
        base = Path(".") if path.parent == ROOT else path.parent.relative_to(DOCS)
        for link in re.findall(r"\]\(((?:\.\./)*results/[^)#]+)", path.read_text()):
            target = os.path.normpath(base / link)
            assert target.startswith("results/") and (ROOT / target).is_file(), (path.name, link)


# ---------------------------------------------------------------- the tutorial


def _tutorial_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / "tutorial.md").read_text(), re.S)


@pytest.mark.slow
def test_the_tutorial_runs_as_written(tmp_path, monkeypatch):
    """The tutorial's Python blocks, in order, in one namespace, in an empty directory: the losses on
    a model of one's own, then noisify, train and evaluate on quickstart:smoke (Debian's
    Fashion-MNIST). About 40-70 s on 2 cores."""
    if not Path("/usr/share/datasets/fashion-mnist").is_dir():
        pytest.skip("needs Debian's dataset-fashion-mnist")
    blocks = _tutorial_blocks()
    assert len(blocks) >= 6
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for index, block in enumerate(blocks):
        exec(compile(block, f"docs/tutorial.md, block {index + 1}", "exec"), namespace)  # noqa: S102
    assert {"results", "metrics"} <= set(namespace)
    assert set(namespace["results"]) == {"CE", "LS, alpha 0.3", "FC, true T", "BC, true T"}
    assert 0.0 <= namespace["metrics"]["test"]["accuracy"] <= 100.0
    for kind in ("data", "models", "eval"):
        assert len([p for p in (tmp_path / "work" / kind).iterdir() if p.is_dir()]) == 1, kind
