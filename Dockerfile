# The image every task of a `smear run --engine kfp` pipeline runs in (pipeline/kfp_engine.py).
# It installs this package from setup.py with the gcp and kfp extras: the same pinned
# requirements as a developer's install, no second list. Build it from the repository root
# and push it where the pipeline's service account can pull it (README, "Scaling out"):
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/label-smearing:VERSION .
# VERSION must be the compiling package's (pipeline/__init__.py): fingerprints cover it, and
# a task refuses to run in an image of another version.
FROM python:3.11-slim-bookworm

# Debian's Fashion-MNIST IDX files: what configs/quickstart.py reads offline (data.source=auto).
RUN apt-get update \
    && apt-get install -y --no-install-recommends dataset-fashion-mnist \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2

# The source tree stays here and is installed editable: a Beam stage sent to Dataflow from a task
# ships the package with this setup.py (beam_jobs/core/runners.py: --setup_file), which a
# site-packages install would not have beside it.
WORKDIR /opt/label-smearing
COPY . .
RUN pip install -e '.[gcp,kfp]' \
    && smear --help > /dev/null \
    && python -c "import kfp, pipeline.kfp_engine"

# KFP's tasks run `python3 -m kfp.dsl.executor_main ...` (their own command); by hand: docker run IMAGE smear ...
CMD ["smear", "--help"]
