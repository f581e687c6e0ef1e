# syntax=docker/dockerfile:1
# One image for every store-server role; the role is the command (see docker-compose.yml).
#
#   docker build -t store-server .
#   docker run -p 104:11112 -v store-data:/var/lib/store-server store-server   # embedded
#
# The first stage installs the locked dependencies and the package into a virtual
# environment; the second copies only that environment onto a slim base.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/store-server
WORKDIR /src
# The lock first: its layer is reused until the locked versions change.
COPY requirements.lock ./
RUN /opt/store-server/bin/pip install --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY services ./services
COPY shared ./shared
RUN /opt/store-server/bin/pip install --no-deps . \
    && /opt/store-server/bin/pip check \
    && /opt/store-server/bin/store-server --version

FROM ${PYTHON_IMAGE}
# Fonts for the scan sheet (Latin, Greek, Cyrillic; CJK names); Pango, with which WeasyPrint
# lays out its PDF; tini reaps the thumbnail worker processes and forwards SIGTERM.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        fonts-dejavu-core fonts-droid-fallback libpango-1.0-0 libpangoft2-1.0-0 tini \
    && rm -rf /var/lib/apt/lists/*
# A fixed uid/gid, so that files on a bind-mounted accounts tree have a known owner.
RUN groupadd --system --gid 10001 store-server \
    && useradd --system --uid 10001 --gid store-server --no-create-home \
        --home-dir /var/lib/store-server --shell /usr/sbin/nologin store-server \
    && install -d -o store-server -g store-server -m 0750 /var/lib/store-server
COPY --from=build /opt/store-server /opt/store-server
COPY docs/store-server.example.toml /usr/share/doc/store-server/store-server.example.toml
ENV PATH=/opt/store-server/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STORE_SERVER_DATA_DIR=/var/lib/store-server \
    STORE_SERVER_LOG__TO_FILE=false \
    STORE_SERVER_ROLE=run
USER store-server
WORKDIR /var/lib/store-server
VOLUME ["/var/lib/store-server"]
# The DICOM port inside the container; publish it as 104 on the host (-p 104:11112), so the
# process needs no privilege to bind it. 2762 is the TLS port when receiver.tls is set.
EXPOSE 11112 2762
# `health` judges the process of $STORE_SERVER_ROLE: its heartbeat, and what it needs.
HEALTHCHECK --interval=30s --timeout=30s --start-period=90s --retries=3 \
    CMD ["store-server", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["tini", "--"]
CMD ["store-server", "run"]
