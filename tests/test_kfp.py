"""`smear run --engine kfp`: the plan compiled to a Kubeflow Pipelines v2 YAML, run end to end by kfp.local.

The end-to-end run executes the compiled YAML itself, what a user uploads: loaded as a
component (`kfp.components.load_component_from_file`) and called under
`kfp.local.SubprocessRunner(use_venv=False)`, each task a `smear <stage>` process in this
environment. Its metrics must equal a plain `smear run`'s (train.deterministic), run in a
fresh process at the same time (earlier tests change this process's TensorFlow state).
The plan is the smallest with train -> export -> student -> evaluate -> report: one CE
teacher and its CE student on 256 examples, 7 stages.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import pytest
import yaml

from label_smearing import __version__, cli
from label_smearing.core import artifacts
from label_smearing.core.config import load_config
from label_smearing.pipeline import kfp_engine
from label_smearing.pipeline.plan import plan
from tests.idx_fixture import write_idx_dataset

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = f"{ROOT / 'label_smearing' / 'configs' / 'quickstart.py'}:smoke"
SMALL = [
    "--config.eval.figures=false",  # the figures have their own tests; 3-4 s per evaluation
    "--config.report.figures=false",  # and the report's: about 3 s per report
    "--config.train.steps=6",
    "--config.train.steps_per_epoch=3",
    "--config.train.batch_size=32",
    "--config.data.max_train_examples=256",
    "--config.data.max_test_examples=128",
    "--config.sweep.teachers=('ce',)",
    "--config.sweep.students=('ce>ce',)",
    "--config.train.deterministic=true",
]
# Not fingerprinted: the reference run, without them, makes the same artifacts.
RESOURCES = [
    "--config.resources.train_accelerator_type=NVIDIA_L4",
    "--config.resources.train_accelerator_count=2",
    "--config.resources.train_cpu=4",
    "--config.resources.train_memory=16G",
    "--config.resources.memory=8G",
]
IMAGE = "label-smearing:kfp-test"


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    return write_idx_dataset(tmp_path_factory.mktemp("idx"), num_train=256, num_test=128)


def _config_args(idx_dir) -> list[str]:
    return ["--config", QUICKSTART, "--config.data.source=idx", f"--config.data.source_dir={idx_dir}", *SMALL]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, idx_dir):
    """A plain `smear run` of the same plan, started in a fresh process; `.wait()` returns its workdir."""
    workdir = tmp_path_factory.mktemp("reference")
    process = subprocess.Popen(
        [sys.executable, "-m", "label_smearing.cli", "run", *_config_args(idx_dir), "--workdir", str(workdir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )  # fmt: skip

    class Reference:
        def wait(self) -> Path:
            out, err = process.communicate(timeout=600)
            assert process.returncode == 0, err
            return workdir

    yield Reference()
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def compiled(tmp_path_factory, idx_dir):
    """(the pipeline YAML as written by `smear run --engine kfp`, its workdir, the plan's nodes)."""
    out = tmp_path_factory.mktemp("kfp")
    workdir, yaml_path = out / "workdir", out / "pipeline.yaml"
    args = [*_config_args(idx_dir), *RESOURCES, "--workdir", str(workdir)]
    assert cli.main(["run", *args, "--engine", "kfp", "--output", str(yaml_path), "--image", IMAGE]) == 0
    assert not workdir.exists()  # compiling runs nothing
    config = load_config(QUICKSTART, [a[len("--config.") :] for a in args if a.startswith("--config.")])
    return yaml_path, workdir, plan(config, workdir)


def _run_compiled(yaml_path: Path, pipeline_root: Path) -> dict[str, str]:
    """Runs the compiled YAML with kfp.local; returns {task display name: its output, "ran" or "cached"}."""
    import kfp.components
    import kfp.local

    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root))
    before = set(pipeline_root.glob("*")) if pipeline_root.exists() else set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # display names and resources have no effect locally, it says
        kfp.components.load_component_from_file(str(yaml_path))()
    (run_dir,) = set(pipeline_root.glob("*")) - before
    names = {key: task["taskInfo"]["name"] for key, task in _tasks(yaml_path).items()}
    return {
        names[d.name]: json.loads((d / "executor_output.json").read_text())["parameterValues"]["Output"]
        for d in run_dir.iterdir()
    }


