# The cutover image: the gateway, the Locust scenarios, migrate/reconcile and the judge.
# Its build steps are CI's install steps: .ci/install (Debian packages) and `make setup` (the virtual
# environment with the pinned Python packages, cutover installed in it).
#
#   buildah bud -t cutover:0.1.0 .        (or: docker build -t cutover:0.1.0 .)
#
# BASE is any Debian bookworm image; the tests build on a debootstrapped bookworm with
# --build-arg BASE=localhost/debian-bookworm-minbase because no registry is reachable there.
ARG BASE=docker.io/library/debian:bookworm-slim
FROM ${BASE}

WORKDIR /app
COPY .ci/install .ci/install
RUN sh .ci/install --runtime && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml Makefile README.md ./
COPY cutover cutover
COPY infra infra
COPY loadtests loadtests
COPY benchmarks benchmarks
COPY runbooks runbooks
COPY dashboards dashboards
COPY Pulumi.yaml Pulumi.*.yaml rollout.yaml mkdocs.yml ./
# Behind a TLS-intercepting proxy, pass its CA bundle: --build-arg PIP_CERT=/path (mounted with --volume).
ARG PIP_CERT
RUN if [ -z "${PIP_CERT:-}" ]; then unset PIP_CERT; fi; make setup PYTHON=python3 && rm -rf /root/.cache/pip \
 && groupadd --gid 10001 cutover && useradd --uid 10001 --gid 10001 --home-dir /app --no-create-home cutover

ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 CUTOVER_PROJECT_DIR=/app
USER 10001
EXPOSE 8080
ENTRYPOINT []
CMD ["cutover", "--help"]
