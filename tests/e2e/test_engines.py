"""engines/build.sh on the real flagd binary of the engine cache: a bundle installs it in seconds, two
runs at once in two clones install it once (the lock), a clone in another directory finds it built (the
stamp hashes contents, not paths), and a bundle whose archive does not match its hash is refused."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from ..conftest import ROOT
from .conftest import engines

pytestmark = pytest.mark.e2e


def _flagd_bundle(tmp_path: Path) -> Path:
    """A bundle of flagd alone, made by build.sh --bundle from the engine cache."""
    eng = engines()
    if "FLAGD" not in eng or not Path(eng["FLAGD"]).is_file():
        pytest.fail("flagd is missing from the engine cache: run `make engines`", pytrace=False)
    bundle = tmp_path / "bundle"
    env = {**os.environ, "XZ_OPT": "-0"}
    out = subprocess.run(
        ["bash", str(ROOT / "engines/build.sh"), "--bundle", str(bundle), "flagd"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    doc = json.loads((bundle / "engines.json").read_text())
    assert [e["name"] for e in doc["engines"]] == ["flagd"]
    assert (bundle / "SHA256SUMS").read_text().split() == [doc["engines"][0]["sha256"], doc["engines"][0]["archive"]]
    return bundle


def _clone(tmp_path: Path, name: str) -> Path:
    """The engines/ directory of a clone elsewhere (build.sh reads only its own directory)."""
    dest = tmp_path / name / "engines"
    shutil.copytree(ROOT / "engines", dest)
    return dest / "build.sh"


def _env(cache: Path, bundle: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CUTOVER_ENGINES_BUNDLE"}
    env.update(CUTOVER_ENGINES_DIR=str(cache), ENGINES_NO_PATH="1", GOPROXY="off", GOFLAGS="")
    if bundle is not None:
        env["CUTOVER_ENGINES_BUNDLE"] = str(bundle)
    return env


def test_two_runs_at_once_in_two_clones_install_once_and_a_third_clone_finds_it_built(tmp_path):
    bundle = _flagd_bundle(tmp_path)
    cache = tmp_path / "cache"
    (cache / ".locks").mkdir(parents=True)
    a, b, c = (_clone(tmp_path, n) for n in ("a", "b", "c"))
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    # Hold flagd's lock as a build in progress would, so that both runs are surely under way at once.
    with open(cache / ".locks" / "flagd-0.16.1.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        procs = [
            subprocess.Popen(
                ["bash", str(script), "flagd"], env=_env(cache, bundle), stdout=log.open("w"), stderr=subprocess.STDOUT
            )
            for script, log in zip((a, b), logs)
        ]
        deadline = time.monotonic() + 60
        while not all("waiting for it" in log.read_text() for log in logs):
            assert time.monotonic() < deadline, [log.read_text() for log in logs]
            assert all(p.poll() is None for p in procs), [log.read_text() for log in logs]
            time.sleep(0.1)
        fcntl.flock(held, fcntl.LOCK_UN)
    assert [p.wait(timeout=120) for p in procs] == [0, 0], [log.read_text() for log in logs]
    outs = [log.read_text() for log in logs]
    assert sum("flagd 0.16.1: installed from the bundle" in o for o in outs) == 1, outs
    assert sum("flagd 0.16.1: already built" in o for o in outs) == 1, outs
    assert not any("flagd 0.16.1: building" in o for o in outs), outs
    flagd = cache / "flagd-0.16.1" / "bin" / "flagd"
    assert f"FLAGD={flagd}" in (cache / "env").read_text().splitlines()
    assert list((cache / ".build").iterdir()) == []  # no scratch left behind
    # A third clone, in another directory and without the bundle, finds it built: the stamp is the same.
    third = subprocess.run(["bash", str(c), "flagd"], env=_env(cache, None), capture_output=True, text=True, timeout=60)
    assert third.returncode == 0 and "flagd 0.16.1: already built" in third.stdout, third.stdout + third.stderr
    assert subprocess.run([str(flagd), "version"], capture_output=True, text=True).stdout.strip() != ""


def test_a_bundle_whose_archive_does_not_match_its_hash_is_refused(tmp_path):
    bundle = _flagd_bundle(tmp_path)
    archive = next(bundle.glob("flagd-*.tar.xz"))
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    cache = tmp_path / "cache"
    # GOPROXY=off: the from-source build it falls back to fails at once instead of downloading.
    out = subprocess.run(
        ["bash", str(ROOT / "engines/build.sh"), "flagd"],
        env=_env(cache, bundle),
        capture_output=True,
        text=True,
        timeout=300,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    assert f"{archive.name} has sha256" in text and "building flagd" in text, text
    assert "BUILD FAILED: flagd 0.16.1" in text, text
    assert not (cache / "flagd-0.16.1" / ".stamp").exists()
    assert not (cache / "flagd-0.16.1" / "bin" / "flagd").exists()