def _tasks(yaml_path: Path) -> dict:
    return yaml.safe_load(yaml_path.read_text())["root"]["dag"]["tasks"]


@pytest.fixture(scope="module")
def first_run(compiled, reference, tmp_path_factory):
    yaml_path, workdir, _ = compiled
    root = tmp_path_factory.mktemp("pipeline_root")
    return root, _run_compiled(yaml_path, root)


def _metrics(workdir: Path) -> dict:
    """{evaluation name: its validation and test metrics}."""
    out = {}
    for path in sorted((workdir / "eval").glob("*/metrics.json")):
        metrics = json.loads(path.read_text())
        out[path.parent.name] = {"test": metrics["test"], "validation": metrics["validation"]}
    return out


# ---------------------------------------------------------------- the compiled YAML
def test_the_yaml_has_one_task_per_node_with_its_command_dependencies_image_and_resources(compiled, idx_dir):
    yaml_path, workdir, nodes = compiled
    overrides = tuple(
        a[len("--config.") :] for a in [*_config_args(idx_dir), *RESOURCES] if a.startswith("--config.")
    )
    spec = yaml.safe_load(yaml_path.read_text())
    tasks = spec["root"]["dag"]["tasks"]
    executors = spec["deploymentSpec"]["executors"]
    by_label = {task["taskInfo"]["name"]: (key, task) for key, task in tasks.items()}
    assert sorted(by_label) == sorted(n.label for n in nodes) and len(tasks) == len(nodes) == 7
    assert [n.kind for n in nodes].count("train") == 2 and {n.kind for n in nodes} == {
        "noisify", "train", "export_logits", "evaluate", "report",
    }  # fmt: skip
    key_of = {id(n): by_label[n.label][0] for n in nodes}
    for node in nodes:
        key, task = by_label[node.label]
        assert key.startswith(f"smear-{node.command(QUICKSTART, workdir)[1]}")  # smear-train, smear-train-2
        assert sorted(task.get("dependentTasks", [])) == sorted(key_of[id(n)] for n in node.inputs)
        params = {k: v["runtimeValue"]["constant"] for k, v in task["inputs"]["parameters"].items()}
        assert params["output"] == str(node.out_dir) and params["fingerprint"] == node.fingerprint
        assert params["command"] == node.command(QUICKSTART, workdir, overrides)  # the standalone command
        assert params["version"] == __version__
        assert params["config_text"] == (ROOT / "label_smearing" / "configs" / "quickstart.py").read_text()
        assert not task.get("cachingOptions", {}).get("enableCache")  # KFP's caching off: see kfp_engine
        container = executors[spec["components"][task["componentRef"]["name"]]["executorLabel"]]["container"]
        assert container["image"] == IMAGE
        assert (
            "kfp.dsl.executor_main" in container["command"][2]
            and "pip install" not in container["command"][2]
        )
        resources = container.get("resources", {})
        if node.kind == "train":
            assert resources["accelerator"]["resourceType"] == "NVIDIA_L4"
            assert resources["accelerator"]["resourceCount"] == "2"
            assert resources["resourceCpuLimit"] == resources["resourceCpuRequest"] == "4"
            assert resources["resourceMemoryLimit"] == "16G"
        else:  # export too: resources.export_accelerator is off
            assert "accelerator" not in resources and "resourceCpuLimit" not in resources
            assert resources["resourceMemoryLimit"] == resources["resourceMemoryRequest"] == "8G"


