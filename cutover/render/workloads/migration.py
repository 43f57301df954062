"""The sharded migration: an Indexed Job (one pod per shard) and the reconcile Job after it."""

from __future__ import annotations

import shlex
from typing import Any

from cutover.plan.stacks import StackConfig, Target
from cutover.render.workloads.common import (
    names,
    part_meta,
    pod_container,
    pod_labels,
    sh_command,
)


def data_volume(cfg: StackConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        {"name": "data", "persistentVolumeClaim": {"claimName": cfg.migration.dataClaim}},
        {"name": "data", "mountPath": "/data"},
    )


def migration_job(t: Target) -> dict[str, Any]:
    """An Indexed Job: pod i of n migrates the namespaces whose hash mod n is i (`--shard i/n`)."""
    plan, cfg = t.plan, t.cfg
    m, n = cfg.migration, names(plan)
    migrate = ["cutover", "migrate", "--from", m.source, "--to", m.target, "--batch", str(m.batch)]
    shard = f"$JOB_COMPLETION_INDEX-of-{m.shards}"
    command = sh_command(
        f'exec {shlex.join(migrate)} --shard "$JOB_COMPLETION_INDEX/{m.shards}" '
        f'--report "/data/migration/report-{shard}.json" --quarantine "/data/migration/quarantine-{shard}.jsonl"'
    )
    vol, mount = data_volume(cfg)
    container = pod_container("migrate", cfg, command, m.resources, volumeMounts=[mount])
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": part_meta(n["migrate"], t, "migration"),
        "spec": {
            "completionMode": "Indexed",
            "completions": m.shards,
            "parallelism": m.shards,
            "backoffLimitPerIndex": m.backoffLimit,
            "maxFailedIndexes": 0,
            "template": {
                "metadata": {"labels": pod_labels(t, "migration")},
                "spec": {"restartPolicy": "Never", "containers": [container], "volumes": [vol]},
            },
        },
    }


def reconcile_job(t: Target) -> dict[str, Any]:
    """After every shard: per namespace and tier, counts and checksums; the Job fails without parity."""
    plan, cfg = t.plan, t.cfg
    m, n = cfg.migration, names(plan)
    reconcile = ["cutover", "reconcile", "--source", m.source, "--target", m.target, "--report", "/data/reconcile"]
    vol, mount = data_volume(cfg)
    container = pod_container(
        "reconcile", cfg, sh_command(f"exec {shlex.join(reconcile)}"), m.resources, volumeMounts=[mount]
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": part_meta(n["reconcile"], t, "migration"),
        "spec": {
            "backoffLimit": 1,
            "template": {
                "metadata": {"labels": pod_labels(t, "reconcile")},
                "spec": {"restartPolicy": "Never", "containers": [container], "volumes": [vol]},
            },
        },
    }
