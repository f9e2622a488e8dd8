"""label-smearing's pipeline: plumbing, stages, the plan and the `smear` CLI."""

__version__ = "0.3.0"  # the one place the version is written; setup.py reads it, fingerprints cover it
