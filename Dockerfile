# The control plane's image: the same two entry points as on a laptop, `aiops serve` (API)
# and `aiops worker` (loops), chosen by the Deployment's args (deploy/base).
#
# Images are built and scanned in CI elsewhere (no base image can be pulled on the machines
# this repository is developed on). Slim, non-root, and happy with a read-only root file
# system: the only writable paths are the volumes the manifests mount (/tmp and
# /var/lib/aiops).

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY controlplane controlplane
COPY detectors detectors
COPY forecasters forecasters
COPY remediations remediations
COPY dashboard dashboard
COPY runbooks runbooks
RUN python -m venv /opt/aiops \
 && /opt/aiops/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/aiops/bin/pip install --no-cache-dir -c constraints.txt .

FROM python:3.11-slim
RUN groupadd --gid 10001 aiops && useradd --uid 10001 --gid aiops --no-create-home aiops
COPY --from=build /opt/aiops /opt/aiops
ENV PATH=/opt/aiops/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NUMBA_CACHE_DIR=/tmp/numba \
    MPLCONFIGDIR=/tmp/matplotlib \
    AIOPS_API__HOST=0.0.0.0
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["aiops"]
CMD ["serve"]
