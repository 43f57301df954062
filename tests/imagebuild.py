"""Build the project's container image with buildah, as a background job the image test waits for.

No registry is reachable on these machines, so the Dockerfile's base (any Debian bookworm image) is
made here: `debootstrap --variant=minbase bookworm` from the Debian mirror, imported as a local image.
The build then runs the Dockerfile unchanged but for `--build-arg BASE=`, with the host's CA bundle
for pip (the machines reach PyPI through a TLS-intercepting proxy). buildah runs with chroot
isolation: the sandbox allows neither OCI runtimes nor cgroup controllers.

Run as a script it does all of it and exits with the build's status; the log says what it did.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE = "localhost/cutover-test-base:bookworm-minbase"
IMAGE = "localhost/cutover:test"
MIRROR = "http://deb.debian.org/debian"
CA = "/etc/ssl/certs/ca-certificates.crt"


def missing_tools() -> list[str]:
    return [t for t in ("buildah", "debootstrap") if shutil.which(t) is None]


def _run(*cmd: str, **kw) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def build() -> None:
    have_base = subprocess.run(["buildah", "inspect", "--type", "image", BASE], capture_output=True).returncode == 0
    if not have_base:
        with tempfile.TemporaryDirectory(prefix="cutover-rootfs-") as rootfs:
            _run("debootstrap", "--variant=minbase", "bookworm", rootfs, MIRROR, stdout=subprocess.DEVNULL)
            ctr = subprocess.run(
                ["buildah", "from", "scratch"], check=True, capture_output=True, text=True
            ).stdout.strip()
            try:
                mnt = subprocess.run(
                    ["buildah", "mount", ctr], check=True, capture_output=True, text=True
                ).stdout.strip()
                _run("cp", "-a", f"{rootfs}/.", f"{mnt}/")
                _run("buildah", "umount", ctr)
                _run("buildah", "commit", "-q", ctr, BASE)
            finally:
                subprocess.run(["buildah", "rm", ctr], capture_output=True)
    args = ["buildah", "bud", "--isolation", "chroot", "--network", "host", "--build-arg", f"BASE={BASE}", "-t", IMAGE]
    if os.path.exists(CA):
        args += ["--volume", f"{CA}:/run/host-ca.crt:ro", "--build-arg", "PIP_CERT=/run/host-ca.crt"]
    _run(*args, str(ROOT))


def run_in_image(*cmd: str) -> subprocess.CompletedProcess:
    ctr = subprocess.run(["buildah", "from", IMAGE], check=True, capture_output=True, text=True).stdout.strip()
    try:
        return subprocess.run(
            ["buildah", "run", "--isolation", "chroot", ctr, "--", *cmd], capture_output=True, text=True, timeout=300
        )
    finally:
        subprocess.run(["buildah", "rm", ctr], capture_output=True)


def start(log: Path) -> subprocess.Popen:
    """The build in the background (started with the test session; it takes minutes)."""
    return subprocess.Popen([sys.executable, __file__], stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=ROOT)


if __name__ == "__main__":
    try:
        build()
    except subprocess.CalledProcessError as exc:
        print(f"failed: {exc}", flush=True)
        sys.exit(1)
