"""Beam pipeline construction shared by the jobs: options and the local runner."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions, StandardOptions, TypeOptions

from pipeline.core.errors import UserError

SETUP_FILE = os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "setup.py")
)


def pipeline_options(beam_args: list[str]) -> PipelineOptions:
    """Beam options from the pass-through flags; Dataflow gets this package via --setup_file.

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
    if "Dataflow" in runner and not setup.setup_file:
        setup.setup_file = SETUP_FILE
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
