"""Beam pipeline construction shared by the jobs: options and the local runner."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import logging
import os
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions, StandardOptions, TypeOptions

import label_smearing
from label_smearing.core.errors import UserError

DISTRIBUTION = "label-smearing"


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def worker_wheel(out_dir: str | os.PathLike | None = None) -> Path:
    """A wheel of the installed label_smearing, built from its own files: what Dataflow's workers install.

    Works for every kind of install (a wheel in site-packages, an editable checkout,
    an image without sources): the package's `.py` files and `py.typed`, and a
    METADATA whose requirements are the installed distribution's, so the workers
    install the same dependencies. Passed to Beam as `--extra_package`.

    Args:
      out_dir: where to write it; default a new temporary directory.

    Returns:
      The wheel's path, `label_smearing-VERSION-py3-none-any.whl`.
    """
    version = label_smearing.__version__
    root = Path(label_smearing.__file__).parent
    try:
        requires = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        requires = []  # run from a source tree without installing: the workers get no extra requirements
    out_dir = Path(out_dir or tempfile.mkdtemp(prefix="smear-wheel-"))
    wheel = out_dir / f"label_smearing-{version}-py3-none-any.whl"
    info = f"label_smearing-{version}.dist-info"
    files = {
        path.relative_to(root.parent).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
        and (path.suffix == ".py" or path.name == "py.typed")
        and "__pycache__" not in path.parts
    }
    metadata = ["Metadata-Version: 2.1", f"Name: {DISTRIBUTION}", f"Version: {version}"]
    metadata += [f"Requires-Dist: {r}" for r in requires]
    files[f"{info}/METADATA"] = ("\n".join(metadata) + "\n").encode()
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: label_smearing\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    files[f"{info}/top_level.txt"] = b"label_smearing\n"
    record = [f"{name},{_record_hash(data)},{len(data)}" for name, data in files.items()]
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel


def pipeline_options(beam_args: list[str]) -> PipelineOptions:
    """Beam options from the pass-through flags; Dataflow gets this package as a wheel (`worker_wheel`).

    A flag that is neither the stage's nor a Beam pipeline option is an error
    (Beam itself would only log a warning and drop it: a typo such as
    --direct_num_worker=2 would silently run on one worker).
    """
    options = PipelineOptions(beam_args)
    beam_log = logging.getLogger("apache_beam.options.pipeline_options")
    level = beam_log.level
    beam_log.setLevel(logging.ERROR)  # its "Discarding unparseable args" warning: we say it better
    try:
        known = set(options.get_all_options())
        unknown = sorted(set(options.get_all_options(retain_unknown_options=True)) - known)
    finally:
        beam_log.setLevel(level)
    if unknown:
        raise UserError(
            f"unrecognized arguments: {' '.join('--' + u for u in unknown)} "
            "(neither this command's flag nor an Apache Beam pipeline option)"
        )
    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    setup = options.view_as(SetupOptions)
    ours = any(Path(p).name.startswith("label_smearing-") for p in setup.extra_packages or [])
    if "Dataflow" in runner and not setup.setup_file and not ours:  # unless the user ships it themselves
        setup.extra_packages = [*(setup.extra_packages or []), str(worker_wheel())]
    return options


def make_pipeline(beam_args: Sequence[str]) -> beam.Pipeline:
    """A pipeline from `pipeline_options`, with two local defaults the user's flags override.

    - No --runner: the FnApiRunner, built as the DirectRunner builds it for batch
      jobs, but without the DirectRunner's first attempt to download and start the
      Prism runner (0.5 s here; a download from GitHub on a networked machine).
      --direct_num_workers / --direct_running_mode apply as usual.
    - Neither --pipeline_type_check nor --no_pipeline_type_check: construction-time
      type checks off (a fixed, tested graph; they cost a third of a second a run).
    """
    options = pipeline_options(list(beam_args))
    if not any(a.lstrip("-").replace("no_", "", 1).startswith("pipeline_type_check") for a in beam_args):
        options.view_as(TypeOptions).pipeline_type_check = False
    if options.view_as(StandardOptions).runner is not None:
        return beam.Pipeline(options=options)
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    provision = fn_runner.ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)
    )
    return beam.Pipeline(runner=fn_runner.FnApiRunner(provision_info=provision), options=options)
