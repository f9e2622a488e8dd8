"""The package as a user gets it: a wheel, installed without the checkout, run from another directory.

`pip wheel`'s view of the project: one import name, `label_smearing`, a `smear` script that
finds its bundled configs through the installed package, plans what a checkout plans (the same
fingerprints), and the README's Python snippet. Slow: it builds and installs the wheel.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the wheel, its install directory, an environment whose `label_smearing` is that install)."""
    tmp = tmp_path_factory.mktemp("install")
    source = tmp / "source"  # a copy: building writes build/ and *.egg-info next to the sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "label_smearing", source / "label_smearing", ignore=shutil.ignore_patterns("__pycache__")
    )
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp / "dist"), str(source)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = (tmp / "dist").glob("*.whl")
    site = tmp / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip
    # The install comes first on the path; the dependencies come from this environment.
    env = dict(os.environ, PYTHONPATH=str(site), TF_CPP_MIN_LOG_LEVEL="3")
    away = tmp / "elsewhere"  # not the checkout: nothing of it is importable from here by its directory
    away.mkdir()
    return wheel, site, env, away


def _run(installed, *args: str) -> subprocess.CompletedProcess:
    _, site, env, away = installed
    return subprocess.run(
        [sys.executable, str(site / "bin" / "smear"), *args], cwd=away, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


def test_the_wheel_installs_one_import_name_with_its_metadata(installed):
    wheel, site, env, away = installed
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")] or [None]
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"label_smearing"}
    if top_level is not None:
        assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["label_smearing"]
    assert "label_smearing/py.typed" in names and "label_smearing/configs/quickstart.py" in names
    assert re.search(r"^License-Expression: Apache-2.0$", metadata, re.M)
    assert "Project-URL: Paper, https://proceedings.mlr.press/v119/lukasik20a.html" in metadata
    assert "Does label smoothing mitigate label noise?" in metadata  # the README is the long description
    found = subprocess.run(
        [sys.executable, "-c", "import label_smearing; print(label_smearing.__file__)"],
        cwd=away, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert Path(found).is_relative_to(site), found  # the install, not the checkout


@pytest.mark.slow
def test_smear_version_and_configs_from_the_install(installed):
    import label_smearing

    version = _run(installed, "--version")
    assert (
        version.returncode == 0
        and version.stdout.strip() == f"smear (label-smearing) {label_smearing.__version__}"
    )
    listed = _run(installed, "configs")
    assert listed.returncode == 0, listed.stderr
    names = [line.split()[0] for line in listed.stdout.splitlines()[1:]]
    assert {"quickstart", "fmnist_paper", "cifar", "cifar_n", "imagenet", "synthetic"} <= set(names)
    assert "base" not in names
    missing = _run(installed, "run", "--config", "configs/quickstart.py", "--workdir", "w", "--dry-run")
    assert missing.returncode == 2
    assert missing.stderr.strip().endswith(
        "config file not found: configs/quickstart.py; the bundled config of that name is --config quickstart"
    )


@pytest.mark.slow
def test_a_bundled_config_plans_what_the_checkout_planned_with_the_same_fingerprints(installed):
    result = _run(
        installed, "run", "--config", "quickstart:smoke", "--workdir", "work", "--dry-run", "--json"
    )
    assert result.returncode == 0, result.stderr
    from tests.test_fingerprints import changed_since_0_3_0

    nodes = json.loads(result.stdout)["nodes"]
    planned = [(n["kind"], n["output"]["name"], n["fingerprint"]) for n in nodes]
    # As the checkout plans (test_fingerprints): the kinds bumped since 0.3.0, evaluate and report, changed.
    assert changed_since_0_3_0(planned) == [
        (kind, name) for kind, name, _ in planned if kind in ("evaluate", "report")
    ]
    assert {kind for kind, _ in changed_since_0_3_0(planned)} == {"evaluate", "report"}
    assert not (installed[3] / "work").exists()  # a dry run writes nothing


@pytest.mark.slow
def test_the_readme_python_snippet_runs_from_the_install(installed):
    _, _, env, away = installed
    text = (ROOT / "README.md").read_text()
    (snippet,) = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "import label_smearing" in b]
    snippet += "\nimport label_smearing\nprint('from', label_smearing.__file__)\n"
    result = subprocess.run(
        [sys.executable, "-c", snippet], cwd=away, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert Path(result.stdout.strip().splitlines()[-1].split("from ", 1)[1]).is_relative_to(installed[1])


def test_dataflow_gets_the_installed_package_as_a_wheel_built_from_the_install(installed):
    """A non-editable install has no setup.py beside it: the options ship a wheel built from its files."""
    _, site, env, away = installed
    probe = (
        "from label_smearing.beam_core.runners import pipeline_options\n"
        "o = pipeline_options(['--runner=DataflowRunner', '--project=p', '--region=r',"
        " '--temp_location=gs://b/t']).get_all_options()\n"
        "print(o['setup_file']); print(o['extra_packages'][0])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=away, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    setup_file, wheel = result.stdout.strip().splitlines()[-2:]
    assert setup_file == "None"
    with zipfile.ZipFile(wheel) as archive:
        shipped = {n for n in archive.namelist() if n.startswith("label_smearing/")}
    installed_files = {
        p.relative_to(site).as_posix()
        for p in (site / "label_smearing").rglob("*")
        if p.is_file() and (p.suffix == ".py" or p.name == "py.typed")
    }
    assert shipped == installed_files  # what the workers import is exactly what this install runs