def test_export_gets_the_accelerator_with_export_accelerator(tmp_path, idx_dir):
    out = tmp_path / "p.yaml"
    args = [*_config_args(idx_dir), *RESOURCES, "--config.resources.export_accelerator=true"]
    assert (
        cli.main(["run", *args, "--workdir", str(tmp_path / "w"), "--engine", "kfp", "--output", str(out)])
        == 0
    )
    spec = yaml.safe_load(out.read_text())
    accelerated = {
        key.rsplit("-", 1)[0] if key[-1].isdigit() else key
        for key, task in spec["root"]["dag"]["tasks"].items()
        if "accelerator"
        in spec["deploymentSpec"]["executors"][
            spec["components"][task["componentRef"]["name"]]["executorLabel"]
        ]["container"].get("resources", {})
    }
    assert accelerated == {"smear-train", "smear-export-logits"}
    assert kfp_engine.DEFAULT_IMAGE in out.read_text()  # no --image: label-smearing:VERSION


# ---------------------------------------------------------------- the run
@pytest.mark.slow
def test_the_compiled_pipeline_runs_every_stage_and_its_metrics_equal_smear_runs(
    compiled, first_run, reference
):
    _, workdir, nodes = compiled
    _, outputs = first_run
    assert outputs == {n.label: "ran" for n in nodes}
    for node in nodes:
        assert artifacts.is_complete_with(node.out_dir, node.fingerprint), node.label
    expected = _metrics(reference.wait())
    assert len(expected) == 2 and expected == _metrics(workdir)
    for metrics in expected.values():
        assert {"accuracy", "nll", "ece"} <= set(metrics["test"])


@pytest.mark.slow
def test_a_resubmitted_pipeline_skips_finished_stages_and_recomputes_a_deleted_one(compiled, first_run):
    yaml_path, workdir, nodes = compiled
    root, _ = first_run
    report = nodes[-1]
    assert report.kind == "report"
    shutil.rmtree(report.out_dir)  # KFP's own cache would skip it: its inputs did not change
    stamps = {n.label: os.stat(artifacts.join(n.out_dir, artifacts.MANIFEST)).st_mtime_ns for n in nodes[:-1]}
    outputs = _run_compiled(yaml_path, root)
    assert outputs == {n.label: "ran" if n is report else "cached" for n in nodes}
    assert stamps == {
        n.label: os.stat(artifacts.join(n.out_dir, artifacts.MANIFEST)).st_mtime_ns for n in nodes[:-1]
    }  # not rewritten
    assert artifacts.is_complete_with(report.out_dir, report.fingerprint)


# ---------------------------------------------------------------- a task
def test_a_task_skips_a_complete_artifact_with_its_fingerprint_without_running(
    tmp_path, make_data_artifact, capsys
):
    data = make_data_artifact(tmp_path)
    fingerprint = artifacts.read_manifest(data)["fingerprint"]
    # The command would fail (no such config file) if it ran.
    command = ["smear", "noisify", "--config", str(tmp_path / "missing.py"), "--workdir", str(tmp_path)]
    assert kfp_engine.run_task(command, str(data), fingerprint, __version__, "c.py", "") == "cached"
    assert "cached" in capsys.readouterr().out


def test_a_task_refuses_an_image_of_another_version_in_one_line(tmp_path, capsys):
    command = ["smear", "noisify", "--config", "c.py", "--workdir", str(tmp_path / "w")]
    with pytest.raises(SystemExit) as e:
        kfp_engine.run_task(command, str(tmp_path / "w" / "data" / "x"), "f" * 64, "0.0.1", "c.py", "")
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "compiled by label-smearing 0.0.1" in err
    assert not (tmp_path / "w").exists()


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--engine", "kfp"], "--engine kfp needs --output"),
        (
            ["--engine", "kfp", "--output", "OUT/p.yaml", "--jobs", "2"],
            "--jobs 2 does not apply to --engine kfp",
        ),
        (["--engine", "argo", "--output", "OUT/p.yaml"], "invalid choice: 'argo'"),
        (["--output", "OUT/p.yaml"], "--output needs --engine kfp"),
        (["--engine", "kfp", "--output", "OUT/p.yaml", "--force"], "--force does not apply"),
        (["--engine", "kfp", "--output", "OUT/p.yaml", "--dry-run"], "--dry-run does not apply"),
        (["--engine", "kfp", "--output", "OUT/p.json"], "ends in .yaml or .yml"),
        (["--engine", "kfp", "--output", "OUT/no/such/p.yaml"], "does not exist"),
        (["--engine", "kfp", "--output", "OUT"], "out is a directory; name the pipeline file to write, e.g."),
        (
            ["--engine", "kfp", "--output", "OUT/p.yaml", "--config.resources.train_cpu=lots"],
            "resources.train_cpu='lots'",
        ),
        (
            ["--engine", "kfp", "--output", "OUT/p.yaml", "--config.resources.train_accelerator_count=0"],
            "resources.train_accelerator_count must be >= 1",
        ),
        (
            ["--engine", "kfp", "--output", "OUT/p.yaml", "--workdir", "w"],
            "--workdir w: with --engine kfp it must be storage every task reaches",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path, idx_dir, capsys, monkeypatch, extra, message
):
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(tmp_path)
    argv = ["run", *_config_args(idx_dir), "--workdir", str(tmp_path / "w")]
    argv += [a.replace("OUT", str(out)) for a in extra]  # a second --workdir wins
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert list(out.iterdir()) == [] and not (tmp_path / "w").exists()


