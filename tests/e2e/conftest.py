"""The real engines (`make engines`): a local Kubernetes API server with the vendored CRDs, and the
Pulumi CLI with a file backend. A missing engine fails the test with the command that builds it:
CI never skips these."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ..conftest import ROOT, SCHEMAS
from ..kubecluster import ENGINES_ENV, KubeCluster


def engines() -> dict[str, str]:
    if not os.path.isfile(ENGINES_ENV):
        pytest.fail(f"the engines are not built ({ENGINES_ENV} is missing): run `make engines`", pytrace=False)
    out = {}
    for line in Path(ENGINES_ENV).read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            out[key] = value
    for name in ("PULUMI", "KUBE_APISERVER", "ETCD"):
        if not out.get(name) or not os.access(out[name], os.X_OK):
            pytest.fail(f"engine {name} is missing from {ENGINES_ENV}: run `make engines`", pytrace=False)
    return out


@pytest.fixture(scope="session")
def cluster():
    """etcd + kube-apiserver on loopback with the CRDs the objects need. No kubelet: workloads are
    validated and stored by the server, but no pod runs."""
    engines()
    with KubeCluster() as kc:
        kc.apply_files(sorted(str(p) for p in SCHEMAS.glob("crd-*.yaml")))
        yield kc


class PulumiProject:
    """A copy of the project (Pulumi.yaml, infra/, the plan, the stack files) in a temporary
    directory, run by the real Pulumi CLI: file backend, passphrase secrets, this virtualenv."""

    def __init__(self, tmp: Path, kubeconfig: str):
        eng = engines()
        self.dir = tmp / "project"
        self.dir.mkdir()
        for name in ("rollout.yaml", "Pulumi.staging.yaml", "Pulumi.production.yaml"):
            shutil.copy(ROOT / name, self.dir / name)
        shutil.copytree(ROOT / "infra", self.dir / "infra", ignore=shutil.ignore_patterns("__pycache__"))
        project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
        project["runtime"]["options"]["virtualenv"] = sys.prefix  # the virtualenv running the tests
        (self.dir / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
        (tmp / "state").mkdir()
        self.env = {
            **{k: v for k, v in os.environ.items() if k != "PULUMI_IGNORE_AMBIENT_PLUGINS"},
            "PATH": eng["ENGINES_PATH"] + os.pathsep + os.environ["PATH"],
            "PULUMI_HOME": str(tmp / "pulumi-home"),
            "PULUMI_BACKEND_URL": f"file://{tmp / 'state'}",
            "PULUMI_CONFIG_PASSPHRASE": "e2e-passphrase",
            "PULUMI_SKIP_UPDATE_CHECK": "1",
            "KUBECONFIG": kubeconfig,
        }
        self.pulumi_bin = eng["PULUMI"]
        self.state = tmp / "state"

    def __call__(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        r = subprocess.run(
            [self.pulumi_bin, *args, "--non-interactive"],
            cwd=self.dir, env=self.env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if check and r.returncode != 0:
            raise AssertionError(
                f"pulumi {' '.join(args)}: exit {r.returncode}\n{r.stdout[-4000:]}\n{r.stderr[-2000:]}"
            )
        return r
