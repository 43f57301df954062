# The cutover image: the gateway, the rollback controller, the Locust scenarios, migrate/reconcile and
# the judge — not the Pulumi program, the docs or the test tools (see the extras in pyproject.toml).
# Two stages: the first builds cutover's wheel and installs it, with the locked dependencies
# (requirements-image.lock, hashes checked), into /opt/venv; the second is the base image with the
# runtime Debian packages (.ci/install --runtime, as CI installs them) and that virtual environment.
#
#   buildah bud -t cutover:0.1.0 .        (or: docker build -t cutover:0.1.0 .)
#
# BASE is any Debian bookworm image; the tests build on a debootstrapped bookworm with
# --build-arg BASE=localhost/debian-bookworm-minbase because no registry is reachable there.
ARG BASE=docker.io/library/debian:bookworm-slim

FROM ${BASE} AS build
COPY .ci/install /tmp/install
RUN sh /tmp/install --runtime && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md requirements-image.lock rollout.yaml ./
COPY cutover cutover
# Behind a TLS-intercepting proxy, pass its CA bundle: --build-arg PIP_CERT=/path (mounted with --volume).
ARG PIP_CERT
RUN if [ -z "${PIP_CERT:-}" ]; then unset PIP_CERT; fi \
 && python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --quiet --no-cache-dir --require-hashes -r requirements-image.lock \
 && /opt/venv/bin/pip wheel --quiet --no-cache-dir --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install --quiet --no-cache-dir --no-deps /wheels/cutover-*.whl

FROM ${BASE}
COPY .ci/install /tmp/install
RUN sh /tmp/install --runtime && rm -rf /var/lib/apt/lists/* /tmp/install \
 && groupadd --gid 10001 cutover && useradd --uid 10001 --gid 10001 --home-dir /work --create-home cutover
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1
WORKDIR /work
USER 10001
EXPOSE 8080
ENTRYPOINT []
CMD ["cutover", "--help"]
