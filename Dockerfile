# The tlpipe component image (CPU): the package and its pinned stack on Python 3.11.
#
#   docker build -t REGISTRY/tlpipe:0.1.0 .
#   docker push REGISTRY/tlpipe:0.1.0
#
# Every step of the compiled Kubeflow pipeline runs in this image (the config's
# kubeflow.image names it); nothing is pip-installed when a step starts.
# Debian's dataset-fashion-mnist package puts the real Fashion-MNIST files at
# /usr/share/datasets/fashion-mnist, so the embedded default runs on a cluster as is.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2

RUN apt-get update \
    && apt-get install -y --no-install-recommends dataset-fashion-mnist \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/tlpipe
COPY pyproject.toml setup.cfg README.md ./
COPY pipeline/ pipeline/
COPY components/ components/
COPY models/ models/
# setup.cfg pins the stack (tensorflow 2.21, keras 3.15, apache-beam 2.77, TFMA 0.52, kfp 2.17, ...).
RUN pip install . \
    && python -c "import kfp, tensorflow_model_analysis, tlpipe.pipeline.kfp_components"
