# One runtime image for every pipeline stage: KFP runs each lightweight component as
# `python3 -m kfp.dsl.executor_main` in it, so it carries kfp (pinned in requirements.txt). Runtime only:
# the test and lint tools (requirements-dev.txt) stay out.
#
# Base: Debian 12 with CPython 3.11, the interpreter the lock (constraints.txt) was tested with. CUDA
# comes from the pinned wheels: torch 2.14.1 and its nvidia-* CUDA 13 / cuDNN 9 runtime wheels are in
# constraints.txt, so only the NVIDIA driver is needed on the node (GPU operator / container toolkit).
# A CUDA base image would add a second, unused copy of those libraries and another Python version.
# No apt packages: DVC fetches raw data from a git URL with dulwich (pure Python), no git binary needed.
# BASE_IMAGE: where python:3.11.14-slim-bookworm cannot be pulled, scripts/build_image.sh builds a Debian 12
# stand-in (python3, python3-venv, ca-certificates) from Debian's packages and passes it here.
#
#   bash scripts/build_image.sh        # tags localhost/spherereid:<short commit>; see docs/kubeflow.md
#   docker build --build-arg GIT_COMMIT=$(git rev-parse HEAD) -t REGISTRY/spherereid:$(git rev-parse --short HEAD) .
#   docker build --build-arg FETCH_IMAGENET=1 ...   # bake torchvision's ImageNet ResNet weights in
#   ... --secret id=pip_ca,src=/etc/ssl/certs/ca-certificates.crt   # pip behind a TLS-intercepting proxy
#
# No params.yaml and no credentials in the image: hyper-parameters arrive as pipeline parameters,
# credentials as env vars from a Kubernetes Secret.
ARG BASE_IMAGE=python:3.11.14-slim-bookworm
FROM ${BASE_IMAGE}

ARG FETCH_IMAGENET=0

# GIT_PYTHON_REFRESH=quiet: the image has no git binary; MLflow's GitPython would warn on every task.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    TORCH_HOME=/opt/torch \
    MLFLOW_DISABLE_TELEMETRY=true \
    GIT_PYTHON_REFRESH=quiet

RUN python3 -m venv /opt/venv

WORKDIR /opt/spherereid

# The same install as the README path (scripts/install_venv.sh), runtime half only: the pinned requirements
# with the full lock as constraints, then our package without dependencies. First, so a code-only change
# reuses this layer. The optional pip_ca secret is a CA bundle for pip (a TLS-intercepting proxy); it is
# mounted for this step only and never lands in a layer.
COPY requirements.txt constraints.txt ./
RUN --mount=type=secret,id=pip_ca \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
    && pip install --no-cache-dir -r requirements.txt -c constraints.txt

# Optional: ImageNet weights (model.pretrained: imagenet) into $TORCH_HOME, for clusters without internet.
RUN if [ "$FETCH_IMAGENET" = "1" ]; then \
        python -c "import torchvision.models as m; [getattr(m, f'ResNet{d}_Weights').IMAGENET1K_V1.get_state_dict(progress=False) for d in (18, 34, 50)]"; \
    fi

# Non-root user. The KFP launcher writes artifacts under /gcs, /minio and /s3 (older backends do not mount
# emptyDirs there), so those exist and belong to the user.
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin reid \
    && mkdir -p /gcs /minio /s3 /opt/torch \
    && chown reid /gcs /minio /s3 /opt/torch

COPY pyproject.toml ./
COPY model/ model/
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
    && rm -rf build model/*.egg-info \
    && python -c "import kfp, spherereid, torch; print('kfp', kfp.__version__, 'torch', torch.__version__)"

USER 10001
WORKDIR /home/reid

# The code version for the MLflow `git_commit` tag: the image has no .git (and no git binary), so the
# train stage reads it from here. Last, so a new commit does not rebuild the layers above.
ARG BASE_IMAGE
ARG GIT_COMMIT=unknown
ARG VERSION=unknown
ARG SOURCE_URL=unknown
ENV SPHEREREID_GIT_COMMIT=${GIT_COMMIT}
LABEL org.opencontainers.image.title="spherereid" \
      org.opencontainers.image.description="SphereReID pipeline stages (preprocess, train, evaluate, register)" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
