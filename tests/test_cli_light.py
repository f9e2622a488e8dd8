"""`smear --help`, `--version`, `configs` and every `smear COMMAND --help` answer without TensorFlow or Beam."""

import os
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
    [["--help"], ["--version"], ["configs"], ["run", "--help"], ["verify", "--help"]]
    + [[kind.command, "--help"] for kind in registry.STAGES.values()],
)
def test_help_version_and_configs_import_no_tensorflow(argv):
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "HEAVY []"
    if argv[-1] == "--help" and len(argv) == 2:
        assert f"usage: smear {argv[0]}" in result.stdout
        assert ("WORKDIR" if argv[0] == "verify" else "--config") in result.stdout


def _artifact(root, kind="data", name="d-1"):
    from label_smearing.core import artifacts

    directory = root / kind / name
    directory.mkdir(parents=True)
    (directory / "x.bin").write_bytes(b"x" * 1000)
    artifacts.write_manifest(directory, stage="noisify", fingerprint="1", config={})
    return directory


def test_verify_checks_a_workdir_without_tensorflow_and_a_closed_pipe_is_no_traceback(tmp_path):
    for name in ("d-1", "d-2"):
        _artifact(tmp_path, name=name)
    result = subprocess.run([sys.executable, "-c", PROBE.format(argv=["verify", str(tmp_path)])],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "all 2 artifacts match their manifests" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "HEAVY []"
    # `smear verify W | head -1`: the reader of stdout has gone away; one quiet exit, no traceback.
    read_end, write_end = os.pipe()
    os.close(read_end)
    done = subprocess.run([sys.executable, "-m", "label_smearing.cli", "verify", str(tmp_path)], stdout=write_end,
                          stderr=subprocess.PIPE, text=True, timeout=120)  # fmt: skip
    os.close(write_end)
    assert done.returncode == 141 and done.stderr == "", done.stderr


def test_verify_lists_damage_with_exit_2_and_refuses_a_missing_workdir(tmp_path, capsys):
    directory = _artifact(tmp_path)
    (directory / "x.bin").write_bytes(b"y" * 1000)  # same size, other bytes
    assert cli.main(["verify", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert f"damaged: {directory}: artifact file {directory / 'x.bin'} does not match its checksum" in out
    assert "recompute it: rerun the `smear run` that made it, adding --verify" in out  # no command recorded
    assert "1 of 1 artifacts are damaged" in err
    assert cli.main(["verify", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


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
