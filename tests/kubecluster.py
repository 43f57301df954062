"""A throwaway Kubernetes control plane for tests: etcd + kube-apiserver
(+ kube-controller-manager's garbage collector, namespace and PVC protection controllers).

Self-contained (standard library; ``cryptography`` or the ``openssl`` CLI for
the certificates; PyYAML if installed, for reading manifests). No kubelet, no
scheduler, no workload controllers: objects are stored and validated (CRD
schemas, admission) but nothing runs them, which is what tests of manifests,
CRDs and `pulumi up`/`destroy` need. When a kube-controller-manager binary is
found, its garbage collector and namespace controllers run too, so foreground
deletes (what `pulumi destroy` does) and namespace deletes finish; without it
they hang on their finalizers.

    from kubecluster import KubeCluster

    with KubeCluster() as kc:                 # etcd + kube-apiserver on 127.0.0.1
        kc.apply_files(glob.glob("tests/schemas/crd-*.yaml"))   # waits for Established
        kc.apply({"apiVersion": "core.openfeature.dev/v1beta1", "kind": "FeatureFlag",
                  "metadata": {"name": "f", "namespace": "default"}, "spec": {...}})
        kc.get("core.openfeature.dev/v1beta1", "FeatureFlag", "f", "default")
        kc.kubeconfig                          # path of a kubeconfig (token auth)

Binaries: the ``kube_apiserver``/``etcd``/``controller_manager`` arguments,
else $KUBE_APISERVER / $ETCD / $KUBE_CONTROLLER_MANAGER, else those lines of
~/.cache/cutover/engines/env (written by engines.sh), else PATH
(``controller_manager=False`` runs without one).

Run ``python3 kubecluster.py [crd.yaml ...]`` for a smoke test that starts a
cluster, applies the files, creates a FeatureFlag and prints the timings.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from typing import Any

__all__ = ["KubeCluster", "KubeError", "find_engine", "load_manifests"]

ENGINES_ENV = os.path.join(
    os.environ.get("CUTOVER_ENGINES_DIR") or os.path.expanduser("~/.cache/cutover/engines"), "env"
)
SERVICE_CIDR = "10.0.0.0/24"
SERVICE_IP = "10.0.0.1"  # first address of SERVICE_CIDR: the `kubernetes` Service


class KubeError(RuntimeError):
    """An API call failed; ``status`` is the HTTP status, ``body`` the decoded answer."""

    def __init__(self, message: str, status: int = 0, body: Any = None):
        super().__init__(message)
        self.status = status
        self.body = body


def find_engine(name: str, explicit: str | None = None) -> str:
    """Absolute path of engine ``name`` (kube-apiserver, etcd, ...)."""
    if explicit:
        return explicit
    key = name.upper().replace("-", "_")
    if os.environ.get(key):
        return os.environ[key]
    try:
        with open(ENGINES_ENV, encoding="utf-8") as fh:
            for line in fh:
                k, sep, v = line.strip().partition("=")
                if sep and k == key and os.access(v, os.X_OK):
                    return v
    except OSError:
        pass
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(
        f"{name} not found: set ${key}, run `make engines` (writes {ENGINES_ENV}) or put it on PATH"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- certificates
def _make_pki(d: str) -> None:
    """Write ca.crt/ca.key, apiserver.crt/.key and sa.key/sa.pub into ``d``."""
    sans_dns = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    sans_ip = ["127.0.0.1", SERVICE_IP]
    try:
        _make_pki_cryptography(d, sans_dns, sans_ip)
    except ImportError:
        _make_pki_openssl(d, sans_dns, sans_ip)


def _make_pki_cryptography(d: str, sans_dns: list[str], sans_ip: list[str]) -> None:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def pem_key(key) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )

    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    later = now + datetime.timedelta(days=7)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubecluster-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    san = [x509.DNSName(n) for n in sans_dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in sans_ip]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(later)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    files = {
        "ca.crt": ca.public_bytes(serialization.Encoding.PEM),
        "ca.key": pem_key(ca_key),
        "apiserver.crt": cert.public_bytes(serialization.Encoding.PEM),
        "apiserver.key": pem_key(key),
        "sa.key": pem_key(sa),
        "sa.pub": sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as fh:
            fh.write(data)
        os.chmod(os.path.join(d, name), 0o600)


def _make_pki_openssl(d: str, sans_dns: list[str], sans_ip: list[str]) -> None:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    san = ",".join([f"DNS:{n}" for n in sans_dns] + [f"IP:{i}" for i in sans_ip])
    run(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "7",
        "-subj",
        "/CN=kubecluster-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    )
    run(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "apiserver.key",
        "-out",
        "apiserver.csr",
        "-subj",
        "/CN=kube-apiserver",
    )
    with open(os.path.join(d, "ext.cnf"), "w", encoding="ascii") as fh:
        fh.write(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n")
    run(
        "x509",
        "-req",
        "-in",
        "apiserver.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "apiserver.crt",
        "-days",
        "7",
        "-extfile",
        "ext.cnf",
    )
    run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "sa.key")
    run("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub")


# ------------------------------------------------------------------ manifests
def load_manifests(text: str) -> list[dict]:
    """The objects of a (multi-document) YAML or JSON text, empty documents dropped."""
    try:
        import yaml  # PyYAML

        class Loader(yaml.SafeLoader):
            """YAML 1.2 as Kubernetes reads it: a bare `=` is a string (PyYAML's YAML 1.1 `value` tag
            would refuse the AlertmanagerConfig CRD's matchType enum)."""

        Loader.yaml_implicit_resolvers = {
            first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:value"]
            for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
        }
        return [doc for doc in yaml.load_all(text, Loader=Loader) if doc]
    except ImportError:
        pass
    docs = []
    for part in re.split(r"(?m)^---[ \t]*$", text):
        if part.strip() and not all(ln.strip().startswith("#") for ln in part.strip().splitlines()):
            try:
                docs.append(json.loads(part))
            except ValueError as exc:
                raise ImportError(
                    "YAML manifests need PyYAML (pip install PyYAML); only JSON works without it"
                ) from exc
    return docs


# -------------------------------------------------------------------- cluster
class KubeCluster:
    """etcd + kube-apiserver on free 127.0.0.1 ports in a temporary directory."""

    def __init__(
        self,
        kube_apiserver: str | None = None,
        etcd: str | None = None,
        workdir: str | None = None,
        keep: bool = False,
        timeout: float = 120.0,
        extra_apiserver_args: Iterable[str] = (),
        controller_manager: str | bool | None = None,
    ):
        self.kube_apiserver_bin = find_engine("kube-apiserver", kube_apiserver)
        self.etcd_bin = find_engine("etcd", etcd)
        self.controller_manager_bin: str | None = None
        if controller_manager is not False:
            try:
                self.controller_manager_bin = find_engine(
                    "kube-controller-manager",
                    controller_manager if isinstance(controller_manager, str) else None,
                )
            except FileNotFoundError:
                if controller_manager:  # True or a path: asked for explicitly
                    raise
        self._workdir_arg = workdir
        self.keep = keep
        self.timeout = timeout
        self.extra_apiserver_args = list(extra_apiserver_args)
        self.dir: str = ""
        self.token = base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")
        self.server = ""
        self.kubeconfig = ""
        self.startup_seconds = 0.0
        self._procs: list[tuple[str, subprocess.Popen]] = []
        self._ssl: ssl.SSLContext | None = None
        self._discovery: dict[str, dict] = {}
        self._pki = ""

    # -- lifecycle
    def __enter__(self) -> KubeCluster:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> KubeCluster:
        t0 = time.monotonic()
        self.dir = self._workdir_arg or tempfile.mkdtemp(prefix="kubecluster-")
        os.makedirs(self.dir, exist_ok=True)
        pki = os.path.join(self.dir, "pki")
        os.makedirs(pki, exist_ok=True)
        _make_pki(pki)
        with open(os.path.join(pki, "tokens.csv"), "w", encoding="ascii") as fh:
            fh.write(f'{self.token},admin,admin-uid,"system:masters"\n')
        try:
            etcd_url = self._start_etcd()
            self._start_apiserver(etcd_url, pki)
            self._ssl = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
            self._wait_ready()
            self._write_kubeconfig(pki)
            if self.controller_manager_bin:
                self._start_controller_manager(pki)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(os.path.join(self.dir, f"{name}.log"), "wb")
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.dir,
            start_new_session=True,
        )
        log.close()
        self._procs.append((name, proc))
        return proc

    def _start_etcd(self) -> str:
        client, peer = _free_port(), _free_port()
        url = f"http://127.0.0.1:{client}"
        self._spawn(
            "etcd",
            [
                self.etcd_bin,
                "--name",
                "kubecluster",
                "--data-dir",
                os.path.join(self.dir, "etcd"),
                "--listen-client-urls",
                url,
                "--advertise-client-urls",
                url,
                "--listen-peer-urls",
                f"http://127.0.0.1:{peer}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{peer}",
                "--initial-cluster",
                f"kubecluster=http://127.0.0.1:{peer}",
                "--listen-metrics-urls",
                f"http://127.0.0.1:{_free_port()}",
                "--quota-backend-bytes",
                str(256 * 1024 * 1024),
            ],
        )
        deadline = time.monotonic() + self.timeout
        while True:
            self._check_alive()
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if json.load(r).get("health") in ("true", True):
                        return url
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"etcd not healthy after {self.timeout} s; see {self.dir}/etcd.log")
            time.sleep(0.1)

    def _start_apiserver(self, etcd_url: str, pki: str) -> None:
        port = _free_port()
        self.server = f"https://127.0.0.1:{port}"
        p = lambda name: os.path.join(pki, name)  # noqa: E731
        self._spawn(
            "kube-apiserver",
            [
                self.kube_apiserver_bin,
                "--etcd-servers",
                etcd_url,
                "--bind-address",
                "127.0.0.1",
                "--advertise-address",
                "127.0.0.1",
                "--secure-port",
                str(port),
                "--tls-cert-file",
                p("apiserver.crt"),
                "--tls-private-key-file",
                p("apiserver.key"),
                "--client-ca-file",
                p("ca.crt"),
                "--token-auth-file",
                p("tokens.csv"),
                "--service-account-issuer",
                "https://kubernetes.default.svc.cluster.local",
                "--service-account-key-file",
                p("sa.pub"),
                "--service-account-signing-key-file",
                p("sa.key"),
                "--service-cluster-ip-range",
                SERVICE_CIDR,
                "--authorization-mode",
                "RBAC",
                # No kubelets or controllers here: nothing would serve the
                # `kubernetes` endpoints, and priority-and-fairness only slows
                # start-up of a single-user server.
                "--endpoint-reconciler-type",
                "none",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                "--cert-dir",
                os.path.join(self.dir, "certs"),
                *self.extra_apiserver_args,
            ],
        )

    def _start_controller_manager(self, pki: str) -> None:
        self._pki = pki
        self._spawn(
            "kube-controller-manager",
            [
                self.controller_manager_bin,
                "--kubeconfig",
                self.kubeconfig,
                "--controllers",
                # + the PVC protection controller: it lifts a deleted claim's finalizer (no pod uses it)
                "garbage-collector-controller,namespace-controller,persistentvolumeclaim-protection-controller",
                "--leader-elect=false",
                "--secure-port=0",
                "--use-service-account-credentials=false",
                "--root-ca-file",
                os.path.join(pki, "ca.crt"),
                "--service-account-private-key-file",
                os.path.join(pki, "sa.key"),
            ],
        )
        time.sleep(0.3)
        self._check_alive()

    def restart_controller_manager(self) -> None:
        """Restart kube-controller-manager so that its garbage collector sees new CRDs now.

        The garbage collector re-reads the API's resource list only every 30 s
        (fixed in kube-controller-manager), so a foreground delete of a custom
        resource whose CRD is younger than that (``pulumi destroy`` right after
        ``pulumi up``) waits up to 30 s. ``apply_files`` calls this when it
        applied CRDs; call it yourself after creating CRDs some other way.
        """
        if not self.controller_manager_bin:
            return
        for i, (name, proc) in enumerate(self._procs):
            if name == "kube-controller-manager":
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait(timeout=5)
                del self._procs[i]
                break
        self._start_controller_manager(self._pki)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        last = ""
        while True:
            self._check_alive()
            try:
                status, body = self._raw("GET", "/readyz", timeout=5)
                if status == 200:
                    return
                last = body.decode(errors="replace")[-400:]
            except (OSError, ssl.SSLError) as exc:
                last = str(exc)
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"kube-apiserver not ready after {self.timeout} s ({last}); see {self.dir}/kube-apiserver.log"
                )
            time.sleep(0.2)

    def _check_alive(self) -> None:
        for name, proc in self._procs:
            if proc.poll() is not None:
                tail = ""
                try:
                    with open(os.path.join(self.dir, f"{name}.log"), "rb") as fh:
                        tail = fh.read()[-2000:].decode(errors="replace")
                except OSError:
                    pass
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")

    def _write_kubeconfig(self, pki: str) -> None:
        with open(os.path.join(pki, "ca.crt"), "rb") as fh:
            ca = base64.b64encode(fh.read()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kubecluster", "cluster": {"server": self.server, "certificate-authority-data": ca}}],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [
                {"name": "kubecluster", "context": {"cluster": "kubecluster", "user": "admin", "namespace": "default"}}
            ],
            "current-context": "kubecluster",
        }
        self.kubeconfig = os.path.join(self.dir, "kubeconfig")
        with open(self.kubeconfig, "w", encoding="utf-8") as fh:
            json.dump(config, fh, indent=2)  # JSON is YAML: kubectl and client-go read it
        os.chmod(self.kubeconfig, 0o600)

    def stop(self) -> None:
        """Stop kube-apiserver, then etcd; remove the directory unless ``keep``."""
        for _name, proc in reversed(self._procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=5)
        self._procs = []
        if self.dir and not self.keep and not self._workdir_arg:
            shutil.rmtree(self.dir, ignore_errors=True)

    def env(self) -> dict[str, str]:
        """Variables pointing clients (kubectl, pulumi-kubernetes) at this cluster."""
        return {"KUBECONFIG": self.kubeconfig}

    # -- HTTP
    def _raw(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = "application/json",
        timeout: float = 30,
    ):
        req = urllib.request.Request(self.server + path, data=body, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if body is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self._ssl_context(), timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=os.path.join(self.dir, "pki", "ca.crt"))
        return self._ssl

    def request(
        self,
        method: str,
        path: str,
        obj: Any = None,
        content_type: str = "application/json",
        ok: Iterable[int] = (200, 201),
    ) -> Any:
        """Call the API; return the decoded JSON answer, raise KubeError otherwise."""
        body = None if obj is None else (obj if isinstance(obj, bytes) else json.dumps(obj).encode())
        status, raw = self._raw(method, path, body, content_type)
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = raw.decode(errors="replace")
        if status not in tuple(ok):
            msg = data.get("message") if isinstance(data, dict) else data
            raise KubeError(f"{method} {path}: HTTP {status}: {msg}", status, data)
        return data

    # -- resources
    def _resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(URL prefix of the resource collection's group/version, namespaced) -> plural."""
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        if api_version not in self._discovery:
            self._discovery[api_version] = self.request("GET", base)
        for res in self._discovery[api_version].get("resources", []):
            if res.get("kind") == kind and "/" not in res["name"]:
                return f"{base}/{res['name']}", bool(res.get("namespaced"))
        self._discovery.pop(api_version, None)
        raise KubeError(f"no resource of kind {kind} in {api_version}", 404)

    def path(self, api_version: str, kind: str, name: str | None = None, namespace: str | None = None) -> str:
        collection, namespaced = self._resource(api_version, kind)
        if namespaced:
            base, _, plural = collection.rpartition("/")
            collection = f"{base}/namespaces/{namespace or 'default'}/{plural}"
        return collection + (f"/{urllib.parse.quote(name)}" if name else "")

    def apply(self, obj: dict, field_manager: str = "kubecluster", wait: bool = True) -> dict:
        """Server-side apply of one object (create or update); waits for CRDs to be Established."""
        api_version, kind = obj["apiVersion"], obj["kind"]
        meta = obj.get("metadata") or {}
        path = self.path(api_version, kind, meta["name"], meta.get("namespace"))
        query = urllib.parse.urlencode({"fieldManager": field_manager, "force": "true"})
        out = self.request("PATCH", f"{path}?{query}", obj, "application/apply-patch+yaml")
        if wait and kind == "CustomResourceDefinition":
            self.wait_crd(meta["name"])
        return out

    def apply_files(self, paths: Iterable[str], **kw) -> list[dict]:
        """Apply every object of the YAML/JSON files, CRDs first."""
        objs: list[dict] = []
        for p in paths:
            with open(p, encoding="utf-8") as fh:
                objs.extend(load_manifests(fh.read()))
        objs.sort(key=lambda o: o.get("kind") != "CustomResourceDefinition")
        out = [self.apply(o, **kw) for o in objs]
        if any(o.get("kind") == "CustomResourceDefinition" for o in objs):
            self.restart_controller_manager()
        return out

    def wait_crd(self, name: str, timeout: float = 60) -> None:
        """Wait until the CRD is Established and its API is served."""
        deadline = time.monotonic() + timeout
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
        while True:
            crd = self.request("GET", path)
            conds = {c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions") or []}
            if conds.get("Established") == "True":
                group = crd["spec"]["group"]
                served = [v["name"] for v in crd["spec"]["versions"] if v.get("served")]
                ready = all(self._raw("GET", f"/apis/{group}/{v}")[0] == 200 for v in served)
                if ready:
                    for v in served:
                        self._discovery.pop(f"{group}/{v}", None)
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} not established after {timeout} s: {conds}")
            time.sleep(0.1)

    def create(self, obj: dict) -> dict:
        meta = obj.get("metadata") or {}
        return self.request("POST", self.path(obj["apiVersion"], obj["kind"], None, meta.get("namespace")), obj)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict:
        return self.request("GET", self.path(api_version, kind, name, namespace))

    def list(self, api_version: str, kind: str, namespace: str | None = None) -> list[dict]:
        return self.request("GET", self.path(api_version, kind, None, namespace)).get("items", [])

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Any:
        return self.request("DELETE", self.path(api_version, kind, name, namespace), ok=(200, 202))


def _main(argv: list[str]) -> int:
    import glob

    files = argv or sorted(
        glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "schemas", "crd-*.yaml"))
    )
    t0 = time.monotonic()
    with KubeCluster() as kc:
        print(f"ready in {kc.startup_seconds:.1f} s at {kc.server} (kubeconfig {kc.kubeconfig})")
        t1 = time.monotonic()
        for o in kc.apply_files(files):
            print(f"applied {o['kind']} {o['metadata']['name']}")
        print(f"CRDs established in {time.monotonic() - t1:.1f} s")
        ff = {
            "apiVersion": "core.openfeature.dev/v1beta1",
            "kind": "FeatureFlag",
            "metadata": {"name": "smoke", "namespace": "default"},
            "spec": {
                "flagSpec": {
                    "flags": {
                        "smoke": {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "on"}
                    }
                }
            },
        }
        kc.create(ff)
        back = kc.get("core.openfeature.dev/v1beta1", "FeatureFlag", "smoke", "default")
        assert back["spec"] == ff["spec"], back
        print("FeatureFlag smoke read back:", json.dumps(back["spec"]))
        try:
            kc.create(
                {
                    **ff,
                    "metadata": {"name": "bad", "namespace": "default"},
                    "spec": {"flagSpec": {"flags": {"x": {"state": "MAYBE"}}}},
                }
            )
            print("ERROR: an invalid FeatureFlag was accepted")
            return 1
        except KubeError as e:
            print(f"invalid FeatureFlag rejected as expected: HTTP {e.status}")
        t2 = time.monotonic()
    print(f"stopped in {time.monotonic() - t2:.1f} s; {time.monotonic() - t0:.1f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
