"""The nightly comparison: the canary scenario headless against the gateway, then the judge."""

from __future__ import annotations

import shlex
from typing import Any

from cutover.plan.stacks import StackConfig, Target
from cutover.render.workloads.common import (
    LOCUST_DIR,
    PLAN_DIR,
    analyze_args,
    gateway_url,
    locust_volumes,
    names,
    part_meta,
    pod_container,
    pod_labels,
    sh_command,
)


def evidence_store(cfg: StackConfig) -> str:
    """The evidence store of the stack in its cluster (`cutover.ops.evidencestore`)."""
    return f"configmap:{cfg.namespace}"


def nightly_rbac(t: Target) -> list[dict[str, Any]]:
    """The nightly Job's identity: it may add evidence ConfigMaps to the stack's namespace, nothing else."""
    n = names(t.plan)["nightly"]
    meta = part_meta(n, t, "nightly")
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta,
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": n},
            "subjects": [{"kind": "ServiceAccount", "name": n, "namespace": t.cfg.namespace}],
        },
    ]


def nightly_cron_job(t: Target) -> dict[str, Any]:
    """Each night: the canary scenario headless against the gateway, then the judge; every night's
    samples, verdict.json and report stay under /results/nightly/<UTC date>."""
    plan, stack, cfg = t.plan, t.stack, t.cfg
    nt, n = cfg.nightly, names(plan)
    night = "/results/nightly/$(date -u +%Y-%m-%dT%H%MZ)"
    loadtest = [
        "cutover",
        "loadtest",
        "canary",
        "--host",
        gateway_url(plan, cfg),
        "--allow-remote",
        "-u",
        str(nt.users),
        "-t",
        nt.runTime,
        "--processes",
        str(nt.processes),
    ]
    # the verdict also lands where the gate reads: a ConfigMap in the stack's namespace
    analyze = ["cutover", *analyze_args(stack, f"{PLAN_DIR}/rollout.yaml"), "--evidence-store", evidence_store(cfg)]
    command = sh_command(
        f'night="{night}"',
        'mkdir -p "$night"',
        f'{shlex.join(loadtest)} --samples "$night/samples.jsonl"',
        f'status=0; {shlex.join(analyze)} --out "$night" "$night"/samples*.jsonl || status=$?',
        'ln -sfn "$night" /results/nightly/latest',
        'echo "verdict: $night/verdict.json (exit $status)"',
        'exit "$status"',  # HOLD (1) or ROLLBACK (3) marks the night's Job failed, so it is seen
    )
    vols, mounts = locust_volumes(plan)
    container = pod_container("nightly-canary", cfg, command, nt.resources, volumeMounts=mounts, workingDir=LOCUST_DIR)
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": part_meta(n["nightly"], t, "nightly"),
        "spec": {
            "schedule": nt.schedule,
            "timeZone": nt.timeZone,
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": nt.keepVerdicts,
            "failedJobsHistoryLimit": nt.keepVerdicts,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "metadata": {"labels": pod_labels(t, "nightly")},
                        "spec": {
                            "restartPolicy": "Never",
                            "serviceAccountName": n["nightly"],
                            "containers": [container],
                            "volumes": vols,
                        },
                    },
                }
            },
        },
    }
