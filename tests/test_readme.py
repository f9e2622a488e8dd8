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


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _claims_rows(report: str) -> list[dict[str, str]]:
    """Every row of every claims table of a report ("| claim | check: A vs B | ..."), by column name."""
    rows, lines = [], report.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("| claim | check: A vs B |"):
            header = _cells(line)
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append(dict(zip(header, _cells(row))))
    return rows


def _difference(row: dict[str, str]) -> str:
    """How the README quotes a row's A - B: its paired mean and interval, or the earlier rule's A - B and s."""
    if "95% CI (t)" in row:
        return f"{row['mean A − B (paired)']} {row['95% CI (t)']}"
    return f"{row['A − B']} (s {row['s']}, earlier rule)"


def test_every_readme_verdict_is_its_reports():
    """Each row of the README's verdict table names a report and a row of its claims table, and quotes that
    row's A - B, interval and verdict as they stand there; claims 1-7 each have a row."""
    root = os.path.dirname(README)
    section = _section(open(README).read(), "Results")
    table = [line for line in section.splitlines() if re.match(r"^\| \d \|", line)]
    assert sorted({int(_cells(line)[0]) for line in table}) == list(range(1, 8))
    checked = 0
    for line in table:
        claim, report_link, check, difference, verdict, holm = _cells(line)
        path = re.fullmatch(r"\[[^]]+\]\((results/[^)]+)\)", report_link).group(1)
        if claim == "7":  # the 2-D problem: `smear synthetic`'s summary, not a claims table
            assert path == "results/synthetic/summary.md" and os.path.exists(os.path.join(root, path))
            theory = open(os.path.join(root, "docs", "theory.md")).read()
            assert all(number in theory for number in re.findall(r"\d\.\d+", difference)), difference
            continue
        rows = [r for r in _claims_rows(open(os.path.join(root, path)).read()) if r["check: A vs B"] == check]
        assert len(rows) == 1, f"{path} has no single claims row {check!r}"
        (row,) = rows
        assert row["claim"] == claim, line
        assert difference == _difference(row), line
        assert verdict == f"**{row['verdict']}**", line
        assert holm == row.get("after Holm", "—"), line
        checked += 1
    assert checked >= 10


def test_the_readme_stays_short():
    """The README is the front page: at most 12 KB; the reference lives in docs/ (tests/test_docs.py
    checks its commands and numbers)."""
    assert os.path.getsize(README) <= 12 * 1024
