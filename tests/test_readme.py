"""The README's Python snippet runs as written, its commands name real subcommands, its Results are the
committed reports' numbers, and it stays short. The docs' commands and numbers: tests/test_docs.py."""

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


def test_the_readme_stays_short():
    """The README is the front page: at most 12 KB; the reference lives in docs/ (tests/test_docs.py
    checks its commands and numbers)."""
    assert os.path.getsize(README) <= 12 * 1024
