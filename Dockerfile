# The phishme-intel image: the console script in a venv, run as a non-root user, with
# config.ini and all state (log, lock, status file, SQLite store) on the volume /data.
#
#     docker build -t phishme-intel .
#     docker run --rm -v /srv/phishme-intel:/data phishme-intel                 # one sync
#     docker run -d -v /srv/phishme-intel:/data phishme-intel -conf /data/config.ini --every 15m
#
# /data must be writable by uid 10001 (chown 10001:10001 /srv/phishme-intel). BASE is any
# image with python3 >= 3.10 and its venv module (Debian: python3-venv); see docs/container.rst.
# Where pip needs a private CA to reach its index, pass it as a build secret
# (--secret id=pip_ca,src=/path/ca.pem): it is used by pip during the build and never
# stored in the image; no pip cache is kept either.
ARG BASE=python:3.12-slim-bookworm

FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml setup.cfg README.rst /src/
COPY phishme_intel /src/phishme_intel
RUN --mount=type=secret,id=pip_ca \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
    && python3 -m venv /opt/phishme-intel \
    && /opt/phishme-intel/bin/pip install /src \
    && /opt/phishme-intel/bin/pip uninstall --yes pip setuptools wheel

FROM ${BASE}
COPY --from=build /opt/phishme-intel /opt/phishme-intel
RUN groupadd --gid 10001 phishme-intel \
    && useradd --uid 10001 --gid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin phishme-intel \
    && mkdir /data && chown 10001:10001 /data && chmod 0700 /data
ENV PATH=/opt/phishme-intel/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
VOLUME /data
WORKDIR /data
USER 10001:10001
# --status exits 0 healthy, 1 failing, 2 stale, 3 unknown; a health check knows 0 and 1 only.
HEALTHCHECK --interval=5m --timeout=30s --start-period=30m \
    CMD phishme-intel -conf /data/config.ini --status > /dev/null || exit 1
ENTRYPOINT ["phishme-intel"]
CMD ["-conf", "/data/config.ini"]
