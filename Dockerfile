# Mostrador's container image: one image, the process chosen by the command (`api` by default; `sessions`,
# `worker`, `migrate`, `dlq ...`). Multi-stage: the build stage installs the package into a virtualenv, the
# runtime stage copies only that virtualenv onto a slim Python, and runs as an unprivileged user (uid 10001)
# with nothing to write but /tmp and /var/lib/mostrador/data (the chart mounts a read-only root).
#
#   docker build -t mostrador .
#   docker run --rm -e DATABASE_URL=... -e REDIS_URL=... -e MOSTRADOR_SECRET_KEY=... -p 8000:8000 mostrador api
#
# Not built in this project's CI (its machines cannot run a container build): `tests/helm` checks the chart only.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/mostrador
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY sessions ./sessions
COPY workers ./workers
COPY mostrador ./mostrador
COPY migrations ./migrations
RUN /opt/mostrador/bin/pip install . \
    # neonize's Go library (whatsmeow) ships inside its wheel as neonize/neonize-linux-<arch>.so, needing only
    # libc. Load it here, so that a missing or mismatched library fails the build and not a pod at run time
    # (neonize would try to download one, which a read-only, egress-limited pod cannot).
    && /opt/mostrador/bin/python -c "from neonize._binder import load_goneonize; print('goneonize', load_goneonize().GetVersion().decode())" \
    && /opt/mostrador/bin/mostrador --help > /dev/null

FROM python:${PYTHON_VERSION}-slim-bookworm
LABEL org.opencontainers.image.title="Mostrador" \
      org.opencontainers.image.description="Multi-tenant WhatsApp backend: API, session manager, message worker"
RUN groupadd --system --gid 10001 mostrador \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/mostrador \
       --shell /usr/sbin/nologin mostrador \
    && mkdir -p /var/lib/mostrador/data \
    && chown -R 10001:10001 /var/lib/mostrador
COPY --from=build /opt/mostrador /opt/mostrador
ENV PATH=/opt/mostrador/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MOSTRADOR_ENV=production \
    MOSTRADOR_HOST=0.0.0.0 \
    MOSTRADOR_OPS_HOST=0.0.0.0 \
    MOSTRADOR_DATA_DIR=/var/lib/mostrador/data
USER 10001:10001
WORKDIR /var/lib/mostrador
# 8000: the API; 9100: the ops listener (/metrics, /healthz, /readyz) of the session manager and the worker.
EXPOSE 8000 9100
ENTRYPOINT ["mostrador"]
CMD ["api"]
