# The image every task of a `smear run --engine kfp` pipeline runs in (label_smearing/pipeline/kfp_engine.py).
# It installs this package from pyproject.toml with the gcp and kfp extras: the same pinned
# requirements as a developer's install, no second list. Build it from the repository root
# and push it where the pipeline's service account can pull it (docs/guides/scaling-out.md):
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/label-smearing:VERSION .
# VERSION must be the compiling package's (label_smearing/__init__.py): a task refuses to run in an
# image of another version.
FROM python:3.11-slim-bookworm

# Debian's Fashion-MNIST IDX files: what the quickstart config reads offline (data.source=auto).
RUN apt-get update \
    && apt-get install -y --no-install-recommends dataset-fashion-mnist \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2

# A regular (not editable) install: the source tree is deleted after it. A Beam stage sent to Dataflow
# from a task ships the installed package to the workers as a wheel it builds from itself
# (label_smearing/beam_core/runners.py), so no setup.py or source checkout is needed.
WORKDIR /opt/label-smearing
COPY . .
RUN pip install '.[gcp,kfp]' \
    && cd / && rm -rf /opt/label-smearing \
    && smear --help > /dev/null \
    && python -c "import kfp, label_smearing.pipeline.kfp_engine"
WORKDIR /

# KFP's tasks run `python3 -m kfp.dsl.executor_main ...` (their own command); by hand: docker run IMAGE smear ...
CMD ["smear", "--help"]
