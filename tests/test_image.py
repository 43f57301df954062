"""The container image: the Dockerfile builds with buildah (its steps are CI's install steps) and
`cutover` runs inside it. The build starts with the test session (conftest) and this test waits."""

from __future__ import annotations

import subprocess

import pytest

from . import imagebuild
from .conftest import ROOT, image_build


def test_the_dockerfile_runs_cis_install_steps_and_installs_the_locked_wheel():
    text = (ROOT / "Dockerfile").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert ".ci/install" in ci and "make test" in ci  # CI: .ci/install, then make test (make setup first)
    assert text.count("RUN sh /tmp/install --runtime") == 2  # both stages: the Debian packages as CI installs them
    assert "--require-hashes -r requirements-image.lock" in text
    assert "pip wheel" in text and "/wheels/cutover-*.whl" in text


@pytest.mark.image
def test_the_image_builds_and_cutover_runs_inside():
    proc, log = image_build()
    assert proc.wait(timeout=1200) == 0, log.read_text()[-3000:]
    try:
        _check_image()
    finally:
        subprocess.run(["buildah", "rmi", "-f", imagebuild.IMAGE], capture_output=True)  # 1.5 GB


def _check_image():
    r = imagebuild.run_in_image("cutover", "--help")
    assert r.returncode == 0, r.stderr
    for command in ("serve", "migrate", "reconcile", "analyze", "loadtest", "render"):
        assert command in r.stdout
    r = imagebuild.run_in_image("sh", "-c", "cutover plan validate && promtool --version && locust --version")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "promtool, version" in r.stdout + r.stderr and "locust" in r.stdout
    # the image carries what its pods run, not the Pulumi program, the docs or the plots
    for module in ("pulumi", "mkdocs", "matplotlib"):
        r = imagebuild.run_in_image("python3", "-c", f"import {module}")
        assert r.returncode != 0 and "ModuleNotFoundError" in r.stderr, module
