"""The README's Python snippet runs as written, and its commands name real subcommands."""

import os
import re

import numpy as np

from pipeline.cli import COMMANDS

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
    for command in set(re.findall(r"\bsmear ([a-z-]+)", text)):
        assert command in COMMANDS, command
