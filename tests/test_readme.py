"""The README's Python snippet runs as written, and its commands name real subcommands."""

import os
import re

import numpy as np

from label_smearing.cli import commands

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", open(README).read(), re.S)


def test_use_from_python_snippet_trains_with_label_smoothing():
    (snippet,) = [b for b in _python_blocks() if "LabelSmoothingCrossEntropy" in b]
    namespace = {}
    exec(compile(snippet, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    model = namespace["model"]
    assert type(model.loss).__name__ == "ForwardCorrectedCrossEntropy"
    loss = model.evaluate(namespace["x"], namespace["y"], verbose=0)
    assert np.all(np.isfinite(loss))


def test_readme_starts_with_the_two_commands_and_names_only_real_subcommands():
    text = open(README).read()
    head = "\n".join(text.splitlines()[:12])
    assert "make demo" in head and "make test" in head
    for command in set(re.findall(r"\bsmear ([a-z][a-z-]*)", text)):  # not its options (smear --version)
        assert command in commands(), command


def _section(text: str, heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"README has no '## {heading}' section"
    return match.group(1)


def test_results_numbers_are_the_committed_reports_numbers():
    """Every "mean ± std" in the README's Results section is a cell of a committed report it quotes."""
    root = os.path.dirname(README)
    section = _section(open(README).read(), "Results")
    report = "\n".join(
        open(os.path.join(root, "results", *parts, "report.md")).read()
        for parts in (("fashion_mnist", "rho0.2"), ("fashion_mnist", "rho0.4"), ("fashion_mnist_length",))
        if os.path.exists(os.path.join(root, "results", *parts, "report.md"))
    )
    cells = re.findall(r"[-+−]?\d+\.\d+ ± \d+\.\d+", section)
    assert len(cells) >= 20, "the Results section quotes the report's cells"
    missing = [c for c in cells if c not in report]
    assert not missing, f"not in the committed reports: {missing}"
    # Each of the paper's seven claims has a verdict.
    for claim in range(1, 8):
        assert re.search(rf"^\| {claim} \|.*\| \*\*(holds|does not hold|inconclusive)", section, re.M), claim


def test_beyond_the_paper_numbers_are_the_committed_reports_numbers():
    """Every "mean ± std" in "Beyond the paper" is a cell of a fashion_mnist_beyond report, and each question
    has a verdict."""
    root = os.path.dirname(README)
    section = _section(open(README).read(), "Beyond the paper")
    reports = os.path.join(root, "results", "fashion_mnist_beyond")
    report = "\n".join(
        open(os.path.join(reports, name, "report.md")).read()
        for name in ("symmetric", "instance", "symmetric_direct")
        if os.path.exists(os.path.join(reports, name, "report.md"))
    )
    cells = re.findall(r"[-+−]?\d+\.\d+ ± \d+\.\d+", section)
    assert len(cells) >= 8, "the section quotes the reports' cells"
    missing = [c for c in cells if c not in report]
    assert not missing, f"not in the committed reports: {missing}"
    verdicts = re.findall(r"^\| [^|]+ \|.*\| \*\*(holds|does not hold|inconclusive)", section, re.M)
    assert len(verdicts) >= 2, "both questions have a verdict"


def test_every_readme_command_names_a_config_that_loads_and_every_run_plans(tmp_path):
    """Each `smear ... --config X` line of the README: X loads (bundled or a path), with its overrides,
    and a `smear run` plans (a dry run of the long ones, which would take hours)."""
    from label_smearing.core.config import load_config
    from label_smearing.pipeline.plan import plan

    text = open(README).read().replace("\\\n", " ")
    commands = [
        line.split("#")[0].split()
        for line in text.splitlines()
        if re.match(r"\s*smear [a-z-]+ .*--config \S", line)
    ]
    assert len(commands) >= 25, len(commands)
    for argv in commands:
        config_arg = argv[argv.index("--config") + 1]
        overrides = [a[len("--config.") :] for a in argv if a.startswith("--config.") and "=" in a]
        overrides = [o for o in overrides if "<" not in o and "logits_dir" not in o]  # placeholders
        config = load_config(config_arg, overrides)
        if argv[1] == "run":
            assert plan(config, tmp_path), argv