def test_an_output_that_cannot_be_written_is_one_line_naming_it(tmp_path, idx_dir, capsys, monkeypatch):
    """A read-only directory (simulated: the tests run as root, whom permissions do not stop)."""
    import errno

    from kfp import compiler

    def refused(self, pipeline_func, package_path, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", package_path)

    monkeypatch.setattr(compiler.Compiler, "compile", refused)
    out = tmp_path / "out"
    out.mkdir()
    argv = ["run", *_config_args(idx_dir), "--workdir", str(tmp_path / "w"), "--engine", "kfp", "--output",
            str(out / "p.yaml")]  # fmt: skip
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"smear run: error: --output {out / 'p.yaml'}: cannot write it (Permission denied); "
                   "name a writable place with --output"], err  # fmt: skip
    assert list(out.iterdir()) == []


def test_without_kfp_installed_engine_kfp_is_one_line_exit_2(tmp_path, idx_dir, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "kfp", None)  # `import kfp` raises ImportError
    argv = ["run", *_config_args(idx_dir), "--workdir", str(tmp_path / "w")]
    assert cli.main([*argv, "--engine", "kfp", "--output", str(tmp_path / "p.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--engine kfp needs the kfp package" in err
    assert list(tmp_path.iterdir()) == []


def test_smear_run_does_not_import_kfp_unless_asked():
    script = "import sys; from label_smearing.pipeline import run, kfp_engine; print('kfp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- the image
def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _extras() -> dict[str, list[str]]:
    return _project()["optional-dependencies"]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps `path` (relative, /-separated) out of the build context."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatch(prefix, p.removeprefix("**/")) or fnmatch.fnmatch(parts[i], p.removeprefix("**/"))
        if p.startswith("**/")
        else fnmatch.fnmatch(prefix, p)
        for p in patterns
        for i, prefix in enumerate(prefixes)
    )


def test_the_dockerfile_installs_the_package_from_pyproject_with_the_kfp_and_gcp_extras():
    text = (ROOT / "Dockerfile").read_text()
    commands = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.startswith("#")))
    (base,) = re.findall(r"^FROM\s+(\S+)", commands, re.M)
    assert re.fullmatch(r"python:3\.11[\w.-]*", base)  # pyproject's requires-python: >=3.10,<3.13
    installs = [i.strip() for i in re.findall(r"pip install ([^&\n]+)", commands)]
    assert installs == ["'.[gcp,kfp]'"]  # the package itself, not editable: no second list of requirements
    assert "rm -rf /opt/label-smearing" in commands  # the image runs from the install, not from a source tree
    extras = _extras()
    assert {"gcp", "kfp"} <= set(extras) and extras["kfp"] == ["kfp==2.17.*"]
    assert "kfp==2.17.*" in extras["dev"]  # what the tests compile with is what the image runs
    assert "requirements" not in commands
    assert re.search(r"^COPY \. \.$", commands, re.M)
    # `smear` is on the PATH (the project's console script), checked by the build, and the default command
    assert _project()["scripts"] == {"smear": "label_smearing.cli:main"}
    assert "&& smear --help" in commands and re.search(r'^CMD \["smear"', commands, re.M)
    # the tasks' function needs kfp and this module in the image (kfp_engine compiles without installing kfp)
    assert 'python -c "import kfp, label_smearing.pipeline.kfp_engine"' in commands


