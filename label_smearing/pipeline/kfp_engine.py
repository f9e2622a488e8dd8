"""Kubeflow Pipelines v2: the plan compiled into a pipeline YAML, one task per node.

    smear run --config C --workdir W --engine kfp --output pipeline.yaml [--image IMAGE] [Beam flags]

Each node of `label_smearing.pipeline.plan.plan(config, workdir)` becomes one task, a lightweight
Python component (`smear_stage`) in the project's image (the Dockerfile at the
repository root) that runs the node's standalone command, `smear <stage> ...`
(`Node.command`). The plan's inputs become the tasks' `after` edges. Artifacts
are not KFP artifacts: every task reads and writes the workdir, shared storage
(gs://BUCKET/... or Vertex AI's FUSE path /gcs/BUCKET/...; a local path for
`kfp.local`), exactly as `smear run` does.

Idempotent through the project's fingerprints: a task whose artifact is already
complete with the node's fingerprint, and made from its inputs as they are now,
does nothing and outputs "cached", so a re-submitted pipeline skips finished
stages (and a killed training resumes from its checkpoint). KFP's own caching is off for every task: it keys on the task's
inputs, not on the workdir, and would skip a task whose artifact was deleted.

The config file's text is an input of every task, written to a temporary file
there, so the image needs no copy of the config; paths
inside the config (data.source_dir, noise.labels_file, ...) must be reachable
from the task. The config's `resources` section becomes the training tasks'
resource requests (accelerator type and count, CPU, memory).

Only `compile_pipeline` imports kfp; the task itself (`run_task`) needs nothing
but this package.
"""

import dataclasses
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import ml_collections

from label_smearing import __version__
from label_smearing.core import artifacts, registry
from label_smearing.core.config import config_file as config_file_of
from label_smearing.core.errors import UserError

DEFAULT_IMAGE = f"label-smearing:{__version__}"  # what `docker build -t label-smearing:VERSION .` makes
CACHED, RAN = "cached", "ran"  # a task's output


def check_installed() -> None:
    """Raises a one-line UserError if kfp 2 cannot be imported."""
    try:
        import kfp
    except ImportError:
        raise UserError(
            "--engine kfp needs the kfp package: pip install 'label-smearing[kfp]' (kfp 2.17)"
        ) from None
    if not kfp.__version__.startswith("2."):
        raise UserError(f"--engine kfp needs kfp 2 (2.17); this environment has kfp {kfp.__version__}")


