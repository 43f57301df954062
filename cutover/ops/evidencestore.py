"""Where gate evidence lives, one store that every reader and writer reaches: locally a directory
(or files) of `cutover.evidence/v1` JSON; in a cluster `configmap:NAMESPACE`, one ConfigMap per
evidence item in the stack's namespace (label `cutover.io/evidence: "true"`, the file under the key
`evidence.json`), which the nightly CronJob writes, and `cutover gate`, `cutover flags`, `cutover plan
transition` and `pulumi up` read. The gate decides what counts (stack, plan digest, phase start)."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC
from pathlib import Path
from typing import Any

from cutover.judge.evidence import Evidence, load_evidence
from cutover.plan.errors import CutoverError, EvidenceError

CONFIGMAP = "configmap:"
LABEL = "cutover.io/evidence"
KEY = "evidence.json"


def namespace_of(store: str) -> str | None:
    """The namespace of a `configmap:NAMESPACE` store, None for a path."""
    if not store.startswith(CONFIGMAP):
        return None
    ns = store[len(CONFIGMAP) :]
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", ns):
        raise CutoverError(f"evidence store {store!r}: {ns!r} is not a namespace", fix="e.g. configmap:memory-staging")
    return ns


def _core() -> Any:
    try:
        from kubernetes import client, config
    except ModuleNotFoundError:
        raise CutoverError("the Kubernetes client is not installed", fix="pip install 'cutover[kube]'") from None
    try:
        # $KUBECONFIG as it is now (the client reads it once, at its import), else ~/.kube/config or the pod's
        kubeconfig = os.environ.get("KUBECONFIG")
        config.load_config(**({"config_file": kubeconfig} if kubeconfig else {}))
    except config.ConfigException as exc:
        raise CutoverError(
            f"no Kubernetes configuration: {exc}", fix="set KUBECONFIG, or run in a pod with a service account"
        ) from None
    return client.CoreV1Api()


def load_store(sources: list[str] | list[Path] | str | Path | None) -> list[Evidence]:
    """Every evidence item in the given stores: paths (files or directories, as `load_evidence`) or
    `configmap:NAMESPACE`."""
    if sources is None:
        return []
    found: list[Evidence] = []
    for source in [sources] if isinstance(sources, str | Path) else sources:
        ns = namespace_of(str(source))
        if ns is None:
            found += load_evidence(Path(source))
            continue
        for cm in _core().list_namespaced_config_map(ns, label_selector=f"{LABEL}=true").items:
            where = f"configmap {ns}/{cm.metadata.name}"
            raw = (cm.data or {}).get(KEY)
            if raw is None:
                raise EvidenceError(
                    f"no {KEY} key", file=where, fix="evidence ConfigMaps hold the file under evidence.json"
                )
            try:
                ev = Evidence.model_validate(json.loads(raw))
            except (ValueError, TypeError) as exc:
                raise EvidenceError(f"not cutover.evidence/v1: {exc}", file=where) from None
            found.append(ev.model_copy(update={"source": where}))
    return found


def item_name(ev: Evidence) -> str:
    """A ConfigMap name for one evidence item: kind, phase and time (UTC, to the microsecond)."""
    stamp = ev.created_at.astimezone(UTC).strftime("%Y%m%dt%H%M%S%fz")
    return f"cutover-evidence-{ev.phase}-{ev.kind}-{stamp}"[:253]


def save(store: str | Path, ev: Evidence) -> str:
    """Add one item to the store; where it went. A directory store: `<dir>/<phase>/<kind>-<time>.json`."""
    ns = namespace_of(str(store))
    if ns is None:
        folder = Path(store) / ev.phase
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{ev.kind}-{ev.created_at.astimezone(UTC):%Y%m%dT%H%M%S%fZ}.json"
        path.write_text(ev.to_json(), encoding="utf-8")
        return str(path)
    from kubernetes import client

    name = item_name(ev)
    labels = {LABEL: "true", "cutover.io/phase": ev.phase, "cutover.io/evidence-kind": ev.kind}
    if ev.stack:
        labels["cutover.io/stack"] = ev.stack
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels), data={KEY: ev.to_json()})
    _core().create_namespaced_config_map(ns, body)
    return f"configmap {ns}/{name}"