def _egg_info(source: Path, out: Path) -> dict[str, str]:
    """setuptools' metadata of the package in `source`: {file name: text} (SOURCES.txt, requires.txt, ...)."""
    out.mkdir()
    subprocess.run(
        [sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "egg_info", "--egg-base", str(out)],
        cwd=source, check=True, capture_output=True,
    )  # fmt: skip
    (info,) = out.glob("*.egg-info")
    return {f.name: f.read_text() for f in info.iterdir()}


def test_the_build_context_the_dockerignore_leaves_holds_the_whole_package(tmp_path):
    """The files `COPY . .` sends make the same package as the repository: every module, extra and script."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [p.strip() for p in lines if p.strip() and not p.startswith("#")]
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/test_kfp.py",
        "label_smearing/__pycache__/x.pyc",
        "demo_workdir/a",
    ):
        assert _ignored(path, patterns), path  # a small context: no environment, history, tests or results
    context = tmp_path / "context"
    for directory, subdirs, files in os.walk(ROOT):
        relative = Path(directory).relative_to(ROOT).as_posix()
        prefix = "" if relative == "." else f"{relative}/"
        subdirs[:] = [d for d in subdirs if not _ignored(prefix + d, patterns)]
        for name in files:
            if not _ignored(prefix + name, patterns):
                (context / prefix).mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(directory) / name, context / prefix / name)
    built, repository = _egg_info(context, tmp_path / "built"), _egg_info(ROOT, tmp_path / "repository")
    packages = set(repository["top_level.txt"].split())
    assert packages == {"label_smearing"}

    def modules(info: dict) -> set[str]:  # the packages' modules (SOURCES.txt also lists an sdist's extras)
        return {
            m for m in info["SOURCES.txt"].splitlines() if m.endswith(".py") and m.split("/")[0] in packages
        }

    assert {"label_smearing/pipeline/kfp_engine.py", "label_smearing/configs/base.py"} <= modules(repository)
    assert modules(built) == modules(repository)
    assert (
        built["requires.txt"] == repository["requires.txt"] and "[kfp]\nkfp==2.17.*" in built["requires.txt"]
    )
    assert "smear = label_smearing.cli:main" in built["entry_points.txt"]


# ---------------------------------------------------------------- a bucket workdir
def test_a_gs_workdir_compiles_to_tasks_that_read_and_write_the_bucket(gcs_env, tmp_path, idx_dir):
    out = tmp_path / "p.yaml"
    argv = [
        "run",
        *_config_args(idx_dir),
        "--workdir",
        "gs://bucket/kfp",
        "--engine",
        "kfp",
        "--output",
        str(out),
    ]
    assert cli.main(argv) == 0
    tasks = _tasks(out)
    assert len(tasks) == 7
    for task in tasks.values():
        params = {k: v["runtimeValue"]["constant"] for k, v in task["inputs"]["parameters"].items()}
        assert params["output"].startswith("gs://bucket/kfp/")
        assert params["command"][params["command"].index("--workdir") + 1] == "gs://bucket/kfp"
    assert not artifacts.path("gs://bucket/kfp").exists()  # compiling wrote nothing there


def test_a_missing_bucket_is_one_line_exit_2_before_compiling(gcs_env, tmp_path, idx_dir, capsys):
    argv = ["run", *_config_args(idx_dir), "--workdir", "gs://no-such-bucket/kfp", "--engine", "kfp"]
    assert cli.main([*argv, "--output", str(tmp_path / "p.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no-such-bucket" in err, err
    assert list(tmp_path.iterdir()) == []