# ---------------------------------------------------------------- what a task runs
def _fail(message: str, status: int = 2):
    print(f"smear kfp: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(status)


def run_task(
    command: list[str], output: str, fingerprint: str, version: str, config_file: str, config_text: str
) -> str:
    """One pipeline task: skips a finished node, else runs its `smear <stage>` command. In the image.

    Args:
      command: the node's standalone command, `["smear", STAGE, "--config", "FILE[:ARG]", ...]`.
      output: the artifact it makes; fingerprint: the one the compiler planned.
      version: the package version that compiled the pipeline (the image must run the same code).
      config_file, config_text: the config file as compiled (its name and text); the command
        reads a copy of it written here.

    Returns:
      "cached" (the artifact was complete with this fingerprint: nothing ran) or "ran".

    Raises:
      SystemExit: the stage failed (its status), or the image's version is not the compiler's (2).
    """
    if version != __version__:
        _fail(
            f"the pipeline was compiled by label-smearing {version}, the image has {__version__}: "
            "fingerprints differ; build the image of the compiling version or compile again"
        )
    if artifacts.is_current(output, fingerprint):
        print(f"smear kfp: cached: {output} is complete with fingerprint {fingerprint[:10]}", flush=True)
        return CACHED
    with tempfile.TemporaryDirectory(prefix="smear-config-") as tmp:
        copy = Path(tmp) / os.path.basename(config_file)
        copy.write_text(config_text)
        argv = list(command[1:])
        at = argv.index("--config") + 1
        _, colon, arg = argv[at].partition(":")
        argv[at] = f"{copy}{colon}{arg}"
        print(f"smear kfp: running: {' '.join(command)}", flush=True)
        # `python -m label_smearing.cli` is `smear`, found without relying on PATH.
        # The manifest records the command as compiled (not this copy of the config) with --force.
        env = dict(
            os.environ, SMEAR_REMAKE=shlex.join([*command, *([] if "--force" in command else ["--force"])])
        )
        status = subprocess.call([sys.executable, "-m", "label_smearing.cli", *argv], env=env)
    if status != 0:
        _fail(f"{command[0]} {command[1]} exited with status {status}", status)
    if not artifacts.is_complete_with(output, fingerprint):
        _fail(f"{command[0]} {command[1]} finished but {output} holds no complete artifact "
              f"with fingerprint {fingerprint[:10]}")  # fmt: skip
    return RAN


# No `from __future__ import annotations` in this module: kfp reads these annotations as types.
def smear_stage(
    command: list, output: str, fingerprint: str, version: str, config_file: str, config_text: str
) -> str:
    """Runs one plan node's `smear <stage>` command unless its artifact is complete; "cached" or "ran"."""
    from label_smearing.pipeline.kfp_engine import run_task

    return run_task(command, output, fingerprint, version, config_file, config_text)


# ---------------------------------------------------------------- compiling
def _resources(config: ml_collections.ConfigDict) -> dict:
    """The config's `resources` section, checked: one line naming a bad value."""
    r = config.resources
    if r.train_accelerator_count < 1:
        raise UserError(f"resources.train_accelerator_count must be >= 1, got {r.train_accelerator_count}")
    if r.export_accelerator and not r.train_accelerator_type:
        raise UserError("resources.export_accelerator needs resources.train_accelerator_type")
    cpu = re.compile(r"^([0-9]*\.?[0-9]+|[0-9]+m)$")  # kfp's own checks, as one line here
    memory = re.compile(r"^[0-9]+(E|Ei|P|Pi|T|Ti|G|Gi|M|Mi|K|Ki)?$")
    for key, pattern in (("train_cpu", cpu), ("cpu", cpu), ("train_memory", memory), ("memory", memory)):
        if r[key] and not pattern.match(r[key]):
            raise UserError(
                f"resources.{key}={r[key]!r}: expected e.g. " + ("'8' or '500m'" if "cpu" in key else "'32G'")
            )
    return dict(r)


def _set_resources(task, kind: registry.StageKind, r: dict) -> None:
    """A training's accelerators, CPU and memory (`resources.train_*`); an optional-accelerator stage's
    (export-logits) accelerators only with `resources.export_accelerator`; other stages' CPU and memory."""
    accelerated = kind.accelerator == "yes" or (kind.accelerator == "optional" and r["export_accelerator"])
    training = kind.accelerator == "yes"
    cpu, memory = (r["train_cpu"], r["train_memory"]) if training else (r["cpu"], r["memory"])
    if accelerated and r["train_accelerator_type"]:
        task.set_accelerator_type(r["train_accelerator_type"])
        task.set_accelerator_limit(r["train_accelerator_count"])
    if cpu:
        task.set_cpu_request(cpu).set_cpu_limit(cpu)
    if memory:
        task.set_memory_request(memory).set_memory_limit(memory)


def pipeline_name(config: ml_collections.ConfigDict) -> str:
    return "smear-" + re.sub(r"[^a-z0-9-]+", "-", str(config.name).lower()).strip("-")


def compile_pipeline(
    nodes: list, output_file: str | os.PathLike, *, config: ml_collections.ConfigDict, config_arg: str,
    workdir: str | os.PathLike, overrides: tuple[str, ...] = (), image: str = DEFAULT_IMAGE, beam_args=(),
) -> Path:  # fmt: skip
    """Writes the plan (`label_smearing.pipeline.plan.Node`s) as a KFP v2 pipeline YAML to `output_file`; returns its path.

    The file is written whole, or not at all.

    Raises:
      UserError: kfp is missing; the output file, the workdir (relative) or a `resources` value
        is bad; the config file cannot be read. Nothing is written then.
    """
    check_installed()
    output_file = Path(output_file)
    if output_file.suffix not in (".yaml", ".yml"):
        raise UserError(f"--output {output_file}: a KFP pipeline file ends in .yaml or .yml")
    if not output_file.parent.is_dir():
        raise UserError(f"--output {output_file}: directory {output_file.parent} does not exist")
    if not artifacts.is_url(workdir) and not os.path.isabs(workdir):
        raise UserError(
            f"--workdir {workdir}: with --engine kfp it must be storage every task reaches, by an "
            "absolute path or URL: gs://BUCKET/DIR (or Vertex AI's /gcs/BUCKET/DIR)"
        )
    if not image or any(c.isspace() for c in image):
        raise UserError(f"--image {image!r}: expected an image reference such as {DEFAULT_IMAGE}")
    resources = _resources(config)
    config_file = config_file_of(config_arg)  # a bundled config's file in the installed package
    try:
        config_text = Path(config_file).read_text()
    except OSError as e:
        raise UserError(f"cannot read the config file {config_file}: {e.strerror}") from e

    from kfp import compiler, dsl

    base = dsl.component(smear_stage, base_image=image, install_kfp_package=False)  # the image has kfp
    # One component per stage (smear-train, smear-evaluate, ...): the same function, named for the UI.
    components = {
        name: type(base)(
            dataclasses.replace(base.component_spec, name=f"smear-{kind.command}"), base.python_func
        )
        for name, kind in registry.STAGES.items()
        if kind.planned
    }
    description = f"label-smearing {__version__}: {config_arg} in {workdir}, {len(nodes)} stages"

    @dsl.pipeline(name=pipeline_name(config), description=description)
    def smear_pipeline():  # no parameters: kfp 2.17 copies a default unescaped into the YAML's header
        tasks = {}
        for node in nodes:
            command = node.command(config_arg, workdir, overrides)
            if node.stage.beam:
                command += list(beam_args)
            task = components[node.kind](
                command=command, output=str(node.out_dir), fingerprint=node.fingerprint, version=__version__,
                config_file=os.path.basename(config_file), config_text=config_text,
            )  # fmt: skip
            task.set_display_name(node.label)
            # Off: KFP's cache keys on the task's inputs, not on the workdir, so it would skip a task
            # whose artifact was deleted. The task itself skips a node whose artifact is complete.
            task.set_caching_options(enable_caching=False)
            task.after(*[tasks[id(n)] for n in node.inputs])
            _set_resources(task, node.stage, resources)
            tasks[id(node)] = task

    tmp = output_file.with_name(f".{output_file.stem}.tmp-{os.getpid()}.yaml")  # kfp wants the suffix
    try:
        compiler.Compiler().compile(smear_pipeline, str(tmp))
        os.replace(tmp, output_file)
    except OSError as e:  # a read-only or full directory: the file the user named, not our temporary one
        raise UserError(
            f"--output {output_file}: cannot write it ({e.strerror or e}); name a writable place with --output"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return output_file
