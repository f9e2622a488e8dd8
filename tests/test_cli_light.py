"""`smear --help`, `--version`, `configs` and every `smear COMMAND --help` answer without TensorFlow or Beam."""

import subprocess
import sys

import pytest

from label_smearing import cli
from label_smearing.core import registry

PROBE = """
import sys
from label_smearing.cli import main
status = main({argv!r})
heavy = [m for m in ("tensorflow", "keras", "apache_beam") if m in sys.modules]
print("HEAVY", heavy)
sys.exit(status)
"""


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["--version"], ["configs"], ["run", "--help"]]
    + [[kind.command, "--help"] for kind in registry.STAGES.values()],
)
def test_help_version_and_configs_import_no_tensorflow(argv):
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "HEAVY []"
    if argv[-1] == "--help" and len(argv) == 2:
        assert f"usage: smear {argv[0]}" in result.stdout and "--config" in result.stdout


def test_a_stage_commands_help_shows_its_own_flags(capsys):
    assert cli.main(["export-logits", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--model" in out and "--split" in out and "quickstart:smoke" in out
    assert cli.main(["report", "--help"]) == 0
    assert "--evaluations" in capsys.readouterr().out


def test_the_usage_lists_every_registered_stage_and_no_unknown_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for kind in registry.STAGES.values():
        assert f"  {kind.command} " in out
    assert cli.main([]) == 2  # no command: a mistake, the usage on stderr
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.strip() == out.strip()
    assert cli.main(["export"]) == 2
    assert "unknown command 'export'" in capsys.readouterr().err
