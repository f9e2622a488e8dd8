"""The stage registry describes what the plan does: each node reads only the kinds its entry names."""

import pytest

from label_smearing.core import registry
from label_smearing.core.config import load_config
from label_smearing.pipeline.plan import plan


@pytest.mark.parametrize(
    "config", ["quickstart:smoke", "fmnist_paper:smoke", "cifar_distill:cifar10,resnet32,smoke"]
)
def test_every_planned_node_reads_only_the_input_kinds_its_entry_names(config, tmp_path):
    nodes = plan(load_config(config), tmp_path)
    for node in nodes:
        assert node.stage.planned, node.label
        assert {n.kind for n in node.inputs} <= set(node.stage.inputs), node.label


def test_a_commands_help_names_its_folder_sections_and_version(capsys):
    from label_smearing import cli

    assert cli.main(["evaluate", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    kind = registry.STAGES[registry.EVALUATE]
    assert f"<workdir>/{kind.folder}/" in out and f"config sections {', '.join(kind.sections)}" in out
    assert f"compute version {kind.version}" in out
